#include "policy/policy.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <map>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace sbc::policy {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

const Clock::time_point kT0 = Clock::time_point{} + seconds(1000);

TrunkRule trunk(std::string name, std::vector<const char*> prefixes, std::uint32_t maxCalls,
                double perSecond = 1000, std::uint32_t burst = 1000) {
  TrunkRule rule;
  rule.name = std::move(name);
  for (const char* text : prefixes) rule.sourcePrefixes.push_back(IpPrefix::parse(text).value());
  rule.maxConcurrentCalls = maxCalls;
  rule.maxCallsPerSecond = perSecond;
  rule.callRateBurst = burst;
  return rule;
}

Rules rules(std::vector<TrunkRule> trunks, std::uint32_t lineMax = 2) {
  Rules result;
  result.trunks = std::move(trunks);
  result.lines.maxConcurrentCalls = lineMax;
  return result;
}

std::uint32_t indexOf(const Snapshot& snapshot, const std::string& name) {
  const auto index = snapshot.findTrunkByName(name);
  EXPECT_TRUE(index.has_value()) << name;
  return index.value_or(UINT32_MAX);
}

std::map<std::string, std::uint32_t> trunkCounts(const Policy& policy) {
  std::map<std::string, std::uint32_t> counts;
  policy.forEachTrunkState(
      [&](const TrunkState& state) { counts[state.name] += state.calls.active(); });
  return counts;
}

// The snapshot finds trunks by name and by longest source prefix.
TEST(SnapshotTest, FindsTrunksByNameAndSource) {
  const Policy policy(rules({trunk("pbx-a", {"198.51.100.0/24"}, 10),
                             trunk("pbx-b", {"198.51.100.128/25", "2001:db8::/48"}, 10)}));
  const auto snapshot = policy.current();
  ASSERT_NE(snapshot, nullptr);
  EXPECT_EQ(snapshot->trunkCount(), 2u);
  EXPECT_EQ(snapshot->findTrunkByName("pbx-a"), 0u);
  EXPECT_EQ(snapshot->findTrunkByName("pbx-b"), 1u);
  EXPECT_EQ(snapshot->findTrunkByName("pbx-c"), std::nullopt);
  EXPECT_EQ(snapshot->findTrunkBySource(*IpAddress::parse("198.51.100.1")), 0u);
  EXPECT_EQ(snapshot->findTrunkBySource(*IpAddress::parse("198.51.100.200")), 1u);
  EXPECT_EQ(snapshot->findTrunkBySource(*IpAddress::parse("2001:db8::9")), 1u);
  EXPECT_EQ(snapshot->findTrunkBySource(*IpAddress::parse("203.0.113.1")), std::nullopt);
  EXPECT_EQ(snapshot->trunkState(0)->name, "pbx-a");
  EXPECT_EQ(snapshot->trunk(1).name, "pbx-b");
}

// A snapshot refuses a state vector that does not match its trunks.
TEST(SnapshotTest, RefusesMismatchedStates) {
  EXPECT_THROW(Snapshot(rules({trunk("a", {}, 1)}), {}), std::invalid_argument);
  EXPECT_THROW(Snapshot(rules({trunk("a", {}, 1)}), {nullptr}), std::invalid_argument);
}

// The concurrent ceiling admits up to the limit, then over_concurrent; a freed slot makes room.
TEST(PolicyTest, TrunkConcurrentCeiling) {
  Policy policy(rules({trunk("pbx", {"192.0.2.0/24"}, 2)}));
  const auto snapshot = policy.current();
  auto first = policy.admitTrunkCall(*snapshot, 0, kT0);
  auto second = policy.admitTrunkCall(*snapshot, 0, kT0);
  auto third = policy.admitTrunkCall(*snapshot, 0, kT0);
  EXPECT_EQ(first.result, AdmissionResult::admitted);
  EXPECT_TRUE(static_cast<bool>(first.slot));
  EXPECT_EQ(second.result, AdmissionResult::admitted);
  EXPECT_EQ(third.result, AdmissionResult::overConcurrent);
  EXPECT_FALSE(static_cast<bool>(third.slot));
  EXPECT_EQ(policy.activeTrunkCalls(), 2u);
  first.slot.release();
  EXPECT_EQ(policy.activeTrunkCalls(), 1u);
  EXPECT_EQ(policy.admitTrunkCall(*snapshot, 0, kT0).result, AdmissionResult::admitted);
  // The temporary's slot is gone: still one active.
  EXPECT_EQ(policy.activeTrunkCalls(), 1u);
}

