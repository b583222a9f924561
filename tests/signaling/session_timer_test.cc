// RFC 4028 negotiation of one call's two sessions: who refreshes each leg and what the SBC
// writes in Session-Expires ("uac" names the sender of the request the header is in), on
// requests parsed by Sofia-SIP as nta parses them.

#include "signaling/session_timer.h"

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include <gtest/gtest.h>

#include <sofia-sip/msg.h>

#include "tests/signaling/sip_message.h"

namespace sbc::signaling {
namespace {

using dataplane::Realm;

using testing::Message;
using testing::parse;

Message invite(const std::string& extra) {
  return parse(
      "INVITE sip:100@sbc SIP/2.0\r\n"
      "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n"
      "From: <sip:200@pbx.example>;tag=1\r\n"
      "To: <sip:100@sbc>\r\n"
      "Call-ID: abc@pbx.example\r\n"
      "CSeq: 1 INVITE\r\n" +
      extra + "Content-Length: 0\r\n\r\n");
}

Message ok(const std::string& extra) {
  return parse(
      "SIP/2.0 200 OK\r\n"
      "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n"
      "From: <sip:200@pbx.example>;tag=1\r\n"
      "To: <sip:100@sbc>;tag=2\r\n"
      "Call-ID: abc@pbx.example\r\n"
      "CSeq: 1 INVITE\r\n" +
      extra + "Content-Length: 0\r\n\r\n");
}

const sip_t* sipOf(const Message& message) { return sip_object(message.get()); }

class SessionTimerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    su_init();
    root_ = su_root_create(nullptr);
    ASSERT_NE(root_, nullptr);
  }
  void TearDown() override {
    timers_.reset();
    su_root_destroy(root_);
    su_deinit();
  }

  // A call from the trunk (access) to the core, the SBC asking for `expires` s.
  SessionTimers& make(std::uint32_t expires = 1800, std::uint32_t minSe = 90,
                      std::uint32_t maxExpires = 7200) {
    timers_ = std::make_unique<SessionTimers>(
        root_, SessionTimerSettings{expires, minSe, maxExpires}, Realm::access,
        [this](Realm leg) { refreshed_ = leg; }, [this](Realm leg) { expired_ = leg; });
    return *timers_;
  }

  su_root_t* root_ = nullptr;
  std::unique_ptr<SessionTimers> timers_;
  std::optional<Realm> refreshed_;
  std::optional<Realm> expired_;
};

// Proves: a Session-Expires below the SBC's Min-SE is refused with that Min-SE, one at or
// above it (or none, or timers off) is not.
TEST_F(SessionTimerTest, TooSmallIntervalIsRefusedWithTheMinSe) {
  const SessionTimerSettings on{1800, 90, 7200};
  EXPECT_EQ(sessionIntervalTooSmall(on, sipOf(invite("Session-Expires: 89\r\n"))), 90u);
  EXPECT_EQ(sessionIntervalTooSmall(on, sipOf(invite("Session-Expires: 90\r\n"))), 0u);
  EXPECT_EQ(sessionIntervalTooSmall(on, sipOf(invite(""))), 0u);
  EXPECT_EQ(sessionIntervalTooSmall({0, 90, 7200}, sipOf(invite("Session-Expires: 10\r\n"))), 0u);
}

// Proves: a caller that supports timers and leaves the choice refreshes itself with its
// own interval (2xx: refresher=uac, Require: timer).
TEST_F(SessionTimerTest, CallerSupportingTimersRefreshesItself) {
  auto& timers = make();
  timers.callerOffered(sipOf(invite("Supported: timer\r\nSession-Expires: 600\r\n")));
  timers.callerAnswered();
  EXPECT_EQ(timers.sessionExpires(Realm::access, false), "600;refresher=uac");
  EXPECT_TRUE(timers.callerRefreshes());
}

// Proves: a caller without timer support gets the SBC's interval, refreshed by the SBC
// (2xx: refresher=uas, no Require).
TEST_F(SessionTimerTest, CallerWithoutTimersIsRefreshedByTheSbc) {
  auto& timers = make();
  timers.callerOffered(sipOf(invite("")));
  timers.callerAnswered();
  EXPECT_EQ(timers.sessionExpires(Realm::access, false), "1800;refresher=uas");
  EXPECT_EQ(timers.sessionExpires(Realm::access, true), "1800;refresher=uac");
  EXPECT_FALSE(timers.callerRefreshes());
}

// Proves: a caller naming the refresher is obeyed.
TEST_F(SessionTimerTest, CallerNamingTheRefresherIsObeyed) {
  auto& timers = make();
  timers.callerOffered(sipOf(invite("Supported: timer\r\nSession-Expires: 300;refresher=uas\r\n")));
  timers.callerAnswered();
  EXPECT_EQ(timers.sessionExpires(Realm::access, false), "300;refresher=uas");
  EXPECT_FALSE(timers.callerRefreshes());
}

