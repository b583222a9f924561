#pragma once
// Socket addresses as the kernel takes them, made from and read into the policy's IP
// address values; and the descriptors this process has open. Shared by the socket media
// driver (per packet: the comparisons are inline) and signaling (finding nta's sockets).

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "policy/ip.h"

namespace sbc::common {

struct SocketAddress {
  sockaddr_storage storage{};
  socklen_t length = 0;  // 0: no address
  bool valid() const noexcept { return length != 0; }
  const sockaddr* get() const noexcept { return reinterpret_cast<const sockaddr*>(&storage); }
};

SocketAddress toSocketAddress(const policy::IpAddress& address, std::uint16_t port) noexcept;
policy::IpAddress ipOf(const sockaddr_storage& storage) noexcept;
std::uint16_t portOf(const sockaddr_storage& storage) noexcept;
void setPort(SocketAddress& address, std::uint16_t port) noexcept;

// Exact (family, address, port) equality.
inline bool sameEndpoint(const sockaddr_storage& a, const sockaddr_storage& b) noexcept {
  if (a.ss_family != b.ss_family) return false;
  if (a.ss_family == AF_INET) {
    const auto& x = reinterpret_cast<const sockaddr_in&>(a);
    const auto& y = reinterpret_cast<const sockaddr_in&>(b);
    return x.sin_port == y.sin_port && x.sin_addr.s_addr == y.sin_addr.s_addr;
  }
  if (a.ss_family != AF_INET6) return false;
  const auto& x = reinterpret_cast<const sockaddr_in6&>(a);
  const auto& y = reinterpret_cast<const sockaddr_in6&>(b);
  return x.sin6_port == y.sin6_port && std::memcmp(&x.sin6_addr, &y.sin6_addr, sizeof(in6_addr)) == 0;
}

// The descriptors this process has open (/proc/self/fd), in no particular order; empty if
// /proc cannot be read. For finding what a library opened and does not hand out.
std::vector<int> openDescriptors();

}  // namespace sbc::common
