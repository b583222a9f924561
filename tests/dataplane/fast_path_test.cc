// forwardBurst on crafted mbufs: parsing, filtering, latching, rewriting, ARP.
#include "dataplane/dpdk/fast_path.h"

#include <gtest/gtest.h>
#include <rte_cycles.h>

#include <memory>

#include "tests/dataplane/dpdk_test_util.h"

namespace sbc::dataplane::dpdk {
namespace {

using namespace testing;
using policy::IpAddress;
using policy::IpPrefix;

constexpr unsigned kAccessPort = 0;
constexpr unsigned kCorePort = 1;
const rte_ether_addr kAccessMac{{0x02, 0xaa, 0, 0, 0, 0x01}};
const rte_ether_addr kCoreMac{{0x02, 0xcc, 0, 0, 0, 0x01}};
const rte_ether_addr kCorePeerMac{{0x02, 0xcc, 0, 0, 0, 0x20}};
const rte_ether_addr kAccessPeerMac{{0x02, 0xaa, 0, 0, 0, 0x10}};

RelaySettings settings4() {
  RelaySettings s;
  s.realms[0] = {*IpAddress::parse("10.0.0.1"), 10000, 10998};
  s.realms[1] = {*IpAddress::parse("10.1.0.1"), 20000, 20998};
  return s;
}

RelaySettings settings6() {
  RelaySettings s;
  s.realms[0] = {*IpAddress::parse("2001:db8::1"), 10000, 10998};
  s.realms[1] = {*IpAddress::parse("2001:db8:100::1"), 20000, 20998};
  return s;
}

LegMedia leg(const std::string& rtp, std::uint16_t port, const std::string& prefix) {
  LegMedia l;
  l.rtp = MediaAddress{*IpAddress::parse(rtp), port};
  l.allowedSources = {*IpPrefix::parse(prefix)};
  return l;
}

RawAddress raw(const std::string& text) { return toRaw(*IpAddress::parse(text)); }

class FastPath : public ::testing::Test {
 protected:
  void build(const RelaySettings& settings) {
    flows = std::make_unique<FlowTable>(settings, 1);
    flows->setNeighbours(&neighbours);  // rules carry their peer's neighbour slot
    ctx.flows = flows.get();
    ctx.neighbours = &neighbours;
    ctx.portCount = 2;
    ctx.egressPort = {kAccessPort, kCorePort};
    ctx.portMac[kAccessPort] = kAccessMac;
    ctx.portMac[kCorePort] = kCoreMac;
    ctx.dscp = 46;
    ctx.arpPool = testPool();
    ctx.arpRetryCycles = rte_get_tsc_hz();
  }
  void SetUp() override {
    build(settings4());
    neighbours.set(raw("198.51.100.20"), macToWord(kCorePeerMac));
    neighbours.set(raw("192.0.2.10"), macToWord(kAccessPeerMac));
  }
  void TearDown() override { clearTx(); }
  void openStream4() {
    ASSERT_TRUE(flows->installStream(1, 0, {10000, 20000}));
    ASSERT_TRUE(flows->updateLeg(1, Realm::access, leg("192.0.2.10", 4000, "192.0.2.0/24")));
    ASSERT_TRUE(flows->updateLeg(1, Realm::core, leg("198.51.100.20", 5000, "198.51.100.0/24")));
  }
  void run(rte_mbuf* m, unsigned rxPort = kAccessPort) {
    ASSERT_NE(m, nullptr);
    forwardBurst(&m, 1, rxPort, ctx, counters, rte_rdtsc(), tx);
  }
  void clearTx() {
    for (unsigned p = 0; p < kMaxPorts; ++p) {
      for (unsigned i = 0; i < tx.count[p]; ++i) rte_pktmbuf_free(tx.pkts[p][i]);
      tx.count[p] = 0;
    }
  }
  std::uint64_t drops(DropReason reason) const {
    return read(counters.dropped[static_cast<std::size_t>(reason)]);
  }
  std::uint64_t totalTx() const { return tx.count[0] + tx.count[1]; }

