// The socket media driver in sk_lookup mode (one socket per realm, a BPF program steering
// the port range to it, a raw socket sending): the shared behaviour suite, plus what only
// this mode shows. The binary runs in a network namespace of its own, made in main() before
// any thread: the steering programs it attaches see only its packets, and the IPv6
// addresses it adds vanish with the process, also after a crash. Needs root (CAP_BPF,
// CAP_NET_ADMIN, CAP_NET_RAW, CAP_SYS_ADMIN for the namespace).
//
// The kernel checks the UDP checksum of what the raw socket sends even on loopback (such
// a packet carries no "checksum done" mark): every packet a peer receives here proves the
// checksum written by udp_headers.cc.

#include <arpa/inet.h>
#include <dirent.h>
#include <sched.h>

#include <cstdlib>
#include <iostream>

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
INSTANTIATE_TEST_SUITE_P(SocketSkLookup, RelayBehaviour, ::testing::Values(kSteered),
                         relayTargetName);

class SteeredRelay : public RelayBehaviour {};
INSTANTIATE_TEST_SUITE_P(SocketSkLookup, SteeredRelay, ::testing::Values(kSteered),
                         relayTargetName);

std::size_t openDescriptorCount() {
  std::size_t count = 0;
  DIR* dir = ::opendir("/proc/self/fd");
  if (dir == nullptr) return 0;
  while (const dirent* entry = ::readdir(dir)) {
    if (entry->d_name[0] != '.') ++count;
  }
  ::closedir(dir);
  return count;
}

// Proves: 10,000 streams (40,000 relay ports over both realms) take no descriptor each,
// and the first and the last of them forward.
TEST_P(SteeredRelay, TenThousandStreamsNeedNoDescriptorPerPort) {
  constexpr std::uint16_t kStreams = 10000;
  auto relay = make(settings(0ms, 0ms, kStreams, 20000));
  const std::size_t before = openDescriptorCount();
  std::vector<StreamEndpoints> streams;
  streams.reserve(kStreams);
  for (std::uint16_t i = 0; i < kStreams; ++i) {
    const auto stream = relay->openStream("t");
    ASSERT_TRUE(stream) << "stream " << i;
    streams.push_back(*stream);
  }
  EXPECT_FALSE(relay->openStream("t")) << "the range holds exactly " << kStreams << " pairs";
  EXPECT_LE(openDescriptorCount(), before + 2);

  UdpPeer trunk(target().trunk), core(target().core);
  for (const StreamEndpoints* stream : {&streams.front(), &streams.back()}) {
    ASSERT_TRUE(relay->updateLeg(stream->id, Realm::access, legFor(trunk, target().trunk + "/32")));
    ASSERT_TRUE(relay->updateLeg(stream->id, Realm::core, legFor(core, target().core + "/32")));
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

// An IPv6 UDP socket (UdpPeer is IPv4 only) on an address this namespace has.
class Udp6Peer {
 public:
  explicit Udp6Peer(const std::string& address) {
    fd_ = ::socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    const int one = 1;
    ::setsockopt(fd_, IPPROTO_IPV6, IPV6_RECVTCLASS, &one, sizeof one);
    sockaddr_in6 local{};
    local.sin6_family = AF_INET6;
    std::memcpy(&local.sin6_addr, ip(address).bytes.data(), 16);
    if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&local), sizeof local) != 0) {
      throw std::runtime_error("bind " + address);
    }
    socklen_t length = sizeof local;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&local), &length);
    address_ = {ip(address), ntohs(local.sin6_port)};
  }
  ~Udp6Peer() { ::close(fd_); }
  Udp6Peer(const Udp6Peer&) = delete;
  Udp6Peer& operator=(const Udp6Peer&) = delete;
  const MediaAddress& address() const { return address_; }

  void sendTo(const MediaAddress& to, const std::vector<std::uint8_t>& payload) const {
    sockaddr_in6 remote{};
    remote.sin6_family = AF_INET6;
    remote.sin6_port = htons(to.port);
    std::memcpy(&remote.sin6_addr, to.address.bytes.data(), 16);
    ::sendto(fd_, payload.data(), payload.size(), 0, reinterpret_cast<sockaddr*>(&remote),
             sizeof remote);
  }

  std::optional<Datagram> receive(Millis timeout) const {
    pollfd waiting{fd_, POLLIN, 0};
    if (::poll(&waiting, 1, static_cast<int>(timeout.count())) <= 0) return std::nullopt;
    std::array<std::uint8_t, 4096> buffer{};
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
    const ssize_t n = ::recvmsg(fd_, &message, MSG_DONTWAIT);
    if (n < 0) return std::nullopt;
    Datagram out;
    out.payload.assign(buffer.begin(), buffer.begin() + n);
    policy::IpAddress source;
    source.family = policy::IpFamily::v6;
    std::memcpy(source.bytes.data(), &from.sin6_addr, 16);
    out.from = {source, ntohs(from.sin6_port)};
    for (cmsghdr* c = CMSG_FIRSTHDR(&message); c != nullptr; c = CMSG_NXTHDR(&message, c)) {
      if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_TCLASS) {
        int tclass = 0;
        std::memcpy(&tclass, CMSG_DATA(c), sizeof tclass);
        out.tos = tclass;
      }
    }
    return out;
  }

 private:
  int fd_ = -1;
  MediaAddress address_;
};

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
  Udp6Peer trunk("fd00:5bc::2"), core("fd00:5bc::3");
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
  const auto expectCrossing = [&](const Udp6Peer& from, const MediaAddress& via,
                                  const Udp6Peer& to, const MediaAddress& expectedSource,
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
  // Under CI=true a test that cannot run fails; elsewhere it is skipped (meson: exit 77).
  std::string missing;
  if (::geteuid() != 0) {
    missing = "needs root (BPF sk_lookup, raw sockets, a network namespace)";
  } else if (::unshare(CLONE_NEWNET) != 0) {
    missing = "cannot make a network namespace";
  }
  if (!missing.empty()) {
    if (sbc::test::runningInCi()) {
      std::cerr << "FAILED (CI=true): " << missing << "\n";
      return 1;
    }
    std::cerr << "skipped: " << missing << "\n";
    return 77;
  }
  for (const char* command :
       {"ip link set lo up", "ip -6 addr add fd00:5bc::2/128 dev lo nodad",
        "ip -6 addr add fd00:5bc::3/128 dev lo nodad",
        "ip -6 addr add fd00:5bc::10/128 dev lo nodad",
        "ip -6 addr add fd00:5bc::11/128 dev lo nodad"}) {
    if (std::system(command) != 0) {
      std::cerr << "FAILED: " << command << "\n";
      return 1;
    }
  }
  return RUN_ALL_TESTS();
}
