#pragma once
// A fixture for calls through sbcd with SIPp as trunk (127.0.0.2) and core (127.0.0.3):
// sbcd on 127.0.0.10 (access) and 127.0.0.11 (core) with one trunk "alpha", ports chosen
// free at set-up, and helpers that run SIPp scenarios from tests/integration/sipp.

#include <netinet/in.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <fstream>
#include <iterator>
#include <memory>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "tests/integration/sbcd_process.h"
#include "tests/support/test_env.h"

namespace sbc::test {

inline const std::string kSippDir = std::string(SBC_SOURCE_ROOT) + "/tests/integration/sipp";

// Binds a UDP socket to `address`:`port` (0: a port the kernel picks) and closes it again:
// the port it got, 0 when the bind failed.
inline int probeUdpBind(const char* address, int port) {
  const int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in bound{};
  bound.sin_family = AF_INET;
  bound.sin_port = htons(static_cast<std::uint16_t>(port));
  ::inet_pton(AF_INET, address, &bound.sin_addr);
  socklen_t length = sizeof bound;
  int got = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&bound), sizeof bound) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &length) == 0) {
    got = ntohs(bound.sin_port);
  }
  ::close(fd);
  return got;
}

// A UDP port free on `address` at the time of asking.
inline int freeUdpPort(const char* address) { return probeUdpBind(address, 0); }

// True when a UDP socket can bind `address`:`port` now.
inline bool udpPortFree(const char* address, int port) {
  return probeUdpBind(address, port) == port;
}

// A media port for SIPp (-mp) on `address`: SIPp binds it and the three above it (audio RTP
// and RTCP, video RTP and RTCP), so all four must be free and none of them the SIP port
// `sipPort` that SIPp binds first. (Ports from freeUdpPort come close together: a media
// port two below the SIP port once failed a test, SIPp's video socket finding it taken.)
inline int freeSippMediaPort(const char* address, int sipPort) {
  for (int attempt = 0; attempt < 200; ++attempt) {
    const int base = freeUdpPort(address);
    if (base <= 0 || base > 65532 || (sipPort >= base && sipPort <= base + 3)) continue;
    bool allFree = true;
    for (int port = base + 1; port <= base + 3 && allFree; ++port) {
      allFree = udpPortFree(address, port);
    }
    if (allFree) return base;
  }
  throw std::runtime_error(std::string("no four free UDP ports in a row on ") + address);
}

// The bytes waiting in the receive queue of the UDP socket bound to 127.0.0.10:`port`, as
// /proc/net/udp shows them (rx_queue); -1 when the socket is not listed.
inline long long receiveQueueBytes(int port) {
  std::ifstream table("/proc/net/udp");
  std::string line;
  char local[32];
  std::snprintf(local, sizeof local, "0A00007F:%04X", port);
  while (std::getline(table, line)) {
    // sl local_address rem_address st tx_queue:rx_queue ...
    std::istringstream fields(line);
    std::string slot, address, remote, state, queues;
    if (!(fields >> slot >> address >> remote >> state >> queues) || address != local) continue;
    const auto colon = queues.find(':');
    if (colon == std::string::npos) continue;
    return std::stoll(queues.substr(colon + 1), nullptr, 16);
  }
  return -1;
}

// Stops sbcd (SIGSTOP, by its PID), runs `send`, waits until at least `bytes` wait in the
// receive queue of its socket on `port` (or 5 s), and lets it go on (SIGCONT, also when
// `send` throws): what then waits is what a signaling thread that could not keep up would
// find. Returns the bytes that were waiting; -1 if sbcd could not be stopped.
inline long long queueWhileStopped(pid_t sbcd, int port, long long bytes,
                                   const std::function<void()>& send) {
  if (::kill(sbcd, SIGSTOP) != 0) return -1;
  struct Resume {
    pid_t pid;
    ~Resume() { ::kill(pid, SIGCONT); }
  } resume{sbcd};
  send();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (std::chrono::steady_clock::now() < deadline && receiveQueueBytes(port) < bytes) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return receiveQueueBytes(port);
}

