#include "policy/policy.h"

#include <algorithm>
#include <stdexcept>
#include <utility>

namespace sbc::policy {
namespace {

constexpr std::size_t kMinLinePruneThreshold = 64;

}  // namespace

Snapshot::Snapshot(Rules rules, std::vector<std::shared_ptr<TrunkState>> states)
    : rules_(std::move(rules)), states_(std::move(states)), lookup_(rules_.trunks) {
  if (states_.size() != rules_.trunks.size())
    throw std::invalid_argument("policy snapshot: one trunk state per trunk rule is required");
  for (const auto& state : states_) {
    if (!state) throw std::invalid_argument("policy snapshot: null trunk state");
  }
  byName_.reserve(rules_.trunks.size());
  for (std::size_t i = 0; i < rules_.trunks.size(); ++i) {
    byName_.emplace(rules_.trunks[i].name, static_cast<std::uint32_t>(i));  // first wins
  }
}

std::optional<std::uint32_t> Snapshot::findTrunkByName(const std::string& name) const {
  const auto it = byName_.find(name);
  if (it == byName_.end()) return std::nullopt;
  return it->second;
}

Policy::Policy(Rules initial) { publish(std::move(initial)); }

std::shared_ptr<const Snapshot> Policy::current() const noexcept {
  return current_.load(std::memory_order_acquire);
}

void Policy::publish(Rules rules) {
  // Control thread. State objects are found by name so that counts survive the reload;
  // a removed trunk's state lives on in the calls that hold it.
  std::vector<std::shared_ptr<TrunkState>> states;
  states.reserve(rules.trunks.size());
  {
    std::lock_guard lock(registryMutex_);
    std::erase_if(trunkStates_, [](const auto& entry) { return entry.second.expired(); });
    for (const TrunkRule& rule : rules.trunks) {
      std::weak_ptr<TrunkState>& slot = trunkStates_[rule.name];
      std::shared_ptr<TrunkState> state = slot.lock();
      if (!state) {
        state = std::make_shared<TrunkState>(rule.name);
        slot = state;
      }
      states.push_back(std::move(state));
    }
  }
  auto snapshot = std::make_shared<const Snapshot>(std::move(rules), std::move(states));
  current_.store(std::move(snapshot), std::memory_order_release);
}

Admission Policy::admitTrunkCall(const Snapshot& snapshot, std::uint32_t trunkIndex,
                                 Clock::time_point now) {
  // Signaling thread (any thread); lock-free, no allocation.
  Admission admission;
  if (draining()) {
    admission.result = AdmissionResult::draining;
    return admission;
  }
  if (trunkIndex >= snapshot.trunkCount()) {
    admission.result = AdmissionResult::unknownTrunk;
    return admission;
  }
  const TrunkRule& rule = snapshot.trunk(trunkIndex);
  const std::shared_ptr<TrunkState>& state = snapshot.trunkState(trunkIndex);
  if (!state->calls.tryAcquire(rule.maxConcurrentCalls)) {
    admission.result = AdmissionResult::overConcurrent;
    return admission;
  }
  if (!state->rate.tryAcquire(rule.maxCallsPerSecond, rule.callRateBurst, now)) {
    state->calls.release();  // the call never started: give the concurrent unit back
    admission.result = AdmissionResult::overRate;
    return admission;
  }
  admission.result = AdmissionResult::admitted;
  admission.slot = CallSlot(state, &state->calls);
  return admission;
}

Admission Policy::admitLineCall(const std::string& aor) {
  // Signaling thread (any thread). Takes registryMutex_ briefly to find the line's state.
  Admission admission;
  if (draining()) {
    admission.result = AdmissionResult::draining;
    return admission;
  }
  const std::uint32_t ceiling = current()->rules().lines.maxConcurrentCalls;
  std::shared_ptr<LineState> state;
  {
    std::lock_guard lock(registryMutex_);
    std::weak_ptr<LineState>& slot = lineStates_[aor];
    state = slot.lock();
    if (!state) {
      state = std::make_shared<LineState>(aor);
      slot = state;
    }
    if (lineStates_.size() >= linePruneThreshold_) {
      std::erase_if(lineStates_, [](const auto& entry) { return entry.second.expired(); });
      linePruneThreshold_ = std::max(kMinLinePruneThreshold, 2 * lineStates_.size());
    }
  }
  if (!state->calls.tryAcquire(ceiling)) {
    admission.result = AdmissionResult::overConcurrent;
    return admission;  // `state` may die here; its map entry is pruned later
  }
  admission.result = AdmissionResult::admitted;
  CallCounter* counter = &state->calls;
  admission.slot = CallSlot(std::move(state), counter);
  return admission;
}

void Policy::forEachTrunkState(const std::function<void(const TrunkState&)>& visit) const {
  // Control thread or metrics scrape. Visits outside the lock, so `visit` may call back
  // into the policy.
  std::vector<std::shared_ptr<TrunkState>> alive;
  {
    std::lock_guard lock(registryMutex_);
    alive.reserve(trunkStates_.size());
    for (const auto& [name, weak] : trunkStates_) {
      if (auto state = weak.lock()) alive.push_back(std::move(state));
    }
  }
  for (const auto& state : alive) visit(*state);
}

std::uint32_t Policy::activeTrunkCalls() const {
  std::uint32_t total = 0;
  forEachTrunkState([&total](const TrunkState& state) { total += state.calls.active(); });
  return total;
}

std::uint32_t Policy::activeLineCalls() const {
  std::uint32_t total = 0;
  std::lock_guard lock(registryMutex_);
  for (const auto& [aor, weak] : lineStates_) {
    if (auto state = weak.lock()) total += state->calls.active();
  }
  return total;
}

}  // namespace sbc::policy
