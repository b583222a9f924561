// libFuzzer target: arbitrary bytes as one SIP datagram through what the daemon does with
// it before any state is made: Sofia-SIP's message parser with the message class nta
// parses with in the daemon (the refusal screen of nta_refusals.h, its screen refusing when
// the last byte is odd, so that a refused request must have lost its Via), then the front
// door's pure checks (user parts), the header allow-list that copies headers onto the other
// leg, the body filter (sip.body_types, on multipart bodies split by sbcd, and the body it
// lets cross as rebuilt) and a SIP-I offer's body split into SDP and ISUP and rebuilt under
// a fresh boundary (body_filter.h filterBody, splitSessionBody, multipart.h). Refusals are
// fine; crashes, leaks and UB are not, no copied header line may hold a CR, LF or NUL of its
// own, and a rebuilt body must split back into the parts it was built from.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "signaling/body_filter.h"
#include "signaling/header_allow_list.h"
#include "signaling/multipart.h"
#include "signaling/nta_refusals.h"
#include "signaling/request_checks.h"

#include <sofia-sip/msg.h>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static msg_mclass_t* const screening = sbc::signaling::makeRefusalScreeningClass();
  const bool refuse = size > 0 && (data[size - 1] & 1) != 0;
  bool refused = false;
  sbc::signaling::setRefusalScreen([&](msg_t*, const sip_t*, int) {
    refused = refuse;
    return !refuse;
  });
  msg_t* msg = msg_make(screening, 0, data, static_cast<isize_t>(size));
  sbc::signaling::setRefusalScreen({});
  if (msg == nullptr) return 0;
  const sip_t* sip = sip_object(msg);
  if (refused && sip != nullptr && sip->sip_via != nullptr) __builtin_trap();
  if (sip != nullptr) {
    if (sip->sip_request != nullptr && sip->sip_request->rq_url->url_user != nullptr) {
      sbc::signaling::isUriUser(sip->sip_request->rq_url->url_user);
    }
    if (sip->sip_from != nullptr && sip->sip_from->a_url->url_user != nullptr) {
      sbc::signaling::isUriUser(sip->sip_from->a_url->url_user);
    }
    static const std::vector<std::string> kBodyTypes = {"application/dtmf-relay", "text/plain",
                                                        "application/isup"};
    // An in-dialog body's path: the verdict and, allowed, the body rebuilt to cross; a
    // rebuilt multipart body must split again under its own boundary.
    const auto filtered = sbc::signaling::filterBody(sip, kBodyTypes);
    if (filtered.verdict == sbc::signaling::BodyVerdict::allowed &&
        filtered.crossing.contentType.rfind("multipart/mixed;boundary=", 0) == 0 &&
        !sbc::signaling::splitMultipart(
            std::string_view(filtered.crossing.contentType).substr(25), filtered.crossing.bytes)) {
      __builtin_trap();
    }
    // A SIP-I offer's path: the body split into its SDP and the parts that cross, rebuilt
    // around a rewritten SDP under a fresh boundary. The rebuilt body must split again into
    // as many parts, each with the bytes it was built from.
    std::string error;
    if (const auto split = sbc::signaling::splitSessionBody(sip, kBodyTypes, error)) {
      const std::string sdp = split->sdp ? "v=0\r\n" : "";
      const sbc::signaling::OutgoingBody out = split->crossing(sdp);
      const std::size_t expected = split->passed.size() + (sdp.empty() ? 0 : 1);
      const std::string prefix = "multipart/mixed;boundary=";
      if (expected > 1) {
        if (out.contentType.rfind(prefix, 0) != 0) __builtin_trap();
        const auto again = sbc::signaling::splitMultipart(
            std::string_view(out.contentType).substr(prefix.size()), out.bytes);
        if (!again || again->size() != expected) __builtin_trap();
        for (std::size_t i = 0; i < split->passed.size(); ++i) {
          if ((*again)[i + (sdp.empty() ? 0 : 1)].content != split->passed[i].content) {
            __builtin_trap();
          }
        }
      } else if (expected == 1 && out.bytes != (sdp.empty() ? split->passed[0].content : sdp)) {
        __builtin_trap();
      }
    }
    static const std::vector<std::string> kNames = {"X-Account-Code", "Subject",
                                                    "P-Asserted-Identity", "Priority"};
    const std::string lines = sbc::signaling::allowedHeaderLines(sip, kNames);
    // Every line is "Name: value\r\n" with nothing else that ends a line.
    for (std::size_t at = 0; at < lines.size();) {
      const std::size_t end = lines.find("\r\n", at);
      if (end == std::string::npos) __builtin_trap();
      const std::string line = lines.substr(at, end - at);
      if (line.find_first_of(std::string("\r\n\0", 3)) != std::string::npos) __builtin_trap();
      at = end + 2;
    }
  }
  msg_destroy(msg);
  return 0;
}
