// Timer F: an in-dialog request the SBC relays to a side that never answers. When the
// SBC's client transaction times out (64*T1) the sender gets no 408 on the wire (RFC 4320:
// a transaction-stateful element MUST NOT send 408 to a non-INVITE; the sender's own Timer
// F reports it), and, as RFC 3261 12.2.1.2 has a UAC do on a 408 inside a dialog, the SBC
// ends the call with BYE on both legs.

#include <chrono>
#include <fstream>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

#include "tests/integration/trunk_fixture.h"
#include "tests/support/test_env.h"

namespace sbc::test {
namespace {

using InDialogTimeout = TrunkFixture;

std::string readText(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Proves: an INFO from the trunk that the core takes but never answers gets no response
// (the trunk's scenario fails on any), and after Timer F (t1x64_ms = 2 s here) the SBC
// sends BYE to both sides (each SIPp scenario waits for it); the call counts as aborted,
// no 408 is counted as sent, and the slot is freed.
// The core is on TCP so that it sees the INFO once, not its retransmissions.
TEST_F(InDialogTimeout, InfoToASilentCoreEndsTheCallWithoutA408) {
  coreTransport_ = "tcp";
  startSbc(10);
  const auto started = std::chrono::steady_clock::now();
  auto core = startCore("uas_info_silent.xml", 1);
  const auto trunk = runCommand(trunkArgs("uac_info_timeout.xml", 1, 1, dir_.file("trunk.log")),
                                std::chrono::seconds(40));
  EXPECT_EQ(trunk.status, 0) << trunk.output << readText(dir_.file("trunk.log"));
  EXPECT_EQ(core->waitForExit(10s), 0) << core->output();
  EXPECT_GE(std::chrono::steady_clock::now() - started, 2s);  // not before Timer F
  EXPECT_EQ(metric("sbc_sip_responses_total{code=\"408\",realm=\"access\"}"), -1)
      << daemon_->scrape();  // no such series: nothing was sent
  EXPECT_TRUE(daemon_->waitForMetric(
      "sbc_calls_total{direction=\"from_trunk\",result=\"aborted\",trunk=\"alpha\"}", 1))
      << daemon_->scrape();
  expectNoActiveCalls();
}

}  // namespace
}  // namespace sbc::test
