#pragma once
// Where each subscriber line really is: the bindings the core registrar accepted through the
// SBC (registration passthrough), keyed by address-of-record and terminal instance, found
// again by the token in the SBC's own Contact (calls to a line) and by the terminal's
// address (requests from a line). Pure: no SIP stack. Signaling thread only.
//
// Memory: a provider edge holds hundreds of thousands of bindings for days while REGISTER
// transactions come and go around them. Each binding is one block (its fields, its text and
// the links of all four indexes: Boost.Intrusive), taken from a pool of its own, so that the
// long-lived bindings are not scattered between the transactions' short-lived allocations
// on the C library's heap (which would keep that heap's pages resident after the
// transactions end).

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <memory_resource>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/intrusive/set.hpp>
#include <boost/intrusive/unordered_set.hpp>

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

// One terminal's registration. The text fields are views: of the caller's strings when it
// hands a binding to Registrations::store (which copies them), of the table's own storage
// when read from the table (valid until that binding is stored again or removed).
struct Binding {
  std::string_view aor;       // "user@host", the host in lower case (Registrations::aorOf)
  std::string_view instance;  // the Contact's +sip.instance, else its URI: one terminal
  std::string_view token;     // user part of the SBC's Contact at the core for this binding
  std::string_view contact;   // the terminal's Contact URI as it sent it
  std::string_view contactParams;  // its Contact parameters but expires (";+sip.instance=...")
  std::string_view callId;         // the Call-ID of the terminal's registration
  std::uint32_t granted = 0;       // the expiry last granted to the terminal, seconds
  TerminalAddress terminal;
  RegistrationClock::time_point expires;      // the terminal must refresh before this
  RegistrationClock::time_point coreExpires;  // the core keeps our Contact until this
  // The core accepted the last REGISTER forwarded for this binding with credentials in it:
  // only then may the SBC answer the terminal's refreshes itself (throttling).
  bool coreAuthenticated = false;
};

class Registrations {
 public:
  explicit Registrations(std::size_t maxBindings);
  ~Registrations();
  Registrations(const Registrations&) = delete;
  Registrations& operator=(const Registrations&) = delete;

  // "user@host" of a To URI's user and host: the key a line is known by. Empty host: "".
  static std::string aorOf(std::string_view user, std::string_view host);

  const Binding* find(std::string_view aor, std::string_view instance) const;
  const Binding* byToken(std::string_view token) const;
  // The live bindings of one AoR (every terminal of the line).
  std::vector<const Binding*> ofAor(std::string_view aor) const;
  // The binding whose terminal sends from exactly this address, port and transport.
  const Binding* byTerminal(const TerminalAddress& terminal) const;
  // Whether any terminal is registered from this IP address (any port): a known source.
  bool hasTerminalAt(const policy::IpAddress& address) const;

  // Adds or replaces the binding of (aor, instance), copying its text (which may be a
  // binding read from this table). A new one is refused (false) when maxBindings are stored
  // already; a refresh always succeeds.
  bool store(const Binding& binding);
  // Whether storing a new binding would be refused (a refresh never is).
  bool full() const { return size() >= maxBindings_; }
  void setMaxBindings(std::size_t maxBindings) { maxBindings_ = maxBindings; }
  void remove(std::string_view aor, std::string_view instance);
  void removeAor(std::string_view aor);
  // Removes the bindings whose terminal did not refresh in time; returns how many. Costs
  // only the expired ones.
  std::size_t expire(RegistrationClock::time_point now);

  std::size_t size() const { return byKey_.size(); }
  // Every binding, by AoR then instance.
  void forEach(const std::function<void(const Binding&)>& visit) const;

 private:
  using OrderedLink = boost::intrusive::set_member_hook<boost::intrusive::optimize_size<true>>;
  using HashLink = boost::intrusive::unordered_set_member_hook<>;
  struct Entry {
    OrderedLink keyLink;       // by (aor, instance)
    OrderedLink terminalLink;  // by terminal address
    OrderedLink expiryLink;    // by the terminal's expiry
    HashLink tokenLink;        // by token
    std::uint32_t bytes = 0;   // of this block, text included
    Binding binding;           // its views point into the text after this struct
  };
  struct TerminalKey {
    std::array<std::uint8_t, 16> address;
    std::uint16_t port;
    std::uint8_t transport;
    auto operator<=>(const TerminalKey&) const = default;
  };
  static TerminalKey keyOf(const TerminalAddress& terminal);
  struct KeyOf {
    using type = std::pair<std::string_view, std::string_view>;
    type operator()(const Entry& e) const { return {e.binding.aor, e.binding.instance}; }
  };
  struct TerminalOf {
    using type = TerminalKey;
    type operator()(const Entry& e) const { return keyOf(e.binding.terminal); }
  };
  struct ExpiryOf {
    using type = RegistrationClock::time_point;
    type operator()(const Entry& e) const { return e.binding.expires; }
  };
  struct TokenOf {
    using type = std::string_view;
    type operator()(const Entry& e) const { return e.binding.token; }
  };
  template <OrderedLink Entry::*link>
  using LinkOf = boost::intrusive::member_hook<Entry, OrderedLink, link>;
  using ByKey = boost::intrusive::set<Entry, LinkOf<&Entry::keyLink>,
                                      boost::intrusive::key_of_value<KeyOf>,
                                      boost::intrusive::constant_time_size<true>>;
  using ByTerminal = boost::intrusive::multiset<Entry, LinkOf<&Entry::terminalLink>,
                                                boost::intrusive::key_of_value<TerminalOf>,
                                                boost::intrusive::constant_time_size<false>>;
  using ByExpiry = boost::intrusive::multiset<Entry, LinkOf<&Entry::expiryLink>,
                                              boost::intrusive::key_of_value<ExpiryOf>,
                                              boost::intrusive::constant_time_size<false>>;
  using ByToken = boost::intrusive::unordered_set<
      Entry, boost::intrusive::member_hook<Entry, HashLink, &Entry::tokenLink>,
      boost::intrusive::key_of_value<TokenOf>,
      boost::intrusive::hash<std::hash<std::string_view>>,
      boost::intrusive::constant_time_size<true>, boost::intrusive::power_2_buckets<true>>;

  Entry* allocate(const Binding& binding);
  void release(Entry* entry);
  void index(Entry& entry);
  void unindex(Entry& entry);
  void growTokenBuckets();

  std::size_t maxBindings_;
  // Where the entries live: large blocks mapped for the bindings alone.
  std::unique_ptr<std::pmr::memory_resource> blocks_;
  std::unique_ptr<std::pmr::unsynchronized_pool_resource> pool_;
  std::pmr::vector<ByToken::bucket_type> tokenBuckets_;
  ByKey byKey_;
  ByToken byToken_;
  ByTerminal byTerminal_;  // several bindings may share one (one terminal, several lines)
  ByExpiry byExpiry_;      // a sweep reads only what has expired
};

}  // namespace sbc::signaling
