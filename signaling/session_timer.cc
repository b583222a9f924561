#include "signaling/session_timer.h"

#include <algorithm>
#include <strings.h>

namespace sbc::signaling {
namespace {

bool supportsTimer(const sip_t* sip) {
  return sip != nullptr && sip_has_supported(sip->sip_supported, "timer");
}

bool refresherIs(const sip_session_expires_t* expires, const char* who) {
  return expires != nullptr && expires->x_refresher != nullptr &&
         ::strcasecmp(expires->x_refresher, who) == 0;
}

// Session-Expires values of peers are bounded, so the milliseconds below cannot overflow.
constexpr std::uint32_t kMaxIntervalS = 86400;

}  // namespace

std::uint32_t sessionIntervalTooSmall(const SessionTimerSettings& settings,
                                      const sip_t* request) {
  if (settings.expiresS == 0 || request == nullptr || request->sip_session_expires == nullptr) {
    return 0;
  }
  return request->sip_session_expires->x_delta < settings.minSeS ? settings.minSeS : 0;
}

SessionTimers::SessionTimers(su_root_t* root, const SessionTimerSettings& settings,
                             dataplane::Realm callerRealm,
                             std::function<void(dataplane::Realm)> refresh,
                             std::function<void(dataplane::Realm)> expired)
    : settings_(settings),
      callerRealm_(callerRealm),
      refresh_(std::move(refresh)),
      expired_(std::move(expired)),
      calleeAsked_(settings.expiresS) {
  for (std::size_t i = 0; i < legs_.size(); ++i) {
    legs_[i].owner = this;
    legs_[i].realm = static_cast<dataplane::Realm>(i);
    if (enabled()) legs_[i].timer = su_timer_create(su_root_task(root), 0);
  }
}

SessionTimers::~SessionTimers() {
  for (auto& leg : legs_) {
    if (leg.timer != nullptr) su_timer_destroy(leg.timer);
    leg.timer = nullptr;
  }
}

void SessionTimers::callerOffered(const sip_t* invite) {
  if (!enabled()) return;
  callerSupportsTimer_ = supportsTimer(invite);
  if (const auto* expires = invite->sip_session_expires) {
    callerAsked_ = static_cast<std::uint32_t>(std::min<unsigned long>(expires->x_delta,
                                                                      kMaxIntervalS));
    if (refresherIs(expires, "uac")) callerRefresher_ = "uac";
    if (refresherIs(expires, "uas")) callerRefresher_ = "uas";
  }
}

std::string SessionTimers::calleeSessionExpires() const {
  return enabled() ? std::to_string(calleeAsked_) : std::string();
}

std::string SessionTimers::minSe() const {
  // After a 422, the Min-SE the callee named (RFC 4028 section 6: the largest received).
  if (!enabled()) return {};
  return std::to_string(calleeIntervalRaised_ ? std::max(settings_.minSeS, calleeAsked_)
                                              : settings_.minSeS);
}

bool SessionTimers::raiseCalleeInterval(const sip_t* response) {
  if (!enabled() || stopped_ || calleeIntervalRaised_ || response == nullptr ||
      response->sip_min_se == nullptr) {
    return false;
  }
  const unsigned long asked = response->sip_min_se->min_delta;
  if (asked <= calleeAsked_ || asked > settings_.maxExpiresS) return false;
  calleeAsked_ = static_cast<std::uint32_t>(asked);
  calleeIntervalRaised_ = true;
  return true;
}

void SessionTimers::calleeAnswered(const sip_t* response) {
  if (!enabled() || stopped_) return;
  Leg& callee = leg(dataplane::otherRealm(callerRealm_));
  const auto* expires = response != nullptr ? response->sip_session_expires : nullptr;
  if (expires != nullptr && expires->x_delta > 0) {
    // Never shorter than our own Min-SE, whatever the callee says.
    callee.intervalS = static_cast<std::uint32_t>(std::clamp<unsigned long>(
        expires->x_delta, settings_.minSeS, kMaxIntervalS));
    // In a response, "uac" is the SBC; a callee that names no refresher leaves it to us.
    callee.sbcRefreshes = !refresherIs(expires, "uas");
  } else {
    // A callee without session timers: the SBC refreshes anyway, so a callee that went
    // away is found by the refresh failing.
    callee.intervalS = calleeAsked_;
    callee.sbcRefreshes = true;
  }
  armForInterval(callee);
}

void SessionTimers::callerAnswered() {
  if (!enabled() || stopped_) return;
  Leg& caller = leg(callerRealm_);
  caller.intervalS = callerAsked_ != 0 ? callerAsked_ : settings_.expiresS;
  // The caller refreshes when it said so, or when it supports timers and left the choice
  // to us (the UAS side keeps fewer timers that way); otherwise the SBC refreshes.
  caller.sbcRefreshes = callerRefresher_ == "uas" ||
                        (callerRefresher_.empty() && !callerSupportsTimer_);
  armForInterval(caller);
}

bool SessionTimers::callerRefreshes() const {
  return enabled() && leg(callerRealm_).intervalS != 0 && !leg(callerRealm_).sbcRefreshes;
}

std::string SessionTimers::sessionExpires(dataplane::Realm realm, bool asRequest) const {
  const Leg& state = leg(realm);
  if (!enabled() || state.intervalS == 0) return {};
  // "uac" names the sender of the request the header travels in.
  const bool uac = asRequest == state.sbcRefreshes;
  return std::to_string(state.intervalS) + ";refresher=" + (uac ? "uac" : "uas");
}

void SessionTimers::peerRequested(dataplane::Realm realm, const sip_t* request) {
  if (!enabled() || stopped_ || request == nullptr) return;
  Leg& state = leg(realm);
  const auto* expires = request->sip_session_expires;
  if (state.intervalS == 0 || expires == nullptr || expires->x_delta < settings_.minSeS) return;
  state.intervalS =
      static_cast<std::uint32_t>(std::min<unsigned long>(expires->x_delta, kMaxIntervalS));
  // In a request from the peer, "uac" is the peer.
  if (refresherIs(expires, "uac")) state.sbcRefreshes = false;
  if (refresherIs(expires, "uas")) state.sbcRefreshes = true;
}

void SessionTimers::refreshed(dataplane::Realm realm, const sip_t* response) {
  if (!enabled() || stopped_) return;
  Leg& state = leg(realm);
  if (state.intervalS == 0) return;
  const auto* expires = response != nullptr ? response->sip_session_expires : nullptr;
  if (expires != nullptr && expires->x_delta >= settings_.minSeS) {
    state.intervalS =
        static_cast<std::uint32_t>(std::min<unsigned long>(expires->x_delta, kMaxIntervalS));
    state.sbcRefreshes = !refresherIs(expires, "uas");
  }
  armForInterval(state);
}

void SessionTimers::retryRefresh(dataplane::Realm realm) {
  if (!enabled() || stopped_) return;
  Leg& state = leg(realm);
  if (state.intervalS == 0 || !state.sbcRefreshes) return;
  arm(state, state.intervalS * 1000 / 4);
}

void SessionTimers::stopLeg(dataplane::Realm realm) {
  Leg& state = leg(realm);
  state.intervalS = 0;
  if (state.timer != nullptr) su_timer_reset(state.timer);
}

void SessionTimers::stop() {
  stopped_ = true;
  for (auto& state : legs_) {
    if (state.timer != nullptr) su_timer_reset(state.timer);
  }
}

void SessionTimers::armForInterval(Leg& state) {
  const std::uint32_t intervalMs = state.intervalS * 1000;
  if (state.sbcRefreshes) {
    arm(state, intervalMs / 2);
  } else {
    arm(state, intervalMs - std::min<std::uint32_t>(32000, intervalMs / 3));
  }
}

void SessionTimers::arm(Leg& state, std::uint32_t delayMs) {
  if (state.timer == nullptr) return;
  su_timer_reset(state.timer);
  su_timer_set_interval(state.timer, &SessionTimers::onTimer, &state,
                        static_cast<su_duration_t>(std::max<std::uint32_t>(delayMs, 1)));
}

void SessionTimers::onTimer(su_root_magic_t*, su_timer_t*, su_timer_arg_t* arg) {
  Leg& state = *static_cast<Leg*>(arg);
  SessionTimers& self = *state.owner;
  if (self.stopped_) return;
  // Either callback may end the call; nothing of `self` is touched afterwards.
  if (state.sbcRefreshes) {
    self.refresh_(state.realm);
  } else {
    self.expired_(state.realm);
  }
}

}  // namespace sbc::signaling
