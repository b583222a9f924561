// Call set-up beyond the plain exchange, with SIPp as trunk and core: failover between the
// core's next hops, digest credentials sent to a trunk that challenges the SBC, reliable
// provisional responses (100rel / PRACK) on each leg, and a forking core. Every test ends
// by checking that no call slot leaked.

#include <chrono>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <regex>
#include <set>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include <sofia-sip/su_md5.h>

#include "tests/integration/trunk_fixture.h"
#include "tests/support/test_env.h"

namespace sbc::test {
namespace {

// The hex MD5 of `text` (RFC 2617's H()).
std::string md5Hex(const std::string& text) {
  su_md5_t context;
  su_md5_init(&context);
  su_md5_update(&context, text.data(), text.size());
  char hex[2 * SU_MD5_DIGEST_SIZE + 1];
  su_md5_hexdigest(&context, hex);
  return hex;
}

// The parameters of a Digest credentials header value (quoted values unquoted).
std::map<std::string, std::string> digestParameters(const std::string& value) {
  static const std::regex parameter(R"re(([A-Za-z-]+)=("([^"]*)"|[^,\s]*))re");
  std::map<std::string, std::string> parameters;
  for (auto it = std::sregex_iterator(value.begin(), value.end(), parameter);
       it != std::sregex_iterator(); ++it) {
    const auto& match = *it;
    parameters[match[1].str()] = match[3].matched ? match[3].str() : match[2].str();
  }
  return parameters;
}

// The 200s to an INVITE among a SIPp trace's messages (each entry of the trace begins with
// SIPp's separator line).
std::size_t inviteAnswersIn(const std::string& trace) {
  static const std::regex answer(
      R"(\nSIP/2\.0 200 [^\r\n]*\r?\n(?:[^\r\n]+\r?\n)*?CSeq: *[0-9]+ INVITE\s)");
  std::size_t answers = 0;
  for (auto it = std::sregex_iterator(trace.begin(), trace.end(), answer);
       it != std::sregex_iterator(); ++it) {
    ++answers;
  }
  return answers;
}

class CallSetup : public TrunkFixture {
 protected:
  // SIPp as the core with -nr: SIPp's own retransmission handling would take the SBC's
  // second ACK for a retransmission of the first and answer it with the 200 again, endlessly.
  std::unique_ptr<ChildProcess> startRetransmittingCore(const std::string& scenario) {
    return startListening({"/usr/bin/sipp", "-sf", kSippDir + "/" + scenario, "-i",
                           "127.0.0.3", "-bind_local", "-p", std::to_string(corePort_), "-m",
                           "1", "-nr", "-nostdin"},
                          "127.0.0.3", corePort_);
  }

  // The 200s among `messages`.
  static std::size_t answersIn(const std::string& messages) {
    std::size_t answers = 0;
    for (auto at = messages.find("SIP/2.0 200"); at != std::string::npos;
         at = messages.find("SIP/2.0 200", at + 1)) {
      ++answers;
    }
    return answers;
  }

  // One call from the trunk (`trunkScenario`) to a core (`coreScenario`) that retransmits
  // its 200s and fails without an ACK for each; the trunk must hear `answers` 200s, no more.
  void expectEveryAnswerAcknowledged(const std::string& coreScenario,
                                     const std::string& trunkScenario, std::size_t answers) {
    startSbc(10);
    auto core = startRetransmittingCore(coreScenario);
    const std::string trace = dir_.file("trunk-messages.log");
    const auto trunk =
        runCommand(trunkArgs(trunkScenario, 1, 1, trace), std::chrono::seconds(40));
    EXPECT_EQ(trunk.status, 0) << trunk.output;
    EXPECT_EQ(core->waitForExit(10s), 0) << core->output();
    EXPECT_EQ(answersIn(receivedMessages(trace)), answers) << receivedMessages(trace);
    expectNoActiveCalls();
  }

  // One trunk call to a forking core playing `coreScenario`, whose losing fork answers late
  // and must be acknowledged and ended (the scenario checks ACK and BYE), while the trunk
  // holds the call 4 s and must hear exactly one 200 to its INVITE and nothing of the
  // forks; the call counts answered once, and once over no slot or media flow is left.
  void expectLateForkAnswerEnded(const std::string& coreScenario) {
    startSbc(10);
    const std::string coreTrace = dir_.file("core-messages.log");
    auto core = startUas(coreScenario, "127.0.0.3", corePort_, 1, "udp", coreTrace);
    const std::string trace = dir_.file("trunk-messages.log");
    const auto trunk =
        runCommand(trunkArgs("uac_fork_long.xml", 1, 1, trace), std::chrono::seconds(40));
    EXPECT_EQ(trunk.status, 0) << trunk.output;
    EXPECT_EQ(core->waitForExit(10s), 0) << receivedMessages(coreTrace);
    const std::string received = receivedMessages(trace);
    EXPECT_EQ(inviteAnswersIn(received), 1u) << received;
    EXPECT_EQ(received.find("fork"), std::string::npos) << "a fork's tag or contact leaked";
    EXPECT_EQ(
        metric("sbc_calls_total{direction=\"from_trunk\",result=\"answered\",trunk=\"alpha\"}"),
        1)
        << daemon_->scrape();
    expectNoActiveCalls();
    EXPECT_TRUE(daemon_->waitForMetric("sbc_media_flows", 0)) << daemon_->scrape();
  }

  // A second core next hop on 127.0.0.4, after the fixture's on 127.0.0.3.
  int addSecondHop() {
    const int port = freeUdpPort("127.0.0.4");
    nextHopsExtra_ = R"(, { host = "127.0.0.4"; port = )" + std::to_string(port) + "; }";
    return port;
  }
};

// Proves: a next hop that answers 503 is passed over and the call is set up through the
// next one; the trunk never hears the 503.
TEST_F(CallSetup, FailsOverToTheNextHopOn503) {
  const int secondPort = addSecondHop();
  startSbc(10);
  auto down = startCore("uas_503.xml", 1);
  auto up = startUas("uas_answer.xml", "127.0.0.4", secondPort);
  const auto trunk = trunkCalls("uac_hold.xml", 1, 1);
  EXPECT_EQ(trunk.status, 0) << trunk.output;
  EXPECT_EQ(down->waitForExit(10s), 0) << down->output();
  EXPECT_EQ(up->waitForExit(10s), 0) << up->output();
  EXPECT_EQ(metric("sbc_sip_responses_total{code=\"503\",realm=\"access\"}"), -1)
      << daemon_->scrape();
  expectNoActiveCalls();
}

// Proves: a next hop that takes the INVITE and says nothing (not even 100 Trying) is passed
// over after core.failover_timeout_ms, before Timer B, and the next hop gets the call.
TEST_F(CallSetup, PassesOverASilentHop) {
  const UdpSocket silent("127.0.0.3", corePort_);  // takes the INVITEs, never answers
  ASSERT_TRUE(silent.bound());
  const int secondPort = addSecondHop();
  coreExtra_ = "failover_timeout_ms = 300;";
  startSbc(10);
  auto up = startUas("uas_answer.xml", "127.0.0.4", secondPort);
  const auto trunk = trunkCalls("uac_hold.xml", 1, 1);
  EXPECT_EQ(trunk.status, 0) << trunk.output;
  EXPECT_EQ(up->waitForExit(10s), 0) << up->output();
  // Timer B (t1x64_ms = 2000 here) would report "failed with 408" instead.
  EXPECT_TRUE(daemon_->process().waitForLine("did not answer; trying the next one", 2s))
      << daemon_->process().output();
  expectNoActiveCalls();
}

// Proves: when every next hop fails, the trunk hears the last one's status and the slot is
// freed.
TEST_F(CallSetup, AllHopsFailingGivesTheLastStatus) {
  const int secondPort = addSecondHop();
  startSbc(10);
  auto first = startCore("uas_503.xml", 1);
  auto second = startUas("uas_503.xml", "127.0.0.4", secondPort);
  const auto trunk = trunkCalls("uac_hold.xml", 1, 1);
  EXPECT_EQ(trunk.status, 0) << trunk.output;  // uac_hold accepts 503 as an outcome
  EXPECT_EQ(first->waitForExit(10s), 0) << first->output();
  EXPECT_EQ(second->waitForExit(10s), 0) << second->output();
  EXPECT_EQ(metric("sbc_sip_responses_total{code=\"503\",realm=\"access\"}"), 1)
      << daemon_->scrape();
  expectNoActiveCalls();
}

// Proves: a trunk that challenges the SBC's INVITE (401) gets a second INVITE with digest
// credentials computed from the trunk's `answer` settings, which it verifies, and the call
// is set up.
TEST_F(CallSetup, AnswersTheTrunksChallenge) {
  trunkExtra_ = R"(answer = { username = "sbc"; password = "s3cret"; realm = "trunk.example.net"; };)";
  startSbc(10);
  callFromCore("trunk_uas_challenge.xml");
  EXPECT_EQ(metric("sbc_sip_responses_total{code=\"200\",realm=\"core\"}"), 2)
      << daemon_->scrape();  // the INVITE's and the BYE's
  expectNoActiveCalls();
}

// Proves: a trunk that challenges (401) after its reliable 183 was PRACKed gets a new INVITE
// outside that early dialog (same Call-ID, no To tag, CSeq above the PRACK's) with
// credentials, and answers it; the core keeps the one early dialog its 183 opened and
// hears the answer in it, never the 401. Before: the challenge after an early dialog
// reached the core as 401.
TEST_F(CallSetup, ChallengeAfterReliableProvisionalIsAnswered) {
  trunkExtra_ = R"(answer = { username = "sbc"; password = "s3cret"; realm = "trunk.example.net"; };)";
  startSbc(10);
  callFromCore("trunk_uas_prack_challenge.xml", true, "core_uac_early.xml");
  EXPECT_EQ(metric("sbc_sip_responses_total{code=\"401\",realm=\"core\"}"), -1)
      << daemon_->scrape();
  EXPECT_EQ(metric("sbc_calls_total{direction=\"to_trunk\",result=\"answered\",trunk=\"alpha\"}"),
            1)
      << daemon_->scrape();
  expectNoActiveCalls();
}

// Proves: wrong credentials are sent once: the trunk's refusal (403) reaches the core and the
// slot is freed.
TEST_F(CallSetup, WrongCredentialsAreRefusedOnce) {
  trunkExtra_ = R"(answer = { username = "sbc"; password = "wrong"; };)";
  startSbc(10);
  callFromCore("trunk_uas_challenge.xml", false);
  EXPECT_EQ(metric("sbc_sip_responses_total{code=\"403\",realm=\"core\"}"), 1)
      << daemon_->scrape();
  expectNoActiveCalls();
}

// Proves: a trunk that challenges the SBC's INVITE with 407 (Proxy-Authenticate, qop=auth)
// gets a second INVITE whose Proxy-Authorization is right: recomputed here from the trunk's
// configured `answer` password per RFC 2617 (HA1 = MD5(user:realm:password), HA2 =
// MD5(INVITE:uri), response = MD5(HA1:nonce:nc:cnonce:qop:HA2)), for the INVITE's own
// Request-URI, the challenge's realm and nonce; the call is set up and its slot freed.
// SIPp's verifyauth reads only Authorization, so the digest is checked on the trunk's trace.
TEST_F(CallSetup, AnswersTheTrunksProxyChallengeWithAValidDigest) {
  const std::string user = "sbc";
  const std::string password = "pr0xy-s3cret";
  const std::string realm = "proxy.trunk.example.net";
  trunkExtra_ = "answer = { username = \"" + user + "\"; password = \"" + password +
                "\"; realm = \"" + realm + "\"; };";
  startSbc(10);
  const std::string trace = dir_.file("trunk-messages.log");
  callFromCore("trunk_uas_proxy_challenge.xml", true, "core_uac_to_trunk.xml", trace);
  const std::string received = receivedMessages(trace);
  const auto header = received.find("\nProxy-Authorization: Digest ");
  ASSERT_NE(header, std::string::npos) << received;
  const auto lineEnd = received.find_first_of("\r\n", header + 1);
  auto digest = digestParameters(received.substr(header, lineEnd - header));
  // The credentials' INVITE: its Request-URI is what the digest must cover.
  const auto requestLine = received.rfind("INVITE ", header);
  ASSERT_NE(requestLine, std::string::npos) << received;
  const auto uriEnd = received.find(' ', requestLine + 7);
  const std::string requestUri = received.substr(requestLine + 7, uriEnd - requestLine - 7);

  EXPECT_EQ(digest["username"], user);
  EXPECT_EQ(digest["realm"], realm);
  EXPECT_EQ(digest["nonce"], "a7c35f0e19d24b68");
  EXPECT_EQ(digest["uri"], requestUri);
  EXPECT_EQ(digest["qop"], "auth");
  EXPECT_TRUE(std::regex_match(digest["nc"], std::regex("[0-9a-fA-F]{8}"))) << digest["nc"];
  EXPECT_FALSE(digest["cnonce"].empty());
  const std::string ha1 = md5Hex(user + ":" + realm + ":" + password);
  const std::string ha2 = md5Hex("INVITE:" + digest["uri"]);
  EXPECT_EQ(digest["response"], md5Hex(ha1 + ":" + digest["nonce"] + ":" + digest["nc"] + ":" +
                                       digest["cnonce"] + ":" + digest["qop"] + ":" + ha2))
      << received;
  EXPECT_EQ(metric("sbc_calls_total{direction=\"to_trunk\",result=\"answered\",trunk=\"alpha\"}"),
            1)
      << daemon_->scrape();
  expectNoActiveCalls();
}

// Proves: a trunk that challenges again (407, stale=false) the INVITE that carried
// credentials is not answered a second time: no third INVITE reaches it (its scenario fails
// on one), the core hears a final 403 without the trunk's challenge in it and ACKs it, the
// call is counted failed and its slot freed. Sofia's auth client reports the repeated,
// non-stale challenge as nothing new (auc_challenge 0), which prepareCredentials takes for
// a refusal; answering every challenge fails the test.
TEST_F(CallSetup, SecondProxyChallengeFailsTheCallUpstream) {
  trunkExtra_ =
      R"(answer = { username = "sbc"; password = "wrong"; realm = "proxy.trunk.example.net"; };)";
  startSbc(10);
  callFromCore("trunk_uas_proxy_challenge_twice.xml", true, "core_uac_to_trunk_refused.xml");
  EXPECT_EQ(metric("sbc_sip_responses_total{code=\"403\",realm=\"core\"}"), 1)
      << daemon_->scrape();
  EXPECT_EQ(metric("sbc_sip_responses_total{code=\"407\",realm=\"core\"}"), -1)
      << daemon_->scrape();
  EXPECT_EQ(metric("sbc_calls_total{direction=\"to_trunk\",result=\"failed\",trunk=\"alpha\"}"),
            1)
      << daemon_->scrape();
  expectNoActiveCalls();
}

// Proves: a trunk that answers the SBC's credentials with a new challenge saying the nonce
// was stale (407, stale=true) gets the same credentials again for the new nonce (RFC 7616
// 3.3) and sets the call up; before, any second challenge was refused.
TEST_F(CallSetup, StaleChallengeIsAnsweredAgain) {
  trunkExtra_ = R"(answer = { username = "sbc"; password = "pr0xy-s3cret";
                            realm = "proxy.trunk.example.net"; };)";
  startSbc(10);
  callFromCore("trunk_uas_proxy_challenge_stale.xml");
  EXPECT_EQ(metric("sbc_calls_total{direction=\"to_trunk\",result=\"answered\",trunk=\"alpha\"}"),
            1)
      << daemon_->scrape();
  expectNoActiveCalls();
}

// Proves: a trunk's challenge the SBC has no credentials for is acknowledged and not
// answered, and the core hears 403 (no 401 without WWW-Authenticate, which RFC 3261 20.44
// forbids and the core could not act on); the slot is freed. Before, the core got a bare 401.
TEST_F(CallSetup, UnansweredChallengeIsRefusedUpstream) {
  startSbc(10);
  callFromCore("trunk_uas_challenge_unanswered.xml", true, "core_uac_to_trunk_refused.xml");
  EXPECT_EQ(metric("sbc_sip_responses_total{code=\"401\",realm=\"core\"}"), -1)
      << daemon_->scrape();
  EXPECT_EQ(metric("sbc_calls_total{direction=\"to_trunk\",result=\"failed\",trunk=\"alpha\"}"),
            1)
      << daemon_->scrape();
  expectNoActiveCalls();
}

// Proves: a reliable 183 from the core is PRACKed by the SBC on the core leg and sent
// reliably to a trunk that supports 100rel, whose PRACK the SBC answers.
TEST_F(CallSetup, ReliableProvisionalsArePrackedOnBothLegs) {
  startSbc(10);
  callThrough("uas_prack.xml", "uac_prack.xml");
  expectNoActiveCalls();
}

// Proves: a trunk without 100rel gets the core's reliable 183 as an ordinary provisional
// response (no RSeq) while the SBC still PRACKs it towards the core.
TEST_F(CallSetup, TrunkWithout100relGetsAnOrdinaryProvisional) {
  startSbc(10);
  callThrough("uas_prack.xml", "uac_early.xml");
  expectNoActiveCalls();
}

// Proves: a provisional response whose body is not SDP (a 180 with an application/pidf+xml
// document naming the core) reaches the trunk without that body and the call goes on to
// its answer, counted as a refused response body. Before: the body was taken for unusable
// SDP and the trunk got 502.
TEST_F(CallSetup, ProvisionalWithForeignBodyCrossesWithoutIt) {
  startSbc(10);
  callThrough("uas_ringing_with_presence.xml", "uac_ringing_without_body.xml");
  EXPECT_EQ(metric("sbc_sip_bodies_refused_total{message=\"response\",realm=\"core\","
                   "reason=\"content_type\"}"),
            1)
      << daemon_->scrape();
  EXPECT_EQ(metric("sbc_calls_total{direction=\"from_trunk\",result=\"answered\",trunk=\"alpha\"}"),
            1);
  expectNoActiveCalls();
}

// Proves: with a forking core whose two early dialogs both send reliable 183s, each 183 is
// PRACKed in its own early dialog (its To tag, its Contact, RAck 1: the core's scenario
// checks each and fails when the second fork's PRACK never comes); the second fork answers
// and wins (ACKed, the trunk's BYE reaches it), the first fork's early dialog is ended with
// BYE and its 487 acknowledged; the trunk sees one dialog, nothing of the forks.
TEST_F(CallSetup, EachForksReliableProvisionalIsPracked) {
  startSbc(10);
  auto core = startCore("uas_fork_prack.xml", 1);
  const std::string trace = dir_.file("trunk-messages.log");
  const auto trunk = runCommand(trunkArgs("uac_fork.xml", 1, 1, trace), std::chrono::seconds(40));
  EXPECT_EQ(trunk.status, 0) << trunk.output;
  EXPECT_EQ(core->waitForExit(10s), 0) << core->output();
  EXPECT_EQ(receivedMessages(trace).find("fork"), std::string::npos)
      << "a fork's tag or contact leaked";
  EXPECT_EQ(metric("sbc_calls_total{direction=\"from_trunk\",result=\"answered\",trunk=\"alpha\"}"),
            1);
  expectNoActiveCalls();
}

// Proves: every retransmission of the core's 200 is acknowledged (RFC 3261 13.2.2.4), one
// that crosses the SBC's ACK and one that comes 2.5 s later, after the SBC has let go of the
// INVITE transaction (64*T1 = 2 s after its ACK); the core's scenario fails on an ACK that
// does not come within a second. The trunk hears the answer once: a retransmitted 200 is
// not a new answer and is not relayed.
TEST_F(CallSetup, RetransmittedAnswerIsAcknowledgedEachTime) {
  expectEveryAnswerAcknowledged("uas_answer_retransmitted.xml", "uac_wait_bye.xml", 1);
}

// Proves: a retransmission of the core's 200 to a relayed re-INVITE (hold) that comes 2.5 s
// after the ACK, when the SBC has let go of that re-INVITE and nta of its ACK (64*T1 = 2 s),
// is acknowledged again; the trunk hears each 200 once (the call's and the hold's).
TEST_F(CallSetup, RetransmittedReinviteAnswerIsAcknowledgedAgain) {
  expectEveryAnswerAcknowledged("uas_reinvite_answer_retransmitted.xml", "uac_hold_wait_bye.xml",
                                2);
}

// Proves: with a forking core (two early dialogs, both answering), the trunk sees a single
// dialog, the call goes on with the first answer, and the second answer is acknowledged and
// ended with BYE.
TEST_F(CallSetup, ForkedSecondAnswerIsEnded) {
  startSbc(10);
  auto core = startCore("uas_fork.xml", 1);
  const std::string trace = dir_.file("trunk-messages.log");
  const auto trunk = runCommand(trunkArgs("uac_fork.xml", 1, 1, trace), std::chrono::seconds(40));
  EXPECT_EQ(trunk.status, 0) << trunk.output;
  EXPECT_EQ(core->waitForExit(10s), 0) << core->output();
  std::ifstream in(trace);
  const std::string messages((std::istreambuf_iterator<char>(in)),
                             std::istreambuf_iterator<char>());
  static const std::regex toTag(R"(\nTo: [^\r\n]*;tag=([^;\r\n]+))");
  std::set<std::string> tags;
  for (auto it = std::sregex_iterator(messages.begin(), messages.end(), toTag);
       it != std::sregex_iterator(); ++it) {
    tags.insert((*it)[1].str());
  }
  EXPECT_EQ(tags.size(), 1u) << messages;
  EXPECT_EQ(messages.find("fork"), std::string::npos) << "a fork's tag or contact leaked";
  expectNoActiveCalls();
}

// Proves: a losing fork of a forking core that answers 2.5 s after the winner's answer was
// acknowledged (past 64*T1 = 2 s: the SBC has let go of its INVITE transactions) gets ACK
// and then BYE in its own dialog (the core's scenario retransmits that 200 until the ACK
// comes and checks both by forkA's tag), and its answer never reaches the trunk, which
// hears exactly one 200 to its INVITE. The fork had no early dialog the SBC knew of (its
// 180 was unreliable): nta itself (UA mode) acknowledges and ends such an orphan 2xx of an
// INVITE transaction the SBC destroyed, statelessly (its BYE has CSeq 2147483647).
TEST_F(CallSetup, LosingForksLateAnswerIsAcknowledgedAndEnded) {
  expectLateForkAnswerEnded("uas_fork_late_answer.xml");
}

// Proves: the same for a losing fork that had an early dialog (a PRACKed reliable 183) and
// whose early dialog the SBC ended with BYE when the winner's answer was acknowledged: its
// 200 2.5 s later (a 200 that crossed that BYE) is a stray response to nta (the narrowed
// INVITE transaction is gone and its tag is the fork's own), which the front door hands to
// Call::acknowledgeStrayAnswer: ACKed and ended with BYE in the fork's dialog. Without that
// path the 200 is discarded unacknowledged and the core's scenario fails.
TEST_F(CallSetup, LosingForksLateAnswerInItsEarlyDialogIsAcknowledgedAndEnded) {
  expectLateForkAnswerEnded("uas_fork_prack_late_answer.xml");
}

}  // namespace
}  // namespace sbc::test