// The rate ceiling refuses with over_rate and gives back the concurrent unit it took.
TEST(PolicyTest, TrunkRateCeilingReturnsTheConcurrentUnit) {
  Policy policy(rules({trunk("pbx", {"192.0.2.0/24"}, 100, /*perSecond=*/2, /*burst=*/2)}));
  const auto snapshot = policy.current();
  std::vector<Admission> held;
  held.push_back(policy.admitTrunkCall(*snapshot, 0, kT0));
  held.push_back(policy.admitTrunkCall(*snapshot, 0, kT0));
  EXPECT_EQ(held[0].result, AdmissionResult::admitted);
  EXPECT_EQ(held[1].result, AdmissionResult::admitted);
  const auto refused = policy.admitTrunkCall(*snapshot, 0, kT0 + milliseconds(10));
  EXPECT_EQ(refused.result, AdmissionResult::overRate);
  EXPECT_FALSE(static_cast<bool>(refused.slot));
  EXPECT_EQ(snapshot->trunkState(0)->calls.active(), 2u);
  held.push_back(policy.admitTrunkCall(*snapshot, 0, kT0 + milliseconds(500)));
  EXPECT_EQ(held.back().result, AdmissionResult::admitted);
  EXPECT_EQ(snapshot->trunkState(0)->calls.active(), 3u);
}

// The concurrent ceiling is checked first: a call refused for concurrency spends no rate.
TEST(PolicyTest, ConcurrentCheckedBeforeRate) {
  Policy policy(rules({trunk("pbx", {}, 1, /*perSecond=*/1, /*burst=*/2)}));
  const auto snapshot = policy.current();
  auto held = policy.admitTrunkCall(*snapshot, 0, kT0);
  ASSERT_EQ(held.result, AdmissionResult::admitted);
  for (int i = 0; i < 5; ++i)
    EXPECT_EQ(policy.admitTrunkCall(*snapshot, 0, kT0).result, AdmissionResult::overConcurrent);
  held.slot.release();
  // The second unit of burst is still there.
  EXPECT_EQ(policy.admitTrunkCall(*snapshot, 0, kT0).result, AdmissionResult::admitted);
}

// A zero call rate admits nothing, even under the concurrent ceiling, and leaks no unit.
TEST(PolicyTest, ZeroRateAdmitsNothing) {
  Policy policy(rules({trunk("pbx", {}, 10, /*perSecond=*/0, /*burst=*/5)}));
  const auto snapshot = policy.current();
  EXPECT_EQ(policy.admitTrunkCall(*snapshot, 0, kT0).result, AdmissionResult::overRate);
  EXPECT_EQ(policy.activeTrunkCalls(), 0u);
}

// An index beyond the snapshot is unknown_trunk; draining refuses everything first.
TEST(PolicyTest, UnknownTrunkAndDraining) {
  Policy policy(rules({trunk("pbx", {}, 10)}));
  const auto snapshot = policy.current();
  EXPECT_EQ(policy.admitTrunkCall(*snapshot, 1, kT0).result, AdmissionResult::unknownTrunk);
  EXPECT_EQ(policy.admitTrunkCall(*snapshot, UINT32_MAX, kT0).result,
            AdmissionResult::unknownTrunk);
  auto held = policy.admitTrunkCall(*snapshot, 0, kT0);
  ASSERT_EQ(held.result, AdmissionResult::admitted);
  policy.setDraining(true);
  EXPECT_TRUE(policy.draining());
  EXPECT_EQ(policy.admitTrunkCall(*snapshot, 0, kT0).result, AdmissionResult::draining);
  EXPECT_EQ(policy.admitTrunkCall(*snapshot, 7, kT0).result, AdmissionResult::draining);
  EXPECT_EQ(policy.admitLineCall("sip:alice@example.net").result, AdmissionResult::draining);
  EXPECT_EQ(policy.activeTrunkCalls(), 1u);  // existing calls continue while draining
  policy.setDraining(false);
  EXPECT_EQ(policy.admitTrunkCall(*snapshot, 0, kT0).result, AdmissionResult::admitted);
}

