// The headers the socket driver's sk_lookup mode sends through its raw socket. The kernel
// checks what it receives (socket_relay_sk_lookup_test); these pin the fields one by one.

#include "dataplane/socket/udp_headers.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <array>
#include <cstring>
#include <vector>

#include <gtest/gtest.h>

namespace sbc::dataplane {
namespace {

sockaddr_storage v4(const char* address, std::uint16_t port) {
  sockaddr_storage out{};
  auto& in = reinterpret_cast<sockaddr_in&>(out);
  in.sin_family = AF_INET;
  in.sin_port = htons(port);
  ::inet_pton(AF_INET, address, &in.sin_addr);
  return out;
}

sockaddr_storage v6(const char* address, std::uint16_t port) {
  sockaddr_storage out{};
  auto& in = reinterpret_cast<sockaddr_in6&>(out);
  in.sin6_family = AF_INET6;
  in.sin6_port = htons(port);
  ::inet_pton(AF_INET6, address, &in.sin6_addr);
  return out;
}

std::uint16_t read16(const std::uint8_t* at) { return static_cast<std::uint16_t>(at[0] << 8 | at[1]); }

// The checksum a receiver computes: over the pseudo-header, the UDP header as sent (with
// its checksum) and the payload; a correct datagram sums to 0xffff.
std::uint16_t receiverSum(const std::uint8_t* source, const std::uint8_t* dest,
                          std::size_t addressLength, const std::uint8_t* udp,
                          const std::vector<std::uint8_t>& payload) {
  std::vector<std::uint8_t> all(source, source + addressLength);
  all.insert(all.end(), dest, dest + addressLength);
  const std::uint16_t udpLength = read16(udp + 4);
  all.insert(all.end(), {0, IPPROTO_UDP, static_cast<std::uint8_t>(udpLength >> 8),
                         static_cast<std::uint8_t>(udpLength)});
  all.insert(all.end(), udp, udp + 8);
  all.insert(all.end(), payload.begin(), payload.end());
  return onesComplementSum(all.data(), all.size());
}

// Proves: the sum follows RFC 1071's worked example (section 3).
TEST(OnesComplementSum, MatchesRfc1071Example) {
  const std::uint8_t bytes[] = {0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7};
  EXPECT_EQ(onesComplementSum(bytes, sizeof bytes), 0xddf2);
  // An odd last byte counts as the high byte of a word padded with zero.
  const std::uint8_t odd[] = {0x12, 0x34, 0x56};
  EXPECT_EQ(onesComplementSum(odd, sizeof odd), 0x1234 + 0x5600);
}

// Proves: an IPv4 datagram gets version, DSCP, total length, don't-fragment, TTL, protocol,
// addresses, ports, UDP length and a checksum that verifies, for even and odd payloads.
TEST(UdpHeaders, Ipv4FieldsAndChecksum) {
  for (const std::size_t size : {172u, 33u, 1u}) {
    std::vector<std::uint8_t> payload(size);
    for (std::size_t i = 0; i < size; ++i) payload[i] = static_cast<std::uint8_t>(i * 37 + 5);
    std::array<std::uint8_t, kMaxUdpHeaders> out{};
    const auto length = writeUdpHeaders(out.data(), v4("192.0.2.10", 20002),
                                        v4("198.51.100.7", 4000), 46, payload.data(), size);
    ASSERT_EQ(length, 28u);
    EXPECT_EQ(out[0], 0x45);
    EXPECT_EQ(out[1], 46 << 2);
    EXPECT_EQ(read16(out.data() + 2), 28 + size);
    EXPECT_EQ(read16(out.data() + 6), 0x4000);
    EXPECT_EQ(out[8], 64);
    EXPECT_EQ(out[9], IPPROTO_UDP);
    EXPECT_EQ(std::vector<std::uint8_t>(out.begin() + 12, out.begin() + 16),
              (std::vector<std::uint8_t>{192, 0, 2, 10}));
    EXPECT_EQ(std::vector<std::uint8_t>(out.begin() + 16, out.begin() + 20),
              (std::vector<std::uint8_t>{198, 51, 100, 7}));
    const std::uint8_t* udp = out.data() + 20;
    EXPECT_EQ(read16(udp), 20002);
    EXPECT_EQ(read16(udp + 2), 4000);
    EXPECT_EQ(read16(udp + 4), 8 + size);
    EXPECT_NE(read16(udp + 6), 0) << "a checksum, not 'none'";
    EXPECT_EQ(receiverSum(out.data() + 12, out.data() + 16, 4, udp, payload), 0xffff);
  }
}

// Proves: an IPv6 datagram gets version, traffic class, payload length, next header, hop
// limit, addresses, ports and a checksum that verifies.
TEST(UdpHeaders, Ipv6FieldsAndChecksum) {
  std::vector<std::uint8_t> payload(171, 0xab);
  std::array<std::uint8_t, kMaxUdpHeaders> out{};
  const auto length = writeUdpHeaders(out.data(), v6("2001:db8::10", 30000),
                                      v6("2001:db8:1::7", 5004), 34, payload.data(),
                                      payload.size());
  ASSERT_EQ(length, 48u);
  EXPECT_EQ(out[0] >> 4, 6);
  EXPECT_EQ(((out[0] & 0xf) << 4) | (out[1] >> 4), 34 << 2);
  EXPECT_EQ(read16(out.data() + 4), 8 + payload.size());
  EXPECT_EQ(out[6], IPPROTO_UDP);
  EXPECT_EQ(out[7], 64);
  const std::uint8_t* udp = out.data() + 40;
  EXPECT_EQ(read16(udp), 30000);
  EXPECT_EQ(read16(udp + 2), 5004);
  EXPECT_EQ(receiverSum(out.data() + 8, out.data() + 24, 16, udp, payload), 0xffff);
}

// Proves: mixed families and datagrams too large for UDP are refused, not written.
TEST(UdpHeaders, RefusesMixedFamiliesAndOversizedDatagrams) {
  std::array<std::uint8_t, kMaxUdpHeaders> out{};
  const std::uint8_t payload[1] = {0};
  EXPECT_EQ(writeUdpHeaders(out.data(), v4("192.0.2.10", 1), v6("2001:db8::1", 2), 46, payload,
                            1),
            0u);
  std::vector<std::uint8_t> huge(65535 - 28 + 1);
  EXPECT_EQ(writeUdpHeaders(out.data(), v4("192.0.2.10", 1), v4("192.0.2.11", 2), 46,
                            huge.data(), huge.size()),
            0u);
}

}  // namespace
}  // namespace sbc::dataplane
