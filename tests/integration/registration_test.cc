// Registration passthrough for subscriber lines (issue 6), against SIPp: a terminal on
// 127.0.0.4 (or 127.0.0.5 once it has moved) registers through sbcd (access 127.0.0.10,
// core 127.0.0.11) to a SIPp core registrar on 127.0.0.3 that challenges it with 401.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "tests/integration/line_fixture.h"

namespace sbc::test {
namespace {

using namespace std::chrono_literals;

class Registration : public LineFixture {};

// Proves: a REGISTER from a non-trunk address reaches the core registrar with its
// Request-URI, To, From and credentials intact (the core's 401 passes back, the terminal's
// digest answer verifies at the core), the core sees the SBC's Contact (a token at
// 127.0.0.11) and nothing of the terminal (address, private Contact, User-Agent, Call-ID),
// the terminal gets its own Contact back with the SBC's 60 s, and the binding records
// where the REGISTER really came from.
TEST_F(Registration, PassesTheCoreChallengeThroughAndHidesTheTerminal) {
  startSbc(5);
  const std::string coreTrace = dir_.file("core.trace");
  const std::string lineTrace = dir_.file("line.trace");
  const auto core = registrar("core_registrar.xml", 1, coreTrace);
  const auto line = terminal("line_register.xml", "127.0.0.4", lineTrace);
  ASSERT_EQ(line.status, 0) << line.output;
  ASSERT_EQ(core->waitForExit(10s), 0) << core->output();

  const std::string atCore = receivedMessages(coreTrace);
  ASSERT_NE(atCore.find("REGISTER sip:example.test SIP/2.0"), std::string::npos) << atCore;
  EXPECT_NE(atCore.find("Authorization: Digest"), std::string::npos) << atCore;
  for (const char* leak : {"127.0.0.4", "127.99.0.20", "TerminalVendor", "phone-7", "urn:uuid"}) {
    EXPECT_EQ(atCore.find(leak), std::string::npos) << leak << " reached the core:\n" << atCore;
  }
  const std::string atLine = receivedMessages(lineTrace);
  for (const char* leak : {"127.0.0.3", "127.0.0.11", "CoreRegistrar", "sip:l"}) {
    EXPECT_EQ(atLine.find(leak), std::string::npos) << leak << " reached the terminal:\n"
                                                   << atLine;
  }
  EXPECT_EQ(metric("sbc_registrations"), 1);
  EXPECT_EQ(metric("sbc_register_total{result=\"relayed\"}"), 2);
  EXPECT_EQ(metric("sbc_register_total{result=\"challenged\"}"), 1);
  EXPECT_EQ(metric("sbc_register_total{result=\"accepted\"}"), 1);
  const std::string bindings = listed("alice@example.test");
  EXPECT_NE(bindings.find("alice@example.test udp:127.0.0.4:"), std::string::npos) << bindings;
  EXPECT_NE(bindings.find("contact=sip:alice@127.99.0.20:5062;line=phone-7"), std::string::npos)
      << bindings;
}

// Proves: Expires: 0 removes the binding at the core (forwarded) and in the SBC.
TEST_F(Registration, DeregistrationRemovesTheBinding) {
  startSbc(5);
  const auto core = registrar("core_registrar_dereg.xml");
  const auto line = terminal("line_deregister.xml");
  ASSERT_EQ(line.status, 0) << line.output;
  ASSERT_EQ(core->waitForExit(10s), 0) << core->output();
  EXPECT_TRUE(daemon_->waitForMetric("sbc_registrations", 0)) << daemon_->scrape();
  EXPECT_EQ(listed().find("alice@example.test"), std::string::npos);
}

// Proves: the terminal's refreshes within the core's expiry are answered by the SBC once
// the core has authenticated the terminal (the core's scenario ends after the first
// registration: a refresh sent on would find no registrar and fail the terminal's
// scenario), each with the terminal's Contact and the short expiry.
TEST_F(Registration, RefreshesAreThrottled) {
  startSbc(5);
  const auto core = registrar("core_registrar.xml");
  const auto line = terminal("line_register_refresh.xml");
  ASSERT_EQ(line.status, 0) << line.output;
  ASSERT_EQ(core->waitForExit(10s), 0) << core->output();
  EXPECT_EQ(metric("sbc_register_total{result=\"throttled\"}"), 5);
  EXPECT_EQ(metric("sbc_register_total{result=\"relayed\"}"), 2);
  EXPECT_EQ(metric("sbc_registrations"), 1);
}

// Proves: over TCP too, the refreshes sbcd answers itself (statelessly: no transaction is
// kept for them) reach the terminal on the connection it registered on, with its Contact.
TEST_F(Registration, RefreshesAreThrottledOverTcp) {
  accessTransport_ = "tcp";
  startSbc(5);
  const auto core = registrar("core_registrar.xml");
  const auto line = terminal("line_register_refresh.xml", "127.0.0.4", "", {"-t", "t1"});
  ASSERT_EQ(line.status, 0) << line.output;
  ASSERT_EQ(core->waitForExit(10s), 0) << core->output();
  EXPECT_EQ(metric("sbc_register_total{result=\"throttled\"}"), 5);
  EXPECT_EQ(metric("sbc_register_total{result=\"relayed\"}"), 2);
  const std::string bindings = listed();
  EXPECT_NE(bindings.find("alice@example.test tcp:127.0.0.4:"), std::string::npos) << bindings;
}

// Proves: with lines.throttle_registrations = false every refresh goes to the core (here:
// none answers, so the terminal's refresh fails and nothing is counted throttled).
TEST_F(Registration, WithoutThrottlingRefreshesGoToTheCore) {
  extraConfig_ = "lines = { throttle_registrations = false; };\n";
  startSbc(5);
  const auto core = registrar("core_registrar.xml");
  const auto line = terminal("line_register_refresh.xml");
  EXPECT_NE(line.status, 0) << line.output;
  core->waitForExit(10s);
  EXPECT_EQ(metric("sbc_register_total{result=\"throttled\"}"), 0);
  EXPECT_GE(metric("sbc_register_total{result=\"relayed\"}"), 3);
}

// Proves: a terminal that moves (the same Call-ID, AoR and instance, now from 127.0.0.5)
// is not answered by the SBC but sent to the core, which challenges it again; on the
// core's 200 the binding moves to the new address (one binding, the new address).
TEST_F(Registration, MovedTerminalGoesToTheCoreAndTheBindingFollows) {
  startSbc(5);
  const std::vector<std::string> sameCallId{"-cid_str", "moving-terminal-%u"};
  registerAlice("127.0.0.4", sameCallId);
  ASSERT_NE(listed().find("udp:127.0.0.4:"), std::string::npos);
  registerAlice("127.0.0.5", sameCallId);
  const std::string bindings = listed();
  EXPECT_NE(bindings.find("alice@example.test udp:127.0.0.5:"), std::string::npos) << bindings;
  EXPECT_EQ(bindings.find("127.0.0.4"), std::string::npos) << bindings;
  EXPECT_EQ(metric("sbc_registrations"), 1);
  EXPECT_EQ(metric("sbc_register_total{result=\"challenged\"}"), 2);
  EXPECT_EQ(metric("sbc_register_total{result=\"throttled\"}"), 0);
}

// Proves: a binding the terminal does not refresh is dropped once its expiry (the 10 s
// the SBC granted, plus 5 s of grace) is over.
TEST_F(Registration, UnrefreshedBindingExpires) {
  extraConfig_ = "lines = { register_expires_s = 10; };\n";
  startSbc(5);
  const auto core = registrar("core_registrar.xml");
  // The scenario expects 60 s in the 200: with 10 it fails its check, after the binding
  // was stored; what matters here is the binding.
  terminal("line_register.xml");
  core->waitForExit(10s);
  ASSERT_EQ(metric("sbc_registrations"), 1) << daemon_->scrape();
  const auto deadline = std::chrono::steady_clock::now() + 25s;
  while (std::chrono::steady_clock::now() < deadline && metric("sbc_registrations") != 0) {
    std::this_thread::sleep_for(250ms);
  }
  EXPECT_EQ(metric("sbc_registrations"), 0);
  EXPECT_EQ(listed().find("alice@example.test"), std::string::npos);
}

// A REGISTER as a terminal at `address` would send it (from `socket`'s port).
std::string rawRegister(const UdpSocket& socket, const std::string& address, int cseq,
                        const std::string& instance = "a") {
  const std::string port = std::to_string(socket.port());
  return "REGISTER sip:example.test SIP/2.0\r\n"
         "Via: SIP/2.0/UDP " + address + ":" + port + ";branch=z9hG4bK-raw-" +
         std::to_string(cseq) + instance + "\r\n"
         "From: <sip:bob@example.test>;tag=raw" + instance + "\r\n"
         "To: <sip:bob@example.test>\r\n"
         "Call-ID: raw-" + instance + "@" + address + "\r\n"
         "CSeq: " + std::to_string(cseq) + " REGISTER\r\n"
         "Contact: <sip:bob@127.99.0.30:5060;i=" + instance + ">\r\n"
         "Expires: 600\r\n"
         "Max-Forwards: 70\r\n"
         "Content-Length: 0\r\n\r\n";
}

// 60 REGISTERs of different terminal instances sent at once from `address`.
void sendSixtyRegisters(const UdpSocket& socket, const std::string& address, int accessPort) {
  for (int i = 0; i < 60; ++i) {
    socket.sendTo(rawRegister(socket, address, i + 1, "f" + std::to_string(i)), "127.0.0.10",
                  accessPort);
  }
}

// Proves: a REGISTER flood from one address is cut at 5 per second (burst 20): the rest
// are dropped unanswered and counted; the ones let through reach the (silent) core.
TEST_F(Registration, RegisterFloodFromOneAddressIsRateLimited) {
  startSbc(5);
  UdpSocket flooder("127.0.0.6", 0);
  ASSERT_TRUE(flooder.bound());
  sendSixtyRegisters(flooder, "127.0.0.6", accessPort_);
  // 20 pass at once; a few more may as the bucket refills while the 60 are sent.
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (std::chrono::steady_clock::now() < deadline &&
         metric("sbc_register_total{result=\"rate_limited\"}") < 35) {
    std::this_thread::sleep_for(50ms);
  }
  const double limited = metric("sbc_register_total{result=\"rate_limited\"}");
  EXPECT_GE(limited, 35) << daemon_->scrape();
  EXPECT_LE(limited, 40) << daemon_->scrape();
  EXPECT_EQ(metric("sbc_sip_unanswered_total{realm=\"access\",reason=\"register_flood\"}"),
            limited);
  EXPECT_EQ(metric("sbc_register_total{result=\"relayed\"}"), 60 - limited);
}

// Proves: while more than sip.overload_queue_kib waits in the SIP receive queues,
// REGISTERs that would go to the core get 503 with Retry-After and are counted (as
// overload in sbc_register_total and in the overload refusals), the others reach the core
// (its 401 comes back), every REGISTER gets exactly one answer, and once the queue is down
// a terminal registers again. sbcd is stopped (SIGSTOP) while the REGISTERs are sent, so
// they wait in its queue as they would behind a thread that cannot keep up.
TEST_F(Registration, OverloadRefusesRegistersForTheCore) {
  sipExtra_ = "overload_queue_kib = 8;";
  extraConfig_ = "lines = { register_rate_per_source = 100; };\n";
  startSbc(5);
  constexpr int kRegisters = 60;
  auto core = registrar("core_registrar.xml", kRegisters);
  UdpSocket terminals("127.0.0.6", 0);
  ASSERT_TRUE(terminals.bound());

  const long long queued =
      queueWhileStopped(daemon_->process().pid(), accessPort_, kRegisters * 300,
                        [&] { sendSixtyRegisters(terminals, "127.0.0.6", accessPort_); });
  ASSERT_GE(queued, kRegisters * 300) << "the REGISTERs never reached sbcd's queue";

  int refused = 0, challenged = 0, other = 0, silences = 0;
  while (refused + challenged + other < kRegisters && silences < 25) {
    const auto answer = terminals.receive();
    if (!answer) {
      ++silences;
      continue;
    }
    if (answer->first.rfind("SIP/2.0 503 ", 0) == 0) {
      ++refused;
      EXPECT_NE(answer->first.find("\r\nRetry-After: 5"), std::string::npos) << answer->first;
    } else if (answer->first.rfind("SIP/2.0 401 ", 0) == 0) {
      ++challenged;
    } else {
      ++other;
      ADD_FAILURE() << answer->first;
    }
  }
  EXPECT_GE(refused, 1);
  EXPECT_EQ(refused + challenged, kRegisters) << daemon_->scrape();
  EXPECT_FALSE(terminals.receive().has_value()) << "one answer per REGISTER";
  EXPECT_EQ(metric("sbc_register_total{result=\"overload\"}"), refused) << daemon_->scrape();
  EXPECT_EQ(metric("sbc_sip_overload_refusals_total{realm=\"access\"}"), refused);
  EXPECT_EQ(metric("sbc_register_total{result=\"relayed\"}"), challenged);
  EXPECT_EQ(metric("sbc_register_total{result=\"challenged\"}"), challenged);
  EXPECT_TRUE(daemon_->waitForMetric("sbc_sip_overloaded", 0)) << daemon_->scrape();

  // The queue is down: REGISTERs reach the core again, and a terminal registers (with a
  // registrar of its own: this one waits for answers to its challenges that never come).
  core.reset();
  EXPECT_FALSE(registerAlice().empty());
  EXPECT_EQ(metric("sbc_register_total{result=\"overload\"}"), refused);
  EXPECT_EQ(metric("sbc_registrations"), 1);
}

// Proves: lines.register_rate_per_source sets the per-address budget (many terminals
// behind one NAT address): at 100 per second (burst 400) the same 60 REGISTERs from one
// address all reach the (silent) core, none is dropped.
TEST_F(Registration, RegisterRatePerSourceIsConfigurable) {
  extraConfig_ = "lines = { register_rate_per_source = 100; };\n";
  startSbc(5);
  UdpSocket natAddress("127.0.0.6", 0);
  ASSERT_TRUE(natAddress.bound());
  sendSixtyRegisters(natAddress, "127.0.0.6", accessPort_);
  EXPECT_TRUE(daemon_->waitForMetric("sbc_register_total{result=\"relayed\"}", 60))
      << daemon_->scrape();
  EXPECT_EQ(metric("sbc_register_total{result=\"rate_limited\"}"), 0);
}

// Proves: a reload applies a new lines.register_rate_per_source to the next REGISTER (the
// daemon started with the default 5 per second would drop most of the 60).
TEST_F(Registration, ReloadedRegisterRatePerSourceApplies) {
  startSbc(5);
  extraConfig_ = "lines = { register_rate_per_source = 100; };\n";
  dir_.write("sbc.cfg", sbcConfig(5, 30));
  daemon_->process().signal(SIGHUP);
  ASSERT_TRUE(daemon_->waitForMetric("sbc_config_reloads_total{result=\"success\"}", 1));
  UdpSocket natAddress("127.0.0.6", 0);
  ASSERT_TRUE(natAddress.bound());
  sendSixtyRegisters(natAddress, "127.0.0.6", accessPort_);
  EXPECT_TRUE(daemon_->waitForMetric("sbc_register_total{result=\"relayed\"}", 60))
      << daemon_->scrape();
  EXPECT_EQ(metric("sbc_register_total{result=\"rate_limited\"}"), 0);
}

// Proves: lines.max_bindings bounds the bindings: a new terminal over it gets 503 at once
// (never forwarded), counted rejected; the registered one stays.
TEST_F(Registration, BindingsAreBounded) {
  extraConfig_ = "lines = { max_bindings = 1; };\n";
  startSbc(5);
  registerAlice();
  UdpSocket other("127.0.0.6", 0);
  ASSERT_TRUE(other.bound());
  other.sendTo(rawRegister(other, "127.0.0.6", 1), "127.0.0.10", accessPort_);
  std::optional<std::pair<std::string, std::string>> answer;
  for (int i = 0; i < 25 && !answer; ++i) answer = other.receive();
  ASSERT_TRUE(answer.has_value());
  EXPECT_EQ(answer->first.rfind("SIP/2.0 503", 0), 0u) << answer->first;
  EXPECT_EQ(metric("sbc_register_total{result=\"rejected\"}"), 1);
  EXPECT_EQ(metric("sbc_register_total{result=\"relayed\"}"), 2);
  EXPECT_EQ(metric("sbc_registrations"), 1);
}

// Proves: a registered terminal's keep-alive OPTIONS is answered 200; the same OPTIONS
// from an address with no binding gets the unknown source's 403.
TEST_F(Registration, KeepAliveOptionsOfARegisteredTerminal) {
  startSbc(5);
  const auto options = [&](const char* address) {
    UdpSocket socket(address, 0);
    const std::string port = std::to_string(socket.port());
    socket.sendTo("OPTIONS sip:127.0.0.10 SIP/2.0\r\n"
                  "Via: SIP/2.0/UDP " + std::string(address) + ":" + port +
                      ";branch=z9hG4bK-ka\r\n"
                  "From: <sip:alice@example.test>;tag=ka\r\n"
                  "To: <sip:127.0.0.10>\r\n"
                  "Call-ID: keepalive@" + std::string(address) + "\r\n"
                  "CSeq: 1 OPTIONS\r\n"
                  "Max-Forwards: 70\r\n"
                  "Content-Length: 0\r\n\r\n",
                  "127.0.0.10", accessPort_);
    std::optional<std::pair<std::string, std::string>> answer;
    for (int i = 0; i < 25 && !answer; ++i) answer = socket.receive();
    return answer ? answer->first.substr(0, 11) : std::string("none");
  };
  EXPECT_EQ(options("127.0.0.4"), "SIP/2.0 403");
  registerAlice();
  EXPECT_EQ(options("127.0.0.4"), "SIP/2.0 200");
}

// Proves: bindings survive a reload, and a reload's lines settings apply to the next
// REGISTER: with lines.max_bindings lowered to 1 a second terminal is refused while the
// registered one stays.
TEST_F(Registration, BindingsSurviveAReload) {
  startSbc(5);
  registerAlice();
  extraConfig_ = "lines = { max_bindings = 1; };\n";
  dir_.write("sbc.cfg", sbcConfig(5, 30));
  daemon_->process().signal(SIGHUP);
  ASSERT_TRUE(daemon_->waitForMetric("sbc_config_reloads_total{result=\"success\"}", 1));
  EXPECT_NE(listed().find("alice@example.test udp:127.0.0.4:"), std::string::npos);
  EXPECT_EQ(metric("sbc_registrations"), 1);
  UdpSocket other("127.0.0.6", 0);
  ASSERT_TRUE(other.bound());
  other.sendTo(rawRegister(other, "127.0.0.6", 1), "127.0.0.10", accessPort_);
  std::optional<std::pair<std::string, std::string>> answer;
  for (int i = 0; i < 25 && !answer; ++i) answer = other.receive();
  ASSERT_TRUE(answer.has_value());
  EXPECT_EQ(answer->first.rfind("SIP/2.0 503", 0), 0u) << answer->first;
}

// Proves: an RFC 5626 keep-alive on a TCP connection (CRLF CRLF) is answered with the
// CRLF pong (TPTAG_PONG2PING); without it the connection stays silent.
TEST_F(Registration, CrlfPingOverTcpGetsItsPong) {
  accessListenExtra_ = R"(, { address = "127.0.0.10"; port = 0; transport = "tcp"; })";
  startSbc(5);
  const std::string& bound = daemon_->boundLine();
  const auto at = bound.find("sip.access=tcp:127.0.0.10:");
  ASSERT_NE(at, std::string::npos) << bound;
  const int port = std::stoi(bound.substr(at + 26));
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in local{};
  local.sin_family = AF_INET;
  ::inet_pton(AF_INET, "127.0.0.4", &local.sin_addr);
  sockaddr_in remote{};
  remote.sin_family = AF_INET;
  remote.sin_port = htons(static_cast<std::uint16_t>(port));
  ::inet_pton(AF_INET, "127.0.0.10", &remote.sin_addr);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&local), sizeof local), 0);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&remote), sizeof remote), 0);
  timeval timeout{0, 200000};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  ASSERT_EQ(::send(fd, "\r\n\r\n", 4, MSG_NOSIGNAL), 4);
  std::string pong;
  const auto deadline = std::chrono::steady_clock::now() + 3s;
  while (std::chrono::steady_clock::now() < deadline && pong.size() < 2) {
    char buffer[16];
    const auto n = ::recv(fd, buffer, sizeof buffer, 0);
    if (n == 0) break;
    if (n > 0) pong.append(buffer, static_cast<std::size_t>(n));
  }
  ::close(fd);
  EXPECT_EQ(pong, "\r\n");
}

}  // namespace
}  // namespace sbc::test