// Proves: the callee's 2xx sets the callee leg: refresher=uas means the callee refreshes,
// none means the SBC does; an interval below our Min-SE is raised to it; a 2xx without
// Session-Expires leaves the SBC refreshing with its own interval.
TEST_F(SessionTimerTest, CalleeAnswerSetsItsLeg) {
  auto& timers = make();
  EXPECT_EQ(timers.calleeSessionExpires(), "1800");
  EXPECT_EQ(timers.minSe(), "90");
  timers.calleeAnswered(sipOf(ok("Session-Expires: 300;refresher=uas\r\n")));
  EXPECT_EQ(timers.sessionExpires(Realm::core, true), "300;refresher=uas");
  timers.calleeAnswered(sipOf(ok("Session-Expires: 30\r\n")));
  EXPECT_EQ(timers.sessionExpires(Realm::core, true), "90;refresher=uac");
  timers.calleeAnswered(sipOf(ok("")));
  EXPECT_EQ(timers.sessionExpires(Realm::core, true), "1800;refresher=uac");
}

Message tooSmall(const std::string& minSe) {
  return parse(
      "SIP/2.0 422 Session Interval Too Small\r\n"
      "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n"
      "From: <sip:200@pbx.example>;tag=1\r\n"
      "To: <sip:100@sbc>;tag=2\r\n"
      "Call-ID: abc@pbx.example\r\n"
      "CSeq: 1 INVITE\r\n" +
      (minSe.empty() ? std::string() : "Min-SE: " + minSe + "\r\n") +
      "Content-Length: 0\r\n\r\n");
}

// Proves: a callee's 422 raises the interval (and Min-SE) of the next INVITE to its
// Min-SE once (RFC 4028 section 6); a second 422, one without Min-SE, one not above what
// was asked or above the configured maximum is not retried. A callee then answering
// without Session-Expires is refreshed at the raised interval.
TEST_F(SessionTimerTest, CalleeTooSmallRaisesTheIntervalOnce) {
  auto& timers = make(1800, 90, 3600);
  EXPECT_FALSE(timers.raiseCalleeInterval(sipOf(tooSmall(""))));
  EXPECT_FALSE(timers.raiseCalleeInterval(sipOf(tooSmall("1800"))));
  EXPECT_FALSE(timers.raiseCalleeInterval(sipOf(tooSmall("3601"))));
  EXPECT_TRUE(timers.raiseCalleeInterval(sipOf(tooSmall("3600"))));
  EXPECT_EQ(timers.calleeSessionExpires(), "3600");
  EXPECT_EQ(timers.minSe(), "3600");
  EXPECT_FALSE(timers.raiseCalleeInterval(sipOf(tooSmall("3600"))));
  timers.calleeAnswered(sipOf(ok("")));
  EXPECT_EQ(timers.sessionExpires(Realm::core, true), "3600;refresher=uac");
}

// Proves: a refresh request from a peer can hand the refresher role to the SBC
// (refresher=uas in the peer's request), and a too short one is ignored.
TEST_F(SessionTimerTest, PeerRequestCanMoveTheRefresher) {
  auto& timers = make();
  timers.callerOffered(sipOf(invite("Supported: timer\r\nSession-Expires: 600\r\n")));
  timers.callerAnswered();
  timers.peerRequested(Realm::access, sipOf(invite("Session-Expires: 10;refresher=uas\r\n")));
  EXPECT_EQ(timers.sessionExpires(Realm::access, false), "600;refresher=uac");
  timers.peerRequested(Realm::access, sipOf(invite("Session-Expires: 900;refresher=uas\r\n")));
  EXPECT_EQ(timers.sessionExpires(Realm::access, false), "900;refresher=uas");
}

// Proves: with timers off nothing is written and nothing is armed.
TEST_F(SessionTimerTest, OffWritesNothing) {
  auto& timers = make(0);
  timers.callerOffered(sipOf(invite("Supported: timer\r\nSession-Expires: 600\r\n")));
  timers.callerAnswered();
  timers.calleeAnswered(sipOf(ok("Session-Expires: 600\r\n")));
  EXPECT_EQ(timers.calleeSessionExpires(), "");
  EXPECT_EQ(timers.sessionExpires(Realm::access, false), "");
  EXPECT_EQ(timers.sessionExpires(Realm::core, true), "");
  EXPECT_FALSE(timers.callerRefreshes());
}

// Proves: the timers run on the su_root: a peer that refreshes reports expiry at the
// interval less a third, the SBC's own leg asks for a refresh at half the interval, and
// stop() silences both.
TEST_F(SessionTimerTest, TimersFireOnTheRoot) {
  auto& timers = make(1, 1);
  timers.callerOffered(sipOf(invite("Supported: timer\r\nSession-Expires: 1;refresher=uac\r\n")));
  timers.callerAnswered();     // the caller refreshes: expiry after ~667 ms
  timers.calleeAnswered(sipOf(ok("")));  // the SBC refreshes the core: after ~500 ms
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(3);
  while ((!refreshed_ || !expired_) && std::chrono::steady_clock::now() < deadline) {
    su_root_step(root_, 50);
  }
  ASSERT_TRUE(refreshed_.has_value());
  ASSERT_TRUE(expired_.has_value());
  EXPECT_EQ(*refreshed_, Realm::core);
  EXPECT_EQ(*expired_, Realm::access);

  refreshed_.reset();
  timers.refreshed(Realm::core, nullptr);
  timers.stop();
  const auto quiet = std::chrono::steady_clock::now() + std::chrono::milliseconds(800);
  while (std::chrono::steady_clock::now() < quiet) su_root_step(root_, 50);
  EXPECT_FALSE(refreshed_.has_value());
}

}  // namespace
}  // namespace sbc::signaling
