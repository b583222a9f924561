// DpdkRelay end to end in-process: two net_ring ports (rte_eth_from_rings), crafted
// packets injected on a port's RX ring and captured from the other port's TX ring, with the
// relay's own worker thread, housekeeping thread and eventfd.
#include "dataplane/dpdk/dpdk_relay.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <rte_eth_ring.h>
#include <rte_ethdev.h>
#include <rte_ring.h>
#include <sched.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>
#include <vector>

#include "metrics/media_collector.h"
#include "metrics/metrics.h"
#include "tests/dataplane/dpdk_test_util.h"
#include "tests/support/test_env.h"

namespace sbc::dataplane {
namespace {

using namespace std::chrono_literals;
using namespace dpdk::testing;
using policy::IpAddress;
using policy::IpPrefix;

const rte_ether_addr kCorePeerMac{{0x02, 0xcc, 0, 0, 0, 0x20}};
const rte_ether_addr kTrunkMac{{0x02, 0xaa, 0, 0, 0, 0x10}};

LegMedia leg(const std::string& rtp, std::uint16_t port, const std::string& prefix) {
  LegMedia l;
  l.rtp = MediaAddress{*IpAddress::parse(rtp), port};
  l.allowedSources = {*IpPrefix::parse(prefix)};
  return l;
}

class DpdkRelayTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(access.ok());
    ASSERT_TRUE(core.ok());
    settings.realms[0] = {*IpAddress::parse("10.0.0.1"), 10000, 10010};
    settings.realms[1] = {*IpAddress::parse("10.1.0.1"), 20000, 20010};
    settings.quarantine = 2000ms;
    settings.mediaTimeout = 0ms;
    dpdkSettings.ports = {{access.name(), Realm::access}, {core.name(), Realm::core}};
  }
  void start() { relay = makeDpdkRelay(settings, dpdkSettings, tuning); }
  void TearDown() override {
    access.drain();  // packets from the relay's pool go back before the pool does
    core.drain();
    relay.reset();
  }
  StreamEndpoints openTrunkStream() {
    auto s = relay->openStream("trunk-a");
    EXPECT_TRUE(s);
    EXPECT_TRUE(relay->updateLeg(s->id, Realm::access, leg("192.0.2.10", 4000, "192.0.2.0/24")));
    EXPECT_TRUE(relay->updateLeg(s->id, Realm::core, leg("198.51.100.20", 5000, "198.51.100.0/24")));
    return *s;
  }
  Udp4Spec fromTrunk(const StreamEndpoints& s) {
    Udp4Spec spec;
    spec.dstPort = s.rtp[0].port;
    return spec;
  }
  // RTP from the core peer of openTrunkStream() to the stream's core endpoint.
  Udp4Spec fromCore(const StreamEndpoints& s) {
    Udp4Spec spec;
    spec.src = "198.51.100.20";
    spec.srcPort = 5000;
    spec.dst = s.rtp[1].address.toString();
    spec.dstPort = s.rtp[1].port;
    return spec;
  }
  // After the core peer's ARP reply has been injected: trunk media, sent again until the
  // worker has learnt the reply and forwards it to the core (nullptr if it never does).
  rte_mbuf* forwardedOnceResolved(const StreamEndpoints& s) {
    rte_mbuf* out = nullptr;
    for (int attempt = 0; attempt < 50 && out == nullptr; ++attempt) {
      access.inject(makeUdp4(fromTrunk(s)));
      out = core.capture(50ms);
    }
    return out;
  }

  RingPort access, core;
  RelaySettings settings;
  DpdkSettings dpdkSettings;
  DpdkTuning tuning;
  std::unique_ptr<DpdkRelay> relay;
};