// The slot keeps the trunk state alive after every snapshot and the policy forgot it.
TEST(PolicyTest, SlotOutlivesSnapshotAndPolicy) {
  CallSlot slot;
  std::weak_ptr<TrunkState> watch;
  {
    Policy policy(rules({trunk("pbx", {}, 10)}));
    auto admission = policy.admitTrunkCall(*policy.current(), 0, kT0);
    ASSERT_EQ(admission.result, AdmissionResult::admitted);
    watch = policy.current()->trunkState(0);
    slot = std::move(admission.slot);
  }
  ASSERT_FALSE(watch.expired());
  EXPECT_EQ(watch.lock()->calls.active(), 1u);
  slot.release();
  EXPECT_TRUE(watch.expired());
}

// Lowering a ceiling below the active count: existing calls continue, new ones are refused
// until the count falls below the new ceiling; the count is never reset.
TEST(PolicyReloadTest, LoweredCeilingKeepsCallsAndRefusesNewOnes) {
  Policy policy(rules({trunk("pbx", {"192.0.2.0/24"}, 5)}));
  std::vector<Admission> calls;
  for (int i = 0; i < 4; ++i) {
    calls.push_back(policy.admitTrunkCall(*policy.current(), 0, kT0));
    ASSERT_EQ(calls.back().result, AdmissionResult::admitted);
  }
  const auto before = policy.current();
  policy.publish(rules({trunk("pbx", {"192.0.2.0/24"}, 2)}));
  const auto after = policy.current();
  ASSERT_NE(before, after);
  EXPECT_EQ(after->trunk(0).maxConcurrentCalls, 2u);
  EXPECT_EQ(before->trunkState(0), after->trunkState(0));  // same live state
  EXPECT_EQ(after->trunkState(0)->calls.active(), 4u);
  EXPECT_EQ(policy.admitTrunkCall(*after, 0, kT0).result, AdmissionResult::overConcurrent);
  calls.pop_back();
  calls.pop_back();  // 2 active: still at the ceiling
  EXPECT_EQ(policy.admitTrunkCall(*after, 0, kT0).result, AdmissionResult::overConcurrent);
  calls.pop_back();  // 1 active
  auto fresh = policy.admitTrunkCall(*after, 0, kT0);
  EXPECT_EQ(fresh.result, AdmissionResult::admitted);
  EXPECT_EQ(policy.activeTrunkCalls(), 2u);
  calls.clear();
  fresh.slot.release();
  EXPECT_EQ(policy.activeTrunkCalls(), 0u);
}

// A removed trunk's calls continue and stay visible; nothing new is admitted for it; when it
// is re-added while calls are live it finds its count intact.
TEST(PolicyReloadTest, RemovedTrunkKeepsCallsAndReAddFindsCountIntact) {
  Policy policy(
      rules({trunk("keep", {"192.0.2.0/24"}, 10), trunk("gone", {"198.51.100.0/24"}, 3)}));
  const auto first = policy.current();
  std::vector<Admission> goneCalls;
  for (int i = 0; i < 3; ++i) {
    goneCalls.push_back(policy.admitTrunkCall(*first, indexOf(*first, "gone"), kT0));
    ASSERT_EQ(goneCalls.back().result, AdmissionResult::admitted);
  }
  auto keepCall = policy.admitTrunkCall(*first, indexOf(*first, "keep"), kT0);
  ASSERT_EQ(keepCall.result, AdmissionResult::admitted);

  policy.publish(rules({trunk("keep", {"192.0.2.0/24"}, 10)}));
  const auto second = policy.current();
  EXPECT_EQ(second->findTrunkByName("gone"), std::nullopt);
  EXPECT_EQ(second->findTrunkBySource(*IpAddress::parse("198.51.100.1")), std::nullopt);
  EXPECT_EQ(policy.admitTrunkCall(*second, 1, kT0).result, AdmissionResult::unknownTrunk);
  EXPECT_EQ(policy.activeTrunkCalls(), 4u);
  EXPECT_EQ(trunkCounts(policy), (std::map<std::string, std::uint32_t>{{"gone", 3}, {"keep", 1}}));

  // Drop the old snapshot: only the calls hold "gone" now.
  goneCalls.pop_back();
  EXPECT_EQ(trunkCounts(policy)["gone"], 2u);

  policy.publish(
      rules({trunk("keep", {"192.0.2.0/24"}, 10), trunk("gone", {"198.51.100.0/24"}, 3)}));
  const auto third = policy.current();
  const std::uint32_t gone = indexOf(*third, "gone");
  EXPECT_EQ(third->trunkState(gone)->calls.active(), 2u);
  EXPECT_EQ(third->trunkState(gone), first->trunkState(indexOf(*first, "gone")));
  auto again = policy.admitTrunkCall(*third, gone, kT0);
  EXPECT_EQ(again.result, AdmissionResult::admitted);
  EXPECT_EQ(policy.admitTrunkCall(*third, gone, kT0).result, AdmissionResult::overConcurrent);
  goneCalls.clear();
  again.slot.release();
  keepCall.slot.release();
  EXPECT_EQ(policy.activeTrunkCalls(), 0u);
}

