#pragma once
// One call through the B2BUA: two independent dialogs, one per realm. The side that sent
// the INVITE is the "caller" leg, the side the SBC sends it on is the "callee" leg.
// Signaling thread only.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "config/config.h"
#include "metrics/metrics.h"
#include "policy/admission.h"
#include "signaling/sofia.h"

namespace sbc::signaling {

// What calls need from the signaling plane.
struct CallEnvironment {
  nta_agent_t* accessAgent = nullptr;
  nta_agent_t* coreAgent = nullptr;
  const config::Config* settings = nullptr;
  metrics::Metrics* metrics = nullptr;
  // Called once when a call is over; the plane destroys it later (never inside its own
  // callback).
  std::function<void(std::uint64_t callId)> ended;
  void countResponse(const char* realm, int code) const;
};

class Call {
 public:
  // Takes over an initial INVITE from a trunk (access realm) that was admitted; answers it,
  // relays it to the core's first next hop and owns both dialogs from then on.
  Call(CallEnvironment& environment, std::uint64_t id, std::string trunk,
       policy::CallSlot slot, msg_t* invite, sip_t* sip);
  ~Call();
  Call(const Call&) = delete;
  Call& operator=(const Call&) = delete;

  std::uint64_t id() const { return id_; }
  bool over() const { return state_ == State::over; }
  // Ends a call the SBC itself wants gone (drain): BYE or CANCEL on both sides as fits.
  void terminate(const char* why);

 private:
  enum class State { calling, early, answered, confirmed, over };

  static int onCalleeResponse(void* magic, nta_outgoing_t* request, const sip_t* sip);
  static int onCallerAckOrCancel(void* magic, nta_incoming_t* request, const sip_t* sip);
  static int onCallerRequest(void* magic, nta_leg_t* leg, nta_incoming_t* request,
                             const sip_t* sip);
  static int onCalleeRequest(void* magic, nta_leg_t* leg, nta_incoming_t* request,
                             const sip_t* sip);

  int relayInDialog(bool fromCaller, nta_incoming_t* request, const sip_t* sip);
  void replyCaller(int status, const char* phrase, const sip_t* response);
  void sendBye(nta_leg_t* leg);
  void finish(const char* outcome);
  bool calleePending() const;

  CallEnvironment& environment_;
  const std::uint64_t id_;
  const std::string trunk_;
  policy::CallSlot slot_;
  State state_ = State::calling;
  nta_leg_t* callerLeg_ = nullptr;          // access realm dialog (server side)
  nta_leg_t* calleeLeg_ = nullptr;          // core realm dialog (client side)
  nta_incoming_t* callerInvite_ = nullptr;  // the INVITE from the trunk
  nta_outgoing_t* calleeInvite_ = nullptr;  // our INVITE to the core
};

}  // namespace sbc::signaling