// Packets injected on the access port leave the core port rewritten (and back), and the
// relay's stream, label and reason counters agree.
TEST_F(DpdkRelayTest, ForwardsBothWaysBetweenRingPorts) {
  start();
  relay->setNeighbour(*IpAddress::parse("198.51.100.20"), kCorePeerMac);
  relay->setNeighbour(*IpAddress::parse("192.0.2.10"), kTrunkMac);
  const StreamEndpoints s = openTrunkStream();
  EXPECT_EQ(s.rtp[0].address, *IpAddress::parse("10.0.0.1"));
  EXPECT_EQ(s.rtp[1].address, *IpAddress::parse("10.1.0.1"));
  ASSERT_TRUE(access.inject(makeUdp4(fromTrunk(s))));
  rte_mbuf* out = core.capture();
  ASSERT_NE(out, nullptr);
  const auto* ip = rte_pktmbuf_mtod_offset(out, const rte_ipv4_hdr*, 14);
  const auto* udp = rte_pktmbuf_mtod_offset(out, const rte_udp_hdr*, 34);
  EXPECT_EQ(ip->src_addr, ip4("10.1.0.1"));
  EXPECT_EQ(ip->dst_addr, ip4("198.51.100.20"));
  EXPECT_EQ(ntohs(udp->src_port), s.rtp[1].port);
  EXPECT_EQ(ntohs(udp->dst_port), 5000);
  EXPECT_EQ(ip->type_of_service, 46 << 2);
  EXPECT_EQ(rte_ipv4_cksum(ip), 0);
  EXPECT_EQ(rte_ipv4_udptcp_cksum_verify(ip, udp), 0);
  const auto* eth = rte_pktmbuf_mtod(out, const rte_ether_hdr*);
  EXPECT_TRUE(rte_is_same_ether_addr(&eth->dst_addr, &kCorePeerMac));
  rte_pktmbuf_free(out);

  Udp4Spec back = fromCore(s);
  back.payload = 40;
  ASSERT_TRUE(core.inject(makeUdp4(back)));
  out = access.capture();
  ASSERT_NE(out, nullptr);
  ip = rte_pktmbuf_mtod_offset(out, const rte_ipv4_hdr*, 14);
  udp = rte_pktmbuf_mtod_offset(out, const rte_udp_hdr*, 34);
  EXPECT_EQ(ip->src_addr, ip4("10.0.0.1"));
  EXPECT_EQ(ip->dst_addr, ip4("192.0.2.10"));
  EXPECT_EQ(ntohs(udp->src_port), s.rtp[0].port);
  EXPECT_EQ(ntohs(udp->dst_port), 4000);
  rte_pktmbuf_free(out);

  Udp4Spec intruder = fromTrunk(s);
  intruder.src = "203.0.113.66";
  ASSERT_TRUE(access.inject(makeUdp4(intruder)));
  EXPECT_EQ(core.capture(200ms), nullptr);
  const auto counters = relay->streamCounters(s.id);
  ASSERT_TRUE(counters);
  EXPECT_EQ(counters->packets[0], 1u);
  EXPECT_EQ(counters->bytes[0], 172u);
  EXPECT_EQ(counters->packets[1], 1u);
  EXPECT_EQ(counters->dropped[0], 1u);
  const MediaStats stats = relay->stats();
  EXPECT_EQ(stats.dropped[static_cast<std::size_t>(DropReason::sourceNotAllowed)], 1u);
  EXPECT_EQ(stats.flows, 4u);
  bool found = false;
  for (const auto& l : stats.labels) {
    if (l.label != "trunk-a") continue;
    found = true;
    EXPECT_EQ(l.packets[0], 1u);
    EXPECT_EQ(l.packets[1], 1u);
    EXPECT_EQ(l.dropped, 1u);
  }
  EXPECT_TRUE(found);
}

// ARP: a request for our core address is answered on the core port; an unknown peer is
// resolved with an ARP request, and once the reply is in, media flows.
TEST_F(DpdkRelayTest, AnswersAndResolvesArp) {
  start();
  const StreamEndpoints s = openTrunkStream();
  const rte_ether_addr router{{0x02, 0x77, 0, 0, 0, 0x01}};
  ASSERT_TRUE(core.inject(makeArp(RTE_ARP_OP_REQUEST, router, "10.1.0.254", "10.1.0.1")));
  rte_mbuf* reply = core.capture();
  ASSERT_NE(reply, nullptr);
  EXPECT_EQ(rte_pktmbuf_mtod_offset(reply, const rte_arp_hdr*, 14)->arp_opcode,
            htons(RTE_ARP_OP_REPLY));
  rte_pktmbuf_free(reply);

  ASSERT_TRUE(access.inject(makeUdp4(fromTrunk(s))));
  rte_mbuf* request = core.capture();
  ASSERT_NE(request, nullptr);
  const auto* arp = rte_pktmbuf_mtod_offset(request, const rte_arp_hdr*, 14);
  EXPECT_EQ(arp->arp_opcode, htons(RTE_ARP_OP_REQUEST));
  EXPECT_EQ(arp->arp_data.arp_tip, ip4("198.51.100.20"));
  rte_pktmbuf_free(request);
  EXPECT_EQ(relay->dpdkStats().unresolved, 1u);
  ASSERT_TRUE(core.inject(makeArp(RTE_ARP_OP_REPLY, kCorePeerMac, "198.51.100.20", "10.1.0.1")));
  // The reply is learnt asynchronously by the worker: retry until media flows.
  rte_mbuf* out = forwardedOnceResolved(s);
  ASSERT_NE(out, nullptr);
  const auto* eth = rte_pktmbuf_mtod(out, const rte_ether_hdr*);
  EXPECT_TRUE(rte_is_same_ether_addr(&eth->dst_addr, &kCorePeerMac));
  rte_pktmbuf_free(out);
}

