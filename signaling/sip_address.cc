#include "signaling/sip_address.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstring>

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
  TerminalAddress source;
  if (info->ai_addr->sa_family == AF_INET) {
    const auto* v4 = reinterpret_cast<const sockaddr_in*>(info->ai_addr);
    source.address.family = policy::IpFamily::v4;
    std::memcpy(source.address.bytes.data(), &v4->sin_addr, 4);
    source.port = ntohs(v4->sin_port);
  } else if (info->ai_addr->sa_family == AF_INET6) {
    const auto* v6 = reinterpret_cast<const sockaddr_in6*>(info->ai_addr);
    source.address.family = policy::IpFamily::v6;
    std::memcpy(source.address.bytes.data(), &v6->sin6_addr, 16);
    source.port = ntohs(v6->sin6_port);
  } else {
    return std::nullopt;
  }
  source.transport = info->ai_protocol == IPPROTO_TCP ? config::Transport::tcp
                                                        : config::Transport::udp;
  return source;
}

}  // namespace sbc::signaling
