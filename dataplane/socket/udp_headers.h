#pragma once
// The IP and UDP headers the socket driver's sk_lookup mode writes in front of each payload
// it sends: that mode has no socket per relay port, so it sends through a raw socket
// (IPPROTO_RAW, the header as given) with the relay port as the UDP source port.

#include <sys/socket.h>

#include <cstddef>
#include <cstdint>

namespace sbc::dataplane {

inline constexpr std::size_t kMaxUdpHeaders = 48;  // IPv6 (40) + UDP (8); IPv4 needs 28

// Writes into `out` the IPv4 or IPv6 header (DSCP `dscp`, TTL / hop limit 64, IPv4 with
// don't-fragment) and the UDP header with its checksum for `length` bytes of `payload`
// from `source` to `destination` (addresses and ports). Returns the headers' length, or 0
// when the two are not of one family, or the datagram would exceed 65,535 bytes.
std::size_t writeUdpHeaders(std::uint8_t* out, const sockaddr_storage& source,
                            const sockaddr_storage& destination, std::uint8_t dscp,
                            const std::uint8_t* payload, std::size_t length) noexcept;

// The one's-complement sum of `length` bytes as 16-bit words in network order, folded;
// RFC 1071 (the last odd byte is padded with zero). Exposed for tests.
std::uint16_t onesComplementSum(const std::uint8_t* bytes, std::size_t length,
                                std::uint32_t initial = 0) noexcept;

}  // namespace sbc::dataplane
