#include "signaling/registrations.h"

#include <algorithm>
#include <cctype>

namespace sbc::signaling {

std::string TerminalAddress::toString() const {
  // Appended piece by piece: GCC 12 at -O3 warns falsely (-Wrestrict) on "[" + string.
  std::string text = config::toString(transport);
  text += ':';
  if (address.family == policy::IpFamily::v6) text += '[';
  text += address.toString();
  if (address.family == policy::IpFamily::v6) text += ']';
  text += ':';
  text += std::to_string(port);
  return text;
}

std::string Registrations::aorOf(std::string_view user, std::string_view host) {
  if (host.empty()) return {};
  std::string aor;
  aor.reserve(user.size() + host.size() + 1);
  aor.append(user);  // user parts are case-sensitive (RFC 3261 19.1.4)
  aor.push_back('@');
  for (const char c : host) aor.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  return aor;
}

const Binding* Registrations::find(const std::string& aor, const std::string& instance) const {
  const auto it = bindings_.find(Key{aor, instance});
  return it == bindings_.end() ? nullptr : &it->second;
}

const Binding* Registrations::byToken(std::string_view token) const {
  const auto it = byToken_.find(std::string(token));
  return it == byToken_.end() ? nullptr : it->second;
}

std::vector<const Binding*> Registrations::ofAor(const std::string& aor) const {
  std::vector<const Binding*> found;
  for (auto it = bindings_.lower_bound(Key{aor, std::string()});
       it != bindings_.end() && it->first.first == aor; ++it) {
    found.push_back(&it->second);
  }
  return found;
}

Registrations::TerminalKey Registrations::keyOf(const TerminalAddress& terminal) {
  return TerminalKey{terminal.address.bytes, terminal.port,
                     static_cast<std::uint8_t>(terminal.transport)};
}

const Binding* Registrations::byTerminal(const TerminalAddress& terminal) const {
  const auto it = byTerminal_.find(keyOf(terminal));
  return it == byTerminal_.end() ? nullptr : it->second;
}

bool Registrations::hasTerminalAt(const policy::IpAddress& address) const {
  const TerminalKey first{address.bytes, 0, 0};
  const auto it = byTerminal_.lower_bound(first);
  return it != byTerminal_.end() && it->first.address == address.bytes;
}

void Registrations::unindex(const Binding& binding) {
  byToken_.erase(binding.token);
  auto [begin, end] = byTerminal_.equal_range(keyOf(binding.terminal));
  for (auto it = begin; it != end; ++it) {
    if (it->second == &binding) {
      byTerminal_.erase(it);
      break;
    }
  }
  auto [first, last] = byExpiry_.equal_range(binding.expires);
  for (auto it = first; it != last; ++it) {
    if (it->second == &binding) {
      byExpiry_.erase(it);
      break;
    }
  }
}

bool Registrations::store(Binding binding) {
  Key key{binding.aor, binding.instance};
  auto it = bindings_.find(key);
  if (it == bindings_.end()) {
    if (full()) return false;
    it = bindings_.emplace(std::move(key), std::move(binding)).first;
  } else {
    unindex(it->second);
    it->second = std::move(binding);
  }
  const Binding* stored = &it->second;
  byToken_[stored->token] = stored;
  byTerminal_.emplace(keyOf(stored->terminal), stored);
  byExpiry_.emplace(stored->expires, stored);
  return true;
}

void Registrations::remove(const std::string& aor, const std::string& instance) {
  const auto it = bindings_.find(Key{aor, instance});
  if (it == bindings_.end()) return;
  unindex(it->second);
  bindings_.erase(it);
}

void Registrations::removeAor(const std::string& aor) {
  auto it = bindings_.lower_bound(Key{aor, std::string()});
  while (it != bindings_.end() && it->first.first == aor) {
    unindex(it->second);
    it = bindings_.erase(it);
  }
}

std::size_t Registrations::expire(RegistrationClock::time_point now) {
  std::size_t removed = 0;
  while (!byExpiry_.empty() && byExpiry_.begin()->first <= now) {
    const Binding& binding = *byExpiry_.begin()->second;
    remove(binding.aor, binding.instance);
    ++removed;
  }
  return removed;
}

}  // namespace sbc::signaling
