// In-dialog requests the B2BUA relays inside an established call, both ways: OPTIONS,
// NOTIFY and MESSAGE, and which of their bodies cross (sip.body_types). SIPp plays the
// trunk (127.0.0.2) and the core (127.0.0.3); each side's scenario checks what arrives (the
// method, what of it must cross, and nothing of the other side: its addresses, host names,
// tags, User-Agent, a header not allow-listed, an SDP body outside an offer/answer).

#include <chrono>
#include <string>

#include <gtest/gtest.h>

#include "tests/integration/trunk_fixture.h"
#include "tests/support/test_env.h"

namespace sbc::test {
namespace {

class InDialogRequests : public TrunkFixture {
 protected:
  // The requests of `method` sbcd received in `realm` (a series not there counts 0).
  double requestsCounted(const std::string& method, const std::string& realm) {
    return metricValue(daemon_->scrape(), "sbc_sip_requests_total{method=\"" + method +
                                              "\",realm=\"" + realm + "\"}")
        .value_or(0);
  }
  void expectRequestsCounted(const std::string& method, double access, double core) {
    EXPECT_EQ(requestsCounted(method, "access"), access) << method;
    EXPECT_EQ(requestsCounted(method, "core"), core) << method;
  }

  // uac_reinvite_cancel.xml as the trunk against `coreScenario`, the trunk's resume
  // re-INVITE sent `resumeAfterMs` after its cancelled one has its 487.
  void cancelReinvite(const std::string& coreScenario, int resumeAfterMs) {
    auto core = startCore(coreScenario, 1);
    holdMs_ = resumeAfterMs;  // the scenario's bare <pause/>
    const auto trunk = runCommand(trunkArgs("uac_reinvite_cancel.xml", 1, 1),
                                  std::chrono::seconds(40));
    EXPECT_EQ(trunk.status, 0) << trunk.output;
    EXPECT_EQ(core->waitForExit(10s), 0) << core->output();
  }
};

// Proves: an OPTIONS inside a call is relayed trunk -> core and core -> trunk, its 200
// relayed back each time, and the other leg's Call-ID, tags, Contact, Via, User-Agent and
// the SDP capabilities in the 200 (c=/o= of the other side) never cross; each OPTIONS is
// counted in sbc_sip_requests_total in the realm it came from.
TEST_F(InDialogRequests, OptionsBothWays) {
  startSbc(10);
  callThrough("uas_options.xml", "uac_options.xml");
  expectNoActiveCalls();
  expectRequestsCounted("OPTIONS", 1, 1);
  expectRequestsCounted("BYE", 1, 0);
}

// Proves: a NOTIFY inside a call is relayed core -> trunk (Event: refer, Subscription-State,
// a message/sipfrag body) and trunk -> core (Event: dialog, a dialog-info body), Event and
// Subscription-State crossing as written though they are not on the allow-list, nothing of
// the other side crossing (the sipfrag's quoted Contact and Server are cut: only its status
// line crosses); counted per realm.
TEST_F(InDialogRequests, NotifyBothWays) {
  // The trunk's dialog-info body crosses only because it is listed (it is not by default).
  sipExtra_ = R"(body_types = [ "application/dialog-info+xml" ];)";
  startSbc(10);
  callThrough("uas_notify.xml", "uac_notify.xml");
  expectNoActiveCalls();
  expectRequestsCounted("NOTIFY", 1, 1);
}

// Proves: sip.body_types (its default here) decides which bodies cross: the trunk's DTMF
// INFO reaches the core intact; the core's 200 to it carries an application/pidf+xml body
// naming the core, which the trunk gets without (no Content-Type, Content-Length 0); the
// trunk's pidf MESSAGE and the core's dialog-info NOTIFY are each answered 415 with Accept
// listing the allowed types, by the SBC, and never reach the other side (each scenario
// fails on an unexpected request). Each is counted. Before: all three bodies crossed.
TEST_F(InDialogRequests, BodiesOffTheListDoNotCross) {
  startSbc(10);
  callThrough("uas_bodies.xml", "uac_bodies.xml");
  const auto refused = [&](const char* realm, const char* message) {
    return metric(std::string("sbc_sip_bodies_refused_total{message=\"") + message +
                  "\",realm=\"" + realm + "\",reason=\"content_type\"}");
  };
  EXPECT_EQ(refused("access", "request"), 1) << daemon_->scrape();
  EXPECT_EQ(refused("core", "request"), 1);
  EXPECT_EQ(refused("core", "response"), 1);
  EXPECT_EQ(metric("sbc_sip_responses_total{code=\"415\",realm=\"access\"}"), 1);
  EXPECT_EQ(metric("sbc_sip_responses_total{code=\"415\",realm=\"core\"}"), 1);
  expectNoActiveCalls();
}

// Proves: a MESSAGE inside a call is relayed trunk -> core and core -> trunk with its
// text/plain body and Content-Type, its 200 relayed back, nothing of the other side
// crossing; counted per realm.
TEST_F(InDialogRequests, MessageBothWays) {
  startSbc(10);
  callThrough("uas_message.xml", "uac_message.xml");
  expectNoActiveCalls();
  expectRequestsCounted("MESSAGE", 1, 1);
}

// Proves: a CANCEL of a re-INVITE the core has not answered yet is relayed as a CANCEL of
// the core leg's re-INVITE (the core's scenario waits for it, answers 487 and waits for its
// ACK); the trunk's CANCEL gets 200 and its re-INVITE 487; the call stays up: a second
// re-INVITE is relayed and answered (a leftover exchange would give 491), the BYE ends the
// call and the slot is freed. The CANCEL is counted, the 487 too.
TEST_F(InDialogRequests, CancelledReinviteLeavesTheCallUp) {
  startSbc(10);
  cancelReinvite("uas_reinvite_cancel.xml", 300);
  expectNoActiveCalls();
  expectRequestsCounted("CANCEL", 1, 0);
  EXPECT_EQ(metric("sbc_sip_responses_total{code=\"487\",realm=\"access\"}"), 1)
      << daemon_->scrape();
  EXPECT_TRUE(daemon_->waitForMetric(
      "sbc_calls_total{direction=\"from_trunk\",result=\"answered\",trunk=\"alpha\"}", 1))
      << daemon_->scrape();
}

// Proves: when the core answers a cancelled re-INVITE 200 anyway (its answer crossed the
// CANCEL), the SBC acknowledges that 200 (the core's scenario waits for the ACK), the trunk
// still gets 487, and the call stays consistent: a second re-INVITE is relayed and
// answered, the BYE ends the call, the slot is freed.
TEST_F(InDialogRequests, ReinviteAnsweredAfterItsCancelIsAcknowledged) {
  startSbc(10);
  cancelReinvite("uas_reinvite_cancel_race.xml", 300);
  expectNoActiveCalls();
  EXPECT_TRUE(daemon_->waitForMetric(
      "sbc_calls_total{direction=\"from_trunk\",result=\"answered\",trunk=\"alpha\"}", 1))
      << daemon_->scrape();
}

// Proves: the same the other way: a CANCEL from the core of its own pending re-INVITE
// reaches the trunk as a CANCEL of the trunk leg's re-INVITE (the trunk's scenario waits
// for it and answers 487), the core gets 200 and 487, and the call goes on to a BYE with
// the slot freed; the CANCEL is counted in the core realm.
TEST_F(InDialogRequests, CancelledReinviteFromTheCore) {
  startSbc(10);
  callThrough("uas_cancels_reinvite.xml", "uac_core_cancels_reinvite.xml");
  expectNoActiveCalls();
  expectRequestsCounted("CANCEL", 0, 1);
  EXPECT_EQ(metric("sbc_sip_responses_total{code=\"487\",realm=\"core\"}"), 1)
      << daemon_->scrape();
}

// Proves: when the core never gives a final response to a re-INVITE the SBC CANCELled, the
// SBC gives it up 64*T1 (2 s here) after the CANCEL (RFC 3261 9.1): a resume re-INVITE
// sent 2.6 s after the 487 is relayed and answered 200, where it got 491 (the abandoned
// exchange held the call's one offer/answer until nta's Timer C, minutes later).
TEST_F(InDialogRequests, CancelledReinviteNeverAnsweredIsGivenUp) {
  startSbc(10);
  cancelReinvite("uas_reinvite_cancel_silent.xml", 2600);
  expectNoActiveCalls();
  EXPECT_EQ(metric("sbc_sip_responses_total{code=\"491\",realm=\"access\"}"), -1)
      << daemon_->scrape();  // no such series: never refused
}

}  // namespace
}  // namespace sbc::test
