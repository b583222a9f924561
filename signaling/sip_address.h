#pragma once
// Addresses in SIP text and where a received message came from: one spelling of a
// "sip:HOST:PORT;transport=T" URL (next hops, terminals behind NAT) and one reading of a
// message's source address. Signaling thread helpers, no state.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "signaling/registrations.h"
#include "signaling/sofia.h"

namespace sbc::signaling {

// A host for a SIP URI: an IPv6 literal in brackets, anything else as it is.
std::string hostForUri(std::string_view host);

// "sip:HOST:PORT;transport=TRANSPORT", HOST through hostForUri.
std::string sipUrl(std::string_view host, std::uint16_t port, std::string_view transport);
inline std::string sipUrl(const TerminalAddress& terminal) {
  return sipUrl(terminal.address.toString(), terminal.port, config::toString(terminal.transport));
}

// Where a received message came from: address, port and transport; nullopt when its
// address is not IPv4 or IPv6.
std::optional<TerminalAddress> sourceOf(msg_t* msg);

}  // namespace sbc::signaling
