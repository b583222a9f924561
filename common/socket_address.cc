#include "common/socket_address.h"

#include <dirent.h>

#include <cstdlib>

namespace sbc::common {

SocketAddress toSocketAddress(const policy::IpAddress& address, std::uint16_t port) noexcept {
  SocketAddress out;
  if (address.family == policy::IpFamily::v4) {
    auto* in = reinterpret_cast<sockaddr_in*>(&out.storage);
    in->sin_family = AF_INET;
    in->sin_port = htons(port);
    std::memcpy(&in->sin_addr, address.bytes.data(), 4);
    out.length = sizeof(sockaddr_in);
  } else {
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&out.storage);
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(port);
    std::memcpy(&in6->sin6_addr, address.bytes.data(), 16);
    out.length = sizeof(sockaddr_in6);
  }
  return out;
}

policy::IpAddress ipOf(const sockaddr_storage& storage) noexcept {
  policy::IpAddress address;
  if (storage.ss_family == AF_INET) {
    address.family = policy::IpFamily::v4;
    std::memcpy(address.bytes.data(), &reinterpret_cast<const sockaddr_in&>(storage).sin_addr, 4);
  } else {
    address.family = policy::IpFamily::v6;
    std::memcpy(address.bytes.data(), &reinterpret_cast<const sockaddr_in6&>(storage).sin6_addr,
                16);
  }
  return address;
}

std::uint16_t portOf(const sockaddr_storage& storage) noexcept {
  return storage.ss_family == AF_INET
             ? ntohs(reinterpret_cast<const sockaddr_in&>(storage).sin_port)
             : ntohs(reinterpret_cast<const sockaddr_in6&>(storage).sin6_port);
}

void setPort(SocketAddress& address, std::uint16_t port) noexcept {
  if (address.storage.ss_family == AF_INET) {
    reinterpret_cast<sockaddr_in&>(address.storage).sin_port = htons(port);
  } else {
    reinterpret_cast<sockaddr_in6&>(address.storage).sin6_port = htons(port);
  }
}

std::vector<int> openDescriptors() {
  std::vector<int> found;
  DIR* descriptors = ::opendir("/proc/self/fd");
  if (descriptors == nullptr) return found;
  const int own = ::dirfd(descriptors);  // open only while the directory is read
  while (const dirent* entry = ::readdir(descriptors)) {
    char* end = nullptr;
    const long fd = std::strtol(entry->d_name, &end, 10);
    if (end == entry->d_name || *end != '\0' || fd == own) continue;
    found.push_back(static_cast<int>(fd));
  }
  ::closedir(descriptors);
  return found;
}

}  // namespace sbc::common
