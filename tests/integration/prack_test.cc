// PRACK end to end (RFC 3262, RFC 6337 3.2) with SIPp on both sides: a reliable provisional
// response relayed reliably to a caller that takes 100rel is PRACKed towards the callee
// only when the caller PRACKs it, with the caller's PRACK body anchored: the answer to a
// late offer the provisional response carried, or a new offer whose answer comes back in
// the 200 to the PRACK. And the ways that goes wrong: a caller that never PRACKs, a PRACK
// without the answer, a call ended by either side while a PRACK is relayed, a late offer
// from a caller without 100rel (which nobody could answer in a PRACK). Every test ends by
// checking that no call slot or media flow leaked.

#include <chrono>
#include <regex>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "tests/integration/sbcd_process.h"
#include "tests/integration/trunk_fixture.h"
#include "tests/support/test_env.h"

namespace sbc::test {
namespace {

// The c= address and m=audio port of the SDP of the first received message of `method`
// (a request line "PRACK sip:..." or a response's "CSeq: n PRACK") in `received`.
struct SdpMedia {
  std::string address;
  int port = 0;
};
std::optional<SdpMedia> sdpOfFirst(const std::string& received, const std::string& marker) {
  const auto at = received.find(marker);
  if (at == std::string::npos) return std::nullopt;
  // The message ends where SIPp's next trace entry begins.
  const auto end = received.find("-----------------------------------------------", at);
  const std::string message = received.substr(at, end == std::string::npos ? end : end - at);
  static const std::regex media(R"(c=IN IP4 ([0-9.]+)\r?\n(?:.*\r?\n)*?m=audio (\d+))");
  std::smatch match;
  if (!std::regex_search(message, match, media)) return std::nullopt;
  return SdpMedia{match[1].str(), std::stoi(match[2].str())};
}

class Prack : public TrunkFixture {
 protected:
  // SIPp calling from the core (Request-URI ;trunk=alpha) with `scenario`, its trace in
  // `traceFile`; `answerPort` is its scenario's [answer_port].
  CommandResult coreCalls(const std::string& scenario, const std::string& traceFile) {
    return runCommand(
        {"/usr/bin/sipp", "-sf", kSippDir + "/" + scenario, "-i", "127.0.0.3", "-bind_local",
         "-p", std::to_string(corePort_), "-m", "1", "-timeout", "20s", "-timeout_error",
         "-key", "answer_port", "7000", "-trace_msg", "-message_file", traceFile, "-nostdin",
         "127.0.0.11:" + std::to_string(sbcCorePort_)},
        std::chrono::seconds(40));
  }

  // SIPp as the core answering one call with `scenario`, its media on 127.0.0.3 at a free
  // port, its messages traced to core-messages.log (`extra`: -rtp_echo, -key ...), once it
  // listens.
  std::unique_ptr<ChildProcess> startTracedCore(const std::string& scenario,
                                                std::vector<std::string> extra = {}) {
    std::vector<std::string> args{
        "/usr/bin/sipp", "-sf", kSippDir + "/" + scenario, "-i", "127.0.0.3", "-bind_local",
        "-p", std::to_string(corePort_), "-m", "1", "-nostdin", "-mi", "127.0.0.3", "-mp",
        std::to_string(freeSippMediaPort("127.0.0.3", corePort_)), "-trace_msg", "-message_file",
        dir_.file("core-messages.log")};
    args.insert(args.end(), extra.begin(), extra.end());
    return startListening(std::move(args), "127.0.0.3", corePort_);
  }

  void expectNothingLeft() {
    expectNoActiveCalls();
    EXPECT_TRUE(daemon_->waitForMetric("sbc_media_flows", 0)) << daemon_->scrape();
  }

