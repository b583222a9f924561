// What the SDP of a call may do beyond one audio stream, with SIPp as trunk and core: a
// re-INVITE from the core that adds a video stream, a switch to T.38 fax, rtcp-mux kept
// where both sides offer it, a late offer (SDP in the 200 and the ACK), a re-INVITE whose
// 200 carries SDP the SBC cannot use; and a call whose media stays silent ended by the media
// timeout. Every test ends by checking that no call slot leaked.

#include <string>

#include <gtest/gtest.h>

#include "tests/integration/trunk_fixture.h"
#include "tests/support/test_env.h"

namespace sbc::test {
namespace {

using MediaNegotiation = TrunkFixture;

// Proves: a re-INVITE from the core (after the answer) that adds a video m= line reaches the
// trunk with both streams anchored on the SBC's access address (the new stream with relay
// ports of its own), and the trunk's answer reaches the core anchored on the SBC's core
// address; the call then ends with the core's BYE and every relay stream is closed.
TEST_F(MediaNegotiation, CoreReInviteAddsAVideoStream) {
  startSbc(10);
  callThrough("uas_reinvite_video.xml", "uac_wait_reinvite_video.xml");
  expectNoActiveCalls();
  EXPECT_TRUE(daemon_->waitForMetric("sbc_media_flows", 0)) << daemon_->scrape();
}

// Proves: a re-INVITE from the core switching the call to T.38 fax (m=image udptl t38) is
// anchored like any stream, with the T.38 attributes passed through untouched both ways.
TEST_F(MediaNegotiation, CoreSwitchesTheCallToT38) {
  startSbc(10);
  callThrough("uas_reinvite_t38.xml", "uac_wait_reinvite_t38.xml");
  expectNoActiveCalls();
}

// Proves: when the trunk offers rtcp-mux and the core accepts it, the offer to the core and
// the answer to the trunk both keep a=rtcp-mux on the SBC's addresses.
TEST_F(MediaNegotiation, RtcpMuxIsKeptWhereBothSidesOfferIt) {
  startSbc(10);
  callThrough("uas_rtcp_mux.xml", "uac_rtcp_mux.xml");
  expectNoActiveCalls();
}

// Proves: a late offer (INVITE without SDP) is relayed without SDP; the core's offer in its
// 200 reaches the trunk anchored on the SBC's access address, and the trunk's answer in its
// ACK reaches the core anchored on the SBC's core address.
TEST_F(MediaNegotiation, LateOfferIsAnchoredBothWays) {
  startSbc(10);
  callThrough("uas_late_offer.xml", "uac_late_offer.xml");
  expectNoActiveCalls();
  EXPECT_TRUE(daemon_->waitForMetric("sbc_media_flows", 0)) << daemon_->scrape();
}

// A re-INVITE whose 200 carries SDP the SBC cannot anchor: the answerer has taken up the
// new session, which cannot be relayed, and the offerer's cannot be kept on the answerer's
// side without a new offer. The SBC acknowledges the 200 (RFC 3261 13.2.2.4), the offerer
// hears 502 and the call ends with BYE on both legs, counted as aborted.
class UnusableReinviteAnswer : public TrunkFixture {
 protected:
  // `offererRealm` sent the re-INVITE and gets the 502.
  void expectEndedWith502(const char* offererRealm) {
    expectNoActiveCalls();
    EXPECT_EQ(metric(std::string("sbc_sip_responses_total{code=\"502\",realm=\"") +
                     offererRealm + "\"}"),
              1)
        << daemon_->scrape();
    EXPECT_TRUE(daemon_->waitForMetric(
        R"(sbc_calls_total{direction="from_trunk",result="aborted",trunk="alpha"})", 1))
        << daemon_->scrape();
    EXPECT_TRUE(daemon_->waitForMetric("sbc_media_flows", 0)) << daemon_->scrape();
  }
};

// Proves: the core's 200 to the trunk's re-INVITE with SDP that does not parse is ACKed at
// once (the core's scenario waits for the ACK before its first 200 retransmission, and a
// BYE in its place fails it), the trunk gets 502, then both legs get BYE; slot and relay
// streams freed. Fails without the ACK (the core sees the BYE first).
TEST_F(UnusableReinviteAnswer, FromTheCoreToTheTrunksReinvite) {
  startSbc(10);
  callThrough("uas_reinvite_answer_unusable.xml", "uac_reinvite_gets_502.xml");
  expectEndedWith502("access");
}

// Proves: the same the other way: the trunk's 200 to the core's re-INVITE whose SDP has no
// m= line for the offer's one is ACKed at once, the core gets 502, both legs get BYE; slot
// and relay streams freed. Fails without the ACK (the trunk sees the BYE first).
TEST_F(UnusableReinviteAnswer, FromTheTrunkToTheCoresReinvite) {
  startSbc(10);
  callThrough("uas_reinvite_gets_502.xml", "uac_answers_reinvite_unusable.xml");
  expectEndedWith502("core");
}

// Proves: an answered call whose media never flows is ended by the SBC after
// media.timeout_s with a BYE to both sides (both SIPp scenarios wait for it), counted as
// media_timeout, and its slot is freed.
TEST_F(MediaNegotiation, SilentMediaEndsTheCall) {
  extraConfig_ = "media = { timeout_s = 1; };";
  startSbc(10);
  callThrough("uas_answer.xml", "uac_wait_bye.xml");
  expectNoActiveCalls();
  EXPECT_TRUE(daemon_->waitForMetric(
      R"(sbc_calls_total{direction="from_trunk",result="media_timeout",trunk="alpha"})", 1))
      << daemon_->scrape();
}

}  // namespace
}  // namespace sbc::test
