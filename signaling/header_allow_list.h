#pragma once
// The headers that cross from one leg of a call to the other: only those the operator
// allow-lists (sip.header_allow_list), plus P-Asserted-Identity between the core and a
// trusted trunk. Everything else a peer writes stays on its own leg (topology hiding).
// Pure: no I/O, any thread.

#include <string>
#include <vector>

#include "signaling/sofia.h"

namespace sbc::signaling {

// The headers of `sip` whose names are in `names` (case-insensitive, in the order the
// names are listed, each header in the order it came), as "Name: value\r\n" lines for
// SIPTAG_HEADER_STR; "" when none. A value that would not stay one header line (CR, LF,
// NUL) or is longer than kMaxPassedValue is dropped.
std::string allowedHeaderLines(const sip_t* sip, const std::vector<std::string>& names);

inline constexpr std::size_t kMaxPassedValue = 1024;

}  // namespace sbc::signaling
