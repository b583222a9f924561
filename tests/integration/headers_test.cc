// What crosses between the legs of a call besides what the B2BUA writes itself: the
// headers of sip.header_allow_list, and P-Asserted-Identity for trusted trunks only. SIPp
// plays the trunk (127.0.0.2) and the core (127.0.0.3) and checks the headers it receives.

#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "tests/integration/sbcd_process.h"
#include "tests/integration/trunk_fixture.h"
#include "tests/support/test_env.h"

namespace sbc::test {
namespace {

class HeaderPassing : public TrunkFixture {
 protected:
  // One call trunk → core with uac_headers.xml / uas_headers.xml (both check the
  // allow-listed header's presence and the other's absence); returns what the core received.
  std::string callWithHeaders() {
    const std::string trace = dir_.file("core-messages.log");
    auto core = startListening(
        {"/usr/bin/sipp", "-sf", kSippDir + "/uas_headers.xml", "-i", "127.0.0.3", "-bind_local",
         "-p", std::to_string(corePort_), "-m", "1", "-nostdin", "-trace_msg", "-message_file",
         trace},
        "127.0.0.3", corePort_);
    const auto trunk = trunkCalls("uac_headers.xml", 1, 1);
    EXPECT_EQ(trunk.status, 0) << trunk.output;
    EXPECT_EQ(core->waitForExit(10s), 0) << core->output();
    return receivedMessages(trace);
  }

  // One call core → trunk (core_uac_pai.xml asserts an identity); returns what the trunk
  // received.
  std::string callFromCoreAssertingIdentity() {
    const std::string trace = dir_.file("trunk-messages.log");
    auto trunk = startListening(
        {"/usr/bin/sipp", "-sf", kSippDir + "/trunk_uas_answer.xml", "-i", "127.0.0.2",
         "-bind_local", "-p", std::to_string(trunkPort_), "-m", "1", "-nostdin", "-trace_msg",
         "-message_file", trace},
        "127.0.0.2", trunkPort_);
    const auto core = runCommand(
        {"/usr/bin/sipp", "-sf", kSippDir + "/core_uac_pai.xml", "-i", "127.0.0.3",
         "-bind_local", "-p", std::to_string(corePort_), "-m", "1", "-timeout", "20s",
         "-timeout_error", "-nostdin", "127.0.0.11:" + std::to_string(sbcCorePort_)},
        std::chrono::seconds(40));
    EXPECT_EQ(core.status, 0) << core.output;
    EXPECT_EQ(trunk->waitForExit(10s), 0) << trunk->output();
    return receivedMessages(trace);
  }
};

// Proves: an allow-listed header crosses in the INVITE, its 200 and the BYE (both ways);
// a header not in the list does not; P-Asserted-Identity from an untrusted trunk is removed.
TEST_F(HeaderPassing, AllowListedHeadersCrossOthersDoNot) {
  sipExtra_ = R"(header_allow_list = [ "X-Account-Code" ];)";
  startSbc(10);
  const std::string atCore = callWithHeaders();
  EXPECT_NE(atCore.find("X-Account-Code: acct-4711"), std::string::npos) << atCore;
  EXPECT_EQ(atCore.find("P-Asserted-Identity"), std::string::npos) << atCore;
  expectNoActiveCalls();
}

// Proves: a trusted trunk's P-Asserted-Identity reaches the core (trunks.trusted = true).
TEST_F(HeaderPassing, TrustedTrunkAssertsIdentity) {
  sipExtra_ = R"(header_allow_list = [ "X-Account-Code" ];)";
  trunkExtra_ = "trusted = true;";
  startSbc(10);
  const std::string atCore = callWithHeaders();
  EXPECT_NE(atCore.find("P-Asserted-Identity: <sip:15550001@pbx.example>"), std::string::npos)
      << atCore;
  expectNoActiveCalls();
}

// Proves: the allow-list applies to in-dialog INFO and UPDATE and to their responses: the
// trunk's X-Account-Code reaches the core on each, the core's comes back on each 200, and
// X-Not-Allowed crosses on none (each SIPp side checks what it receives).
TEST_F(HeaderPassing, AllowListAppliesToInfoAndUpdate) {
  sipExtra_ = R"(header_allow_list = [ "X-Account-Code" ];)";
  startSbc(10);
  callThrough("uas_headers_in_dialog.xml", "uac_headers_in_dialog.xml");
  expectNoActiveCalls();
}

// Proves: on a call from the core to a trusted trunk, the core's P-Asserted-Identity
// reaches the trunk (trunks.trusted applies core → trunk too).
TEST_F(HeaderPassing, CoreAssertsIdentityToTrustedTrunk) {
  trunkExtra_ = "trusted = true;";
  startSbc(10);
  const std::string atTrunk = callFromCoreAssertingIdentity();
  EXPECT_NE(atTrunk.find("P-Asserted-Identity: <sip:+15550009@core.example>"),
            std::string::npos)
      << atTrunk;
  expectNoActiveCalls();
}

// Proves: on a call from the core to an untrusted trunk, P-Asserted-Identity is removed.
TEST_F(HeaderPassing, CoreIdentityDoesNotReachUntrustedTrunk) {
  startSbc(10);
  const std::string atTrunk = callFromCoreAssertingIdentity();
  EXPECT_NE(atTrunk.find("INVITE sip:"), std::string::npos) << atTrunk;
  EXPECT_EQ(atTrunk.find("P-Asserted-Identity"), std::string::npos) << atTrunk;
  EXPECT_EQ(atTrunk.find("core.example"), std::string::npos) << atTrunk;
  expectNoActiveCalls();
}

}  // namespace
}  // namespace sbc::test