// Proves: with IPv6 media addresses the relay's worker answers a Neighbor Solicitation
// for our core address on the core port, solicits an unknown IPv6 peer, and once the
// advertisement is in, media flows to the learnt MAC; the counters agree.
TEST_F(DpdkRelayTest, AnswersAndResolvesNeighbourDiscovery) {
  settings.realms[0] = {*IpAddress::parse("2001:db8::1"), 10000, 10010};
  settings.realms[1] = {*IpAddress::parse("2001:db8:100::1"), 20000, 20010};
  start();
  auto s = relay->openStream("trunk-a");
  ASSERT_TRUE(s);
  ASSERT_TRUE(relay->updateLeg(s->id, Realm::access, leg("2001:db8:1::10", 4000, "2001:db8:1::/48")));
  ASSERT_TRUE(relay->updateLeg(s->id, Realm::core, leg("2001:db8:100::20", 5000, "2001:db8:100::/48")));
  const rte_ether_addr router{{0x02, 0x77, 0, 0, 0, 0x01}};
  NdSpec ns;
  ns.src = "2001:db8:100::fe";
  ns.target = "2001:db8:100::1";
  ns.mac = router;
  ASSERT_TRUE(core.inject(makeNd(ns)));
  rte_mbuf* answer = core.capture();
  ASSERT_NE(answer, nullptr);
  const auto* eth = rte_pktmbuf_mtod(answer, const rte_ether_hdr*);
  EXPECT_TRUE(rte_is_same_ether_addr(&eth->dst_addr, &router));
  const auto* ip = rte_pktmbuf_mtod_offset(answer, const rte_ipv6_hdr*, 14);
  const auto* nd = rte_pktmbuf_mtod_offset(answer, const std::uint8_t*, 54);
  EXPECT_EQ(nd[0], kNdAdvertisement);
  EXPECT_EQ(0, std::memcmp(nd + 8, ip6("2001:db8:100::1").data(), 16));
  EXPECT_EQ(rte_ipv6_udptcp_cksum_verify(ip, nd), 0);
  rte_pktmbuf_free(answer);
  EXPECT_EQ(access.capture(50ms), nullptr) << "answered on the receiving port only";

  Udp6Spec media;
  media.dstPort = s->rtp[0].port;
  ASSERT_TRUE(access.inject(makeUdp6(media)));
  rte_mbuf* solicitation = core.capture();
  ASSERT_NE(solicitation, nullptr);
  nd = rte_pktmbuf_mtod_offset(solicitation, const std::uint8_t*, 54);
  EXPECT_EQ(nd[0], kNdSolicitation);
  EXPECT_EQ(0, std::memcmp(nd + 8, ip6("2001:db8:100::20").data(), 16));
  rte_pktmbuf_free(solicitation);
  NdSpec na;
  na.type = kNdAdvertisement;
  na.src = "2001:db8:100::20";
  na.target = "2001:db8:100::20";
  na.dst = "2001:db8:100::1";
  na.flags = 0x60000000;
  na.mac = kCorePeerMac;
  ASSERT_TRUE(core.inject(makeNd(na)));
  // The advertisement is learnt asynchronously by the worker: retry until media flows.
  rte_mbuf* out = nullptr;
  for (int attempt = 0; attempt < 50 && out == nullptr; ++attempt) {
    access.inject(makeUdp6(media));
    out = core.capture(50ms);
  }
  ASSERT_NE(out, nullptr);
  eth = rte_pktmbuf_mtod(out, const rte_ether_hdr*);
  EXPECT_TRUE(rte_is_same_ether_addr(&eth->dst_addr, &kCorePeerMac));
  EXPECT_EQ(rte_pktmbuf_mtod_offset(out, const rte_ipv6_hdr*, 14)->proto, IPPROTO_UDP);
  rte_pktmbuf_free(out);
  const DpdkStats stats = relay->dpdkStats();
  EXPECT_EQ(stats.ndAnswered, 1u);
  EXPECT_GE(stats.ndRequested, 1u);  // one per 200 ms at most: more if the worker lagged
  EXPECT_EQ(stats.ndLearnt, 1u);  // the peer; the router is no neighbour of ours
  EXPECT_GE(stats.unresolved, 1u);
  EXPECT_EQ(stats.ndIgnored + stats.ndInvalid, 0u);
}

