#include "signaling/sip_address.h"

#include <netinet/in.h>

#include <algorithm>
#include <cstring>

#include "common/socket_address.h"

namespace sbc::signaling {

// Appended piece by piece: GCC 12 at -O3 warns falsely (-Wrestrict) on "[" + string.
std::string hostForUri(std::string_view host) {
  const bool v6 = host.find(':') != std::string_view::npos;
  std::string text;
  if (v6) text += '[';
  text += host;
  if (v6) text += ']';
  return text;
}

std::string sipUrl(std::string_view host, std::uint16_t port, std::string_view transport) {
  std::string url = "sip:";
  url += hostForUri(host);
  url += ':';
  url += std::to_string(port);
  url += ";transport=";
  url += transport;
  return url;
}

std::optional<TerminalAddress> sourceOf(msg_t* msg) {
  const su_addrinfo_t* info = msg_addrinfo(msg);
  if (info == nullptr || info->ai_addr == nullptr) return std::nullopt;
  const int family = info->ai_addr->sa_family;
  if (family != AF_INET && family != AF_INET6) return std::nullopt;
  sockaddr_storage storage{};
  std::memcpy(&storage, info->ai_addr,
              std::min(static_cast<std::size_t>(info->ai_addrlen), sizeof storage));
  TerminalAddress source;
  source.address = common::ipOf(storage);
  source.port = common::portOf(storage);
  source.transport = info->ai_protocol == IPPROTO_TCP ? config::Transport::tcp
                                                        : config::Transport::udp;
  return source;
}

}  // namespace sbc::signaling
