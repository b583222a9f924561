#include "signaling/registrations.h"

#include <sys/mman.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <new>

namespace sbc::signaling {

namespace {

// The pool's upstream. Its chunks grow geometrically; from kMapFrom on they are pages
// mapped for the bindings alone (malloc would place even large chunks in its heaps once its
// dynamic mmap threshold has risen), and unmapped when the pool gives them back.
class MappedBlocks final : public std::pmr::memory_resource {
  static constexpr std::size_t kMapFrom = 64 * 1024;

  void* do_allocate(std::size_t bytes, std::size_t alignment) override {
    if (bytes < kMapFrom) return ::operator new(bytes, std::align_val_t(alignment));
    void* block = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (block == MAP_FAILED) throw std::bad_alloc();
    return block;
  }
  void do_deallocate(void* block, std::size_t bytes, std::size_t alignment) override {
    if (bytes < kMapFrom) {
      ::operator delete(block, bytes, std::align_val_t(alignment));
    } else {
      ::munmap(block, bytes);
    }
  }
  bool do_is_equal(const std::pmr::memory_resource& other) const noexcept override {
    return this == &other;
  }
};

constexpr std::size_t kInitialTokenBuckets = 1024;  // a power of two (power_2_buckets)
// Entries up to this size come from the pool's size classes; a larger one (a terminal with
// a Contact of kilobytes) is a block of its own from MappedBlocks.
constexpr std::size_t kLargestPooledEntry = 16 * 1024;

bool sameText(const Binding& a, const Binding& b) {
  return a.aor == b.aor && a.instance == b.instance && a.token == b.token &&
         a.contact == b.contact && a.contactParams == b.contactParams && a.callId == b.callId;
}

}  // namespace

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

Registrations::Registrations(std::size_t maxBindings)
    : maxBindings_(maxBindings),
      blocks_(std::make_unique<MappedBlocks>()),
      pool_(std::make_unique<std::pmr::unsynchronized_pool_resource>(
          std::pmr::pool_options{0, kLargestPooledEntry}, blocks_.get())),
      tokenBuckets_(kInitialTokenBuckets, pool_.get()),
      byToken_(ByToken::bucket_traits(tokenBuckets_.data(), tokenBuckets_.size())) {}

Registrations::~Registrations() {
  byExpiry_.clear();
  byTerminal_.clear();
  byToken_.clear();
  byKey_.clear_and_dispose([this](Entry* entry) { release(entry); });
}

Registrations::Entry* Registrations::allocate(const Binding& binding) {
  const bool instanceIsContact = binding.instance == binding.contact;
  const std::size_t textBytes = binding.aor.size() + (instanceIsContact ? 0 : binding.instance.size()) +
                                binding.token.size() + binding.contact.size() +
                                binding.contactParams.size() + binding.callId.size();
  const std::size_t bytes = sizeof(Entry) + textBytes;
  auto* entry = new (pool_->allocate(bytes, alignof(Entry))) Entry;
  entry->bytes = bytes;
  entry->binding = binding;
  char* text = reinterpret_cast<char*>(entry + 1);
  const auto copy = [&text](std::string_view from) {
    if (!from.empty()) std::memcpy(text, from.data(), from.size());
    const std::string_view copied(text, from.size());
    text += from.size();
    return copied;
  };
  Binding& stored = entry->binding;
  stored.aor = copy(binding.aor);
  stored.token = copy(binding.token);
  stored.contact = copy(binding.contact);
  stored.instance = instanceIsContact ? stored.contact : copy(binding.instance);
  stored.contactParams = copy(binding.contactParams);
  stored.callId = copy(binding.callId);
  return entry;
}

void Registrations::release(Entry* entry) {
  const std::size_t bytes = entry->bytes;
  entry->~Entry();
  pool_->deallocate(entry, bytes, alignof(Entry));
}

void Registrations::growTokenBuckets() {
  if (byToken_.size() < tokenBuckets_.size()) return;
  std::pmr::vector<ByToken::bucket_type> larger(tokenBuckets_.size() * 2, pool_.get());
  byToken_.rehash(ByToken::bucket_traits(larger.data(), larger.size()));
  tokenBuckets_.swap(larger);
}

void Registrations::index(Entry& entry) {
  byKey_.insert(entry);
  growTokenBuckets();
  // Tokens are a keyed hash of (aor, instance): should two ever collide, the newer wins.
  if (auto [existing, inserted] = byToken_.insert(entry); !inserted) {
    byToken_.erase(existing);
    byToken_.insert(entry);
  }
  byTerminal_.insert(entry);
  byExpiry_.insert(entry);
}

void Registrations::unindex(Entry& entry) {
  byKey_.erase(byKey_.iterator_to(entry));
  if (entry.tokenLink.is_linked()) byToken_.erase(byToken_.iterator_to(entry));
  byTerminal_.erase(byTerminal_.iterator_to(entry));
  byExpiry_.erase(byExpiry_.iterator_to(entry));
}

const Binding* Registrations::find(std::string_view aor, std::string_view instance) const {
  const auto it = byKey_.find(KeyOf::type{aor, instance});
  return it == byKey_.end() ? nullptr : &it->binding;
}

const Binding* Registrations::byToken(std::string_view token) const {
  const auto it = byToken_.find(token);
  return it == byToken_.end() ? nullptr : &it->binding;
}

std::vector<const Binding*> Registrations::ofAor(std::string_view aor) const {
  std::vector<const Binding*> found;
  for (auto it = byKey_.lower_bound(KeyOf::type{aor, std::string_view()});
       it != byKey_.end() && it->binding.aor == aor; ++it) {
    found.push_back(&it->binding);
  }
  return found;
}

Registrations::TerminalKey Registrations::keyOf(const TerminalAddress& terminal) {
  return TerminalKey{terminal.address.bytes, terminal.port,
                     static_cast<std::uint8_t>(terminal.transport)};
}

const Binding* Registrations::byTerminal(const TerminalAddress& terminal) const {
  const auto it = byTerminal_.find(keyOf(terminal));
  return it == byTerminal_.end() ? nullptr : &it->binding;
}

bool Registrations::hasTerminalAt(const policy::IpAddress& address) const {
  const auto it = byTerminal_.lower_bound(TerminalKey{address.bytes, 0, 0});
  return it != byTerminal_.end() && it->binding.terminal.address.bytes == address.bytes;
}

bool Registrations::store(const Binding& binding) {
  const auto it = byKey_.find(KeyOf::type{binding.aor, binding.instance});
  if (it == byKey_.end()) {
    if (full()) return false;
    index(*allocate(binding));
    return true;
  }
  Entry& existing = *it;
  if (sameText(existing.binding, binding)) {
    // A refresh (the usual case): only the address and the times may change.
    byTerminal_.erase(byTerminal_.iterator_to(existing));
    byExpiry_.erase(byExpiry_.iterator_to(existing));
    Binding& stored = existing.binding;
    stored.granted = binding.granted;
    stored.terminal = binding.terminal;
    stored.expires = binding.expires;
    stored.coreExpires = binding.coreExpires;
    stored.coreAuthenticated = binding.coreAuthenticated;
    byTerminal_.insert(existing);
    byExpiry_.insert(existing);
    return true;
  }
  Entry* replacement = allocate(binding);  // first: `binding` may view the entry it replaces
  unindex(existing);
  release(&existing);
  index(*replacement);
  return true;
}

void Registrations::remove(std::string_view aor, std::string_view instance) {
  const auto it = byKey_.find(KeyOf::type{aor, instance});
  if (it == byKey_.end()) return;
  Entry& entry = *it;
  unindex(entry);
  release(&entry);
}

void Registrations::removeAor(std::string_view aor) {
  auto it = byKey_.lower_bound(KeyOf::type{aor, std::string_view()});
  while (it != byKey_.end() && it->binding.aor == aor) {
    Entry& entry = *it++;
    unindex(entry);
    release(&entry);
  }
}

std::size_t Registrations::expire(RegistrationClock::time_point now) {
  std::size_t removed = 0;
  while (!byExpiry_.empty() && byExpiry_.begin()->binding.expires <= now) {
    Entry& entry = *byExpiry_.begin();
    unindex(entry);
    release(&entry);
    ++removed;
  }
  return removed;
}

void Registrations::forEach(const std::function<void(const Binding&)>& visit) const {
  for (const Entry& entry : byKey_) visit(entry.binding);
}

}  // namespace sbc::signaling