// The relay's media counters as Prometheus scrapes them (the daemon's collector).
class DpdkRelayMetricsTest : public DpdkRelayTest {
 protected:
  void start() {
    DpdkRelayTest::start();
    // The relay outlives the collector (both end with the test); no ownership to share.
    registry.addCollector(std::make_shared<metrics::MediaCollector>(
        std::shared_ptr<const MediaRelay>(relay.get(), [](const MediaRelay*) {})));
  }
  static std::string neighbourSeries(const char* protocol, const char* event) {
    return std::string("sbc_media_neighbour_total{event=\"") + event + "\",protocol=\"" +
           protocol + "\"}";
  }
  // The exposition once `series` reads `value` (workers count after queueing an answer),
  // or after 5 s.
  std::string scrapeWhen(const std::string& series, double value) {
    std::string text = registry.render();
    for (const auto deadline = std::chrono::steady_clock::now() + 5s;
         test::metricValue(text, series) != value && std::chrono::steady_clock::now() < deadline;
         text = registry.render()) {
      std::this_thread::sleep_for(5ms);
    }
    return text;
  }
  metrics::Metrics registry;
};

// Proves: the dpdk driver's ARP reaches the Prometheus exposition: every series of
// sbc_media_neighbour_total{protocol,event} is there at zero from the start (ARP has no
// `invalid`), as is the dpdk-only sbc_media_dropped_total{reason="unresolved"}; an ARP
// request for our address answered, one for another address ignored and an unresolved next
// hop's request and drop show as scraped. Fails without the family and MediaStats::neighbours.
TEST_F(DpdkRelayMetricsTest, ExportsArpCounters) {
  start();
  const std::string before = registry.render();
  for (const char* event : {"answered", "requested", "learnt", "ignored", "invalid"}) {
    EXPECT_EQ(test::metricValue(before, neighbourSeries("nd", event)), 0.0) << before;
    if (std::string(event) == "invalid") {
      EXPECT_FALSE(test::metricValue(before, neighbourSeries("arp", event)))
          << "malformed ARP is a malformed drop, not a neighbour event";
    } else {
      EXPECT_EQ(test::metricValue(before, neighbourSeries("arp", event)), 0.0) << event;
    }
  }
  EXPECT_EQ(test::metricValue(before, "sbc_media_dropped_total{reason=\"unresolved\"}"), 0.0);

  const rte_ether_addr asker{{0x02, 0x55, 0, 0, 0, 0x01}};
  ASSERT_TRUE(access.inject(makeArp(RTE_ARP_OP_REQUEST, asker, "192.0.2.50", "10.0.0.1")));
  rte_mbuf* reply = access.capture();
  ASSERT_NE(reply, nullptr);
  rte_pktmbuf_free(reply);
  ASSERT_TRUE(access.inject(makeArp(RTE_ARP_OP_REQUEST, asker, "192.0.2.50", "10.0.0.99")));
  const StreamEndpoints s = openTrunkStream();  // its core peer is not resolved
  ASSERT_TRUE(access.inject(makeUdp4(fromTrunk(s))));
  rte_mbuf* request = core.capture();
  ASSERT_NE(request, nullptr);
  rte_pktmbuf_free(request);

  const std::string text = scrapeWhen(neighbourSeries("arp", "ignored"), 1.0);
  EXPECT_EQ(test::metricValue(text, neighbourSeries("arp", "ignored")), 1.0) << text;
  EXPECT_EQ(test::metricValue(text, neighbourSeries("arp", "answered")), 1.0);
  EXPECT_EQ(test::metricValue(text, neighbourSeries("arp", "requested")), 1.0);
  EXPECT_EQ(test::metricValue(text, neighbourSeries("arp", "learnt")), 0.0)
      << "a stranger is not learnt";
  EXPECT_EQ(test::metricValue(text, "sbc_media_dropped_total{reason=\"unresolved\"}"), 1.0);
}

