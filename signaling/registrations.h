#pragma once
// Where each subscriber line really is: the bindings the core registrar accepted through the
// SBC (registration passthrough), keyed by address-of-record and terminal instance, found
// again by the token in the SBC's own Contact (calls to a line) and by the terminal's
// address (requests from a line). Pure: no SIP stack. Signaling thread only.

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "config/config.h"
#include "policy/ip.h"

namespace sbc::signaling {

using RegistrationClock = std::chrono::steady_clock;

// Where a terminal's REGISTER came from: its public (NATed) address, not its Contact's.
struct TerminalAddress {
  policy::IpAddress address;
  std::uint16_t port = 0;
  config::Transport transport = config::Transport::udp;
  std::string toString() const;  // "udp:203.0.113.7:5060"
  friend bool operator==(const TerminalAddress&, const TerminalAddress&) = default;
};

struct Binding {
  std::string aor;       // "user@host", the host in lower case (Registrations::aorOf)
  std::string instance;  // the Contact's +sip.instance, else its URI: one terminal
  std::string token;     // user part of the SBC's Contact at the core for this binding
  std::string contact;   // the terminal's Contact URI as it sent it
  std::string contactParams;  // its Contact parameters but expires (";+sip.instance=...")
  std::string callId;         // the Call-ID of the terminal's registration
  std::uint32_t granted = 0;  // the expiry last granted to the terminal, seconds
  TerminalAddress terminal;
  RegistrationClock::time_point expires;      // the terminal must refresh before this
  RegistrationClock::time_point coreExpires;  // the core keeps our Contact until this
  // The core accepted the last REGISTER forwarded for this binding with credentials in it:
  // only then may the SBC answer the terminal's refreshes itself (throttling).
  bool coreAuthenticated = false;
};

class Registrations {
 public:
  explicit Registrations(std::size_t maxBindings) : maxBindings_(maxBindings) {}

  // "user@host" of a To URI's user and host: the key a line is known by. Empty host: "".
  static std::string aorOf(std::string_view user, std::string_view host);

  const Binding* find(const std::string& aor, const std::string& instance) const;
  const Binding* byToken(std::string_view token) const;
  // The live bindings of one AoR (every terminal of the line).
  std::vector<const Binding*> ofAor(const std::string& aor) const;
  // The binding whose terminal sends from exactly this address, port and transport.
  const Binding* byTerminal(const TerminalAddress& terminal) const;
  // Whether any terminal is registered from this IP address (any port): a known source.
  bool hasTerminalAt(const policy::IpAddress& address) const;

  // Adds or replaces the binding of (aor, instance). A new one is refused (false) when
  // maxBindings are stored already; a refresh always succeeds.
  bool store(Binding binding);
  // Whether storing a new binding would be refused (a refresh never is).
  bool full() const { return bindings_.size() >= maxBindings_; }
  void setMaxBindings(std::size_t maxBindings) { maxBindings_ = maxBindings; }
  void remove(const std::string& aor, const std::string& instance);
  void removeAor(const std::string& aor);
  // Removes the bindings whose terminal did not refresh in time; returns how many. Costs
  // only the expired ones.
  std::size_t expire(RegistrationClock::time_point now);

  std::size_t size() const { return bindings_.size(); }
  // Every binding, by AoR then instance.
  void forEach(const std::function<void(const Binding&)>& visit) const {
    for (const auto& [key, binding] : bindings_) visit(binding);
  }

 private:
  using Key = std::pair<std::string, std::string>;  // (aor, instance)
  struct TerminalKey {
    std::array<std::uint8_t, 16> address;
    std::uint16_t port;
    std::uint8_t transport;
    auto operator<=>(const TerminalKey&) const = default;
  };
  static TerminalKey keyOf(const TerminalAddress& terminal);
  void unindex(const Binding& binding);

  std::size_t maxBindings_;
  std::map<Key, Binding> bindings_;
  std::unordered_map<std::string, const Binding*> byToken_;
  // Several bindings may share a terminal address (one terminal, several lines).
  std::multimap<TerminalKey, const Binding*> byTerminal_;
  // By the terminal's expiry: a sweep reads only what has expired.
  std::multimap<RegistrationClock::time_point, const Binding*> byExpiry_;
};

}  // namespace sbc::signaling
