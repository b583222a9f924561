#include "signaling/call.h"

#include <algorithm>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <strings.h>
#include <random>
#include <utility>

#include "common/log.h"
#include "signaling/body_filter.h"
#include "signaling/header_allow_list.h"
#include "signaling/sip_address.h"

namespace sbc::signaling {
namespace {

// The SDP o= session id of a call: random, so the far side cannot count the SBC's calls
// from it (the call's own number would tell).
std::uint64_t randomSessionId() {
  thread_local std::mt19937_64 generator{std::random_device{}()};
  return generator() >> 2;  // 62 bits: any SDP parser takes it as a decimal number
}

// A relayed response carries the standard phrase for its code, never the peer's: a reason
// phrase is free text and may name the peer's host or product.
const char* phraseOf(int status) {
  if (const char* phrase = sip_status_phrase(status)) return phrase;
  if (const char* phrase = sip_status_phrase(status / 100 * 100)) return phrase;
  return "Unknown";
}

bool sends(SdpDirection direction) {
  return direction == SdpDirection::sendrecv || direction == SdpDirection::sendonly;
}
bool receives(SdpDirection direction) {
  return direction == SdpDirection::sendrecv || direction == SdpDirection::recvonly;
}

bool hasBody(const sip_t* sip) {
  return sip != nullptr && sip->sip_payload != nullptr && sip->sip_payload->pl_len > 0;
}

bool isSdp(const sip_t* sip) {
  return sip->sip_content_type != nullptr && sip->sip_content_type->c_type != nullptr &&
         ::strcasecmp(sip->sip_content_type->c_type, "application/sdp") == 0;
}

// The Max-Forwards of a request (70 when absent, as RFC 3261 8.1.1.6 has senders write),
// capped at 255 so a hostile value stays an ordinary number.
unsigned long hopsLeftIn(const sip_t* sip) {
  if (sip->sip_max_forwards == nullptr) return 70;
  return std::min<unsigned long>(sip->sip_max_forwards->mf_count, 255);
}

// Whether a peer can be refreshed by UPDATE: its Allow lists UPDATE, or it sent no Allow
// (then the first refusal tells).
bool takesUpdate(const sip_t* sip) {
  return sip == nullptr || sip->sip_allow == nullptr ||
         sip_is_allowed(sip->sip_allow, sip_method_update, "UPDATE");
}

// Methods whose body is an SDP offer or answer the SBC anchors.
bool negotiates(sip_method_t method) {
  return method == sip_method_invite || method == sip_method_update;
}

// Whether a body of a request or response of `method` crosses to the other leg as it is:
// only with a Content-Type that names it, and never SDP outside an offer/answer exchange
// the SBC anchors (an OPTIONS answer's capabilities, say): its c= and o= lines name the
// sender's media address.
bool carriesOpaqueBody(sip_method_t method, const sip_t* sip) {
  return !negotiates(method) && hasBody(sip) && sip->sip_content_type != nullptr &&
         sip->sip_content_type->c_type != nullptr && !isSdp(sip);
}

// A body as nta's tags take it (BODY_TAGS below). Its payload is given as a header rather
// than SIPTAG_PAYLOAD_STR, which would stop at the first NUL of a binary ISUP part; Sofia
// copies it into the message it builds, so this one may live on the stack.
class BodyTags {
 public:
  explicit BodyTags(const OutgoingBody& body) : body_(body) {
    sip_payload_init(&payload_);
    payload_.pl_data = const_cast<char*>(body_.bytes.data());  // only read: Sofia copies it
    payload_.pl_len = body_.bytes.size();
  }
  bool present() const { return !body_.empty(); }
  bool disposed() const { return !body_.disposition.empty(); }
  const char* contentType() const { return body_.contentType.c_str(); }
  const char* disposition() const { return body_.disposition.c_str(); }
  const sip_payload_t* payload() const { return &payload_; }