// Proves: with IPv6 media addresses a Neighbor Solicitation answered and one failing
// validation (hop limit not 255) show in sbc_media_neighbour_total{protocol="nd"} as scraped.
TEST_F(DpdkRelayMetricsTest, ExportsNeighbourDiscoveryCounters) {
  settings.realms[0] = {*IpAddress::parse("2001:db8::1"), 10000, 10010};
  settings.realms[1] = {*IpAddress::parse("2001:db8:100::1"), 20000, 20010};
  start();
  NdSpec ns;
  ns.src = "2001:db8:100::fe";
  ns.target = "2001:db8:100::1";
  ns.mac = {{0x02, 0x77, 0, 0, 0, 0x01}};
  ASSERT_TRUE(core.inject(makeNd(ns)));
  rte_mbuf* advertisement = core.capture();
  ASSERT_NE(advertisement, nullptr);
  rte_pktmbuf_free(advertisement);
  NdSpec forged = ns;
  forged.hopLimit = 64;  // routed from off the link: RFC 4861 7.1.1 says drop
  ASSERT_TRUE(core.inject(makeNd(forged)));

  const std::string text = scrapeWhen(neighbourSeries("nd", "invalid"), 1.0);
  EXPECT_EQ(test::metricValue(text, neighbourSeries("nd", "invalid")), 1.0) << text;
  EXPECT_EQ(test::metricValue(text, neighbourSeries("nd", "answered")), 1.0);
  EXPECT_EQ(test::metricValue(text, neighbourSeries("nd", "learnt")), 0.0);
  EXPECT_EQ(test::metricValue(text, neighbourSeries("arp", "answered")), 0.0);
}

// Proves: over the relay (its worker and housekeeping threads), 70,000 calls each naming a
// new on-link core peer in SDP (more than the neighbour table's 65,536 slots) leave
// sbc_media_neighbour_entries where it started once they end, and a new call's unknown peer
// is still resolved by ARP and its media forwarded. Fails without freeing the slots of ended
// calls: the table fills, the new peer gets no entry, no ARP request goes out.
TEST_F(DpdkRelayMetricsTest, ReusesNeighbourEntriesOfEndedCalls) {
  settings.quarantine = 0ms;
  start();
  const std::string entries = "sbc_media_neighbour_entries";
  EXPECT_EQ(test::metricValue(registry.render(), entries), 0.0) << registry.render();
  for (std::uint32_t call = 0; call < 70000; ++call) {
    auto s = relay->openStream("trunk-a");
    ASSERT_TRUE(s) << "call " << call;
    const std::uint32_t host = 0x64400000u + call;  // 100.64.0.0/10
    const std::string peer = std::to_string(host >> 24) + "." + std::to_string((host >> 16) & 255) +
                             "." + std::to_string((host >> 8) & 255) + "." + std::to_string(host & 255);
    ASSERT_TRUE(relay->updateLeg(s->id, Realm::core, leg(peer, 5000, "100.64.0.0/10")));
    if (call == 0) {
      EXPECT_EQ(test::metricValue(registry.render(), entries), 1.0);
    }
    relay->closeStream(s->id);
  }
  EXPECT_EQ(test::metricValue(registry.render(), entries), 0.0) << "released as calls end";

  const StreamEndpoints s = openTrunkStream();  // core peer 198.51.100.20, never resolved
  ASSERT_TRUE(access.inject(makeUdp4(fromTrunk(s))));
  rte_mbuf* request = core.capture();
  ASSERT_NE(request, nullptr) << "no ARP request: the new peer has no neighbour entry";
  EXPECT_EQ(rte_pktmbuf_mtod_offset(request, const rte_arp_hdr*, 14)->arp_data.arp_tip,
            ip4("198.51.100.20"));
  rte_pktmbuf_free(request);
  ASSERT_TRUE(core.inject(makeArp(RTE_ARP_OP_REPLY, kCorePeerMac, "198.51.100.20", "10.1.0.1")));
  rte_mbuf* out = forwardedOnceResolved(s);
  ASSERT_NE(out, nullptr);
  EXPECT_TRUE(rte_is_same_ether_addr(&rte_pktmbuf_mtod(out, const rte_ether_hdr*)->dst_addr,
                                     &kCorePeerMac));
  rte_pktmbuf_free(out);
  EXPECT_EQ(test::metricValue(registry.render(), entries), 2.0) << "the trunk's and the core's peer";
}

