// Topology hiding, proven on the wire: SIPp plays the trunk (127.0.0.2) and the core
// (127.0.0.3), the SBC listens on 127.0.0.10 (access) and 127.0.0.11 (core). Every value
// one side puts in its messages (host names, Call-ID, tags, Via, Record-Route, Contact,
// User-Agent, Server, reason phrases, SDP o=/s=/i=, ICE) carries a marker; SIPp's message
// trace records every byte the SBC sent each side, and none of the other side's markers,
// addresses or ports may appear in it, headers and bodies alike.

#include <algorithm>
#include <cctype>
#include <chrono>
#include <fstream>
#include <iterator>
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

// True when `number` occurs in `text` as a whole number (not inside a longer one).
bool containsNumber(const std::string& text, const std::string& number) {
  for (std::size_t at = text.find(number); at != std::string::npos;
       at = text.find(number, at + 1)) {
    const bool digitBefore = at > 0 && std::isdigit(static_cast<unsigned char>(text[at - 1]));
    const std::size_t end = at + number.size();
    const bool digitAfter =
        end < text.size() && std::isdigit(static_cast<unsigned char>(text[end]));
    if (!digitBefore && !digitAfter) return true;
  }
  return false;
}

struct Side {
  const char* name;    // "trunk" or "core"
  const char* marker;  // in every distinctive value that side sends
  const char* address;
  const char* originId;  // the o= session id its SDP uses
  const char* externalIp;  // the srflx ICE candidate's address
  int sipPort = 0;
  int mediaPort = 0;
  const char* sbcAddress;  // the SBC's own address in that side's realm
};

// Nothing of `other` in what `receiver` got.
void expectNothingOf(const Side& other, const std::string& received, const char* receiver) {
  const std::vector<std::string> forbidden = {
      other.marker, other.address, other.originId, other.externalIp, other.sbcAddress,
      "a=candidate", "a=ice-", "User-Agent", "Server:", "P-Asserted-Identity",
      "Warning", "Organization", "Subject", "Reason:"};
  for (const auto& value : forbidden) {
    EXPECT_EQ(received.find(value), std::string::npos)
        << "the " << receiver << " received \"" << value << "\" (from the " << other.name
        << "'s side):\n" << received;
  }
  for (const int port : {other.sipPort, other.mediaPort}) {
    EXPECT_FALSE(containsNumber(received, std::to_string(port)))
        << "the " << receiver << " received the " << other.name << "'s port " << port
        << ":\n" << received;
  }
}

std::size_t occurrences(const std::string& text, const std::string& needle) {
  std::size_t count = 0;
  for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) {
    ++count;
  }
  return count;
}

class TopologyHiding : public TrunkFixture {
 protected:
  void SetUp() override {
    TrunkFixture::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    trunk_ = Side{"trunk", "trksecret", "127.0.0.2", "7771234567", "198.51.100.77",
                  trunkPort_, freeSippMediaPort("127.0.0.2", trunkPort_), "127.0.0.10"};
    core_ = Side{"core", "coresecret", "127.0.0.3", "8881234567", "203.0.113.88",
                 corePort_, freeSippMediaPort("127.0.0.3", corePort_), "127.0.0.11"};
  }

  // SIPp as one side: its own SIP and media ports (SIPp allows [media_port] only on m=
  // lines: ICE candidates name it as [cand_port]), its Call-IDs marked, every message it
  // exchanges traced to `trace`.
  std::vector<std::string> sippArgs(const Side& side, const std::string& scenario,
                                    const std::string& trace) const {
    return {"/usr/bin/sipp", "-sf", kSippDir + "/" + scenario, "-i", side.address,
            "-bind_local", "-p", std::to_string(side.sipPort), "-mp",
            std::to_string(side.mediaPort), "-key", "cand_port", std::to_string(side.mediaPort),
            "-cid_str",
            std::string(side.marker) + "-%u-%p@host." + side.marker + ".example", "-m", "1",
            "-timeout", "20s", "-timeout_error", "-nostdin", "-trace_msg", "-message_file",
            trace};
  }

