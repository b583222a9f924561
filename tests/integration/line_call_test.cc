// Calls from and to subscriber lines (issue 6), against SIPp: alice's terminal registers
// through sbcd (line_fixture.h), then calls the core or is called by it.

#include <memory>
#include <optional>
#include <regex>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "tests/integration/line_fixture.h"

namespace sbc::test {
namespace {

// The c= address and first m=audio port of the first INVITE in `messages`.
std::optional<AnsweredMedia> offeredMedia(const std::string& messages) {
  static const std::regex offer(R"(INVITE [^\r\n]*\r?\n(?:.*\r?\n)*?c=IN IP4 ([0-9.]+)\r?\n(?:.*\r?\n)*?m=audio (\d+))");
  std::smatch media;
  if (!std::regex_search(messages, media, offer)) return std::nullopt;
  return AnsweredMedia{media[1].str(), std::stoi(media[2].str())};
}

// A subscriber line's call through the SBC with both sides' media known: the terminal
// (line_call.xml from 127.0.0.4, hung up after `holdMs`) calls a core SIPp playing
// `coreScenario` for `coreCalls` calls, whose media socket is `coreMedia`. `access` is
// the SBC's media address and port in the terminal's 200, `coreSide` in the core's INVITE.
struct LineCallWithMedia {
  std::unique_ptr<ChildProcess> core;
  std::unique_ptr<ChildProcess> line;
  std::string lineMessages;
  std::optional<AnsweredMedia> access;
  std::optional<AnsweredMedia> coreSide;
};

// Sends `tag` from `terminal` to the SBC's access media port and the core's answer back,
// up to 10 times, until each has crossed once; true when both did.
bool mediaCrossesBothWays(const UdpSocket& terminal, const UdpSocket& coreMedia,
                          const LineCallWithMedia& call, const std::string& tag) {
  bool there = false, back = false;
  for (int i = 0; i < 10 && !(there && back); ++i) {
    terminal.sendTo(tag, "127.0.0.10", call.access->port);
    while (const auto got = coreMedia.receive()) there = there || got->first == tag;
    coreMedia.sendTo("core-" + tag, "127.0.0.11", call.coreSide->port);
    while (const auto got = terminal.receive()) back = back || got->first == "core-" + tag;
  }
  return there && back;
}

class LineCall : public LineFixture {
 protected:
  LineCallWithMedia callWithMedia(const std::string& coreScenario, int coreCalls, int holdMs,
                                  const UdpSocket& coreMedia, const std::string& name) {
    LineCallWithMedia call;
    const std::string coreTrace = dir_.file("core-" + name + ".trace");
    const std::string lineTrace = dir_.file("line-" + name + ".trace");
    call.core = std::make_unique<ChildProcess>(std::vector<std::string>{
        "/usr/bin/sipp", "-sf", kSippDir + "/" + coreScenario, "-i", "127.0.0.3", "-bind_local",
        "-p", std::to_string(corePort_), "-m", std::to_string(coreCalls), "-key", "rtpport",
        std::to_string(coreMedia.port()), "-trace_msg", "-message_file", coreTrace,
        "-nostdin"});
    for (int i = 0; i < 500 && !portInUse(corePort_, "127.0.0.3", "udp"); ++i) {
      std::this_thread::sleep_for(20ms);
    }
    call.line = std::make_unique<ChildProcess>(std::vector<std::string>{
        "/usr/bin/sipp", "-sf", kSippDir + "/line_call.xml", "-i", "127.0.0.4", "-bind_local",
        "-m", "1", "-d", std::to_string(holdMs), "-s", "bob", "-au", "alice", "-ap", "secret",
        "-timeout", "20s", "-timeout_error", "-nostdin", "-trace_msg", "-message_file",
        lineTrace, "127.0.0.10:" + std::to_string(accessPort_)});
    call.access = waitForAnsweredMedia(lineTrace, call.lineMessages);
    for (int i = 0; i < 50 && call.access && !call.coreSide; ++i) {
      call.coreSide = offeredMedia(receivedMessages(coreTrace));
      if (!call.coreSide) std::this_thread::sleep_for(50ms);
    }
    return call;
  }
};

// Proves: a registered terminal's INVITE reaches the core with its Request-URI and From
// kept (the core's scenario checks them); the core's 401 passes to the terminal, whose
// authenticated INVITE verifies at the core (RFC 2617 over the INVITE as the core gets
// it); the call is answered and ended; nothing of the terminal (its address, its private
// Contact and SDP address, its User-Agent) reaches the core.
TEST_F(LineCall, FromALineWithTheCoresChallengeEndToEnd) {
  startSbc(5);
  registerAlice();
  const std::string coreTrace = dir_.file("core-call.trace");
  const auto core = startUas("core_uas_line_challenge.xml", "127.0.0.3", corePort_, 2, "udp",
                             coreTrace);
  const auto line = lineCalls("line_call.xml", 1, 1);
  EXPECT_EQ(line.status, 0) << line.output;
  EXPECT_EQ(core->waitForExit(10s), 0) << core->output();
  const std::string atCore = receivedMessages(coreTrace);
  ASSERT_NE(atCore.find("Authorization: Digest"), std::string::npos) << atCore;
  for (const char* leak : {"127.0.0.4", "127.99.0.20", "TerminalVendor"}) {
    EXPECT_EQ(atCore.find(leak), std::string::npos) << leak << " reached the core:\n" << atCore;
  }
  EXPECT_EQ(metric(lineCallsSeries("from_line", "answered")), 1);
  EXPECT_EQ(metric(lineCallsSeries("from_line", "failed")), 1);  // the challenged INVITE
  EXPECT_TRUE(daemon_->waitForMetric("sbc_line_active_calls", 0)) << daemon_->scrape();
}

// Proves: an INVITE from an address no terminal registered from (and no trunk's) gets
// 403, counted as a line call refused for not being registered.
TEST_F(LineCall, FromAnUnregisteredAddressIsForbidden) {
  startSbc(5);
  const auto line = lineCalls("line_call.xml", 1, 1, "127.0.0.7");
  EXPECT_NE(line.status, 0) << line.output;
  EXPECT_NE(line.output.find("403"), std::string::npos) << line.output;
  EXPECT_EQ(metric("sbc_line_rejected_calls_total{reason=\"not_registered\"}"), 1);
}

// Proves: a line holds two calls at once (lines.max_calls default): of three simultaneous
// calls two are answered and the third gets 486 Busy Here, counted; once they are over a
// call succeeds again and no slot is left behind.
TEST_F(LineCall, TheThirdCallIsBusy) {
  startSbc(5);
  registerAlice();
  {
    const auto core = startCore("uas_answer.xml", 2);
    const auto line = lineCalls("line_call.xml", 3, 3, "127.0.0.4", 1500);
    EXPECT_EQ(line.status, 0) << line.output;
    EXPECT_EQ(core->waitForExit(10s), 0) << core->output();
  }
  EXPECT_EQ(metric(lineCallsSeries("from_line", "answered")), 2);
  EXPECT_EQ(metric("sbc_line_rejected_calls_total{reason=\"over_limit\"}"), 1);
  EXPECT_TRUE(daemon_->waitForMetric("sbc_line_active_calls", 0)) << daemon_->scrape();
  {
    const auto core = startCore("uas_answer.xml", 1);
    const auto line = lineCalls("line_call.xml", 1, 1);
    EXPECT_EQ(line.status, 0) << line.output;
    EXPECT_EQ(core->waitForExit(10s), 0) << core->output();
  }
  EXPECT_EQ(metric(lineCallsSeries("from_line", "answered")), 3);
  EXPECT_EQ(metric("sbc_line_rejected_calls_total{reason=\"over_limit\"}"), 1);
}

// Proves: the ceiling counts calls to the line too: with two calls of the line in
// progress, the core's call to it gets 486 (counted), and none reaches the terminal.
TEST_F(LineCall, ACallToABusyLineGets486) {
  startSbc(5);
  const int port = freeUdpPort("127.0.0.4");
  const std::string token = registerAlice("127.0.0.4", {"-p", std::to_string(port)});
  ASSERT_FALSE(token.empty());
  {
    const auto core = startCore("uas_answer.xml", 2);
    ChildProcess busy({"/usr/bin/sipp", "-sf", kSippDir + "/line_call.xml", "-i", "127.0.0.4",
                       "-bind_local", "-m", "2", "-l", "2", "-r", "20", "-d", "2000", "-s",
                       "bob", "-au", "alice", "-ap", "secret", "-timeout", "20s",
                       "-timeout_error", "-nostdin",
                       "127.0.0.10:" + std::to_string(accessPort_)});
    ASSERT_TRUE(daemon_->waitForMetric("sbc_line_active_calls", 2)) << daemon_->scrape();
    // The core's SIPp is busy on the next-hop port: this one calls from another port.
    const auto toLine = runCommand({"/usr/bin/sipp", "-sf", kSippDir + "/core_uac_to_line_486.xml",
                                    "-i", "127.0.0.3", "-bind_local", "-m", "1", "-s", token,
                                    "-timeout", "10s", "-timeout_error", "-nostdin",
                                    "127.0.0.11:" + std::to_string(sbcCorePort_)},
                                   20s);
    EXPECT_EQ(toLine.status, 0) << toLine.output;
    EXPECT_EQ(busy.waitForExit(20s), 0) << busy.output();
    EXPECT_EQ(core->waitForExit(10s), 0) << core->output();
  }
  EXPECT_EQ(metric("sbc_line_rejected_calls_total{reason=\"over_limit\"}"), 1);
  EXPECT_TRUE(daemon_->waitForMetric("sbc_line_active_calls", 0)) << daemon_->scrape();
}

// Proves: the core's INVITE to the Contact the SBC registered for a line reaches the
// terminal at its real address (where it registered from; its Contact names a private
// one), with the terminal's own Contact as Request-URI and its AoR as To (line_uas_answer
// checks both); the BYE reaches it there too.
TEST_F(LineCall, ToALineReachesTheTerminalWhereItRegisteredFrom) {
  startSbc(5);
  const int port = freeUdpPort("127.0.0.4");
  const std::string token = registerAlice("127.0.0.4", {"-p", std::to_string(port)});
  ASSERT_FALSE(token.empty());
  const auto phone = startUas("line_uas_answer.xml", "127.0.0.4", port);
  const auto core = coreCalls("core_uac_to_line.xml", token);
  EXPECT_EQ(core.status, 0) << core.output;
  EXPECT_EQ(phone->waitForExit(10s), 0) << phone->output();
  EXPECT_EQ(metric(lineCallsSeries("to_line", "answered")), 1);
  EXPECT_TRUE(daemon_->waitForMetric("sbc_line_active_calls", 0)) << daemon_->scrape();
}

// Proves: once the terminal has moved (a refresh from 127.0.0.5), the core's call goes to
// the new address: nothing listens at the old one any more.
TEST_F(LineCall, ToAMovedLineReachesTheNewAddress) {
  startSbc(5);
  const std::vector<std::string> sameCallId{"-cid_str", "moving-phone-%u"};
  std::vector<std::string> first = sameCallId;
  first.insert(first.end(), {"-p", std::to_string(freeUdpPort("127.0.0.4"))});
  const std::string token = registerAlice("127.0.0.4", first);
  const int port = freeUdpPort("127.0.0.5");
  std::vector<std::string> second = sameCallId;
  second.insert(second.end(), {"-p", std::to_string(port)});
  ASSERT_EQ(registerAlice("127.0.0.5", second), token);
  const auto phone = startUas("line_uas_answer.xml", "127.0.0.5", port);
  const auto core = coreCalls("core_uac_to_line.xml", token);
  EXPECT_EQ(core.status, 0) << core.output;
  EXPECT_EQ(phone->waitForExit(10s), 0) << phone->output();
}

// Proves: the core's call to a line Contact with no binding gets 480, counted.
TEST_F(LineCall, ToAnUnboundContactIsTemporarilyUnavailable) {
  startSbc(5);
  const auto core = coreCalls("core_uac_to_line_480.xml", "l0123456789abcdef01234567");
  EXPECT_EQ(core.status, 0) << core.output;
  EXPECT_EQ(metric("sbc_line_rejected_calls_total{reason=\"not_registered\"}"), 1);
}

// Proves: the media of a line's call is latched: the terminal's SDP names a private
// address (127.99.0.20:40000, where nothing listens), yet the core's media reaches the
// terminal where its packets really come from (127.0.0.4, another port), and a packet from
// another address of the access side (127.0.0.6) is dropped and counted, not forwarded.
TEST_F(LineCall, MediaIsLatchedFromTheTerminalsAddress) {
  startSbc(5);
  registerAlice();
  UdpSocket coreMedia("127.0.0.3", 0);
  ASSERT_TRUE(coreMedia.bound());
  const auto call = callWithMedia("core_uas_media_at.xml", 1, 3000, coreMedia, "media");
  const auto& access = call.access;
  const auto& coreSide = call.coreSide;
  ASSERT_TRUE(access.has_value()) << call.lineMessages;
  ASSERT_EQ(access->address, "127.0.0.10");
  ASSERT_TRUE(coreSide.has_value());
  ASSERT_EQ(coreSide->address, "127.0.0.11");

  // Another address on the access side: not the terminal's, dropped.
  UdpSocket intruder("127.0.0.6", 0);
  for (int i = 0; i < 3; ++i) intruder.sendTo("intruder", "127.0.0.10", access->port);
  EXPECT_TRUE(daemon_->waitForMetric("sbc_media_dropped_total{reason=\"source_not_allowed\"}", 3))
      << daemon_->scrape();
  // The terminal's real media socket (its NAT's mapping): the first packet latches it.
  UdpSocket terminalMedia("127.0.0.4", 0);
  int forwarded = 0;
  for (int i = 0; i < 10 && forwarded == 0; ++i) {
    terminalMedia.sendTo("from-terminal", "127.0.0.10", access->port);
    while (const auto got = coreMedia.receive()) {
      if (got->first == "intruder") ADD_FAILURE() << "the intruder's packet was forwarded";
      if (got->first == "from-terminal") {
        ++forwarded;
        EXPECT_EQ(got->second, "127.0.0.11:" + std::to_string(coreSide->port));
      }
    }
  }
  EXPECT_GT(forwarded, 0);
  // The core's media goes to where the terminal's came from, not to its SDP address.
  int latched = 0;
  for (int i = 0; i < 10 && latched == 0; ++i) {
    coreMedia.sendTo("from-core", "127.0.0.11", coreSide->port);
    if (const auto got = terminalMedia.receive(); got && got->first == "from-core") {
      ++latched;
      EXPECT_EQ(got->second, "127.0.0.10:" + std::to_string(access->port));
    }
  }
  EXPECT_GT(latched, 0);
  EXPECT_EQ(call.line->waitForExit(20s), 0) << call.line->output();
  EXPECT_EQ(call.core->waitForExit(10s), 0) << call.core->output();
  EXPECT_TRUE(daemon_->waitForMetric("sbc_media_flows", 0));
}

// Proves: a terminal that moves during a call (its refresh from 127.0.0.5, accepted by the
// core) takes the call with it: the call's media is latched afresh within the new address
// (its packets reach the core, the core's come back to it) and the old address's packets
// are dropped from then on.
TEST_F(LineCall, ACallFollowsItsTerminalWhenItMoves) {
  startSbc(5);
  registerAlice("127.0.0.4", {"-cid_str", "moving-phone-%u"});
  UdpSocket coreMedia("127.0.0.3", 0);
  ASSERT_TRUE(coreMedia.bound());
  const auto call = callWithMedia("core_registrar_and_callee.xml", 2, 4000, coreMedia, "move");
  ASSERT_TRUE(call.access.has_value()) << call.lineMessages;
  ASSERT_TRUE(call.coreSide.has_value());
  // Media both ways from the first address.
  UdpSocket before("127.0.0.4", 0);
  ASSERT_TRUE(mediaCrossesBothWays(before, coreMedia, call, "before"));

  // The terminal's refresh from its new address (same Call-ID, Contact and instance).
  UdpSocket moved("127.0.0.5", 0);
  const std::string port = std::to_string(moved.port());
  moved.sendTo("REGISTER sip:example.test SIP/2.0\r\n"
               "Via: SIP/2.0/UDP 127.0.0.5:" + port + ";branch=z9hG4bK-moved\r\n"
               "From: <sip:alice@example.test>;tag=moved\r\n"
               "To: <sip:alice@example.test>\r\n"
               "Call-ID: moving-phone-1\r\n"
               "CSeq: 10 REGISTER\r\n"
               "Contact: <sip:alice@127.99.0.20:5062;line=phone-7>;+sip.instance="
               "\"<urn:uuid:00000000-0000-1000-8000-00aabbccddee>\"\r\n"
               "Expires: 3600\r\n"
               "Max-Forwards: 70\r\n"
               "Content-Length: 0\r\n\r\n",
               "127.0.0.10", accessPort_);
  std::optional<std::pair<std::string, std::string>> accepted;
  for (int i = 0; i < 25 && !accepted; ++i) accepted = moved.receive();
  ASSERT_TRUE(accepted.has_value());
  ASSERT_EQ(accepted->first.rfind("SIP/2.0 200", 0), 0u) << accepted->first;
  ASSERT_NE(listed().find("udp:127.0.0.5:" + port), std::string::npos) << listed();

  UdpSocket after("127.0.0.5", 0);
  EXPECT_TRUE(mediaCrossesBothWays(after, coreMedia, call, "after"));
  const double dropped = metric("sbc_media_dropped_total{reason=\"source_not_allowed\"}");
  before.sendTo("stale", "127.0.0.10", call.access->port);
  EXPECT_TRUE(daemon_->waitForMetric("sbc_media_dropped_total{reason=\"source_not_allowed\"}",
                                     dropped + 1));
  EXPECT_EQ(call.line->waitForExit(20s), 0) << call.line->output();
  EXPECT_EQ(call.core->waitForExit(10s), 0) << call.core->output();
}

// Proves: a request of the call's dialog from a new address of the terminal (here an
// INFO from 127.0.0.5, the dialog's Call-ID and tags) is the terminal moving: the call's
// media is latched afresh within the new address.
TEST_F(LineCall, ACallFollowsAnInDialogRequestFromANewAddress) {
  startSbc(5);
  registerAlice();
  UdpSocket coreMedia("127.0.0.3", 0);
  ASSERT_TRUE(coreMedia.bound());
  const auto call = callWithMedia("core_registrar_and_callee.xml", 1, 4000, coreMedia, "info");
  ASSERT_TRUE(call.access.has_value()) << call.lineMessages;
  ASSERT_TRUE(call.coreSide.has_value());

  // The dialog as the terminal knows it: its Call-ID and tag, the SBC's tag and Contact.
  const std::string answer =
      call.lineMessages.substr(call.lineMessages.find("SIP/2.0 200 OK"));
  std::smatch callId, ourTag, theirTag, contact;
  ASSERT_TRUE(std::regex_search(answer, callId, std::regex("Call-ID: *([^\r\n]+)")));
  ASSERT_TRUE(std::regex_search(answer, ourTag, std::regex("From: [^\r\n]*tag=([^;\r\n]+)")));
  ASSERT_TRUE(std::regex_search(answer, theirTag, std::regex("To: [^\r\n]*tag=([^;\r\n]+)")));
  ASSERT_TRUE(std::regex_search(answer, contact, std::regex("Contact: *<([^>]+)>")));
  UdpSocket moved("127.0.0.5", 0);
  const std::string port = std::to_string(moved.port());
  moved.sendTo("INFO " + contact[1].str() + " SIP/2.0\r\n"
               "Via: SIP/2.0/UDP 127.0.0.5:" + port + ";branch=z9hG4bK-moved-info\r\n"
               "From: <sip:alice@example.test>;tag=" + ourTag[1].str() + "\r\n"
               "To: <sip:bob@example.test>;tag=" + theirTag[1].str() + "\r\n"
               "Call-ID: " + callId[1].str() + "\r\n"
               "CSeq: 5 INFO\r\n"
               "Max-Forwards: 70\r\n"
               "Content-Length: 0\r\n\r\n",
               "127.0.0.10", accessPort_);
  std::optional<std::pair<std::string, std::string>> answered;
  for (int i = 0; i < 25 && !answered; ++i) answered = moved.receive();
  ASSERT_TRUE(answered.has_value());
  ASSERT_EQ(answered->first.rfind("SIP/2.0 200", 0), 0u) << answered->first;

  UdpSocket after("127.0.0.5", 0);
  EXPECT_TRUE(mediaCrossesBothWays(after, coreMedia, call, "after"));
  EXPECT_EQ(call.line->waitForExit(20s), 0) << call.line->output();
  EXPECT_EQ(call.core->waitForExit(10s), 0) << call.core->output();
}

}  // namespace
}  // namespace sbc::test
