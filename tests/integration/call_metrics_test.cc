// sbc_calls_total{trunk,direction,result} and sbc_call_setup_seconds{trunk,direction} after
// real calls between SIPp peers through sbcd: each call is counted once with the result of
// its whole life, and the setup histogram observes each call once.

#include <chrono>
#include <string>

#include <gtest/gtest.h>

#include "tests/integration/trunk_fixture.h"
#include "tests/support/test_env.h"

namespace sbc::test {
namespace {

class CallMetrics : public TrunkFixture {
 protected:
  static std::string calls(const char* direction, const char* result) {
    return std::string("sbc_calls_total{direction=\"") + direction + "\",result=\"" + result +
           "\",trunk=\"alpha\"}";
  }
  static std::string setupCount(const char* direction) {
    return std::string("sbc_call_setup_seconds_count{direction=\"") + direction +
           "\",trunk=\"alpha\"}";
  }

  // Waits until `result` reached `expected` (the counter moves when the SBC has finished
  // with the call, which may be just after the peer's last message), then checks that no
  // other result of that direction moved and that the histogram counted every call.
  void expectOnly(const char* direction, const char* result, double expected,
                  double others = 0) {
    EXPECT_TRUE(daemon_->waitForMetric(calls(direction, result), expected))
        << daemon_->scrape();
    const std::string text = daemon_->scrape();
    double total = 0;
    for (const char* any : {"answered", "media_timeout", "aborted", "cancelled", "failed",
                            "timeout", "refused"}) {
      const auto value = metricValue(text, calls(direction, any));
      ASSERT_TRUE(value.has_value()) << any << "\n" << text;
      total += *value;
    }
    EXPECT_EQ(total, expected + others) << text;
    EXPECT_EQ(metricValue(text, setupCount(direction)), expected + others) << text;
  }
};

// Proves: the series exist at zero for a configured trunk before its first call.
TEST_F(CallMetrics, SeriesStartAtZero) {
  startSbc(10);
  EXPECT_EQ(metric(calls("from_trunk", "answered")), 0);
  EXPECT_EQ(metric(calls("to_trunk", "refused")), 0);
  EXPECT_EQ(metric(setupCount("to_trunk")), 0);
}

// Proves: answered trunk → core calls count as answered once each, and their setup time
// (INVITE to 200) lands in the histogram: at least the core's answer, at most a second.
TEST_F(CallMetrics, AnsweredCallsFromTheTrunk) {
  startSbc(10);
  callThrough("uas_answer.xml", "uac_hold.xml", 2);
  expectOnly("from_trunk", "answered", 2);
  const std::string text = daemon_->scrape();
  const auto sum = metricValue(
      text, "sbc_call_setup_seconds_sum{direction=\"from_trunk\",trunk=\"alpha\"}");
  ASSERT_TRUE(sum.has_value()) << text;
  EXPECT_GT(*sum, 0);
  EXPECT_EQ(metricValue(text, "sbc_call_setup_seconds_bucket{direction=\"from_trunk\","
                              "trunk=\"alpha\",le=\"+Inf\"}"),
            2);
  EXPECT_EQ(metric(calls("to_trunk", "answered")), 0);
  expectNoActiveCalls();
}

// Proves: with a ceiling of 1 and 2 simultaneous calls, one is answered and one refused
// (503), and both are in the setup histogram.
TEST_F(CallMetrics, CeilingRefusalIsCounted) {
  startSbc(1);
  auto core = startCore("uas_answer.xml", 1);
  const auto trunk = trunkCalls("uac_hold.xml", 2, 2);
  EXPECT_EQ(trunk.status, 0) << trunk.output;
  EXPECT_TRUE(daemon_->waitForMetric(calls("from_trunk", "refused"), 1)) << daemon_->scrape();
  expectOnly("from_trunk", "answered", 1, 1);
  expectNoActiveCalls();
}

// Proves: a call the trunk cancels while the core rings counts as cancelled.
TEST_F(CallMetrics, CancelledCallIsCounted) {
  startSbc(10);
  callThrough("uas_ring_cancel.xml", "uac_cancel.xml");
  expectOnly("from_trunk", "cancelled", 1);
  expectNoActiveCalls();
}

// Proves: a call the core refuses (486) counts as failed, not as refused by the SBC.
TEST_F(CallMetrics, RejectedCallIsCountedAsFailed) {
  startSbc(10);
  callThrough("uas_busy.xml", "uac_busy.xml");
  expectOnly("from_trunk", "failed", 1);
  expectNoActiveCalls();
}

// Proves: a core that never answers makes the call count as timeout (Timer B, 408).
TEST_F(CallMetrics, UnansweredCallIsCountedAsTimeout) {
  UdpSocket silent("127.0.0.3", corePort_);  // takes the INVITEs, never answers
  ASSERT_TRUE(silent.bound());
  startSbc(10);
  const auto trunk = trunkCalls("uac_hold.xml", 1, 1);
  EXPECT_NE(trunk.status, 0);  // the scenario wants 200 or 503 and gets 408
  expectOnly("from_trunk", "timeout", 1);
  expectNoActiveCalls();
}

// Proves: a core → trunk call counts in the to_trunk direction.
TEST_F(CallMetrics, CallTowardsTheTrunkIsCountedOutbound) {
  startSbc(10);
  callFromCore();
  expectOnly("to_trunk", "answered", 1);
  EXPECT_EQ(metric(setupCount("from_trunk")), 0);
  expectNoActiveCalls();
}

}  // namespace
}  // namespace sbc::test
