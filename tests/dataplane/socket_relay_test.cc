// The socket media driver: the shared behaviour suite, plus what only kernel sockets show
// (ports held by other processes, datagrams larger than the receive buffer, thread affinity).

#include "dataplane/socket/socket_relay.h"

#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/sysinfo.h>

#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <thread>
#include <tuple>

#include "tests/dataplane/relay_behaviour.h"
#include "tests/support/test_env.h"

namespace sbc::dataplane::testing {
namespace {

INSTANTIATE_TEST_SUITE_P(Socket, RelayBehaviour,
                         ::testing::Values(RelayTarget{"socket", makeSocketRelay}),
                         relayTargetName);

class SocketRelay : public RelayBehaviour {};
const RelayTarget kSocket{"socket", makeSocketRelay};
INSTANTIATE_TEST_SUITE_P(Socket, SocketRelay, ::testing::Values(kSocket), relayTargetName);

// Proves: after the worker was kept from running for longer than the media timeout, streams
// whose media kept arriving are not reported silent (the scan reads their sockets first),
// and a silent one is.
TEST_P(SocketRelay, StalledWorkerDoesNotSilenceTalkingStreams) {
  expectTalkingStreamsSurviveAStalledWorker();
}

// Proves: a port another socket holds (EADDRINUSE on RTP or RTCP) is skipped, not fatal.
TEST_P(SocketRelay, SkipsPortsHeldByOtherSockets) {
  const auto relaySettings = settings(0ms, 0ms, 3);
  const std::uint16_t first = relaySettings.realms[0].portMin;
  UdpPeer squatter(target().accessMedia, static_cast<std::uint16_t>(first + 1));  // RTCP of 1st
  auto relay = make(relaySettings);
  const auto stream = relay->openStream("");
  ASSERT_TRUE(stream);
  EXPECT_EQ(stream->rtp[0].port, first + 2);
  EXPECT_EQ(stream->rtp[1].port, first);
  EXPECT_TRUE(relay->openStream(""));
  EXPECT_FALSE(relay->openStream("")) << "the held pair must not count as free";
}

// Proves: a closed stream's sockets are reused for the same ports after the quarantine
// (kept bound, not reopened), and nothing that reached them while they rested reaches the
// new stream: the worker drops those datagrams as they arrive (counted as no_flow), not
// only once the pair is taken again.
TEST_P(SocketRelay, ReusedSocketsForgetWhatArrivedWhileResting) {
  auto relay = make(settings(300ms, 0ms, 1));  // one RTP/RTCP pair per realm
  UdpPeer trunk(target().trunk), core(target().core);
  const auto first = relay->openStream("t");
  ASSERT_TRUE(first);
  ASSERT_TRUE(relay->updateLeg(first->id, Realm::access, legFor(trunk, target().trunk + "/32")));
  ASSERT_TRUE(relay->updateLeg(first->id, Realm::core, legFor(core, target().core + "/32")));
  expectForwarded(trunk, first->rtp[0], core, first->rtp[1], 0x1, 5);
  relay->closeStream(first->id);
  std::this_thread::sleep_for(target().grace);

  // While resting: 5 datagrams to each of the four sockets, from the peers the next stream
  // will allow again.
  constexpr int kStray = 5;
  for (std::uint16_t seq = 0; seq < kStray; ++seq) {
    trunk.sendTo(first->rtp[0], rtpPacket(0xdead, seq));
    trunk.sendTo(plusOne(first->rtp[0]), rtpPacket(0xdead, seq));
    core.sendTo(first->rtp[1], rtpPacket(0xdead, seq));
    core.sendTo(plusOne(first->rtp[1]), rtpPacket(0xdead, seq));
  }
  EXPECT_TRUE(eventually(
      [&] { return totalDropped(relay->stats(), DropReason::noFlow) == 4u * kStray; }, 250ms));
  EXPECT_FALSE(relay->openStream("t")) << "the only pair is still in quarantine";
  std::optional<StreamEndpoints> second;
  ASSERT_TRUE(eventually([&] { return (second = relay->openStream("t")).has_value(); }, 3000ms));
  EXPECT_EQ(second->rtp, first->rtp);
  EXPECT_EQ(totalDropped(relay->stats(), DropReason::noFlow), 4u * kStray);

  ASSERT_TRUE(relay->updateLeg(second->id, Realm::access, legFor(trunk, target().trunk + "/32")));
  ASSERT_TRUE(relay->updateLeg(second->id, Realm::core, legFor(core, target().core + "/32")));
  // The first datagram each peer receives is the new stream's own, in order.
  expectForwarded(trunk, second->rtp[0], core, second->rtp[1], 0x2, 5);
  expectForwarded(core, second->rtp[1], trunk, second->rtp[0], 0x3, 5);
  EXPECT_TRUE(core.silentFor(50ms));
  EXPECT_TRUE(trunk.silentFor(10ms));
}

// Proves: a datagram larger than the worker's buffer is dropped as malformed, not
// forwarded truncated.
TEST_P(SocketRelay, DropsOversizedDatagramsAsMalformed) {
  auto relay = make(settings());
  UdpPeer trunk(target().trunk), core(target().core);
  const auto stream = relay->openStream("t");
  ASSERT_TRUE(stream);
  ASSERT_TRUE(relay->updateLeg(stream->id, Realm::access, legFor(trunk, target().trunk + "/32")));
  ASSERT_TRUE(relay->updateLeg(stream->id, Realm::core, legFor(core, target().core + "/32")));
  trunk.sendTo(stream->rtp[0], rtpPacket(1, 0, 9000));
  ASSERT_TRUE(eventually([&] {
    return totalDropped(relay->stats(), DropReason::malformed) == 1;
  }));
  EXPECT_TRUE(core.silentFor(100ms));
  EXPECT_EQ(relay->streamCounters(stream->id)->dropped[0], 1u);
  expectForwarded(trunk, stream->rtp[0], core, stream->rtp[1], 2, 5, 1400);
}

// The relay worker's /proc/self/task entry, once it has named itself (after setting its
// affinity, which reads the CPU list from /sys: a descriptor open for a moment).
std::optional<std::filesystem::path> workerTask() {
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task")) {
    std::ifstream comm(task.path() / "comm");
    std::string name;
    std::getline(comm, name);
    if (name == kSocketWorkerThreadName) return task.path();
  }
  return std::nullopt;
}

// Proves: the worker may run on every CPU even when its creator was pinned to one (as DPDK
// pins the main thread).
TEST_P(SocketRelay, WorkerSetsItsOwnAffinity) {
  if (get_nprocs_conf() < 2) {
    // Under CI a test that cannot run fails rather than skipping.
    if (sbc::test::runningInCi()) FAIL() << "needs two CPUs (CI=true)";
    GTEST_SKIP() << "one CPU";
  }
  cpu_set_t saved, one;
  ASSERT_EQ(pthread_getaffinity_np(pthread_self(), sizeof saved, &saved), 0);
  CPU_ZERO(&one);
  CPU_SET(0, &one);
  ASSERT_EQ(pthread_setaffinity_np(pthread_self(), sizeof one, &one), 0);
  auto relay = make(settings());
  pthread_setaffinity_np(pthread_self(), sizeof saved, &saved);
  std::string allowed;
  ASSERT_TRUE(eventually([&] {
    const auto task = workerTask();
    if (!task) return false;
    std::ifstream status(*task / "status");
    for (std::string line; std::getline(status, line);) {
      if (line.rfind("Cpus_allowed_list:", 0) == 0) allowed = line.substr(18);
    }
    return !allowed.empty() && allowed.find_first_not_of(" \t0") != std::string::npos;
  })) << "worker affinity: '" << allowed << "'";
}

// Proves: destroying the relay with open streams and unprocessed commands frees everything
// (checked by the sanitizer build) and does not hang.
TEST_P(SocketRelay, DestroysWithOpenStreamsAndPendingCommands) {
  auto relay = make(settings());
  UdpPeer trunk(target().trunk);
  for (int i = 0; i < 50; ++i) {
    const auto stream = relay->openStream("x");
    ASSERT_TRUE(stream);
    relay->updateLeg(stream->id, Realm::access, legFor(trunk, target().trunk + "/32"));
    trunk.sendTo(stream->rtp[0], rtpPacket(1, 0));
    if (i % 3 == 0) relay->closeStream(stream->id);
  }
  relay.reset();
  SUCCEED();
}

// The lowest descriptor number above every open one: RLIMIT_NOFILE bounds numbers.
int descriptorCeiling() {
  int highest = -1;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) {
    highest = std::max(highest, std::stoi(entry.path().filename().string()));
  }
  return highest + 1;  // may count the iterator's own descriptor: a little more room, no less
}

