#include "signaling/overload_guard.h"

#include <linux/sock_diag.h>
#include <sys/socket.h>

#include <cstdint>

#include "common/socket_address.h"
#include "policy/ip.h"

namespace sbc::signaling {

std::vector<int> ReceiveBacklog::udpSocketsBoundTo(const std::string& address, unsigned port) {
  std::vector<int> found;
  const auto ip = policy::IpAddress::parse(address);
  if (!ip) return found;
  const common::SocketAddress wanted = common::toSocketAddress(*ip, static_cast<std::uint16_t>(port));
  for (const int fd : common::openDescriptors()) {
    int type = 0;
    socklen_t typeLength = sizeof type;
    if (::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &typeLength) != 0 || type != SOCK_DGRAM) {
      continue;  // not a socket, or not a datagram one
    }
    sockaddr_storage bound{};
    socklen_t boundLength = sizeof bound;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &boundLength) == 0 &&
        common::sameEndpoint(bound, wanted.storage)) {
      found.push_back(fd);
    }
  }
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
