// The basic trunk → core call with sbcd's dpdk media driver: SIP stays on loopback (SIPp
// trunk on 127.0.0.2, SIPp core on 127.0.0.3), while media crosses the DPDK fast path over
// net_af_packet on two veth pairs. The veth ends sbcd drives have no kernel address; their
// peers sit in two network namespaces the test creates (trunk side 10.71.0.0/24, core
// side 10.72.0.0/24), where the trunk's media socket and the core's echo run. Root only:
// skipped otherwise, and a failure under CI=true. Namespaces and veths carry the test's
// PID; they are removed in TearDown, at exit, and from a signal handler (fork + exec).

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <optional>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "tests/integration/sbcd_process.h"
#include "tests/support/test_env.h"

namespace sbc::test {
namespace {

const std::string kSippDir = std::string(SBC_SOURCE_ROOT) + "/tests/integration/sipp";
const std::string kId = std::to_string(::getpid());
// Interface names stay under IFNAMSIZ (16) for any PID.
const std::string kTrunkNs = "sbcq" + kId + "t", kCoreNs = "sbcq" + kId + "c";
const std::string kTrunkIf = "sbcq" + kId + "ta", kTrunkPeerIf = "sbcq" + kId + "tb";
const std::string kCoreIf = "sbcq" + kId + "ca", kCorePeerIf = "sbcq" + kId + "cb";
const std::string kEalPrefix = "sbc-test-" + kId;

// The SBC's media addresses (answered by DPDK's ARP only) and the peers in the namespaces.
constexpr const char* kAccessMedia = "10.71.0.1";
constexpr const char* kTrunkMedia = "10.71.0.2";
constexpr const char* kIntruder = "10.71.0.4";
constexpr const char* kCoreMedia = "10.72.0.1";
constexpr const char* kCoreEcho = "10.72.0.3";

int sh(const std::string& command) {
  return std::system((command + " >/dev/null 2>&1").c_str());
}

void removeRuntimeDir() {
  std::error_code ignored;
  std::filesystem::remove_all("/var/run/dpdk/" + kEalPrefix, ignored);
  std::filesystem::remove_all("/tmp/dpdk/" + kEalPrefix, ignored);
}

void removeTopology() {
  sh("ip netns del " + kTrunkNs);
  sh("ip netns del " + kCoreNs);
  sh("ip link del " + kTrunkIf);
  sh("ip link del " + kCoreIf);
}

// --- Cleanup from a signal handler: only async-signal-safe calls (kill, fork, execve,
// waitpid) on argv arrays prepared beforehand.
std::vector<std::vector<std::string>> gCleanupCommands;
std::vector<std::vector<char*>> gCleanupArgv;
std::atomic<pid_t> gChildren[4] = {};

void prepareSignalCleanup() {
  gCleanupCommands = {{"/usr/sbin/ip", "netns", "del", kTrunkNs},
                      {"/usr/sbin/ip", "netns", "del", kCoreNs},
                      {"/usr/sbin/ip", "link", "del", kTrunkIf},
                      {"/usr/sbin/ip", "link", "del", kCoreIf},
                      {"/bin/rm", "-rf", "/var/run/dpdk/" + kEalPrefix}};
  for (auto& command : gCleanupCommands) {
    std::vector<char*> argv;
    for (auto& arg : command) argv.push_back(arg.data());
    argv.push_back(nullptr);
    gCleanupArgv.push_back(std::move(argv));
  }
}

// The handlers in place before ours, restored when ours has cleaned up.
sighandler_t gPreviousHandler[NSIG] = {};

void onFatalSignal(int signo) {
  for (auto& child : gChildren) {
    const pid_t pid = child.load();
    if (pid > 0) ::kill(pid, SIGKILL);
  }
  static char* const noEnv[] = {nullptr};
  for (auto& argv : gCleanupArgv) {
    const pid_t pid = ::fork();
    if (pid == 0) {
      const int devNull = ::open("/dev/null", O_WRONLY);
      if (devNull >= 0) {
        ::dup2(devNull, 1);
        ::dup2(devNull, 2);
      }
      ::execve(argv[0], argv.data(), noEnv);
      ::_exit(127);
    }
    if (pid > 0) ::waitpid(pid, nullptr, 0);
  }
  // Whatever handled the signal before (tests/support's temp-folder cleanup) runs next.
  ::signal(signo, gPreviousHandler[signo]);
  ::raise(signo);
}

void trackChild(int slot, pid_t pid) { gChildren[slot].store(pid); }

bool makeSide(const std::string& ns, const std::string& ours, const std::string& peer,
              const std::vector<std::string>& peerAddresses) {
  bool ok = sh("ip netns add " + ns) == 0 &&
            sh("ip link add " + ours + " type veth peer name " + peer) == 0 &&
            sh("ip link set " + peer + " netns " + ns) == 0 &&
            sh("sysctl -w net.ipv6.conf." + ours + ".disable_ipv6=1") == 0 &&
            sh("ip link set " + ours + " up") == 0 &&
            sh("ip netns exec " + ns + " ip link set lo up") == 0 &&
            sh("ip netns exec " + ns + " ip link set " + peer + " up") == 0 &&
            sh("ip netns exec " + ns + " ethtool -K " + peer + " tx off") == 0;
  for (const auto& address : peerAddresses) {
    ok = ok && sh("ip netns exec " + ns + " ip addr add " + address + "/24 dev " + peer) == 0;
  }
  return ok;
}

// A UDP socket inside a namespace (a short-lived thread enters it; the socket stays there),
// with a receive timeout of 200 ms. -1 on failure.
int socketIn(const std::string& ns, const char* address, int port = 0) {
  int fd = -1;
  std::thread([&] {
    const int nsFd = ::open(("/var/run/netns/" + ns).c_str(), O_RDONLY | O_CLOEXEC);
    if (nsFd < 0) return;
    const bool entered = ::setns(nsFd, CLONE_NEWNET) == 0;
    ::close(nsFd);
    if (!entered) return;
    fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_in local{};
    local.sin_family = AF_INET;
    local.sin_port = htons(static_cast<std::uint16_t>(port));
    ::inet_pton(AF_INET, address, &local.sin_addr);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&local), sizeof local) != 0) {
      ::close(fd);
      fd = -1;
    }
  }).join();
  if (fd >= 0) {
    timeval timeout{0, 200000};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  }
  return fd;
}

