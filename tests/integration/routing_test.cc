// Core → trunk routing by Request-URI user prefix (trunks.dial_prefixes): two trunks with
// nested prefixes, SIPp as each trunk and as the core; the longest prefix picks the trunk,
// a number nothing matches gets 404 and is counted.

#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "tests/integration/trunk_fixture.h"
#include "tests/support/test_env.h"

namespace sbc::test {
namespace {

class DialPrefixRouting : public TrunkFixture {
 protected:
  void SetUp() override {
    TrunkFixture::SetUp();
    betaPort_ = freeUdpPort("127.0.0.4");
    trunkExtra_ = R"(dial_prefixes = [ "+4930" ];)";
    extraTrunks_ = R"(, { name = "beta"; source_prefixes = [ "127.0.0.4/32" ];
        target = { host = "127.0.0.4"; port = )" + std::to_string(betaPort_) + R"(; };
        dial_prefixes = [ "+49301" ]; max_calls = 10; max_calls_per_second = 1000.0; })";
  }

  // SIPp answering one call as a trunk on host:port, once it listens.
  std::unique_ptr<ChildProcess> startTrunkAnswering(const char* host, int port) {
    return startUas("trunk_uas_answer.xml", host, port);
  }

  // The core dials `number` with `scenario`; the scenario must complete.
  void coreDials(const std::string& number, const std::string& scenario) {
    const auto core = runCommand(
        {"/usr/bin/sipp", "-sf", kSippDir + "/" + scenario, "-i", "127.0.0.3", "-bind_local",
         "-p", std::to_string(corePort_), "-s", number, "-m", "1", "-timeout", "20s",
         "-timeout_error", "-nostdin", "127.0.0.11:" + std::to_string(sbcCorePort_)},
        std::chrono::seconds(40));
    EXPECT_EQ(core.status, 0) << core.output;
  }

  static std::string answered(const char* trunk) {
    return std::string("sbc_calls_total{direction=\"to_trunk\",result=\"answered\",trunk=\"") +
           trunk + "\"}";
  }

  int betaPort_ = 0;
};

// Proves: a number under both trunks' prefixes goes to the trunk with the longer one
// (beta, "+49301"); a number only under "+4930" goes to alpha. Each call reaches only its
// trunk's SIPp and counts on that trunk.
TEST_F(DialPrefixRouting, LongestPrefixPicksTheTrunk) {
  startSbc(10);
  {
    auto beta = startTrunkAnswering("127.0.0.4", betaPort_);
    coreDials("+4930123456", "core_uac_dial.xml");
    EXPECT_EQ(beta->waitForExit(10s), 0) << beta->output();
  }
  EXPECT_TRUE(daemon_->waitForMetric(answered("beta"), 1)) << daemon_->scrape();
  EXPECT_EQ(metric(answered("alpha")), 0);
  {
    auto alpha = startTrunkAnswering("127.0.0.2", trunkPort_);
    coreDials("+4930999", "core_uac_dial.xml");
    EXPECT_EQ(alpha->waitForExit(10s), 0) << alpha->output();
  }
  EXPECT_TRUE(daemon_->waitForMetric(answered("alpha"), 1)) << daemon_->scrape();
  EXPECT_EQ(metric(answered("beta")), 1);
  EXPECT_EQ(metric("sbc_unrouted_calls_total{reason=\"no_route\"}"), 0);
  expectNoActiveCalls();
}

// Proves: a number no prefix matches is answered 404, counted as no_route, and takes no
// trunk's slot or admission.
TEST_F(DialPrefixRouting, NoMatchingPrefixGets404) {
  startSbc(10);
  coreDials("+3312345", "core_uac_unrouted.xml");
  EXPECT_EQ(metric("sbc_unrouted_calls_total{reason=\"no_route\"}"), 1) << daemon_->scrape();
  EXPECT_EQ(metric("sbc_sip_responses_total{code=\"404\",realm=\"core\"}"), 1);
  EXPECT_EQ(metric("sbc_admission_total{result=\"admitted\",trunk=\"alpha\"}"), 0);
  EXPECT_EQ(metric("sbc_admission_total{result=\"admitted\",trunk=\"beta\"}"), 0);
  expectNoActiveCalls();
}

}  // namespace
}  // namespace sbc::test
