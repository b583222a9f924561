// Calls through the B2BUA with SIPp as trunk (127.0.0.2) and core (127.0.0.3): the basic
// call, the trunk's concurrent-call ceiling, and a core that does not answer. Every test
// ends by checking that no call slot leaked.

#include <netinet/in.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <unistd.h>

#include <signal.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <regex>
#include <memory>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "tests/integration/sbcd_process.h"
#include "tests/support/test_env.h"

namespace sbc::test {
namespace {

const std::string kSippDir = std::string(SBC_SOURCE_ROOT) + "/tests/integration/sipp";

// A UDP port free on `address` at the time of asking.
int freeUdpPort(const char* address) {
  const int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in bound{};
  bound.sin_family = AF_INET;
  ::inet_pton(AF_INET, address, &bound.sin_addr);
  socklen_t length = sizeof bound;
  ::bind(fd, reinterpret_cast<sockaddr*>(&bound), sizeof bound);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &length);
  ::close(fd);
  return ntohs(bound.sin_port);
}

class TrunkCalls : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists("/usr/bin/sipp")) {
      if (runningInCi()) FAIL() << "sipp is not installed (tools/install-deps installs it)";
      GTEST_SKIP() << "sipp is not installed";
    }
    corePort_ = freeUdpPort("127.0.0.3");
    trunkPort_ = freeUdpPort("127.0.0.2");
  }

  // The configuration the fixture runs sbcd with (trunk alpha's target: trunkPort_).
  std::string sbcConfig(int maxCalls, int drainSeconds) const {
    return R"(
realms = {
  access = { sip = ( { address = "127.0.0.10"; port = 0; transport = "udp"; } );
             media = { address = "127.0.0.10"; port_min = 20000; port_max = 20999; }; };
  core = { sip = ( { address = "127.0.0.11"; port = 0; transport = "udp"; } );
           media = { address = "127.0.0.11"; port_min = 21000; port_max = 21999; }; };
};
core = { next_hops = ( { host = "127.0.0.3"; port = )" + std::to_string(corePort_) +
                               R"(; transport = "udp"; } ); };
trunks = ( { name = "alpha"; source_prefixes = [ "127.0.0.2/32" ];
             target = { host = "127.0.0.2"; port = )" + std::to_string(trunkPort_) +
                               R"(; };
             max_calls = )" + std::to_string(maxCalls) +
                               R"(; max_calls_per_second = 1000.0; } );
sip = { t1_ms = 50; t1x64_ms = 2000; };
drain = { timeout_s = )" + std::to_string(drainSeconds) + R"(; };
metrics = { listen = "127.0.0.1:0"; };
control = { socket = ")" + dir_.file("sbcd.sock") +
                               R"("; };
)";
  }

  void startSbc(int maxCalls, int drainSeconds = 30) {
    const std::string config = sbcConfig(maxCalls, drainSeconds);
    daemon_ = std::make_unique<RunningDaemon>(dir_.write("sbc.cfg", config));
    ASSERT_GT(daemon_->metricsPort(), 0) << daemon_->process().output();
    const std::string& bound = daemon_->boundLine();
    const auto at = bound.find("sip.access=udp:127.0.0.10:");
    ASSERT_NE(at, std::string::npos) << bound;
    accessPort_ = std::stoi(bound.substr(at + 26));
    const auto coreAt = bound.find("sip.core=udp:127.0.0.11:");
    ASSERT_NE(coreAt, std::string::npos) << bound;
    sbcCorePort_ = std::stoi(bound.substr(coreAt + 24));
  }

  // Starts SIPp as the core and waits until it listens (a call sent earlier would meet an
  // ICMP port-unreachable, which the SBC rightly turns into 503).
  std::unique_ptr<ChildProcess> startCore(const std::string& scenario, int calls) {
    auto core = std::make_unique<ChildProcess>(std::vector<std::string>{
        "/usr/bin/sipp", "-sf", kSippDir + "/" + scenario, "-i", "127.0.0.3", "-bind_local",
        "-p", std::to_string(corePort_), "-m", std::to_string(calls), "-nostdin"});
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (std::chrono::steady_clock::now() < deadline && !udpPortInUse(corePort_)) {
      std::this_thread::sleep_for(20ms);
    }
    return core;
  }

  static bool udpPortInUse(int port, const char* host = "127.0.0.3") {
    const int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<std::uint16_t>(port));
    ::inet_pton(AF_INET, host, &address.sin_addr);
    const bool inUse = ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0;
    ::close(fd);
    return inUse;
  }

  std::vector<std::string> trunkArgs(const std::string& scenario, int calls, int simultaneous) {
    return {"/usr/bin/sipp", "-sf", kSippDir + "/" + scenario, "-i", "127.0.0.2",
            "-bind_local", "-m", std::to_string(calls), "-l", std::to_string(simultaneous),
            "-r", "100", "-timeout", "20s", "-timeout_error", "-nostdin",
            "127.0.0.10:" + std::to_string(accessPort_)};
  }

  CommandResult trunkCalls(const std::string& scenario, int calls, int simultaneous) {
    return runCommand(trunkArgs(scenario, calls, simultaneous), std::chrono::seconds(40));
  }

  // One call (or `calls`) between a SIPp trunk scenario and a SIPp core scenario; both
  // must complete their scenario.
  void callThrough(const std::string& coreScenario, const std::string& trunkScenario,
                   int calls = 1) {
    auto core = startCore(coreScenario, calls);
    const auto trunk = trunkCalls(trunkScenario, calls, calls);
    EXPECT_EQ(trunk.status, 0) << trunk.output;
    EXPECT_EQ(core->waitForExit(10s), 0) << core->output();
  }

  // One core → trunk call (Request-URI ;trunk=alpha): SIPp answers as the trunk at its
  // configured target, SIPp calls as the core; both must complete their scenario.
  void callFromCore() {
    ChildProcess trunkSide({"/usr/bin/sipp", "-sf", kSippDir + "/trunk_uas_answer.xml", "-i",
                            "127.0.0.2", "-bind_local", "-p", std::to_string(trunkPort_),
                            "-m", "1", "-nostdin"});
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (std::chrono::steady_clock::now() < deadline &&
           !udpPortInUse(trunkPort_, "127.0.0.2")) {
      std::this_thread::sleep_for(20ms);
    }
    const auto coreSide = runCommand(
        {"/usr/bin/sipp", "-sf", kSippDir + "/core_uac_to_trunk.xml", "-i", "127.0.0.3",
         "-bind_local", "-p", std::to_string(corePort_), "-m", "1", "-timeout", "20s",
         "-timeout_error", "-nostdin", "127.0.0.11:" + std::to_string(sbcCorePort_)},
        std::chrono::seconds(40));
    EXPECT_EQ(coreSide.status, 0) << coreSide.output;
    EXPECT_EQ(trunkSide.waitForExit(10s), 0) << trunkSide.output();
  }

  double metric(const std::string& series) {
    return metricValue(daemon_->scrape(), series).value_or(-1);
  }

  // The active-call gauge must come back to zero: no leaked slot.
  void expectNoActiveCalls() {
    EXPECT_TRUE(daemon_->waitForMetric("sbc_trunk_active_calls{trunk=\"alpha\"}", 0))
        << daemon_->scrape();
  }

  TempDir dir_;
  std::unique_ptr<RunningDaemon> daemon_;
  int corePort_ = 0;
  int accessPort_ = 0;
  int trunkPort_ = 0;    // the trunk's configured target
  int sbcCorePort_ = 0;  // the SBC's SIP port in the core realm
};