std::size_t openDescriptors() {
  std::size_t count = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) {
    ++count;
  }
  return count;
}

// Takes every free descriptor number below the highest open one (inherited descriptors
// leave holes), so that a limit above it leaves an exact number of descriptors free.
class DescriptorHoles {
 public:
  DescriptorHoles() {
    const int ceiling = descriptorCeiling();
    for (int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC); fd >= 0;
         fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC)) {
      if (fd >= ceiling) {
        ::close(fd);
        break;
      }
      filled_.push_back(fd);
    }
  }
  ~DescriptorHoles() {
    for (const int fd : filled_) ::close(fd);
  }

 private:
  std::vector<int> filled_;
};

// Lowers the soft RLIMIT_NOFILE for one test and puts it back, also on failure.
class DescriptorLimit {
 public:
  explicit DescriptorLimit(rlim_t soft) {
    ::getrlimit(RLIMIT_NOFILE, &saved_);
    rlimit lowered = saved_;
    lowered.rlim_cur = soft;
    ok_ = ::setrlimit(RLIMIT_NOFILE, &lowered) == 0;
  }
  ~DescriptorLimit() { ::setrlimit(RLIMIT_NOFILE, &saved_); }
  bool ok() const { return ok_; }

 private:
  rlimit saved_{};
  bool ok_ = false;
};

