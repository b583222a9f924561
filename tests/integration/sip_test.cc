// The signaling plane's front door with SIPp as the peers: who is answered, who is refused,
// over UDP and TCP, and the budget of responses to unknown sources.

#include <chrono>
#include <filesystem>
#include <memory>
#include <regex>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/integration/sbcd_process.h"
#include "tests/support/test_env.h"

namespace sbc::test {
namespace {

const std::string kSippDir = std::string(SBC_SOURCE_ROOT) + "/tests/integration/sipp";

// The access realm listens on 127.0.0.10 (UDP and TCP), the core realm on 127.0.0.11; the
// trunk is 127.0.0.2, the core next hop 127.0.0.3, strangers 127.0.0.4 and 127.0.0.5.
std::string sipConfig(const TempDir& dir) {
  return R"(
realms = {
  access = { sip = ( { address = "127.0.0.10"; port = 0; transport = "udp"; },
                     { address = "127.0.0.10"; port = 0; transport = "tcp"; } );
             media = { address = "127.0.0.10"; port_min = 20000; port_max = 20999; }; };
  core = { sip = ( { address = "127.0.0.11"; port = 0; transport = "udp"; } );
           media = { address = "127.0.0.11"; port_min = 21000; port_max = 21999; }; };
};
core = { next_hops = ( { host = "127.0.0.3"; port = 5060; transport = "udp"; } ); };
trunks = ( { name = "alpha"; source_prefixes = [ "127.0.0.2/32" ];
             target = { host = "127.0.0.2"; port = 5060; }; max_calls = 10; } );
metrics = { listen = "127.0.0.1:0"; };
control = { socket = ")" +
         dir.file("sbcd.sock") + R"("; };
)";
}

class SipFrontDoor : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists("/usr/bin/sipp")) {
      if (runningInCi()) FAIL() << "sipp is not installed (tools/install-deps installs it)";
      GTEST_SKIP() << "sipp is not installed";
    }
    daemon_ = std::make_unique<RunningDaemon>(dir_.write("sbc.cfg", sipConfig(dir_)));
    ASSERT_GT(daemon_->metricsPort(), 0) << daemon_->process().output();
    const std::string& bound = daemon_->boundLine();
    accessUdp_ = boundPort(bound, "access=udp:127.0.0.10");
    accessTcp_ = boundPort(bound, "access=tcp:127.0.0.10");
    coreUdp_ = boundPort(bound, "core=udp:127.0.0.11");
    ASSERT_TRUE(accessUdp_ > 0 && accessTcp_ > 0 && coreUdp_ > 0) << bound;
  }

  static int boundPort(const std::string& line, const std::string& prefix) {
    const auto at = line.find("sip." + prefix + ":");
    if (at == std::string::npos) return 0;
    return std::stoi(line.substr(at + prefix.size() + 5));
  }

  // Runs `calls` SIPp calls of `scenario` from `localIp` to the SBC; true when all passed.
  CommandResult sipp(const std::string& scenario, const std::string& localIp, int port,
                     const std::string& remoteIp, int calls = 1, const char* transport = "u1") {
    return runCommand({"/usr/bin/sipp", "-sf", kSippDir + "/" + scenario, "-i", localIp,
                       "-bind_local", "-t", transport, "-m", std::to_string(calls), "-r",
                       "1000", "-timeout", "15s", "-timeout_error", "-recv_timeout", "3s",
                       "-nostdin", remoteIp + ":" + std::to_string(port)},
                      std::chrono::seconds(30));
  }

  double metric(const std::string& series) {
    return metricValue(daemon_->scrape(), series).value_or(-1);
  }

  TempDir dir_;
  std::unique_ptr<RunningDaemon> daemon_;
  int accessUdp_ = 0;
  int accessTcp_ = 0;
  int coreUdp_ = 0;
};

