#include "signaling/overload_guard.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>

namespace sbc::signaling {

namespace {

// The numeric address `host` (IPv4, or IPv6 without brackets) with `port`.
bool toSocketAddress(const std::string& host, unsigned port, sockaddr_storage& out) {
  std::memset(&out, 0, sizeof out);
  auto* v4 = reinterpret_cast<sockaddr_in*>(&out);
  if (::inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<std::uint16_t>(port));
    return true;
  }
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&out);
  if (::inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<std::uint16_t>(port));
    return true;
  }
  return false;
}

bool sameAddress(const sockaddr_storage& a, const sockaddr_storage& b) {
  if (a.ss_family != b.ss_family) return false;
  if (a.ss_family == AF_INET) {
    const auto& x = reinterpret_cast<const sockaddr_in&>(a);
    const auto& y = reinterpret_cast<const sockaddr_in&>(b);
    return x.sin_port == y.sin_port && x.sin_addr.s_addr == y.sin_addr.s_addr;
  }
  const auto& x = reinterpret_cast<const sockaddr_in6&>(a);
  const auto& y = reinterpret_cast<const sockaddr_in6&>(b);
  return x.sin6_port == y.sin6_port &&
         std::memcmp(&x.sin6_addr, &y.sin6_addr, sizeof x.sin6_addr) == 0;
}

}  // namespace

std::vector<int> ReceiveBacklog::udpSocketsBoundTo(const std::string& address, unsigned port) {
  std::vector<int> found;
  sockaddr_storage wanted{};
  if (!toSocketAddress(address, port, wanted)) return found;
  DIR* descriptors = ::opendir("/proc/self/fd");
  if (descriptors == nullptr) return found;
  const int own = ::dirfd(descriptors);
  while (const dirent* entry = ::readdir(descriptors)) {
    char* end = nullptr;
    const long fd = std::strtol(entry->d_name, &end, 10);
    if (end == entry->d_name || *end != '\0' || fd == own) continue;
    int type = 0;
    socklen_t typeLength = sizeof type;
    if (::getsockopt(static_cast<int>(fd), SOL_SOCKET, SO_TYPE, &type, &typeLength) != 0 ||
        type != SOCK_DGRAM) {
      continue;  // not a socket, or not a datagram one
    }
    sockaddr_storage bound{};
    socklen_t boundLength = sizeof bound;
    if (::getsockname(static_cast<int>(fd), reinterpret_cast<sockaddr*>(&bound),
                      &boundLength) == 0 &&
        sameAddress(bound, wanted)) {
      found.push_back(static_cast<int>(fd));
    }
  }
  ::closedir(descriptors);
  return found;
}

std::size_t ReceiveBacklog::bytes() const {
  std::size_t total = 0;
  for (const int fd : sockets_) {
    std::uint32_t memory[SK_MEMINFO_VARS] = {};
    socklen_t length = sizeof memory;
    if (::getsockopt(fd, SOL_SOCKET, SO_MEMINFO, memory, &length) == 0 &&
        length > SK_MEMINFO_RMEM_ALLOC * sizeof memory[0]) {
      total += memory[SK_MEMINFO_RMEM_ALLOC];
    }
  }
  return total;
}

bool OverloadGuard::refuse(std::size_t queuedBytes) {
  if (threshold_ == 0) return false;
  if (overloaded_) {
    if (queuedBytes <= threshold_ / 2) overloaded_ = false;
  } else if (queuedBytes > threshold_) {
    overloaded_ = true;
  }
  return overloaded_;
}

}  // namespace sbc::signaling
