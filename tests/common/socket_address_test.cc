// Socket addresses made from and read into policy IP addresses, endpoint equality, and the
// process's open descriptors.

#include "common/socket_address.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>

#include <gtest/gtest.h>

namespace sbc::common {
namespace {

policy::IpAddress ip(const char* text) { return policy::IpAddress::parse(text).value(); }

TEST(SocketAddress, Ipv4RoundTrips) {
  const SocketAddress address = toSocketAddress(ip("192.0.2.7"), 5060);
  ASSERT_TRUE(address.valid());
  EXPECT_EQ(address.length, sizeof(sockaddr_in));
  EXPECT_EQ(address.storage.ss_family, AF_INET);
  EXPECT_EQ(ipOf(address.storage), ip("192.0.2.7"));
  EXPECT_EQ(portOf(address.storage), 5060);
}

TEST(SocketAddress, Ipv6RoundTripsAndPortsChange) {
  SocketAddress address = toSocketAddress(ip("2001:db8::1"), 10000);
  EXPECT_EQ(address.length, sizeof(sockaddr_in6));
  EXPECT_EQ(address.storage.ss_family, AF_INET6);
  EXPECT_EQ(ipOf(address.storage), ip("2001:db8::1"));
  setPort(address, 10001);
  EXPECT_EQ(portOf(address.storage), 10001);
  EXPECT_EQ(ipOf(address.storage), ip("2001:db8::1"));
}

TEST(SocketAddress, NoAddressIsInvalid) { EXPECT_FALSE(SocketAddress{}.valid()); }

TEST(SocketAddress, SameEndpointNeedsFamilyAddressAndPort) {
  const auto a = toSocketAddress(ip("127.0.0.2"), 4000).storage;
  EXPECT_TRUE(sameEndpoint(a, toSocketAddress(ip("127.0.0.2"), 4000).storage));
  EXPECT_FALSE(sameEndpoint(a, toSocketAddress(ip("127.0.0.2"), 4001).storage));
  EXPECT_FALSE(sameEndpoint(a, toSocketAddress(ip("127.0.0.3"), 4000).storage));
  EXPECT_FALSE(sameEndpoint(a, toSocketAddress(ip("::ffff:127.0.0.2"), 4000).storage));
  const auto b = toSocketAddress(ip("::1"), 4000).storage;
  EXPECT_TRUE(sameEndpoint(b, toSocketAddress(ip("::1"), 4000).storage));
  EXPECT_FALSE(sameEndpoint(b, toSocketAddress(ip("::2"), 4000).storage));
  EXPECT_FALSE(sameEndpoint(b, toSocketAddress(ip("::1"), 4001).storage));
  EXPECT_FALSE(sameEndpoint(sockaddr_storage{}, sockaddr_storage{}));  // no family: no endpoint
}

TEST(OpenDescriptors, ListsWhatIsOpenAndNotWhatWasClosed) {
  const int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  auto open = openDescriptors();
  EXPECT_NE(std::find(open.begin(), open.end(), fd), open.end());
  EXPECT_NE(std::find(open.begin(), open.end(), STDERR_FILENO), open.end());
  ::close(fd);
  open = openDescriptors();
  EXPECT_EQ(std::find(open.begin(), open.end(), fd), open.end());
  // The directory read to list them is closed again: listing twice leaks nothing.
  EXPECT_EQ(openDescriptors().size(), open.size());
}

}  // namespace
}  // namespace sbc::common
