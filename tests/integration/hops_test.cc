// Hop limits through the B2BUA, with SIPp as trunk (127.0.0.2) and core (127.0.0.3): a
// request that already passed through the SBC is a loop (482), Max-Forwards counts down
// across the SBC on initial and in-dialog requests, and a request with none left gets 483.

#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/integration/sbcd_process.h"
#include "tests/integration/trunk_fixture.h"
#include "tests/support/test_env.h"

namespace sbc::test {
namespace {

using HopLimits = TrunkFixture;

// Proves: an INVITE whose Via list names one of the SBC's own listen addresses (either
// realm's, arriving in either realm) is answered 482, counted, and never forwarded or
// admitted.
TEST_F(HopLimits, LoopedRequestGets482) {
  startSbc(10);
  for (const std::string& ourAddress :
       {"127.0.0.10:" + std::to_string(accessPort_), "127.0.0.11:" + std::to_string(sbcCorePort_)}) {
    auto args = trunkArgs("uac_looped.xml", 1, 1);
    args.insert(args.end() - 1, {"-key", "loop_via", ourAddress});
    const auto trunk = runCommand(args, std::chrono::seconds(30));
    EXPECT_EQ(trunk.status, 0) << ourAddress << "\n" << trunk.output;
  }
  const auto fromCore = runCommand(
      {"/usr/bin/sipp", "-sf", kSippDir + "/uac_looped.xml", "-i", "127.0.0.3", "-bind_local",
       "-p", std::to_string(corePort_), "-m", "1", "-timeout", "20s", "-timeout_error",
       "-nostdin", "-key", "loop_via", "127.0.0.10:" + std::to_string(accessPort_),
       "127.0.0.11:" + std::to_string(sbcCorePort_)},
      std::chrono::seconds(30));
  EXPECT_EQ(fromCore.status, 0) << fromCore.output;
  EXPECT_EQ(metric("sbc_sip_responses_total{code=\"482\",realm=\"access\"}"), 2)
      << daemon_->scrape();
  EXPECT_EQ(metric("sbc_sip_responses_total{code=\"482\",realm=\"core\"}"), 1)
      << daemon_->scrape();
  EXPECT_LT(metric("sbc_admission_total{result=\"admitted\",trunk=\"alpha\"}"), 1)
      << "a looped INVITE was admitted";
  expectNoActiveCalls();
}

// Proves: the INVITE the SBC sends to the core carries the trunk's Max-Forwards minus one
// (12 → 11), so does a relayed re-INVITE (7 → 6), and an in-dialog INFO with
// Max-Forwards 0 is answered 483 instead of relayed.
TEST_F(HopLimits, MaxForwardsCountsDownAcrossTheSbc) {
  startSbc(10);
  callThrough("uas_max_forwards.xml", "uac_max_forwards.xml");
  EXPECT_EQ(metric("sbc_sip_responses_total{code=\"483\",realm=\"access\"}"), 1)
      << daemon_->scrape();
  expectNoActiveCalls();
}

// Proves: an initial INVITE with Max-Forwards 0 is answered 483 and frees its slot.
TEST_F(HopLimits, NoHopsLeftGets483) {
  startSbc(10);
  const auto trunk = trunkCalls("uac_max_forwards_zero.xml", 1, 1);
  EXPECT_EQ(trunk.status, 0) << trunk.output;
  EXPECT_EQ(metric("sbc_sip_responses_total{code=\"483\",realm=\"access\"}"), 1)
      << daemon_->scrape();
  expectNoActiveCalls();
}

}  // namespace
}  // namespace sbc::test
