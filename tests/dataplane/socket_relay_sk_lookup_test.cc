// The socket media driver in sk_lookup mode (one socket per realm, a BPF program steering
// the port range to it, a raw socket sending): the shared behaviour suite on IPv4 and IPv6
// (and per-port mode on IPv6, which the loopback-only socket_relay binary cannot give
// addresses to), plus what only this mode shows. The binary runs in a network namespace
// of its own, made in main() before
// any thread: the steering programs it attaches see only its packets, and the IPv6
// addresses it adds vanish with the process, also after a crash. Needs root (CAP_BPF,
// CAP_NET_ADMIN, CAP_NET_RAW, CAP_SYS_ADMIN for the namespace).
//
// The kernel checks the UDP checksum of what the raw socket sends even on loopback (such
// a packet carries no "checksum done" mark): every packet a peer receives here proves the
// checksum written by udp_headers.cc.


#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/udp.h>
#include <sched.h>

#include <cstdlib>
#include <exception>
#include <iostream>

#include "common/socket_address.h"
#include "dataplane/socket/socket_relay.h"
#include "tests/dataplane/relay_behaviour.h"
#include "tests/support/test_env.h"

namespace sbc::dataplane::testing {
namespace {

std::unique_ptr<MediaRelay> makeSteeredRelay(const RelaySettings& settings) {
  RelaySettings steered = settings;
  steered.socketPorts = SocketPorts::skLookup;
  return makeSocketRelay(steered);
}

const RelayTarget kSteered{"socket_sk_lookup", makeSteeredRelay};

// Kernel forwarding on top of either port mode: the TC program takes the streams the worker
// has described, the sockets the rest.
std::unique_ptr<MediaRelay> makeKernelRelay(const RelaySettings& settings) {
  RelaySettings kernel = settings;
  kernel.kernelForwarding = true;
  return makeSocketRelay(kernel);
}
std::unique_ptr<MediaRelay> makeSteeredKernelRelay(const RelaySettings& settings) {
  RelaySettings kernel = settings;
  kernel.kernelForwarding = true;
  kernel.socketPorts = SocketPorts::skLookup;
  return makeSocketRelay(kernel);
}
// Attached as a clsact filter, the way kernels before 6.6 (Debian 12's own 6.1) get it.
std::unique_ptr<MediaRelay> makeTcFilterKernelRelay(const RelaySettings& settings) {
  RelaySettings kernel = settings;
  kernel.kernelForwarding = true;
  kernel.kernelForwardingAsTcFilter = true;
  return makeSocketRelay(kernel);
}
const RelayTarget kKernel{"socket_kernel", makeKernelRelay};
const RelayTarget kTcFilterKernel{"socket_kernel_tc_filter", makeTcFilterKernelRelay};
const RelayTarget kSteeredKernel{"socket_sk_lookup_kernel", makeSteeredKernelRelay};

// The same peers on IPv6 addresses main() gives loopback in this namespace.
RelayTarget ipv6(std::string name,
                 std::function<std::unique_ptr<MediaRelay>(const RelaySettings&)> make) {
  RelayTarget target{std::move(name), std::move(make)};
  target.accessMedia = "fd00:5bc::10";
  target.coreMedia = "fd00:5bc::11";
  target.trunk = "fd00:5bc::2";
  target.core = "fd00:5bc::3";
  target.intruder = "fd00:5bc::4";
  target.natted = "fd00:5bc::5";
  target.latchPrefix = "fd00:5bc::/64";
  return target;
}

// The whole suite on IPv6 too, in both port modes: IPv6 raw sending writes every header
// itself (IPV6_HDRINCL), and the receiving kernel checks the UDP checksum IPv6 requires.
INSTANTIATE_TEST_SUITE_P(SocketSkLookup, RelayBehaviour,
                         ::testing::Values(kSteered, ipv6("socket_sk_lookup_v6", makeSteeredRelay),
                                           ipv6("socket_per_port_v6", makeSocketRelay), kKernel,
                                           kSteeredKernel,
                                           ipv6("socket_kernel_v6", makeKernelRelay)),
                         relayTargetName);

class SteeredRelay : public RelayBehaviour {};
INSTANTIATE_TEST_SUITE_P(SocketSkLookup, SteeredRelay, ::testing::Values(kSteered, kSteeredKernel),
                         relayTargetName);

// Proves: after the worker was kept from running for longer than the media timeout, streams
// whose media waited in the realm's one socket are not reported silent (the scan reads that
// socket first), and a silent one is.
TEST_P(SteeredRelay, StalledWorkerDoesNotSilenceTalkingStreams) {
  expectTalkingStreamsSurviveAStalledWorker();
}

// Proves: 10,000 streams (40,000 relay ports over both realms) take no descriptor each,
// and the first and the last of them forward.
TEST_P(SteeredRelay, TenThousandStreamsNeedNoDescriptorPerPort) {
  constexpr std::uint16_t kStreams = 10000;
  auto relay = make(settings(0ms, 0ms, kStreams, 20000));
  const std::size_t before = common::openDescriptors().size();
  std::vector<StreamEndpoints> streams;
  streams.reserve(kStreams);
  for (std::uint16_t i = 0; i < kStreams; ++i) {
    const auto stream = relay->openStream("t");
    ASSERT_TRUE(stream) << "stream " << i;
    streams.push_back(*stream);
  }
  EXPECT_FALSE(relay->openStream("t")) << "the range holds exactly " << kStreams << " pairs";
  EXPECT_LE(common::openDescriptors().size(), before + 2);

  UdpPeer trunk(target().trunk), core(target().core);
  for (const StreamEndpoints* stream : {&streams.front(), &streams.back()}) {
    ASSERT_TRUE(relay->updateLeg(stream->id, Realm::access, legFor(trunk, hostPrefix(target().trunk))));
    ASSERT_TRUE(relay->updateLeg(stream->id, Realm::core, legFor(core, hostPrefix(target().core))));
    expectForwarded(trunk, stream->rtp[0], core, stream->rtp[1], stream->id, 30);
    expectForwarded(core, stream->rtp[1], trunk, stream->rtp[0], stream->id, 30);
  }
  EXPECT_TRUE(eventually([&] { return relay->stats().flows == 4u * kStreams; }));
  for (const auto& stream : streams) relay->closeStream(stream.id);
  EXPECT_TRUE(eventually([&] { return relay->stats().flows == 0; }));
}

// Proves: the steering takes even a port some other socket has bound (the range belongs to
// the relay), and goes away with the relay: then that socket gets its datagrams again.
TEST_P(SteeredRelay, SteeringClaimsTheRangeUntilTheRelayIsGone) {
  const auto relaySettings = settings(0ms, 0ms, 2);
  const std::uint16_t port = relaySettings.realms[0].portMin;
  UdpPeer squatter(target().accessMedia, port);
  UdpPeer trunk(target().trunk);
  const MediaAddress squatted{ip(target().accessMedia), port};
  {
    auto relay = make(relaySettings);
    trunk.sendTo(squatted, rtpPacket(1, 1));
    EXPECT_TRUE(eventually(
        [&] { return totalDropped(relay->stats(), DropReason::noFlow) == 1; }));
    EXPECT_TRUE(squatter.silentFor(100ms));
  }
  trunk.sendTo(squatted, rtpPacket(1, 2));
  const auto got = squatter.receive(2000ms);
  ASSERT_TRUE(got) << "the steering program outlived the relay";
  EXPECT_EQ(got->payload, rtpPacket(1, 2));
}

class KernelForwardingRelay : public RelayBehaviour {};
INSTANTIATE_TEST_SUITE_P(SocketSkLookup, KernelForwardingRelay,
                         ::testing::Values(kKernel, kSteeredKernel,
                                           ipv6("socket_kernel_v6", makeKernelRelay),
                                           kTcFilterKernel),
                         relayTargetName);

// Proves: with kernel forwarding the TC program carries a stream's media while the relay's
// process is stopped (so no socket and no worker touches it): both ways, RTP and RTCP,
// intact, in order, from the relay's port of the egress realm, with DSCP EF; also towards a
// side whose address was learnt by latching. A source the stream does not allow is not
// forwarded meanwhile; once the process runs again the worker drops it as source_not_allowed,
// and the stream's counters include what the kernel forwarded.
TEST_P(KernelForwardingRelay, ForwardsWhileTheRelayProcessIsStopped) {
  constexpr int kWhileStopped = 50;
  constexpr int kIntruding = 5;
  UdpPeer trunk(target().trunk), core(target().core), intruder(target().intruder);
  const RelaySettings relaySettings = settings();
  ForkedChild child([&](int out, int in) {
    {  // the relay goes before the child exits: a clsact filter with it
      auto relay = make(relaySettings);
      const auto stream = relay->openStream("k");
      LegMedia terminal = legFor(core, target().latchPrefix);
      terminal.latch = true;  // the core side's address is learnt from its first packet
      terminal.rtp = MediaAddress{ip(target().core), 9};  // not where it sends from
      if (!stream || !relay->updateLeg(stream->id, Realm::access,
                                       legFor(trunk, hostPrefix(target().trunk))) ||
          !relay->updateLeg(stream->id, Realm::core, terminal)) {
        throw std::runtime_error("setup");
      }
      const std::array<std::uint16_t, 2> ports{stream->rtp[0].port, stream->rtp[1].port};
      writeFully(out, ports.data(), sizeof ports);
      char word = 0;
      if (!readFully(in, &word, 1, 30s)) throw std::runtime_error("no word");
      std::array<std::uint64_t, 3> seen{};
      eventually([&] {
        const auto counters = relay->streamCounters(stream->id);
        seen = {counters->packets[0], counters->packets[1], counters->dropped[0]};
        return seen[0] >= 1 + 2 * kWhileStopped && seen[1] >= 1 + kWhileStopped &&
               seen[2] >= kIntruding;
      });
      writeFully(out, seen.data(), sizeof seen);
    }
    return 0;
  });
  std::array<std::uint16_t, 2> ports{};
  ASSERT_TRUE(readFully(child.fromChild(), ports.data(), sizeof ports, 20s)) << "no streams from the child";
  const MediaAddress access{ip(target().accessMedia), ports[0]};
  const MediaAddress coreSide{ip(target().coreMedia), ports[1]};

  // The worker forwards the first packets, latches the core side and then describes the
  // stream to the kernel.
  expectForwarded(core, coreSide, trunk, access, 1, 1);
  expectForwarded(trunk, access, core, coreSide, 2, 1);
  std::this_thread::sleep_for(300ms);  // the worker writes the latched entries after its round
  ASSERT_EQ(::kill(child.pid(), SIGSTOP), 0);

  const auto expectCrossing = [&](const UdpPeer& from, const MediaAddress& via, const UdpPeer& to,
                                  const MediaAddress& expectedSource, std::uint32_t ssrc) {
    for (std::uint16_t seq = 0; seq < kWhileStopped; ++seq) {
      from.sendTo(via, rtpPacket(ssrc, seq, 160 + seq % 3));  // odd and even lengths
      const auto got = to.receive(2000ms);
      ASSERT_TRUE(got) << "packet " << seq << " of ssrc " << ssrc << " not forwarded";
      EXPECT_EQ(got->payload, rtpPacket(ssrc, seq, 160 + seq % 3));
      EXPECT_EQ(got->from, expectedSource);
      EXPECT_EQ(got->tos, 46 << 2);
    }
  };
  expectCrossing(trunk, access, core, coreSide, 3);
  expectCrossing(core, coreSide, trunk, access, 4);
  // RTCP on port + 1, towards the latched RTP port + 1.
  UdpPeer coreRtcp(target().core, static_cast<std::uint16_t>(core.address().port + 1));
  expectCrossing(trunk, plusOne(access), coreRtcp, plusOne(coreSide), 5);
  for (int i = 0; i < kIntruding; ++i) intruder.sendTo(access, rtpPacket(6, static_cast<std::uint16_t>(i)));
  EXPECT_TRUE(core.silentFor(200ms)) << "the kernel forwarded a source the stream does not allow";

  ASSERT_EQ(::kill(child.pid(), SIGCONT), 0);
  ASSERT_EQ(::write(child.toChild(), "x", 1), 1);
  std::array<std::uint64_t, 3> counters{};
  ASSERT_TRUE(readFully(child.fromChild(), counters.data(), sizeof counters, 20s)) << "no counters";
  EXPECT_EQ(counters[0], 1u + 2 * kWhileStopped) << "access -> core packets, RTP and RTCP";
  EXPECT_EQ(counters[1], 1u + kWhileStopped) << "core -> access packets";
  EXPECT_EQ(counters[2], static_cast<std::uint64_t>(kIntruding)) << "dropped from the access side";
  EXPECT_TRUE(core.silentFor(100ms)) << "the intruder's packets were forwarded late";
  EXPECT_TRUE(child.exitedCleanly());
}

// A UDP datagram with a wrong checksum from `from` (IPv4) to `to`, through a raw socket: the
// forwarding program sees it, the UDP layer drops it.
void sendWithBadChecksum(const std::string& from, const MediaAddress& to) {
  const int fd = ::socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_UDP);
  ASSERT_GE(fd, 0);
  const common::SocketAddress local = common::toSocketAddress(ip(from), 0);
  ASSERT_EQ(::bind(fd, local.get(), local.length), 0);
  struct {
    udphdr header;
    std::array<std::uint8_t, 12> payload;
  } datagram{};
  datagram.header.source = htons(4000);
  datagram.header.dest = htons(to.port);
  datagram.header.len = htons(sizeof datagram);
  datagram.header.check = htons(0x1234);
  const common::SocketAddress destination = common::toSocketAddress(to.address, 0);
  EXPECT_EQ(::sendto(fd, &datagram, sizeof datagram, 0, destination.get(), destination.length),
            static_cast<ssize_t>(sizeof datagram));
  ::close(fd);
}

// Proves: a datagram the program left to a relay port's socket but the kernel then dropped
// (here a wrong UDP checksum, from a source the stream does not allow) does not keep the
// stream out of the kernel for good: while the trunk keeps sending every 5 ms (faster than
// the worker folds the kernel's counters), its packets move back into the kernel within a
// few folds. In both port modes.
TEST(KernelForwardingHandoff, RecoversFromADatagramTheKernelDropped) {
  for (const auto& [name, make] : {std::pair{"per_port", &makeKernelRelay},
                                   std::pair{"sk_lookup", &makeSteeredKernelRelay}}) {
    SCOPED_TRACE(name);
    const auto base = freePortWindow("127.0.0.10", "127.0.0.11", 20000, 25, 200);
    RelaySettings relaySettings;
    relaySettings.realms[0] = {ip("127.0.0.10"), base, static_cast<std::uint16_t>(base + 19)};
    relaySettings.realms[1] = {ip("127.0.0.11"), base, static_cast<std::uint16_t>(base + 19)};
    relaySettings.quarantine = 0ms;
    relaySettings.mediaTimeout = 0ms;
    auto relay = make(relaySettings);
    UdpPeer trunk("127.0.0.2"), core("127.0.0.3");
    const auto stream = relay->openStream("handoff");
    ASSERT_TRUE(stream);
    for (const auto& [realm, peer, address] : {std::tuple{Realm::access, &trunk, "127.0.0.2/32"},
                                                std::tuple{Realm::core, &core, "127.0.0.3/32"}}) {
      LegMedia leg;
      leg.rtp = peer->address();
      leg.allowedSources = {prefix(address)};
      ASSERT_TRUE(relay->updateLeg(stream->id, realm, leg));
    }
    const auto kernelForwarded = [&] { return relay->stats().kernelForwarded.value_or(0); };
    const auto talk = [&](std::uint32_t ssrc, int packets, Millis gap) {
      for (int seq = 0; seq < packets; ++seq) {
        trunk.sendTo(stream->rtp[0], rtpPacket(ssrc, static_cast<std::uint16_t>(seq)));
        const auto got = core.receive(2000ms);
        ASSERT_TRUE(got) << "packet " << seq << " of ssrc " << ssrc << " not forwarded";
        EXPECT_EQ(got->payload, rtpPacket(ssrc, static_cast<std::uint16_t>(seq)));
        std::this_thread::sleep_for(gap);
      }
    };
    talk(1, 1, 100ms);  // the worker forwards it and describes the stream to the kernel
    const auto before = kernelForwarded();
    talk(2, 5, 0ms);
    ASSERT_TRUE(eventually([&] { return kernelForwarded() == before + 5; }))
        << "the kernel forwarded " << kernelForwarded() - before << " of 5";

    sendWithBadChecksum("127.0.0.4", stream->rtp[0]);
    const auto afterDrop = kernelForwarded();
    talk(3, 60, 5ms);
    EXPECT_TRUE(eventually([&] { return kernelForwarded() >= afterDrop + 30; }))
        << "the kernel forwarded " << kernelForwarded() - afterDrop << " of 60";
  }
}

std::string commandOutput(const std::string& command) {
  std::string out;
  if (FILE* pipe = ::popen((command + " 2>&1").c_str(), "r")) {
    char buffer[512];
    while (std::fgets(buffer, sizeof buffer, pipe) != nullptr) out += buffer;
    ::pclose(pipe);
  }
  return out;
}

// Proves: attached the way kernels before 6.6 get it, the program is a clsact filter on
// loopback while the relay lives, and the relay takes the filter and the qdisc it added
// away with it.
TEST(KernelForwardingTcFilter, GoesAwayWithTheRelay) {
  ASSERT_EQ(commandOutput("tc qdisc show dev lo").find("clsact"), std::string::npos)
      << "another clsact qdisc on lo";
  RelaySettings relaySettings;
  relaySettings.realms[0] = {ip("127.0.0.10"), 20000, 20099};
  relaySettings.realms[1] = {ip("127.0.0.11"), 20000, 20099};
  {
    auto relay = makeTcFilterKernelRelay(relaySettings);
    EXPECT_NE(commandOutput("tc filter show dev lo ingress").find("sbc_media_fwd"),
              std::string::npos) << commandOutput("tc filter show dev lo ingress");
  }
  EXPECT_EQ(commandOutput("tc filter show dev lo ingress").find("sbc_media_fwd"), std::string::npos);
  EXPECT_EQ(commandOutput("tc qdisc show dev lo").find("clsact"), std::string::npos)
      << commandOutput("tc qdisc show dev lo");
}

// A network namespace without a name: made by a thread that unshares, held by a descriptor,
// gone with it and with the sockets made in it, so a crash leaves nothing to remove.
class PeerNamespace {
 public:
  PeerNamespace() {
    std::thread([this] {
      if (::unshare(CLONE_NEWNET) == 0) fd_ = ::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    }).join();
    if (fd_ < 0) throw std::runtime_error("cannot make a network namespace");
  }
  ~PeerNamespace() { ::close(fd_); }
  PeerNamespace(const PeerNamespace&) = delete;
  PeerNamespace& operator=(const PeerNamespace&) = delete;
  // What `ip link set ... netns` takes.
  std::string path() const {
    return "/proc/" + std::to_string(::getpid()) + "/fd/" + std::to_string(fd_);
  }
  // Runs `work` on a thread inside the namespace; commands it starts run there too.
  void run(const std::function<void()>& work) const {
    std::exception_ptr error;
    std::thread([&] {
      try {
        if (::setns(fd_, CLONE_NEWNET) != 0) throw std::runtime_error("setns");
        work();
      } catch (...) {
        error = std::current_exception();
      }
    }).join();
    if (error) std::rethrow_exception(error);
  }

