#pragma once
// Which message bodies cross from one leg of a call to the other (sip.body_types). A body
// can name its sender's side as plainly as a header (a dialog-info or pidf document carries
// the peer's URIs), so only the types the operator lists cross, unchanged. Not subject to
// the list: SDP in an offer/answer exchange (anchored and rewritten by sbcd) and
// message/sipfrag (cut to its status line by sbcd). Pure: no I/O, any thread.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "signaling/multipart.h"
#include "signaling/sofia.h"

namespace sbc::signaling {

enum class BodyVerdict {
  none,              // no body (or an empty one)
  allowed,           // a listed type, or a multipart body whose every part is one
  refusedType,       // a type not listed, or a body without Content-Type
  refusedMultipart,  // a multipart body with a part not listed, a nested multipart, or one
                     // that is not cleanly split by its boundary (RFC 2046 5.1.1)
};

// A body outside an offer/answer exchange (INFO, MESSAGE, NOTIFY, OPTIONS, BYE and the
// responses to them): the verdict and, when allowed, the body as it crosses to the other
// leg, from the one split of a multipart body that decided the verdict.
struct FilteredBody {
  BodyVerdict verdict = BodyVerdict::none;
  // Allowed: a message/sipfrag cut to its status line (a quoted response names the far
  // side's Contact, Via and Server), a multipart body rebuilt under a fresh boundary of
  // sbcd's, any other as it came. Empty otherwise.
  OutgoingBody crossing;
};

// `sip`'s body against `allowedTypes` (lower-case "type/subtype", compared
// case-insensitively; parameters such as charset do not matter). message/sipfrag counts as
// allowed, alone (sbcd rewrites it) though not as a multipart part.
FilteredBody filterBody(const sip_t* sip, const std::vector<std::string>& allowedTypes);

// The reason label of a refusal: "content_type" or "multipart".
const char* refusalReason(BodyVerdict verdict);

// The body of a message that may carry an SDP offer or answer (INVITE, UPDATE, the
// responses to them, ACK), taken apart to cross: the SDP sbcd anchors, and beside it the
// parts sip.body_types lets cross (a SIP-I peer's ISUP message). SDP is found as the whole
// body (application/sdp, or a body without Content-Type) or as the one application/sdp part
// of a multipart body.
struct SessionBody {
  std::optional<std::string> sdp;
  std::string sdpDisposition;  // the SDP part's Content-Disposition (multipart only)
  std::vector<BodyPart> passed;  // the other parts (or the whole non-SDP body), if listed
  bool refusedParts = false;     // some part (or the whole non-SDP body) is left out
  bool multipart = false;

  // What crosses to the other leg: `rewrittenSdp` (the SDP as anchored for that realm;
  // empty: none) and the passed parts, as one body (multipart.h buildBody: plain
  // application/sdp when the SDP is all that is left, a fresh boundary otherwise).
  OutgoingBody crossing(std::string_view rewrittenSdp) const;
};

// `sip`'s body taken apart (an empty SessionBody when it has none). nullopt, with the
// reason in `error`, for a multipart body that cannot be split cleanly or that has more
// than one application/sdp part: which one would be the offer or answer is anyone's guess.
// A nested multipart part never crosses. Parts are compared with `allowedTypes` as
// filterBody() does.
std::optional<SessionBody> splitSessionBody(const sip_t* sip,
                                            const std::vector<std::string>& allowedTypes,
                                            std::string& error);

// The value of the Accept header of sbcd's 415: the listed types and message/sipfrag.
std::string acceptedTypes(const std::vector<std::string>& allowedTypes);

}  // namespace sbc::signaling
