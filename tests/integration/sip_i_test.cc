// SIP-I / SIP-T trunks (ITU-T Q.1912.5, RFC 3204, RFC 5621): offers and answers in
// multipart/mixed bodies of an SDP part and an ISUP part, through the B2BUA. SIPp plays a
// SIP-I trunk (127.0.0.2) and a SIP-I core (127.0.0.3), both with message traces; the test
// reads what each side received: the SDP part anchored on the SBC's media address of that
// realm, the ISUP part byte for byte under a boundary of the SBC's own.
//
// The ISUP payloads of the SIPp scenarios are binary-ish: control bytes and bytes above
// 0x7f, but no NUL, CR or LF: SIPp sends a scenario's text as C strings and turns each LF
// into CRLF, so true binary cannot be written in a scenario. IsupWithNulBytesCrossesWhole
// sends one with NUL and LF bytes from plain UDP sockets instead; the unit tests
// (tests/signaling/multipart_test.cc) cover NUL, CR, LF and "--" inside a part.

#include <chrono>
#include <fstream>
#include <iterator>
#include <optional>
#include <utility>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/integration/trunk_fixture.h"
#include "tests/support/test_env.h"

namespace sbc::test {
namespace {

// The ISUP messages of the scenarios (uac_sip_i.xml, uas_sip_i.xml), byte for byte.
const std::string kIam =
    "\x01\x11H\x02\x0b\x03\x02\x0c\x08\x83\x90\x89gE#\xf1\x1b\x0f\x7f\xc3\xa9\xff\x1a\x03"
    "IAM-TRUNK-7731";
const std::string kCpg = ",\x03\x01\x11\xe8\xc4" "CPG-TRUNK-6630";
const std::string kInr = "\x03\x01\x8f\x1cINR-TRUNK-9950";
const std::string kRel = "\x0c\x02\x02\x80\x90REL-TRUNK-1160";
const std::string kAcm = "\x06\x14\x02\x01\x11\x83\xff\x1b" "ACM-CORE-4410";
const std::string kAnm = "\x19\x01\x11\x02\xc0\xff" "ANM-CORE-5520";
const std::string kApm = "A\x01~\x02\xb5" "APM-CORE-8840";
const std::string kInf = "\x04\x01\x8f\x1cINF-TRUNK-2280";  // uac_sip_i_late_offer.xml
const std::string kCoreCpg = ",\x02\x01\x11\xe8" "CPG-CORE-7720";  // uas_sip_i_early_answer.xml
// uac_sip_i_update.xml and uas_sip_i_update.xml: the UPDATE each way and the answer to it.
const std::string kTrunkUpdate = ",\x03\x01\x12\xe9\xc5" "UPD-TRUNK-3310";
const std::string kCoreUpdateAnswer = "A\x01~\x02\xb6" "APM-CORE-4420";
const std::string kCoreUpdate = ",\x02\x01\x13\xea" "UPD-CORE-5530";
const std::string kTrunkUpdateAnswer = "A\x01~\x02\xb7" "APM-TRUNK-6640";
// core_uac_sip_i.xml and trunk_uas_sip_i.xml: a call from the core to the trunk.
const std::string kCoreIam = "\x01\x11H\x02\x0b\x03\x02\x0c\x08\x83\x90\x89gE#\xf1" "IAM-CORE-1201";
const std::string kTrunkAcm = "\x06\x14\x02\x01\x11\x83\xff\x1b" "ACM-TRUNK-2302";
const std::string kTrunkAnm = "\x19\x01\x11\x02\xc0\xff" "ANM-TRUNK-3403";
const std::string kTrunkBoundary = "trunk-gw-boundary-77";
const std::string kCoreBoundary = "core-gw-boundary-88";

struct TracedMessage {
  bool sent = false;  // by this SIPp (else received from the SBC)
  std::string text;
};

// Every message of a SIPp trace (-trace_msg -message_file), in order, each exactly as it
// crossed the socket (the trace gives its length).
std::vector<TracedMessage> tracedMessages(const std::string& traceFile) {
  std::ifstream in(traceFile, std::ios::binary);
  const std::string trace((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<TracedMessage> messages;
  static const std::string kSeparator = "----------------------------------------------- ";
  for (std::size_t at = trace.find(kSeparator); at != std::string::npos;) {
    const std::size_t lineEnd = trace.find('\n', at);
    const std::size_t headerEnd = trace.find('\n', lineEnd + 1);
    if (lineEnd == std::string::npos || headerEnd == std::string::npos) break;
    const std::string header = trace.substr(lineEnd + 1, headerEnd - lineEnd - 1);
    // "UDP message received [N] bytes :" / "UDP message sent (N bytes):"
    const std::size_t digits = header.find_first_of("0123456789");
    const std::size_t next = trace.find(kSeparator, headerEnd);
    TracedMessage message;
    message.sent = header.find("sent") != std::string::npos;
    std::size_t start = headerEnd + 1;
    while (start < trace.size() && (trace[start] == '\n' || trace[start] == '\r')) ++start;
    if (digits != std::string::npos) {
      message.text = trace.substr(start, std::stoul(header.substr(digits)));
    }
    messages.push_back(std::move(message));
    at = next;
  }
  return messages;
}

std::string headerValue(const std::string& message, const std::string& name) {
  const std::size_t at = message.find("\r\n" + name + ":");
  if (at == std::string::npos) return "";
  std::size_t start = at + 2 + name.size() + 1;
  while (start < message.size() && message[start] == ' ') ++start;
  return message.substr(start, message.find("\r\n", start) - start);
}

std::string bodyOf(const std::string& message) {
  const std::size_t at = message.find("\r\n\r\n");
  return at == std::string::npos ? "" : message.substr(at + 4);
}

class SipI : public TrunkFixture {
 protected:
  void SetUp() override {
    TrunkFixture::SetUp();
    coreTrace_ = dir_.file("core.trace");
    trunkTrace_ = dir_.file("trunk.trace");
  }

  // One call of `trunkScenario` through sbcd to `coreScenario`, both traced; both must
  // complete their scenario.
  void tracedCall(const std::string& coreScenario, const std::string& trunkScenario) {
    auto core = startListening(
        {"/usr/bin/sipp", "-sf", kSippDir + "/" + coreScenario, "-i", "127.0.0.3",
         "-bind_local", "-p", std::to_string(corePort_), "-m", "1", "-nostdin", "-trace_msg",
         "-message_file", coreTrace_},
        "127.0.0.3", corePort_);
    const auto trunk =
        runCommand(trunkArgs(trunkScenario, 1, 1, trunkTrace_), std::chrono::seconds(40));
    EXPECT_EQ(trunk.status, 0) << trunk.output;
    EXPECT_EQ(core->waitForExit(10s), 0) << core->output();
  }

  // One call from the core (`coreScenario`, Request-URI ;trunk=alpha) through sbcd to the
  // trunk (`trunkScenario`), both traced; both must complete their scenario.
  void tracedCallFromCore(const std::string& trunkScenario, const std::string& coreScenario) {
    const auto trunk = startUas(trunkScenario, "127.0.0.2", trunkPort_, 1, "udp", trunkTrace_);
    const auto core = runCommand(
        {"/usr/bin/sipp", "-sf", kSippDir + "/" + coreScenario, "-i", "127.0.0.3", "-bind_local",
         "-p", std::to_string(corePort_), "-m", "1", "-timeout", "20s", "-timeout_error",
         "-nostdin", "-trace_msg", "-message_file", coreTrace_,
         "127.0.0.11:" + std::to_string(sbcCorePort_)},
        std::chrono::seconds(40));
    EXPECT_EQ(core.status, 0) << core.output;
    EXPECT_EQ(trunk->waitForExit(10s), 0) << trunk->output();
  }

  // The full SIP-I call: uac_sip_i.xml against uas_sip_i.xml.
  void sipICall() { tracedCall("uas_sip_i.xml", "uac_sip_i.xml"); }

  // The `nth` (from 0) message in `traceFile` received (or sent, with `sent`) whose start
  // line begins with `start` and, if `cseq` is given, whose CSeq is that; fails the test if
  // there is none.
  static std::string message(const std::string& traceFile, const std::string& start,
                             const std::string& cseq, bool sent = false, int nth = 0) {
    for (const auto& traced : tracedMessages(traceFile)) {
      if (traced.sent == sent && traced.text.rfind(start, 0) == 0 &&
          (cseq.empty() || headerValue(traced.text, "CSeq") == cseq) && nth-- == 0) {
        return traced.text;
      }
    }
    ADD_FAILURE() << "no " << (sent ? "sent " : "received ") << start << " with CSeq " << cseq
                  << " in " << traceFile;
    return "";
  }

  // `sip` carries a multipart/mixed body under a boundary of the SBC's (not `peerBoundary`,
  // which appears nowhere) with Content-Length true to it: first the SDP part, anchored on
  // `sbcMedia` and naming nothing of `otherSide`, then the ISUP part with its type
  // parameters and `disposition`, its bytes exactly `isup`.
  static void expectSipIBody(const std::string& sip, const std::string& isup,
                             const std::string& disposition, const std::string& sbcMedia,
                             const std::string& peerBoundary, const std::string& otherSide) {
    const std::string type = headerValue(sip, "Content-Type");
    const std::string prefix = "multipart/mixed;boundary=";
    ASSERT_EQ(type.rfind(prefix, 0), 0u) << sip;
    const std::string boundary = type.substr(prefix.size());
    EXPECT_FALSE(boundary.empty());
    EXPECT_EQ(sip.find(peerBoundary), std::string::npos) << sip;
    const std::string body = bodyOf(sip);
    EXPECT_EQ(headerValue(sip, "Content-Length"), std::to_string(body.size())) << sip;
    EXPECT_EQ(body.rfind("--" + boundary + "\r\nContent-Type: application/sdp\r\n\r\nv=0\r\n", 0),
              0u)
        << body;
    EXPECT_NE(body.find("c=IN IP4 " + sbcMedia + "\r\n"), std::string::npos) << body;
    EXPECT_EQ(body.find(otherSide), std::string::npos) << body;
    const std::string isupPart = "\r\n--" + boundary +
                                 "\r\nContent-Type: application/isup;version=itu-t92+;"
                                 "base=itu-t92+\r\nContent-Disposition: signal;handling=" +
                                 disposition + "\r\n\r\n" + isup + "\r\n--" + boundary +
                                 "--\r\n";
    EXPECT_NE(body.find(isupPart), std::string::npos) << body;
    EXPECT_EQ(body.size(), body.find(isupPart) + isupPart.size()) << body;
  }

  double refusedBodies(const std::string& realm, const std::string& message,
                       const std::string& reason) {
    return metricValue(daemon_->scrape(), "sbc_sip_bodies_refused_total{message=\"" + message +
                                              "\",realm=\"" + realm + "\",reason=\"" + reason +
                                              "\"}")
        .value_or(0);
  }

  std::string coreTrace_;
  std::string trunkTrace_;
};

// Proves: a SIP-I INVITE (multipart/mixed: SDP + ISUP IAM, the default sip.body_types) is
// relayed to the core as multipart/mixed under a fresh boundary (not the trunk's), its SDP
// part anchored on the SBC's core media address, its ISUP part byte for byte with its
// Content-Type parameters and Content-Disposition. Before: 488 (the body is not SDP).
TEST_F(SipI, InviteReachesTheCoreWithAnchoredSdpAndItsIsup) {
  startSbc(10);
  sipICall();
  expectSipIBody(message(coreTrace_, "INVITE ", ""), kIam, "required", "127.0.0.11",
                 kTrunkBoundary, "127.0.0.2");
  expectNoActiveCalls();
  EXPECT_TRUE(daemon_->waitForMetric(
      "sbc_calls_total{direction=\"from_trunk\",result=\"answered\",trunk=\"alpha\"}", 1))
      << daemon_->scrape();
}

// Proves: the core's 183 (early media) and 200, each SDP + ISUP (ACM, ANM), reach the trunk
// as multipart/mixed under a fresh boundary with the SDP anchored on the SBC's access
// media address and the ISUP byte for byte. Before: 502 (the 183's body was dropped, the
// 200's was unusable SDP).
TEST_F(SipI, EarlyMediaAndAnswerReachTheTrunkWithTheirIsup) {
  startSbc(10);
  sipICall();
  expectSipIBody(message(trunkTrace_, "SIP/2.0 183", "1 INVITE"), kAcm, "optional",
                 "127.0.0.10", kCoreBoundary, "127.0.0.3");
  expectSipIBody(message(trunkTrace_, "SIP/2.0 200", "1 INVITE"), kAnm, "optional",
                 "127.0.0.10", kCoreBoundary, "127.0.0.3");
  EXPECT_EQ(refusedBodies("core", "response", "part"), 0);
  expectNoActiveCalls();
}

// Proves: a re-INVITE with SDP + ISUP (CPG) and the 200 to it with SDP + ISUP (APM) are
// renegotiated like plain SDP and cross with their ISUP, each way anchored on the SBC's
// media address of the receiving realm. Before: the re-INVITE got 488.
TEST_F(SipI, ReinviteAndItsAnswerCarryTheirIsup) {
  startSbc(10);
  sipICall();
  expectSipIBody(message(coreTrace_, "INVITE ", "", false, 1), kCpg, "optional", "127.0.0.11",
                 kTrunkBoundary, "127.0.0.2");
  expectSipIBody(message(trunkTrace_, "SIP/2.0 200", "2 INVITE"), kApm, "optional",
                 "127.0.0.10", kCoreBoundary, "127.0.0.3");
  expectNoActiveCalls();
}

// Proves: an UPDATE with SDP + ISUP is renegotiated like a re-INVITE, each way: the trunk's
// UPDATE reaches the core and the core's 200 to it reaches the trunk, then the core's UPDATE
// reaches the trunk and the trunk's 200 to it reaches the core; each as multipart/mixed
// under a boundary of the SBC's, its SDP anchored on the SBC's media address of the
// receiving realm, its ISUP byte for byte with its type parameters and disposition. Each of
// the four fails with the crossing body reduced to the SDP (SessionBody::crossing).
TEST_F(SipI, UpdateBothWaysCarriesItsIsup) {
  startSbc(10);
  tracedCall("uas_sip_i_update.xml", "uac_sip_i_update.xml");
  expectSipIBody(message(coreTrace_, "UPDATE ", ""), kTrunkUpdate, "optional", "127.0.0.11",
                 kTrunkBoundary, "127.0.0.2");
  expectSipIBody(message(trunkTrace_, "SIP/2.0 200", "2 UPDATE"), kCoreUpdateAnswer, "optional",
                 "127.0.0.10", kCoreBoundary, "127.0.0.3");
  expectSipIBody(message(trunkTrace_, "UPDATE ", ""), kCoreUpdate, "optional", "127.0.0.10",
                 kCoreBoundary, "127.0.0.3");
  expectSipIBody(message(coreTrace_, "SIP/2.0 200", "2 UPDATE"), kTrunkUpdateAnswer, "optional",
                 "127.0.0.11", kTrunkBoundary, "127.0.0.2");
  EXPECT_EQ(refusedBodies("access", "request", "part"), 0) << daemon_->scrape();
  EXPECT_EQ(refusedBodies("core", "request", "part"), 0);
  expectNoActiveCalls();
  EXPECT_TRUE(daemon_->waitForMetric(
      "sbc_calls_total{direction=\"from_trunk\",result=\"answered\",trunk=\"alpha\"}", 1))
      << daemon_->scrape();
}

// Proves: a SIP-I call from the core to a trunk: the core's INVITE (SDP + ISUP IAM) reaches
// the trunk as multipart/mixed under a boundary of the SBC's with its SDP anchored on the
// SBC's access media address and the IAM byte for byte; the trunk's 183 and 200 (SDP +
// ISUP ACM, ANM) reach the core anchored on the SBC's core media address with their ISUP.
// Each of the three fails with the crossing body reduced to the SDP.
TEST_F(SipI, CallFromTheCoreToATrunkCarriesItsIsup) {
  startSbc(10);
  tracedCallFromCore("trunk_uas_sip_i.xml", "core_uac_sip_i.xml");
  expectSipIBody(message(trunkTrace_, "INVITE ", ""), kCoreIam, "required", "127.0.0.10",
                 kCoreBoundary, "127.0.0.3");
  expectSipIBody(message(coreTrace_, "SIP/2.0 183", "1 INVITE"), kTrunkAcm, "optional",
                 "127.0.0.11", kTrunkBoundary, "127.0.0.2");
  expectSipIBody(message(coreTrace_, "SIP/2.0 200", "1 INVITE"), kTrunkAnm, "optional",
                 "127.0.0.11", kTrunkBoundary, "127.0.0.2");
  expectNoActiveCalls();
  EXPECT_TRUE(daemon_->waitForMetric(
      "sbc_calls_total{direction=\"to_trunk\",result=\"answered\",trunk=\"alpha\"}", 1))
      << daemon_->scrape();
}

// Proves: ISUP without SDP inside the call follows sip.body_types (application/isup is in
// the default): an INFO whose multipart body holds one ISUP part (INR) reaches the core
// with that part as its body, byte for byte, its type parameters and disposition kept and
// no trace of the trunk's boundary; a BYE carrying an ISUP REL reaches the core with the
// body the trunk sent, byte for byte. Before: the INFO crossed with the trunk's boundary
// in its Content-Type, the BYE without its REL.
TEST_F(SipI, InfoAndByeCarryTheirIsup) {
  startSbc(10);
  sipICall();
  const std::string info = message(coreTrace_, "INFO ", "");
  EXPECT_EQ(headerValue(info, "Content-Type"), "application/isup;version=itu-t92+") << info;
  EXPECT_EQ(headerValue(info, "Content-Disposition"), "signal;handling=optional") << info;
  EXPECT_EQ(bodyOf(info), kInr) << info;
  EXPECT_EQ(info.find(kTrunkBoundary), std::string::npos) << info;

  const std::string byeSent = message(trunkTrace_, "BYE ", "4 BYE", true);
  const std::string bye = message(coreTrace_, "BYE ", "");
  EXPECT_EQ(bodyOf(bye).rfind(kRel, 0), 0u) << bye;
  EXPECT_EQ(bodyOf(bye), bodyOf(byeSent)) << bye;
  EXPECT_EQ(headerValue(bye, "Content-Type"), "application/isup;version=itu-t92+") << bye;
  EXPECT_EQ(headerValue(bye, "Content-Disposition"), "signal;handling=optional") << bye;
  EXPECT_EQ(refusedBodies("access", "request", "multipart"), 0);
  expectNoActiveCalls();
}

// Proves: ISUP without SDP in the answers to the INVITE follows sip.body_types: a 180 with an
// ISUP ACM alone reaches the trunk with that body, byte for byte, its type parameters and
// disposition kept; the reliable 183 (SDP + ISUP CPG) is the answer and reaches the trunk
// anchored with its ISUP; the 200 that then carries an ISUP ANM alone (the answer was given)
// reaches the trunk with the ANM, and the call is answered. Before: the 180 lost its body
// (counted as refused) and the 200 failed the call with 502.
TEST_F(SipI, IsupAloneInProvisionalAndAnswerAfterAnEarlyAnswer) {
  startSbc(10);
  tracedCall("uas_sip_i_early_answer.xml", "uac_sip_i_early.xml");
  const std::string ringing = message(trunkTrace_, "SIP/2.0 180", "1 INVITE");
  EXPECT_EQ(headerValue(ringing, "Content-Type"), "application/isup;version=itu-t92+;base=itu-t92+")
      << ringing;
  EXPECT_EQ(headerValue(ringing, "Content-Disposition"), "signal;handling=optional");
  // SIPp ends a plain body with the CRLF of its last line: the bytes the core sent.
  EXPECT_EQ(bodyOf(ringing).rfind(kAcm, 0), 0u) << ringing;
  EXPECT_EQ(bodyOf(ringing), bodyOf(message(coreTrace_, "SIP/2.0 180", "", true))) << ringing;
  expectSipIBody(message(trunkTrace_, "SIP/2.0 183", "1 INVITE"), kCoreCpg, "optional",
                 "127.0.0.10", kCoreBoundary, "127.0.0.3");
  const std::string answer = message(trunkTrace_, "SIP/2.0 200", "1 INVITE");
  EXPECT_EQ(headerValue(answer, "Content-Type"), "application/isup;version=itu-t92+;base=itu-t92+")
      << answer;
  EXPECT_EQ(bodyOf(answer).rfind(kAnm, 0), 0u) << answer;
  EXPECT_EQ(bodyOf(answer), bodyOf(message(coreTrace_, "SIP/2.0 200", "", true, 1))) << answer;
  EXPECT_EQ(refusedBodies("core", "response", "content_type"), 0) << daemon_->scrape();
  expectNoActiveCalls();
  EXPECT_TRUE(daemon_->waitForMetric(
      "sbc_calls_total{direction=\"from_trunk\",result=\"answered\",trunk=\"alpha\"}", 1))
      << daemon_->scrape();
}

// Proves: a SIP-I INVITE carrying an ISUP IAM alone (no SDP) is a late offer: it reaches the
// core with the IAM as its body, byte for byte, and no SDP; the core's offer in its 200
// (SDP + ISUP ANM) reaches the trunk anchored on the SBC's access address with the ANM; the
// trunk's answer in its ACK (SDP + ISUP) reaches the core anchored on the SBC's core
// address with its ISUP. Before: the INVITE got 488 (its body is not SDP).
TEST_F(SipI, IsupAloneInTheInviteIsALateOffer) {
  startSbc(10);
  tracedCall("uas_sip_i_late_offer.xml", "uac_sip_i_late_offer.xml");
  const std::string invite = message(coreTrace_, "INVITE ", "");
  EXPECT_EQ(headerValue(invite, "Content-Type"), "application/isup;version=itu-t92+") << invite;
  EXPECT_EQ(headerValue(invite, "Content-Disposition"), "signal;handling=required") << invite;
  EXPECT_EQ(bodyOf(invite).rfind(kIam, 0), 0u) << invite;
  EXPECT_EQ(bodyOf(invite), bodyOf(message(trunkTrace_, "INVITE ", "1 INVITE", true))) << invite;
  expectSipIBody(message(trunkTrace_, "SIP/2.0 200", "1 INVITE"), kAnm, "optional",
                 "127.0.0.10", kCoreBoundary, "127.0.0.3");
  expectSipIBody(message(coreTrace_, "ACK ", ""), kInf, "optional", "127.0.0.11",
                 kTrunkBoundary, "127.0.0.2");
  expectNoActiveCalls();
  EXPECT_TRUE(daemon_->waitForMetric(
      "sbc_calls_total{direction=\"from_trunk\",result=\"answered\",trunk=\"alpha\"}", 1))
      << daemon_->scrape();
}

// Proves: a SIP-I trunk with 100rel whose late offer (ISUP IAM alone) the core makes in a
// reliable 183 (SDP + ISUP) answers in its PRACK with SDP + ISUP, and both reach the core in
// the SBC's PRACK: the SDP anchored on the SBC's core media address, the ISUP byte for byte
// under a boundary of the SBC's; the 183 reaches the trunk the same way. Before: the SBC
// PRACKed the 183 without a body and the trunk's PRACK body went nowhere.
TEST_F(SipI, AnswerInPrackCarriesItsIsup) {
  startSbc(10);
  tracedCall("uas_sip_i_prack.xml", "uac_sip_i_prack.xml");
  expectSipIBody(message(trunkTrace_, "SIP/2.0 183", "1 INVITE"), kAnm, "optional",
                 "127.0.0.10", kCoreBoundary, "127.0.0.3");
  expectSipIBody(message(coreTrace_, "PRACK ", ""), kInf, "optional", "127.0.0.11",
                 kTrunkBoundary, "127.0.0.2");
  expectNoActiveCalls();
  EXPECT_TRUE(daemon_->waitForMetric(
      "sbc_calls_total{direction=\"from_trunk\",result=\"answered\",trunk=\"alpha\"}", 1))
      << daemon_->scrape();
}

// Proves: a re-INVITE without SDP is relayed without SDP, the core's offer in its 200
// (SDP + ISUP APM) reaches the trunk anchored on the SBC's access address with the APM, and
// the trunk's answer in its ACK (SDP + ISUP) reaches the core anchored on the SBC's core
// address with its ISUP. Before: the 200's multipart offer was unusable SDP (502, call
// ended).
TEST_F(SipI, ReinviteWithoutSdpOfferedInThe200AndAnsweredInTheAck) {
  startSbc(10);
  tracedCall("uas_sip_i_offer_in_200.xml", "uac_sip_i_reinvite_no_sdp.xml");
  expectSipIBody(message(trunkTrace_, "SIP/2.0 200", "2 INVITE"), kApm, "optional",
                 "127.0.0.10", kCoreBoundary, "127.0.0.3");
  expectSipIBody(message(coreTrace_, "ACK ", "", false, 1), kInf, "optional", "127.0.0.11",
                 kTrunkBoundary, "127.0.0.2");
  expectNoActiveCalls();
  EXPECT_TRUE(daemon_->waitForMetric(
      "sbc_calls_total{direction=\"from_trunk\",result=\"answered\",trunk=\"alpha\"}", 1))
      << daemon_->scrape();
}

// Proves: with application/isup not in sip.body_types, a SIP-I INVITE still sets up the
// call: the core gets the anchored SDP alone as a plain application/sdp body (no ISUP, no
// multipart), and the left-out part is counted once as
// sbc_sip_bodies_refused_total{realm="access",message="request",reason="part"}.
TEST_F(SipI, UnlistedIsupIsLeftOutAndTheCallGoesThrough) {
  sipExtra_ = R"(body_types = [ "application/dtmf-relay" ];)";
  startSbc(10);
  tracedCall("uas_answer.xml", "uac_sip_i_setup.xml");
  const std::string invite = message(coreTrace_, "INVITE ", "");
  EXPECT_EQ(headerValue(invite, "Content-Type"), "application/sdp") << invite;
  EXPECT_EQ(bodyOf(invite).rfind("v=0\r\n", 0), 0u) << invite;
  EXPECT_NE(invite.find("c=IN IP4 127.0.0.11\r\n"), std::string::npos) << invite;
  EXPECT_EQ(invite.find("IAM-TRUNK"), std::string::npos) << invite;
  EXPECT_EQ(invite.find("multipart"), std::string::npos) << invite;
  EXPECT_EQ(refusedBodies("access", "request", "part"), 1) << daemon_->scrape();
  expectNoActiveCalls();
  EXPECT_TRUE(daemon_->waitForMetric(
      "sbc_calls_total{direction=\"from_trunk\",result=\"answered\",trunk=\"alpha\"}", 1))
      << daemon_->scrape();
}

// Proves: a SIP-I INVITE whose body does not use the boundary its Content-Type names cannot
// be split: it is refused 488 (no offer to anchor), counted as a refused multipart body and
// as a refused call, its slot freed, and sbcd goes on serving: a well-formed SIP-I call is
// answered next.
TEST_F(SipI, MultipartThatCannotBeSplitGets488) {
  startSbc(10);
  const auto refused = trunkCalls("uac_sip_i_bad_boundary.xml", 1, 1);
  EXPECT_EQ(refused.status, 0) << refused.output;
  EXPECT_EQ(metric("sbc_sip_responses_total{code=\"488\",realm=\"access\"}"), 1)
      << daemon_->scrape();
  EXPECT_EQ(refusedBodies("access", "request", "multipart"), 1) << daemon_->scrape();
  EXPECT_EQ(metric("sbc_calls_total{direction=\"from_trunk\",result=\"refused\",trunk=\"alpha\"}"),
            1);
  expectNoActiveCalls();
  callThrough("uas_answer.xml", "uac_sip_i_setup.xml");
  expectNoActiveCalls();
}

// Proves: binary ISUP with NUL bytes in it (a real IAM has them) crosses whole, byte for
// byte: the INVITE the core receives carries the IAM after its NULs and a Content-Length
// true to the body. SIPp cannot send a NUL, so trunk and core are plain UDP sockets here;
// the core refuses the call (486) and the slot is freed. Fails if the body is handed to
// nta as a C string (SIPTAG_PAYLOAD_STR), which ends it at the first NUL.
TEST_F(SipI, IsupWithNulBytesCrossesWhole) {
  startSbc(10);
  const UdpSocket trunk("127.0.0.2", 0);
  const UdpSocket core("127.0.0.3", corePort_);
  ASSERT_TRUE(trunk.bound() && core.bound());
  const std::string iam("\x01\x00\x60\x01\x0a\x00\x02\x0a\x08\x83\x90\x89\x12\x00\x00"
                        "IAM-NUL-3390",
                        27);
  const std::string body =
      "--gw-nul\r\nContent-Type: application/sdp\r\n\r\n"
      "v=0\r\no=gw 1 1 IN IP4 127.0.0.2\r\ns=-\r\nc=IN IP4 127.0.0.2\r\nt=0 0\r\n"
      "m=audio 4000 RTP/AVP 8\r\n\r\n"
      "--gw-nul\r\nContent-Type: application/isup;version=itu-t92+\r\n\r\n" +
      iam + "\r\n--gw-nul--\r\n";
  const std::string port = std::to_string(trunk.port());
  trunk.sendTo("INVITE sip:5551234@127.0.0.10:" + std::to_string(accessPort_) +
                   " SIP/2.0\r\n"
                   "Via: SIP/2.0/UDP 127.0.0.2:" + port + ";branch=z9hG4bK-nul-1\r\n"
                   "From: <sip:trunkuser@127.0.0.2>;tag=nul1\r\n"
                   "To: <sip:5551234@127.0.0.10>\r\n"
                   "Call-ID: nul-isup-1@127.0.0.2\r\n"
                   "CSeq: 1 INVITE\r\n"
                   "Contact: <sip:trunkuser@127.0.0.2:" + port + ">\r\n"
                   "Max-Forwards: 70\r\n"
                   "Content-Type: multipart/mixed;boundary=gw-nul\r\n"
                   "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body,
               "127.0.0.10", accessPort_);
  std::optional<std::pair<std::string, std::string>> received;
  for (int attempt = 0; attempt < 25 && !received; ++attempt) received = core.receive();
  ASSERT_TRUE(received.has_value()) << "no INVITE reached the core";
  const std::string& invite = received->first;
  ASSERT_EQ(invite.rfind("INVITE ", 0), 0u) << invite;
  EXPECT_EQ(headerValue(invite, "Content-Length"), std::to_string(bodyOf(invite).size()));
  EXPECT_NE(invite.find("\r\n\r\n" + iam + "\r\n--"), std::string::npos) << invite;

  const auto line = [&](const std::string& name) {
    return name + ": " + headerValue(invite, name) + "\r\n";
  };
  core.sendTo("SIP/2.0 486 Busy Here\r\n" + line("Via") + line("From") +
                  "To: " + headerValue(invite, "To") + ";tag=core-nul\r\n" + line("Call-ID") +
                  line("CSeq") + "Content-Length: 0\r\n\r\n",
              "127.0.0.11", sbcCorePort_);
  expectNoActiveCalls();
}

}  // namespace
}  // namespace sbc::test