int portOf(int fd) {
  sockaddr_in local{};
  socklen_t length = sizeof local;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &length);
  return ntohs(local.sin_port);
}

void sendTo(int fd, const std::string& payload, const char* address, int port) {
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(static_cast<std::uint16_t>(port));
  ::inet_pton(AF_INET, address, &to.sin_addr);
  ::sendto(fd, payload.data(), payload.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to);
}

// One datagram and its sender ("ip:port"), or nullopt after the socket's 200 ms timeout.
std::optional<std::pair<std::string, std::string>> receive(int fd) {
  char buffer[2048];
  sockaddr_in from{};
  socklen_t length = sizeof from;
  const auto got =
      ::recvfrom(fd, buffer, sizeof buffer, 0, reinterpret_cast<sockaddr*>(&from), &length);
  if (got < 0) return std::nullopt;
  char text[INET_ADDRSTRLEN];
  ::inet_ntop(AF_INET, &from.sin_addr, text, sizeof text);
  return std::make_pair(std::string(buffer, static_cast<std::size_t>(got)),
                        std::string(text) + ":" + std::to_string(ntohs(from.sin_port)));
}

// The core's media peer: echoes every datagram back to its sender until stopped, and
// remembers who sent them.
class Echo {
 public:
  explicit Echo(int fd) : fd_(fd), thread_([this] { run(); }) {}
  ~Echo() {
    stop_ = true;
    thread_.join();
    ::close(fd_);
  }
  Echo(const Echo&) = delete;
  Echo& operator=(const Echo&) = delete;
  int echoed() const { return echoed_.load(); }
  int fromOthers() const { return fromOthers_.load(); }

