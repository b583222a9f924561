#include "policy/admission.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace sbc::policy {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

const Clock::time_point kT0 = Clock::time_point{} + seconds(1000);

// The counter admits up to the ceiling and not one more; a release makes room again.
TEST(CallCounterTest, AdmitsUpToTheCeiling) {
  CallCounter counter;
  EXPECT_TRUE(counter.tryAcquire(3));
  EXPECT_TRUE(counter.tryAcquire(3));
  EXPECT_TRUE(counter.tryAcquire(3));
  EXPECT_FALSE(counter.tryAcquire(3));
  EXPECT_EQ(counter.active(), 3u);
  counter.release();
  EXPECT_EQ(counter.active(), 2u);
  EXPECT_TRUE(counter.tryAcquire(3));
  EXPECT_FALSE(counter.tryAcquire(3));
}

// A ceiling of zero admits nothing; a lowered ceiling refuses while the count is above it.
TEST(CallCounterTest, ZeroAndLoweredCeilings) {
  CallCounter counter;
  EXPECT_FALSE(counter.tryAcquire(0));
  EXPECT_EQ(counter.active(), 0u);
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(counter.tryAcquire(5));
  EXPECT_FALSE(counter.tryAcquire(2));
  counter.release();
  counter.release();
  EXPECT_FALSE(counter.tryAcquire(2));  // 3 active, ceiling 2
  counter.release();
  counter.release();
  EXPECT_TRUE(counter.tryAcquire(2));  // 1 active -> 2
  EXPECT_EQ(counter.active(), 2u);
}

// Burst 1 at 10/s: one call per 100 ms, measured on explicit time points.
TEST(RateLimiterTest, SpacesCallsByTheEmissionInterval) {
  RateLimiter limiter;
  EXPECT_TRUE(limiter.tryAcquire(10, 1, kT0));
  EXPECT_FALSE(limiter.tryAcquire(10, 1, kT0));
  EXPECT_FALSE(limiter.tryAcquire(10, 1, kT0 + milliseconds(99)));
  EXPECT_TRUE(limiter.tryAcquire(10, 1, kT0 + milliseconds(100)));
  EXPECT_FALSE(limiter.tryAcquire(10, 1, kT0 + milliseconds(150)));
  EXPECT_TRUE(limiter.tryAcquire(10, 1, kT0 + milliseconds(200)));
  // After a long idle period only one call passes at once (no credit piles up beyond burst).
  EXPECT_TRUE(limiter.tryAcquire(10, 1, kT0 + seconds(60)));
  EXPECT_FALSE(limiter.tryAcquire(10, 1, kT0 + seconds(60)));
}

// Burst N lets N calls arrive back to back, then the sustained rate applies.
TEST(RateLimiterTest, BurstAllowsBackToBackCalls) {
  RateLimiter limiter;
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(limiter.tryAcquire(1, 5, kT0)) << i;
  EXPECT_FALSE(limiter.tryAcquire(1, 5, kT0));
  EXPECT_FALSE(limiter.tryAcquire(1, 5, kT0 + milliseconds(999)));
  EXPECT_TRUE(limiter.tryAcquire(1, 5, kT0 + milliseconds(1000)));
  EXPECT_FALSE(limiter.tryAcquire(1, 5, kT0 + milliseconds(1000)));
  // Ten idle seconds refill the whole burst but no more.
  const auto later = kT0 + seconds(11);
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(limiter.tryAcquire(1, 5, later)) << i;
  EXPECT_FALSE(limiter.tryAcquire(1, 5, later));
}

// Over a long run the admitted count matches rate x time (+ burst), never more.
TEST(RateLimiterTest, SustainedRateIsRespected) {
  RateLimiter limiter;
  int admitted = 0;
  // Offer one call per millisecond for 10 s against 50/s, burst 10.
  for (int ms = 0; ms < 10000; ++ms) admitted += limiter.tryAcquire(50, 10, kT0 + milliseconds(ms));
  EXPECT_GE(admitted, 500);
  EXPECT_LE(admitted, 510);
}

// A rate of zero, a negative rate or NaN admits nothing; burst 0 behaves as burst 1.
TEST(RateLimiterTest, NonPositiveRateAdmitsNothing) {
  RateLimiter limiter;
  EXPECT_FALSE(limiter.tryAcquire(0, 10, kT0));
  EXPECT_FALSE(limiter.tryAcquire(-5, 10, kT0));
  EXPECT_FALSE(limiter.tryAcquire(std::numeric_limits<double>::quiet_NaN(), 10, kT0));
  RateLimiter zeroBurst;
  EXPECT_TRUE(zeroBurst.tryAcquire(1, 0, kT0));
  EXPECT_FALSE(zeroBurst.tryAcquire(1, 0, kT0));
}

// Extreme rates neither overflow nor wrap: a tiny rate admits once, a huge rate admits all.
TEST(RateLimiterTest, ExtremeRatesStaySane) {
  RateLimiter slow;
  EXPECT_TRUE(slow.tryAcquire(1e-30, 1, kT0));
  EXPECT_FALSE(slow.tryAcquire(1e-30, 1, kT0 + seconds(3600)));
  RateLimiter fast;
  for (int i = 0; i < 1000; ++i) EXPECT_TRUE(fast.tryAcquire(1e12, 1, kT0 + milliseconds(i)));
  RateLimiter bigBurst;
  EXPECT_TRUE(bigBurst.tryAcquire(1e-9, UINT32_MAX, kT0));
}