  // A call from the trunk (`trunkScenario`, with a late offer; its trace in
  // trunk-messages.log) to a forking core (`coreScenario`) whose winning fork offers
  // [media_port], where SIPp echoes media, and whose first fork offers [fork_a_port], a
  // socket of the test's. Once the trunk has the 200 to its INVITE, media sent to the SBC
  // must come back from the winner and none may reach the first fork. Returns the core's
  // received messages, once both scenarios have completed.
  std::string callForkingCoreWithMedia(const std::string& coreScenario,
                                       const std::string& trunkScenario) {
    UdpSocket forkA("127.0.0.3", 0);
    EXPECT_TRUE(forkA.bound());
    const std::string coreTrace = dir_.file("core-messages.log");
    auto core = startTracedCore(coreScenario,
                                {"-rtp_echo", "-key", "fork_a_port", std::to_string(forkA.port())});
    UdpSocket trunkMedia("127.0.0.2", 0);
    EXPECT_TRUE(trunkMedia.bound());
    const std::string trace = dir_.file("trunk-messages.log");
    auto args = trunkArgs(trunkScenario, 1, 1, trace);
    args.insert(args.end() - 1, {"-key", "answer_port", std::to_string(trunkMedia.port())});
    ChildProcess trunk(args);

    // The media starts once the trunk has the 200 to its INVITE (after the PRACK's).
    std::string messages;
    for (int i = 0; i < 100; ++i) {
      messages = receivedMessages(trace);
      const auto first = messages.find("SIP/2.0 200 OK");
      if (first != std::string::npos &&
          messages.find("SIP/2.0 200 OK", first + 1) != std::string::npos) {
        break;
      }
      std::this_thread::sleep_for(50ms);
    }
    const auto answered = waitForAnsweredMedia(trace, messages);
    EXPECT_TRUE(answered.has_value()) << messages;
    if (answered) {
      EXPECT_EQ(answered->address, "127.0.0.10");
      expectMediaEchoed(trunkMedia, answered->port, 20);
      EXPECT_FALSE(forkA.receive().has_value()) << "media went to the losing fork";
    }
    EXPECT_EQ(trunk.waitForExit(20s), 0) << trunk.output();
    EXPECT_EQ(core->waitForExit(10s), 0) << core->output() << receivedMessages(coreTrace);
    return receivedMessages(coreTrace);
  }

