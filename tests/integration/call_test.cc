// Calls through the B2BUA with SIPp as trunk (127.0.0.2) and core (127.0.0.3): the basic
// call, the signaling thread's real-time scheduling, the trunk's concurrent-call ceiling,
// and a core that does not answer. Every test ends by checking that no call slot leaked.

#include <netinet/in.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <unistd.h>

#include <signal.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <regex>
#include <sstream>
#include <memory>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "tests/integration/sbcd_process.h"
#include "tests/integration/trunk_fixture.h"
#include "tests/support/test_env.h"

namespace sbc::test {
namespace {

using TrunkCalls = TrunkFixture;

// Proves: trunk → core calls complete (INVITE, 180, 200, ACK, BYE) through the B2BUA.
TEST_F(TrunkCalls, BasicCallsComplete) {
  startSbc(10);
  // Without sip.realtime_priority nothing runs real-time; the signaling thread is named.
  int signalingThreads = 0;
  for (const ThreadSchedule& thread : threadSchedules(daemon_->process().pid())) {
    EXPECT_EQ(thread.policy, SCHED_OTHER) << thread.name;
    signalingThreads += thread.name == "sbc-sip" ? 1 : 0;
  }
  EXPECT_EQ(signalingThreads, 1);
  callThrough("uas_answer.xml", "uac_hold.xml", 3);
  EXPECT_EQ(metric("sbc_admission_total{result=\"admitted\",trunk=\"alpha\"}"), 3);
  expectNoActiveCalls();
}

// Proves: with sip.realtime_priority the signaling thread, and only it, runs under
// SCHED_FIFO at that priority, says so, and calls complete through it.
TEST_F(TrunkCalls, SignalingThreadRunsRealtimeWhenConfigured) {
  if (::geteuid() != 0) {  // CAP_SYS_NICE
    if (runningInCi()) FAIL() << "needs root (real-time scheduling)";
    GTEST_SKIP() << "needs root (real-time scheduling)";
  }
  sipExtra_ = "realtime_priority = 7;";
  startSbc(10);
  EXPECT_NE(daemon_->process().output().find(
                "signaling thread runs under SCHED_FIFO at priority 7"),
            std::string::npos)
      << daemon_->process().output();
  int realtimeThreads = 0;
  for (const ThreadSchedule& thread : threadSchedules(daemon_->process().pid())) {
    if (thread.name == "sbc-sip") {
      EXPECT_EQ(thread.policy, SCHED_FIFO);
      EXPECT_EQ(thread.priority, 7);
    }
    if (thread.policy != SCHED_OTHER) {
      ++realtimeThreads;
      EXPECT_EQ(thread.name, "sbc-sip") << "only the signaling thread is real-time";
    }
  }
  EXPECT_EQ(realtimeThreads, 1);
  callThrough("uas_answer.xml", "uac_hold.xml", 3);
  expectNoActiveCalls();
}

// Proves: refused real-time scheduling (no CAP_SYS_NICE, RLIMIT_RTPRIO 0) is logged with
// the reason, and sbcd serves calls at the normal priority.
TEST_F(TrunkCalls, RealtimePriorityRefusedRunsAtNormalPriority) {
  if (::geteuid() != 0 || !std::filesystem::exists("/usr/bin/setpriv") ||
      !std::filesystem::exists("/usr/bin/prlimit")) {
    if (runningInCi()) FAIL() << "needs root, setpriv and prlimit (util-linux)";
    GTEST_SKIP() << "needs root, setpriv and prlimit (util-linux)";
  }
  sipExtra_ = "realtime_priority = 7;";
  sbcdWrapper_ = {"/usr/bin/prlimit", "--rtprio=0:0", "--", "/usr/bin/setpriv",
                  "--bounding-set=-sys_nice", "--inh-caps=-sys_nice", "--"};
  startSbc(10);
  const std::string& output = daemon_->process().output();
  const auto warning = output.find("sip.realtime_priority = 7: the signaling thread stays at "
                                   "the normal priority: Operation not permitted");
  EXPECT_NE(warning, std::string::npos) << output;
  EXPECT_NE(output.find("CAP_SYS_NICE", warning), std::string::npos) << output;
  for (const ThreadSchedule& thread : threadSchedules(daemon_->process().pid())) {
    EXPECT_EQ(thread.policy, SCHED_OTHER) << thread.name;
  }
  callThrough("uas_answer.xml", "uac_hold.xml", 3);
  expectNoActiveCalls();
}

// Proves: with a ceiling of 2 and 3 simultaneous calls exactly 2 are admitted and 1 gets
// 503, then 2 succeed again once those ended.
TEST_F(TrunkCalls, ConcurrentCeilingRefusesTheExcess) {
  startSbc(2);
  auto core = startCore("uas_answer.xml", 4);
  const auto first = trunkCalls("uac_hold.xml", 3, 3);
  EXPECT_EQ(first.status, 0) << first.output;
  EXPECT_EQ(metric("sbc_admission_total{result=\"admitted\",trunk=\"alpha\"}"), 2);
  EXPECT_EQ(metric("sbc_admission_total{result=\"over_concurrent\",trunk=\"alpha\"}"), 1);
  EXPECT_EQ(metric("sbc_sip_responses_total{code=\"503\",realm=\"access\"}"), 1);
  expectNoActiveCalls();

  const auto second = trunkCalls("uac_hold.xml", 2, 2);
  EXPECT_EQ(second.status, 0) << second.output;
  EXPECT_EQ(metric("sbc_admission_total{result=\"admitted\",trunk=\"alpha\"}"), 4);
  EXPECT_EQ(core->waitForExit(10s), 0) << core->output();
  expectNoActiveCalls();
}

// Proves: when the core never answers, the trunk gets a failure (408 after Timer B) and
// the slot is freed.
TEST_F(TrunkCalls, SilentCoreTimesOutAndFreesTheSlot) {
  // A socket that takes the INVITEs and never answers (an unbound port would make the
  // kernel answer with ICMP, which is a different failure).
  const UdpSocket silent("127.0.0.3", corePort_);
  ASSERT_TRUE(silent.bound());
  startSbc(10);
  const auto trunk = trunkCalls("uac_hold.xml", 1, 1);
  EXPECT_NE(trunk.status, 0);  // the scenario expects 200 or 503, gets 408
  EXPECT_GE(metric("sbc_sip_responses_total{code=\"408\",realm=\"access\"}"), 1)
      << daemon_->scrape();
  expectNoActiveCalls();
}

// Proves: a CANCEL from the trunk while the core rings ends both sides (200 + 487 to the
// trunk, CANCEL to the core, which answers 487) and frees the slot.
TEST_F(TrunkCalls, CancelWhileRinging) {
  startSbc(10);
  callThrough("uas_ring_cancel.xml", "uac_cancel.xml");
  expectNoActiveCalls();
}

// Proves: a BYE from the core reaches the trunk and frees the slot.
TEST_F(TrunkCalls, ByeFromTheCore) {
  startSbc(10);
  callThrough("uas_bye.xml", "uac_wait_bye.xml");
  expectNoActiveCalls();
}

// Proves: a BYE from the core in its early dialog (before any answer) gets 200, the core's
// INVITE is CANCELled and the trunk gets a final 480 for its INVITE (no BYE on its
// unconfirmed dialog); the slot is freed.
TEST_F(TrunkCalls, ByeFromTheCoreBeforeTheAnswer) {
  startSbc(10);
  callThrough("uas_early_bye.xml", "uac_480.xml");
  EXPECT_EQ(metric("sbc_sip_responses_total{code=\"480\",realm=\"access\"}"), 1)
      << daemon_->scrape();
  expectNoActiveCalls();
}

// Proves: SIGTERM refuses new calls, and when the drain time is over the SBC ends the
// remaining call with BYE on both legs, then exits 0.
TEST_F(TrunkCalls, DrainEndsRemainingCallsWithBye) {
  startSbc(10, 1);
  auto core = startCore("uas_answer.xml", 1);
  ChildProcess trunk(trunkArgs("uac_wait_bye.xml", 1, 1));
  ASSERT_TRUE(daemon_->waitForMetric("sbc_trunk_active_calls{trunk=\"alpha\"}", 1));
  daemon_->process().signal(SIGTERM);
  EXPECT_EQ(trunk.waitForExit(15s), 0) << trunk.output();
  EXPECT_EQ(core->waitForExit(15s), 0) << core->output();
  EXPECT_EQ(daemon_->process().waitForExit(15s), 0) << daemon_->process().output();
  EXPECT_NE(daemon_->process().output().find("ending them"), std::string::npos);
}

// Proves: an offer the SBC cannot anchor (c= names a host) is refused with 488 and frees
// its slot. (Nothing listens on the core port: a forwarded INVITE would come back 503.)
TEST_F(TrunkCalls, UnusableSdpGets488) {
  startSbc(10);
  const auto trunk = trunkCalls("uac_bad_sdp.xml", 1, 1);
  EXPECT_EQ(trunk.status, 0) << trunk.output;
  EXPECT_EQ(metric("sbc_sip_responses_total{code=\"488\",realm=\"access\"}"), 1);
  expectNoActiveCalls();
}

// Proves: a re-INVITE from the trunk after the answer (hold with a=sendonly, then resume)
// reaches the core with the SBC's core media address, its answer reaches the trunk with the
// SBC's access media address, both are ACKed end to end and the call then ends with BYE.
TEST_F(TrunkCalls, ReInviteHoldAndResumeFromTheTrunk) {
  startSbc(10);
  callThrough("uas_reinvite.xml", "uac_reinvite_hold.xml");
  EXPECT_EQ(metric("sbc_sip_responses_total{code=\"200\",realm=\"access\"}"), 4)
      << daemon_->scrape();  // the call's 200, two re-INVITE 200s, the BYE's 200
  expectNoActiveCalls();
}

// Proves: an UPDATE from the core (hold offer) is relayed to the trunk with the SBC's access
// media address and the trunk's answer comes back to the core anchored; no ACK follows.
TEST_F(TrunkCalls, UpdateFromTheCore) {
  startSbc(10);
  callThrough("uas_update.xml", "uac_wait_update.xml");
  EXPECT_EQ(metric("sbc_sip_responses_total{code=\"200\",realm=\"core\"}"), 2)
      << daemon_->scrape();  // the UPDATE's 200 and the BYE's 200
  expectNoActiveCalls();
}

// Proves: an INFO from the trunk reaches the core with its body and Content-Type and the
// core's 200 comes back to the trunk.
TEST_F(TrunkCalls, InfoFromTheTrunk) {
  startSbc(10);
  callThrough("uas_info.xml", "uac_info.xml");
  expectNoActiveCalls();
}

// Proves: a second offer while a re-INVITE is pending gets 491, and a re-INVITE still
// pending when the call ends (BYE from the core) is answered 487 and freed with the call.
TEST_F(TrunkCalls, ReInviteGlareAndPendingAtBye) {
  startSbc(10);
  callThrough("uas_reinvite_ignore.xml", "uac_reinvite_glare.xml");
  EXPECT_EQ(metric("sbc_sip_responses_total{code=\"491\",realm=\"access\"}"), 1);
  EXPECT_EQ(metric("sbc_sip_responses_total{code=\"487\",realm=\"access\"}"), 1);
  expectNoActiveCalls();
}

// Proves: a core → trunk call (routed by the Request-URI parameter trunk=alpha) reaches the
// trunk's configured target with the SBC's access media address, is answered, counted
// against the trunk's ceiling and ends with the core's BYE.
TEST_F(TrunkCalls, CoreCallsOutThroughTheTrunk) {
  startSbc(10);
  callFromCore();
  EXPECT_EQ(metric("sbc_admission_total{result=\"admitted\",trunk=\"alpha\"}"), 1);
  expectNoActiveCalls();
}

// Proves: a reload that changes a trunk's target is used by the next core → trunk call
// (the signaling thread gets the new trunk table), without a restart.
TEST_F(TrunkCalls, ReloadedTrunkTargetIsUsed) {
  const int rightPort = trunkPort_;
  for (int i = 0; i < 10 && trunkPort_ == rightPort; ++i) {
    trunkPort_ = freeUdpPort("127.0.0.2");  // nothing will listen there
  }
  ASSERT_NE(trunkPort_, rightPort);
  startSbc(10);
  trunkPort_ = rightPort;
  dir_.write("sbc.cfg", sbcConfig(10, 30));
  daemon_->process().signal(SIGHUP);
  ASSERT_TRUE(daemon_->waitForMetric("sbc_config_reloads_total{result=\"success\"}", 1));
  callFromCore();
  expectNoActiveCalls();
}


// Proves: a 200 from the core whose SDP cannot be used is acknowledged (RFC 3261 13.2.2.4)
// and its dialog ended with BYE, while the trunk hears 502; the slot is freed.
TEST_F(TrunkCalls, UnusableSdpInTheAnswerIsAcknowledgedThenEnded) {
  startSbc(10);
  callThrough("uas_answer_bad_sdp.xml", "uac_502.xml");
  EXPECT_EQ(metric("sbc_sip_responses_total{code=\"502\",realm=\"access\"}"), 1)
      << daemon_->scrape();
  expectNoActiveCalls();
}

// Proves: a reload that lowers a trunk's ceiling below its calls in progress keeps those
// calls (each ends with its BYE answered) while a new call is refused with 503; once they
// have ended, a call is admitted again under the new ceiling.
TEST_F(TrunkCalls, LoweredCeilingKeepsEstablishedCalls) {
  startSbc(3);
  auto core = startCore("uas_answer.xml", 4);
  holdMs_ = 4000;
  ChildProcess held(trunkArgs("uac_hold.xml", 3, 3));
  ASSERT_TRUE(daemon_->waitForMetric("sbc_trunk_active_calls{trunk=\"alpha\"}", 3))
      << daemon_->scrape();
  dir_.write("sbc.cfg", sbcConfig(1, 30));
  daemon_->process().signal(SIGHUP);
  ASSERT_TRUE(daemon_->waitForMetric("sbc_config_reloads_total{result=\"success\"}", 1));
  EXPECT_EQ(metric("sbc_trunk_call_limit{trunk=\"alpha\"}"), 1) << daemon_->scrape();

  holdMs_ = 0;
  const auto refused = trunkCalls("uac_hold.xml", 1, 1);  // its 503 ends the scenario
  EXPECT_EQ(refused.status, 0) << refused.output;
  EXPECT_EQ(metric("sbc_admission_total{result=\"over_concurrent\",trunk=\"alpha\"}"), 1)
      << daemon_->scrape();
  EXPECT_EQ(metric("sbc_trunk_active_calls{trunk=\"alpha\"}"), 3) << daemon_->scrape();
  EXPECT_EQ(held.waitForExit(20s), 0) << held.output();
  expectNoActiveCalls();

  const auto after = trunkCalls("uac_hold.xml", 1, 1);
  EXPECT_EQ(after.status, 0) << after.output;
  EXPECT_EQ(metric("sbc_admission_total{result=\"admitted\",trunk=\"alpha\"}"), 4);
  EXPECT_EQ(metric("sbc_calls_total{direction=\"from_trunk\",result=\"answered\",trunk=\"alpha\"}"),
            4)
      << daemon_->scrape();
  EXPECT_EQ(core->waitForExit(10s), 0) << core->output();
  expectNoActiveCalls();
}

// Proves: reloads while calls are being set up and torn down (ten of them, the ceiling and
// rate changed each time, one of them a broken file that is refused) cost no call: every
// call of the run is admitted and completes, and the broken file is counted as a failure.
TEST_F(TrunkCalls, ReloadsUnderLoadLoseNoCall) {
  constexpr int kCalls = 60;
  startSbc(50);
  auto core = startCore("uas_answer.xml", kCalls);
  holdMs_ = 1000;  // the run lasts about 3 s, the reloads about 2
  ChildProcess trunk(trunkArgs("uac_hold.xml", kCalls, 20));
  int valid = 0;
  for (int i = 0; i < 10; ++i) {
    std::this_thread::sleep_for(150ms);
    if (i == 5) {
      dir_.write("sbc.cfg", sbcConfig(40, 30) + "\ntrunks = broken;\n");
    } else {
      dir_.write("sbc.cfg", sbcConfig(i % 2 == 0 ? 40 : 50, 30));
      ++valid;
    }
    daemon_->process().signal(SIGHUP);
    // One at a time: the next file is written once this one has been read.
    ASSERT_TRUE(daemon_->waitForMetric(
        i == 5 ? "sbc_config_reloads_total{result=\"failure\"}"
               : "sbc_config_reloads_total{result=\"success\"}",
        i == 5 ? 1 : valid))
        << daemon_->scrape();
  }
  EXPECT_EQ(trunk.waitForExit(40s), 0) << trunk.output();
  EXPECT_EQ(core->waitForExit(10s), 0) << core->output();
  EXPECT_EQ(metric("sbc_admission_total{result=\"admitted\",trunk=\"alpha\"}"), kCalls)
      << daemon_->scrape();
  EXPECT_EQ(metric("sbc_calls_total{direction=\"from_trunk\",result=\"answered\",trunk=\"alpha\"}"),
            kCalls)
      << daemon_->scrape();
  EXPECT_EQ(metric("sbc_config_reloads_total{result=\"success\"}"), valid);
  expectNoActiveCalls();
}

// Proves: refusals.over_limit_status and retry_after_s replace the 503 and its Retry-After
// for a call over the trunk's ceiling.
TEST_F(TrunkCalls, OverLimitStatusIsConfigurable) {
  extraConfig_ = "refusals = { over_limit_status = 486; retry_after_s = 0; };";
  startSbc(1);
  auto core = startCore("uas_answer.xml", 1);
  const std::string trace = dir_.file("trunk-messages.log");
  // The refused call fails the scenario: its status is not the point.
  runCommand(trunkArgs("uac_hold.xml", 2, 2, trace), std::chrono::seconds(40));
  EXPECT_EQ(metric("sbc_sip_responses_total{code=\"486\",realm=\"access\"}"), 1)
      << daemon_->scrape();
  EXPECT_EQ(metric("sbc_sip_responses_total{code=\"503\",realm=\"access\"}"), -1);
  std::ifstream in(trace);
  const std::string messages((std::istreambuf_iterator<char>(in)),
                             std::istreambuf_iterator<char>());
  EXPECT_NE(messages.find("SIP/2.0 486 Busy Here"), std::string::npos) << messages;
  EXPECT_EQ(messages.find("Retry-After"), std::string::npos) << messages;
  EXPECT_EQ(core->waitForExit(10s), 0) << core->output();
  expectNoActiveCalls();
}

// Proves: with refusals.unknown_source = "drop" a request from a source in no trunk's
// prefixes gets no response at all (the default answers 403), and is counted unanswered.
TEST_F(TrunkCalls, UnknownSourcesCanBeDroppedSilently) {
  extraConfig_ = R"(refusals = { unknown_source = "drop"; };)";
  startSbc(1);
  UdpSocket stranger("127.0.0.4", 0);
  ASSERT_TRUE(stranger.bound());
  const std::string via = "127.0.0.4:" + std::to_string(stranger.port());
  const std::string options =
      "OPTIONS sip:127.0.0.10:" + std::to_string(accessPort_) + " SIP/2.0\r\n"
      "Via: SIP/2.0/UDP " + via + ";branch=z9hG4bK-drop-1\r\n"
      "Max-Forwards: 70\r\nFrom: <sip:scan@127.0.0.4>;tag=1\r\n"
      "To: <sip:127.0.0.10>\r\nCall-ID: drop-test-1\r\nCSeq: 1 OPTIONS\r\n"
      "Content-Length: 0\r\n\r\n";
  stranger.sendTo(options, "127.0.0.10", accessPort_);
  EXPECT_FALSE(stranger.receive().has_value());
  EXPECT_TRUE(daemon_->waitForMetric(
      R"(sbc_sip_unanswered_total{realm="access",reason="unknown_source"})", 1))
      << daemon_->scrape();
  EXPECT_EQ(metric("sbc_sip_responses_total{code=\"403\",realm=\"access\"}"), -1);
}

// Proves: an answered call's media crosses the relay both ways from the SBC's access
// address (the core echoes it), the SDP the trunk sees names only the SBC, and media from
// a source outside the trunk's prefixes is dropped and counted.
TEST_F(TrunkCalls, MediaIsAnchoredOnTheRelay) { expectAnchoredMediaCall(); }

// Proves: while more than sip.overload_queue_kib waits in the SIP receive queues, new
// calls get 503 with Retry-After and are counted (refusals, responses, calls refused on
// the trunk), the calls taken complete, no slot leaks, and once the queues are down new
// calls are taken again. sbcd is stopped (SIGSTOP) while SIPp sends a burst of INVITEs, so
// the burst waits in its queue as it would behind a thread that cannot keep up.
TEST_F(TrunkCalls, OverloadRefusesNewCallsUntilTheQueueIsDown) {
  sipExtra_ = "overload_queue_kib = 8;";
  holdMs_ = 200;
  startSbc(100);
  constexpr int kBurst = 30;
  auto core = startCore("uas_answer.xml", kBurst + 2);
  const std::string trace = dir_.file("trunk_messages.log");
  auto args = trunkArgs("uac_hold.xml", kBurst, kBurst, trace);
  const auto rate = std::find(args.begin(), args.end(), "-r");
  ASSERT_NE(rate, args.end());
  *(rate + 1) = "1000";  // the whole burst within 30 ms

  std::optional<ChildProcess> trunk;
  // Every INVITE of the burst waiting (at least its payload's bytes).
  const long long queued = queueWhileStopped(daemon_->process().pid(), accessPort_,
                                             kBurst * 500, [&] { trunk.emplace(args); });
  ASSERT_GE(queued, kBurst * 500) << "the burst never reached sbcd's queue";

  const auto status = trunk->waitForExit(30s);
  EXPECT_EQ(status, 0) << trunk->output();  // each call answered, or refused with 503
  const double refused = metric("sbc_sip_overload_refusals_total{realm=\"access\"}");
  const double admitted = metric("sbc_admission_total{result=\"admitted\",trunk=\"alpha\"}");
  EXPECT_GE(refused, 1) << daemon_->scrape();
  EXPECT_EQ(refused + std::max(admitted, 0.0), kBurst) << daemon_->scrape();
  EXPECT_EQ(metric("sbc_sip_responses_total{code=\"503\",realm=\"access\"}"), refused);
  EXPECT_EQ(metric("sbc_calls_total{direction=\"from_trunk\",result=\"refused\",trunk=\"alpha\"}"),
            refused);
  std::ifstream messages(trace);
  const std::string sent((std::istreambuf_iterator<char>(messages)),
                         std::istreambuf_iterator<char>());
  EXPECT_NE(sent.find("SIP/2.0 503 Service Unavailable"), std::string::npos);
  EXPECT_NE(sent.find("Retry-After: 5"), std::string::npos);
  expectNoActiveCalls();
  EXPECT_TRUE(daemon_->waitForMetric("sbc_sip_overloaded", 0)) << daemon_->scrape();

  // The queue is down: new calls are taken again.
  const auto after = trunkCalls("uac_hold.xml", 2, 2);
  EXPECT_EQ(after.status, 0) << after.output;
  EXPECT_EQ(metric("sbc_admission_total{result=\"admitted\",trunk=\"alpha\"}"),
            std::max(admitted, 0.0) + 2);
  EXPECT_EQ(metric("sbc_sip_overload_refusals_total{realm=\"access\"}"), refused);
  expectNoActiveCalls();
}

}  // namespace
}  // namespace sbc::test