// Proves: both realms may share one media address with their port ranges apart (the config
// allows it): a datagram is for the realm whose range holds its port. Before, every
// datagram to the shared address was taken for the access realm, and the core's media
// was dropped as no_flow.
TEST_F(DpdkRelayTest, RealmsSharingAnAddressAreToldApartByPort) {
  settings.realms[1].address = settings.realms[0].address;  // 10.0.0.1, ports 20000..20010
  start();
  relay->setNeighbour(*IpAddress::parse("198.51.100.20"), kCorePeerMac);
  relay->setNeighbour(*IpAddress::parse("192.0.2.10"), kTrunkMac);
  const StreamEndpoints s = openTrunkStream();
  EXPECT_EQ(s.rtp[1].address, *IpAddress::parse("10.0.0.1"));
  ASSERT_TRUE(access.inject(makeUdp4(fromTrunk(s))));
  rte_mbuf* out = core.capture();
  ASSERT_NE(out, nullptr);
  EXPECT_EQ(rte_pktmbuf_mtod_offset(out, const rte_ipv4_hdr*, 14)->dst_addr, ip4("198.51.100.20"));
  EXPECT_EQ(ntohs(rte_pktmbuf_mtod_offset(out, const rte_udp_hdr*, 34)->src_port), s.rtp[1].port);
  rte_pktmbuf_free(out);

  Udp4Spec back = fromCore(s);
  ASSERT_TRUE(core.inject(makeUdp4(back)));
  out = access.capture();
  ASSERT_NE(out, nullptr);
  EXPECT_EQ(rte_pktmbuf_mtod_offset(out, const rte_ipv4_hdr*, 14)->dst_addr, ip4("192.0.2.10"));
  EXPECT_EQ(ntohs(rte_pktmbuf_mtod_offset(out, const rte_udp_hdr*, 34)->src_port), s.rtp[0].port);
  rte_pktmbuf_free(out);
  EXPECT_EQ(relay->stats().dropped[static_cast<std::size_t>(DropReason::noFlow)], 0u);
}

// Proves: both realms on one port (one link, as a switch trunk port delivers it), told apart
// by VLAN: access on 100, core on 200. Media from the trunk tagged 100 leaves the same port
// tagged 200 (priority 5) to the core peer and back; untagged media is dropped as
// wrong_vlan; ARP for the core address is answered on VLAN 200 and ignored on VLAN 100.
TEST_F(DpdkRelayTest, BothRealmsOnOnePortByVlan) {
  settings.realms[0].vlan = 100;
  settings.realms[1].vlan = 200;
  dpdkSettings.ports = {{access.name(), Realm::access}, {access.name(), Realm::core}};
  start();
  relay->setNeighbour(*IpAddress::parse("198.51.100.20"), kCorePeerMac);
  relay->setNeighbour(*IpAddress::parse("192.0.2.10"), kTrunkMac);
  const StreamEndpoints s = openTrunkStream();
  const auto tciOf = [](const rte_mbuf* m) {
    EXPECT_EQ(rte_pktmbuf_mtod(m, const rte_ether_hdr*)->ether_type, htons(RTE_ETHER_TYPE_VLAN));
    return ntohs(rte_pktmbuf_mtod_offset(m, const rte_vlan_hdr*, 14)->vlan_tci);
  };

  ASSERT_TRUE(access.inject(withVlan(makeUdp4(fromTrunk(s)), 100)));
  rte_mbuf* out = access.capture();
  ASSERT_NE(out, nullptr);
  EXPECT_EQ(tciOf(out), 5 << 13 | 200);
  EXPECT_EQ(rte_pktmbuf_mtod_offset(out, const rte_ipv4_hdr*, 18)->dst_addr, ip4("198.51.100.20"));
  EXPECT_TRUE(rte_is_same_ether_addr(&rte_pktmbuf_mtod(out, const rte_ether_hdr*)->dst_addr,
                                     &kCorePeerMac));
  rte_pktmbuf_free(out);

  Udp4Spec back = fromCore(s);
  back.vlan = true;
  back.vlanTci = 200;
  ASSERT_TRUE(access.inject(makeUdp4(back)));
  out = access.capture();
  ASSERT_NE(out, nullptr);
  EXPECT_EQ(tciOf(out), 5 << 13 | 100);
  EXPECT_EQ(rte_pktmbuf_mtod_offset(out, const rte_ipv4_hdr*, 18)->dst_addr, ip4("192.0.2.10"));
  rte_pktmbuf_free(out);

  ASSERT_TRUE(access.inject(makeUdp4(fromTrunk(s))));  // untagged
  const rte_ether_addr router{{0x02, 0x77, 0, 0, 0, 0x01}};
  ASSERT_TRUE(access.inject(withVlan(makeArp(RTE_ARP_OP_REQUEST, router, "10.1.0.254", "10.1.0.1"), 100)));
  ASSERT_TRUE(access.inject(withVlan(makeArp(RTE_ARP_OP_REQUEST, router, "10.1.0.254", "10.1.0.1"), 200)));
  rte_mbuf* reply = access.capture();
  ASSERT_NE(reply, nullptr);
  EXPECT_EQ(tciOf(reply), 200);
  EXPECT_EQ(rte_pktmbuf_mtod_offset(reply, const rte_arp_hdr*, 18)->arp_opcode, htons(RTE_ARP_OP_REPLY));
  rte_pktmbuf_free(reply);
  EXPECT_EQ(access.capture(200ms), nullptr);
  EXPECT_EQ(relay->stats().dropped[static_cast<std::size_t>(DropReason::wrongVlan)], 1u);
  EXPECT_EQ(relay->dpdkStats().arpIgnored, 1u);
  EXPECT_EQ(relay->dpdkStats().arpReplied, 1u);
}