  NeighbourTable neighbours;
  std::unique_ptr<FlowTable> flows;
  FastPathContext ctx;
  std::unique_ptr<WorkerCounters> countersOwner = std::make_unique<WorkerCounters>(0);
  WorkerCounters& counters = *countersOwner;
  TxBatch tx;
};

// Checks one forwarded IPv4 packet byte by byte against what the relay must produce.
void expectIpv4(const rte_mbuf* m, const rte_ether_addr& srcMac, const rte_ether_addr& dstMac,
                const std::string& src, std::uint16_t srcPort, const std::string& dst,
                std::uint16_t dstPort, std::size_t payload, std::uint8_t ttl, bool vlan = false) {
  const std::size_t l2 = sizeof(rte_ether_hdr) + (vlan ? sizeof(rte_vlan_hdr) : 0);
  ASSERT_EQ(rte_pktmbuf_data_len(m), l2 + 28 + payload);
  const auto* data = rte_pktmbuf_mtod(m, const std::uint8_t*);
  const auto* eth = reinterpret_cast<const rte_ether_hdr*>(data);
  EXPECT_TRUE(rte_is_same_ether_addr(&eth->src_addr, &srcMac));
  EXPECT_TRUE(rte_is_same_ether_addr(&eth->dst_addr, &dstMac));
  if (vlan) {
    EXPECT_EQ(eth->ether_type, htons(RTE_ETHER_TYPE_VLAN));
    const auto* tag = reinterpret_cast<const rte_vlan_hdr*>(data + sizeof(rte_ether_hdr));
    EXPECT_EQ(ntohs(tag->vlan_tci), 42);
    EXPECT_EQ(tag->eth_proto, htons(RTE_ETHER_TYPE_IPV4));
  } else {
    EXPECT_EQ(eth->ether_type, htons(RTE_ETHER_TYPE_IPV4));
  }
  const auto* ip = reinterpret_cast<const rte_ipv4_hdr*>(data + l2);
  EXPECT_EQ(ip->version_ihl, 0x45);
  EXPECT_EQ(ip->type_of_service, 46 << 2);
  EXPECT_EQ(ntohs(ip->total_length), 28 + payload);
  EXPECT_EQ(ntohs(ip->packet_id), 7);
  EXPECT_EQ(ip->fragment_offset, 0);
  EXPECT_EQ(ip->time_to_live, ttl);
  EXPECT_EQ(ip->next_proto_id, IPPROTO_UDP);
  EXPECT_EQ(ip->src_addr, ip4(src));
  EXPECT_EQ(ip->dst_addr, ip4(dst));
  EXPECT_EQ(rte_ipv4_cksum(ip), 0) << "IPv4 header checksum invalid";
  const auto* udp = reinterpret_cast<const rte_udp_hdr*>(data + l2 + 20);
  EXPECT_EQ(ntohs(udp->src_port), srcPort);
  EXPECT_EQ(ntohs(udp->dst_port), dstPort);
  EXPECT_EQ(ntohs(udp->dgram_len), 8 + payload);
  EXPECT_EQ(rte_ipv4_udptcp_cksum_verify(ip, udp), 0) << "UDP checksum invalid";
  for (std::size_t i = 0; i < payload; ++i)
    ASSERT_EQ(data[l2 + 28 + i], payloadByte(i)) << "payload byte " << i;
}

// Access → core: every header byte rewritten as specified, payload intact, checksums valid.
TEST_F(FastPath, ForwardsAccessToCoreWithEveryByteChecked) {
  openStream4();
  run(makeUdp4({}));
  ASSERT_EQ(tx.count[kCorePort], 1);
  EXPECT_EQ(tx.count[kAccessPort], 0);
  expectIpv4(tx.pkts[kCorePort][0], kCoreMac, kCorePeerMac, "10.1.0.1", 20000, "198.51.100.20",
             5000, 172, 63);
  EXPECT_EQ(read(counters.forwarded), 1u);
  auto sc = flows->streamCounters(1);
  ASSERT_TRUE(sc);
  EXPECT_EQ(sc->packets[0], 1u);
  EXPECT_EQ(sc->bytes[0], 172u);
  EXPECT_EQ(read(counters.labels[0].packets[0]), 1u);
}

// Core → access: the reverse direction uses the access media address and port.
TEST_F(FastPath, ForwardsCoreToAccess) {
  openStream4();
  Udp4Spec spec;
  spec.src = "198.51.100.20";
  spec.srcPort = 5000;
  spec.dst = "10.1.0.1";
  spec.dstPort = 20000;
  spec.payload = 20;
  run(makeUdp4(spec), kCorePort);
  ASSERT_EQ(tx.count[kAccessPort], 1);
  expectIpv4(tx.pkts[kAccessPort][0], kAccessMac, kAccessPeerMac, "10.0.0.1", 10000,
             "192.0.2.10", 4000, 20, 63);
  EXPECT_EQ(flows->streamCounters(1)->packets[1], 1u);
}

// RTCP arrives on port + 1 and leaves from the other realm's port + 1 to the peer's port + 1.
TEST_F(FastPath, ForwardsRtcpOnPortPlusOne) {
  openStream4();
  Udp4Spec spec;
  spec.srcPort = 4001;
  spec.dstPort = 10001;
  spec.payload = 52;
  run(makeUdp4(spec));
  ASSERT_EQ(tx.count[kCorePort], 1);
  expectIpv4(tx.pkts[kCorePort][0], kCoreMac, kCorePeerMac, "10.1.0.1", 20001, "198.51.100.20",
             5001, 52, 63);
}

// rtcp-mux on both sides: port + 1 is not served, RTCP rides the RTP port.
TEST_F(FastPath, RtcpMuxServesOnlyTheRtpPort) {
  openStream4();
  LegMedia a = leg("192.0.2.10", 4000, "192.0.2.0/24");
  a.rtcpMux = true;
  LegMedia c = leg("198.51.100.20", 5000, "198.51.100.0/24");
  c.rtcpMux = true;
  ASSERT_TRUE(flows->updateLeg(1, Realm::access, a));
  ASSERT_TRUE(flows->updateLeg(1, Realm::core, c));
  Udp4Spec spec;
  spec.dstPort = 10001;
  run(makeUdp4(spec));
  EXPECT_EQ(totalTx(), 0u);
  EXPECT_EQ(drops(DropReason::noFlow), 1u);
  run(makeUdp4({}));
  ASSERT_EQ(tx.count[kCorePort], 1);
  expectIpv4(tx.pkts[kCorePort][0], kCoreMac, kCorePeerMac, "10.1.0.1", 20000, "198.51.100.20",
             5000, 172, 63);
}

// A source outside the allowed prefixes is dropped, counted by reason, stream and label.
TEST_F(FastPath, DropsWrongSource) {
  openStream4();
  Udp4Spec spec;
  spec.src = "203.0.113.9";
  run(makeUdp4(spec));
  EXPECT_EQ(totalTx(), 0u);
  EXPECT_EQ(drops(DropReason::sourceNotAllowed), 1u);
  EXPECT_EQ(flows->streamCounters(1)->dropped[0], 1u);
  EXPECT_EQ(flows->streamCounters(1)->packets[0], 0u);
  EXPECT_EQ(read(counters.labels[0].dropped), 1u);
}

// A port no stream owns, and a destination that is not our address: no_flow.
TEST_F(FastPath, DropsUnknownPortAndAddress) {
  openStream4();
  Udp4Spec spec;
  spec.dstPort = 10002;
  run(makeUdp4(spec));
  spec.dstPort = 10000;
  spec.dst = "10.0.0.2";
  run(makeUdp4(spec));
  spec.dst = "10.0.0.1";
  spec.dstPort = 9000;  // below the range
  run(makeUdp4(spec));
  EXPECT_EQ(totalTx(), 0u);
  EXPECT_EQ(drops(DropReason::noFlow), 3u);
}

// Latching: the first allowed source is learnt; then only that address+port is accepted,
// and the other side's packets go to it rather than to the SDP address.
TEST_F(FastPath, LatchesFirstAllowedSource) {
  openStream4();
  LegMedia a = leg("192.0.2.10", 4000, "192.0.2.0/24");
  a.latch = true;
  ASSERT_TRUE(flows->updateLeg(1, Realm::access, a));
  neighbours.set(raw("192.0.2.77"), macToWord(kAccessPeerMac));
  Udp4Spec spec;
  spec.src = "192.0.2.77";
  spec.srcPort = 31000;  // behind NAT: not what SDP said
  run(makeUdp4(spec));
  ASSERT_EQ(tx.count[kCorePort], 1);
  clearTx();
  spec.src = "192.0.2.10";  // inside the prefix, but not the latched source
  spec.srcPort = 4000;
  run(makeUdp4(spec));
  EXPECT_EQ(totalTx(), 0u);
  EXPECT_EQ(drops(DropReason::sourceNotAllowed), 1u);
  spec.src = "192.0.2.77";
  spec.srcPort = 31001;  // same address, other port
  run(makeUdp4(spec));
  EXPECT_EQ(totalTx(), 0u);
  EXPECT_EQ(drops(DropReason::sourceNotAllowed), 2u);
  Udp4Spec back;
  back.src = "198.51.100.20";
  back.srcPort = 5000;
  back.dst = "10.1.0.1";
  back.dstPort = 20000;
  run(makeUdp4(back), kCorePort);
  ASSERT_EQ(tx.count[kAccessPort], 1);
  expectIpv4(tx.pkts[kAccessPort][0], kAccessMac, kAccessPeerMac, "10.0.0.1", 10000,
             "192.0.2.77", 31000, 172, 63);
  clearTx();
  // A new update with latch learns afresh (the terminal moved).
  ASSERT_TRUE(flows->updateLeg(1, Realm::access, a));
  spec.srcPort = 31002;
  run(makeUdp4(spec));
  EXPECT_EQ(tx.count[kCorePort], 1);
}

// Before the latching side's RTCP has latched, RTCP towards it goes to its latched RTP
// address, port + 1; once its RTCP latches, to that source.
TEST_F(FastPath, RtcpFollowsTheRtpLatchUntilItLatches) {
  openStream4();
  LegMedia a = leg("192.0.2.10", 4000, "192.0.2.0/24");
  a.latch = true;
  ASSERT_TRUE(flows->updateLeg(1, Realm::access, a));
  neighbours.set(raw("192.0.2.77"), macToWord(kAccessPeerMac));
  Udp4Spec rtp;
  rtp.src = "192.0.2.77";
  rtp.srcPort = 31000;
  run(makeUdp4(rtp));
  ASSERT_EQ(tx.count[kCorePort], 1);
  clearTx();
  Udp4Spec rtcp;
  rtcp.src = "198.51.100.20";
  rtcp.srcPort = 5001;
  rtcp.dst = "10.1.0.1";
  rtcp.dstPort = 20001;
  rtcp.payload = 52;
  run(makeUdp4(rtcp), kCorePort);
  ASSERT_EQ(tx.count[kAccessPort], 1);
  expectIpv4(tx.pkts[kAccessPort][0], kAccessMac, kAccessPeerMac, "10.0.0.1", 10001,
             "192.0.2.77", 31001, 52, 63);
  clearTx();
  Udp4Spec ownRtcp;
  ownRtcp.src = "192.0.2.77";
  ownRtcp.srcPort = 40000;  // RTCP's own NAT binding
  ownRtcp.dstPort = 10001;
  ownRtcp.payload = 52;
  run(makeUdp4(ownRtcp));
  ASSERT_EQ(tx.count[kCorePort], 1);
  clearTx();
  run(makeUdp4(rtcp), kCorePort);
  ASSERT_EQ(tx.count[kAccessPort], 1);
  expectIpv4(tx.pkts[kAccessPort][0], kAccessMac, kAccessPeerMac, "10.0.0.1", 10001,
             "192.0.2.77", 40000, 52, 63);
}

// Once removed and past the grace period, a stream's ports forward nothing.
TEST_F(FastPath, RemovedStreamForwardsNothing) {
  openStream4();
  run(makeUdp4({}));
  ASSERT_EQ(tx.count[kCorePort], 1);
  clearTx();
  ASSERT_TRUE(flows->removeStream(1));
  flows->synchronize();
  run(makeUdp4({}));
  EXPECT_EQ(totalTx(), 0u);
  EXPECT_EQ(drops(DropReason::noFlow), 1u);
  EXPECT_FALSE(flows->streamCounters(1));
}

// Truncated and inconsistent headers are dropped as malformed, none forwarded.
TEST_F(FastPath, DropsMalformedPackets) {
  openStream4();
  int expected = 0;
  auto check = [&](rte_mbuf* m, const char* what) {
    run(m);
    ++expected;
    EXPECT_EQ(drops(DropReason::malformed), static_cast<std::uint64_t>(expected)) << what;
    EXPECT_EQ(totalTx(), 0u) << what;
  };
  rte_mbuf* m = makeUdp4({});
  rte_pktmbuf_trim(m, static_cast<std::uint16_t>(rte_pktmbuf_data_len(m) - 10));
  check(m, "shorter than Ethernet");
  m = makeUdp4({});
  rte_pktmbuf_trim(m, static_cast<std::uint16_t>(rte_pktmbuf_data_len(m) - 30));
  check(m, "truncated IPv4 header");
  m = makeUdp4({});
  rte_pktmbuf_trim(m, 10);
  check(m, "IP total length beyond the frame");
  m = makeUdp4({});
  rte_pktmbuf_mtod_offset(m, rte_ipv4_hdr*, 14)->version_ihl = 0x44;
  check(m, "IHL below 5");
  m = makeUdp4({});
  rte_pktmbuf_mtod_offset(m, rte_ipv4_hdr*, 14)->version_ihl = 0x4f;
  check(m, "IHL beyond the packet's UDP");
  m = makeUdp4({});
  rte_pktmbuf_mtod_offset(m, rte_udp_hdr*, 34)->dgram_len = htons(100);
  check(m, "UDP length inconsistent with IP");
  Udp4Spec frag;
  frag.fragment = RTE_IPV4_HDR_MF_FLAG;
  check(makeUdp4(frag), "first fragment (MF)");
  frag.fragment = 100;
  check(makeUdp4(frag), "later fragment (offset)");
  Udp4Spec ttl;
  ttl.ttl = 1;
  check(makeUdp4(ttl), "TTL would expire");
  m = makeUdp4({});
  rte_pktmbuf_mtod_offset(m, rte_ipv4_hdr*, 14)->version_ihl = 0x65;
  check(m, "IPv4 ethertype, version 6");
}

// Non-UDP over IP and non-IP frames are dropped as not_udp.
TEST_F(FastPath, DropsNonUdpAndNonIp) {
  openStream4();
  Udp4Spec icmp;
  icmp.proto = IPPROTO_ICMP;
  run(makeUdp4(icmp));
  rte_mbuf* m = makeUdp4({});
  rte_pktmbuf_mtod(m, rte_ether_hdr*)->ether_type = htons(0x88cc);  // LLDP
  run(m);
  EXPECT_EQ(drops(DropReason::notUdp), 2u);
  EXPECT_EQ(totalTx(), 0u);
}

// One 802.1Q tag is parsed and kept; the rest is rewritten as untagged.
TEST_F(FastPath, ForwardsVlanTagged) {
  openStream4();
  Udp4Spec spec;
  spec.vlan = true;
  run(makeUdp4(spec));
  ASSERT_EQ(tx.count[kCorePort], 1);
  expectIpv4(tx.pkts[kCorePort][0], kCoreMac, kCorePeerMac, "10.1.0.1", 20000, "198.51.100.20",
             5000, 172, 63, true);
}

// A UDP checksum of 0 (none) in IPv4 stays 0; the IP header checksum is still valid.
TEST_F(FastPath, KeepsZeroUdpChecksum) {
  openStream4();
  Udp4Spec spec;
  spec.udpChecksum = false;
  run(makeUdp4(spec));
  ASSERT_EQ(tx.count[kCorePort], 1);
  const auto* ip = rte_pktmbuf_mtod_offset(tx.pkts[kCorePort][0], const rte_ipv4_hdr*, 14);
  EXPECT_EQ(rte_ipv4_cksum(ip), 0);
  EXPECT_EQ(rte_pktmbuf_mtod_offset(tx.pkts[kCorePort][0], const rte_udp_hdr*, 34)->dgram_cksum, 0);
}

// The DSCP is configurable and the ECN bits survive.
TEST_F(FastPath, SetsConfiguredDscpKeepsEcn) {
  openStream4();
  ctx.dscp = 34;  // AF41
  Udp4Spec spec;
  spec.tos = 0x03;
  run(makeUdp4(spec));
  ASSERT_EQ(tx.count[kCorePort], 1);
  const auto* ip = rte_pktmbuf_mtod_offset(tx.pkts[kCorePort][0], const rte_ipv4_hdr*, 14);
  EXPECT_EQ(ip->type_of_service, (34 << 2) | 3);
  EXPECT_EQ(rte_ipv4_cksum(ip), 0);
}

// An ARP request for our media address is answered on the port it came in on.
TEST_F(FastPath, AnswersArpForOurAddress) {
  const rte_ether_addr asker{{0x02, 0x55, 0, 0, 0, 0x01}};
  run(makeArp(RTE_ARP_OP_REQUEST, asker, "192.0.2.50", "10.0.0.1"));
  ASSERT_EQ(tx.count[kAccessPort], 1);
  const rte_mbuf* m = tx.pkts[kAccessPort][0];
  const auto* eth = rte_pktmbuf_mtod(m, const rte_ether_hdr*);
  EXPECT_TRUE(rte_is_same_ether_addr(&eth->dst_addr, &asker));
  EXPECT_TRUE(rte_is_same_ether_addr(&eth->src_addr, &kAccessMac));
  const auto* arp = rte_pktmbuf_mtod_offset(m, const rte_arp_hdr*, 14);
  EXPECT_EQ(arp->arp_opcode, htons(RTE_ARP_OP_REPLY));
  rte_ether_addr sha = arp->arp_data.arp_sha, tha = arp->arp_data.arp_tha;
  EXPECT_TRUE(rte_is_same_ether_addr(&sha, &kAccessMac));
  EXPECT_TRUE(rte_is_same_ether_addr(&tha, &asker));
  EXPECT_EQ(arp->arp_data.arp_sip, ip4("10.0.0.1"));
  EXPECT_EQ(arp->arp_data.arp_tip, ip4("192.0.2.50"));
  EXPECT_EQ(neighbours.lookup(raw("192.0.2.50")), macToWord(asker) | NeighbourTable::kValid);
  clearTx();
  run(makeArp(RTE_ARP_OP_REQUEST, asker, "192.0.2.50", "10.0.0.9"));  // not ours
  EXPECT_EQ(totalTx(), 0u);
  EXPECT_EQ(read(counters.arpReplied), 1u);
  EXPECT_EQ(read(counters.arpIgnored), 1u);
}

// An unknown next hop: the packet is dropped and counted, one ARP request goes out (rate
// limited); the reply is learnt and the next packet is forwarded to the learnt MAC.
TEST_F(FastPath, ResolvesUnknownPeerByArp) {
  openStream4();
  ASSERT_TRUE(flows->updateLeg(1, Realm::core, leg("198.51.100.99", 5000, "198.51.100.0/24")));
  run(makeUdp4({}));
  run(makeUdp4({}));
  ASSERT_EQ(tx.count[kCorePort], 1);  // one ARP request, no media
  EXPECT_EQ(read(counters.unresolved), 2u);
  EXPECT_EQ(read(counters.arpRequested), 1u);
  const rte_mbuf* req = tx.pkts[kCorePort][0];
  const auto* eth = rte_pktmbuf_mtod(req, const rte_ether_hdr*);
  EXPECT_TRUE(rte_is_broadcast_ether_addr(&eth->dst_addr));
  EXPECT_TRUE(rte_is_same_ether_addr(&eth->src_addr, &kCoreMac));
  const auto* arp = rte_pktmbuf_mtod_offset(req, const rte_arp_hdr*, 14);
  EXPECT_EQ(arp->arp_opcode, htons(RTE_ARP_OP_REQUEST));
  EXPECT_EQ(arp->arp_data.arp_sip, ip4("10.1.0.1"));
  EXPECT_EQ(arp->arp_data.arp_tip, ip4("198.51.100.99"));
  clearTx();
  const rte_ether_addr answer{{0x02, 0x99, 0, 0, 0, 0x99}};
  run(makeArp(RTE_ARP_OP_REPLY, answer, "198.51.100.99", "10.1.0.1"), kCorePort);
  EXPECT_EQ(totalTx(), 0u);
  run(makeUdp4({}));
  ASSERT_EQ(tx.count[kCorePort], 1);
  expectIpv4(tx.pkts[kCorePort][0], kCoreMac, answer, "10.1.0.1", 20000, "198.51.100.99", 5000,
             172, 63);
}

// A realm with a gateway: a peer outside its on-link prefixes is reached through the
// gateway's MAC (resolved by ARP for the gateway, not for the peer) with its IP address
// unchanged; a peer inside them is resolved and reached directly.
TEST_F(FastPath, ReachesOffLinkPeersThroughTheGateway) {
  RelaySettings settings = settings4();
  settings.realms[1].gateway = *IpAddress::parse("10.1.0.254");
  settings.realms[1].onLink = {*IpPrefix::parse("10.1.0.0/24")};
  build(settings);
  EXPECT_EQ(flows->nextHop(1, raw("198.51.100.20")), raw("10.1.0.254"));
  EXPECT_EQ(flows->nextHop(1, raw("10.1.0.50")), raw("10.1.0.50"));
  EXPECT_EQ(flows->nextHop(0, raw("198.51.100.20")), raw("198.51.100.20"));  // no gateway
  openStream4();  // the core peer 198.51.100.20 is off-link
  run(makeUdp4({}));
  ASSERT_EQ(tx.count[kCorePort], 1);  // an ARP request, for the gateway
  const auto* arp = rte_pktmbuf_mtod_offset(tx.pkts[kCorePort][0], const rte_arp_hdr*, 14);
  EXPECT_EQ(arp->arp_opcode, htons(RTE_ARP_OP_REQUEST));
  EXPECT_EQ(arp->arp_data.arp_tip, ip4("10.1.0.254"));
  EXPECT_EQ(read(counters.unresolved), 1u);
  clearTx();
  const rte_ether_addr gatewayMac{{0x02, 0xcc, 0, 0, 0, 0xfe}};
  run(makeArp(RTE_ARP_OP_REPLY, gatewayMac, "10.1.0.254", "10.1.0.1"), kCorePort);
  run(makeUdp4({}));
  ASSERT_EQ(tx.count[kCorePort], 1);
  expectIpv4(tx.pkts[kCorePort][0], kCoreMac, gatewayMac, "10.1.0.1", 20000, "198.51.100.20",
             5000, 172, 63);
  clearTx();
  // An on-link peer: its own MAC, never the gateway's.
  ASSERT_TRUE(flows->updateLeg(1, Realm::core, leg("10.1.0.50", 5000, "10.1.0.0/24")));
  neighbours.set(raw("10.1.0.50"), macToWord(kCorePeerMac));
  run(makeUdp4({}));
  ASSERT_EQ(tx.count[kCorePort], 1);
  expectIpv4(tx.pkts[kCorePort][0], kCoreMac, kCorePeerMac, "10.1.0.1", 20000, "10.1.0.50", 5000,
             172, 63);
}

// IPv6 media: addresses, ports, traffic class (DSCP), hop limit and UDP checksum rewritten.
TEST_F(FastPath, ForwardsIpv6) {
  build(settings6());
  neighbours.set(raw("2001:db8:200::20"), macToWord(kCorePeerMac));
  ASSERT_TRUE(flows->installStream(1, 0, {10000, 20000}));
  ASSERT_TRUE(flows->updateLeg(1, Realm::access, leg("2001:db8:1::10", 4000, "2001:db8:1::/48")));
  ASSERT_TRUE(flows->updateLeg(1, Realm::core, leg("2001:db8:200::20", 5000, "2001:db8:200::/48")));
  run(makeUdp6({}));
  ASSERT_EQ(tx.count[kCorePort], 1);
  const rte_mbuf* m = tx.pkts[kCorePort][0];
  ASSERT_EQ(rte_pktmbuf_data_len(m), 14u + 40 + 8 + 172);
  const auto* eth = rte_pktmbuf_mtod(m, const rte_ether_hdr*);
  EXPECT_TRUE(rte_is_same_ether_addr(&eth->src_addr, &kCoreMac));
  EXPECT_TRUE(rte_is_same_ether_addr(&eth->dst_addr, &kCorePeerMac));
  const auto* ip = rte_pktmbuf_mtod_offset(m, const rte_ipv6_hdr*, 14);
  EXPECT_EQ(ntohl(ip->vtc_flow), 0x60000000u | (46u << 22) | 0x12345u);
  EXPECT_EQ(ip->hop_limits, 63);
  EXPECT_EQ(0, std::memcmp(ip->src_addr, raw("2001:db8:100::1").bytes.data(), 16));
  EXPECT_EQ(0, std::memcmp(ip->dst_addr, raw("2001:db8:200::20").bytes.data(), 16));
  const auto* udp = rte_pktmbuf_mtod_offset(m, const rte_udp_hdr*, 54);
  EXPECT_EQ(ntohs(udp->src_port), 20000);
  EXPECT_EQ(ntohs(udp->dst_port), 5000);
  EXPECT_EQ(rte_ipv6_udptcp_cksum_verify(ip, udp), 0);
  const auto* payload = rte_pktmbuf_mtod_offset(m, const std::uint8_t*, 62);
  for (std::size_t i = 0; i < 172; ++i) ASSERT_EQ(payload[i], payloadByte(i));
  // Extension headers (here a fragment header) are not media.
  Udp6Spec frag;
  frag.nextHeader = 44;
  run(makeUdp6(frag));
  EXPECT_EQ(drops(DropReason::notUdp), 1u);
  // A truncated IPv6 packet is malformed.
  rte_mbuf* cut = makeUdp6({});
  rte_pktmbuf_trim(cut, 20);
  run(cut);
  EXPECT_EQ(drops(DropReason::malformed), 1u);
  EXPECT_EQ(tx.count[kCorePort], 1);
}

// A burst mixing good, dropped and ARP packets: each ends up in exactly one place and the
// pool gets every dropped mbuf back (nothing leaked).
TEST_F(FastPath, MixedBurstLeaksNothing) {
  openStream4();
  const unsigned before = rte_mempool_avail_count(testPool());
  std::array<rte_mbuf*, kBurst> burst;
  for (unsigned i = 0; i < kBurst; ++i) {
    Udp4Spec spec;
    if (i % 3 == 1) spec.src = "203.0.113.1";
    if (i % 3 == 2) spec.dstPort = 10500;
    burst[i] = makeUdp4(spec);
  }
  forwardBurst(burst.data(), kBurst, kAccessPort, ctx, counters, rte_rdtsc(), tx);
  EXPECT_EQ(tx.count[kCorePort], 11);
  EXPECT_EQ(drops(DropReason::sourceNotAllowed), 11u);
  EXPECT_EQ(drops(DropReason::noFlow), 10u);
  clearTx();
  EXPECT_EQ(rte_mempool_avail_count(testPool()), before);
}

}  // namespace
}  // namespace sbc::dataplane::dpdk
