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


#include <cstdlib>
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
                                           ipv6("socket_per_port_v6", makeSocketRelay)),
                         relayTargetName);

class SteeredRelay : public RelayBehaviour {};
INSTANTIATE_TEST_SUITE_P(SocketSkLookup, SteeredRelay, ::testing::Values(kSteered),
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
