#pragma once
// Checks of a request's content the front door applies before any state is made for it.
// Pure: no I/O, any thread.

#include <string_view>

namespace sbc::signaling {

// True when `user` is a SIP URI user part as RFC 3261 (section 25.1) writes it: unreserved
// characters, user-unreserved characters and %HH escapes, nothing else (no spaces, control
// characters or raw bytes above 0x7f). The SBC copies the dialled and calling users onto
// the other leg, so what it copies must be well-formed.
bool isUriUser(std::string_view user);

}  // namespace sbc::signaling