// Proves: the relay's housekeeping frees the neighbour entry its worker made for a latched
// line's address (no rule carries it) once it has been unused for tuning.neighbourIdle
// (here 50 ms), so sources that latch from ever-new on-link addresses cannot fill the table.
// Fails without the idle sweep: the entry stays.
TEST_F(DpdkRelayTest, FreesIdleLatchedNeighbourEntries) {
  tuning.neighbourIdle = 50ms;
  start();
  relay->setNeighbour(*IpAddress::parse("198.51.100.20"), kCorePeerMac);
  const StreamEndpoints s = openTrunkStream();
  LegMedia line = leg("192.0.2.10", 4000, "192.0.2.0/24");
  line.latch = true;
  ASSERT_TRUE(relay->updateLeg(s.id, Realm::access, line));
  Udp4Spec latch = fromTrunk(s);
  latch.src = "192.0.2.77";
  ASSERT_TRUE(access.inject(makeUdp4(latch)));
  rte_mbuf* out = core.capture();
  ASSERT_NE(out, nullptr);
  rte_pktmbuf_free(out);
  const std::uint64_t before = relay->stats().neighbours->entries;
  Udp4Spec back = fromCore(s);
  ASSERT_TRUE(core.inject(makeUdp4(back)));
  rte_mbuf* request = access.capture();
  ASSERT_NE(request, nullptr);
  EXPECT_EQ(rte_pktmbuf_mtod_offset(request, const rte_arp_hdr*, 14)->arp_data.arp_tip,
            ip4("192.0.2.77"));
  rte_pktmbuf_free(request);
  EXPECT_EQ(relay->stats().neighbours->entries, before + 1);
  // A full sweep takes 64 housekeeping periods (20 ms each).
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (relay->stats().neighbours->entries != before && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(20ms);
  EXPECT_EQ(relay->stats().neighbours->entries, before);
}

// After closeStream and the grace period nothing is forwarded; the ports rest in
// quarantine (the next stream gets other ports).
TEST_F(DpdkRelayTest, CloseStopsForwardingAndQuarantinesPorts) {
  start();
  relay->setNeighbour(*IpAddress::parse("198.51.100.20"), kCorePeerMac);
  const StreamEndpoints s = openTrunkStream();
  ASSERT_TRUE(access.inject(makeUdp4(fromTrunk(s))));
  rte_mbuf* out = core.capture();
  ASSERT_NE(out, nullptr);
  rte_pktmbuf_free(out);
  relay->closeStream(s.id);
  std::this_thread::sleep_for(100ms);
  ASSERT_TRUE(access.inject(makeUdp4(fromTrunk(s))));
  EXPECT_EQ(core.capture(200ms), nullptr);
  EXPECT_FALSE(relay->streamCounters(s.id));
  EXPECT_EQ(relay->stats().dropped[static_cast<std::size_t>(DropReason::noFlow)], 1u);
  const auto next = relay->openStream("");
  ASSERT_TRUE(next);
  EXPECT_NE(next->rtp[0].port, s.rtp[0].port);
  EXPECT_NE(next->rtp[1].port, s.rtp[1].port);
  EXPECT_FALSE(relay->updateLeg(9999, Realm::access, LegMedia{}));
}

// A silent stream is reported once through the eventfd; a stream on hold is not.
TEST_F(DpdkRelayTest, ReportsMediaTimeoutOnceNotOnHold) {
  settings.mediaTimeout = 150ms;
  start();
  const StreamEndpoints silent = openTrunkStream();
  auto held = relay->openStream("");
  ASSERT_TRUE(held);
  LegMedia a = leg("192.0.2.10", 4000, "192.0.2.0/24");
  a.silenceExpected = true;
  LegMedia c = leg("198.51.100.20", 5000, "198.51.100.0/24");
  c.silenceExpected = true;
  ASSERT_TRUE(relay->updateLeg(held->id, Realm::access, a));
  ASSERT_TRUE(relay->updateLeg(held->id, Realm::core, c));
  pollfd pfd{relay->timeoutNotifyFd(), POLLIN, 0};
  ASSERT_EQ(poll(&pfd, 1, 2000), 1);
  const auto reported = relay->takeTimedOut();
  ASSERT_EQ(reported.size(), 1u);
  EXPECT_EQ(reported[0], silent.id);
  pfd.revents = 0;
  EXPECT_EQ(poll(&pfd, 1, 400), 0) << "reported once only, never the held stream";
  EXPECT_TRUE(relay->takeTimedOut().empty());
}

// Media that waited in a port's queue while the worker slept (an idle back-off longer than
// the media timeout: the worker did not look) does not make its stream look silent, and a
// silent stream is still reported: silence counts only up to where the worker has read.
TEST_F(DpdkRelayTest, SleepingWorkerDoesNotSilenceTalkingStreams) {
  settings.mediaTimeout = 200ms;
  tuning.idleSpins = 1;
  tuning.idleSleep = 600ms;  // the worker looks at its queues about every 600 ms
  start();
  relay->setNeighbour(*IpAddress::parse("198.51.100.20"), kCorePeerMac);
  const StreamEndpoints talking = openTrunkStream();
  const StreamEndpoints silent = openTrunkStream();
  std::vector<StreamId> reported;
  int sent = 0;
  const auto end = std::chrono::steady_clock::now() + 2000ms;
  while (std::chrono::steady_clock::now() < end) {
    if (access.inject(makeUdp4(fromTrunk(talking)))) ++sent;
    std::this_thread::sleep_for(40ms);
    for (const StreamId id : relay->takeTimedOut()) reported.push_back(id);
    core.drain();
  }
  for (const StreamId id : relay->takeTimedOut()) reported.push_back(id);
  EXPECT_EQ(reported, std::vector<StreamId>{silent.id});
  const auto counters = relay->streamCounters(talking.id);
  ASSERT_TRUE(counters);
  EXPECT_GE(counters->packets[0], static_cast<std::uint64_t>(sent) / 2)
      << "the talking stream's media was not forwarded (" << sent << " sent)";
}

// The worker and housekeeping threads may run on every CPU although rte_eal_init pinned
// the main thread to lcore 0.
TEST_F(DpdkRelayTest, ThreadsAreNotPinnedToTheMainLcore) {
  start();
  const long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  int checked = 0;
  // The threads name themselves once running: look until both are there (bounded).
  for (int attempt = 0; attempt < 200 && checked < 2; ++attempt) {
    if (attempt > 0) std::this_thread::sleep_for(10ms);
    checked = 0;
    for (const auto& task : std::filesystem::directory_iterator("/proc/self/task")) {
      std::ifstream comm(task.path() / "comm");
      std::string name;
      std::getline(comm, name);
      if (name.rfind("sbc-dpdk-", 0) != 0) continue;
      cpu_set_t set;
      CPU_ZERO(&set);
      ASSERT_EQ(sched_getaffinity(std::stoi(task.path().filename().string()), sizeof(set), &set), 0);
      EXPECT_EQ(CPU_COUNT(&set), cpus) << name;
      ++checked;
    }
  }
  EXPECT_EQ(checked, 2);  // one worker (EAL has no worker lcore here) and housekeeping
  EXPECT_EQ(relay->dpdkStats().workers, 1u);
}

}  // namespace
}  // namespace sbc::dataplane
