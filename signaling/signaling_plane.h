#pragma once
// The SIP signaling plane: one Sofia-SIP nta agent per realm, both on one su_root thread of
// their own. Other threads reach it only through post(), which never blocks on it.
//
// Every request is classified by realm and source: a source in no trunk's prefixes gets
// 403 (counted, the responses to one source rate limited); OPTIONS addressed to the SBC
// from a trunk or the core is answered 200 (keep-alive); an initial INVITE from a trunk
// becomes a Call (call.h) with its media anchored on the relay; media timeouts reported by
// the relay end their calls.

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "config/config.h"
#include "dataplane/media_relay.h"
#include "metrics/metrics.h"
#include "policy/policy.h"

namespace sbc::signaling {

// The signaling thread's name (/proc/self/task/*/comm): tests and operators find it there.
inline constexpr const char* kSignalingThreadName = "sbc-sip";

class SignalingPlane {
 public:
  // Binds every SIP listen address of both realms and starts the signaling thread.
  // Throws std::runtime_error naming the address that could not be bound.
  SignalingPlane(const config::Config& config, std::shared_ptr<policy::Policy> policy,
                 metrics::Metrics& metrics, std::shared_ptr<dataplane::MediaRelay> relay);
  ~SignalingPlane();  // stops the thread; nta transactions in flight are dropped
  SignalingPlane(const SignalingPlane&) = delete;
  SignalingPlane& operator=(const SignalingPlane&) = delete;

  // What was actually bound, e.g. "access=udp:127.0.0.10:5060" (port 0 resolved).
  const std::vector<std::string>& boundAddresses() const;

  // Runs `task` on the signaling thread. Thread-safe, non-blocking.
  void post(std::function<void()> task);

  // A reload's trunk table (targets, credentials): calls set up from now on use it; calls
  // in progress keep what they were set up with. Thread-safe, non-blocking.
  void updateTrunks(std::vector<config::Trunk> trunks);
  // A reload's subscriber-line settings (registration expiries, throttling, ceiling).
  void updateLines(const config::Lines& lines);

  // The subscriber-line bindings (of one AoR "user@host", or all when empty), one per
  // line: "AOR TERMINAL expires_in=Ns core_expires_in=Ns instance=...". Waits for the
  // signaling thread (control thread only); "" after `timeout` without an answer.
  std::string describeRegistrations(const std::string& aor,
                                    std::chrono::milliseconds timeout);

  // Ends every call in progress (BYE to both sides of answered calls, 503 and CANCEL for
  // the rest), e.g. when a drain runs out of time. Thread-safe, non-blocking.
  void endAllCalls(const char* reason);

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace sbc::signaling