// A trunk removed after all its calls ended comes back with a fresh state; dead states are
// no longer visited.
TEST(PolicyReloadTest, RemovedIdleTrunkIsForgotten) {
  Policy policy(rules({trunk("a", {}, 10), trunk("b", {}, 10)}));
  std::weak_ptr<TrunkState> oldB = policy.current()->trunkState(1);
  policy.publish(rules({trunk("a", {}, 10)}));
  EXPECT_TRUE(oldB.expired());
  EXPECT_EQ(trunkCounts(policy).count("b"), 0u);
  policy.publish(rules({trunk("a", {}, 10), trunk("b", {}, 10)}));
  EXPECT_EQ(trunkCounts(policy).size(), 2u);
  EXPECT_EQ(policy.current()->trunkState(1)->calls.active(), 0u);
}

// A reload keeps the rate limiter's state: a burst spent before the reload stays spent.
TEST(PolicyReloadTest, RateStateSurvivesReload) {
  Policy policy(rules({trunk("pbx", {}, 100, /*perSecond=*/1, /*burst=*/1)}));
  EXPECT_EQ(policy.admitTrunkCall(*policy.current(), 0, kT0).result, AdmissionResult::admitted);
  policy.publish(rules({trunk("pbx", {}, 100, /*perSecond=*/1, /*burst=*/1)}));
  EXPECT_EQ(policy.admitTrunkCall(*policy.current(), 0, kT0).result, AdmissionResult::overRate);
  EXPECT_EQ(policy.admitTrunkCall(*policy.current(), 0, kT0 + seconds(1)).result,
            AdmissionResult::admitted);
}

// The per-line ceiling applies per AoR, from the current snapshot's rules.
TEST(PolicyLineTest, PerLineCeiling) {
  Policy policy(rules({}, /*lineMax=*/2));
  auto a1 = policy.admitLineCall("sip:alice@example.net");
  auto a2 = policy.admitLineCall("sip:alice@example.net");
  auto a3 = policy.admitLineCall("sip:alice@example.net");
  auto b1 = policy.admitLineCall("sip:bob@example.net");
  EXPECT_EQ(a1.result, AdmissionResult::admitted);
  EXPECT_EQ(a2.result, AdmissionResult::admitted);
  EXPECT_EQ(a3.result, AdmissionResult::overConcurrent);
  EXPECT_EQ(b1.result, AdmissionResult::admitted);
  EXPECT_EQ(policy.activeLineCalls(), 3u);
  a1.slot.release();
  EXPECT_EQ(policy.admitLineCall("sip:alice@example.net").result, AdmissionResult::admitted);
  EXPECT_EQ(policy.activeLineCalls(), 2u);  // the temporary's slot already ended

  // Lowering the line ceiling keeps live calls and refuses new ones above it.
  policy.publish(rules({}, /*lineMax=*/1));
  EXPECT_EQ(policy.admitLineCall("sip:alice@example.net").result, AdmissionResult::overConcurrent);
  EXPECT_EQ(policy.admitLineCall("sip:bob@example.net").result, AdmissionResult::overConcurrent);
  EXPECT_EQ(policy.admitLineCall("sip:carol@example.net").result, AdmissionResult::admitted);
  EXPECT_EQ(policy.activeLineCalls(), 2u);
  a2.slot.release();
  b1.slot.release();
  EXPECT_EQ(policy.activeLineCalls(), 0u);
}