 private:
  void run() {
    char buffer[2048];
    while (!stop_) {
      sockaddr_in from{};
      socklen_t length = sizeof from;
      const auto got =
          ::recvfrom(fd_, buffer, sizeof buffer, 0, reinterpret_cast<sockaddr*>(&from), &length);
      if (got < 0) continue;  // the 200 ms timeout: check stop_
      char text[INET_ADDRSTRLEN];
      ::inet_ntop(AF_INET, &from.sin_addr, text, sizeof text);
      if (std::string(text) != kCoreMedia) ++fromOthers_;
      ::sendto(fd_, buffer, static_cast<std::size_t>(got), 0, reinterpret_cast<sockaddr*>(&from),
               length);
      ++echoed_;
    }
  }
  int fd_;
  std::atomic<bool> stop_{false};
  std::atomic<int> echoed_{0}, fromOthers_{0};
  std::thread thread_;
};

// A UDP port free on 127.0.0.3 at the time of asking.
int freeCorePort() {
  const int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in bound{};
  bound.sin_family = AF_INET;
  ::inet_pton(AF_INET, "127.0.0.3", &bound.sin_addr);
  ::bind(fd, reinterpret_cast<sockaddr*>(&bound), sizeof bound);
  const int port = portOf(fd);
  ::close(fd);
  return port;
}

bool udpPortInUse(int port) {
  const int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<std::uint16_t>(port));
  ::inet_pton(AF_INET, "127.0.0.3", &address.sin_addr);
  const bool inUse = ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0;
  ::close(fd);
  return inUse;
}

class DpdkCall : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string missing;
    if (::geteuid() != 0) {
      missing = "needs root (network namespaces, veths, af_packet)";
    } else if (!std::filesystem::exists("/usr/bin/sipp")) {
      missing = "sipp is not installed (tools/install-deps installs it)";
    } else if (!std::filesystem::exists("/usr/sbin/ip") ||
               !std::filesystem::exists("/usr/sbin/ethtool")) {
      missing = "iproute2 and ethtool are needed";
    }
    if (!missing.empty()) {
      if (runningInCi()) FAIL() << missing;
      GTEST_SKIP() << missing;
    }
    static bool registered = false;
    if (!registered) {
      registered = true;
      prepareSignalCleanup();
      std::atexit([] {
        removeTopology();
        removeRuntimeDir();
      });
      for (const int signo : {SIGINT, SIGTERM, SIGHUP, SIGABRT, SIGSEGV}) {
        gPreviousHandler[signo] = ::signal(signo, onFatalSignal);
      }
    }
    removeTopology();
    const bool made = makeSide(kTrunkNs, kTrunkIf, kTrunkPeerIf, {kTrunkMedia, kIntruder}) &&
                      makeSide(kCoreNs, kCoreIf, kCorePeerIf, {kCoreEcho});
    if (!made) {
      if (runningInCi()) FAIL() << "cannot create network namespaces and veth pairs";
      GTEST_SKIP() << "cannot create network namespaces and veth pairs";
    }
    corePort_ = freeCorePort();
  }

  void TearDown() override {
    daemon_.reset();  // sbcd (killed if still running) lets go of the veths first
    for (auto& child : gChildren) child.store(0);
    removeTopology();
    removeRuntimeDir();
  }

  void startSbc() {
    const std::string config = R"(
realms = {
  access = { sip = ( { address = "127.0.0.10"; port = 0; transport = "udp"; } );
             media = { address = ")" + std::string(kAccessMedia) +
                               R"("; port_min = 20000; port_max = 20999; }; };
  core = { sip = ( { address = "127.0.0.11"; port = 0; transport = "udp"; } );
           media = { address = ")" + std::string(kCoreMedia) +
                               R"("; port_min = 21000; port_max = 21999; }; };
};
media = { driver = "dpdk"; };
dpdk = {
  eal_args = [ "--no-huge", "-m", "256", "--no-pci", "--no-shconf", "--no-telemetry",
               "--file-prefix=)" + kEalPrefix + R"(", "-l", "0,1",
               "--vdev=net_af_packet0,iface=)" + kTrunkIf + R"(",
               "--vdev=net_af_packet1,iface=)" + kCoreIf + R"(" ];
  ports = ( { device = "net_af_packet0"; realm = "access"; },
            { device = "net_af_packet1"; realm = "core"; } );
};
core = { next_hops = ( { host = "127.0.0.3"; port = )" + std::to_string(corePort_) +
                               R"(; transport = "udp"; } ); };
trunks = ( { name = "alpha"; source_prefixes = [ "127.0.0.2/32", ")" +
                               std::string(kTrunkMedia) + R"(/32" ];
             target = { host = "127.0.0.2"; port = 5060; };
             max_calls = 10; max_calls_per_second = 1000.0; } );
sip = { t1_ms = 50; t1x64_ms = 2000; };
drain = { timeout_s = 5; };
metrics = { listen = "127.0.0.1:0"; };
control = { socket = ")" + dir_.file("sbcd.sock") +
                               R"("; };
)";
    daemon_ = std::make_unique<RunningDaemon>(dir_.write("sbc.cfg", config));
    trackChild(0, daemon_->process().pid());
    ASSERT_GT(daemon_->metricsPort(), 0) << daemon_->process().output();
    const std::string& bound = daemon_->boundLine();
    const auto at = bound.find("sip.access=udp:127.0.0.10:");
    ASSERT_NE(at, std::string::npos) << bound;
    accessPort_ = std::stoi(bound.substr(at + 26));
  }

  double metric(const std::string& series) {
    return metricValue(daemon_->scrape(), series).value_or(-1);
  }

  TempDir dir_;
  std::unique_ptr<RunningDaemon> daemon_;
  int corePort_ = 0;
  int accessPort_ = 0;
};

