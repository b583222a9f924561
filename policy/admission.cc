#include "policy/admission.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <utility>

namespace sbc::policy {

bool CallCounter::tryAcquire(std::uint32_t ceiling) noexcept {
  // Called on any thread; lock-free. Never exceeds `ceiling`, even momentarily.
  std::uint32_t current = active_.load(std::memory_order_relaxed);
  do {
    if (current >= ceiling) return false;
  } while (!active_.compare_exchange_weak(current, current + 1, std::memory_order_acq_rel,
                                          std::memory_order_relaxed));
  return true;
}

void CallCounter::release() noexcept {
  // Called on any thread; lock-free.
  [[maybe_unused]] const std::uint32_t previous = active_.fetch_sub(1, std::memory_order_acq_rel);
  assert(previous > 0 && "CallCounter released more often than acquired");
}

bool RateLimiter::tryAcquire(double perSecond, std::uint32_t burst,
                             Clock::time_point now) noexcept {
  // Called on any thread; lock-free. GCRA: admit when the theoretical arrival time (TAT) is
  // no more than `tolerance` ahead of now; each admission pushes TAT one interval on.
  if (!(perSecond > 0)) return false;  // also refuses NaN
  // Clamp so that interval * burst cannot overflow int64 nanoseconds.
  constexpr double kMaxSpanNs = 1e18;
  const double intervalD = std::clamp(1e9 / perSecond, 1.0, kMaxSpanNs);
  const auto interval = static_cast<std::int64_t>(intervalD);
  const double burstD = burst == 0 ? 1.0 : static_cast<double>(burst);
  const auto tolerance =
      static_cast<std::int64_t>(std::min((burstD - 1.0) * intervalD, kMaxSpanNs));
  const std::int64_t nowNs =
      std::chrono::duration_cast<std::chrono::nanoseconds>(now.time_since_epoch()).count();

  std::int64_t tat = theoreticalArrivalNs_.load(std::memory_order_relaxed);
  for (;;) {
    if (tat > nowNs && tat - nowNs > tolerance) return false;
    const std::int64_t next = std::max(tat, nowNs) + interval;
    if (theoreticalArrivalNs_.compare_exchange_weak(tat, next, std::memory_order_relaxed))
      return true;
  }
}

CallSlot::CallSlot(std::shared_ptr<void> owner, CallCounter* counter) noexcept
    : owner_(std::move(owner)), counter_(counter) {}

CallSlot::CallSlot(CallSlot&& other) noexcept
    : owner_(std::move(other.owner_)), counter_(std::exchange(other.counter_, nullptr)) {}

CallSlot& CallSlot::operator=(CallSlot&& other) noexcept {
  if (this != &other) {
    release();
    owner_ = std::move(other.owner_);
    counter_ = std::exchange(other.counter_, nullptr);
  }
  return *this;
}

CallSlot::~CallSlot() { release(); }

void CallSlot::release() noexcept {
  // Give the unit back first: owner_ keeps the counter alive until then.
  if (CallCounter* counter = std::exchange(counter_, nullptr)) counter->release();
  owner_.reset();
}

const char* toString(AdmissionResult result) noexcept {
  switch (result) {
    case AdmissionResult::admitted:
      return "admitted";
    case AdmissionResult::overConcurrent:
      return "over_concurrent";
    case AdmissionResult::overRate:
      return "over_rate";
    case AdmissionResult::unknownTrunk:
      return "unknown_trunk";
    case AdmissionResult::draining:
      return "draining";
  }
  return "unknown";
}

}  // namespace sbc::policy
