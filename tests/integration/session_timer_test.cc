// RFC 4028 session timers through the B2BUA, with a 4 s interval and a Min-SE of 2 s: peers
// that refresh keep their call past the interval, the SBC refreshes the legs where it is
// the refresher, a peer that does not refresh gets its call ended, a refresh answered 481
// ends the call, and a too short interval is refused with 422. SIPp plays the trunk
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

// Proves: a peer that answers the SBC's UPDATE refresh with 501 is not asked again (its
// scenario fails on a second UPDATE) and keeps its call; the other leg is still refreshed.
TEST_F(SessionTimers, PeerWithoutUpdateIsNotRefreshedAgain) {
  startSbc(10);
  callThrough("uas_session_update_501.xml", "uac_refreshed_by_sbc.xml");
  EXPECT_EQ(sessionTimer("unsupported"), 1);
  EXPECT_EQ(sessionTimer("refreshed"), 2);  // the trunk's leg, at about 2 s and 4 s
  EXPECT_EQ(metric("sbc_calls_total{direction=\"from_trunk\",result=\"answered\",trunk=\"alpha\"}"),
            1);
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