// Proves: trunk → core calls complete (INVITE, 180, 200, ACK, BYE) through the B2BUA.
TEST_F(TrunkCalls, BasicCallsComplete) {
  startSbc(10);
  callThrough("uas_answer.xml", "uac_hold.xml", 3);
  EXPECT_EQ(metric("sbc_admission_total{result=\"admitted\",trunk=\"alpha\"}"), 3);
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
  const int silent = ::socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<std::uint16_t>(corePort_));
  ::inet_pton(AF_INET, "127.0.0.3", &address.sin_addr);
  ASSERT_EQ(::bind(silent, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  startSbc(10);
  const auto trunk = trunkCalls("uac_hold.xml", 1, 1);
  ::close(silent);
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

// A UDP socket bound to address:port (0: any), closed when destroyed.
class UdpSocket {
 public:
  UdpSocket(const char* address, int port) : fd_(::socket(AF_INET, SOCK_DGRAM, 0)) {
    sockaddr_in local{};
    local.sin_family = AF_INET;
    local.sin_port = htons(static_cast<std::uint16_t>(port));
    ::inet_pton(AF_INET, address, &local.sin_addr);
    bound_ = ::bind(fd_, reinterpret_cast<sockaddr*>(&local), sizeof local) == 0;
    timeval timeout{0, 200000};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  }
  ~UdpSocket() { ::close(fd_); }
  bool bound() const { return bound_; }
  int port() const {
    sockaddr_in local{};
    socklen_t length = sizeof local;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&local), &length);
    return ntohs(local.sin_port);
  }
  void sendTo(const std::string& payload, const char* address, int port) const {
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(static_cast<std::uint16_t>(port));
    ::inet_pton(AF_INET, address, &to.sin_addr);
    ::sendto(fd_, payload.data(), payload.size(), 0, reinterpret_cast<sockaddr*>(&to),
             sizeof to);
  }
  // One datagram and who sent it ("ip:port"), or nullopt after the 200 ms timeout.
  std::optional<std::pair<std::string, std::string>> receive() const {
    char buffer[2048];
    sockaddr_in from{};
    socklen_t length = sizeof from;
    const auto got = ::recvfrom(fd_, buffer, sizeof buffer, 0,
                                reinterpret_cast<sockaddr*>(&from), &length);
    if (got < 0) return std::nullopt;
    char text[INET_ADDRSTRLEN];
    ::inet_ntop(AF_INET, &from.sin_addr, text, sizeof text);
    return std::make_pair(std::string(buffer, static_cast<std::size_t>(got)),
                          std::string(text) + ":" + std::to_string(ntohs(from.sin_port)));
  }

 private:
  int fd_;
  bool bound_ = false;
};

