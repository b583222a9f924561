#pragma once
// Registration passthrough for subscriber lines: a terminal's REGISTER (access realm) goes
// on to the core registrar from the core realm with its Request-URI, To, From and
// credentials intact, so the core's digest challenge and the terminal's answer pass end
// to end (the SBC never holds a line's password). The terminal's Contact is replaced by
// one of the SBC's in the core realm naming the binding, and the Call-ID by one derived
// from it: nothing of the terminal's addresses reaches the core. On the core's 2xx the
// binding (the terminal's real source address, not its Contact's) is recorded and the
// terminal gets its own Contact back with the expiry the SBC grants it.
//
// Throttling (lines.throttle_registrations): the core is asked for a long expiry
// (lines.core_register_expires_s) and the terminal given a short one
// (lines.register_expires_s, keeping its NAT binding open); the terminal's refreshes in
// between are answered here, but only for a terminal whose last REGISTER to the core
// carried credentials the core accepted, from the same address, Call-ID and Contact.
// Anything else goes to the core.
//
// Signaling thread only.

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "config/config.h"
#include "metrics/metrics.h"
#include "metrics/sip_series.h"
#include "signaling/registrations.h"
#include "signaling/sofia.h"
#include "signaling/source_limiter.h"

namespace sbc::signaling {

class RegisterRelay {
 public:
  RegisterRelay(nta_agent_t* access, nta_agent_t* core, const config::Config& settings,
                metrics::Metrics& metrics, metrics::SipMessageSeries& sipSeries);
  ~RegisterRelay();
  RegisterRelay(const RegisterRelay&) = delete;
  RegisterRelay& operator=(const RegisterRelay&) = delete;

  // A REGISTER on the access realm from a source that is no trunk's. Takes `msg`.
  void onRegister(msg_t* msg, sip_t* sip, const TerminalAddress& terminal);

  // Drops the bindings whose terminal has not refreshed in time.
  void expire(RegistrationClock::time_point now = RegistrationClock::now());

  // A reload's lines settings (expiries, throttling, the bindings' ceiling).
  void update(const config::Lines& lines);

  // Asked before a REGISTER is sent on to the core: true refuses it with 503 and
  // Retry-After (the signaling thread is overloaded; the asker counts the refusal).
  std::function<bool()> overloaded;

  // Told when the core accepted a terminal's REGISTER from another address than its
  // binding's: (AoR, old address, new address). Calls of the line follow it.
  std::function<void(const std::string&, const TerminalAddress&, const TerminalAddress&)> moved;

  const Registrations& registrations() const { return registrations_; }
  // Whether a Request-URI user is of the form of a binding's token (the user part of the
  // SBC's Contact at the core for a line): such a request is for a line, bound or not.
  static bool isToken(std::string_view user);

  // The bindings of `aor` (all when empty) for the control socket, one per line.
  std::string describe(const std::string& aor) const;

 private:
  struct Pending;

  bool forward(Pending& pending);
  static int onCoreResponse(void* magic, nta_outgoing_t* request, const sip_t* sip);
  void completed(Pending& pending, int status, const sip_t* response);
  void accepted(Pending& pending, const sip_t* response);
  void reply(nta_incoming_t* request, int status, const char* phrase, tag_type_t tag,
             tag_value_t value, ...);
  // Answers a request nta keeps no transaction for (it consumes msg): what sbcd answers
  // itself needs none, and one would hold the messages for 64*T1 (Timer J) on UDP.
  void replyStateless(msg_t* msg, int status, const char* phrase, tag_type_t tag,
                      tag_value_t value, ...);
  void replyBindings(nta_incoming_t* request, const std::string& aor);
  // The line's terminals as they registered them, for a Contact header field.
  std::string contactsOf(const std::string& aor) const;
  void finish(std::uint64_t id);
  void count(const char* result);
  void publishSize();
  std::string tokenOf(const std::string& aor, const std::string& instance) const;
  std::string coreCallIdOf(const char* terminalCallId) const;

  nta_agent_t* access_;
  nta_agent_t* core_;
  const config::Config& settings_;  // next hops, header allow-list: fixed at start-up
  config::Lines lines_;             // reloadable
  metrics::Metrics& metrics_;
  metrics::SipMessageSeries& sipSeries_;
  Registrations registrations_;
  SourceLimiter floodLimiter_;
  std::string secret_;  // keys the binding tokens and Call-IDs: unguessable from outside
  std::map<std::uint64_t, std::unique_ptr<Pending>> pending_;
  std::uint64_t nextPending_ = 1;
};

}  // namespace sbc::signaling