// Proves: when descriptors run out while closed streams' pairs rest in quarantine, the
// open that hit the limit fails, resting pairs are retired through the worker (closed, so
// descriptors come back; their ports stay in quarantine), and a later open succeeds on
// ports none of the resting pairs had. No descriptor is leaked on the way.
TEST_P(SocketRelay, OutOfDescriptorsRetiresRestingPairs) {
  const std::size_t descriptorsBefore = openDescriptors();
  {
    auto relay = make(settings(10s, 0ms, 60));  // quarantine outlasts the test
    // Its start-up over, the worker opens nothing more that would shift the count below.
    ASSERT_TRUE(eventually([] { return workerTask().has_value(); }));
    constexpr int kStreamsThatFit = 10;
    const DescriptorHoles holes;
    DescriptorLimit limit(static_cast<rlim_t>(descriptorCeiling() + 4 * kStreamsThatFit + 2));
    ASSERT_TRUE(limit.ok());
    std::vector<StreamEndpoints> opened;
    while (auto stream = relay->openStream("x")) {
      opened.push_back(*stream);
      ASSERT_LT(opened.size(), 40u) << "the descriptor limit did not hold";
    }
    EXPECT_EQ(opened.size(), static_cast<std::size_t>(kStreamsThatFit));
    std::set<std::uint16_t> resting;
    for (const auto& stream : opened) {
      relay->closeStream(stream.id);
      resting.insert(stream.rtp[0].port);
      resting.insert(stream.rtp[1].port);
    }
    const std::size_t descriptorsHeld = openDescriptors();
    std::optional<StreamEndpoints> next;
    int failedOpens = 0;
    ASSERT_TRUE(eventually([&] {
      next = relay->openStream("x");
      failedOpens += next ? 0 : 1;
      return next.has_value();
    }));
    EXPECT_GE(failedOpens, 1) << "the first open after the closes meets the limit";
    EXPECT_FALSE(resting.contains(next->rtp[0].port)) << next->rtp[0].port;
    EXPECT_FALSE(resting.contains(next->rtp[1].port)) << next->rtp[1].port;
    EXPECT_LT(openDescriptors(), descriptorsHeld) << "retired pairs were closed";
  }
  EXPECT_EQ(openDescriptors(), descriptorsBefore);
}

