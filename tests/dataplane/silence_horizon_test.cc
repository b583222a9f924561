// Where a DPDK worker's media silence is measured up to (dataplane/dpdk/silence_horizon.h).

#include "dataplane/dpdk/silence_horizon.h"

#include <gtest/gtest.h>

namespace sbc::dataplane::dpdk {
namespace {

constexpr std::uint64_t kTimeout = 1000;

// Proves: a worker that keeps up reads up to its latest round, which is about the clock.
TEST(SilenceHorizon, KeepingUpIsTheLatestRound) {
  EXPECT_EQ(silenceHorizon(50000, {49990, 49990}, kTimeout), 49990u);
}

// Proves: a worker kept from running has looked at nothing since its last round, however
// long ago that was: its streams are not silent for the time it did not look.
TEST(SilenceHorizon, StalledWorkerHoldsTheHorizon) {
  EXPECT_EQ(silenceHorizon(50000, {40000, 40000}, kTimeout), 40000u);
  EXPECT_EQ(silenceHorizon(50000, {10, 10}, kTimeout), 10u);
}

// Proves: a worker that runs but never empties its queues holds the horizon back by at most
// one timeout, so silent calls are still reported, one timeout late.
TEST(SilenceHorizon, OverloadedWorkerTrailsByAtMostOneTimeout) {
  EXPECT_EQ(silenceHorizon(50000, {49990, 49500}, kTimeout), 49500u);
  EXPECT_EQ(silenceHorizon(50000, {49990, 40000}, kTimeout), 49000u);
}

// Proves: stamps later than the clock (another vCPU's TSC, a stamp after the clock was read)
// never move the horizon past the clock, and an early clock does not wrap around.
TEST(SilenceHorizon, NeverPastTheClock) {
  EXPECT_EQ(silenceHorizon(50000, {60000, 60000}, kTimeout), 50000u);
  EXPECT_EQ(silenceHorizon(500, {400, 0}, kTimeout), 0u);
  EXPECT_EQ(silenceHorizon(500, {400, 300}, kTimeout), 300u);
}

}  // namespace
}  // namespace sbc::dataplane::dpdk