// Proves: an answered call's media crosses the relay both ways from the SBC's access
// address (the core echoes it), the SDP the trunk sees names only the SBC, and media from
// a source outside the trunk's prefixes is dropped and counted.
TEST_F(TrunkCalls, MediaIsAnchoredOnTheRelay) {
  startSbc(10);
  const int coreMediaPort = freeUdpPort("127.0.0.3");
  auto core = std::make_unique<ChildProcess>(std::vector<std::string>{
      "/usr/bin/sipp", "-sf", kSippDir + "/uas_answer.xml", "-i", "127.0.0.3", "-bind_local",
      "-p", std::to_string(corePort_), "-m", "1", "-nostdin", "-mi", "127.0.0.3", "-mp",
      std::to_string(coreMediaPort), "-rtp_echo"});
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (std::chrono::steady_clock::now() < deadline && !udpPortInUse(corePort_)) {
    std::this_thread::sleep_for(20ms);
  }
  UdpSocket trunkMedia("127.0.0.2", 0);
  ASSERT_TRUE(trunkMedia.bound());
  const std::string trace = dir_.file("trunk-messages.log");
  auto args = trunkArgs("uac_media.xml", 1, 1);
  args.insert(args.end() - 1, {"-key", "trunk_media_port", std::to_string(trunkMedia.port()),
                               "-trace_msg", "-message_file", trace});
  ChildProcess trunk(args);
  ASSERT_TRUE(daemon_->waitForMetric("sbc_trunk_active_calls{trunk=\"alpha\"}", 1));

  // The 200 OK the trunk received names the SBC's access media address and port.
  std::string messages;
  const auto answered = waitForAnsweredMedia(trace, messages);
  ASSERT_TRUE(answered.has_value()) << messages;
  EXPECT_EQ(answered->address, "127.0.0.10");
  EXPECT_EQ(messages.find("127.0.0.3"), std::string::npos) << "core address leaked";
  const int sbcPort = answered->port;

  constexpr int kPackets = 40;
  int echoed = 0;
  for (int i = 0; i < kPackets; ++i) {
    const std::string payload = "rtp-packet-" + std::to_string(i) + std::string(160, 'x');
    trunkMedia.sendTo(payload, "127.0.0.10", sbcPort);
    const auto back = trunkMedia.receive();
    if (back && back->first == payload) {
      ++echoed;
      EXPECT_EQ(back->second, "127.0.0.10:" + std::to_string(sbcPort));
    }
  }
  EXPECT_GE(echoed, kPackets - 2);  // loopback UDP: allow a stray loss, not a broken path

  UdpSocket intruder("127.0.0.4", 0);
  for (int i = 0; i < 5; ++i) intruder.sendTo("spoofed", "127.0.0.10", sbcPort);
  EXPECT_FALSE(intruder.receive().has_value());
  EXPECT_TRUE(daemon_->waitForMetric("sbc_media_dropped_total{reason=\"source_not_allowed\"}", 5));
  EXPECT_GE(metric("sbc_media_packets_total{direction=\"access_to_core\",trunk=\"alpha\"}"),
            kPackets - 2);

  EXPECT_EQ(trunk.waitForExit(20s), 0) << trunk.output();
  EXPECT_EQ(core->waitForExit(10s), 0) << core->output();
  expectNoActiveCalls();
  EXPECT_TRUE(daemon_->waitForMetric("sbc_media_flows", 0));
}

}  // namespace
}  // namespace sbc::test
