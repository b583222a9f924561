#pragma once
// Live admission state (survives reloads) and the RAII slot an admitted call holds.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

namespace sbc::policy {

using Clock = std::chrono::steady_clock;

// Concurrent calls of one trunk or one line. Lock-free; the ceiling comes from the rules
// snapshot at each attempt, so a reload changes it without touching the count.
class CallCounter {
 public:
  bool tryAcquire(std::uint32_t ceiling) noexcept;
  void release() noexcept;
  std::uint32_t active() const noexcept { return active_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::uint32_t> active_{0};
};

// Calls-per-second ceiling as a lock-free token bucket (GCRA: one atomic "theoretical
// arrival time"). A rate of zero or less admits nothing.
class RateLimiter {
 public:
  bool tryAcquire(double perSecond, std::uint32_t burst, Clock::time_point now) noexcept;

 private:
  std::atomic<std::int64_t> theoreticalArrivalNs_{0};
};

// Everything that must outlive a reload for one trunk, keyed by trunk name.
struct TrunkState {
  explicit TrunkState(std::string trunkName) : name(std::move(trunkName)) {}
  const std::string name;
  CallCounter calls;
  RateLimiter rate;
};

struct LineState {
  explicit LineState(std::string lineAor) : aor(std::move(lineAor)) {}
  const std::string aor;
  CallCounter calls;
};

// Move-only. Holds one unit of a CallCounter; releases it exactly once, when destroyed or
// release()d, whichever comes first. Keeps the counter's owner alive meanwhile.
class CallSlot {
 public:
  CallSlot() = default;
  CallSlot(std::shared_ptr<void> owner, CallCounter* counter) noexcept;
  CallSlot(CallSlot&& other) noexcept;
  CallSlot& operator=(CallSlot&& other) noexcept;
  CallSlot(const CallSlot&) = delete;
  CallSlot& operator=(const CallSlot&) = delete;
  ~CallSlot();

  void release() noexcept;
  explicit operator bool() const noexcept { return counter_ != nullptr; }

 private:
  std::shared_ptr<void> owner_;
  CallCounter* counter_ = nullptr;
};

enum class AdmissionResult : std::uint8_t {
  admitted,
  overConcurrent,
  overRate,
  unknownTrunk,  // no such trunk in the current snapshot (e.g. removed by a reload)
  draining,      // the daemon is shutting down
};

const char* toString(AdmissionResult result) noexcept;  // "admitted", "over_concurrent", ...

struct Admission {
  AdmissionResult result = AdmissionResult::unknownTrunk;
  CallSlot slot;  // holds a unit only when result == admitted
};

}  // namespace sbc::policy