// Concurrent rate attempts at one instant admit exactly the burst.
TEST(RateLimiterTest, ConcurrentAttemptsAdmitExactlyTheBurst) {
  RateLimiter limiter;
  std::atomic<int> admitted{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 1000; ++i) admitted += limiter.tryAcquire(1, 100, kT0);
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(admitted.load(), 100);
}

// A slot gives its unit back when destroyed, and keeps the owner alive meanwhile.
TEST(CallSlotTest, ReleasesOnDestructionAndHoldsOwner) {
  auto owner = std::make_shared<CallCounter>();
  std::weak_ptr<CallCounter> watch = owner;
  ASSERT_TRUE(owner->tryAcquire(1));
  {
    CallSlot slot(owner, owner.get());
    EXPECT_TRUE(static_cast<bool>(slot));
    owner.reset();
    EXPECT_FALSE(watch.expired());
    EXPECT_EQ(watch.lock()->active(), 1u);
  }
  EXPECT_TRUE(watch.expired());
}

// release() drops the count once; a second release() and the destructor do nothing more.
TEST(CallSlotTest, DoubleReleaseDropsOnce) {
  auto counter = std::make_shared<CallCounter>();
  ASSERT_TRUE(counter->tryAcquire(5));
  ASSERT_TRUE(counter->tryAcquire(5));
  {
    CallSlot slot(counter, counter.get());
    slot.release();
    EXPECT_FALSE(static_cast<bool>(slot));
    EXPECT_EQ(counter->active(), 1u);
    slot.release();
    EXPECT_EQ(counter->active(), 1u);
  }
  EXPECT_EQ(counter->active(), 1u);
}

// Moving a slot transfers the unit: the moved-from slot does nothing, the count drops once.
TEST(CallSlotTest, MoveTransfersTheUnit) {
  auto counter = std::make_shared<CallCounter>();
  ASSERT_TRUE(counter->tryAcquire(5));
  CallSlot a(counter, counter.get());
  CallSlot b(std::move(a));
  EXPECT_FALSE(static_cast<bool>(a));  // NOLINT(bugprone-use-after-move): tested on purpose
  EXPECT_TRUE(static_cast<bool>(b));
  a.release();  // NOLINT(bugprone-use-after-move)
  EXPECT_EQ(counter->active(), 1u);
  {
    CallSlot c = std::move(b);
    EXPECT_EQ(counter->active(), 1u);
  }
  EXPECT_EQ(counter->active(), 0u);
}

// Move-assigning over a holding slot releases the old unit first, then takes the new one.
TEST(CallSlotTest, MoveAssignReleasesTheOverwrittenUnit) {
  auto first = std::make_shared<CallCounter>();
  auto second = std::make_shared<CallCounter>();
  ASSERT_TRUE(first->tryAcquire(5));
  ASSERT_TRUE(second->tryAcquire(5));
  CallSlot slot(first, first.get());
  CallSlot other(second, second.get());
  slot = std::move(other);
  EXPECT_EQ(first->active(), 0u);
  EXPECT_EQ(second->active(), 1u);
  auto& self = slot;
  slot = std::move(self);  // self-move keeps the unit
  EXPECT_EQ(second->active(), 1u);
  EXPECT_TRUE(static_cast<bool>(slot));
  slot = CallSlot();
  EXPECT_EQ(second->active(), 0u);
}

// Every result has its metric label.
TEST(AdmissionResultTest, NamesAreStable) {
  EXPECT_STREQ(toString(AdmissionResult::admitted), "admitted");
  EXPECT_STREQ(toString(AdmissionResult::overConcurrent), "over_concurrent");
  EXPECT_STREQ(toString(AdmissionResult::overRate), "over_rate");
  EXPECT_STREQ(toString(AdmissionResult::unknownTrunk), "unknown_trunk");
  EXPECT_STREQ(toString(AdmissionResult::draining), "draining");
}

// 8 threads x 20,000 acquire/release against a ceiling of 5: a watcher never sees more
// than 5 active, every acquire is matched, and the count ends at zero.
TEST(CallCounterTest, ConcurrentAcquireReleaseNeverExceedsCeiling) {
  constexpr std::uint32_t kCeiling = 5;
  CallCounter counter;
  std::atomic<bool> stop{false};
  std::atomic<std::uint32_t> maxSeen{0};
  std::atomic<long> admitted{0};
  std::thread watcher([&] {
    while (!stop.load()) {
      const std::uint32_t now = counter.active();
      if (now > maxSeen.load()) maxSeen.store(now);
    }
  });
  std::vector<std::thread> workers;
  for (int t = 0; t < 8; ++t) {
    workers.emplace_back([&] {
      for (int i = 0; i < 20000; ++i) {
        if (counter.tryAcquire(kCeiling)) {
          ++admitted;
          counter.release();
        }
      }
    });
  }
  for (auto& worker : workers) worker.join();
  stop = true;
  watcher.join();
  EXPECT_LE(maxSeen.load(), kCeiling);
  EXPECT_GT(admitted.load(), 0);
  EXPECT_EQ(counter.active(), 0u);
}

}  // namespace
}  // namespace sbc::policy