class TrunkFixture : public ::testing::Test {
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
  access = { sip = ( { address = "127.0.0.10"; port = 0; transport = ")" + accessTransport_ +
                               R"("; } )" + accessListenExtra_ + R"( );
             media = { address = "127.0.0.10"; port_min = 20000; port_max = 20999; }; };
  core = { sip = ( { address = "127.0.0.11"; port = 0; transport = ")" + coreTransport_ +
                               R"("; } );
           media = { address = "127.0.0.11"; port_min = 21000; port_max = 21999; }; };
};
core = { next_hops = ( { host = "127.0.0.3"; port = )" + std::to_string(corePort_) +
                               R"(; transport = ")" + coreTransport_ + R"("; } )" +
                               nextHopsExtra_ + R"( ); )" + coreExtra_ + R"( };
trunks = ( { name = "alpha"; source_prefixes = [ "127.0.0.2/32" ];
             target = { host = "127.0.0.2"; port = )" + std::to_string(trunkPort_) +
                               R"(; transport = ")" + accessTransport_ + R"("; };
             max_calls = )" + std::to_string(maxCalls) +
                               R"(; max_calls_per_second = 1000.0; )" + trunkExtra_ + R"( } )" +
                               extraTrunks_ + R"( );
sip = { t1_ms = 50; t1x64_ms = 2000; )" + sipExtra_ + R"( };
drain = { timeout_s = )" + std::to_string(drainSeconds) + R"(; };
metrics = { listen = "127.0.0.1:0"; };
control = { socket = ")" + dir_.file("sbcd.sock") +
                               R"("; };
)" + extraConfig_;
  }

  void startSbc(int maxCalls, int drainSeconds = 30) {
    const std::string config = sbcConfig(maxCalls, drainSeconds);
    daemon_ = std::make_unique<RunningDaemon>(dir_.write("sbc.cfg", config), sbcdWrapper_);
    ASSERT_GT(daemon_->metricsPort(), 0) << daemon_->process().output();
    const std::string& bound = daemon_->boundLine();
    const std::string access = "sip.access=" + accessTransport_ + ":127.0.0.10:";
    const auto at = bound.find(access);
    ASSERT_NE(at, std::string::npos) << bound;
    accessPort_ = std::stoi(bound.substr(at + access.size()));
    const std::string core = "sip.core=" + coreTransport_ + ":127.0.0.11:";
    const auto coreAt = bound.find(core);
    ASSERT_NE(coreAt, std::string::npos) << bound;
    sbcCorePort_ = std::stoi(bound.substr(coreAt + core.size()));
  }

  // Starts `args` (a SIPp that listens on host:port) and waits until it listens: a call sent
  // earlier would meet an ICMP port-unreachable, which the SBC rightly turns into 503.
  static std::unique_ptr<ChildProcess> startListening(std::vector<std::string> args,
                                                      const char* host, int port,
                                                      const std::string& transport = "udp") {
    auto process = std::make_unique<ChildProcess>(std::move(args));
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (std::chrono::steady_clock::now() < deadline && !portInUse(port, host, transport)) {
      std::this_thread::sleep_for(20ms);
    }
    return process;
  }

  // A SIPp UAS playing `scenario` for `calls` calls on host:port, once it listens. With
  // `traceFile`, SIPp writes every message it sends and receives there.
  static std::unique_ptr<ChildProcess> startUas(const std::string& scenario, const char* host,
                                                int port, int calls = 1,
                                                const std::string& transport = "udp",
                                                const std::string& traceFile = "") {
    std::vector<std::string> args{"/usr/bin/sipp", "-sf", kSippDir + "/" + scenario, "-i", host,
                                  "-bind_local", "-p", std::to_string(port), "-m",
                                  std::to_string(calls), "-nostdin"};
    if (!traceFile.empty()) args.insert(args.end(), {"-trace_msg", "-message_file", traceFile});
    return startListening(withTransport(std::move(args), transport), host, port, transport);
  }

  // SIPp as the core (127.0.0.3 on the core's next-hop port), once it listens.
  std::unique_ptr<ChildProcess> startCore(const std::string& scenario, int calls) {
    return startUas(scenario, "127.0.0.3", corePort_, calls, coreTransport_);
  }

  // Whether SIPp (or anyone) holds `port` on `host` for "udp" or "tcp".
  static bool portInUse(int port, const char* host, const std::string& transport) {
    const int fd = ::socket(AF_INET, transport == "tcp" ? SOCK_STREAM : SOCK_DGRAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<std::uint16_t>(port));
    ::inet_pton(AF_INET, host, &address.sin_addr);
    const bool inUse = ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0;
    ::close(fd);
    return inUse;
  }

  // SIPp's arguments for one transport: TCP is one connection for all calls (-t t1).
  static std::vector<std::string> withTransport(std::vector<std::string> args,
                                                const std::string& transport) {
    if (transport == "tcp") args.insert(args.begin() + 1, {"-t", "t1"});
    return args;
  }

  // With `traceFile`, SIPp writes every message it sends and receives there.
  std::vector<std::string> trunkArgs(const std::string& scenario, int calls, int simultaneous,
                                     const std::string& traceFile = "") {
    // A port of its own rather than SIPp's default 5060, which every earlier trunk SIPp of
    // every test binary took in turn: a retransmission an earlier call's sbcd still sends
    // there cannot reach this one.
    auto args = withTransport({"/usr/bin/sipp", "-sf", kSippDir + "/" + scenario, "-i",
            "127.0.0.2", "-bind_local", "-p", std::to_string(freeUdpPort("127.0.0.2")),
            "-m", std::to_string(calls), "-l",
            std::to_string(simultaneous), "-r", "100", "-d", std::to_string(holdMs_),
            "-timeout", "20s", "-timeout_error",
            "-nostdin", "127.0.0.10:" + std::to_string(accessPort_)}, accessTransport_);
    if (!traceFile.empty()) args.insert(args.end() - 1, {"-trace_msg", "-message_file", traceFile});
    return args;
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
  // configured target with `trunkScenario`, SIPp calls as the core; the trunk must complete
  // its scenario, the core must complete its own (or fail it, when `coreMustComplete` is
  // false: the call is refused). `coreScenario` replaces the core's plain call.
  // With `trunkTrace`, the trunk's SIPp writes its messages there.
  void callFromCore(const std::string& trunkScenario = "trunk_uas_answer.xml",
                    bool coreMustComplete = true,
                    const std::string& coreScenario = "core_uac_to_trunk.xml",
                    const std::string& trunkTrace = "") {
    const auto trunkSide =
        startUas(trunkScenario, "127.0.0.2", trunkPort_, 1, accessTransport_, trunkTrace);
    const auto coreSide = runCommand(
        withTransport({"/usr/bin/sipp", "-sf", kSippDir + "/" + coreScenario, "-i",
                       "127.0.0.3", "-bind_local", "-p", std::to_string(corePort_), "-m", "1",
                       "-timeout", "20s", "-timeout_error", "-nostdin",
                       "127.0.0.11:" + std::to_string(sbcCorePort_)},
                      coreTransport_),
        std::chrono::seconds(40));
    if (coreMustComplete) {
      EXPECT_EQ(coreSide.status, 0) << coreSide.output;
    } else {
      EXPECT_NE(coreSide.status, 0) << coreSide.output;
    }
    EXPECT_EQ(trunkSide->waitForExit(10s), 0) << trunkSide->output();
  }

  // An answered call's media crosses the relay both ways from the SBC's access address
  // (the core echoes it), the SDP the trunk sees names only the SBC, media from a source
  // outside the trunk's prefixes is dropped and counted, and the call ends clean. Starts
  // sbcd with the fixture's configuration (extraConfig_ may choose the media settings).
  void expectAnchoredMediaCall();

  double metric(const std::string& series) {
    return metricValue(daemon_->scrape(), series).value_or(-1);
  }

  // The active-call gauge must come back to zero: no leaked slot.
  // No call holds a slot, and the B2BUA has let go of every call's state (their
  // transactions done: within 64*T1, 2 s here).
  void expectNoActiveCalls() {
    EXPECT_TRUE(daemon_->waitForMetric("sbc_trunk_active_calls{trunk=\"alpha\"}", 0))
        << daemon_->scrape();
    EXPECT_TRUE(daemon_->waitForMetric("sbc_b2bua_calls", 0)) << daemon_->scrape();
  }

  // Appended to trunk alpha's settings, to the `sip` group and to the whole file by
  // sbcConfig(): tests that need more settings set these before startSbc().
  std::string trunkExtra_;
  std::string sipExtra_;
  // Appended to the access realm's list of SIP listen groups (e.g. a TCP one).
  std::string accessListenExtra_;
  std::string extraConfig_;
  // A command sbcd is started under (RunningDaemon's `wrapper`).
  std::vector<std::string> sbcdWrapper_;
  // How long a call of uac_hold.xml (and of other scenarios' bare <pause/>) is held.
  int holdMs_ = 1500;
  // More trunks after alpha, each written as `, { name = ...; }`.
  std::string extraTrunks_;
  // "udp" or "tcp": the access realm's listen and trunk alpha's target, and the core
  // realm's listen and next hop; SIPp plays each side on the same transport.
  std::string accessTransport_ = "udp";
  std::string coreTransport_ = "udp";
  // Appended to core.next_hops (", { ... }") and to the core group.
  std::string nextHopsExtra_;
  std::string coreExtra_;
  TempDir dir_;
  std::unique_ptr<RunningDaemon> daemon_;
  int corePort_ = 0;
  int accessPort_ = 0;
  int trunkPort_ = 0;    // the trunk's configured target
  int sbcCorePort_ = 0;  // the SBC's SIP port in the core realm
};

// The messages a SIPp trace (-trace_msg -message_file) shows as received, concatenated:
// what the SBC sent that SIPp instance. What SIPp itself sent is skipped.
inline std::string receivedMessages(const std::string& traceFile) {
  std::ifstream in(traceFile);
  const std::string trace((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  static const std::string kSeparator = "----------------------------------------------- ";
  std::string received;
  std::size_t at = trace.find(kSeparator);
  while (at != std::string::npos) {
    const std::size_t next = trace.find(kSeparator, at + kSeparator.size());
    const std::string entry = trace.substr(at, next == std::string::npos ? next : next - at);
    const std::size_t headerEnd = entry.find('\n');
    const std::string header = entry.substr(0, entry.find('\n', headerEnd + 1));
    if (header.find("message received") != std::string::npos) received += entry;
    at = next;
  }
  return received;
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

// Sends `packets` 172-byte datagrams from `trunkMedia` to the SBC's access media port
// `port` and expects (nearly) all of them echoed back by the core's SIPp, each from that
// same address and port.
inline void expectMediaEchoed(const UdpSocket& trunkMedia, int port, int packets) {
  int echoed = 0;
  for (int i = 0; i < packets; ++i) {
    const std::string payload = "rtp-packet-" + std::to_string(i) + std::string(160, 'x');
    trunkMedia.sendTo(payload, "127.0.0.10", port);
    const auto back = trunkMedia.receive();
    if (back && back->first == payload) {
      ++echoed;
      EXPECT_EQ(back->second, "127.0.0.10:" + std::to_string(port));
    }
  }
  EXPECT_GE(echoed, packets - 2);  // loopback UDP: allow a stray loss, not a broken path
}

inline void TrunkFixture::expectAnchoredMediaCall() {
  startSbc(10);
  const int coreMediaPort = freeSippMediaPort("127.0.0.3", corePort_);
  auto core = startListening(
      {"/usr/bin/sipp", "-sf", kSippDir + "/uas_answer.xml", "-i", "127.0.0.3", "-bind_local",
       "-p", std::to_string(corePort_), "-m", "1", "-nostdin", "-mi", "127.0.0.3", "-mp",
       std::to_string(coreMediaPort), "-rtp_echo"},
      "127.0.0.3", corePort_);
  UdpSocket trunkMedia("127.0.0.2", 0);
  ASSERT_TRUE(trunkMedia.bound());
  const std::string trace = dir_.file("trunk-messages.log");
  auto args = trunkArgs("uac_media.xml", 1, 1, trace);
  args.insert(args.end() - 1, {"-key", "trunk_media_port", std::to_string(trunkMedia.port())});
  ChildProcess trunk(args);
  ASSERT_TRUE(daemon_->waitForMetric("sbc_trunk_active_calls{trunk=\"alpha\"}", 1));

  // The 200 OK the trunk received names the SBC's access media address and port.
  std::string messages;
  const auto answered = waitForAnsweredMedia(trace, messages);
  ASSERT_TRUE(answered.has_value()) << messages;
  EXPECT_EQ(answered->address, "127.0.0.10");
  EXPECT_EQ(messages.find("127.0.0.3"), std::string::npos) << "core address leaked";
  // The o= session id is random, not the SBC's call counter (this is its first call).
  EXPECT_NE(messages.find("o=sbc "), std::string::npos) << messages;
  EXPECT_EQ(messages.find("o=sbc 1 "), std::string::npos) << messages;
  const int sbcPort = answered->port;

  constexpr int kPackets = 40;
  expectMediaEchoed(trunkMedia, sbcPort, kPackets);

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

}  // namespace sbc::test