  // A forking core's call from the trunk is over with `result`, nothing of the forks (tags,
  // contacts) reached the trunk (its trace in `trunkTrace`), and nothing leaked.
  void expectForkedCallOver(const std::string& trunkTrace, const std::string& result) {
    EXPECT_EQ(receivedMessages(trunkTrace).find("fork"), std::string::npos)
        << "a fork's tag or contact leaked";
    EXPECT_EQ(metric("sbc_calls_total{direction=\"from_trunk\",result=\"" + result +
                     "\",trunk=\"alpha\"}"),
              1)
        << daemon_->scrape();
    expectNothingLeft();
  }
};

// Proves: a trunk's late offer (INVITE without SDP) answered in the PRACK of the core's
// reliable 183 reaches the core in the SBC's PRACK, anchored (c= the SBC's core media
// address, a core relay port, the SBC's o=: the core's scenario checks each), the 183's
// retransmissions while the PRACK waits for the trunk's are not relayed again (the trunk's
// scenario fails on a second 183), the ACK without SDP is accepted, and media crosses both
// ways: the core echoes what the trunk sends to the SBC's access port, and the echo reaches
// the trunk at the port its PRACK named. Before: the SBC PRACKed the 183 at once without a
// body, the answer was lost and the call was ended at the ACK.
TEST_F(Prack, LateOfferAnsweredInPrackReachesTheCoreAnchored) {
  startSbc(10);
  const std::string coreTrace = dir_.file("core-messages.log");
  auto core = startTracedCore("prack_callee_late_offer.xml", {"-rtp_echo"});
  UdpSocket trunkMedia("127.0.0.2", 0);
  ASSERT_TRUE(trunkMedia.bound());
  const std::string trace = dir_.file("trunk-messages.log");
  auto args = trunkArgs("prack_caller_late_offer.xml", 1, 1, trace);
  args.insert(args.end() - 1, {"-key", "answer_port", std::to_string(trunkMedia.port())});
  ChildProcess trunk(args);

  std::string messages;
  const auto answered = waitForAnsweredMedia(trace, messages);
  ASSERT_TRUE(answered.has_value()) << messages;
  EXPECT_EQ(answered->address, "127.0.0.10");
  expectMediaEchoed(trunkMedia, answered->port, 20);

  EXPECT_EQ(trunk.waitForExit(20s), 0) << trunk.output();
  EXPECT_EQ(core->waitForExit(10s), 0) << core->output() << receivedMessages(coreTrace);
  const auto prack = sdpOfFirst(receivedMessages(coreTrace), "PRACK sip:");
  ASSERT_TRUE(prack.has_value()) << receivedMessages(coreTrace);
  EXPECT_EQ(prack->address, "127.0.0.11");
  EXPECT_GE(prack->port, 21000);
  EXPECT_LE(prack->port, 21999);
  EXPECT_EQ(metric("sbc_calls_total{direction=\"from_trunk\",result=\"answered\",trunk=\"alpha\"}"),
            1)
      << daemon_->scrape();
  // The trunk's PRACK is counted where it came from (nta hands it to the reliable response,
  // not to the dialog); the SBC's own PRACK to the core is not a request it received.
  EXPECT_EQ(metric("sbc_sip_requests_total{method=\"PRACK\",realm=\"access\"}"), 1)
      << daemon_->scrape();
  EXPECT_EQ(metricValue(daemon_->scrape(),
                        "sbc_sip_requests_total{method=\"PRACK\",realm=\"core\"}")
                .value_or(0),
            0)
      << daemon_->scrape();
  expectNothingLeft();
}

// Proves: the same path serves core → trunk calls: the core's late offer answered in its
// PRACK of the trunk's reliable 183 reaches the trunk in the SBC's PRACK, anchored on the
// SBC's access media address and an access relay port. Before: the trunk got a PRACK
// without SDP (its scenario fails).
TEST_F(Prack, LateOfferAnsweredInPrackReachesTheTrunkAnchored) {
  startSbc(10);
  const std::string trunkTrace = dir_.file("trunk-messages.log");
  const auto trunkSide = startUas("prack_callee_late_offer.xml", "127.0.0.2", trunkPort_, 1,
                                  "udp", trunkTrace);
  const auto coreSide = coreCalls("prack_caller_late_offer.xml", dir_.file("core-messages.log"));
  EXPECT_EQ(coreSide.status, 0) << coreSide.output;
  EXPECT_EQ(trunkSide->waitForExit(10s), 0) << trunkSide->output();
  const auto prack = sdpOfFirst(receivedMessages(trunkTrace), "PRACK sip:");
  ASSERT_TRUE(prack.has_value()) << receivedMessages(trunkTrace);
  EXPECT_EQ(prack->address, "127.0.0.10");
  EXPECT_GE(prack->port, 20000);
  EXPECT_LE(prack->port, 20999);
  EXPECT_EQ(metric("sbc_calls_total{direction=\"to_trunk\",result=\"answered\",trunk=\"alpha\"}"),
            1)
      << daemon_->scrape();
  EXPECT_EQ(metric("sbc_sip_requests_total{method=\"PRACK\",realm=\"core\"}"), 1)
      << daemon_->scrape();
  expectNothingLeft();
}

// Proves: a new offer in the trunk's PRACK, once the INVITE's offer was answered in the
// core's reliable 183, reaches the core in the SBC's PRACK anchored (c= 127.0.0.11, a relay
// port, sendonly kept), and the core's answer in its 200 to that PRACK reaches the trunk in
// the 200 to its own PRACK, anchored on 127.0.0.10 (recvonly kept); both scenarios check
// theirs. Before: the trunk's PRACK was answered 200 without a body and the core's PRACK
// carried none.
TEST_F(Prack, NewOfferInPrackIsRelayedAndAnswered) {
  startSbc(10);
  const std::string coreTrace = dir_.file("core-messages.log");
  auto core = startUas("prack_callee_offer.xml", "127.0.0.3", corePort_, 1, "udp", coreTrace);
  const std::string trace = dir_.file("trunk-messages.log");
  const auto trunk = runCommand(trunkArgs("prack_caller_offer.xml", 1, 1, trace),
                                std::chrono::seconds(40));
  EXPECT_EQ(trunk.status, 0) << trunk.output << receivedMessages(trace);
  EXPECT_EQ(core->waitForExit(10s), 0) << core->output() << receivedMessages(coreTrace);
  const auto offer = sdpOfFirst(receivedMessages(coreTrace), "PRACK sip:");
  ASSERT_TRUE(offer.has_value()) << receivedMessages(coreTrace);
  EXPECT_EQ(offer->address, "127.0.0.11");
  const auto answer = sdpOfFirst(receivedMessages(trace), "CSeq: 2 PRACK");
  ASSERT_TRUE(answer.has_value()) << receivedMessages(trace);
  EXPECT_EQ(answer->address, "127.0.0.10");
  EXPECT_EQ(metric("sbc_calls_total{direction=\"from_trunk\",result=\"answered\",trunk=\"alpha\"}"),
            1)
      << daemon_->scrape();
  expectNothingLeft();
}

// Proves: with a forking core whose two early dialogs each send a reliable 183, a trunk with
// 100rel gets both reliably (RSeq 1 and 2) and each of its PRACKs' ISUP bodies reaches that
// fork's PRACK only (the core's scenario checks them there; each PRACK in its fork's To tag
// and Contact); nothing of the forks reaches the trunk. Fails with the PRACK relayed hop by
// hop (no ISUP at forkA), and without the first 183 let go once PRACKed (nta then holds
// the second back for ever: the trunk's scenario times out).
TEST_F(Prack, EachForksReliable183IsPrackedEndToEnd) {
  startSbc(10);
  auto core = startCore("uas_fork_prack_end_to_end.xml", 1);
  const std::string trace = dir_.file("trunk-messages.log");
  const auto trunk = runCommand(trunkArgs("prack_caller_forked.xml", 1, 1, trace),
                                std::chrono::seconds(40));
  EXPECT_EQ(trunk.status, 0) << trunk.output;
  EXPECT_EQ(core->waitForExit(10s), 0) << core->output();
  expectForkedCallOver(trace, "answered");
}

// Proves: a trunk's late offer that the core answers with a reliable 180 first and its
// offer in a reliable 183 after reaches the trunk reliably both times, and the trunk's
// answer in its second PRACK reaches the core's PRACK of the 183, anchored (the scenarios
// check each). Before: the 180 was kept once PRACKed, nta would have held the 183 back for
// ever, so it could not go reliably: the call was refused with 502.
TEST_F(Prack, LateOfferInASecondReliableProvisionalIsAnsweredEndToEnd) {
  startSbc(10);
  auto core = startCore("prack_callee_offer_after_180.xml", 1);
  auto args = trunkArgs("prack_caller_late_offer_after_180.xml", 1, 1);
  args.insert(args.end() - 1, {"-key", "answer_port", "7000"});
  const auto trunk = runCommand(args, std::chrono::seconds(40));
  EXPECT_EQ(trunk.status, 0) << trunk.output;
  EXPECT_EQ(core->waitForExit(10s), 0) << core->output();
  EXPECT_EQ(metric("sbc_calls_total{direction=\"from_trunk\",result=\"answered\",trunk=\"alpha\"}"),
            1)
      << daemon_->scrape();
  EXPECT_EQ(metric("sbc_sip_requests_total{method=\"PRACK\",realm=\"access\"}"), 2)
      << daemon_->scrape();
  expectNothingLeft();
}

// Proves: with a trunk's late offer and a forking core whose two early dialogs each offer in
// a reliable 183, the first offer reaches the trunk and the trunk's answer reaches that
// fork's PRACK; the second fork's offer, which the trunk never sees (it gets an ordinary
// 183 repeating the offer it has), is answered by the SBC itself in that fork's PRACK, with
// the same anchored answer (RFC 3262 5); when the second fork answers, the trunk's media
// reaches the second fork's port (SIPp echoes it back) and none goes to the first's.
// Before: the second fork's PRACK had no SDP and the media kept going to the first fork.
TEST_F(Prack, EachForksLateOfferIsAnsweredAndTheWinnerGetsTheMedia) {
  startSbc(10);
  const std::string coreReceived =
      callForkingCoreWithMedia("uas_fork_late_offer_prack.xml", "prack_caller_forked_late_offer.xml");
  const auto toA = sdpOfFirst(coreReceived, "PRACK sip:fork-a");
  const auto toB = sdpOfFirst(coreReceived, "PRACK sip:fork-b");
  ASSERT_TRUE(toA.has_value() && toB.has_value()) << coreReceived;
  EXPECT_EQ(toB->address, "127.0.0.11");
  EXPECT_EQ(toB->port, toA->port) << "each fork is answered with the same anchored answer";
  expectForkedCallOver(dir_.file("trunk-messages.log"), "answered");
}

// Proves: when a second fork answers (200 with its own offer) while the trunk is still to
// answer the first fork's offer in its PRACK, the trunk's answer is taken from that PRACK
// all the same, the winner gets it in the ACK of its 200 (anchored: the core's scenario
// checks c=, the relay port and o=), and the trunk's media reaches the winner's port (SIPp
// echoes it back) and none goes to the first fork's. Before: the PRACK's answer was
// dropped, the ACK carried none, and the call was ended as unanswered at the ACK.
TEST_F(Prack, ForkAnsweringBeforeTheCallersAnswerGetsItInTheAck) {
  startSbc(10);
  callForkingCoreWithMedia("uas_fork_late_offer_early_answer.xml", "prack_caller_late_offer.xml");
  expectForkedCallOver(dir_.file("trunk-messages.log"), "answered");
}

// Proves: a second fork that previews an offer of its own in an unreliable 183 (which the
// trunk gets as an ordinary 183 repeating the first fork's offer: nothing to PRACK) and
// then answers with a 200 repeating it, after the trunk answered the first fork's offer in
// its PRACK, gets the trunk's anchored answer in the ACK of its 200 (the core's scenario
// checks c=, the relay port and o=), and the trunk's media reaches that fork's port and
// none goes to the first fork's.
TEST_F(Prack, ForkPreviewingItsOfferUnreliablyGetsTheAnswerInTheAck) {
  startSbc(10);
  callForkingCoreWithMedia("uas_fork_late_offer_preview.xml",
                           "prack_caller_forked_late_offer.xml");
  expectForkedCallOver(dir_.file("trunk-messages.log"), "answered");
}

// Proves: a fork whose first message is a 200 with an offer of its own, after the trunk
// answered another fork's offer in its PRACK, gets the trunk's anchored answer in the ACK
// of its 200 (checked by the core's scenario), the other fork's early dialog is ended, and
// the trunk's media reaches the winner's port and none goes to the other fork's.
TEST_F(Prack, ForkOfferingFirstInIts200AfterTheAnswerGetsItInTheAck) {
  startSbc(10);
  callForkingCoreWithMedia("uas_fork_late_offer_after_answer.xml", "prack_caller_late_offer.xml");
  expectForkedCallOver(dir_.file("trunk-messages.log"), "answered");
}

// Proves: a second fork offering only what the trunk's answer does not fit (PCMA, where
// the trunk answered PCMU), and offering before that answer came, gets its PRACK once the
// answer is there (after the first fork's) with its stream rejected (m=audio 0); when
// that fork answers the call, its 200 is ACKed and its dialog ended, the first fork's
// early dialog is ended too, the trunk hears 488, and the call counts as aborted. Before:
// that fork got a PRACK without SDP at once and the call went on with no usable media.
TEST_F(Prack, ForkOfferingWhatTheAnswerDoesNotFitIsRejected) {
  startSbc(10);
  const std::string coreTrace = dir_.file("core-messages.log");
  auto core = startTracedCore("uas_fork_late_offer_unfit.xml");
  const std::string trace = dir_.file("trunk-messages.log");
  auto args = trunkArgs("prack_caller_forked_late_offer_unfit.xml", 1, 1, trace);
  args.insert(args.end() - 1, {"-key", "answer_port", "7000"});
  const auto trunk = runCommand(args, std::chrono::seconds(40));
  EXPECT_EQ(trunk.status, 0) << trunk.output;
  EXPECT_EQ(core->waitForExit(10s), 0) << core->output() << receivedMessages(coreTrace);
  EXPECT_EQ(metric("sbc_sip_responses_total{code=\"488\",realm=\"access\"}"), 1)
      << daemon_->scrape();
  expectForkedCallOver(trace, "aborted");
}

// Proves: when the core answers an offer relayed in a PRACK with SDP the SBC cannot anchor
// (two m= lines for one), the trunk's PRACK gets 502 and the call is ended: 503 to the
// trunk's INVITE, CANCEL to the core; counted aborted, slot and media freed. Before: the
// trunk's PRACK was answered 200 and the call went on with media nobody had agreed on.
TEST_F(Prack, UnusableAnswerInThe200ToAPrackEndsTheCall) {
  startSbc(10);
  callThrough("prack_callee_bad_answer.xml", "prack_caller_offer_bad_answer.xml");
  EXPECT_EQ(metric("sbc_sip_responses_total{code=\"502\",realm=\"access\"}"), 1)
      << daemon_->scrape();
  EXPECT_EQ(metric("sbc_calls_total{direction=\"from_trunk\",result=\"aborted\",trunk=\"alpha\"}"),
            1)
      << daemon_->scrape();
  expectNothingLeft();
}

// Proves: an offer in the trunk's PRACK while its INVITE's offer is still unanswered (the
// core's reliable 183 has no SDP) is refused 491 and counted; the core's 183 is still
// PRACKed, without a body (its scenario checks), and the call goes on to the core's answer.
// Before: the trunk's PRACK was answered 200 (its scenario fails on that).
TEST_F(Prack, OfferInPrackBeforeTheAnswerIsRefused491) {
  startSbc(10);
  callThrough("prack_callee_unanswered_183.xml", "prack_caller_offer_too_early.xml");
  EXPECT_EQ(metric("sbc_sip_responses_total{code=\"491\",realm=\"access\"}"), 1)
      << daemon_->scrape();
  EXPECT_EQ(metric("sbc_calls_total{direction=\"from_trunk\",result=\"answered\",trunk=\"alpha\"}"),
            1)
      << daemon_->scrape();
  expectNothingLeft();
}

// Proves: a trunk that never PRACKs the reliable 183 has its INVITE refused with 503 once
// nta gives up (64*T1), the core's 183 is never PRACKed (its scenario fails on a PRACK)
// but cancelled, and the call counts aborted with its slot freed. Before: the SBC PRACKed
// the core's 183 at once.
TEST_F(Prack, CallerThatNeverPracksEndsTheCall) {
  startSbc(10);
  callThrough("prack_callee_cancelled.xml", "prack_caller_silent.xml");
  EXPECT_EQ(metric("sbc_calls_total{direction=\"from_trunk\",result=\"aborted\",trunk=\"alpha\"}"),
            1)
      << daemon_->scrape();
  EXPECT_EQ(metric("sbc_sip_responses_total{code=\"503\",realm=\"access\"}"), 1)
      << daemon_->scrape();
  expectNothingLeft();
}

// Proves: a trunk that CANCELs while the core's reliable 183 (offering) waits for its PRACK
// gets 200 and 487, the core gets CANCEL and never a PRACK (its scenario fails on one), and
// the call counts cancelled with its slot and media freed. Before: the SBC PRACKed the
// core's 183 at once.
TEST_F(Prack, CancelWhileThePrackWaitsReachesTheCalleeUnpracked) {
  startSbc(10);
  callThrough("prack_callee_cancelled.xml", "prack_caller_cancels.xml");
  EXPECT_EQ(metric("sbc_calls_total{direction=\"from_trunk\",result=\"cancelled\",trunk=\"alpha\"}"),
            1)
      << daemon_->scrape();
  expectNothingLeft();
}

// Proves: the same with a BYE in the trunk's early dialog (RFC 3261 15) instead of the
// CANCEL: BYE 200 and 487 to the trunk (not held back behind the unPRACKed 183), CANCEL and
// never a PRACK to the core; counted cancelled, slot and media freed.
TEST_F(Prack, ByeWhileThePrackWaitsReachesTheCalleeUnpracked) {
  startSbc(10);
  callThrough("prack_callee_cancelled.xml", "prack_caller_bye_before_prack.xml");
  EXPECT_EQ(metric("sbc_calls_total{direction=\"from_trunk\",result=\"cancelled\",trunk=\"alpha\"}"),
            1)
      << daemon_->scrape();
  expectNothingLeft();
}

// Proves: a PRACK that does not answer the late offer of the reliable 183 it acknowledges
// is refused with 488, the trunk's INVITE too, and the core gets CANCEL instead of a PRACK
// without the answer it waits for; counted aborted, slot freed. Before: the PRACK was
// answered 200 and the core PRACKed without SDP.
TEST_F(Prack, PrackWithoutTheAnswerEndsTheCall) {
  startSbc(10);
  callThrough("prack_callee_cancelled.xml", "prack_caller_late_offer_unanswered.xml");
  EXPECT_EQ(metric("sbc_sip_responses_total{code=\"488\",realm=\"access\"}"), 2)
      << daemon_->scrape();
  EXPECT_EQ(metric("sbc_calls_total{direction=\"from_trunk\",result=\"aborted\",trunk=\"alpha\"}"),
            1)
      << daemon_->scrape();
  expectNothingLeft();
}

// Proves: a late offer from a trunk without 100rel reaches the core in an INVITE that
// announces no 100rel (the core's scenario fails on 100rel in Supported or Require), so the
// core offers in its 200 and the trunk's answer in the ACK reaches it anchored (both
// scenarios check the SDP). Before: the INVITE said Supported: 100rel, and a core offering
// in a reliable 183 was PRACKed by the SBC without the answer RFC 3262 5 demands.
TEST_F(Prack, LateOfferFromCallerWithout100relAnnouncesNo100rel) {
  startSbc(10);
  callThrough("prack_callee_late_offer_without_100rel.xml", "uac_late_offer.xml");
  EXPECT_EQ(metric("sbc_calls_total{direction=\"from_trunk\",result=\"answered\",trunk=\"alpha\"}"),
            1)
      << daemon_->scrape();
  expectNothingLeft();
}

// Proves: a core that offers in a reliable 183 all the same (the late-offer INVITE of a trunk
// without 100rel announced none) is never PRACKed, since the PRACK would owe an answer the
// trunk gives only in its ACK, but cancelled; the trunk hears 502 and nothing of the 183;
// counted aborted, slot and media freed. Before: the SBC PRACKed the 183 without a body.
TEST_F(Prack, ReliableOfferNobodyCanAnswerIsRefused502) {
  startSbc(10);
  callThrough("prack_callee_reliable_without_100rel.xml", "uac_late_offer_gets_502.xml");
  EXPECT_EQ(metric("sbc_sip_responses_total{code=\"502\",realm=\"access\"}"), 1)
      << daemon_->scrape();
  EXPECT_EQ(metric("sbc_calls_total{direction=\"from_trunk\",result=\"aborted\",trunk=\"alpha\"}"),
            1)
      << daemon_->scrape();
  expectNothingLeft();
}

// Proves: a trunk that CANCELs while its PRACK, relayed to the core, waits for the core's
// 200 ends the call on both legs: CANCEL 200, 481 to its PRACK and 487 to the trunk, a
// CANCEL to the core (whose late 200 to the PRACK is absorbed); counted cancelled, the PRACK
// counted, slot and media freed (also under ASan: nothing of the pending PRACK leaks).
TEST_F(Prack, CancelWhileThePrackIsRelayedEndsBothLegs) {
  startSbc(10);
  callThrough("prack_callee_prack_waits_cancelled.xml", "prack_caller_cancels_while_prack_waits.xml");
  EXPECT_EQ(metric("sbc_calls_total{direction=\"from_trunk\",result=\"cancelled\",trunk=\"alpha\"}"),
            1)
      << daemon_->scrape();
  EXPECT_EQ(metric("sbc_sip_requests_total{method=\"PRACK\",realm=\"access\"}"), 1)
      << daemon_->scrape();
  EXPECT_EQ(metric("sbc_sip_responses_total{code=\"481\",realm=\"access\"}"), 1)
      << daemon_->scrape();
  expectNothingLeft();
}

// Proves: the same with a BYE in the trunk's early dialog (RFC 3261 15) instead of a
// CANCEL: BYE 200, 487 and 481 to the trunk, CANCEL to the core; counted cancelled, nothing
// left.
TEST_F(Prack, ByeWhileThePrackIsRelayedEndsBothLegs) {
  startSbc(10);
  callThrough("prack_callee_prack_waits_cancelled.xml", "prack_caller_bye_while_prack_waits.xml");
  EXPECT_EQ(metric("sbc_calls_total{direction=\"from_trunk\",result=\"cancelled\",trunk=\"alpha\"}"),
            1)
      << daemon_->scrape();
  EXPECT_EQ(metric("sbc_sip_requests_total{method=\"BYE\",realm=\"access\"}"), 1)
      << daemon_->scrape();
  expectNothingLeft();
}

// Proves: a core that ends the call (486) instead of answering the relayed PRACK ends it on
// both legs: 486 to the trunk's INVITE (ACKed), 481 to the trunk's PRACK; counted failed,
// nothing left.
TEST_F(Prack, CalleeFailingWhileThePrackIsRelayedEndsBothLegs) {
  startSbc(10);
  callThrough("prack_callee_busy_while_prack_waits.xml", "prack_caller_busy_while_prack_waits.xml");
  EXPECT_EQ(metric("sbc_calls_total{direction=\"from_trunk\",result=\"failed\",trunk=\"alpha\"}"),
            1)
      << daemon_->scrape();
  expectNothingLeft();
}

}  // namespace
}  // namespace sbc::test
