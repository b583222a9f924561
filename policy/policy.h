#pragma once
// The admission policy: an immutable rules snapshot swapped atomically on reload, over
// per-trunk and per-line state that survives reloads.

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "policy/admission.h"
#include "policy/ip.h"
#include "policy/rules.h"
#include "policy/trunk_lookup.h"

namespace sbc::policy {

// Immutable once built; shared by every call admitted under it.
class Snapshot {
 public:
  Snapshot(Rules rules, std::vector<std::shared_ptr<TrunkState>> states);

  const Rules& rules() const noexcept { return rules_; }
  std::size_t trunkCount() const noexcept { return rules_.trunks.size(); }
  const TrunkRule& trunk(std::size_t index) const { return rules_.trunks.at(index); }
  const std::shared_ptr<TrunkState>& trunkState(std::size_t index) const {
    return states_.at(index);
  }
  // Longest-prefix match of a source address; nullopt when no trunk's prefix holds it.
  std::optional<std::uint32_t> findTrunkBySource(const IpAddress& source) const noexcept {
    return lookup_.find(source);
  }
  std::optional<std::uint32_t> findTrunkByName(const std::string& name) const;

 private:
  Rules rules_;
  std::vector<std::shared_ptr<TrunkState>> states_;  // parallel to rules_.trunks
  TrunkLookup lookup_;
  std::unordered_map<std::string, std::uint32_t> byName_;
};

class Policy {
 public:
  explicit Policy(Rules initial);

  // Lock-free read of the current snapshot; callers keep the pointer for a call's life.
  std::shared_ptr<const Snapshot> current() const noexcept;

  // Builds a snapshot from `rules`, reusing the live state of trunks with the same name,
  // and publishes it atomically. Control thread only (serialised by the caller).
  void publish(Rules rules);

  // Thread-safe. Checks the concurrent ceiling, then the rate ceiling.
  Admission admitTrunkCall(const Snapshot& snapshot, std::uint32_t trunkIndex,
                           Clock::time_point now = Clock::now());
  // Thread-safe. The per-line ceiling from the current snapshot, state keyed by AoR.
  Admission admitLineCall(const std::string& aor);

  void setDraining(bool draining) noexcept { draining_.store(draining); }
  bool draining() const noexcept { return draining_.load(); }

  // Every trunk state still alive: in the current snapshot or held by a live call after
  // its trunk was removed. For metrics and drain.
  void forEachTrunkState(const std::function<void(const TrunkState&)>& visit) const;
  std::uint32_t activeTrunkCalls() const;
  std::uint32_t activeLineCalls() const;

 private:
  std::atomic<std::shared_ptr<const Snapshot>> current_;
  std::atomic<bool> draining_{false};
  mutable std::mutex registryMutex_;  // guards the two maps below (control-plane paths)
  std::unordered_map<std::string, std::weak_ptr<TrunkState>> trunkStates_;
  std::unordered_map<std::string, std::weak_ptr<LineState>> lineStates_;
  // lineStates_ drops its expired entries when it reaches this size; then the threshold
  // becomes twice the surviving size (amortised O(1) per admission).
  std::size_t linePruneThreshold_ = 64;
};

}  // namespace sbc::policy
