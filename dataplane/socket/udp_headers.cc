#include "dataplane/socket/udp_headers.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstring>

namespace sbc::dataplane {
namespace {

constexpr std::size_t kIpv4Header = 20;
constexpr std::size_t kIpv6Header = 40;
constexpr std::size_t kUdpHeader = 8;
constexpr std::uint8_t kHopLimit = 64;

void put16(std::uint8_t* at, std::uint16_t hostOrder) {
  const std::uint16_t value = htons(hostOrder);
  std::memcpy(at, &value, sizeof value);
}

// UDP checksum over the pseudo-header (addresses, protocol, length), the UDP header with a
// zero checksum, and the payload. 0 is sent as 0xffff (0 means "none" in IPv4, and is not
// allowed in IPv6).
std::uint16_t udpChecksum(const std::uint8_t* sourceAddress, const std::uint8_t* destAddress,
                          std::size_t addressLength, const std::uint8_t* udpHeader,
                          const std::uint8_t* payload, std::size_t length) {
  std::uint8_t pseudoTail[4] = {0, IPPROTO_UDP, 0, 0};
  put16(pseudoTail + 2, static_cast<std::uint16_t>(kUdpHeader + length));
  // Each partial sum is folded to 16 bits, so adding them cannot overflow 32 bits.
  std::uint32_t sum = onesComplementSum(sourceAddress, addressLength);
  sum += onesComplementSum(destAddress, addressLength);
  sum += onesComplementSum(pseudoTail, sizeof pseudoTail);
  sum += onesComplementSum(udpHeader, kUdpHeader);
  sum = onesComplementSum(payload, length, sum);
  const auto checksum = static_cast<std::uint16_t>(~sum & 0xffff);
  return checksum == 0 ? 0xffff : checksum;
}

void writeUdp(std::uint8_t* at, std::uint16_t sourcePort, std::uint16_t destPort,
              std::size_t length) {
  std::memcpy(at, &sourcePort, 2);  // ports stay in network order
  std::memcpy(at + 2, &destPort, 2);
  put16(at + 4, static_cast<std::uint16_t>(kUdpHeader + length));
  put16(at + 6, 0);
}

}  // namespace

std::uint16_t onesComplementSum(const std::uint8_t* bytes, std::size_t length,
                                std::uint32_t initial) noexcept {
  std::uint64_t sum = initial;
  std::size_t i = 0;
  for (; i + 1 < length; i += 2) {
    sum += static_cast<std::uint32_t>(bytes[i]) << 8 | bytes[i + 1];
  }
  if (i < length) sum += static_cast<std::uint32_t>(bytes[i]) << 8;
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<std::uint16_t>(sum);
}

std::size_t writeUdpHeaders(std::uint8_t* out, const sockaddr_storage& source,
                            const sockaddr_storage& destination, std::uint8_t dscp,
                            const std::uint8_t* payload, std::size_t length) noexcept {
  if (source.ss_family != destination.ss_family) return 0;
  const auto tos = static_cast<std::uint8_t>(dscp << 2);
  if (source.ss_family == AF_INET) {
    if (length > 65535 - kIpv4Header - kUdpHeader) return 0;
    const auto& from = reinterpret_cast<const sockaddr_in&>(source);
    const auto& to = reinterpret_cast<const sockaddr_in&>(destination);
    std::memset(out, 0, kIpv4Header);
    out[0] = 0x45;  // version 4, 5 words
    out[1] = tos;
    put16(out + 2, static_cast<std::uint16_t>(kIpv4Header + kUdpHeader + length));
    put16(out + 6, 0x4000);  // don't fragment; the kernel fills the id and header checksum
    out[8] = kHopLimit;
    out[9] = IPPROTO_UDP;
    std::memcpy(out + 12, &from.sin_addr, 4);
    std::memcpy(out + 16, &to.sin_addr, 4);
    std::uint8_t* udp = out + kIpv4Header;
    writeUdp(udp, from.sin_port, to.sin_port, length);
    put16(udp + 6, udpChecksum(out + 12, out + 16, 4, udp, payload, length));
    return kIpv4Header + kUdpHeader;
  }
  if (source.ss_family == AF_INET6) {
    if (length > 65535 - kUdpHeader) return 0;
    const auto& from = reinterpret_cast<const sockaddr_in6&>(source);
    const auto& to = reinterpret_cast<const sockaddr_in6&>(destination);
    const std::uint32_t first = htonl(6u << 28 | static_cast<std::uint32_t>(tos) << 20);
    std::memcpy(out, &first, 4);
    put16(out + 4, static_cast<std::uint16_t>(kUdpHeader + length));
    out[6] = IPPROTO_UDP;
    out[7] = kHopLimit;
    std::memcpy(out + 8, &from.sin6_addr, 16);
    std::memcpy(out + 24, &to.sin6_addr, 16);
    std::uint8_t* udp = out + kIpv6Header;
    writeUdp(udp, from.sin6_port, to.sin6_port, length);
    put16(udp + 6, udpChecksum(out + 8, out + 24, 16, udp, payload, length));
    return kIpv6Header + kUdpHeader;
  }
  return 0;
}

}  // namespace sbc::dataplane