 private:
  const OutgoingBody& body_;
  sip_payload_t payload_;
};

// The tags of a body for nta_*_tcreate/treply: Content-Type, Content-Disposition, payload.
#define BODY_TAGS(tags)                                                      \
  TAG_IF((tags).present(), SIPTAG_CONTENT_TYPE_STR((tags).contentType())),   \
      TAG_IF((tags).disposed(), SIPTAG_CONTENT_DISPOSITION_STR((tags).disposition())), \
      TAG_IF((tags).present(), SIPTAG_PAYLOAD((tags).payload()))

}  // namespace

struct Call::Relay {
  Call* call = nullptr;
  dataplane::Realm from = dataplane::Realm::access;  // where the request came from
  sip_method_t method = sip_method_unknown;
  nta_incoming_t* incoming = nullptr;
  nta_outgoing_t* outgoing = nullptr;
  bool offerInRequest = false;   // the request carried an SDP offer
  bool offerInResponse = false;  // a re-INVITE without SDP: the 2xx offers, the ACK answers
  bool awaitingAck = false;      // a re-INVITE's 2xx was relayed; its ACK is next
  std::string offerSent;         // the SDP offer the SBC sent on, to the other leg
  std::string offerReturned;     // the SDP offer in the 2xx sent back (offerInResponse)
};

struct Call::PrackRelay {
  nta_reliable_t* reliable = nullptr;  // the provisional response as sent to the caller
  std::string forkTag;                 // the callee's early dialog that sent it
  std::uint32_t rseq = 0;              // and its RSeq there
  bool lateOffer = false;              // it carried the late offer: the PRACK answers it
  Call* call = nullptr;
  nta_incoming_t* incoming = nullptr;  // the caller's PRACK, answered once ours is
  nta_outgoing_t* outgoing = nullptr;  // our PRACK to the callee
  bool offerInRequest = false;         // the caller's PRACK offered (its 200 answers)
  std::string offerSent;               // that offer as sent to the callee
};

void CallEnvironment::countRequest(const char* realm, const char* method) const {
  sipSeries->countRequest(realm, method != nullptr ? method : "");
}

void CallEnvironment::countResponse(const char* realm, int code) const {
  sipSeries->countResponse(realm, code);
}

Call::Call(CallEnvironment& environment, std::uint64_t id, std::string trunk,
           std::vector<policy::IpPrefix> trunkPrefixes, policy::CallSlot slot, msg_t* invite,
           sip_t* sip, dataplane::Realm callerRealm, CallRoute route,
           bool trustedTrunk)
    : environment_(environment),
      id_(id),
      sdpSessionId_(randomSessionId()),
      trunk_(std::move(trunk)),
      trunkPrefixes_(std::move(trunkPrefixes)),
      callerRealm_(callerRealm),
      passedHeaders_(environment.settings->headerAllowList),
      series_(environment.callSeries->of(trunk_, directionOf(callerRealm, route.line.has_value()))),
      received_(std::chrono::steady_clock::now()),
      slot_(std::move(slot)),
      route_(std::move(route)) {
  // A trusted trunk shares the core's trust domain (RFC 3325): the asserted identity
  // crosses both ways. Towards or from any other trunk it is removed.
  if (trustedTrunk) passedHeaders_.emplace_back("P-Asserted-Identity");
  // The caller's dialog: our side is the request's To, theirs its From.
  callerLeg_ = nta_leg_tcreate(agentOf(callerRealm_), &Call::onCallerRequest, this,
                               SIPTAG_CALL_ID(sip->sip_call_id), SIPTAG_FROM(sip->sip_to),
                               SIPTAG_TO(sip->sip_from),
                               NTATAG_REMOTE_CSEQ(sip->sip_cseq->cs_seq), TAG_END());
  if (callerLeg_ != nullptr) {
    nta_leg_tag(callerLeg_, nullptr);
    nta_leg_server_route(callerLeg_, sip->sip_record_route, sip->sip_contact);
  }
  callerInvite_ = nta_incoming_create(agentOf(callerRealm_), callerLeg_, invite, sip,
                                      TAG_END());
  if (callerInvite_ == nullptr || callerLeg_ == nullptr || route_.targets.empty()) {
    log::error("call", "cannot create the caller's dialog; call dropped");
    finish(metrics::CallResult::aborted, "internal_error");
    return;
  }
  nta_incoming_tag(callerInvite_, nta_leg_get_tag(callerLeg_));
  nta_incoming_bind(callerInvite_, &Call::onCallerAckOrCancel, this);
  sessionTimers_ = std::make_unique<SessionTimers>(
      environment_.root,
      SessionTimerSettings{environment_.settings->sipTimers.sessionExpiresS,
                           environment_.settings->sipTimers.minSeS,
                           environment_.settings->sipTimers.maxSessionExpiresS},
      callerRealm_, [this](dataplane::Realm leg) { refreshSession(leg); },
      [this](dataplane::Realm leg) { sessionExpired(leg); });
  sessionTimers_->callerOffered(sip);
  refreshByInvite_[static_cast<std::size_t>(callerRealm_)] = !takesUpdate(sip);
  callerTakesReliable_ = sip_has_feature(sip->sip_supported, "100rel") ||
                         sip_has_feature(sip->sip_require, "100rel");

  hopsLeft_ = hopsLeftIn(sip);
  if (hopsLeft_ == 0) {
    replyCaller(483, "Too Many Hops", nullptr);
    finish(metrics::CallResult::refused, "too_many_hops");
    return;
  }

  std::string mediaError;
  // A late offer (no SDP in the INVITE) comes from the callee in its answer and is
  // answered in the caller's ACK; both are anchored then. A SIP-I INVITE's SDP is the
  // application/sdp part of its multipart body; its ISUP part crosses beside the rewritten
  // SDP if sip.body_types lists it, else the call goes on without it. An INVITE whose body
  // has no SDP (an ISUP IAM alone) is a late offer whose body follows the list.
  std::optional<SessionBody> offerBody;
  if (hasBody(sip)) offerBody = sessionBodyOf(callerRealm_, "request", sip, mediaError);
  lateOffer_ = !hasBody(sip) || (offerBody && !offerBody->sdp);
  if (!lateOffer_ && (!offerBody ||
                      !anchorOffer(callerRealm_, *offerBody->sdp, calleeOffer_, mediaError))) {
    log::warning("call", "call ", id_, " (trunk ", trunk_, ", from the ",
                 dataplane::toString(callerRealm_), ") refused: ", mediaError);
    const bool noPorts = mediaError == "no media ports left";
    replyCaller(noPorts ? 503 : 488, noPorts ? "Service Unavailable" : "Not Acceptable Here",
                nullptr);
    finish(metrics::CallResult::refused, noPorts ? "no_media_ports" : "bad_sdp");
    return;
  }
  if (offerBody) {
    countLeftOutParts(callerRealm_, "request", *offerBody);
    calleeInviteBody_ = offerBody->crossing(calleeOffer_);
  }
  // Nothing of the caller's crosses but the dialled and the calling user.
  const char* user = sip->sip_request->rq_url->url_user;
  const char* caller = sip->sip_from->a_url->url_user;
  calledUser_ = user != nullptr ? user : "";
  callingUser_ = caller != nullptr ? caller : "";
  calleeHeaders_ = allowedHeaderLines(sip, passedHeaders_);
  if (route_.line && callerRealm_ == dataplane::Realm::access) rememberLineRequest(sip);
  retryTimer_ = su_timer_create(su_root_task(environment_.root), 0);
  if (retryTimer_ == nullptr || !sendCalleeInvite(nullptr)) {
    replyCaller(500, "Internal Server Error", nullptr);
    finish(metrics::CallResult::aborted, "internal_error");
  }
}

// The Request-URI, From and To of a line's INVITE as the terminal wrote them, and the
// credentials it answered the core's challenge with: they go to the core unchanged.
void Call::rememberLineRequest(const sip_t* sip) {
  auto text = [](const url_t* url) {
    char buffer[1024];
    const isize_t length = url_e(buffer, sizeof buffer, url);
    return length > 0 && static_cast<std::size_t>(length) < sizeof buffer
               ? std::string(buffer, static_cast<std::size_t>(length))
               : std::string();
  };
  lineRequestUri_ = text(sip->sip_request->rq_url);
  lineFrom_ = "<" + text(sip->sip_from->a_url) + ">";
  lineTo_ = "<" + text(sip->sip_to->a_url) + ">";
  const auto credentialLines = [&](const msg_auth_t* auth) {
    for (; auth != nullptr; auth = auth->au_next) {
      char buffer[4096];
      const isize_t length =
          msg_header_e(buffer, sizeof buffer, reinterpret_cast<const msg_header_t*>(auth), 0);
      if (length > 0 && static_cast<std::size_t>(length) < sizeof buffer) {
        lineCredentials_.append(buffer, static_cast<std::size_t>(length));
      }
    }
  };
  credentialLines(sip->sip_authorization);
  credentialLines(sip->sip_proxy_authorization);
}

metrics::CallDirection Call::directionOf(dataplane::Realm callerRealm, bool line) {
  if (line) {
    return callerRealm == dataplane::Realm::access ? metrics::CallDirection::fromLine
                                                   : metrics::CallDirection::toLine;
  }
  return callerRealm == dataplane::Realm::access ? metrics::CallDirection::fromTrunk
                                                 : metrics::CallDirection::toTrunk;
}

const url_string_t* Call::routeOf(const nta_leg_t* leg) const {
  if (!route_.line || leg == nullptr) return nullptr;
  const bool terminalLeg = callerRealm_ == dataplane::Realm::access ? leg == callerLeg_
                                                                     : leg != callerLeg_;
  return terminalLeg ? URL_STRING_MAKE(route_.line->terminalRoute.c_str()) : nullptr;
}

bool Call::sendCalleeInvite(const msg_header_t* credentials) {
  // The callee's dialog, built from nothing of the caller's but the dialled user: new
  // Call-ID (nta makes one), tags, Via, Contact; From and To at the SBC's and the target's
  // addresses. Credentials go to the same hop on the same dialog (CSeq + 1).
  const auto& hop = route_.targets[hop_];
  const auto& ours = (calleeRealm() == dataplane::Realm::core ? environment_.settings->core
                                                              : environment_.settings->access)
                         .sip.front();
  const std::string userPart = calledUser_.empty() ? "" : calledUser_ + "@";
  const std::string hopUri = sipUrl(hop.host, hop.port, config::toString(hop.transport));
  calleeRequestUri_ = "sip:" + userPart + hopUri.substr(4);
  std::string from = "<sip:" + (callingUser_.empty() ? "" : callingUser_ + "@") +
                     hostForUri(ours.address) + ">";
  std::string to = "<sip:" + userPart + hostForUri(hop.host) + ">";
  // Where nta sends the INVITE when its Request-URI is not the hop itself.
  std::string routeUrl;
  if (route_.line && callerRealm_ == dataplane::Realm::access) {
    // A line's call keeps the Request-URI, From and To its terminal wrote (the core knows
    // the line by them, and its digest challenge covers the Request-URI): the terminal's
    // credentials, relayed, must verify at the core.
    calleeRequestUri_ = lineRequestUri_;
    from = lineFrom_;
    to = lineTo_;
    routeUrl = hopUri;
  } else if (route_.line) {
    // A call to a line: to its terminal's Contact, through the terminal's NAT binding.
    calleeRequestUri_ = route_.line->contact;
    to = "<sip:" + route_.line->aor + ">";
    routeUrl = route_.line->terminalRoute;
  }
  if (calleeLeg_ == nullptr) {
    calleeLeg_ = nta_leg_tcreate(agentOf(calleeRealm()), &Call::onCalleeRequest, this,
                                 SIPTAG_FROM_STR(from.c_str()), SIPTAG_TO_STR(to.c_str()),
                                 TAG_END());
    if (calleeLeg_ == nullptr) return false;
    nta_leg_tag(calleeLeg_, nullptr);
  }
  const std::string maxForwards = std::to_string(hopsLeft_ - 1);
  const std::string sessionExpires = sessionTimers_->calleeSessionExpires();
  const std::string minSe = sessionTimers_->minSe();
  const bool timers = !sessionExpires.empty();
  // 100rel is announced to the callee unless the callee could then offer in a reliable
  // provisional response that nobody can answer: a late offer from a caller without 100rel
  // has its answer only in the ACK, and a PRACK acknowledging an offer must carry the answer
  // (RFC 3262 5). Such a callee sends its provisional responses unreliably and offers in the
  // 200. With an offer in the INVITE a reliable provisional response carries the answer,
  // which the SBC's own PRACK may acknowledge without a body.
  const bool announceReliable = callerTakesReliable_ || !lateOffer_;
  calleeInvite_ = nullptr;  // a response reported from inside tcreate sets it
  const BodyTags body(calleeInviteBody_);
  nta_outgoing_t* invite = nta_outgoing_tcreate(
      calleeLeg_, &Call::onCalleeResponse, this,
      routeUrl.empty() ? nullptr : URL_STRING_MAKE(routeUrl.c_str()), SIP_METHOD_INVITE,
      URL_STRING_MAKE(calleeRequestUri_.c_str()),
      SIPTAG_CONTACT(nta_agent_contact(agentOf(calleeRealm()))),
      SIPTAG_MAX_FORWARDS_STR(maxForwards.c_str()), NTATAG_REL100(announceReliable),
      TAG_IF(!calleeHeaders_.empty(), SIPTAG_HEADER_STR(calleeHeaders_.c_str())),
      TAG_IF(timers, SIPTAG_SUPPORTED_STR("timer")),
      TAG_IF(timers, SIPTAG_SESSION_EXPIRES_STR(sessionExpires.c_str())),
      TAG_IF(timers, SIPTAG_MIN_SE_STR(minSe.c_str())),
      TAG_IF(credentials != nullptr,
             SIPTAG_HEADER(reinterpret_cast<const sip_header_t*>(credentials))),
      TAG_IF(!lineCredentials_.empty(), SIPTAG_HEADER_STR(lineCredentials_.c_str())),
      BODY_TAGS(body), TAG_END());
  if (invite == nullptr) return false;
  calleeInvite_ = invite;
  sdpSentOn_[static_cast<std::size_t>(calleeRealm())] = calleeOffer_;
  if (route_.silentHopTimeoutMs > 0 && hop_ + 1 < route_.targets.size() &&
      retry_ == Retry::none) {
    scheduleRetry(Retry::nextHop, route_.silentHopTimeoutMs);
  }
  return true;
}

void Call::scheduleRetry(Retry retry, std::uint32_t delayMs) {
  retry_ = retry;
  su_timer_set_interval(retryTimer_, &Call::onRetryTimer, this, delayMs);
}

void Call::onRetryTimer(void*, su_timer_t*, void* arg) { static_cast<Call*>(arg)->retry(); }

void Call::retry() {
  const Retry retry = std::exchange(retry_, Retry::none);
  if (retry == Retry::releaseInvite) {
    // 64*T1 after our ACK the callee has stopped retransmitting its 2xx (RFC 3261 13.3.1.4),
    // so the INVITE transaction (our INVITE and the 2xx, a few KiB) is no longer needed for
    // the rest of a call that may last hours.
    // A forking callee's other INVITE transactions (the INVITE as sent, the ones narrowed
    // to losing forks) go with it: their forks have been ended and acknowledged by now.
    if (state_ == State::confirmed && calleeInvite_ != nullptr) {
      for (auto& fork : forks_) {
        if (fork.invite != nullptr && fork.invite != calleeInvite_) {
          nta_outgoing_destroy(fork.invite);
        }
        fork.invite = nullptr;
      }
      if (calleeUntagged_ != nullptr && calleeUntagged_ != calleeInvite_) {
        nta_outgoing_destroy(calleeUntagged_);
      }
      calleeUntagged_ = nullptr;
      nta_outgoing_destroy(calleeInvite_);
      calleeInvite_ = nullptr;
    }
    return;
  }
  if (calleeInvite_ == nullptr || (state_ != State::calling && state_ != State::early)) return;
  const int status = nta_outgoing_status(calleeInvite_);
  if (retry == Retry::nextHop) {
    // A silent hop is passed over only if it sent nothing at all; one that is trying (100)
    // or ringing keeps the call.
    if (state_ != State::calling || (status >= 100 && status < 200)) return;
    const auto& failed = route_.targets[hop_];
    log::warning("call", "call ", id_, ": next hop ", failed.host, ":", failed.port, " ",
                 status == 0 ? "did not answer" : "failed with " + std::to_string(status),
                 "; trying the next one");
    // Nothing was received from a silent hop, so there is nothing to CANCEL (RFC 3261 9.1).
    nta_outgoing_destroy(calleeInvite_);
    calleeInvite_ = nullptr;
    nta_leg_destroy(calleeLeg_);
    calleeLeg_ = nullptr;
    ++hop_;
    challengesAnswered_ = 0;
    if (authHome_ != nullptr) su_home_unref(authHome_);
    authHome_ = nullptr;
    authClient_ = nullptr;
  } else if (retry == Retry::withCredentials || retry == Retry::longerInterval) {
    if (!forgetEarlyDialogs()) {
      replyCaller(500, "Internal Server Error", nullptr);
      finish(metrics::CallResult::aborted, "internal_error");
      return;
    }
  } else {
    return;
  }
  const msg_header_t* credentials = std::exchange(pendingCredentials_, nullptr);
  if (!sendCalleeInvite(retry == Retry::withCredentials ? credentials : nullptr)) {
    replyCaller(500, "Internal Server Error", nullptr);
    finish(metrics::CallResult::aborted, "internal_error");
  }
}

bool Call::forgetEarlyDialogs() {
  if (forks_.empty() && calleeUntagged_ == nullptr) {
    nta_outgoing_destroy(calleeInvite_);
    calleeInvite_ = nullptr;
    return true;
  }
  // The final response ended every early dialog of the INVITE (RFC 3261 13.2.2.3): their
  // legs, their narrowed INVITEs and their PRACK state go. The new INVITE is a new
  // transaction outside any dialog: same Call-ID and From tag, no To tag, a CSeq above
  // every request sent so far (the PRACKs included), as RFC 3261 22.2 and RFC 4028 6 have
  // the retry written.
  nta_outgoing_t* asSent = calleeUntagged_ != nullptr ? calleeUntagged_ : calleeInvite_;
  msg_t* request = nta_outgoing_getrequest(asSent);
  const sip_t* invite = sip_object(request);
  std::uint32_t sequence = nta_leg_get_seq(calleeLeg_);
  for (const auto& fork : forks_) {
    sequence = std::max(sequence, nta_leg_get_seq(fork.leg));
    if (fork.invite != nullptr && fork.invite != calleeInvite_ && fork.invite != asSent) {
      nta_outgoing_destroy(fork.invite);
    }
    if (fork.leg != calleeLeg_) nta_leg_destroy(fork.leg);
  }
  forks_.clear();
  if (calleeInvite_ != asSent) nta_outgoing_destroy(calleeInvite_);
  nta_outgoing_destroy(asSent);
  calleeInvite_ = nullptr;
  calleeUntagged_ = nullptr;
  nta_leg_destroy(calleeLeg_);
  calleeLeg_ = nullptr;
  if (invite != nullptr && invite->sip_call_id != nullptr && invite->sip_from != nullptr &&
      invite->sip_to != nullptr) {
    const std::string cseq = std::to_string(sequence) + " INVITE";
    calleeLeg_ = nta_leg_tcreate(agentOf(calleeRealm()), &Call::onCalleeRequest, this,
                                 SIPTAG_CALL_ID(invite->sip_call_id),
                                 SIPTAG_FROM(invite->sip_from), SIPTAG_TO(invite->sip_to),
                                 SIPTAG_CSEQ_STR(cseq.c_str()), TAG_END());
  }
  if (request != nullptr) msg_destroy(request);
  return calleeLeg_ != nullptr;
}

bool Call::mayTryNextHop(int status) const {
  // Only a hop that never took the call (no provisional beyond 100) is passed over.
  return (status == 503 || status == 408) && state_ == State::calling &&
         hop_ + 1 < route_.targets.size();
}

bool Call::prepareCredentials(int status, const sip_t* sip) {
  // A trunk that keeps saying stale=true would otherwise keep the call in a loop.
  constexpr unsigned kMaxChallengeAnswers = 3;
  if (!route_.credentials || sip == nullptr || challengesAnswered_ >= kMaxChallengeAnswers) {
    return false;
  }
  const msg_auth_t* challenge =
      status == 401 ? sip->sip_www_authenticate : sip->sip_proxy_authenticate;
  msg_hclass_t* credentialClass =
      status == 401 ? sip_authorization_class : sip_proxy_authorization_class;
  if (challenge == nullptr) return false;
  if (authHome_ == nullptr) authHome_ = static_cast<su_home_t*>(su_home_new(sizeof(su_home_t)));
  if (authHome_ == nullptr) return false;
  // auc_challenge reports 0 when it only repeats a challenge already answered (same realm,
  // not stale): the trunk refused the credentials, and sending them again would loop.
  const int updated = auc_challenge(&authClient_, authHome_, challenge, credentialClass);
  if (updated < 0) return false;
  if (challengesAnswered_ > 0 && updated == 0) {
    log::warning("call", "call ", id_, ": the trunk refused the configured credentials (",
                 status, " again, not stale)");
    return false;
  }
  const auto& credentials = *route_.credentials;
  // The challenge's realm is kept quoted, as it appears in the header.
  const std::string realm = "\"" + credentials.realm + "\"";
  // A stale nonce keeps the credentials already given (the client reports none new).
  const int given = auc_all_credentials(&authClient_, "Digest",
                                        credentials.realm.empty() ? nullptr : realm.c_str(),
                                        credentials.username.c_str(),
                                        credentials.password.c_str());
  if (given < 0 || (given == 0 && challengesAnswered_ == 0)) {
    log::warning("call", "call ", id_, ": the trunk's challenge names a realm its configured "
                 "credentials are not for");
    return false;
  }
  url_t* uri = url_make(authHome_, calleeRequestUri_.c_str());
  sip_payload_t* body = calleeInviteBody_.empty()
                            ? nullptr
                            : sip_payload_create(authHome_, calleeInviteBody_.bytes.data(),
                                                 calleeInviteBody_.bytes.size());
  msg_header_t* headers = nullptr;
  if (uri == nullptr ||
      auc_authorization_headers(&authClient_, authHome_, "INVITE", uri, body, &headers) <= 0 ||
      headers == nullptr) {
    return false;
  }
  pendingCredentials_ = headers;
  ++challengesAnswered_;
  return true;
}

Call::~Call() {
  // Nothing of nta may call back into a destroyed call: every relayed transaction is
  // answered (if still pending) and destroyed first.
  stopSessionTimers();
  dropRelays();
  dropPracks();
  releaseMedia();
  if (callerInvite_ != nullptr) nta_incoming_destroy(callerInvite_);
  for (const auto& fork : forks_) {
    if (fork.invite != nullptr && fork.invite != calleeInvite_) nta_outgoing_destroy(fork.invite);
    if (fork.leg != calleeLeg_) nta_leg_destroy(fork.leg);
  }
  if (calleeUntagged_ != nullptr && calleeUntagged_ != calleeInvite_) {
    nta_outgoing_destroy(calleeUntagged_);
  }
  if (calleeInvite_ != nullptr) nta_outgoing_destroy(calleeInvite_);
  if (callerLeg_ != nullptr) nta_leg_destroy(callerLeg_);
  if (calleeLeg_ != nullptr) nta_leg_destroy(calleeLeg_);
  if (retryTimer_ != nullptr) su_timer_destroy(retryTimer_);
  if (cancelledTimer_ != nullptr) su_timer_destroy(cancelledTimer_);
  if (authHome_ != nullptr) su_home_unref(authHome_);
}

Call::CallerReply Call::replyCaller(int status, const char* phrase, const sip_t* response,
                                   bool reliable) {
  CallerReply reply;
  if (callerInvite_ == nullptr || nta_incoming_status(callerInvite_) >= 200) return reply;
  // A response carrying the callee's SDP is anchored and rewritten for the trunk first.
  OutgoingBody body;
  std::string answerSdp;
  bool unusableAnswer = false;
  if (response != nullptr && status > 100 && status < 300 && hasBody(response)) {
    const bool provisional = status < 200;
    std::string error;
    const auto split = sessionBodyOf(calleeRealm(), "response", response, error);
    // A provisional response need not carry SDP (a 180 with a presence document, a SIP-I
    // ACM alone), nor a 2xx whose answer came in a provisional response already: a body
    // without SDP follows sip.body_types there (a part not listed is left out). A 2xx that
    // must answer or offer still must, and SDP that is there must be usable.
    const bool answeredEarly =
        (!lateOffer_ || lateOfferAnswered_) &&
        described_[static_cast<std::size_t>(calleeRealm())].has_value();
    if (split && !split->sdp && (provisional || answeredEarly)) {
      countLeftOutParts(calleeRealm(), "response", *split);
      body = split->crossing("");
    } else if (split || !provisional) {
      if (split && !split->sdp) error = "the body has no application/sdp";
      // A late offer the caller answered in its PRACK is complete: SDP in a later response
      // repeats it (RFC 6337 3.1.1) and reaches the caller as the SBC sent it the first time.
      // So does another fork's offer: the SBC answers that one itself (foreignOffer).
      const bool repeatedOffer = lateOffer_ && (lateOfferAnswered_ || foreignOffer(response));
      if (repeatedOffer) answerSdp = sdpSentOn_[static_cast<std::size_t>(callerRealm_)];
      const bool anchored =
          split && split->sdp &&
          (repeatedOffer ? !answerSdp.empty()
           : lateOffer_  ? anchorOffer(calleeRealm(), *split->sdp, answerSdp, error)
                         : anchorAnswer(calleeRealm(), *split->sdp, answerSdp, error));
      reply.lateOffer = anchored && lateOffer_ && !repeatedOffer;
      if (anchored) {
        countLeftOutParts(calleeRealm(), "response", *split);
        body = split->crossing(answerSdp);
      } else {
        unusableAnswer = true;
        log::warning("call", "call ", id_, ": unusable SDP from the ",
                     dataplane::toString(calleeRealm()), ": ", error);
        status = 502;
        phrase = "Bad Gateway";
        answerSdp.clear();
        if (calleeInvite_ != nullptr && nta_outgoing_status(calleeInvite_) < 200) {
          nta_outgoing_cancel(calleeInvite_);
        } else {
          // A 2xx is acknowledged before its dialog is ended (RFC 3261 13.2.2.4): the
          // caller, who hears 502, will send no ACK that would carry it.
          if (calleeInvite_ != nullptr) sendAck(calleeLeg_, calleeInvite_, OutgoingBody());
          sendBye(calleeLeg_);
        }
      }
    }
    // else: a provisional response's multipart body that cannot be split (counted) crosses
    // without its body, as any body of a provisional response that cannot cross.
  }
  environment_.countResponse(dataplane::toString(callerRealm_), status);
  if (!answerSdp.empty()) sdpSentOn_[static_cast<std::size_t>(callerRealm_)] = answerSdp;
  const BodyTags bodyTags(body);
  const bool dialogue = status > 100 && status < 300;
  const bool relayed = response != nullptr && response->sip_status != nullptr &&
                       response->sip_status->st_status == status;
  const std::string passed = relayed ? allowedHeaderLines(response, passedHeaders_) : "";
  const std::uint32_t retryAfterS = environment_.settings->refusals.retryAfterS;
  const std::string retryAfter = std::to_string(retryAfterS);
  std::string sessionExpires;
  if (status >= 200 && status < 300 && sessionTimers_ != nullptr) {
    sessionTimers_->callerAnswered();
    sessionExpires = sessionTimers_->sessionExpires(callerRealm_, false);
  }
  const bool timers = !sessionExpires.empty();
  sip_contact_t* contact = dialogue ? nta_agent_contact(agentOf(callerRealm_)) : nullptr;
  // Reliability is per leg (RFC 3262): a provisional response the callee sent reliably is
  // sent reliably to a caller that supports it; nta retransmits it until PRACKed and holds
  // the final response back until then.
  if (reliable && callerTakesReliable_ && status > 100 && status < 200) {
    reply.reliable = nta_reliable_treply(
        callerInvite_, &Call::onCallerPrack, this, status, phrase, SIPTAG_CONTACT(contact),
        TAG_IF(!passed.empty(), SIPTAG_HEADER_STR(passed.c_str())), BODY_TAGS(bodyTags),
        TAG_END());
    if (reply.reliable != nullptr) return reply;
    // nta refused to send it reliably: it goes as an ordinary provisional response.
  }
  nta_incoming_treply(callerInvite_, status, phrase, TAG_IF(dialogue, SIPTAG_CONTACT(contact)),
                      TAG_IF(!passed.empty(), SIPTAG_HEADER_STR(passed.c_str())),
                      TAG_IF(timers, SIPTAG_SUPPORTED_STR("timer")),
                      TAG_IF(timers, SIPTAG_SESSION_EXPIRES_STR(sessionExpires.c_str())),
                      TAG_IF(timers && sessionTimers_->callerRefreshes(), SIPTAG_REQUIRE_STR("timer")),
                      BODY_TAGS(bodyTags),
                      TAG_IF(status == 503 && retryAfterS > 0,
                             SIPTAG_RETRY_AFTER_STR(retryAfter.c_str())),
                      TAG_END());
  if (status >= 200) observeSetup();
  if (unusableAnswer) finish(metrics::CallResult::aborted, "bad_sdp_answer");
  return reply;
}

void Call::replyCallerChallenge(int status, const sip_t* challenge) {
  if (callerInvite_ == nullptr || nta_incoming_status(callerInvite_) >= 200) return;
  environment_.countResponse(dataplane::toString(callerRealm_), status);
  nta_incoming_treply(callerInvite_, status, phraseOf(status),
                      SIPTAG_WWW_AUTHENTICATE(challenge->sip_www_authenticate),
                      SIPTAG_PROXY_AUTHENTICATE(challenge->sip_proxy_authenticate), TAG_END());
  observeSetup();
}

bool Call::anchorOffer(dataplane::Realm offerer, std::string_view sdp, std::string& rewritten,
                       std::string& error) {
  const dataplane::Realm answerer = dataplane::otherRealm(offerer);
  auto parsed = ParsedSdp::parse(sdp, error);
  if (!parsed) return false;
  auto& description = parsed->description();
  // A late offer may come again in a later response of the same INVITE: the streams it
  // opened the first time are kept if the m= lines still match.
  const bool reuse = !streams_.empty() && streams_.size() == description.streams.size();
  if (!reuse) releaseMedia();
  if (!reuse) streams_.clear();
  std::vector<std::uint16_t> answererPorts;
  for (std::size_t i = 0; i < description.streams.size(); ++i) {
    const auto& stream = description.streams[i];
    if (!reuse) streams_.emplace_back(std::nullopt);
    if (stream.rejected) {
      answererPorts.push_back(0);
      continue;
    }
    if (!streams_[i]) {
      auto endpoints = environment_.relay->openStream(trunk_);
      if (!endpoints) {
        error = "no media ports left";
        return false;
      }
      environment_.streamOpened(endpoints->id, id_);
      streams_[i] = endpoints;
    }
    dataplane::LegMedia leg = legMedia(offerer, stream, stream);
    leg.rtcpMux = false;
    leg.silenceExpected = !sends(stream.direction);
    environment_.relay->updateLeg(streams_[i]->id, offerer, leg);
    answererPorts.push_back(streams_[i]->rtp[static_cast<std::size_t>(answerer)].port);
  }
  auto forAnswerer = parsed->rewrite(mediaOf(answerer), answererPorts, sdpSessionId_,
                                     reuse ? ++sdpVersion_ : sdpVersion_, error);
  if (!forAnswerer) return false;
  offer_ = std::move(description);
  rewritten = std::move(*forAnswerer);
  return true;
}

bool Call::anchorAnswer(dataplane::Realm answerer, std::string_view sdp,
                        std::string& rewritten, std::string& error) {
  const dataplane::Realm offerer = dataplane::otherRealm(answerer);
  auto parsed = ParsedSdp::parse(sdp, error);
  if (!parsed) return false;
  const SdpDescription* answer = &parsed->description();
  if (!offer_ || answer->streams.size() != streams_.size()) {
    error = "the answer's m= lines do not match the offer's";
    return false;
  }
  std::vector<std::uint16_t> offererPorts;
  for (std::size_t i = 0; i < streams_.size(); ++i) {
    const auto& stream = answer->streams[i];
    if (!streams_[i] || stream.rejected) {
      offererPorts.push_back(0);
      continue;
    }
    const auto& offered = offer_->streams[i];
    const auto id = streams_[i]->id;
    // Each side's media comes from where its SDP says (a media server may not be the
    // signalling next hop); a trunk's from its prefixes.
    environment_.relay->updateLeg(id, answerer, legMedia(answerer, stream, offered));
    environment_.relay->updateLeg(id, offerer, legMedia(offerer, offered, stream));
    offererPorts.push_back(streams_[i]->rtp[static_cast<std::size_t>(offerer)].port);
  }
  auto forOfferer =
      parsed->rewrite(mediaOf(offerer), offererPorts, sdpSessionId_, ++sdpVersion_, error);
  if (!forOfferer) return false;
  rewritten = std::move(*forOfferer);
  described_[static_cast<std::size_t>(offerer)] = *offer_;
  described_[static_cast<std::size_t>(answerer)] = std::move(parsed->description());
  return true;
}

dataplane::LegMedia Call::legMedia(dataplane::Realm realm, const SdpStream& own,
                                   const SdpStream& other) const {
  dataplane::LegMedia leg;
  if (!own.rejected) {
    leg.rtp = own.rtp;
    leg.rtcp = own.rtcp;
  }
  leg.rtcpMux = own.rtcpMux && other.rtcpMux;
  if (realm == dataplane::Realm::access && route_.line) {
    // A terminal behind NAT: its SDP names its private address; its media is learnt from
    // its first packets, accepted only from the address it signals from.
    const auto& terminal = route_.line->terminal;
    leg.allowedSources = {policy::IpPrefix{
        terminal, static_cast<std::uint8_t>(terminal.family == policy::IpFamily::v4 ? 32 : 128)}};
    leg.latch = true;
  } else if (realm == dataplane::Realm::access) {
    leg.allowedSources = trunkPrefixes_;
  } else if (own.rtp) {
    const auto& address = own.rtp->address;
    leg.allowedSources = {policy::IpPrefix{
        address, static_cast<std::uint8_t>(address.family == policy::IpFamily::v4 ? 32 : 128)}};
  }
  leg.silenceExpected = own.rejected || !(sends(own.direction) && receives(other.direction));
  return leg;
}

void Call::programStreams(const SdpDescription& access, const SdpDescription& core) {
  for (std::size_t i = 0; i < streams_.size(); ++i) {
    if (!streams_[i] || i >= access.streams.size() || i >= core.streams.size()) continue;
    environment_.relay->updateLeg(
        streams_[i]->id, dataplane::Realm::access,
        legMedia(dataplane::Realm::access, access.streams[i], core.streams[i]));
    environment_.relay->updateLeg(
        streams_[i]->id, dataplane::Realm::core,
        legMedia(dataplane::Realm::core, core.streams[i], access.streams[i]));
  }
}

void Call::closeStreamsOfPendingOffer() {
  for (const std::size_t i : streamsOfPendingOffer_) {
    if (i < streams_.size()) closeStream(streams_[i]);
  }
  streamsOfPendingOffer_.clear();
  // The m= lines the last completed exchange knew are all the call has.
  const auto& described = described_[static_cast<std::size_t>(dataplane::Realm::access)];
  if (described && streams_.size() > described->streams.size()) {
    streams_.resize(described->streams.size());
  }
}

void Call::restoreMedia() {
  closeStreamsOfPendingOffer();
  pendingOffer_.reset();
  const auto& access = described_[static_cast<std::size_t>(dataplane::Realm::access)];
  const auto& core = described_[static_cast<std::size_t>(dataplane::Realm::core)];
  if (access && core && state_ != State::over) programStreams(*access, *core);
}

bool Call::reoffer(dataplane::Realm from, std::string_view sdp, std::string& rewritten,
                   std::string& error) {
  const dataplane::Realm to = dataplane::otherRealm(from);
  const auto& previous = described_[static_cast<std::size_t>(to)];
  if (!previous || !described_[static_cast<std::size_t>(from)]) {
    error = "no completed offer/answer to renegotiate";
    return false;
  }
  auto parsed = ParsedSdp::parse(sdp, error);
  if (!parsed) return false;
  SdpDescription* offer = &parsed->description();
  if (offer->streams.size() < streams_.size()) {
    // RFC 3264 8: a new offer keeps every m= line; a stream ends by port 0, not removal.
    error = "the offer drops m= lines";
    return false;
  }
  // Streams added at the end, or a rejected m= line taken up again, get relay endpoints
  // of their own; they are closed again if the exchange fails.
  streams_.resize(offer->streams.size());
  for (std::size_t i = 0; i < streams_.size(); ++i) {
    if (streams_[i] || offer->streams[i].rejected) continue;
    auto endpoints = environment_.relay->openStream(trunk_);
    if (!endpoints) {
      closeStreamsOfPendingOffer();
      error = "no media ports left";
      return false;
    }
    environment_.streamOpened(endpoints->id, id_);
    streams_[i] = endpoints;
    streamsOfPendingOffer_.push_back(i);
  }
  std::vector<std::uint16_t> ports;
  for (std::size_t i = 0; i < streams_.size(); ++i) {
    const bool open = streams_[i] && !offer->streams[i].rejected;
    ports.push_back(open ? streams_[i]->rtp[static_cast<std::size_t>(to)].port : 0);
  }
  auto forOther = parsed->rewrite(mediaOf(to), ports, sdpSessionId_, ++sdpVersion_, error);
  if (!forOther) {
    closeStreamsOfPendingOffer();
    return false;
  }
  // The offerer's side moves now (new address, hold); the answer settles both sides. A new
  // stream has no earlier answer: until the answer, its offer alone describes it.
  for (std::size_t i = 0; i < streams_.size(); ++i) {
    if (!streams_[i]) continue;
    const auto& offered = offer->streams[i];
    const bool known = i < previous->streams.size();
    auto leg = legMedia(from, offered, known ? previous->streams[i] : offered);
    if (!known) leg.rtcpMux = false;
    environment_.relay->updateLeg(streams_[i]->id, from, leg);
  }
  pendingOffer_ = std::move(*offer);
  pendingOfferFrom_ = from;
  rewritten = std::move(*forOther);
  return true;
}

bool Call::reanswer(dataplane::Realm from, std::string_view sdp, std::string& rewritten,
                    std::string& error) {
  const dataplane::Realm offerer = dataplane::otherRealm(from);
  if (!pendingOffer_ || pendingOfferFrom_ != offerer) {
    error = "an answer without an offer";
    return false;
  }
  auto parsed = ParsedSdp::parse(sdp, error);
  if (!parsed) return false;
  SdpDescription* answer = &parsed->description();
  if (answer->streams.size() != streams_.size()) {
    error = "the answer's m= lines do not match the offer's";
    return false;
  }
  std::vector<std::uint16_t> ports;
  for (std::size_t i = 0; i < streams_.size(); ++i) {
    const bool open = streams_[i] && !answer->streams[i].rejected;
    ports.push_back(open ? streams_[i]->rtp[static_cast<std::size_t>(offerer)].port : 0);
  }
  auto forOfferer = parsed->rewrite(mediaOf(offerer), ports, sdpSessionId_, ++sdpVersion_, error);
  if (!forOfferer) return false;
  auto& access = described_[static_cast<std::size_t>(dataplane::Realm::access)];
  auto& core = described_[static_cast<std::size_t>(dataplane::Realm::core)];
  if (from == dataplane::Realm::access) {
    access = std::move(*answer);
    core = std::move(*pendingOffer_);
  } else {
    core = std::move(*answer);
    access = std::move(*pendingOffer_);
  }
  pendingOffer_.reset();
  // A stream the answer refuses (port 0) needs no relay endpoints.
  for (const std::size_t i : streamsOfPendingOffer_) {
    if (i < streams_.size() && (access->streams[i].rejected || core->streams[i].rejected)) {
      closeStream(streams_[i]);
    }
  }
  streamsOfPendingOffer_.clear();
  programStreams(*access, *core);
  rewritten = std::move(*forOfferer);
  return true;
}

void Call::closeStream(std::optional<dataplane::StreamEndpoints>& stream) {
  if (!stream) return;
  environment_.relay->closeStream(stream->id);
  environment_.streamClosed(stream->id);
  stream.reset();
}

void Call::releaseMedia() {
  for (auto& stream : streams_) closeStream(stream);
}

int Call::onCalleeResponse(void* magic, nta_outgoing_t* request, const sip_t* sip) {
  Call& call = *static_cast<Call*>(magic);
  if (call.calleeInvite_ == nullptr) call.calleeInvite_ = request;  // from inside tcreate
  if (!call.isCalleeInvite(request)) return 0;  // a transaction already given up
  const int status = nta_outgoing_status(request);
  if (status < 200) {
    if (status <= 100 || call.state_ == State::over) return 0;
    const bool reliable = sip != nullptr && sip->sip_rseq != nullptr &&
                          sip_has_feature(sip->sip_require, "100rel");
    EarlyFork* fork = reliable ? call.reliableFork(sip) : nullptr;
    if (reliable && fork == nullptr) return 0;
    const std::uint32_t rseq = reliable ? sip->sip_rseq->rs_response : 0;
    // Another fork's own offer is the SBC's to answer in the PRACK, now or once the
    // caller's answer to the offer it has comes. Once answered, SDP in that fork's later
    // reliable responses repeats its offer, and its PRACKs carry none.
    const bool foreign = reliable && !fork->answered && call.foreignOffer(sip);
    if (foreign) {
      fork->offerSdp = call.sdpIn(sip);
      if (!call.lateOfferAnswered_) {
        fork->owedPrack = rseq;
      } else if (!call.answerForkInPrack(*fork, rseq, sip)) {
        return 0;
      }
    }
    // A caller without 100rel cannot PRACK (nor one nta cannot send this one reliably
    // to): the SBC does at once, without a body.
    const bool endToEnd = reliable && !foreign && call.callerTakesReliable_;
    if (reliable && !foreign && !endToEnd && call.offersUnanswerably(sip)) {
      call.refuseUnanswerableOffer(status);
      return 0;
    }
    if (reliable && !foreign && !endToEnd && !call.prackCalleeNow(*fork, rseq, sip)) return 0;
    if (call.state_ == State::calling) call.state_ = State::early;
    const std::string forkTag = reliable ? fork->tag : std::string();
    const CallerReply reply = call.replyCaller(status, phraseOf(status), sip, endToEnd);
    if (reply.lateOffer && reply.reliable != nullptr) call.offerFork_ = forkTag;
    if (!endToEnd || call.state_ == State::over) return 0;
    fork = call.forkOf(forkTag.c_str());
    if (fork == nullptr) return 0;
    if (reply.reliable == nullptr) {
      // nta could not send it reliably after all.
      if (call.offersUnanswerably(sip)) {
        call.refuseUnanswerableOffer(status);
      } else {
        call.prackCalleeNow(*fork, rseq, sip);
      }
      return 0;
    }
    auto prack = std::make_unique<PrackRelay>();
    prack->call = &call;
    prack->reliable = reply.reliable;
    prack->forkTag = forkTag;
    prack->rseq = rseq;
    prack->lateOffer = reply.lateOffer;
    call.pracks_.push_back(std::move(prack));
    return 0;
  }
  if (status < 300) {
    if (sip == nullptr || sip->sip_to == nullptr || sip->sip_to->a_tag == nullptr) return 0;
    EarlyFork* fork = call.openFork(sip, false);
    if (fork == nullptr) return 0;
    if (call.wasAnswered()) {
      // Another fork answering after the first answer (one nta did not take care of): its
      // dialog is acknowledged and ended at once.
      if (fork->leg != call.calleeLeg_) {
        call.sendAck(fork->leg, request);
        call.sendBye(fork->leg);
      }
      return 0;
    }
    if (call.state_ == State::over) {
      // Answered after the caller gave up: acknowledge and hang up at once.
      call.sendAck(fork->leg, request);
      call.sendBye(fork->leg);
      call.environment_.ended(call.id_);
      return 0;
    }
    // The answered fork is the callee's dialog from now on; the INVITE that got the answer
    // stands for it (its ACK, its status).
    call.calleeLeg_ = fork->leg;
    call.calleeInvite_ = request;
    call.state_ = State::answered;
    call.refreshByInvite_[static_cast<std::size_t>(call.calleeRealm())] = !takesUpdate(sip);
    call.sessionTimers_->calleeAnswered(sip);
    if (call.fromForeignFork(sip)) {
      // A fork whose offer the caller never saw won: it is answered from the caller's
      // answer, now or once that comes in the caller's PRACK (relayPrack).
      if (fork->offerSdp.empty()) fork->offerSdp = call.sdpIn(sip);
      call.winnerToAdopt_ = true;
      if (call.lateOfferAnswered_ && !call.adoptWinningOffer()) {
        call.refuseWinningOffer();
        return 0;
      }
    }
    call.replyCaller(status, phraseOf(status), sip);
    return 0;
  }
  // A final failure: nta acknowledges it; the caller hears the same status unless another
  // hop or an answer to the callee's challenge can still take the call.
  if (call.wasAnswered()) return 0;  // a losing fork's answer to the BYE of its early dialog
  if (call.state_ == State::over) {
    call.environment_.ended(call.id_);  // the answer to our CANCEL: nothing left to wait for
    return 0;
  }
  if (call.mayTryNextHop(status)) {
    call.scheduleRetry(Retry::nextHop, 0);
    return 0;
  }
  // A challenge or a 422 may come after reliable provisionals set up early dialogs: the
  // retry forgets them (forgetEarlyDialogs) while the caller keeps its own early dialog.
  if ((status == 401 || status == 407) && call.prepareCredentials(status, sip)) {
    call.scheduleRetry(Retry::withCredentials, 0);
    return 0;
  }
  if (status == 422 && call.sessionTimers_->enabled()) {
    // RFC 4028 section 6: asked again once, same Call-ID and From tag, next CSeq, with
    // the callee's Min-SE. The 422 is about the callee's leg only: the caller, whose own
    // interval was fine, hears 502 if the callee cannot be satisfied.
    if (call.sessionTimers_->raiseCalleeInterval(sip)) {
      call.countSessionTimer("interval_raised");
      call.scheduleRetry(Retry::longerInterval, 0);
      return 0;
    }
    log::warning("call", "call ", call.id_, ": the callee refused the session interval (422, ",
                 "Min-SE ", sip != nullptr && sip->sip_min_se != nullptr
                                 ? std::to_string(sip->sip_min_se->min_delta)
                                 : std::string("none"),
                 ")");
    call.countSessionTimer("interval_refused");
    call.replyCaller(502, "Bad Gateway", nullptr);
    call.finish(metrics::CallResult::failed, "session_interval_refused");
    return 0;
  }
  if ((status == 401 || status == 407) && call.route_.line &&
      call.callerRealm_ == dataplane::Realm::access && sip != nullptr) {
    // The core challenges the line's terminal: the challenge goes to the terminal as the
    // core wrote it, and the terminal's next INVITE, a new call, carries its answer.
    call.replyCallerChallenge(status, sip);
    call.finish(metrics::CallResult::failed, "challenged");
    return 0;
  }
  if (status == 401 || status == 407) {
    // A challenge sbcd could not answer (no credentials for this trunk, refused ones, another
    // realm): its WWW-/Proxy-Authenticate stays on the callee's leg like every authentication
    // header, and a 401/407 without one is no valid response (RFC 3261 20.27, 20.44) that
    // the caller could act on. The caller hears that the call is refused.
    log::warning("call", "call ", call.id_, ": the callee's ", status,
                 " challenge could not be answered; refused with 403 upstream");
    call.replyCaller(403, "Forbidden", nullptr);
    call.finish(metrics::CallResult::failed, "challenge_unanswered");
    return 0;
  }
  call.replyCaller(status, phraseOf(status), sip);
  // nta reports its own Timer B expiry as 408 too.
  call.finish(status == 408 ? metrics::CallResult::timeout : metrics::CallResult::failed,
              "failed");
  return 0;
}

Call::EarlyFork* Call::reliableFork(const sip_t* sip) {
  if (sip->sip_to == nullptr || sip->sip_to->a_tag == nullptr) return nullptr;
  EarlyFork* fork = openFork(sip, true);
  if (fork == nullptr) return nullptr;
  // nta drops retransmitted and out-of-order reliable responses of a narrowed INVITE once
  // an RSeq is PRACKed; one that reached the INVITE as sent, or that came again while its
  // PRACK waits for the caller's, is dropped here.
  if (prackAwaited(*fork, sip->sip_rseq->rs_response)) return nullptr;
  return fork;
}

bool Call::prackAwaited(const EarlyFork& fork, std::uint32_t rseq) const {
  if (fork.invite != nullptr && rseq <= nta_outgoing_rseq(fork.invite)) return true;
  if (rseq <= fork.owedPrack) return true;
  return std::any_of(pracks_.begin(), pracks_.end(), [&](const auto& prack) {
    return prack->rseq == rseq && ::strcasecmp(prack->forkTag.c_str(), fork.tag.c_str()) == 0;
  });
}

nta_outgoing_t* Call::prackCallee(EarlyFork& fork, std::uint32_t rseq, const sip_t* response,
                                  PrackRelay* prack, const OutgoingBody& body,
                                  const std::string& headers) {
  const BodyTags bodyTags(body);
  nta_outgoing_t* request = nta_outgoing_prack(
      fork.leg, fork.invite, prack != nullptr ? &Call::onPrackResponse : nullptr, prack,
      routeOf(fork.leg), response, TAG_IF(response == nullptr, NTATAG_RSEQ(rseq)),
      TAG_IF(!headers.empty(), SIPTAG_HEADER_STR(headers.c_str())), BODY_TAGS(bodyTags),
      TAG_END());
  return request;
}

bool Call::offersUnanswerably(const sip_t* response) const {
  return lateOffer_ && !lateOfferAnswered_ && !sdpIn(response).empty();
}

void Call::refuseUnanswerableOffer(int status) {
  // The callee sent a provisional response reliably that offers the late offer's SDP,
  // although the INVITE announced no 100rel (RFC 3262 3 forbids it) or nta cannot send
  // it on reliably: its PRACK would have to carry an answer that only the caller's ACK
  // will bring. A PRACK without it would break RFC 3262 5, and no PRACK leaves the callee
  // retransmitting until it gives up: the call is refused at once, 502 to the caller (the
  // next hop failed the protocol), CANCEL to the callee, counted aborted.
  log::warning("call", "call ", id_, ": the ", dataplane::toString(calleeRealm()),
               " offered in a reliable ", status,
               " that the caller cannot answer before the ACK; refusing the call");
  replyCaller(502, "Bad Gateway", nullptr);
  if (calleeInvite_ != nullptr && nta_outgoing_status(calleeInvite_) < 200) {
    nta_outgoing_cancel(calleeInvite_);
  }
  finish(metrics::CallResult::aborted, "unanswerable_reliable_offer");
}

bool Call::prackCalleeNow(EarlyFork& fork, std::uint32_t rseq, const sip_t* response) {
  nta_outgoing_t* request = prackCallee(fork, rseq, response);
  // Nobody waits for its answer: nta retransmits it on its own.
  if (request != nullptr) nta_outgoing_destroy(request);
  return request != nullptr;
}

Call::EarlyFork* Call::forkOf(const char* tag) {
  if (tag == nullptr) return nullptr;
  for (auto& fork : forks_) {
    if (::strcasecmp(fork.tag.c_str(), tag) == 0) return &fork;
  }
  return nullptr;
}

Call::EarlyFork* Call::openFork(const sip_t* response, bool narrow) {
  const char* tag = response->sip_to->a_tag;
  EarlyFork* fork = forkOf(tag);
  if (fork == nullptr) {
    const char* followed = nta_leg_get_rtag(calleeLeg_);
    nta_leg_t* leg = nullptr;
    if (followed == nullptr || ::strcasecmp(followed, tag) == 0) {
      leg = calleeLeg_;
    } else {
      // Another early dialog of the same INVITE: same Call-ID, From tag and CSeq space.
      msg_t* request = nta_outgoing_getrequest(calleeUntagged_ != nullptr ? calleeUntagged_
                                                                          : calleeInvite_);
      const sip_t* invite = sip_object(request);
      if (invite != nullptr) {
        leg = nta_leg_tcreate(agentOf(calleeRealm()), &Call::onCalleeRequest, this,
                              SIPTAG_CALL_ID(invite->sip_call_id),
                              SIPTAG_FROM(invite->sip_from), SIPTAG_TO(invite->sip_to),
                              SIPTAG_CSEQ(invite->sip_cseq), TAG_END());
      }
      if (request != nullptr) msg_destroy(request);
      if (leg == nullptr) return nullptr;
    }
    nta_leg_rtag(leg, tag);
    nta_leg_client_reroute(leg, response->sip_record_route, response->sip_contact, 1);
    EarlyFork opened;
    opened.tag = tag;
    opened.leg = leg;
    forks_.push_back(std::move(opened));
    fork = &forks_.back();
  }
  if (narrow && fork->invite == nullptr) {
    nta_outgoing_t* untagged = calleeUntagged_ != nullptr ? calleeUntagged_ : calleeInvite_;
    fork->invite = nta_outgoing_tagged(untagged, &Call::onCalleeResponse, this, tag,
                                       response->sip_rseq);
    if (fork->invite == nullptr) {
      log::warning("call", "call ", id_, ": cannot follow the callee's early dialog ", tag);
      return nullptr;
    }
    if (calleeUntagged_ == nullptr) {
      // The first narrowed fork stands for the INVITE (its status, CANCEL, ACK CSeq).
      calleeUntagged_ = calleeInvite_;
      calleeInvite_ = fork->invite;
    }
  }
  return fork;
}

bool Call::isCalleeInvite(const nta_outgoing_t* request) const {
  if (request == calleeInvite_ || (calleeUntagged_ != nullptr && request == calleeUntagged_)) {
    return true;
  }
  return std::any_of(forks_.begin(), forks_.end(),
                     [&](const EarlyFork& fork) { return fork.invite == request; });
}

void Call::endLosingForks() {
  if (losingForksEnded_) return;
  losingForksEnded_ = true;
  for (const auto& fork : forks_) {
    // RFC 3261 15: a UAC may end an early dialog with BYE.
    if (fork.leg != calleeLeg_) sendBye(fork.leg);
  }
}

std::string Call::sdpIn(const sip_t* message) const {
  if (!hasBody(message)) return {};
  std::string error;
  const auto split = splitSessionBody(message, environment_.settings->bodyTypes, error);
  return split && split->sdp ? *split->sdp : std::string();
}

bool Call::fromForeignFork(const sip_t* response) const {
  if (!lateOffer_ || offerFork_.empty() || response == nullptr || response->sip_to == nullptr ||
      response->sip_to->a_tag == nullptr) {
    return false;
  }
  return ::strcasecmp(response->sip_to->a_tag, offerFork_.c_str()) != 0;
}

bool Call::foreignOffer(const sip_t* response) const {
  return fromForeignFork(response) && !sdpIn(response).empty();
}

std::string Call::answerForFork(EarlyFork& fork) {
  std::string error;
  auto offer = ParsedSdp::parse(fork.offerSdp, error);
  const auto& callerAnswer = described_[static_cast<std::size_t>(callerRealm_)];
  const std::string& answer = sdpSentOn_[static_cast<std::size_t>(calleeRealm())];
  if (offer && callerAnswer && !answer.empty() &&
      answerFits(*callerAnswer, offer->description())) {
    fork.refused = false;
    return answer;
  }
  fork.refused = true;
  if (!offer) {
    log::warning("call", "call ", id_, ": unusable SDP in an early dialog of the ",
                 dataplane::toString(calleeRealm()), ": ", error);
    return {};
  }
  log::warning("call", "call ", id_, ": an early dialog of the ",
               dataplane::toString(calleeRealm()),
               " offers media the caller's answer does not fit; its streams are rejected");
  const std::vector<std::uint16_t> rejected(offer->description().streams.size(), 0);
  return offer->rewrite(mediaOf(calleeRealm()), rejected, sdpSessionId_, sdpVersion_, error)
      .value_or(std::string());
}

bool Call::answerForkInPrack(EarlyFork& fork, std::uint32_t rseq, const sip_t* response) {
  const std::string answer = answerForFork(fork);
  OutgoingBody body;
  if (!answer.empty()) body = OutgoingBody{"application/sdp", "", answer};
  nta_outgoing_t* request = prackCallee(fork, rseq, response, nullptr, body);
  if (request == nullptr) return false;
  // Nobody waits for its answer: nta retransmits it on its own.
  nta_outgoing_destroy(request);
  fork.owedPrack = 0;
  fork.answered = true;
  return true;
}

void Call::answerOwedPracks() {
  for (auto& fork : forks_) {
    if (fork.owedPrack != 0) answerForkInPrack(fork, fork.owedPrack, nullptr);
  }
}

bool Call::adoptWinningOffer() {
  winnerToAdopt_ = false;
  EarlyFork* winner = nullptr;
  for (auto& fork : forks_) {
    if (fork.leg == calleeLeg_) winner = &fork;
  }
  if (winner == nullptr || winner->offerSdp.empty()) {
    log::warning("call", "call ", id_, ": the answering early dialog of the ",
                 dataplane::toString(calleeRealm()), " never offered SDP");
    return false;
  }
  if (!winner->answered) ackAnswer_ = answerForFork(*winner);
  if (winner->refused) return false;
  std::string error;
  auto offer = parseSdp(winner->offerSdp, error);
  if (!offer) return false;
  described_[static_cast<std::size_t>(calleeRealm())] = std::move(*offer);
  const auto& access = described_[static_cast<std::size_t>(dataplane::Realm::access)];
  const auto& core = described_[static_cast<std::size_t>(dataplane::Realm::core)];
  if (access && core) programStreams(*access, *core);
  return true;
}

void Call::refuseWinningOffer() {
  log::warning("call", "call ", id_, ": the answering early dialog's media does not fit the ",
               dataplane::toString(callerRealm_), "'s answer; ending the call");
  // Its 2xx is acknowledged first (RFC 3261 13.2.2.4), with every stream rejected when
  // the ACK owes the answer.
  OutgoingBody body;
  if (!ackAnswer_.empty()) body = OutgoingBody{"application/sdp", "", ackAnswer_};
  sendAck(calleeLeg_, calleeInvite_, body);
  if (callerInvite_ != nullptr && nta_incoming_status(callerInvite_) < 200) {
    sendBye(calleeLeg_);
    replyCaller(488, phraseOf(488), nullptr);
    finish(metrics::CallResult::aborted, "fork_offer_unfit");
  } else {
    terminate(metrics::CallResult::aborted, "fork_offer_unfit");
  }
}

int Call::onCallerPrack(void* magic, nta_reliable_t* reliable, nta_incoming_t* incoming,
                        const sip_t* sip) {
  Call& call = *static_cast<Call*>(magic);
  PrackRelay* prack = call.prackOf(reliable);
  if (incoming != nullptr) {
    // nta hands the caller's PRACK to the reliable response, not to the dialog, so it
    // passes relayInDialog's count.
    call.environment_.countRequest(dataplane::toString(call.callerRealm_), "PRACK");
  }
  if (incoming == nullptr) {
    // No PRACK will come for it: the caller's INVITE got its final response first (the
    // callee's PRACK is moot then), or nta gave up waiting (64*T1) and ends the INVITE next
    // (onCallerAckOrCancel: the call is ended).
    if (prack != nullptr) call.freePrack(*prack);
    return 0;
  }
  int status = 200;
  if (prack == nullptr) {
    // The callee's provisional response was PRACKed by the SBC already (or is gone with
    // its early dialog).
    call.environment_.countResponse(dataplane::toString(call.callerRealm_), 200);
  } else {
    status = call.relayPrack(*prack, incoming, sip);
  }
  call.releasePracked(reliable);
  return status;
}

void Call::releasePracked(nta_reliable_t* reliable) {
  // nta (1.12) holds back a reliable provisional response while the one before it is the
  // only one it keeps, PRACKed or not, and lets the queue go only when a PRACK arrives: a
  // second one after a PRACKed first would wait for ever (and a 2xx with SDP behind it).
  // A PRACKed response is let go at once (the PRACK's own transaction absorbs its
  // retransmissions), so the next one goes out at once, or waits only for one the caller
  // has not PRACKed yet, as RFC 3262 3 has it. Callers of this (nta's PRACK callback)
  // no longer touch the handle, which nta frees here.
  for (auto& prack : pracks_) {
    if (prack->reliable == reliable) prack->reliable = nullptr;
  }
  nta_reliable_destroy(reliable);
}

Call::PrackRelay* Call::prackOf(const nta_reliable_t* reliable) {
  for (auto& prack : pracks_) {
    if (prack->reliable == reliable) return prack.get();
  }
  return nullptr;
}

void Call::replyPrack(nta_incoming_t* incoming, int status) {
  environment_.countResponse(dataplane::toString(callerRealm_), status);
  nta_incoming_treply(incoming, status, phraseOf(status), TAG_END());
  nta_incoming_destroy(incoming);
}

int Call::relayPrack(PrackRelay& prack, nta_incoming_t* incoming, const sip_t* sip) {
  const char* realm = dataplane::toString(callerRealm_);
  EarlyFork* fork = forkOf(prack.forkTag.c_str());
  if (state_ == State::over) {
    freePrack(prack);
    environment_.countResponse(realm, 481);
    nta_incoming_treply(incoming, 481, phraseOf(481), TAG_END());
    nta_incoming_destroy(incoming);
    return 0;
  }
  if (fork == nullptr || fork->invite == nullptr || nta_outgoing_status(fork->invite) >= 200 ||
      wasAnswered()) {
    // The callee's INVITE has its final response (an answer the caller's PRACK crossed, a
    // failure whose retry forgot the early dialog): nothing is left to PRACK there.
    const bool answersLateOffer = prack.lateOffer && !lateOfferAnswered_ && wasAnswered();
    freePrack(prack);
    if (answersLateOffer) return takeLateAnswer(incoming, sip);
    environment_.countResponse(realm, 200);
    return 200;
  }
  std::string error;
  std::optional<SessionBody> split;
  if (hasBody(sip)) split = sessionBodyOf(callerRealm_, "request", sip, error);
  const bool sdp = split && split->sdp;
  std::string rewritten;  // the SDP of the caller's PRACK as rewritten for the callee
  int refusal = 0;        // the caller's PRACK is refused with it, the callee PRACKed bare
  if (prack.lateOffer) {
    if (!acceptLateAnswer(sip, split, rewritten, error)) {
      // The callee waits for an answer the SBC cannot give: the call ends.
      freePrack(prack);
      environment_.countResponse(realm, 488);
      nta_incoming_treply(incoming, 488, phraseOf(488), TAG_END());
      nta_incoming_destroy(incoming);
      replyCaller(488, phraseOf(488), nullptr);
      if (calleeInvite_ != nullptr && nta_outgoing_status(calleeInvite_) < 200) {
        nta_outgoing_cancel(calleeInvite_);
      }
      finish(metrics::CallResult::aborted, "bad_sdp_answer");
      return 0;
    }
  } else if (sdp) {
    // A new offer once the INVITE's offer/answer is complete (RFC 6337 3.2): relayed in
    // our PRACK, its answer comes in the callee's 200. One exchange at a time, as inside
    // the dialog; an offer while the INVITE's is still open is refused.
    const bool complete = described_[static_cast<std::size_t>(callerRealm_)].has_value() &&
                          described_[static_cast<std::size_t>(calleeRealm())].has_value();
    if (!complete) {
      error = "an offer while the INVITE's offer is unanswered";
      refusal = 491;
    } else if (offerPending() || refreshPending() || pendingOffer_) {
      error = "an offer while another is under way";
      refusal = 491;
    } else if (!reoffer(callerRealm_, *split->sdp, rewritten, error)) {
      refusal = error == "no media ports left" ? 500 : 488;
    } else {
      prack.offerInRequest = true;
      prack.offerSent = rewritten;
    }
  } else if (hasBody(sip) && !split) {
    refusal = 488;  // a multipart body that cannot be split (counted)
  }
  if (refusal != 0) {
    log::warning("call", "call ", id_, ": PRACK from the ", realm, " refused (", refusal,
                 "): ", error);
    replyPrack(incoming, refusal);
    incoming = nullptr;
  }
  OutgoingBody body;
  if (split && refusal == 0) {
    countLeftOutParts(callerRealm_, "request", *split);
    body = split->crossing(rewritten);
  }
  prack.incoming = incoming;
  const std::string passed = allowedHeaderLines(sip, passedHeaders_);
  PrackRelay* const pending = &prack;
  const nta_reliable_t* const reliable = prack.reliable;
  nta_outgoing_t* outgoing =
      prackCallee(*fork, prack.rseq, nullptr, pending, body, passed);
  // Forks whose own offers waited for the caller's answer get theirs after the offer's fork.
  if (lateOfferAnswered_) answerOwedPracks();
  if (prackOf(reliable) != pending) return 0;  // answered (and freed) from inside nta
  if (outgoing == nullptr) {
    log::warning("call", "call ", id_, ": cannot PRACK the ",
                 dataplane::toString(calleeRealm()), "'s provisional response");
    if (pending->offerInRequest) restoreMedia();
    nta_incoming_t* waiting = std::exchange(pending->incoming, nullptr);
    freePrack(*pending);
    if (waiting != nullptr) replyPrack(waiting, 500);
    return 0;
  }
  pending->outgoing = outgoing;
  if (pending->incoming == nullptr) {
    // Refused on the caller's side: the callee's PRACK only acknowledges; nta finishes it.
    freePrack(*pending);
  }
  return 0;  // answered when the callee answers our PRACK
}

int Call::takeLateAnswer(nta_incoming_t* incoming, const sip_t* sip) {
  // A fork answered while the caller's answer to the late offer was on its way: the
  // answer is still the caller's part of the offer/answer (RFC 3262 5), and the winner
  // gets it in the ACK of its 2xx.
  std::string error;
  std::string rewritten;
  std::optional<SessionBody> split;
  if (hasBody(sip)) split = sessionBodyOf(callerRealm_, "request", sip, error);
  if (!acceptLateAnswer(sip, split, rewritten, error)) {
    replyPrack(incoming, 488);
    sendAck(calleeLeg_, calleeInvite_, OutgoingBody());
    terminate(metrics::CallResult::aborted, "bad_sdp_answer");
    return 0;
  }
  environment_.countResponse(dataplane::toString(callerRealm_), 200);
  nta_incoming_treply(incoming, 200, phraseOf(200), TAG_END());
  nta_incoming_destroy(incoming);
  if (winnerToAdopt_) {
    if (!adoptWinningOffer()) refuseWinningOffer();
  } else {
    ackAnswer_ = rewritten;  // the winner offered first and was never PRACKed
  }
  return 0;
}

bool Call::acceptLateAnswer(const sip_t* sip, const std::optional<SessionBody>& split,
                            std::string& rewritten, std::string& error) {
  // RFC 3262 5: a PRACK acknowledging a provisional response that offered must answer.
  if (!hasBody(sip)) {
    error = "no SDP";
  } else if (split && !split->sdp) {
    error = "the body has no application/sdp";
  }
  if (!split || !split->sdp || !anchorAnswer(callerRealm_, *split->sdp, rewritten, error)) {
    log::warning("call", "call ", id_, ": the PRACK does not answer the late offer: ", error);
    return false;
  }
  lateOfferAnswered_ = true;
  sdpSentOn_[static_cast<std::size_t>(calleeRealm())] = rewritten;
  return true;
}

int Call::onPrackResponse(void* magic, nta_outgoing_t* request, const sip_t* sip) {
  PrackRelay& prack = *static_cast<PrackRelay*>(magic);
  if (prack.outgoing == nullptr) prack.outgoing = request;  // called back from inside create
  const int status = nta_outgoing_status(request);
  if (status < 200) return 0;
  prack.call->answerPrack(prack, status, sip);
  return 0;
}

void Call::answerPrack(PrackRelay& prack, int status, const sip_t* sip) {
  nta_incoming_t* incoming = std::exchange(prack.incoming, nullptr);
  const bool offered = prack.offerInRequest;
  const std::string offerSent = prack.offerSent;
  freePrack(prack);
  const bool success = status < 300;
  if (incoming == nullptr) {
    if (offered && !success) restoreMedia();
    return;
  }
  const char* realm = dataplane::toString(callerRealm_);
  OutgoingBody body;
  std::string rewritten;
  if (success && offered) {
    std::string error;
    const auto split = hasBody(sip) ? sessionBodyOf(calleeRealm(), "response", sip, error)
                                    : std::nullopt;
    if (!hasBody(sip)) {
      error = "a 2xx without the answer";
    } else if (split && !split->sdp) {
      error = "the body has no application/sdp";
    } else if (split && reanswer(calleeRealm(), *split->sdp, rewritten, error)) {
      error.clear();
      countLeftOutParts(calleeRealm(), "response", *split);
      body = split->crossing(rewritten);
    }
    if (!error.empty()) {
      // The callee accepted an offer the SBC cannot anchor its answer to: the caller hears
      // 502 and the call ends.
      log::warning("call", "call ", id_, ": unusable SDP in the ",
                   dataplane::toString(calleeRealm()), "'s answer to a PRACK: ", error);
      replyPrack(incoming, 502);
      terminate(metrics::CallResult::aborted, "bad_sdp_answer");
      return;
    }
    // Later answers in this INVITE's responses answer the offer as it now stands.
    offer_ = described_[static_cast<std::size_t>(callerRealm_)];
    sdpSentOn_[static_cast<std::size_t>(calleeRealm())] = offerSent;
    sdpSentOn_[static_cast<std::size_t>(callerRealm_)] = rewritten;
  } else if (hasBody(sip) && !isSdp(sip) && sip->sip_content_type != nullptr) {
    // Another body (SIP-I) crosses as the list allows; SDP outside an exchange does not.
    body = crossingBody(calleeRealm(), "response", sip).value_or(OutgoingBody());
  }
  if (offered && !success) restoreMedia();
  // RFC 4320: no 408 to a non-INVITE request (nta sends none).
  if (status != 408) environment_.countResponse(realm, status);
  const BodyTags bodyTags(body);
  const std::string passed = allowedHeaderLines(sip, passedHeaders_);
  nta_incoming_treply(incoming, status, phraseOf(status), BODY_TAGS(bodyTags),
                      TAG_IF(!passed.empty(), SIPTAG_HEADER_STR(passed.c_str())), TAG_END());
  nta_incoming_destroy(incoming);
}

void Call::freePrack(PrackRelay& prack) {
  if (prack.outgoing != nullptr) nta_outgoing_destroy(prack.outgoing);
  if (prack.incoming != nullptr) nta_incoming_destroy(prack.incoming);
  prack.outgoing = nullptr;
  prack.incoming = nullptr;
  const auto at = std::find_if(pracks_.begin(), pracks_.end(),
                               [&](const auto& owned) { return owned.get() == &prack; });
  if (at != pracks_.end()) pracks_.erase(at);
}

void Call::dropPracks() {
  for (auto& prack : pracks_) {
    if (prack->incoming != nullptr && nta_incoming_status(prack->incoming) < 200) {
      environment_.countResponse(dataplane::toString(callerRealm_), 481);
      nta_incoming_treply(prack->incoming, 481, phraseOf(481), TAG_END());
    }
    // Destroyed unanswered, nta still completes our PRACK on its own.
    if (prack->outgoing != nullptr) nta_outgoing_destroy(prack->outgoing);
    if (prack->incoming != nullptr) nta_incoming_destroy(prack->incoming);
  }
  pracks_.clear();
}

int Call::onCallerAckOrCancel(void* magic, nta_incoming_t*, const sip_t* sip) {
  Call& call = *static_cast<Call*>(magic);
  if (sip == nullptr) {
    if (!call.wasAnswered()) {
      // No PRACK for a reliable provisional response within 64*T1 (RFC 3262 3: the UAS
      // rejects the INVITE with a 5xx): the caller hears 503, the callee gets CANCEL (its
      // provisional response was never PRACKed when the caller was to PRACK it).
      log::warning("call", "call ", call.id_, ": no PRACK from the ",
                   dataplane::toString(call.callerRealm_),
                   " for a reliable provisional response; ending the call");
      call.terminate(metrics::CallResult::aborted, "no_prack");
      return 0;
    }
    // Timer H: our 200 was never acknowledged. End both dialogs.
    log::warning("call", "no ACK from the trunk for the 200; ending the call");
    call.terminate(metrics::CallResult::aborted, "no_ack");
    return 0;
  }
  call.environment_.countRequest(dataplane::toString(call.callerRealm_),
                                 sip->sip_request->rq_method_name);
  if (sip->sip_request->rq_method == sip_method_ack) {
    if (call.state_ != State::answered) return 0;
    call.state_ = State::confirmed;
    // The INVITE transaction has done its work: nta absorbs ACK retransmissions until
    // Timer I and frees it then. Let go of it now rather than at the call's end, so a long
    // call does not hold the INVITE and its 2xx (a few KiB each) for its whole life.
    nta_incoming_destroy(call.callerInvite_);
    call.callerInvite_ = nullptr;
    std::string answer;
    std::string error = "no SDP";
    std::optional<SessionBody> split;
    // A late offer answered in the caller's PRACK needs no answer in the ACK.
    const bool answerInAck = call.lateOffer_ && !call.lateOfferAnswered_;
    if (answerInAck) split = call.sessionBodyOf(call.callerRealm_, "request", sip, error);
    if (answerInAck &&
        (!split || !split->sdp ||
         !call.anchorAnswer(call.callerRealm_, *split->sdp, answer, error))) {
      // The callee waits for an answer the SBC cannot give: acknowledged, then ended.
      log::warning("call", "call ", call.id_, ": the ACK does not answer the late offer: ",
                   error);
      call.sendAck(call.calleeLeg_, call.calleeInvite_);
      call.terminate(metrics::CallResult::aborted, "bad_sdp_answer");
      return 0;
    }
    OutgoingBody ackBody;
    if (split) {
      call.countLeftOutParts(call.callerRealm_, "request", *split);
      ackBody = split->crossing(answer);
    } else if (!call.ackAnswer_.empty()) {
      // The winning fork's offer, answered by the SBC (adoptWinningOffer).
      ackBody = OutgoingBody{"application/sdp", "", call.ackAnswer_};
    }
    call.sendAck(call.calleeLeg_, call.calleeInvite_, ackBody);
    call.endLosingForks();
    if (!answer.empty()) call.sdpSentOn_[static_cast<std::size_t>(call.calleeRealm())] = answer;
    call.scheduleRetry(Retry::releaseInvite, call.environment_.settings->sipTimers.t1x64Ms);
    return 0;
  }
  if (sip->sip_request->rq_method == sip_method_cancel) {
    // nta has answered the CANCEL 200 and the INVITE 487 already.
    call.environment_.countResponse(dataplane::toString(call.callerRealm_), 487);
    call.observeSetup();
    if (call.calleeInvite_ != nullptr) nta_outgoing_cancel(call.calleeInvite_);
    call.finish(metrics::CallResult::cancelled, "cancelled");
  }
  return 0;
}

int Call::onCallerRequest(void* magic, nta_leg_t*, nta_incoming_t* request, const sip_t* sip) {
  return static_cast<Call*>(magic)->relayInDialog(true, request, sip);
}

int Call::onCalleeRequest(void* magic, nta_leg_t*, nta_incoming_t* request, const sip_t* sip) {
  return static_cast<Call*>(magic)->relayInDialog(false, request, sip);
}

int Call::relayInDialog(bool fromCaller, nta_incoming_t* request, const sip_t* sip) {
  const dataplane::Realm from = fromCaller ? callerRealm_ : calleeRealm();
  if (route_.line && from == dataplane::Realm::access && state_ != State::over) {
    // A request of the terminal's dialog from elsewhere: the terminal moved (its NAT
    // mapping changed, or it changed networks); the call follows it.
    if (msg_t* received = nta_incoming_getrequest(request)) {
      if (const auto source = sourceOf(received)) followTerminal(source->address, sipUrl(*source));
      msg_destroy(received);
    }
  }
  const char* realm = dataplane::toString(from);
  const sip_method_t method = sip->sip_request->rq_method;
  environment_.countRequest(realm, sip->sip_request->rq_method_name);
  if (method == sip_method_bye) {
    environment_.countResponse(realm, 200);
    if (state_ == State::over) return 200;
    const bool answered = wasAnswered();
    const auto result = answered ? metrics::CallResult::answered
                        : fromCaller  ? metrics::CallResult::cancelled
                                      : metrics::CallResult::failed;
    if (answered) {
      sendBye(fromCaller ? calleeLeg_ : callerLeg_, sip);
    } else {
      // A BYE before the answer ends an early dialog (RFC 3261 15): the caller's INVITE
      // still needs its final response, the callee's INVITE a CANCEL; no BYE goes on a
      // leg whose dialog is not confirmed. The BYE is answered first.
      nta_incoming_treply(request, 200, "OK", TAG_END());
      nta_incoming_destroy(request);
      if (fromCaller) {
        replyCaller(487, "Request Terminated", nullptr);
      } else {
        replyCaller(480, "Temporarily Unavailable", nullptr);
      }
      if (calleeInvite_ != nullptr && nta_outgoing_status(calleeInvite_) < 200) {
        nta_outgoing_cancel(calleeInvite_);
      }
    }
    finish(result, fromCaller ? "bye_from_caller" : "bye_from_callee");
    return answered ? 200 : 0;
  }
  if (method == sip_method_ack) {
    // The ACK of a relayed re-INVITE's 2xx normally reaches the bound transaction; one that
    // reaches the dialog instead is relayed all the same.
    for (const auto& relay : relays_) {
      if (relay->from == from && relay->awaitingAck) {
        relayAck(*relay, sip);
        break;
      }
    }
    return 0;
  }
  const auto refuse = [&](int status) {
    environment_.countResponse(realm, status);
    return status;
  };
  if (state_ == State::over) return refuse(481);
  const bool relayed = method == sip_method_invite || method == sip_method_update ||
                       method == sip_method_info || method == sip_method_options ||
                       method == sip_method_notify || method == sip_method_message;
  if (!relayed) return refuse(501);
  // Before the answer the core's dialog is not established: nothing can be relayed yet.
  if (state_ != State::answered && state_ != State::confirmed) {
    return refuse(negotiates(method) ? 491 : 480);
  }
  // Glare: one offer/answer exchange at a time across the call (the SBC's own refresh
  // re-INVITE included).
  if (negotiates(method) && (offerPending() || refreshPending())) return refuse(491);
  // Relaying is forwarding: the hop limit counts down across the SBC as across a proxy.
  const unsigned long hopsLeft = hopsLeftIn(sip);
  if (hopsLeft == 0) return refuse(483);
  const std::string maxForwards = std::to_string(hopsLeft - 1);

  // Only the method, the body and its Content-Type cross (and what makes a NOTIFY one), and
  // the allow-listed headers. A body of a type not on sip.body_types could name this side
  // (RFC 3261 21.4.13: 415, with what would be taken). SDP outside an offer/answer exchange
  // is left out as before.
  OutgoingBody outgoingBody;
  if (!negotiates(method) && hasBody(sip) &&
      (sip->sip_content_type == nullptr || !isSdp(sip))) {
    auto crossing = crossingBody(from, "request", sip);
    if (!crossing) {
      const std::string accept = acceptedTypes(environment_.settings->bodyTypes);
      environment_.countResponse(realm, 415);
      nta_incoming_treply(request, 415, "Unsupported Media Type",
                          SIPTAG_ACCEPT_STR(accept.c_str()), TAG_END());
      nta_incoming_destroy(request);
      return 0;
    }
    outgoingBody = std::move(*crossing);
  }
  const bool offer = negotiates(method) && hasBody(sip);
  std::string body;  // the offer's SDP as rewritten for the other leg
  if (offer) {
    std::string error;
    const auto split = sessionBodyOf(from, "request", sip, error);
    if (split && !split->sdp) {
      error = "the body has no application/sdp";
    } else if (split && reoffer(from, *split->sdp, body, error)) {
      error.clear();
      countLeftOutParts(from, "request", *split);
      outgoingBody = split->crossing(body);
    }
    if (!error.empty()) {
      log::warning("call", "call ", id_, ": ", sip->sip_request->rq_method_name, " from the ",
                   realm, " refused: ", error);
      return refuse(488);
    }
  }

  auto relay = std::make_unique<Relay>();
  relay->call = this;
  relay->from = from;
  relay->method = method;
  relay->incoming = request;
  relay->offerInRequest = offer;
  if (offer) relay->offerSent = body;
  const dataplane::Realm to = dataplane::otherRealm(from);
  // A re-INVITE or UPDATE refreshes the sessions of both legs once answered 2xx.
  std::string sessionExpires;
  if (negotiates(method)) {
    sessionTimers_->peerRequested(from, sip);
    sessionExpires = sessionTimers_->sessionExpires(to, true);
  }
  const bool timers = !sessionExpires.empty();
  nta_agent_t* agent = agentOf(to);
  const BodyTags bodyTags(outgoingBody);
  const std::string passed = allowedHeaderLines(sip, passedHeaders_);
  const bool notify = method == sip_method_notify;
  // Owned before the request goes out, in case nta reports a failure from inside
  // nta_outgoing_tcreate.
  Relay* const pending = relay.get();
  relays_.push_back(std::move(relay));
  nta_outgoing_t* outgoing = nta_outgoing_tcreate(
      legOf(to), &Call::onRelayResponse, pending, routeOf(legOf(to)), method,
      sip->sip_request->rq_method_name, nullptr, SIPTAG_MAX_FORWARDS_STR(maxForwards.c_str()),
      TAG_IF(negotiates(method), SIPTAG_CONTACT(nta_agent_contact(agent))),
      TAG_IF(timers, SIPTAG_SUPPORTED_STR("timer")),
      TAG_IF(timers, SIPTAG_SESSION_EXPIRES_STR(sessionExpires.c_str())),
      BODY_TAGS(bodyTags),
      TAG_IF(notify && sip->sip_event != nullptr, SIPTAG_EVENT(sip->sip_event)),
      TAG_IF(notify && sip->sip_subscription_state != nullptr,
             SIPTAG_SUBSCRIPTION_STATE(sip->sip_subscription_state)),
      TAG_IF(!passed.empty(), SIPTAG_HEADER_STR(passed.c_str())), TAG_END());
  const bool alive = std::any_of(relays_.begin(), relays_.end(),
                                 [&](const auto& owned) { return owned.get() == pending; });
  if (!alive) return 0;  // already answered and freed from inside nta_outgoing_tcreate
  if (outgoing == nullptr) {
    pending->incoming = nullptr;  // answered below by nta
    freeRelay(*pending);
    if (offer) restoreMedia();
    return refuse(500);
  }
  pending->outgoing = outgoing;
  // A re-INVITE's ACK (and CANCEL) reach only a bound server transaction.
  if (method == sip_method_invite) {
    nta_incoming_bind(request, &Call::onRelayAckOrCancel, pending);
  }
  return 0;  // answered when the other side answers
}

int Call::onRelayResponse(void* magic, nta_outgoing_t* request, const sip_t* sip) {
  Relay& relay = *static_cast<Relay*>(magic);
  if (relay.outgoing == nullptr) relay.outgoing = request;  // called back from tcreate
  relay.call->relayResponse(relay, sip);
  return 0;
}

int Call::onRelayAckOrCancel(void* magic, nta_incoming_t*, const sip_t* sip) {
  Relay& relay = *static_cast<Relay*>(magic);
  Call& call = *relay.call;
  if (sip == nullptr) {
    // Timer H: the re-INVITE's sender never acknowledged the 2xx. The other side still
    // gets its ACK; the call goes on.
    log::warning("call", "call ", call.id_, ": no ACK for a relayed re-INVITE's 2xx");
    call.relayAck(relay, nullptr);
    return 0;
  }
  call.environment_.countRequest(dataplane::toString(relay.from),
                                 sip->sip_request->rq_method_name);
  if (sip->sip_request->rq_method == sip_method_ack) {
    call.relayAck(relay, sip);
  } else if (sip->sip_request->rq_method == sip_method_cancel) {
    // nta has answered the CANCEL 200 and the re-INVITE 487; the other side's answer to
    // our CANCEL frees the relay.
    call.environment_.countResponse(dataplane::toString(relay.from), 487);
    if (relay.outgoing != nullptr && nta_outgoing_status(relay.outgoing) < 200) {
      nta_outgoing_cancel(relay.outgoing);
      call.awaitCancelledFinal();
    }
  }
  return 0;
}

void Call::awaitCancelledFinal() {
  if (cancelledTimer_ == nullptr) {
    cancelledTimer_ = su_timer_create(su_root_task(environment_.root), 0);
    if (cancelledTimer_ == nullptr) return;  // nta's Timer C still ends it, minutes later
  }
  su_timer_reset(cancelledTimer_);
  su_timer_set_interval(cancelledTimer_, &Call::onCancelledTimer, this,
                        environment_.settings->sipTimers.t1x64Ms);
}

void Call::onCancelledTimer(void*, su_timer_t*, void* arg) {
  static_cast<Call*>(arg)->abandonCancelled();
}

void Call::abandonCancelled() {
  // RFC 3261 9.1: no final response 64*T1 after the CANCEL, the re-INVITE is over. Kept
  // any longer it would hold the call's one offer/answer exchange, and every later
  // re-INVITE or UPDATE would get 491 until nta's Timer C (minutes).
  const auto cancelled = std::find_if(relays_.begin(), relays_.end(), [](const auto& relay) {
    return relay->method == sip_method_invite && relay->incoming != nullptr &&
           nta_incoming_status(relay->incoming) >= 200 && relay->outgoing != nullptr &&
           nta_outgoing_status(relay->outgoing) < 200;
  });
  if (cancelled == relays_.end()) return;
  Relay& relay = **cancelled;
  log::warning("call", "call ", id_, ": no final response from the ",
               dataplane::toString(dataplane::otherRealm(relay.from)),
               " to a cancelled re-INVITE; abandoning it");
  const bool offer = relay.offerInRequest;
  freeRelay(relay);  // destroying the pending client transaction sends nothing more
  if (offer) restoreMedia();
}

void Call::relayResponse(Relay& relay, const sip_t* sip) {
  const int status = nta_outgoing_status(relay.outgoing);
  const dataplane::Realm to = dataplane::otherRealm(relay.from);
  const bool invite = relay.method == sip_method_invite;
  if (status < 200) {
    if (status > 100 && nta_incoming_status(relay.incoming) < 200) {
      environment_.countResponse(dataplane::toString(relay.from), status);
      nta_incoming_treply(relay.incoming, status, phraseOf(status), TAG_END());
    }
    return;
  }
  if (relay.awaitingAck) return;  // a retransmitted 2xx: nta acknowledges it
  const auto ackOtherSide = [&] { sendAck(legOf(to), relay.outgoing); };
  if (nta_incoming_status(relay.incoming) >= 200) {
    // The sender cancelled meanwhile: nothing to relay. A 2xx that crossed our CANCEL is
    // acknowledged; the media stays as the last completed exchange left it.
    if (status < 300 && invite) ackOtherSide();
    if (relay.offerInRequest) restoreMedia();
    freeRelay(relay);
    return;
  }
  const bool success = status < 300;
  std::string body;  // the answer's (or the 2xx's offer's) SDP as rewritten for the sender
  OutgoingBody outgoingBody;
  std::string error;
  if (success && negotiates(relay.method) && (relay.offerInRequest || (invite && hasBody(sip)))) {
    const auto split = hasBody(sip) ? sessionBodyOf(to, "response", sip, error)
                                    : std::optional<SessionBody>(SessionBody{});
    if (!split) {
      // error says why
    } else if (!split->sdp) {
      error = relay.offerInRequest ? "a 2xx without the answer" : "the body has no application/sdp";
    } else if (relay.offerInRequest ? reanswer(to, *split->sdp, body, error)
                                    : reoffer(to, *split->sdp, body, error)) {
      error.clear();
      relay.offerInResponse = !relay.offerInRequest;
      countLeftOutParts(to, "response", *split);
      outgoingBody = split->crossing(body);
    }
  }
  if (!error.empty()) {
    // The other side has taken up a session the SBC cannot relay, and only a new offer
    // could take it back to the old one: its 2xx is acknowledged (RFC 3261 13.2.2.4; else
    // it is retransmitted for 64*T1), the sender hears 502 and the call ends with BYE
    // on both legs.
    log::warning("call", "call ", id_, ": unusable SDP in the ", dataplane::toString(to),
                 "'s answer to ", sip_method_name(relay.method, "request"), ": ", error);
    if (invite) ackOtherSide();
    environment_.countResponse(dataplane::toString(relay.from), 502);
    nta_incoming_treply(relay.incoming, 502, "Bad Gateway", TAG_END());
    freeRelay(relay);
    terminate(metrics::CallResult::aborted, "bad_sdp_answer");
    return;
  }
  // A response cannot be refused: it crosses without a body the list does not allow.
  if (carriesOpaqueBody(relay.method, sip)) {
    outgoingBody = crossingBody(to, "response", sip).value_or(OutgoingBody());
  }
  const BodyTags bodyTags(outgoingBody);
  const std::string passed = allowedHeaderLines(sip, passedHeaders_);
  nta_agent_t* agent = agentOf(relay.from);
  // RFC 4320: no 408 to a non-INVITE request; nta sends nothing and the sender's own
  // Timer F ends its transaction. Only responses that leave are counted.
  if (status != 408 || invite) environment_.countResponse(dataplane::toString(relay.from), status);
  std::string sessionExpires;
  if (success && negotiates(relay.method)) {
    if (relay.offerInRequest) {
      sdpSentOn_[static_cast<std::size_t>(to)] = relay.offerSent;
      sdpSentOn_[static_cast<std::size_t>(relay.from)] = body;
    } else if (relay.offerInResponse) {
      relay.offerReturned = body;  // completed by the ACK's answer
    }
    sessionTimers_->refreshed(to, sip);
    sessionTimers_->refreshed(relay.from, nullptr);
    sessionExpires = sessionTimers_->sessionExpires(relay.from, false);
  }
  const bool timers = !sessionExpires.empty();
  nta_incoming_treply(
      relay.incoming, status, phraseOf(status),
      TAG_IF(success && negotiates(relay.method), SIPTAG_CONTACT(nta_agent_contact(agent))),
      TAG_IF(timers, SIPTAG_SUPPORTED_STR("timer")),
      TAG_IF(timers, SIPTAG_SESSION_EXPIRES_STR(sessionExpires.c_str())),
      BODY_TAGS(bodyTags),
      TAG_IF(!passed.empty(), SIPTAG_HEADER_STR(passed.c_str())), TAG_END());
  if (!success) {
    if (relay.offerInRequest) restoreMedia();
    const sip_method_t method = relay.method;
    freeRelay(relay);
    // RFC 3261 12.2.1.2: a 408 (our own Timer F or B, or the peer's) or a 481 to a request
    // inside the dialog means the other side's dialog is gone. The sender has its answer
    // (or, for a non-INVITE's 408, its own timeout); the SBC ends the call on both legs
    // rather than keep a half-dead one.
    if (status == 408 || status == 481) {
      log::warning("call", "call ", id_, ": ", sip_method_name(method, "request"),
                   " to the ", dataplane::toString(to), " answered ", status,
                   "; ending the call");
      terminate(metrics::CallResult::aborted,
                status == 408 ? "in_dialog_timeout" : "in_dialog_481");
    }
    return;
  }
  if (invite) {
    relay.awaitingAck = true;  // the client transaction stays until its ACK is sent
    return;
  }
  freeRelay(relay);
}

void Call::relayAck(Relay& relay, const sip_t* sip) {
  if (!relay.awaitingAck) return;
  std::string body;  // the ACK's answer as rewritten for the other leg
  OutgoingBody outgoingBody;
  if (relay.offerInResponse) {
    std::string error;
    const auto split =
        hasBody(sip) ? sessionBodyOf(relay.from, "request", sip, error) : std::nullopt;
    if (!hasBody(sip)) {
      restoreMedia();
    } else if (!split || !split->sdp || !reanswer(relay.from, *split->sdp, body, error)) {
      log::warning("call", "call ", id_, ": unusable SDP in an ACK: ",
                   split && !split->sdp ? "the body has no application/sdp" : error);
      body.clear();
      restoreMedia();
    } else {
      countLeftOutParts(relay.from, "request", *split);
      outgoingBody = split->crossing(body);
    }
  }
  sendAck(legOf(dataplane::otherRealm(relay.from)), relay.outgoing, outgoingBody);
  if (relay.offerInResponse && !body.empty()) {
    sdpSentOn_[static_cast<std::size_t>(relay.from)] = relay.offerReturned;
    sdpSentOn_[static_cast<std::size_t>(dataplane::otherRealm(relay.from))] = body;
  }
  freeRelay(relay);
}

void Call::freeRelay(Relay& relay) {
  if (relay.outgoing != nullptr) nta_outgoing_destroy(relay.outgoing);
  if (relay.incoming != nullptr) nta_incoming_destroy(relay.incoming);
  relay.outgoing = nullptr;
  relay.incoming = nullptr;
  const auto at = std::find_if(relays_.begin(), relays_.end(),
                               [&](const auto& owned) { return owned.get() == &relay; });
  if (at != relays_.end()) relays_.erase(at);
}

void Call::dropRelays() {
  for (auto& relay : relays_) {
    if (relay->incoming != nullptr && nta_incoming_status(relay->incoming) < 200) {
      const int status = relay->method == sip_method_invite ? 487 : 481;
      environment_.countResponse(dataplane::toString(relay->from), status);
      nta_incoming_treply(relay->incoming, status, sip_status_phrase(status), TAG_END());
    }
    if (relay->awaitingAck && relay->outgoing != nullptr) {
      sendAck(legOf(dataplane::otherRealm(relay->from)), relay->outgoing);
    }
    if (relay->outgoing != nullptr) nta_outgoing_destroy(relay->outgoing);
    if (relay->incoming != nullptr) nta_incoming_destroy(relay->incoming);
  }
  relays_.clear();
  pendingOffer_.reset();
}

bool Call::offerPending() const {
  return std::any_of(relays_.begin(), relays_.end(),
                     [](const auto& relay) { return negotiates(relay->method); }) ||
         std::any_of(pracks_.begin(), pracks_.end(),
                     [](const auto& prack) { return prack->offerInRequest; });
}

void Call::sendAck(nta_leg_t* leg, nta_outgoing_t* invite, const OutgoingBody& body) {
  // The ACK of a 2xx carries its INVITE's CSeq number: the leg's latest number may be a
  // PRACK's or an in-dialog request's sent meanwhile.
  const std::uint32_t number = nta_outgoing_cseq(invite);
  const std::string cseq = std::to_string(number) + " ACK";
  lastAck_[static_cast<std::size_t>(leg == callerLeg_ ? callerRealm_ : calleeRealm())] =
      SentAck{number, body};
  const BodyTags bodyTags(body);
  nta_outgoing_t* ack = nta_outgoing_tcreate(
      leg, nullptr, nullptr, routeOf(leg), SIP_METHOD_ACK, nullptr,
      SIPTAG_CSEQ_STR(cseq.c_str()), BODY_TAGS(bodyTags), TAG_END());
  if (ack != nullptr) nta_outgoing_destroy(ack);
}

bool Call::acknowledgeStrayAnswer(nta_agent_t* agent, const sip_t* sip) {
  if (sip->sip_status == nullptr || sip->sip_status->st_status < 200 ||
      sip->sip_status->st_status >= 300 || sip->sip_cseq == nullptr ||
      sip->sip_cseq->cs_method != sip_method_invite || sip->sip_call_id == nullptr ||
      sip->sip_from == nullptr || sip->sip_from->a_tag == nullptr || sip->sip_to == nullptr ||
      sip->sip_to->a_tag == nullptr) {
    return false;
  }
  // Our request's To tag is the dialog's remote tag, its From tag our own.
  nta_leg_t* leg = nta_leg_by_dialog(agent, nullptr, sip->sip_call_id, sip->sip_to->a_tag,
                                     nullptr, sip->sip_from->a_tag, nullptr);
  if (leg == nullptr) return false;
  void* magic = nta_leg_magic(leg, &Call::onCalleeRequest);
  if (magic == nullptr) magic = nta_leg_magic(leg, &Call::onCallerRequest);
  if (magic == nullptr) return false;
  static_cast<Call*>(magic)->acknowledgeAgain(leg, sip);
  return true;
}

void Call::acknowledgeAgain(nta_leg_t* leg, const sip_t* answer) {
  const SentAck& last =
      lastAck_[static_cast<std::size_t>(leg == callerLeg_ ? callerRealm_ : calleeRealm())];
  const std::uint32_t number = answer->sip_cseq->cs_seq;
  const OutgoingBody body = last.cseq == number ? last.body : OutgoingBody();
  const BodyTags bodyTags(body);
  const std::string cseq = std::to_string(number) + " ACK";
  // With the 2xx's own branch nta neither looks for the INVITE transaction (gone) nor
  // sends ACK with it; it keeps the ACK for 64*T1 and re-sends it on further
  // retransmissions itself.
  const char* branch = answer->sip_via != nullptr ? answer->sip_via->v_branch : nullptr;
  if (branch == nullptr) return;
  nta_outgoing_t* ack = nta_outgoing_tcreate(
      leg, nullptr, nullptr, routeOf(leg), SIP_METHOD_ACK, nullptr,
      SIPTAG_CSEQ_STR(cseq.c_str()), NTATAG_ACK_BRANCH(branch), BODY_TAGS(bodyTags), TAG_END());
  if (ack != nullptr) nta_outgoing_destroy(ack);
  log::debug("call", "call ", id_, ": acknowledged a retransmitted 2xx (CSeq ", number, ")");
  // A losing fork's answer is not the call's dialog: ended again, as when it first came.
  if (leg != callerLeg_ && leg != calleeLeg_) sendBye(leg);
}

void Call::sendBye(nta_leg_t* leg, const sip_t* relayedBye) {
  const std::string passed = allowedHeaderLines(relayedBye, passedHeaders_);
  // A BYE's body (a SIP-I peer's ISUP REL with its cause) crosses as an INFO's would; one
  // the list does not allow is left out (counted): the call ends all the same.
  OutgoingBody body;
  if (relayedBye != nullptr && carriesOpaqueBody(sip_method_bye, relayedBye)) {
    const dataplane::Realm from = leg == callerLeg_ ? calleeRealm() : callerRealm_;
    body = crossingBody(from, "request", relayedBye).value_or(OutgoingBody());
  }
  const BodyTags bodyTags(body);
  nta_outgoing_t* bye =
      nta_outgoing_tcreate(leg, nullptr, nullptr, routeOf(leg), SIP_METHOD_BYE, nullptr,
                           TAG_IF(!passed.empty(), SIPTAG_HEADER_STR(passed.c_str())),
                           BODY_TAGS(bodyTags), TAG_END());
  // Nobody waits for the answer: nta keeps retransmitting a destroyed BYE until it is
  // answered or times out.
  if (bye != nullptr) nta_outgoing_destroy(bye);
}

void Call::lineTerminalMoved(const std::string& aor, const policy::IpAddress& from,
                             const policy::IpAddress& address, const std::string& route) {
  if (!route_.line || route_.line->aor != aor || !(route_.line->terminal == from) ||
      state_ == State::over) {
    return;
  }
  followTerminal(address, route);
}

void Call::followTerminal(const policy::IpAddress& address, const std::string& route) {
  if (route_.line->terminalRoute == route) return;
  log::info("call", "call ", id_, ": the line's terminal moved to ", route);
  route_.line->terminal = address;
  route_.line->terminalRoute = route;
  const auto& access = described_[static_cast<std::size_t>(dataplane::Realm::access)];
  const auto& core = described_[static_cast<std::size_t>(dataplane::Realm::core)];
  if (access && core) programStreams(*access, *core);  // latched afresh, new allowed source
}

void Call::terminate(metrics::CallResult result, const char* why) {
  if (state_ == State::over) return;
  if (state_ == State::answered || state_ == State::confirmed) {
    sendBye(callerLeg_);
    sendBye(calleeLeg_);
  } else {
    replyCaller(503, "Service Unavailable", nullptr);
    if (calleeInvite_ != nullptr) nta_outgoing_cancel(calleeInvite_);
  }
  finish(result, why);
}

void Call::observeSetup() {
  if (setupObserved_) return;
  setupObserved_ = true;
  const std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - received_;
  series_.setupSeconds->Observe(elapsed.count());
}

void Call::finish(metrics::CallResult result, const char* outcome) {
  if (state_ == State::over) return;
  if (wasAnswered()) endLosingForks();
  state_ = State::over;
  // A call that ends before its INVITE has a final response (dropped, or a BYE in an
  // early dialog) still counts in the histogram, so its _count matches sbc_calls_total.
  observeSetup();
  series_.count(result);
  slot_.release();
  stopSessionTimers();
  dropRelays();
  dropPracks();
  releaseMedia();
  log::debug("call", "call ", id_, " on trunk ", trunk_, " over: ", metrics::toString(result),
             " (", outcome, ")");
  // A cancelled INVITE still waits for its final response (which nta must acknowledge):
  // the call is destroyed only once it has come.
  if (!calleePending()) environment_.ended(id_);
}

bool Call::calleePending() const {
  return calleeInvite_ != nullptr && nta_outgoing_status(calleeInvite_) < 200;
}

void Call::refreshSession(dataplane::Realm leg) {
  SessionRefresh& refresh = sessionRefreshes_[static_cast<std::size_t>(leg)];
  if (state_ != State::answered && state_ != State::confirmed) return;
  if (refresh.request != nullptr && !refresh.acknowledged) return;  // still under way
  // A re-INVITE or UPDATE relayed right now refreshes both legs when answered; the other
  // leg's refresh re-INVITE is an offer too (one exchange at a time).
  if (offerPending() || refreshPending()) {
    sessionTimers_->retryRefresh(leg);
    return;
  }
  if (refresh.request != nullptr) nta_outgoing_destroy(refresh.request);
  refresh.request = nullptr;
  refresh.acknowledged = false;
  refresh.call = this;
  refresh.leg = leg;
  const std::string& sdp = sdpSentOn_[static_cast<std::size_t>(leg)];
  refresh.byInvite = refreshByInvite_[static_cast<std::size_t>(leg)] && !sdp.empty();
  const std::string sessionExpires = sessionTimers_->sessionExpires(leg, true);
  // UPDATE without a body (RFC 4028 section 9): no offer, so nothing of the media moves.
  // A re-INVITE offers the session as it stands (same o= version: nothing changed).
  nta_outgoing_t* request = nta_outgoing_tcreate(
      legOf(leg), &Call::onSessionRefreshResponse, &refresh, routeOf(legOf(leg)),
      refresh.byInvite ? sip_method_invite : sip_method_update,
      refresh.byInvite ? "INVITE" : "UPDATE", nullptr,
      SIPTAG_CONTACT(nta_agent_contact(agentOf(leg))), SIPTAG_SUPPORTED_STR("timer"),
      SIPTAG_SESSION_EXPIRES_STR(sessionExpires.c_str()),
      TAG_IF(refresh.byInvite, SIPTAG_CONTENT_TYPE_STR("application/sdp")),
      TAG_IF(refresh.byInvite, SIPTAG_PAYLOAD_STR(sdp.c_str())), TAG_END());
  if (request == nullptr) {
    sessionTimers_->retryRefresh(leg);
  } else if (nta_outgoing_status(request) >= 200) {
    // nta answered it from inside nta_outgoing_tcreate (the callback has run and kept it
    // only if it acknowledged a 2xx).
    if (refresh.request != request) nta_outgoing_destroy(request);
  } else {
    refresh.request = request;
  }
}

bool Call::refreshPending() const {
  return std::any_of(sessionRefreshes_.begin(), sessionRefreshes_.end(), [](const auto& refresh) {
    return refresh.request != nullptr && refresh.byInvite && !refresh.acknowledged;
  });
}

bool Call::recheckRefreshAnswer(dataplane::Realm leg, const sip_t* sip) {
  std::string error;
  const auto split = hasBody(sip) ? sessionBodyOf(leg, "response", sip, error) : std::nullopt;
  if (!split || !split->sdp) return false;
  auto& described = described_[static_cast<std::size_t>(leg)];
  const auto& other = described_[static_cast<std::size_t>(dataplane::otherRealm(leg))];
  if (!described || !other) return false;
  auto answer = parseSdp(*split->sdp, error);
  if (!answer || answer->streams.size() != described->streams.size()) return false;
  // Our offer was the session unchanged: a stream the peer had accepted stays accepted,
  // the relay ports stay; only the peer's own address or direction may have moved.
  for (std::size_t i = 0; i < answer->streams.size(); ++i) {
    if (answer->streams[i].rejected != described->streams[i].rejected) return false;
  }
  described = std::move(answer);
  const auto& access = described_[static_cast<std::size_t>(dataplane::Realm::access)];
  const auto& core = described_[static_cast<std::size_t>(dataplane::Realm::core)];
  programStreams(*access, *core);
  return true;
}

int Call::onSessionRefreshResponse(void* magic, nta_outgoing_t* request, const sip_t* sip) {
  SessionRefresh& refresh = *static_cast<SessionRefresh*>(magic);
  Call& call = *refresh.call;
  const int status = nta_outgoing_status(request);
  if (status < 200) return 0;
  if (refresh.acknowledged) return 0;  // a retransmitted 2xx: nta re-sends the ACK
  const bool byInvite = refresh.byInvite;
  nta_leg_t* leg = call.legOf(refresh.leg);
  if (byInvite && status < 300 && leg != nullptr) {
    // The 2xx of a re-INVITE is acknowledged on the leg, also when a BYE crossed it (the
    // call is ending: RFC 3261 13.2.2.4 still wants the ACK); the transaction stays for its
    // retransmissions.
    call.sendAck(leg, request);
    if (refresh.request == nullptr) refresh.request = request;  // from inside tcreate
    refresh.acknowledged = true;
  } else {
    if (refresh.request == request) nta_outgoing_destroy(request);  // else still in tcreate
    refresh.request = nullptr;
  }
  if (call.state_ == State::over) return 0;
  if (status < 300) {
    if (byInvite && !call.recheckRefreshAnswer(refresh.leg, sip)) {
      log::warning("call", "call ", call.id_, ": the ", dataplane::toString(refresh.leg),
                   "'s answer to a session refresh re-INVITE does not match the session; "
                   "ending the call");
      call.countSessionTimer("refresh_failed");
      call.terminate(metrics::CallResult::aborted, "bad_sdp_answer");
      return 0;
    }
    call.countSessionTimer("refreshed");
    call.sessionTimers_->refreshed(refresh.leg, sip);
    return 0;
  }
  // The dialog is gone on that side, or the peer is unreachable (RFC 4028 section 10).
  if (status == 408 || status == 481) {
    log::info("call", "call ", call.id_, ": session refresh on the ",
              dataplane::toString(refresh.leg), " answered ", status, "; ending the call");
    call.countSessionTimer("refresh_failed");
    call.terminate(metrics::CallResult::aborted, "session_refresh_failed");
    return 0;
  }
  if (status == 405 || status == 501) {
    if (!byInvite && !call.sdpSentOn_[static_cast<std::size_t>(refresh.leg)].empty()) {
      // A peer without UPDATE (RFC 4028 lets the refresher use either): it is refreshed by
      // re-INVITE from now on, starting at once.
      log::info("call", "call ", call.id_, ": the ", dataplane::toString(refresh.leg),
                " does not take UPDATE (", status, "); refreshing it by re-INVITE");
      call.countSessionTimer("update_refused");
      call.refreshByInvite_[static_cast<std::size_t>(refresh.leg)] = true;
      call.refreshSession(refresh.leg);
      return 0;
    }
    // Not even a re-INVITE: that leg is no longer refreshed (media timeouts still end a
    // dead call).
    log::info("call", "call ", call.id_, ": the ", dataplane::toString(refresh.leg),
              " refused a session refresh (", status, "); its session is no longer refreshed");
    call.countSessionTimer("unsupported");
    call.sessionTimers_->stopLeg(refresh.leg);
    return 0;
  }
  // Anything else (491 glare, 500) is tried again a quarter interval later.
  call.sessionTimers_->retryRefresh(refresh.leg);
  return 0;
}

void Call::sessionExpired(dataplane::Realm leg) {
  if (state_ == State::over) return;
  log::info("call", "call ", id_, ": the ", dataplane::toString(leg),
            " did not refresh its session in time; ending the call");
  countSessionTimer("expired");
  terminate(metrics::CallResult::aborted, "session_expired");
}

std::optional<SessionBody> Call::sessionBodyOf(dataplane::Realm from, const char* message,
                                               const sip_t* sip, std::string& error) {
  auto split = splitSessionBody(sip, environment_.settings->bodyTypes, error);
  if (!split) countBodyRefused(from, message, refusalReason(BodyVerdict::refusedMultipart));
  return split;
}

void Call::countLeftOutParts(dataplane::Realm from, const char* message,
                             const SessionBody& body) {
  if (body.refusedParts) countBodyRefused(from, message, body.multipart ? "part" : "content_type");
}

void Call::countBodyRefused(dataplane::Realm from, const char* message, const char* reason) {
  environment_.metrics->counter(metrics::FamilyId::sipBodiesRefusedTotal)
      .Add({{"realm", dataplane::toString(from)}, {"message", message}, {"reason", reason}})
      .Increment();
}

std::optional<OutgoingBody> Call::crossingBody(dataplane::Realm from, const char* message,
                                               const sip_t* sip) {
  FilteredBody filtered = filterBody(sip, environment_.settings->bodyTypes);
  if (filtered.verdict == BodyVerdict::refusedType ||
      filtered.verdict == BodyVerdict::refusedMultipart) {
    countBodyRefused(from, message, refusalReason(filtered.verdict));
    return std::nullopt;
  }
  return std::move(filtered.crossing);
}

void Call::countSessionTimer(const char* result) {
  environment_.metrics->counter(metrics::FamilyId::sessionTimerTotal)
      .Add({{"trunk", trunk_}, {"result", result}})
      .Increment();
}

void Call::stopSessionTimers() {
  if (sessionTimers_ != nullptr) sessionTimers_->stop();
  for (auto& refresh : sessionRefreshes_) {
    // Destroyed unanswered, nta still completes the UPDATE transaction on its own.
    if (refresh.request != nullptr) nta_outgoing_destroy(refresh.request);
    refresh.request = nullptr;
  }
}

}  // namespace sbc::signaling
