// Malformed SIP from a trunk (127.0.0.2) and from unknown sources (127.0.0.50 and up, one
// address each so the 403 budget of one source never decides a case), over UDP and, for
// some cases, TCP. Each corpus file under tests/integration/malformed/<category>/ is a raw
// message; {via}, {transport} and {case} are filled in before sending (the Via names the
// sending socket with ;rport, so a response can come back). Expectations per case: 400
// where a response can be sent (nta refuses a bad version, missing or broken mandatory
// headers and an oversized message itself, but only as the front door's rule for the
// source allows: nta_refusals.h; the SBC answers bad header values and bad user parts, by
// source), dropped where it cannot (no request line, no usable Via), the categories counted
// in sbc_sip_malformed_total. Afterwards the daemon still serves a normal call and no call
// slot is left taken. A second sbcd with refusals.unknown_source = "drop" shows that
// nothing reaches an unknown source on the wire, while a trunk still hears nta's refusals.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <iterator>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/integration/sbcd_process.h"
#include "tests/integration/trunk_fixture.h"
#include "tests/support/test_env.h"

namespace sbc::test {
namespace {

const std::string kCorpusDir = std::string(SBC_SOURCE_ROOT) + "/tests/integration/malformed";

constexpr int kNotSent = -1;
constexpr int kNoResponse = 0;

// What a case adds to sbc_sip_malformed_total (per send that reaches that check).
enum class Counted { nothing, notSip, badRequest, badUser, badHeader };

struct Case {
  const char* file;
  int fromTrunk;    // expected status over UDP from the trunk (kNoResponse: dropped)
  int fromUnknown;  // the same from an unknown source
  int overTcp;      // from the trunk over TCP (kNotSent: not tried)
  Counted counted;
};

// clang-format off
const Case kCases[] = {
    // No request line: nothing to answer (nta drops what is neither request nor response).
    {"bad_start_line/garbage.sip",            0,   0,   kNotSent, Counted::notSip},
    {"bad_start_line/no_request_uri.sip",     0,   0,   kNotSent, Counted::notSip},
    {"bad_start_line/space_in_uri.sip",       0,   0,   kNotSent, Counted::notSip},
    {"bad_start_line/binary_method.sip",      0,   0,   kNotSent, Counted::notSip},
    {"bad_start_line/unknown_version.sip",    505, 505, 505,      Counted::badRequest},
    // Mandatory headers: 400 from nta's sanity check; without a Via no response can go.
    {"missing_headers/no_via.sip",            0,   0,   kNotSent, Counted::badRequest},
    {"missing_headers/no_call_id.sip",        400, 400, 400,      Counted::badRequest},
    {"missing_headers/no_cseq.sip",           400, 400, kNotSent, Counted::badRequest},
    {"missing_headers/no_from.sip",           400, 400, kNotSent, Counted::badRequest},
    {"missing_headers/no_to.sip",             400, 400, kNotSent, Counted::badRequest},
    {"missing_headers/cseq_method_mismatch.sip", 400, 400, kNotSent, Counted::badRequest},
    // Content-Length: a datagram shorter than it says is incomplete (400); one longer than
    // it says is cut at Content-Length (here inside the SDP: 488).
    {"bad_content_length/longer_than_body.sip", 400, 400, kNotSent, Counted::badRequest},
    {"bad_content_length/negative.sip",       400, 400, 400,      Counted::badRequest},
    {"bad_content_length/not_a_number.sip",   400, 400, kNotSent, Counted::badRequest},
    {"bad_content_length/huge.sip",           400, 400, kNotSent, Counted::badRequest},
    {"bad_content_length/shorter_sdp.sip",    488, 403, kNotSent, Counted::nothing},
    // Size: under 64 KiB is served; a TCP message whose headers pass it closes the
    // connection unanswered; one whose Content-Length does gets nta's 413.
    {"oversized/udp_60k_header.sip",          200, 403, kNotSent, Counted::nothing},
    {"oversized/tcp_100k_header.sip",         kNotSent, kNotSent, 0, Counted::nothing},
    {"oversized/tcp_body_over_limit.sip",     kNotSent, kNotSent, 413, Counted::badRequest},
    // Injection: NUL bytes are refused; Sofia ends a line at a bare CR (two headers, neither
    // crossing to the core); escaped CR LF and folded lines are legal SIP.
    {"header_injection/nul_in_value.sip",     400, 400, kNotSent, Counted::badRequest},
    {"header_injection/nul_in_call_id.sip",   400, 400, kNotSent, Counted::badRequest},
    {"header_injection/bare_cr_in_value.sip", 200, 403, kNotSent, Counted::nothing},
    {"header_injection/encoded_crlf_in_uri.sip", 200, 403, kNotSent, Counted::nothing},
    {"header_injection/folded_via.sip",       200, 403, kNotSent, Counted::nothing},
    {"header_injection/bad_via.sip",          0,   0,   kNotSent, Counted::badRequest},
    // SDP the SBC cannot anchor: 488 from a trunk (after admission; the slot is freed).
    {"broken_sdp/garbage_body.sip",           488, 403, 488,      Counted::nothing},
    {"broken_sdp/no_media.sip",               488, 403, kNotSent, Counted::nothing},
    {"broken_sdp/host_name_address.sip",      488, 403, kNotSent, Counted::nothing},
    {"broken_sdp/non_token_format.sip",       488, 403, kNotSent, Counted::nothing},
    {"broken_sdp/nul_in_body.sip",            488, 403, kNotSent, Counted::nothing},
    // Raw non-UTF-8 bytes: harmless where nothing is copied (display name, an OPTIONS to the
    // SBC, an unknown header), 400 in the user parts an INVITE would carry to the core.
    {"non_utf8/display_name.sip",             200, 403, kNotSent, Counted::nothing},
    {"non_utf8/request_uri_user.sip",         200, 403, kNotSent, Counted::nothing},
    {"non_utf8/header_name.sip",              200, 403, kNotSent, Counted::nothing},
    {"non_utf8/invite_request_uri_user.sip",  400, 403, 400,      Counted::badUser},
    {"non_utf8/invite_from_user.sip",         400, 403, kNotSent, Counted::badUser},
    // Truncated datagrams: cut in the start line (not SIP), in the headers (mandatory ones
    // missing: 400), just before the blank line (complete headers: served), in the body
    // (shorter than Content-Length: 400).
    {"truncated/in_start_line.sip",           0,   0,   kNotSent, Counted::notSip},
    {"truncated/in_headers.sip",              400, 400, kNotSent, Counted::badRequest},
    {"truncated/before_blank_line.sip",       200, 403, kNotSent, Counted::nothing},
    {"truncated/in_sdp_body.sip",             400, 400, kNotSent, Counted::badRequest},
    // A header value Sofia cannot parse (not a mandatory header): nta leaves the request
    // to the front door, which answers by source (400 to a trunk, the refusals policy to
    // anyone else). An unknown header's bad name is ignored (non_utf8/header_name.sip).
    {"bad_header_value/max_forwards_not_a_number.sip", 400, 403, 400, Counted::badHeader},
    {"bad_header_value/session_expires_garbage.sip", 400, 403, kNotSent, Counted::badHeader},
    {"bad_header_value/rseq_negative.sip",    400, 403, kNotSent, Counted::badHeader},
    {"bad_header_value/expires_garbage.sip",  400, 403, kNotSent, Counted::badHeader},
};
// clang-format on

std::string readCorpus(const std::string& name) {
  std::ifstream in(kCorpusDir + "/" + name, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void replaceAll(std::string& text, const std::string& from, const std::string& to) {
  for (auto at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size())) {
    text.replace(at, from.size(), to);
  }
}

// The corpus message as sent from `source:port` over `transport`; `tag` makes its Call-ID
// and branch unique to this send.
std::string filledIn(std::string message, const std::string& source, int port,
                     const char* transport, const std::string& tag) {
  replaceAll(message, "{via}", source + ":" + std::to_string(port) + ";rport");
  replaceAll(message, "{transport}", transport);
  replaceAll(message, "{case}", tag);
  return message;
}

// The status code of a response's first line; 0 if it is not one.
int statusOf(const std::string& response) {
  if (response.rfind("SIP/2.0 ", 0) != 0 || response.size() < 11) return 0;
  return std::atoi(response.substr(8, 3).c_str());
}

// Sends `message` in one datagram from `source` and returns the first response's status
// (kNoResponse if none came within `wait`).
int sendUdp(const std::string& message, const std::string& source, int sbcPort,
            const std::string& tag, std::chrono::milliseconds wait) {
  UdpSocket socket(source.c_str(), 0);
  if (!socket.bound()) return -2;
  socket.sendTo(filledIn(message, source, socket.port(), "UDP", tag), "127.0.0.10", sbcPort);
  const auto deadline = std::chrono::steady_clock::now() + wait;
  while (std::chrono::steady_clock::now() < deadline) {
    if (const auto response = socket.receive()) return statusOf(response->first);
  }
  return kNoResponse;
}

// Sends `message` over a new TCP connection from `source`; the first response's status, or
// kNoResponse when none came within `wait` (or the SBC closed the connection unanswered).
int sendTcp(const std::string& message, const std::string& source, int sbcPort,
            const std::string& tag, std::chrono::milliseconds wait) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in local{};
  local.sin_family = AF_INET;
  ::inet_pton(AF_INET, source.c_str(), &local.sin_addr);
  sockaddr_in remote{};
  remote.sin_family = AF_INET;
  remote.sin_port = htons(static_cast<std::uint16_t>(sbcPort));
  ::inet_pton(AF_INET, "127.0.0.10", &remote.sin_addr);
  socklen_t length = sizeof local;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&local), sizeof local) != 0 ||
      ::connect(fd, reinterpret_cast<sockaddr*>(&remote), sizeof remote) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &length) != 0) {
    ::close(fd);
    return -2;
  }
  timeval timeout{0, 100000};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  const std::string data = filledIn(message, source, ntohs(local.sin_port), "TCP", tag);
  for (std::size_t sent = 0; sent < data.size();) {
    const auto n = ::send(fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) break;  // the SBC may close the connection on an oversized message
    sent += static_cast<std::size_t>(n);
  }
  std::string received;
  const auto deadline = std::chrono::steady_clock::now() + wait;
  while (std::chrono::steady_clock::now() < deadline && received.find("\r\n") == std::string::npos) {
    char buffer[2048];
    const auto n = ::recv(fd, buffer, sizeof buffer, 0);
    if (n == 0) break;  // closed
    if (n > 0) received.append(buffer, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return statusOf(received);
}

class MalformedSip : public TrunkFixture {
 protected:
  void SetUp() override {
    TrunkFixture::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    accessListenExtra_ = R"(, { address = "127.0.0.10"; port = 0; transport = "tcp"; })";
    startSbc(10);
    const std::string& bound = daemon_->boundLine();
    const auto at = bound.find("sip.access=tcp:127.0.0.10:");
    ASSERT_NE(at, std::string::npos) << bound;
    accessTcpPort_ = std::stoi(bound.substr(at + 26));
  }

  int accessTcpPort_ = 0;
};

// Proves: every corpus case gets its expected answer (400/505 where a response can be sent,
// nothing where it cannot, 488 for SDP the SBC cannot anchor, 403 to unknown sources where
// the SBC itself decides), each category is counted in sbc_sip_malformed_total, no slot or
// crash results, and a normal call completes afterwards.
TEST_F(MalformedSip, CorpusIsAnsweredOrDroppedAndCounted) {
  // An answer, when one comes, takes a few milliseconds; silence is judged after this long.
  constexpr auto kWait = 400ms;
  std::map<Counted, int> expected;
  int unknownHost = 50;
  for (const Case& c : kCases) {
    SCOPED_TRACE(c.file);
    const std::string message = readCorpus(c.file);
    ASSERT_FALSE(message.empty()) << "corpus file missing";
    const std::string tag = std::to_string(&c - kCases);
    if (c.fromTrunk != kNotSent) {
      EXPECT_EQ(sendUdp(message, "127.0.0.2", accessPort_, tag + "-trunk", kWait), c.fromTrunk)
          << "from the trunk over UDP";
      ++expected[c.counted];
    }
    if (c.fromUnknown != kNotSent) {
      const std::string stranger = "127.0.0." + std::to_string(unknownHost++);
      EXPECT_EQ(sendUdp(message, stranger, accessPort_, tag + "-unknown", kWait), c.fromUnknown)
          << "from " << stranger << " over UDP";
      // The front door refuses an unknown source before it looks at user parts.
      if (c.counted != Counted::badUser) ++expected[c.counted];
    }
    if (c.overTcp != kNotSent) {
      EXPECT_EQ(sendTcp(message, "127.0.0.2", accessTcpPort_, tag + "-tcp", kWait), c.overTcp)
          << "from the trunk over TCP";
      if (c.file != std::string("oversized/tcp_100k_header.sip")) ++expected[c.counted];
    }
  }
  EXPECT_TRUE(daemon_->waitForMetric(
      "sbc_sip_malformed_total{realm=\"access\",reason=\"not_sip\"}", expected[Counted::notSip]))
      << daemon_->scrape();
  EXPECT_TRUE(daemon_->waitForMetric(
      "sbc_sip_malformed_total{realm=\"access\",reason=\"bad_request\"}",
      expected[Counted::badRequest]))
      << daemon_->scrape();
  EXPECT_TRUE(daemon_->waitForMetric(
      "sbc_sip_malformed_total{realm=\"access\",reason=\"bad_user\"}", expected[Counted::badUser]))
      << daemon_->scrape();
  EXPECT_TRUE(daemon_->waitForMetric(
      "sbc_sip_malformed_total{realm=\"access\",reason=\"bad_header\"}",
      expected[Counted::badHeader]))
      << daemon_->scrape();
  // nta's own refusals are counted as responses like the SBC's: the bad version's 505 to the
  // trunk over UDP and TCP and to the unknown source (within its budget).
  EXPECT_TRUE(daemon_->waitForMetric("sbc_sip_responses_total{code=\"505\",realm=\"access\"}", 3))
      << daemon_->scrape();
  expectNoActiveCalls();

  // Still serving: a normal call through, and its slot freed.
  callThrough("uas_answer.xml", "uac_hold.xml");
  expectNoActiveCalls();
  EXPECT_FALSE(daemon_->process().waitForExit(0ms).has_value()) << "sbcd exited";
}

// Proves: nta's own refusals to an unknown source (here 505 for another SIP version) are
// within that source's response budget, as the front door's 403s are (burst 20, 5/s): of
// 40 such requests sent at once from one address, about 20 are answered, the rest dropped
// and counted unanswered. Before the refusal screen, nta answered all 40.
TEST_F(MalformedSip, NtaRefusalsToAnUnknownSourceStayWithinItsBudget) {
  constexpr int kSent = 40;
  const std::string message = readCorpus("bad_start_line/unknown_version.sip");
  ASSERT_FALSE(message.empty());
  const UdpSocket socket("127.0.0.49", 0);
  ASSERT_TRUE(socket.bound());
  for (int i = 0; i < kSent; ++i) {
    socket.sendTo(filledIn(message, "127.0.0.49", socket.port(), "UDP",
                           "budget-" + std::to_string(i)),
                  "127.0.0.10", accessPort_);
  }
  int answered = 0;
  while (const auto response = socket.receive()) {  // until 200 ms of silence
    EXPECT_EQ(statusOf(response->first), 505);
    ++answered;
  }
  // The burst, and what refilled at 5/s while the 40 were taken in (a few milliseconds).
  EXPECT_GE(answered, 20);
  EXPECT_LE(answered, 22);
  EXPECT_TRUE(daemon_->waitForMetric(
      "sbc_sip_unanswered_total{realm=\"access\",reason=\"unknown_source\"}", kSent - answered))
      << daemon_->scrape();
  EXPECT_TRUE(daemon_->waitForMetric("sbc_sip_responses_total{code=\"505\",realm=\"access\"}",
                                     answered))
      << daemon_->scrape();
}

// Requests nta refuses before their header section has been parsed to its end (a NUL byte
// in a header, a datagram cut inside one): the refusal screen, which runs at the end of the
// headers, never sees them, and nta answers them 400 to any source (docs/operations.md).
const std::set<std::string> kRefusedBeforeTheScreen = {
    "header_injection/nul_in_value.sip",
    "header_injection/nul_in_call_id.sip",
    "truncated/in_headers.sip",
};

class MalformedSipDropping : public TrunkFixture {
 protected:
  void SetUp() override {
    TrunkFixture::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    extraConfig_ = R"(refusals = { unknown_source = "drop"; };)";
    accessListenExtra_ = R"(, { address = "127.0.0.10"; port = 0; transport = "tcp"; })";
    startSbc(10);
    const std::string& bound = daemon_->boundLine();
    const auto at = bound.find("sip.access=tcp:127.0.0.10:");
    ASSERT_NE(at, std::string::npos) << bound;
    accessTcpPort_ = std::stoi(bound.substr(at + 26));
  }

  int accessTcpPort_ = 0;
};

// Proves: with refusals.unknown_source = "drop", an unknown source gets no answer to any
// case, over UDP and TCP, each counted unanswered: neither where the front door decides (a
// bad header value included: nta answered those 400 before NTATAG_BAD_REQ_MASK(0)) nor where
// nta refuses by itself (a bad SIP version 505, missing or unparseable mandatory headers
// 400, a Content-Length over the size limit 413), which the refusal screen of the SBC's
// message class (nta_refusals.h) now silences: before it, those came back from nta to any
// source. A trunk still gets each of nta's refusals. Pinned down as it is on the wire: the
// few nta refuses before the screen runs (kRefusedBeforeTheScreen) still get 400.
TEST_F(MalformedSipDropping, UnknownSourcesGetNothingTrunksGetNtasRefusals) {
  constexpr auto kWait = 400ms;
  int unknownHost = 50;
  int dropped = 0;
  int badHeaders = 0;
  for (const Case& c : kCases) {
    SCOPED_TRACE(c.file);
    const std::string message = readCorpus(c.file);
    ASSERT_FALSE(message.empty()) << "corpus file missing";
    const std::string tag = std::to_string(&c - kCases);
    const bool unscreened = kRefusedBeforeTheScreen.count(c.file) != 0;
    if (c.fromUnknown != kNotSent) {
      const std::string stranger = "127.0.0." + std::to_string(unknownHost++);
      EXPECT_EQ(sendUdp(message, stranger, accessPort_, tag, kWait),
                unscreened ? c.fromUnknown : kNoResponse)
          << "from " << stranger << " over UDP";
      if (c.fromUnknown != kNoResponse && !unscreened) ++dropped;
      if (c.counted == Counted::badHeader) ++badHeaders;
    }
    if (c.overTcp != kNotSent && c.overTcp != kNoResponse && !unscreened) {
      const std::string stranger = "127.0.0." + std::to_string(unknownHost++);
      EXPECT_EQ(sendTcp(message, stranger, accessTcpPort_, tag + "-tcp", kWait), kNoResponse)
          << "from " << stranger << " over TCP";
      ++dropped;
      if (c.counted == Counted::badHeader) ++badHeaders;
    }
    // nta's own refusals still reach a trunk.
    if (c.counted != Counted::badRequest) continue;
    if (c.fromTrunk != kNotSent) {
      EXPECT_EQ(sendUdp(message, "127.0.0.2", accessPort_, tag + "-trunk", kWait), c.fromTrunk)
          << "from the trunk over UDP";
    }
    if (c.overTcp != kNotSent) {
      EXPECT_EQ(sendTcp(message, "127.0.0.2", accessTcpPort_, tag + "-trunk-tcp", kWait),
                c.overTcp)
          << "from the trunk over TCP";
    }
  }
  EXPECT_TRUE(daemon_->waitForMetric(
      "sbc_sip_unanswered_total{realm=\"access\",reason=\"unknown_source\"}", dropped))
      << daemon_->scrape();
  EXPECT_TRUE(daemon_->waitForMetric(
      "sbc_sip_malformed_total{realm=\"access\",reason=\"bad_header\"}", badHeaders))
      << daemon_->scrape();
  EXPECT_FALSE(daemon_->process().waitForExit(0ms).has_value()) << "sbcd exited";
}

}  // namespace
}  // namespace sbc::test