// Proves: a trunk's OPTIONS keep-alive is answered 200 over UDP and over TCP.
TEST_F(SipFrontDoor, TrunkOptionsAnswered) {
  const auto udp = sipp("options_200.xml", "127.0.0.2", accessUdp_, "127.0.0.10");
  EXPECT_EQ(udp.status, 0) << udp.output;
  const auto tcp = sipp("options_200.xml", "127.0.0.2", accessTcp_, "127.0.0.10", 1, "t1");
  EXPECT_EQ(tcp.status, 0) << tcp.output;
  EXPECT_EQ(metric("sbc_sip_requests_total{method=\"OPTIONS\",realm=\"access\"}"), 2);
  EXPECT_EQ(metric("sbc_sip_responses_total{code=\"200\",realm=\"access\"}"), 2);
}

// Proves: an INVITE from a source in no trunk's prefixes gets 403 and is counted.
TEST_F(SipFrontDoor, UnknownSourceRefused) {
  const auto result = sipp("invite_403.xml", "127.0.0.4", accessUdp_, "127.0.0.10");
  EXPECT_EQ(result.status, 0) << result.output;
  // The INVITE and the ACK for the 403 both come from the unknown source. SIPp exits once
  // it has sent the ACK, so sbcd may count it after SIPp is gone.
  EXPECT_TRUE(daemon_->waitForMetric("sbc_unknown_source_total{realm=\"access\"}", 2))
      << daemon_->scrape();
  EXPECT_EQ(metric("sbc_sip_responses_total{code=\"403\",realm=\"access\"}"), 1);
  // The trunk's own address still works afterwards.
  EXPECT_EQ(sipp("options_200.xml", "127.0.0.2", accessUdp_, "127.0.0.10").status, 0);
}

// Proves: on the core realm only the configured next hops are answered.
TEST_F(SipFrontDoor, CoreRealmKnowsOnlyItsNextHops) {
  const auto core = sipp("options_200.xml", "127.0.0.3", coreUdp_, "127.0.0.11");
  EXPECT_EQ(core.status, 0) << core.output;
  const auto stranger = sipp("invite_403.xml", "127.0.0.5", coreUdp_, "127.0.0.11");
  EXPECT_EQ(stranger.status, 0) << stranger.output;
  // INVITE and ACK; the ACK may be counted after SIPp has exited.
  EXPECT_TRUE(daemon_->waitForMetric("sbc_unknown_source_total{realm=\"core\"}", 2))
      << daemon_->scrape();
  EXPECT_EQ(metric("sbc_sip_responses_total{code=\"403\",realm=\"core\"}"), 1);
}

// Proves: a flood from one unknown source gets a bounded number of 403s; the rest are
// dropped and counted, and the SBC keeps answering its trunk.
TEST_F(SipFrontDoor, UnknownSourceFloodIsRateLimited) {
  constexpr int kFlood = 200;
  // Most of these calls fail (no response); only the count of responses matters.
  sipp("invite_403.xml", "127.0.0.4", accessUdp_, "127.0.0.10", kFlood);
  const double answered = metric("sbc_sip_responses_total{code=\"403\",realm=\"access\"}");
  const double unanswered =
      metric("sbc_sip_unanswered_total{realm=\"access\",reason=\"unknown_source\"}");
  const double seen = metric("sbc_unknown_source_total{realm=\"access\"}");
  EXPECT_GE(answered, 20);        // the burst
  EXPECT_LT(answered, kFlood / 2);  // far from every request
  EXPECT_GE(seen, kFlood);        // SIPp retransmits unanswered INVITEs: more requests than calls
  // Every unknown request is answered or counted unanswered; ACKs for the 403s are neither.
  EXPECT_LE(answered + unanswered, seen);
  EXPECT_GE(answered + unanswered, kFlood);
  EXPECT_EQ(sipp("options_200.xml", "127.0.0.2", accessUdp_, "127.0.0.10").status, 0);
}

}  // namespace
}  // namespace sbc::test
