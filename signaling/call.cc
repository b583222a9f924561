#include "signaling/call.h"

#include <string>

#include "common/log.h"

namespace sbc::signaling {
namespace {

std::string hostForUri(const std::string& host) {
  return host.find(':') != std::string::npos ? "[" + host + "]" : host;
}

const char* phraseOf(const sip_t* sip, int status) {
  if (sip != nullptr && sip->sip_status != nullptr && sip->sip_status->st_phrase != nullptr) {
    return sip->sip_status->st_phrase;
  }
  return sip_status_phrase(status);
}

}  // namespace

void CallEnvironment::countResponse(const char* realm, int code) const {
  metrics->counter(metrics::FamilyId::sipResponsesTotal)
      .Add({{"realm", realm}, {"code", std::to_string(code)}})
      .Increment();
}

Call::Call(CallEnvironment& environment, std::uint64_t id, std::string trunk,
           std::vector<policy::IpPrefix> trunkPrefixes, policy::CallSlot slot, msg_t* invite,
           sip_t* sip)
    : environment_(environment),
      id_(id),
      trunk_(std::move(trunk)),
      trunkPrefixes_(std::move(trunkPrefixes)),
      slot_(std::move(slot)) {
  // The caller's dialog: our side is the request's To, theirs its From.
  callerLeg_ = nta_leg_tcreate(environment_.accessAgent, &Call::onCallerRequest, this,
                               SIPTAG_CALL_ID(sip->sip_call_id), SIPTAG_FROM(sip->sip_to),
                               SIPTAG_TO(sip->sip_from),
                               NTATAG_REMOTE_CSEQ(sip->sip_cseq->cs_seq), TAG_END());
  if (callerLeg_ != nullptr) {
    nta_leg_tag(callerLeg_, nullptr);
    nta_leg_server_route(callerLeg_, sip->sip_record_route, sip->sip_contact);
  }
  callerInvite_ = nta_incoming_create(environment_.accessAgent, callerLeg_, invite, sip,
                                      TAG_END());
  if (callerInvite_ == nullptr || callerLeg_ == nullptr) {
    log::error("call", "cannot create the caller's dialog; call dropped");
    finish("internal_error");
    return;
  }
  nta_incoming_tag(callerInvite_, nta_leg_get_tag(callerLeg_));
  nta_incoming_bind(callerInvite_, &Call::onCallerAckOrCancel, this);

  const unsigned hopsLeft = sip->sip_max_forwards != nullptr
                                ? static_cast<unsigned>(sip->sip_max_forwards->mf_count)
                                : 70;
  if (hopsLeft == 0) {
    replyCaller(483, "Too Many Hops", nullptr);
    finish("too_many_hops");
    return;
  }

  std::string offer;
  std::string mediaError;
  if (!anchorOffer(sip, offer, mediaError)) {
    log::warning("call", "call ", id_, " from trunk ", trunk_, " refused: ", mediaError);
    const bool noPorts = mediaError == "no media ports left";
    replyCaller(noPorts ? 503 : 488, noPorts ? "Service Unavailable" : "Not Acceptable Here",
                nullptr);
    finish(noPorts ? "no_media_ports" : "bad_sdp");
    return;
  }

  // The callee's dialog, built from nothing of the caller's but the dialled user: new
  // Call-ID (nta makes one), tags, Via, Contact; From and To at the SBC's and the core's
  // addresses.
  const auto& hop = environment_.settings->coreNextHops.front();
  const auto& ourCore = environment_.settings->core.sip.front();
  const char* user = sip->sip_request->rq_url->url_user;
  const char* caller = sip->sip_from->a_url->url_user;
  const std::string userPart = user != nullptr ? std::string(user) + "@" : "";
  const std::string requestUri = "sip:" + userPart + hostForUri(hop.host) + ":" +
                                 std::to_string(hop.port) +
                                 ";transport=" + config::toString(hop.transport);
  const std::string from = "<sip:" + (caller != nullptr ? std::string(caller) + "@" : "") +
                           hostForUri(ourCore.address) + ">";
  const std::string to = "<sip:" + userPart + hostForUri(hop.host) + ">";
  calleeLeg_ = nta_leg_tcreate(environment_.coreAgent, &Call::onCalleeRequest, this,
                               SIPTAG_FROM_STR(from.c_str()), SIPTAG_TO_STR(to.c_str()),
                               TAG_END());
  if (calleeLeg_ != nullptr) nta_leg_tag(calleeLeg_, nullptr);
  const std::string maxForwards = std::to_string(hopsLeft - 1);
  calleeInvite_ =
      calleeLeg_ == nullptr
          ? nullptr
          : nta_outgoing_tcreate(calleeLeg_, &Call::onCalleeResponse, this, nullptr,
                                 SIP_METHOD_INVITE, URL_STRING_MAKE(requestUri.c_str()),
                                 SIPTAG_CONTACT(nta_agent_contact(environment_.coreAgent)),
                                 SIPTAG_MAX_FORWARDS_STR(maxForwards.c_str()),
                                 TAG_IF(!offer.empty(), SIPTAG_CONTENT_TYPE_STR("application/sdp")),
                                 TAG_IF(!offer.empty(), SIPTAG_PAYLOAD_STR(offer.c_str())),
                                 TAG_END());
  if (calleeInvite_ == nullptr) {
    replyCaller(500, "Internal Server Error", nullptr);
    finish("internal_error");
  }
}

Call::~Call() {
  releaseMedia();
  if (callerInvite_ != nullptr) nta_incoming_destroy(callerInvite_);
  if (calleeInvite_ != nullptr) nta_outgoing_destroy(calleeInvite_);
  if (callerLeg_ != nullptr) nta_leg_destroy(callerLeg_);
  if (calleeLeg_ != nullptr) nta_leg_destroy(calleeLeg_);
}

void Call::replyCaller(int status, const char* phrase, const sip_t* response) {
  if (callerInvite_ == nullptr || nta_incoming_status(callerInvite_) >= 200) return;
  // A response carrying the callee's SDP is anchored and rewritten for the trunk first.
  std::string body;
  if (response != nullptr && response->sip_payload != nullptr && status > 100 && status < 300) {
    std::string error;
    if (!anchorAnswer(response, body, error)) {
      log::warning("call", "call ", id_, ": unusable SDP from the core: ", error);
      status = 502;
      phrase = "Bad Gateway";
      body.clear();
      if (calleeInvite_ != nullptr && nta_outgoing_status(calleeInvite_) < 200) {
        nta_outgoing_cancel(calleeInvite_);
      } else {
        sendBye(calleeLeg_);
      }
    }
  }
  environment_.countResponse("access", status);
  const bool dialogue = status > 100 && status < 300;
  nta_incoming_treply(
      callerInvite_, status, phrase,
      TAG_IF(dialogue, SIPTAG_CONTACT(nta_agent_contact(environment_.accessAgent))),
      TAG_IF(!body.empty(), SIPTAG_CONTENT_TYPE_STR("application/sdp")),
      TAG_IF(!body.empty(), SIPTAG_PAYLOAD_STR(body.c_str())),
      TAG_IF(status == 503, SIPTAG_RETRY_AFTER_STR("5")), TAG_END());
  if (status == 502) finish("bad_sdp_answer");
}

bool Call::anchorOffer(const sip_t* invite, std::string& rewritten, std::string& error) {
  if (invite->sip_payload == nullptr || invite->sip_payload->pl_len == 0) {
    // A late offer (SDP in the 200 and the ACK) is not anchored yet: refuse it rather than
    // let the peers' media addresses through.
    error = "INVITE without SDP (late offer) is not supported yet";
    return false;
  }
  const std::string_view body(invite->sip_payload->pl_data, invite->sip_payload->pl_len);
  auto description = parseSdp(body, error);
  if (!description) return false;
  std::vector<std::uint16_t> corePorts;
  for (const auto& stream : description->streams) {
    if (stream.rejected) {
      streams_.emplace_back(std::nullopt);
      corePorts.push_back(0);
      continue;
    }
    auto endpoints = environment_.relay->openStream(trunk_);
    if (!endpoints) {
      error = "no media ports left";
      return false;
    }
    environment_.streamOpened(endpoints->id, id_);
    streams_.emplace_back(endpoints);
    dataplane::LegMedia caller;
    caller.rtp = stream.rtp;
    caller.rtcp = stream.rtcp;
    caller.allowedSources = trunkPrefixes_;
    caller.silenceExpected = stream.direction == SdpDirection::recvonly ||
                             stream.direction == SdpDirection::inactive;
    environment_.relay->updateLeg(endpoints->id, dataplane::Realm::access, caller);
    corePorts.push_back(endpoints->rtp[static_cast<std::size_t>(dataplane::Realm::core)].port);
  }
  auto sdp = rewriteSdp(body, environment_.coreMedia, corePorts, id_, sdpVersion_, error);
  if (!sdp) return false;
  offer_ = std::move(description);
  rewritten = std::move(*sdp);
  return true;
}

bool Call::anchorAnswer(const sip_t* response, std::string& rewritten, std::string& error) {
  const std::string_view body(response->sip_payload->pl_data, response->sip_payload->pl_len);
  const auto answer = parseSdp(body, error);
  if (!answer) return false;
  if (!offer_ || answer->streams.size() != streams_.size()) {
    error = "the answer's m= lines do not match the offer's";
    return false;
  }
  std::vector<std::uint16_t> accessPorts;
  for (std::size_t i = 0; i < streams_.size(); ++i) {
    const auto& stream = answer->streams[i];
    if (!streams_[i] || stream.rejected) {
      accessPorts.push_back(0);
      continue;
    }
    const auto& offered = offer_->streams[i];
    const bool mux = offered.rtcpMux && stream.rtcpMux;
    const auto sends = [](SdpDirection direction) {
      return direction == SdpDirection::sendrecv || direction == SdpDirection::sendonly;
    };
    const auto receives = [](SdpDirection direction) {
      return direction == SdpDirection::sendrecv || direction == SdpDirection::recvonly;
    };
    dataplane::LegMedia callee;
    callee.rtp = stream.rtp;
    callee.rtcp = stream.rtcp;
    callee.rtcpMux = mux;
    // The core's media comes from where its SDP says (a media server may not be the
    // signalling next hop).
    const auto& address = stream.rtp->address;
    callee.allowedSources = {
        policy::IpPrefix{address, static_cast<std::uint8_t>(
                                      address.family == policy::IpFamily::v4 ? 32 : 128)}};
    callee.silenceExpected = !(sends(stream.direction) && receives(offered.direction));
    const auto id = streams_[i]->id;
    environment_.relay->updateLeg(id, dataplane::Realm::core, callee);

    dataplane::LegMedia caller;
    caller.rtp = offered.rtp;
    caller.rtcp = offered.rtcp;
    caller.rtcpMux = mux;
    caller.allowedSources = trunkPrefixes_;
    caller.silenceExpected = !(sends(offered.direction) && receives(stream.direction));
    environment_.relay->updateLeg(id, dataplane::Realm::access, caller);
    accessPorts.push_back(streams_[i]->rtp[static_cast<std::size_t>(dataplane::Realm::access)].port);
  }
  auto sdp = rewriteSdp(body, environment_.accessMedia, accessPorts, id_, ++sdpVersion_, error);
  if (!sdp) return false;
  rewritten = std::move(*sdp);
  return true;
}

void Call::releaseMedia() {
  for (auto& stream : streams_) {
    if (!stream) continue;
    environment_.relay->closeStream(stream->id);
    environment_.streamClosed(stream->id);
    stream.reset();
  }
}

int Call::onCalleeResponse(void* magic, nta_outgoing_t* request, const sip_t* sip) {
  Call& call = *static_cast<Call*>(magic);
  const int status = nta_outgoing_status(request);
  if (status < 200) {
    if (status > 100 && call.state_ == State::calling) call.state_ = State::early;
    if (status > 100) call.replyCaller(status, phraseOf(sip, status), sip);
    return 0;
  }
  if (status < 300) {
    if (call.state_ == State::answered || call.state_ == State::confirmed) return 0;
    if (call.state_ == State::over) {
      // Answered after the caller gave up: acknowledge and hang up at once.
      nta_leg_rtag(call.calleeLeg_, sip->sip_to->a_tag);
      nta_leg_client_reroute(call.calleeLeg_, sip->sip_record_route, sip->sip_contact, 1);
      nta_outgoing_t* ack = nta_outgoing_tcreate(call.calleeLeg_, nullptr, nullptr, nullptr,
                                                 SIP_METHOD_ACK, nullptr, TAG_END());
      if (ack != nullptr) nta_outgoing_destroy(ack);
      call.sendBye(call.calleeLeg_);
      call.environment_.ended(call.id_);
      return 0;
    }
    nta_leg_rtag(call.calleeLeg_, sip->sip_to->a_tag);
    nta_leg_client_reroute(call.calleeLeg_, sip->sip_record_route, sip->sip_contact, 1);
    call.state_ = State::answered;
    call.replyCaller(status, phraseOf(sip, status), sip);
    return 0;
  }
  // A final failure: nta acknowledges it; the caller hears the same status.
  if (call.state_ == State::over) {
    call.environment_.ended(call.id_);  // the answer to our CANCEL: nothing left to wait for
    return 0;
  }
  call.replyCaller(status, phraseOf(sip, status), sip);
  call.finish("failed");
  return 0;
}

int Call::onCallerAckOrCancel(void* magic, nta_incoming_t*, const sip_t* sip) {
  Call& call = *static_cast<Call*>(magic);
  if (sip == nullptr) {
    // Timer H: our 200 was never acknowledged. End both dialogs.
    log::warning("call", "no ACK from the trunk for the 200; ending the call");
    call.terminate("no_ack");
    return 0;
  }
  if (sip->sip_request->rq_method == sip_method_ack) {
    if (call.state_ != State::answered) return 0;
    call.state_ = State::confirmed;
    nta_outgoing_t* ack = nta_outgoing_tcreate(call.calleeLeg_, nullptr, nullptr, nullptr,
                                               SIP_METHOD_ACK, nullptr, TAG_END());
    if (ack != nullptr) nta_outgoing_destroy(ack);
    return 0;
  }
  if (sip->sip_request->rq_method == sip_method_cancel) {
    // nta has answered the CANCEL 200 and the INVITE 487 already.
    call.environment_.countResponse("access", 487);
    if (call.calleeInvite_ != nullptr) nta_outgoing_cancel(call.calleeInvite_);
    call.finish("cancelled");
  }
  return 0;
}

int Call::onCallerRequest(void* magic, nta_leg_t*, nta_incoming_t* request, const sip_t* sip) {
  return static_cast<Call*>(magic)->relayInDialog(true, request, sip);
}

int Call::onCalleeRequest(void* magic, nta_leg_t*, nta_incoming_t* request, const sip_t* sip) {
  return static_cast<Call*>(magic)->relayInDialog(false, request, sip);
}

int Call::relayInDialog(bool fromCaller, nta_incoming_t*, const sip_t* sip) {
  const char* realm = fromCaller ? "access" : "core";
  if (sip->sip_request->rq_method == sip_method_bye) {
    environment_.countResponse(realm, 200);
    if (state_ == State::over) return 200;
    if (fromCaller) {
      if (state_ == State::answered || state_ == State::confirmed) {
        sendBye(calleeLeg_);
      } else if (calleeInvite_ != nullptr) {
        nta_outgoing_cancel(calleeInvite_);
      }
      finish("bye_from_caller");
    } else {
      sendBye(callerLeg_);
      finish("bye_from_callee");
    }
    return 200;
  }
  // re-INVITE, UPDATE, INFO, NOTIFY and OPTIONS inside the dialog are relayed by the
  // B2BUA's next slice; until then they are refused without harming the call.
  environment_.countResponse(realm, 501);
  return 501;
}

void Call::sendBye(nta_leg_t* leg) {
  nta_outgoing_t* bye =
      nta_outgoing_tcreate(leg, nullptr, nullptr, nullptr, SIP_METHOD_BYE, nullptr, TAG_END());
  // Nobody waits for the answer: nta keeps retransmitting a destroyed BYE until it is
  // answered or times out.
  if (bye != nullptr) nta_outgoing_destroy(bye);
}

void Call::terminate(const char* why) {
  if (state_ == State::over) return;
  if (state_ == State::answered || state_ == State::confirmed) {
    sendBye(callerLeg_);
    sendBye(calleeLeg_);
  } else {
    replyCaller(503, "Service Unavailable", nullptr);
    if (calleeInvite_ != nullptr) nta_outgoing_cancel(calleeInvite_);
  }
  finish(why);
}

void Call::finish(const char* outcome) {
  if (state_ == State::over) return;
  state_ = State::over;
  slot_.release();
  releaseMedia();
  log::debug("call", "call ", id_, " on trunk ", trunk_, " over: ", outcome);
  // A cancelled INVITE still waits for its final response (which nta must acknowledge):
  // the call is destroyed only once it has come.
  if (!calleePending()) environment_.ended(id_);
}

bool Call::calleePending() const {
  return calleeInvite_ != nullptr && nta_outgoing_status(calleeInvite_) < 200;
}

}  // namespace sbc::signaling