  // Starts SIPp as the answering side and waits until it listens.
  std::unique_ptr<ChildProcess> startAnswering(const Side& side, const std::string& scenario,
                                               const std::string& trace) {
    return startListening(sippArgs(side, scenario, trace), side.address, side.sipPort);
  }

  Side trunk_;
  Side core_;
};

// Proves: in a trunk → core call with a re-INVITE and BYE, nothing of the trunk's (address,
// ports, host names, Call-ID, tags, Via, Record-Route, Contact, User-Agent, other headers,
// o= username and session id, s=/i=, ICE candidates) reaches the core, and nothing of the
// core's (the same, plus Server, Warning and reason phrases) reaches the trunk.
TEST_F(TopologyHiding, TrunkToCoreCallRevealsNeitherSide) {
  startSbc(10);
  const std::string coreTrace = dir_.file("core-messages.log");
  const std::string trunkTrace = dir_.file("trunk-messages.log");
  auto core = startAnswering(core_, "topo_core_answers.xml", coreTrace);
  auto trunkArgs = sippArgs(trunk_, "topo_trunk_calls.xml", trunkTrace);
  trunkArgs.push_back("127.0.0.10:" + std::to_string(accessPort_));
  const auto trunk = runCommand(trunkArgs, std::chrono::seconds(40));
  EXPECT_EQ(trunk.status, 0) << trunk.output;
  EXPECT_EQ(core->waitForExit(10s), 0) << core->output();

  const std::string atCore = receivedMessages(coreTrace);
  const std::string atTrunk = receivedMessages(trunkTrace);
  // The call really happened: the core got both INVITEs and the BYE, the trunk the answers.
  EXPECT_EQ(occurrences(atCore, "INVITE sip:"), 2u) << atCore;
  EXPECT_EQ(occurrences(atCore, "BYE sip:"), 1u) << atCore;
  EXPECT_GE(occurrences(atTrunk, "SIP/2.0 200"), 3u) << atTrunk;
  EXPECT_NE(atCore.find("c=IN IP4 127.0.0.11"), std::string::npos) << atCore;
  EXPECT_NE(atTrunk.find("c=IN IP4 127.0.0.10"), std::string::npos) << atTrunk;
  expectNothingOf(trunk_, atCore, "core");
  expectNothingOf(core_, atTrunk, "trunk");
  expectNoActiveCalls();
}

// Proves: the same in a core → trunk call where the trunk (the callee) sends the re-INVITE
// and the core hangs up: in-dialog requests from the callee's side hide it too.
TEST_F(TopologyHiding, CoreToTrunkCallRevealsNeitherSide) {
  startSbc(10);
  const std::string coreTrace = dir_.file("core-messages.log");
  const std::string trunkTrace = dir_.file("trunk-messages.log");
  auto trunk = startAnswering(trunk_, "topo_trunk_answers.xml", trunkTrace);
  auto coreArgs = sippArgs(core_, "topo_core_calls.xml", coreTrace);
  coreArgs.push_back("127.0.0.11:" + std::to_string(sbcCorePort_));
  const auto core = runCommand(coreArgs, std::chrono::seconds(40));
  EXPECT_EQ(core.status, 0) << core.output;
  EXPECT_EQ(trunk->waitForExit(10s), 0) << trunk->output();

  const std::string atCore = receivedMessages(coreTrace);
  const std::string atTrunk = receivedMessages(trunkTrace);
  EXPECT_EQ(occurrences(atTrunk, "INVITE sip:"), 1u) << atTrunk;
  EXPECT_EQ(occurrences(atTrunk, "BYE sip:"), 1u) << atTrunk;
  EXPECT_EQ(occurrences(atCore, "INVITE sip:"), 1u) << atCore;  // the trunk's re-INVITE
  EXPECT_NE(atCore.find("c=IN IP4 127.0.0.11"), std::string::npos) << atCore;
  EXPECT_NE(atTrunk.find("c=IN IP4 127.0.0.10"), std::string::npos) << atTrunk;
  expectNothingOf(trunk_, atCore, "core");
  expectNothingOf(core_, atTrunk, "trunk");
  expectNoActiveCalls();
}

}  // namespace
}  // namespace sbc::test
