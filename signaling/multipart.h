#pragma once
// Multipart bodies (RFC 2046 5.1, in SIP RFC 5621) as sbcd splits and rebuilds them. A
// SIP-I/SIP-T peer (ITU-T Q.1912.5, RFC 3204) sends its SDP and its ISUP message as the two
// parts of one multipart/mixed body. Sofia's own msg_multipart_parse() asserts (aborting
// the process) on some malformed bodies, so the split is done here and only each part's
// Content-Type and Content-Disposition values go to Sofia's header parser. Pure: no I/O,
// any thread.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "signaling/sofia.h"

namespace sbc::signaling {

// Bounds on what a hostile multipart body can make sbcd do.
inline constexpr std::size_t kMaxBodyParts = 16;
inline constexpr std::size_t kMaxBoundary = 70;  // RFC 2046 5.1.1

// One part of a multipart body. Of its headers only these two are kept: the type says what
// the part is, the disposition how a SIP-I peer must handle it (RFC 3204's
// "signal;handling=required"); Content-ID, Content-Transfer-Encoding and the rest are left
// out (in SIP a body part is binary already, RFC 5621 3.2).
struct BodyPart {
  std::string type;         // "type/subtype", lower case; "text/plain" when none is given
  std::string contentType;  // the Content-Type value as Sofia prints it back; empty: none
  std::string disposition;  // the Content-Disposition value as Sofia prints it; empty: none
  std::string content;      // the part's bytes, exactly (the delimiter's CRLF is not in them)
};

// The boundary parameter of a multipart Content-Type, without quotes; empty if none.
std::string_view boundaryOf(const msg_content_type_t* type);

// The parts of `body` split at `boundary`; nullopt when it is not cleanly split: no or an
// overlong boundary, text outside the parts other than white space, a delimiter line with
// more than white space after it, no close delimiter, a part header that is folded, holds a
// NUL or a lone CR, or whose Content-Type or Content-Disposition does not parse, more than
// kMaxBodyParts parts, or none.
std::optional<std::vector<BodyPart>> splitMultipart(std::string_view boundary,
                                                    std::string_view body);

// A body as it goes out: its Content-Type and Content-Disposition values (empty: no such
// header) and its bytes (binary: may hold NULs).
struct OutgoingBody {
  std::string contentType;
  std::string disposition;
  std::string bytes;
  bool empty() const { return contentType.empty() && bytes.empty(); }
};

// `parts` as one body: nothing for none; a part alone as a plain body of its own type and
// disposition; two or more as multipart/mixed with a fresh random boundary (never the sender's: a peer's
// boundary string can name its SIP stack) that occurs in none of the parts.
OutgoingBody buildBody(const std::vector<BodyPart>& parts);

}  // namespace sbc::signaling
