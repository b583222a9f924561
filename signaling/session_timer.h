#pragma once
// RFC 4028 session timers on the two dialogs of one call. Each leg is a session of its own:
// on the caller's leg the SBC is the UAS, on the callee's leg the UAC. On a leg the SBC
// refreshes, it asks for a refresh (the call sends an UPDATE without SDP, or a re-INVITE
// to a peer without UPDATE) at half the
// interval; on a leg the peer refreshes, the call is ended when no refresh came within the
// interval less min(32 s, interval / 3) (RFC 4028 section 10). A refresh is any re-INVITE
// or UPDATE on the leg answered 2xx, the SBC's own or one relayed from the other leg.
// Signaling thread only; timers run on the signaling su_root.

#include <array>
#include <cstdint>
#include <functional>
#include <string>

#include "dataplane/media_relay.h"
#include "signaling/sofia.h"

namespace sbc::signaling {

struct SessionTimerSettings {
  std::uint32_t expiresS = 0;  // the interval the SBC asks for; 0 = session timers off
  std::uint32_t minSeS = 90;   // the smallest interval the SBC accepts (Min-SE)
  std::uint32_t maxExpiresS = 7200;  // the most it agrees to when a callee's 422 asks more
};

// The Min-SE to answer 422 with when `request` asks for a Session-Expires below the SBC's
// Min-SE; 0 when the request is acceptable (or timers are off).
std::uint32_t sessionIntervalTooSmall(const SessionTimerSettings& settings,
                                      const sip_t* request);

class SessionTimers {
 public:
  // `refresh(leg)`: the SBC should refresh that leg now. `expired(leg)`: the peer of that
  // leg did not refresh in time. Neither is called after stop() or destruction.
  SessionTimers(su_root_t* root, const SessionTimerSettings& settings,
                dataplane::Realm callerRealm, std::function<void(dataplane::Realm)> refresh,
                std::function<void(dataplane::Realm)> expired);
  ~SessionTimers();
  SessionTimers(const SessionTimers&) = delete;
  SessionTimers& operator=(const SessionTimers&) = delete;

  bool enabled() const { return settings_.expiresS != 0; }

  // The caller's initial INVITE: its Session-Expires, refresher and Supported: timer.
  void callerOffered(const sip_t* invite);
  // Headers of the SBC's INVITE to the callee ("" when off).
  std::string calleeSessionExpires() const;
  std::string minSe() const;
  // The callee answered the INVITE 422 with `response`'s Min-SE (RFC 4028 section 6): true
  // when the INVITE may be sent once more with Session-Expires and Min-SE raised to it
  // (the first 422, a Min-SE above what was asked and within maxExpiresS).
  bool raiseCalleeInterval(const sip_t* response);
  // The callee's 2xx: the interval and refresher it chose; arms the callee's leg.
  void calleeAnswered(const sip_t* response);
  // The SBC answers the caller 2xx: arms the caller's leg. The Session-Expires value for
  // that 2xx, and whether it needs Require: timer (the caller refreshes).
  void callerAnswered();
  bool callerRefreshes() const;

  // Session-Expires for a request (`asRequest`) or a response the SBC sends on `leg`.
  std::string sessionExpires(dataplane::Realm leg, bool asRequest) const;

  // A re-INVITE or UPDATE from the peer of `leg`: its Session-Expires (if any) sets the
  // leg's interval and refresher for when it is answered 2xx.
  void peerRequested(dataplane::Realm leg, const sip_t* request);
  // A re-INVITE or UPDATE on `leg` was answered 2xx (`response`: a 2xx the SBC received,
  // whose Session-Expires may set the interval; nullptr for one the SBC sent): rearms.
  void refreshed(dataplane::Realm leg, const sip_t* response);
  // A refresh the SBC asked for did not succeed but the call goes on: ask again later.
  void retryRefresh(dataplane::Realm leg);
  // No more session timer on `leg` (its peer cannot be refreshed); the other leg goes on.
  void stopLeg(dataplane::Realm leg);

  void stop();

 private:
  struct Leg {
    SessionTimers* owner = nullptr;
    dataplane::Realm realm = dataplane::Realm::access;
    std::uint32_t intervalS = 0;  // 0: no session timer on this leg
    bool sbcRefreshes = false;
    su_timer_t* timer = nullptr;
  };
  Leg& leg(dataplane::Realm realm) { return legs_[static_cast<std::size_t>(realm)]; }
  const Leg& leg(dataplane::Realm realm) const {
    return legs_[static_cast<std::size_t>(realm)];
  }
  void arm(Leg& leg, std::uint32_t delayMs);
  void armForInterval(Leg& leg);
  static void onTimer(su_root_magic_t* magic, su_timer_t* timer, su_timer_arg_t* arg);

  const SessionTimerSettings settings_;
  const dataplane::Realm callerRealm_;
  std::function<void(dataplane::Realm)> refresh_;
  std::function<void(dataplane::Realm)> expired_;
  std::array<Leg, dataplane::kRealmCount> legs_{};
  std::uint32_t callerAsked_ = 0;  // the caller's Session-Expires, 0 if none
  std::uint32_t calleeAsked_ = 0;  // what the INVITE to the callee asks for (and its Min-SE)
  bool calleeIntervalRaised_ = false;
  std::string callerRefresher_;    // its refresher parameter ("uac", "uas" or "")
  bool callerSupportsTimer_ = false;
  bool stopped_ = false;
};

}  // namespace sbc::signaling
