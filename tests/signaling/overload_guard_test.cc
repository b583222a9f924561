// The overload guard's hysteresis, and the receive backlog read from real UDP sockets on
// loopback: datagrams sent to a socket nobody reads show up as queued bytes, and the
// socket is found by the address it is bound to.

#include "signaling/overload_guard.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <string>

#include <gtest/gtest.h>

namespace sbc::signaling {
namespace {

// A UDP socket bound to 127.0.0.1 on a free port, closed with the object.
class BoundUdpSocket {
 public:
  BoundUdpSocket() : fd_(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)) {
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof address;
    if (fd_ >= 0 && ::bind(fd_, reinterpret_cast<sockaddr*>(&address), length) == 0 &&
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &length) == 0) {
      port_ = ntohs(address.sin_port);
    }
  }
  ~BoundUdpSocket() {
    if (fd_ >= 0) ::close(fd_);
  }
  BoundUdpSocket(const BoundUdpSocket&) = delete;
  BoundUdpSocket& operator=(const BoundUdpSocket&) = delete;

  int fd() const { return fd_; }
  unsigned port() const { return port_; }

  // Sends `count` datagrams of `size` bytes to `port` on 127.0.0.1.
  void sendTo(unsigned port, int count, std::size_t size) const {
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    to.sin_port = htons(static_cast<std::uint16_t>(port));
    const std::string payload(size, 'x');
    for (int i = 0; i < count; ++i) {
      ASSERT_EQ(::sendto(fd_, payload.data(), payload.size(), 0,
                         reinterpret_cast<const sockaddr*>(&to), sizeof to),
                static_cast<ssize_t>(payload.size()));
    }
  }

 private:
  int fd_;
  unsigned port_ = 0;
};

// Proves: on above the threshold, still on down to half of it, off at half or below.
TEST(OverloadGuard, RefusesAboveTheThresholdUntilHalfOfIt) {
  OverloadGuard guard(1000);
  EXPECT_FALSE(guard.refuse(0));
  EXPECT_FALSE(guard.refuse(1000));  // at the threshold: not yet
  EXPECT_TRUE(guard.refuse(1001));
  EXPECT_TRUE(guard.overloaded());
  EXPECT_TRUE(guard.refuse(800));  // below the threshold, above half: still refusing
  EXPECT_TRUE(guard.refuse(501));
  EXPECT_FALSE(guard.refuse(500));
  EXPECT_FALSE(guard.overloaded());
  EXPECT_FALSE(guard.refuse(900));  // off again: only above the threshold turns it on
}

// Proves: a threshold of 0 never refuses, whatever waits.
TEST(OverloadGuard, ZeroThresholdNeverRefuses) {
  OverloadGuard guard(0);
  EXPECT_FALSE(guard.enabled());
  EXPECT_FALSE(guard.refuse(1u << 30));
  EXPECT_FALSE(guard.overloaded());
}

// Proves: the socket bound to an address is found by it (and a socket on another port is
// not), in both spellings of the address.
TEST(ReceiveBacklog, FindsTheUdpSocketBoundToAnAddress) {
  const BoundUdpSocket watched;
  const BoundUdpSocket other;
  ASSERT_NE(watched.port(), 0u);
  const auto found = ReceiveBacklog::udpSocketsBoundTo("127.0.0.1", watched.port());
  EXPECT_EQ(found, std::vector<int>{watched.fd()});
  EXPECT_TRUE(ReceiveBacklog::udpSocketsBoundTo("127.0.0.2", watched.port()).empty());
  EXPECT_TRUE(ReceiveBacklog::udpSocketsBoundTo("not an address", watched.port()).empty());
  // A TCP socket on the same port is not a datagram socket.
  const int tcp = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(static_cast<std::uint16_t>(watched.port()));
  ASSERT_EQ(::bind(tcp, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  EXPECT_EQ(ReceiveBacklog::udpSocketsBoundTo("127.0.0.1", watched.port()),
            std::vector<int>{watched.fd()});
  ::close(tcp);
}

// Proves: datagrams waiting unread are counted, at least their payload, and the count
// falls back to zero once they are read.
TEST(ReceiveBacklog, CountsTheBytesWaitingUnread) {
  const BoundUdpSocket watched;
  const BoundUdpSocket sender;
  const ReceiveBacklog backlog({watched.fd()});
  EXPECT_EQ(backlog.bytes(), 0u);
  sender.sendTo(watched.port(), 20, 800);
  const std::size_t queued = backlog.bytes();
  EXPECT_GE(queued, 20u * 800u);
  EXPECT_LT(queued, 20u * 8192u);  // each with its buffer's overhead, not more
  char buffer[2048];
  for (int i = 0; i < 20; ++i) {
    ASSERT_EQ(::recv(watched.fd(), buffer, sizeof buffer, MSG_DONTWAIT), 800);
  }
  EXPECT_EQ(backlog.bytes(), 0u);
}

// Proves: the backlog of several sockets is their sum.
TEST(ReceiveBacklog, SumsSeveralSockets) {
  const BoundUdpSocket first;
  const BoundUdpSocket second;
  const BoundUdpSocket sender;
  sender.sendTo(first.port(), 5, 1000);
  const std::size_t one = ReceiveBacklog({first.fd()}).bytes();
  sender.sendTo(second.port(), 5, 1000);
  const std::size_t two = ReceiveBacklog({second.fd()}).bytes();
  EXPECT_GE(one, 5000u);
  EXPECT_GE(two, 5000u);
  EXPECT_EQ(ReceiveBacklog({first.fd(), second.fd()}).bytes(), one + two);
}

}  // namespace
}  // namespace sbc::signaling