// A UDP peer on ::1 (the only IPv6 loopback address), with the traffic class it receives.
class Udp6Peer {
 public:
  Udp6Peer() {
    fd_ = ::socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    const int one = 1;
    ::setsockopt(fd_, IPPROTO_IPV6, IPV6_RECVTCLASS, &one, sizeof one);
    sockaddr_in6 local{};
    local.sin6_family = AF_INET6;
    local.sin6_addr = in6addr_loopback;
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&local), sizeof local) != 0) {
      throw std::runtime_error("bind ::1");
    }
    socklen_t length = sizeof local;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&local), &length);
    address_ = {ip("::1"), ntohs(local.sin6_port)};
  }
  ~Udp6Peer() { ::close(fd_); }
  const MediaAddress& address() const { return address_; }
  void sendTo(const MediaAddress& to, const std::vector<std::uint8_t>& payload) const {
    sockaddr_in6 remote{};
    remote.sin6_family = AF_INET6;
    remote.sin6_port = htons(to.port);
    std::memcpy(&remote.sin6_addr, to.address.bytes.data(), 16);
    ::sendto(fd_, payload.data(), payload.size(), 0, reinterpret_cast<sockaddr*>(&remote),
             sizeof remote);
  }
  // Payload, source port and traffic class of the next datagram within `timeout`.
  std::optional<std::tuple<std::vector<std::uint8_t>, std::uint16_t, int>> receive(
      Millis timeout) const {
    pollfd waiting{fd_, POLLIN, 0};
    if (::poll(&waiting, 1, static_cast<int>(timeout.count())) <= 0) return std::nullopt;
    std::vector<std::uint8_t> buffer(65536);
    std::array<char, 128> control{};
    sockaddr_in6 from{};
    iovec iov{buffer.data(), buffer.size()};
    msghdr message{};
    message.msg_name = &from;
    message.msg_namelen = sizeof from;
    message.msg_iov = &iov;
    message.msg_iovlen = 1;
    message.msg_control = control.data();
    message.msg_controllen = control.size();
    const ssize_t n = ::recvmsg(fd_, &message, 0);
    if (n < 0) return std::nullopt;
    buffer.resize(static_cast<std::size_t>(n));
    int tclass = -1;
    for (cmsghdr* c = CMSG_FIRSTHDR(&message); c != nullptr; c = CMSG_NXTHDR(&message, c)) {
      if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_TCLASS) {
        std::memcpy(&tclass, CMSG_DATA(c), sizeof tclass);
      }
    }
    return std::make_tuple(std::move(buffer), ntohs(from.sin6_port), tclass);
  }

 private:
  int fd_ = -1;
  MediaAddress address_;
};

// Proves: IPv6 realms forward both ways with the traffic class set and the source checked
// (both realms on ::1, told apart by their port ranges).
TEST_P(SocketRelay, ForwardsOverIpv6) {
  RelaySettings v6 = settings();
  const std::uint16_t base = v6.realms[0].portMin;
  v6.realms[0] = {ip("::1"), base, static_cast<std::uint16_t>(base + 19)};
  v6.realms[1] = {ip("::1"), static_cast<std::uint16_t>(base + 20),
                  static_cast<std::uint16_t>(base + 39)};
  auto relay = make(v6);
  Udp6Peer trunk, core;
  const auto stream = relay->openStream("v6");
  ASSERT_TRUE(stream);
  LegMedia access;
  access.rtp = trunk.address();
  access.allowedSources = {prefix("::1/128")};
  LegMedia coreLeg;
  coreLeg.rtp = core.address();
  coreLeg.allowedSources = {prefix("::1/128")};
  ASSERT_TRUE(relay->updateLeg(stream->id, Realm::access, access));
  ASSERT_TRUE(relay->updateLeg(stream->id, Realm::core, coreLeg));
  for (std::uint16_t seq = 0; seq < 20; ++seq) {
    trunk.sendTo(stream->rtp[0], rtpPacket(6, seq));
    const auto got = core.receive(2000ms);
    ASSERT_TRUE(got) << seq;
    EXPECT_EQ(std::get<0>(*got), rtpPacket(6, seq));
    EXPECT_EQ(std::get<1>(*got), stream->rtp[1].port);
    EXPECT_EQ(std::get<2>(*got), 46 << 2);
    core.sendTo(stream->rtp[1], rtpPacket(7, seq));
    const auto back = trunk.receive(2000ms);
    ASSERT_TRUE(back) << seq;
    EXPECT_EQ(std::get<0>(*back), rtpPacket(7, seq));
    EXPECT_EQ(std::get<1>(*back), stream->rtp[0].port);
  }
  // An IPv6 source outside the allowed prefix is refused.
  coreLeg.allowedSources = {prefix("2001:db8::/32")};
  ASSERT_TRUE(relay->updateLeg(stream->id, Realm::core, coreLeg));
  core.sendTo(stream->rtp[1], rtpPacket(8, 0));
  EXPECT_TRUE(eventually([&] {
    return totalDropped(relay->stats(), DropReason::sourceNotAllowed) == 1;
  }));
  EXPECT_FALSE(trunk.receive(100ms));
}

}  // namespace
}  // namespace sbc::dataplane::testing