 private:
  int fd_ = -1;
};

int sh(const std::string& command) { return std::system((command + " >/dev/null 2>&1").c_str()); }

// Proves: towards peers that are not on this host, kernel forwarding sends the rewritten
// packets out of the other realm's interface to the next hop the kernel resolves (ARP and
// neighbour discovery included): both ways, intact, from the relay's address and port of
// that realm, with DSCP EF and checksums the receiving kernel verifies (its veth has
// checksum offload off), nearly all of them without the worker, on IPv4 and IPv6. The peers
// sit in two namespaces of their own behind a veth pair each.
TEST(KernelForwardingOverVeth, SendsToPeersBehindTheRealmsInterfaces) {
  const std::string id = std::to_string(::getpid() % 100000);
  const std::string accessIf = "kf" + id + "a", trunkIf = "kf" + id + "b";
  const std::string coreIf = "kf" + id + "c", corePeerIf = "kf" + id + "d";
  PeerNamespace trunkNs, coreNs;
  const auto side = [&](const std::string& ours, const std::string& theirs, const PeerNamespace& ns,
                        const std::string& net4, const std::string& net6) {
    ASSERT_EQ(sh("ip link add " + ours + " type veth peer name " + theirs), 0);
    ASSERT_EQ(sh("ip link set " + theirs + " netns " + ns.path()), 0);
    ASSERT_EQ(sh("ip addr add " + net4 + "1/24 dev " + ours), 0);
    ASSERT_EQ(sh("ip -6 addr add " + net6 + "1/64 dev " + ours + " nodad"), 0);
    ASSERT_EQ(sh("ip link set " + ours + " up"), 0);
    ns.run([&] {
      ASSERT_EQ(sh("ip link set lo up"), 0);
      ASSERT_EQ(sh("ip addr add " + net4 + "2/24 dev " + theirs), 0);
      ASSERT_EQ(sh("ip -6 addr add " + net6 + "2/64 dev " + theirs + " nodad"), 0);
      ASSERT_EQ(sh("ip link set " + theirs + " up"), 0);
      // Sends complete checksums, and verifies what it receives in software.
      ASSERT_EQ(sh("ethtool -K " + theirs + " rx off tx off"), 0);
    });
  };
  side(accessIf, trunkIf, trunkNs, "10.81.1.", "fd00:81:1::");
  side(coreIf, corePeerIf, coreNs, "10.81.2.", "fd00:81:2::");
  if (HasFatalFailure()) return;

  for (const bool v6 : {false, true}) {
    SCOPED_TRACE(v6 ? "IPv6" : "IPv4");
    const std::string accessMedia = v6 ? "fd00:81:1::1" : "10.81.1.1";
    const std::string coreMedia = v6 ? "fd00:81:2::1" : "10.81.2.1";
    const std::string trunkAddress = v6 ? "fd00:81:1::2" : "10.81.1.2";
    const std::string coreAddress = v6 ? "fd00:81:2::2" : "10.81.2.2";
    RelaySettings relaySettings;
    relaySettings.realms[0] = {ip(accessMedia), 20000, 20099};
    relaySettings.realms[1] = {ip(coreMedia), 20000, 20099};
    relaySettings.quarantine = 0ms;
    relaySettings.mediaTimeout = 0ms;
    auto relay = makeKernelRelay(relaySettings);
    std::unique_ptr<UdpPeer> trunk, core;
    trunkNs.run([&] { trunk = std::make_unique<UdpPeer>(trunkAddress); });
    coreNs.run([&] { core = std::make_unique<UdpPeer>(coreAddress); });
    const auto stream = relay->openStream("veth");
    ASSERT_TRUE(stream);
    for (const auto& [realm, peer, address] : {std::tuple{Realm::access, trunk.get(), trunkAddress},
                                                std::tuple{Realm::core, core.get(), coreAddress}}) {
      LegMedia leg;
      leg.rtp = peer->address();
      leg.allowedSources = {prefix(hostPrefix(address))};
      ASSERT_TRUE(relay->updateLeg(stream->id, realm, leg));
    }
    constexpr std::uint16_t kPackets = 50;
    const auto expectCrossing = [&](const UdpPeer& from, const MediaAddress& via, const UdpPeer& to,
                                    const MediaAddress& expectedSource, std::uint32_t ssrc,
                                    std::uint16_t count) {
      for (std::uint16_t seq = 0; seq < count; ++seq) {
        from.sendTo(via, rtpPacket(ssrc, seq, 171 + seq % 2));
        const auto got = to.receive(2000ms);
        ASSERT_TRUE(got) << "packet " << seq << " of ssrc " << ssrc << " not forwarded";
        EXPECT_EQ(got->payload, rtpPacket(ssrc, seq, 171 + seq % 2));
        EXPECT_EQ(got->from, expectedSource);
        EXPECT_EQ(got->tos, 46 << 2);
      }
    };
    // The first packet of each side wakes the worker, which applies the legs, describes the
    // stream to the kernel and forwards the packet; once it has, the kernel takes the rest
    // (a packet that reaches the port before the worker's send returned still goes to the
    // socket, behind the one it follows).
    expectCrossing(*trunk, stream->rtp[0], *core, stream->rtp[1], 1, 1);
    expectCrossing(*core, stream->rtp[1], *trunk, stream->rtp[0], 2, 1);
    std::this_thread::sleep_for(100ms);
    expectCrossing(*trunk, stream->rtp[0], *core, stream->rtp[1], 3, kPackets);
    expectCrossing(*core, stream->rtp[1], *trunk, stream->rtp[0], 4, kPackets);
    EXPECT_TRUE(eventually([&] {
      const auto counters = relay->streamCounters(stream->id);
      return counters->packets[0] == 1 + kPackets && counters->packets[1] == 1 + kPackets &&
             relay->stats().kernelForwarded.value_or(0) >= 2u * kPackets;
    })) << "kernel forwarded " << relay->stats().kernelForwarded.value_or(0);
  }
}

// Proves: IPv6 realms forward both ways, RTP and RTCP, intact, from the relay's address
// and port of the egress realm, with DSCP EF in the traffic class and a UDP checksum the
// receiving kernel accepts (IPv6 has no "no checksum").
TEST(SteeredRelayIpv6, ForwardsBothWaysWithValidChecksums) {
  RelaySettings relaySettings;
  relaySettings.realms[0] = {ip("fd00:5bc::10"), 20000, 20099};
  relaySettings.realms[1] = {ip("fd00:5bc::11"), 20000, 20099};
  relaySettings.quarantine = 0ms;
  relaySettings.mediaTimeout = 0ms;
  auto relay = makeSteeredRelay(relaySettings);
  UdpPeer trunk("fd00:5bc::2"), core("fd00:5bc::3");
  const auto stream = relay->openStream("v6");
  ASSERT_TRUE(stream);
  for (const auto& [realm, peer, prefixText] :
       {std::tuple{Realm::access, &trunk, "fd00:5bc::2/128"},
        std::tuple{Realm::core, &core, "fd00:5bc::3/128"}}) {
    LegMedia leg;
    leg.rtp = peer->address();
    leg.rtcp = peer->address();  // RTCP to the same socket: one peer sees both
    leg.allowedSources = {prefix(prefixText)};
    ASSERT_TRUE(relay->updateLeg(stream->id, realm, leg));
  }
  const auto expectCrossing = [&](const UdpPeer& from, const MediaAddress& via,
                                  const UdpPeer& to, const MediaAddress& expectedSource,
                                  std::uint32_t ssrc, std::size_t size) {
    for (std::uint16_t seq = 0; seq < 20; ++seq) {
      from.sendTo(via, rtpPacket(ssrc, seq, size));
      const auto got = to.receive(2000ms);
      ASSERT_TRUE(got) << "packet " << seq << " (" << size << " bytes) not forwarded";
      EXPECT_EQ(got->payload, rtpPacket(ssrc, seq, size));
      EXPECT_EQ(got->from, expectedSource);
      EXPECT_EQ(got->tos, 46 << 2);
    }
  };
  // Odd and even lengths: the checksum pads an odd last byte.
  expectCrossing(trunk, stream->rtp[0], core, stream->rtp[1], 1, 172);
  expectCrossing(core, stream->rtp[1], trunk, stream->rtp[0], 2, 171);
  expectCrossing(trunk, plusOne(stream->rtp[0]), core, plusOne(stream->rtp[1]), 3, 77);
  // The worker counts a datagram once sendmmsg returns: the peer may have it before that.
  EXPECT_TRUE(eventually([&] {
    const auto counters = relay->streamCounters(stream->id);
    return counters && counters->packets[0] == 40u && counters->packets[1] == 20u;
  }));
}

}  // namespace
}  // namespace sbc::dataplane::testing

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  if (const int code = sbc::test::enterOwnNetworkNamespace(); code != 0) return code;
  for (const char* host : {"2", "3", "4", "5", "10", "11"}) {
    const std::string command = std::string("ip -6 addr add fd00:5bc::") + host + "/128 dev lo nodad";
    if (std::system(command.c_str()) != 0) {
      std::cerr << "FAILED: " << command << "\n";
      return 1;
    }
  }
  return RUN_ALL_TESTS();
}
