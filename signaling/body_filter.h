#pragma once
// Which message bodies cross from one leg of a call to the other (sip.body_types). A body
// can name its sender's side as plainly as a header (a dialog-info or pidf document carries
// the peer's URIs), so only the types the operator lists cross, unchanged. Not subject to
// the list: SDP in an offer/answer exchange (anchored and rewritten by sbcd) and
// message/sipfrag (cut to its status line by sbcd). Pure: no I/O, any thread.

#include <string>
#include <vector>

#include "signaling/sofia.h"

namespace sbc::signaling {

enum class BodyVerdict {
  none,              // no body (or an empty one)
  allowed,           // a listed type, or a multipart body whose every part is one
  refusedType,       // a type not listed, or a body without Content-Type
  refusedMultipart,  // a multipart body with a part not listed, a nested multipart, or one
                     // that is not cleanly split by its boundary (RFC 2046 5.1.1)
};

// The verdict on `sip`'s body against `allowedTypes` (lower-case "type/subtype", compared
// case-insensitively; parameters such as charset do not matter). message/sipfrag counts as
// allowed, alone (sbcd rewrites it) though not as a multipart part.
BodyVerdict checkBody(const sip_t* sip, const std::vector<std::string>& allowedTypes);

// The reason label of a refusal: "content_type" or "multipart".
const char* refusalReason(BodyVerdict verdict);

// The value of the Accept header of sbcd's 415: the listed types and message/sipfrag.
std::string acceptedTypes(const std::vector<std::string>& allowedTypes);

}  // namespace sbc::signaling