// Proves: with media.driver = "dpdk", an answered call's media crosses the DPDK fast path
// both ways (the core echoes it from its namespace; the trunk gets every packet back
// intact, in order, from the SBC's access media address and port), media from a source
// outside the trunk's prefixes is dropped and counted, and the call ends with its slot
// and flows freed.
TEST_F(DpdkCall, MediaCrossesTheDpdkFastPath) {
  ASSERT_NO_FATAL_FAILURE(startSbc());
  const int echoFd = socketIn(kCoreNs, kCoreEcho);
  ASSERT_GE(echoFd, 0);
  Echo echo(echoFd);
  auto core = std::make_unique<ChildProcess>(std::vector<std::string>{
      "/usr/bin/sipp", "-sf", kSippDir + "/uas_answer_media_at.xml", "-i", "127.0.0.3",
      "-bind_local", "-p", std::to_string(corePort_), "-m", "1", "-nostdin", "-key",
      "core_media_ip", kCoreEcho, "-key", "core_media_port", std::to_string(portOf(echoFd))});
  trackChild(1, core->pid());
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (std::chrono::steady_clock::now() < deadline && !udpPortInUse(corePort_)) {
    std::this_thread::sleep_for(20ms);
  }
  const int trunkFd = socketIn(kTrunkNs, kTrunkMedia);
  ASSERT_GE(trunkFd, 0);
  const int intruderFd = socketIn(kTrunkNs, kIntruder);
  ASSERT_GE(intruderFd, 0);
  const std::string trace = dir_.file("trunk-messages.log");
  ChildProcess trunk({"/usr/bin/sipp", "-sf", kSippDir + "/uac_media_at.xml", "-i",
                      "127.0.0.2", "-bind_local", "-m", "1", "-l", "1", "-r", "100",
                      "-timeout", "30s", "-timeout_error", "-nostdin", "-key",
                      "trunk_media_ip", kTrunkMedia, "-key", "trunk_media_port",
                      std::to_string(portOf(trunkFd)), "-trace_msg", "-message_file", trace,
                      "127.0.0.10:" + std::to_string(accessPort_)});
  trackChild(2, trunk.pid());
  ASSERT_TRUE(daemon_->waitForMetric("sbc_trunk_active_calls{trunk=\"alpha\"}", 1))
      << daemon_->scrape();

  // The 200 OK the trunk received names the SBC's access media address and port.
  std::string messages;
  const auto answered = waitForAnsweredMedia(trace, messages);
  ASSERT_TRUE(answered.has_value()) << messages;
  EXPECT_EQ(answered->address, kAccessMedia);
  EXPECT_EQ(messages.find(kCoreEcho), std::string::npos) << "core media address leaked";
  const int sbcPort = answered->port;
  const std::string sbcMedia = std::string(kAccessMedia) + ":" + std::to_string(sbcPort);

  // Warm-up: the relay resolves the peers' MACs by ARP, so the first packets may wait or be
  // dropped as unresolved. Bounded: at most 25 tries of 200 ms.
  bool warm = false;
  for (int i = 0; i < 25 && !warm; ++i) {
    sendTo(trunkFd, "warm-up-" + std::to_string(i), kAccessMedia, sbcPort);
    while (const auto back = receive(trunkFd)) warm = warm || back->second == sbcMedia;
  }
  ASSERT_TRUE(warm) << "no packet came back through the relay; " << daemon_->scrape();
  while (receive(trunkFd)) {
  }

  constexpr int kPackets = 50;
  int echoed = 0;
  for (int i = 0; i < kPackets; ++i) {
    const std::string payload = "rtp-packet-" + std::to_string(i) + std::string(160, 'x');
    sendTo(trunkFd, payload, kAccessMedia, sbcPort);
    const auto back = receive(trunkFd);
    ASSERT_TRUE(back) << "packet " << i << " not echoed back";
    EXPECT_EQ(back->first, payload) << "packet " << i << " changed or out of order";
    EXPECT_EQ(back->second, sbcMedia);
    ++echoed;
  }
  EXPECT_EQ(echoed, kPackets);
  EXPECT_EQ(echo.fromOthers(), 0) << "the echo saw media not from the SBC's core address";

  // A source outside the trunk's prefixes, in the trunk's own subnet: dropped, counted.
  const int echoedBefore = echo.echoed();
  for (int i = 0; i < 5; ++i) sendTo(intruderFd, "spoofed", kAccessMedia, sbcPort);
  EXPECT_TRUE(daemon_->waitForMetric("sbc_media_dropped_total{reason=\"source_not_allowed\"}", 5))
      << daemon_->scrape();
  EXPECT_FALSE(receive(intruderFd).has_value());
  EXPECT_FALSE(receive(trunkFd).has_value());
  EXPECT_EQ(echo.echoed(), echoedBefore) << "a packet from the wrong source was forwarded";
  EXPECT_GE(metric("sbc_media_packets_total{direction=\"access_to_core\",trunk=\"alpha\"}"),
            kPackets);
  EXPECT_GE(metric("sbc_media_packets_total{direction=\"core_to_access\",trunk=\"alpha\"}"),
            kPackets);

  EXPECT_EQ(trunk.waitForExit(30s), 0) << trunk.output();
  EXPECT_EQ(core->waitForExit(10s), 0) << core->output();
  EXPECT_TRUE(daemon_->waitForMetric("sbc_trunk_active_calls{trunk=\"alpha\"}", 0))
      << daemon_->scrape();
  EXPECT_TRUE(daemon_->waitForMetric("sbc_media_flows", 0)) << daemon_->scrape();

  ::close(trunkFd);
  ::close(intruderFd);
  daemon_->process().signal(SIGTERM);
  EXPECT_EQ(daemon_->process().waitForExit(15s), 0) << daemon_->process().output();
}

}  // namespace
}  // namespace sbc::test
