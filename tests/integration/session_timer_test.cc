// RFC 4028 session timers through the B2BUA, with a 4 s interval and a Min-SE of 2 s: peers
// that refresh keep their call past the interval, the SBC refreshes the legs where it is
// the refresher (by re-INVITE where the peer takes no UPDATE), a peer that does not refresh
// gets its call ended, a refresh answered 481 ends the call, a too short interval is
// refused with 422, and a callee's 422 is answered by asking again with its Min-SE. SIPp plays the trunk
// (127.0.0.2) and the core (127.0.0.3).

#include <chrono>
#include <string>

#include <gtest/gtest.h>

#include "tests/integration/trunk_fixture.h"

namespace sbc::test {
namespace {

class SessionTimers : public TrunkFixture {
 protected:
  void SetUp() override {
    TrunkFixture::SetUp();
    sipExtra_ = "session_expires_s = 4; min_se_s = 2;";
  }

  double sessionTimer(const std::string& result) {
    return metric("sbc_session_timer_total{result=\"" + result + "\",trunk=\"alpha\"}");
  }
};

// Proves: a trunk that refreshes its own session (refresher=uac) by UPDATE and re-INVITE
// keeps its call up past the 4 s interval: the BYE at 6 s finds the call (200, not 481),
// and the relayed refreshes keep the core's leg alive too.
TEST_F(SessionTimers, PeerRefreshesKeepTheCallUp) {
  startSbc(10);
  callThrough("uas_session_refreshes.xml", "uac_session_refresh.xml");
  EXPECT_EQ(sessionTimer("expired"), -1);
  EXPECT_EQ(metric("sbc_sip_responses_total{code=\"481\",realm=\"access\"}"), -1);
  expectNoActiveCalls();
}

// Proves: where the SBC is the refresher (a trunk without timer support, a core that
// answers without Session-Expires) it sends UPDATEs at half the interval on both legs:
// each side's scenario requires them, and they are counted.
TEST_F(SessionTimers, SbcRefreshesBothLegs) {
  startSbc(10);
  callThrough("uas_session_refreshed_by_sbc.xml", "uac_refreshed_by_sbc.xml");
  EXPECT_GE(sessionTimer("refreshed"), 3);  // two on the trunk's leg, at least one on the core's
  EXPECT_EQ(sessionTimer("expired"), -1);
  expectNoActiveCalls();
}

// Proves: a trunk that asked to refresh (refresher=uac) and stays silent gets its call
// ended by the SBC before the interval is over (BYE to both sides), counted, slot freed.
TEST_F(SessionTimers, SilentPeerGetsTheCallEnded) {
  startSbc(10);
  const auto start = std::chrono::steady_clock::now();
  callThrough("uas_session_refreshes.xml", "uac_session_silent.xml");
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_LT(took, 6s);
  EXPECT_EQ(sessionTimer("expired"), 1);
  expectNoActiveCalls();
}

// Proves: a session refresh of the SBC's own answered 481 (the peer lost the dialog) ends
// the call: BYE to both sides, counted, slot freed.
TEST_F(SessionTimers, RefreshAnswered481EndsTheCall) {
  startSbc(10);
  callThrough("uas_session_refresh_481.xml", "uac_wait_sbc_bye.xml");
  EXPECT_EQ(sessionTimer("refresh_failed"), 1);
  EXPECT_EQ(metric("sbc_calls_total{direction=\"from_trunk\",result=\"aborted\",trunk=\"alpha\"}"),
            1);
  expectNoActiveCalls();
}

// Proves: a peer that answers the SBC's UPDATE refresh with 501 is refreshed by re-INVITE
// from then on (RFC 4028 lets the refresher use either) instead of not at all: its scenario
// requires a re-INVITE offering the session as it stood (same o= line and port, the SBC's
// core address) and fails on a second UPDATE; the call goes on to the caller's BYE.
TEST_F(SessionTimers, PeerRefusingUpdateIsRefreshedByReinvite) {
  startSbc(10);
  callThrough("uas_session_update_501.xml", "uac_refreshed_by_sbc.xml");
  EXPECT_EQ(sessionTimer("update_refused"), 1);
  EXPECT_EQ(sessionTimer("unsupported"), -1);
  // Two UPDATEs on the trunk's leg, at least one re-INVITE on the core's.
  EXPECT_GE(sessionTimer("refreshed"), 3);
  EXPECT_EQ(metric("sbc_calls_total{direction=\"from_trunk\",result=\"answered\",trunk=\"alpha\"}"),
            1);
  expectNoActiveCalls();
}

// Proves: a peer whose Allow lacks UPDATE is refreshed by re-INVITE from the first refresh
// on (its scenario fails on any UPDATE), the offer being the session unchanged; the call
// goes on.
TEST_F(SessionTimers, PeerWithoutUpdateInAllowIsRefreshedByReinvite) {
  startSbc(10);
  callThrough("uas_session_allow_no_update.xml", "uac_refreshed_by_sbc.xml");
  EXPECT_EQ(sessionTimer("update_refused"), -1);
  EXPECT_GE(sessionTimer("refreshed"), 3);
  EXPECT_EQ(metric("sbc_calls_total{direction=\"from_trunk\",result=\"answered\",trunk=\"alpha\"}"),
            1);
  expectNoActiveCalls();
}

// Proves: a callee answering the SBC's INVITE 422 with Min-SE 6 is asked again on the same
// dialog (same Call-ID and From, next CSeq) with Session-Expires and Min-SE 6 (RFC 4028
// section 6); the caller never sees the 422 (its scenario fails on anything but 200 and
// still finds its own 4 s interval granted) and the call goes on.
TEST_F(SessionTimers, CalleeTooSmallIsAskedAgainWithItsMinSe) {
  startSbc(10);
  callThrough("uas_session_422.xml", "uac_refreshed_by_sbc.xml");
  EXPECT_EQ(sessionTimer("interval_raised"), 1);
  EXPECT_EQ(metric("sbc_sip_responses_total{code=\"422\",realm=\"access\"}"), -1);
  EXPECT_EQ(metric("sbc_calls_total{direction=\"from_trunk\",result=\"answered\",trunk=\"alpha\"}"),
            1);
  expectNoActiveCalls();
}

// Proves: a 422 that comes after the callee's reliable 183 was PRACKed is retried too, as a
// new transaction outside the early dialog the 422 ended (same Call-ID and From, no To
// tag, a CSeq above the PRACK's, Session-Expires and Min-SE 6); the caller, which had the
// 183 reliably and PRACKed it, gets the answer and never the 422. Before: the caller got
// 502 and the call failed.
TEST_F(SessionTimers, CalleeTooSmallAfterReliableProvisionalIsAskedAgain) {
  startSbc(10);
  callThrough("uas_session_422_after_prack.xml", "uac_prack.xml");
  EXPECT_EQ(sessionTimer("interval_raised"), 1);
  EXPECT_EQ(metric("sbc_sip_responses_total{code=\"502\",realm=\"access\"}"), -1);
  EXPECT_EQ(metric("sbc_calls_total{direction=\"from_trunk\",result=\"answered\",trunk=\"alpha\"}"),
            1);
  expectNoActiveCalls();
}

// Proves: a second 422 from the callee is not retried again: the caller gets 502 (not the
// 422), the call counts as failed and its slot is freed.
TEST_F(SessionTimers, SecondTooSmallFailsTheCall) {
  startSbc(10);
  callThrough("uas_session_422_twice.xml", "uac_502.xml");
  EXPECT_EQ(sessionTimer("interval_raised"), 1);
  EXPECT_EQ(sessionTimer("interval_refused"), 1);
  EXPECT_EQ(metric("sbc_calls_total{direction=\"from_trunk\",result=\"failed\",trunk=\"alpha\"}"),
            1);
  expectNoActiveCalls();
}

// Proves: a callee's Min-SE above max_session_expires_s is not asked for: the caller gets
// 502 at once (a retry would meet a core that is gone: 503), slot freed.
TEST_F(SessionTimers, TooSmallAboveTheMaximumFailsTheCall) {
  sipExtra_ += " max_session_expires_s = 10;";
  startSbc(10);
  callThrough("uas_session_422_too_long.xml", "uac_502.xml");
  EXPECT_EQ(sessionTimer("interval_raised"), -1);
  EXPECT_EQ(sessionTimer("interval_refused"), 1);
  expectNoActiveCalls();
}

// Proves: an INVITE asking for a Session-Expires below the SBC's Min-SE is answered 422
// with Min-SE before admission (no slot, nothing sent to the core: nothing listens there).
TEST_F(SessionTimers, TooShortIntervalGets422) {
  startSbc(10);
  const auto trunk = trunkCalls("uac_session_too_short.xml", 1, 1);
  EXPECT_EQ(trunk.status, 0) << trunk.output;
  EXPECT_EQ(metric("sbc_sip_responses_total{code=\"422\",realm=\"access\"}"), 1);
  EXPECT_EQ(metric("sbc_admission_total{result=\"admitted\",trunk=\"alpha\"}"), 0);
  expectNoActiveCalls();
}

}  // namespace
}  // namespace sbc::test
