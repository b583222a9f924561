#include "signaling/nta_refusals.h"

#include <cstdlib>
#include <utility>

#include <sofia-sip/msg_header.h>
#include <sofia-sip/msg_mclass.h>
#include <sofia-sip/sip_util.h>
#include <sofia-sip/su_string.h>

namespace sbc::signaling {

namespace {

thread_local RefusalScreen threadScreen;

// Set on a message once the screen has decided on it: the body extractor may run more
// than once per message (the blank line, then the body). A bit of the user flags Sofia
// leaves free (MSG_FLG_USERMASK; Sofia's own end at bit 6, and bit 15).
constexpr unsigned kScreenedFlag = 1u << 14;

// Whether the message's fate is known after this call of the body extractor: an error, the
// end of the datagram, an empty body, or a body taken (whole, or chunks still to come on a
// stream: nta decides on the headers then too).
bool extractionSettled(const sip_t* sip, issize_t extracted, int eos) {
  constexpr unsigned kSettled =
      MSG_FLG_COMPLETE | MSG_FLG_ERROR | MSG_FLG_TOOLARGE | MSG_FLG_TRUNC | MSG_FLG_FRAGS;
  return extracted < 0 || (eos && extracted == 0) || (sip->sip_flags & kSettled) != 0;
}

issize_t screenedExtractBody(msg_t* msg, msg_pub_t* pub, char b[], isize_t bsiz, int eos) {
  const issize_t extracted = sip_default_mclass()->mc_extract_body(msg, pub, b, bsiz, eos);
  sip_t* sip = reinterpret_cast<sip_t*>(pub);
  if (sip->sip_request == nullptr || !threadScreen) return extracted;  // nta answers no response
  if ((msg_get_flags(msg, kScreenedFlag) & kScreenedFlag) != 0) return extracted;
  if (!extractionSettled(sip, extracted, eos)) return extracted;
  msg_set_flags(msg, kScreenedFlag);
  const int status = ntaOwnRefusal(sip, extracted);
  if (status == 0 || sip->sip_via == nullptr) return extracted;
  if (!threadScreen(msg, sip, status)) {
    msg_header_remove_all(msg, pub, reinterpret_cast<msg_header_t*>(sip->sip_via));
  }
  return extracted;
}

}  // namespace

int ntaOwnRefusal(const sip_t* sip, issize_t extracted) {
  // The order of nta's agent_recv_request: size, then errors and sanity, then version.
  if ((sip->sip_flags & MSG_FLG_TOOLARGE) != 0) return 413;
  if (extracted < 0 || (sip->sip_flags & MSG_FLG_ERROR) != 0 || sip_sanity_check(sip) < 0) {
    // nta answers no ACK: that one is simply dropped.
    return sip->sip_request->rq_method == sip_method_ack ? 0 : 400;
  }
  if (sip->sip_request->rq_version == nullptr ||
      !su_casematch(sip->sip_request->rq_version, sip_version_2_0)) {
    return 505;
  }
  return 0;
}

msg_mclass_t* makeRefusalScreeningClass() {
  msg_mclass_t* mclass = msg_mclass_clone(sip_default_mclass(), 0, 0);
  if (mclass != nullptr) mclass->mc_extract_body = &screenedExtractBody;
  return mclass;
}

void freeRefusalScreeningClass(msg_mclass_t* mclass) { std::free(mclass); }

void setRefusalScreen(RefusalScreen screen) { threadScreen = std::move(screen); }

}  // namespace sbc::signaling