// Pruning dead line states (100,000 short calls on distinct AoRs) leaves no stray count and
// keeps a live line's count intact.
TEST(PolicyLineTest, DeadLineStatesArePruned) {
  Policy policy(rules({}, /*lineMax=*/1));
  auto held = policy.admitLineCall("sip:held@example.net");
  ASSERT_EQ(held.result, AdmissionResult::admitted);
  for (int i = 0; i < 100000; ++i) {
    auto admission = policy.admitLineCall("sip:user" + std::to_string(i) + "@example.net");
    ASSERT_EQ(admission.result, AdmissionResult::admitted) << i;
  }
  EXPECT_EQ(policy.activeLineCalls(), 1u);
  EXPECT_EQ(policy.admitLineCall("sip:held@example.net").result, AdmissionResult::overConcurrent);
  held.slot.release();
  EXPECT_EQ(policy.admitLineCall("sip:held@example.net").result, AdmissionResult::admitted);
}

// 8 threads x 20,000 admit/release through the policy against a trunk ceiling of 4, with
// reloads racing (the ceiling never goes above 4): a watcher never sees more than 4 active,
// and the count ends at zero.
TEST(PolicyConcurrencyTest, ConcurrentAdmitsNeverExceedCeiling) {
  constexpr std::uint32_t kCeiling = 4;
  Policy policy(rules({trunk("pbx", {"192.0.2.0/24"}, kCeiling, 1e12, 1000000)}, 1));
  const auto state = policy.current()->trunkState(0);
  std::atomic<bool> stop{false};
  std::atomic<std::uint32_t> maxSeen{0};
  std::atomic<long> admitted{0};
  std::atomic<long> lineAdmitted{0};
  std::thread watcher([&] {
    while (!stop.load()) {
      const std::uint32_t now = state->calls.active();
      if (now > maxSeen.load()) maxSeen.store(now);
    }
  });
  std::thread reloader([&] {
    for (std::uint32_t i = 0; !stop.load(); ++i) {
      policy.publish(rules({trunk("other", {"10.0.0.0/8"}, 1),
                            trunk("pbx", {"192.0.2.0/24"}, 1 + i % kCeiling, 1e12, 1000000)},
                           1));
      std::this_thread::yield();
    }
  });
  std::vector<std::thread> workers;
  for (int t = 0; t < 8; ++t) {
    workers.emplace_back([&, t] {
      const auto source = *IpAddress::parse("192.0.2.77");
      const std::string aor = "sip:line" + std::to_string(t % 2) + "@example.net";
      for (int i = 0; i < 20000; ++i) {
        const auto snapshot = policy.current();
        const auto index = snapshot->findTrunkBySource(source);
        ASSERT_TRUE(index.has_value());
        // A fixed time point: a stale Clock::now() from a preempted thread would make the
        // (legitimate) rate refusals this test is not about.
        auto admission = policy.admitTrunkCall(*snapshot, *index, kT0);
        if (admission.result == AdmissionResult::admitted) {
          ++admitted;
          if (i % 2 == 0) admission.slot.release();
        } else {
          ASSERT_EQ(admission.result, AdmissionResult::overConcurrent);
        }
        if (i % 16 == 0) {
          auto line = policy.admitLineCall(aor);
          lineAdmitted += line.result == AdmissionResult::admitted;
        }
      }
    });
  }
  for (auto& worker : workers) worker.join();
  stop = true;
  watcher.join();
  reloader.join();
  EXPECT_LE(maxSeen.load(), kCeiling);
  EXPECT_GT(admitted.load(), 0);
  EXPECT_GT(lineAdmitted.load(), 0);
  EXPECT_EQ(state->calls.active(), 0u);
  EXPECT_EQ(policy.activeTrunkCalls(), 0u);
  EXPECT_EQ(policy.activeLineCalls(), 0u);
}

}  // namespace
}  // namespace sbc::policy
