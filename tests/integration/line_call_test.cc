// Calls from and to subscriber lines (issue 6), against SIPp: alice's terminal registers
// through sbcd (line_fixture.h), then calls the core or is called by it.

#include <string>

#include <gtest/gtest.h>

#include "tests/integration/line_fixture.h"

namespace sbc::test {
namespace {

class LineCall : public LineFixture {};

// Proves: a registered terminal's INVITE reaches the core with its Request-URI and From
// kept (the core's scenario checks them); the core's 401 passes to the terminal, whose
// authenticated INVITE verifies at the core (RFC 2617 over the INVITE as the core gets
// it); the call is answered and ended; nothing of the terminal (its address, its private
// Contact and SDP address, its User-Agent) reaches the core.
TEST_F(LineCall, FromALineWithTheCoresChallengeEndToEnd) {
  startSbc(5);
  registerAlice();
  const std::string coreTrace = dir_.file("core-call.trace");
  const auto core = startUas("core_uas_line_challenge.xml", "127.0.0.3", corePort_, 2, "udp",
                             coreTrace);
  const auto line = lineCalls("line_call.xml", 1, 1);
  EXPECT_EQ(line.status, 0) << line.output;
  EXPECT_EQ(core->waitForExit(10s), 0) << core->output();
  const std::string atCore = receivedMessages(coreTrace);
  ASSERT_NE(atCore.find("Authorization: Digest"), std::string::npos) << atCore;
  for (const char* leak : {"127.0.0.4", "127.99.0.20", "TerminalVendor"}) {
    EXPECT_EQ(atCore.find(leak), std::string::npos) << leak << " reached the core:\n" << atCore;
  }
  EXPECT_EQ(metric(lineCallsSeries("from_line", "answered")), 1);
  EXPECT_EQ(metric(lineCallsSeries("from_line", "failed")), 1);  // the challenged INVITE
  EXPECT_TRUE(daemon_->waitForMetric("sbc_line_active_calls", 0)) << daemon_->scrape();
}

// Proves: an INVITE from an address no terminal registered from (and no trunk's) gets
// 403, counted as a line call refused for not being registered.
TEST_F(LineCall, FromAnUnregisteredAddressIsForbidden) {
  startSbc(5);
  const auto line = lineCalls("line_call.xml", 1, 1, "127.0.0.7");
  EXPECT_NE(line.status, 0) << line.output;
  EXPECT_NE(line.output.find("403"), std::string::npos) << line.output;
  EXPECT_EQ(metric("sbc_line_rejected_calls_total{reason=\"not_registered\"}"), 1);
}

// Proves: a line holds two calls at once (lines.max_calls default): of three simultaneous
// calls two are answered and the third gets 486 Busy Here, counted; once they are over a
// call succeeds again and no slot is left behind.
TEST_F(LineCall, TheThirdCallIsBusy) {
  startSbc(5);
  registerAlice();
  {
    const auto core = startCore("uas_answer.xml", 2);
    const auto line = lineCalls("line_call.xml", 3, 3, "127.0.0.4", 1500);
    EXPECT_EQ(line.status, 0) << line.output;
    EXPECT_EQ(core->waitForExit(10s), 0) << core->output();
  }
  EXPECT_EQ(metric(lineCallsSeries("from_line", "answered")), 2);
  EXPECT_EQ(metric("sbc_line_rejected_calls_total{reason=\"over_limit\"}"), 1);
  EXPECT_TRUE(daemon_->waitForMetric("sbc_line_active_calls", 0)) << daemon_->scrape();
  {
    const auto core = startCore("uas_answer.xml", 1);
    const auto line = lineCalls("line_call.xml", 1, 1);
    EXPECT_EQ(line.status, 0) << line.output;
    EXPECT_EQ(core->waitForExit(10s), 0) << core->output();
  }
  EXPECT_EQ(metric(lineCallsSeries("from_line", "answered")), 3);
  EXPECT_EQ(metric("sbc_line_rejected_calls_total{reason=\"over_limit\"}"), 1);
}

// Proves: the core's INVITE to the Contact the SBC registered for a line reaches the
// terminal at its real address (where it registered from; its Contact names a private
// one), with the terminal's own Contact as Request-URI and its AoR as To (line_uas_answer
// checks both); the BYE reaches it there too.
TEST_F(LineCall, ToALineReachesTheTerminalWhereItRegisteredFrom) {
  startSbc(5);
  const int port = freeUdpPort("127.0.0.4");
  const std::string token = registerAlice("127.0.0.4", {"-p", std::to_string(port)});
  ASSERT_FALSE(token.empty());
  const auto phone = startUas("line_uas_answer.xml", "127.0.0.4", port);
  const auto core = coreCalls("core_uac_to_line.xml", token);
  EXPECT_EQ(core.status, 0) << core.output;
  EXPECT_EQ(phone->waitForExit(10s), 0) << phone->output();
  EXPECT_EQ(metric(lineCallsSeries("to_line", "answered")), 1);
  EXPECT_TRUE(daemon_->waitForMetric("sbc_line_active_calls", 0)) << daemon_->scrape();
}

// Proves: once the terminal has moved (a refresh from 127.0.0.5), the core's call goes to
// the new address: nothing listens at the old one any more.
TEST_F(LineCall, ToAMovedLineReachesTheNewAddress) {
  startSbc(5);
  const std::vector<std::string> sameCallId{"-cid_str", "moving-phone-%u"};
  std::vector<std::string> first = sameCallId;
  first.insert(first.end(), {"-p", std::to_string(freeUdpPort("127.0.0.4"))});
  const std::string token = registerAlice("127.0.0.4", first);
  const int port = freeUdpPort("127.0.0.5");
  std::vector<std::string> second = sameCallId;
  second.insert(second.end(), {"-p", std::to_string(port)});
  ASSERT_EQ(registerAlice("127.0.0.5", second), token);
  const auto phone = startUas("line_uas_answer.xml", "127.0.0.5", port);
  const auto core = coreCalls("core_uac_to_line.xml", token);
  EXPECT_EQ(core.status, 0) << core.output;
  EXPECT_EQ(phone->waitForExit(10s), 0) << phone->output();
}

// Proves: the core's call to a line Contact with no binding gets 480, counted.
TEST_F(LineCall, ToAnUnboundContactIsTemporarilyUnavailable) {
  startSbc(5);
  const auto core = coreCalls("core_uac_to_line_480.xml", "l0123456789abcdef01234567");
  EXPECT_EQ(core.status, 0) << core.output;
  EXPECT_EQ(metric("sbc_line_rejected_calls_total{reason=\"not_registered\"}"), 1);
}

}  // namespace
}  // namespace sbc::test
