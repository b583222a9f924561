// forwardBurst on crafted mbufs: parsing, filtering, latching, rewriting, ARP.
#include "dataplane/dpdk/fast_path.h"

#include <gtest/gtest.h>
#include <rte_cycles.h>

#include <cstdio>
#include <memory>
#include <random>

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
  // RTP from the core peer that openStream4() sets (198.51.100.20:5000) to its core port.
  static Udp4Spec fromCorePeer() {
    Udp4Spec spec;
    spec.src = "198.51.100.20";
    spec.srcPort = 5000;
    spec.dst = "10.1.0.1";
    spec.dstPort = 20000;
    return spec;
  }
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
                std::uint16_t dstPort, std::size_t payload, std::uint8_t ttl, std::uint16_t tci = 0) {
  const bool vlan = tci != 0;  // the expected 802.1Q tag, 0: untagged
  const std::size_t l2 = sizeof(rte_ether_hdr) + (vlan ? sizeof(rte_vlan_hdr) : 0);
  ASSERT_EQ(rte_pktmbuf_data_len(m), l2 + 28 + payload);
  const auto* data = rte_pktmbuf_mtod(m, const std::uint8_t*);
  const auto* eth = reinterpret_cast<const rte_ether_hdr*>(data);
  EXPECT_TRUE(rte_is_same_ether_addr(&eth->src_addr, &srcMac));
  EXPECT_TRUE(rte_is_same_ether_addr(&eth->dst_addr, &dstMac));
  if (vlan) {
    EXPECT_EQ(eth->ether_type, htons(RTE_ETHER_TYPE_VLAN));
    const auto* tag = reinterpret_cast<const rte_vlan_hdr*>(data + sizeof(rte_ether_hdr));
    EXPECT_EQ(ntohs(tag->vlan_tci), tci);
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
  Udp4Spec back = fromCorePeer();
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

// Proves: the neighbour entry the fast path makes for a latched destination (no rule carries
// it) is freed by the control thread's idle sweep once unused for the idle time, and not
// while packets still go to it (their use is noted about once every 2^30 cycles); rule-held
// and static entries stay. Fails without the sweep, or without the fast path noting use.
TEST_F(FastPath, LatchedDestinationEntryExpiresWhenIdle) {
  openStream4();
  LegMedia a = leg("192.0.2.10", 4000, "192.0.2.0/24");
  a.latch = true;
  ASSERT_TRUE(flows->updateLeg(1, Realm::access, a));
  Udp4Spec spec;
  spec.src = "192.0.2.77";
  spec.srcPort = 31000;
  run(makeUdp4(spec));  // latches 192.0.2.77:31000
  clearTx();
  const std::size_t before = neighbours.entries();
  Udp4Spec back = fromCorePeer();
  const std::uint64_t t0 = rte_rdtsc();
  const auto sendBack = [&](std::uint64_t now) {
    rte_mbuf* m = makeUdp4(back);
    ASSERT_NE(m, nullptr);
    forwardBurst(&m, 1, kCorePort, ctx, counters, now, tx);
    clearTx();
  };
  sendBack(t0);  // unresolved: an entry is made for 192.0.2.77 and ARP asks for it
  EXPECT_EQ(read(counters.arpRequested), 1u);
  ASSERT_NE(neighbours.find(raw("192.0.2.77")), nullptr);
  EXPECT_EQ(neighbours.entries(), before + 1);
  // Answered: from now on only the packets' use keeps the entry (no more requests).
  ASSERT_TRUE(neighbours.learn(raw("192.0.2.77"), macToWord(kAccessPeerMac)));

  constexpr std::uint64_t kIdle = 4ull << 30;
  constexpr std::uint64_t kFull = NeighbourTable::kSlots;
  EXPECT_EQ(flows->expireIdleNeighbours(t0 + (1ull << 30), kIdle, kFull), 0u) << "just used";
  sendBack(t0 + (3ull << 30));  // still in use: noted
  EXPECT_EQ(read(counters.arpRequested), 1u);
  EXPECT_EQ(flows->expireIdleNeighbours(t0 + (5ull << 30), kIdle, kFull), 0u)
      << "used 2^31 cycles ago, idle time 2^32";
  EXPECT_EQ(flows->expireIdleNeighbours(t0 + (8ull << 30), kIdle, kFull), 1u);
  EXPECT_EQ(neighbours.find(raw("192.0.2.77")), nullptr);
  EXPECT_EQ(neighbours.entries(), before);
  flows->reclaim();
  EXPECT_NE(neighbours.find(raw("198.51.100.20")), nullptr) << "static and rule-held";
  EXPECT_NE(neighbours.find(raw("192.0.2.10")), nullptr);
  const std::uint64_t requested = read(counters.arpRequested);
  sendBack(t0 + (9ull << 30));  // the flow goes on: a new entry, a new request
  EXPECT_EQ(read(counters.arpRequested), requested + 1);
  EXPECT_EQ(neighbours.entries(), before + 1);
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

// Proves: media tagged with the access realm's VLAN (42) is accepted and leaves for the
// untagged core realm without a tag (it used to keep the one it came with).
TEST_F(FastPath, TaggedInUntaggedOut) {
  ctx.vlan = {42, 0};
  openStream4();
  Udp4Spec spec;
  spec.vlan = true;
  spec.vlanTci = 3 << 13 | 42;  // priority 3
  run(makeUdp4(spec));
  ASSERT_EQ(tx.count[kCorePort], 1);
  expectIpv4(tx.pkts[kCorePort][0], kCoreMac, kCorePeerMac, "10.1.0.1", 20000, "198.51.100.20",
             5000, 172, 63);
}

// Proves: untagged media into a realm with a VLAN (core: 200) leaves with that realm's tag,
// priority 5 (DSCP EF's class), and media tagged for the access realm (42) leaves the core
// port with the core's tag, not its own.
TEST_F(FastPath, UntaggedInTaggedOutAndTagsSwapped) {
  ctx.vlan = {0, 200};
  openStream4();
  run(makeUdp4({}));
  ASSERT_EQ(tx.count[kCorePort], 1);
  expectIpv4(tx.pkts[kCorePort][0], kCoreMac, kCorePeerMac, "10.1.0.1", 20000, "198.51.100.20",
             5000, 172, 63, 5 << 13 | 200);
  clearTx();
  ctx.vlan = {42, 200};
  Udp4Spec spec;
  spec.vlan = true;
  spec.vlanTci = 42;
  run(makeUdp4(spec));
  ASSERT_EQ(tx.count[kCorePort], 1);
  expectIpv4(tx.pkts[kCorePort][0], kCoreMac, kCorePeerMac, "10.1.0.1", 20000, "198.51.100.20",
             5000, 172, 63, 5 << 13 | 200);
  clearTx();
  // Core to access: the access realm's tag, priority of DSCP 34 (AF41: 4).
  ctx.dscp = 34;
  Udp4Spec back = fromCorePeer();
  back.vlan = true;
  back.vlanTci = 200;
  run(makeUdp4(back), kCorePort);
  ASSERT_EQ(tx.count[kAccessPort], 1);
  const auto* tag = rte_pktmbuf_mtod_offset(tx.pkts[kAccessPort][0], const rte_vlan_hdr*, 14);
  EXPECT_EQ(ntohs(tag->vlan_tci), 4 << 13 | 42);
  EXPECT_EQ(drops(DropReason::wrongVlan), 0u);
}

// Proves: media on another VLAN than its realm's is dropped and counted as wrong_vlan:
// untagged or tagged 43 for the tagged access realm (42), tagged 42 for the untagged core
// realm. A priority tag (VLAN id 0) counts as untagged.
TEST_F(FastPath, DropsMediaOnTheWrongVlan) {
  ctx.vlan = {42, 0};
  openStream4();
  run(makeUdp4({}));
  Udp4Spec other;
  other.vlan = true;
  other.vlanTci = 43;
  run(makeUdp4(other));
  Udp4Spec back = fromCorePeer();
  back.vlan = true;
  back.vlanTci = 42;
  run(makeUdp4(back), kCorePort);
  EXPECT_EQ(drops(DropReason::wrongVlan), 3u);
  EXPECT_EQ(totalTx(), 0u);
  back.vlanTci = 6 << 13;  // priority-tagged, VLAN id 0
  run(makeUdp4(back), kCorePort);
  ASSERT_EQ(tx.count[kAccessPort], 1);
  expectIpv4(tx.pkts[kAccessPort][0], kAccessMac, kAccessPeerMac, "10.0.0.1", 10000, "192.0.2.10",
             4000, 172, 63, 5 << 13 | 42);
  EXPECT_EQ(drops(DropReason::wrongVlan), 3u);
}

// Proves: ARP follows the realms' VLANs: a request for the core address (VLAN 200) is
// answered only when it comes tagged 200 (the answer keeps the tag); untagged, or for the
// untagged access address but tagged, it is ignored; and the request resolving an unknown
// core peer goes out tagged 200 (it used to go out untagged).
TEST_F(FastPath, ArpOnTheRealmsVlan) {
  ctx.vlan = {0, 200};
  const rte_ether_addr asker{{0x02, 0x55, 0, 0, 0, 0x01}};
  run(withVlan(makeArp(RTE_ARP_OP_REQUEST, asker, "10.1.0.254", "10.1.0.1"), 200), kCorePort);
  ASSERT_EQ(tx.count[kCorePort], 1);
  const rte_mbuf* reply = tx.pkts[kCorePort][0];
  EXPECT_EQ(rte_pktmbuf_mtod(reply, const rte_ether_hdr*)->ether_type, htons(RTE_ETHER_TYPE_VLAN));
  EXPECT_EQ(ntohs(rte_pktmbuf_mtod_offset(reply, const rte_vlan_hdr*, 14)->vlan_tci), 200);
  const auto* answer = rte_pktmbuf_mtod_offset(reply, const rte_arp_hdr*, 18);
  EXPECT_EQ(answer->arp_opcode, htons(RTE_ARP_OP_REPLY));
  EXPECT_EQ(answer->arp_data.arp_sip, ip4("10.1.0.1"));
  clearTx();
  run(makeArp(RTE_ARP_OP_REQUEST, asker, "10.1.0.254", "10.1.0.1"), kCorePort);
  run(withVlan(makeArp(RTE_ARP_OP_REQUEST, asker, "192.0.2.77", "10.0.0.1"), 200), kAccessPort);
  EXPECT_EQ(totalTx(), 0u);
  EXPECT_EQ(read(counters.arpIgnored), 2u);
  EXPECT_EQ(read(counters.arpReplied), 1u);

  ASSERT_TRUE(flows->installStream(1, 0, {10000, 20000}));
  ASSERT_TRUE(flows->updateLeg(1, Realm::access, leg("192.0.2.10", 4000, "192.0.2.0/24")));
  ASSERT_TRUE(flows->updateLeg(1, Realm::core, leg("198.51.100.99", 5000, "198.51.100.0/24")));
  run(makeUdp4({}));
  ASSERT_EQ(tx.count[kCorePort], 1);
  const rte_mbuf* request = tx.pkts[kCorePort][0];
  EXPECT_EQ(rte_pktmbuf_mtod(request, const rte_ether_hdr*)->ether_type, htons(RTE_ETHER_TYPE_VLAN));
  EXPECT_EQ(ntohs(rte_pktmbuf_mtod_offset(request, const rte_vlan_hdr*, 14)->vlan_tci), 200);
  EXPECT_EQ(rte_pktmbuf_mtod_offset(request, const rte_vlan_hdr*, 14)->eth_proto,
            htons(RTE_ETHER_TYPE_ARP));
  const auto* arp = rte_pktmbuf_mtod_offset(request, const rte_arp_hdr*, 18);
  EXPECT_EQ(arp->arp_opcode, htons(RTE_ARP_OP_REQUEST));
  EXPECT_EQ(arp->arp_data.arp_tip, ip4("198.51.100.99"));
  EXPECT_EQ(arp->arp_data.arp_sip, ip4("10.1.0.1"));
  EXPECT_EQ(read(counters.arpRequested), 1u);
}

// Up to three IPv4 prefixes are kept in the rule's first cache line as well, four or more
// only in its prefix array: both are searched to the end, across the boundary, and a source
// just outside every prefix is dropped.
TEST_F(FastPath, SourcePrefixesInlineAndBeyond) {
  for (int count = 1; count <= 5; ++count) {
    SCOPED_TRACE(count);
    const StreamId id = static_cast<StreamId>(count);
    const auto port = static_cast<std::uint16_t>(10000 + 2 * count);
    ASSERT_TRUE(flows->installStream(id, 0, {port, static_cast<std::uint16_t>(20000 + 2 * count)}));
    LegMedia access = leg("192.0.2.10", 4000, "172.16.0.0/24");
    for (int i = 1; i < count; ++i)  // narrower and wider masks than the first
      access.allowedSources.push_back(*IpPrefix::parse("172." + std::to_string(16 + i) + ".0.0/" +
                                                       std::to_string(i % 2 == 0 ? 28 : 16)));
    ASSERT_TRUE(flows->updateLeg(id, Realm::access, access));
    ASSERT_TRUE(flows->updateLeg(id, Realm::core, leg("198.51.100.20", 5000, "198.51.100.0/24")));
    ASSERT_EQ(flows->find(0, port)->prefixCount, count);
    const std::uint64_t before = read(counters.forwarded);
    const std::uint64_t refusedBefore = drops(DropReason::sourceNotAllowed);
    for (int i = 0; i < count; ++i) {
      Udp4Spec spec;
      spec.dstPort = port;
      spec.src = "172." + std::to_string(16 + i) + ".0.9";
      run(makeUdp4(spec));
      EXPECT_EQ(read(counters.forwarded), before + static_cast<std::uint64_t>(i) + 1) << spec.src;
    }
    // Outside all: below the first, past the first /24, past the /28 (or its absence), the
    // prefix the next count would add.
    const std::vector<std::string> outsiders{"172.15.255.9", "172.16.1.9", "172.18.0.16",
                                             "172." + std::to_string(16 + count) + ".0.9"};
    for (const std::string& outside : outsiders) {
      Udp4Spec spec;
      spec.dstPort = port;
      spec.src = outside;
      run(makeUdp4(spec));
    }
    EXPECT_EQ(read(counters.forwarded), before + static_cast<std::uint64_t>(count));
    EXPECT_EQ(drops(DropReason::sourceNotAllowed), refusedBefore + 4);
    clearTx();
  }
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

// A trunk may list any number of source prefixes: the rule keeps them all (an earlier
// layout kept 16 and silently dropped media from the rest), and only its own family's.
TEST_F(FastPath, AcceptsMediaFromEveryOneOfManySourcePrefixes) {
  ASSERT_TRUE(flows->installStream(1, 0, {10000, 20000}));
  LegMedia access = leg("192.0.2.10", 4000, "192.0.2.0/24");
  access.allowedSources.push_back(*IpPrefix::parse("2001:db8:1::/48"));  // not IPv4: skipped
  for (int i = 0; i < 40; ++i)
    access.allowedSources.push_back(*IpPrefix::parse("172.16." + std::to_string(i) + ".0/24"));
  ASSERT_TRUE(flows->updateLeg(1, Realm::access, access));
  ASSERT_TRUE(flows->updateLeg(1, Realm::core, leg("198.51.100.20", 5000, "198.51.100.0/24")));
  ASSERT_EQ(flows->find(0, 10000)->prefixCount, 41);
  std::uint64_t expected = 0;
  for (int i : {0, 15, 16, 17, 39}) {
    Udp4Spec spec;
    spec.src = "172.16." + std::to_string(i) + ".9";
    run(makeUdp4(spec));
    EXPECT_EQ(read(counters.forwarded), ++expected) << spec.src;
  }
  Udp4Spec outside;
  outside.src = "172.16.40.9";
  run(makeUdp4(outside));
  EXPECT_EQ(read(counters.forwarded), expected);
  EXPECT_EQ(drops(DropReason::sourceNotAllowed), 1u);
}

// The checksums are updated incrementally (RFC 1624), not recomputed: over many random
// headers (sources, ports, TTL, TOS, lengths, peers, DSCP) both stay valid, which a slip in
// the one's-complement arithmetic (a carry, a byte order, the 0/0xffff case) would break.
TEST_F(FastPath, IncrementalChecksumsStayValidForRandomIpv4Headers) {
  // Each packet on a stream of its own (random ports in both realms), either direction, RTP
  // or RTCP, tagged or not: the sums the rules precompute depend on all of these.
  std::mt19937 rng(20261127);
  for (int i = 0; i < 3000; ++i) {
    const auto accessPort = static_cast<std::uint16_t>(10000 + 2 * (rng() % 499));
    const auto corePort = static_cast<std::uint16_t>(20000 + 2 * (rng() % 499));
    const std::string accessPeer = "192.0.2." + std::to_string(rng() % 254 + 1);
    const std::string corePeer = "198.51.100." + std::to_string(rng() % 254 + 1);
    const auto accessPeerPort = static_cast<std::uint16_t>(rng() % 65534 + 1);
    const auto corePeerPort = static_cast<std::uint16_t>(rng() % 65534 + 1);
    neighbours.set(raw(accessPeer), macToWord(kAccessPeerMac));
    neighbours.set(raw(corePeer), macToWord(kCorePeerMac));
    ASSERT_TRUE(flows->installStream(1, static_cast<std::uint16_t>(rng() % 8), {accessPort, corePort}));
    ASSERT_TRUE(flows->updateLeg(1, Realm::access, leg(accessPeer, accessPeerPort, "192.0.2.0/24")));
    ASSERT_TRUE(flows->updateLeg(1, Realm::core, leg(corePeer, corePeerPort, "198.51.100.0/24")));
    ctx.dscp = static_cast<std::uint8_t>(rng() % 64);
    ctx.vlan = {static_cast<std::uint16_t>(rng() % 2 == 0 ? 0 : 42),
                static_cast<std::uint16_t>(rng() % 2 == 0 ? 0 : 200)};
    const bool fromCore = rng() % 2 == 1;
    const std::uint16_t rtcp = rng() % 2;
    const unsigned in = fromCore ? 1 : 0, out = fromCore ? 0 : 1;
    Udp4Spec spec;
    spec.src = (fromCore ? "198.51.100." : "192.0.2.") + std::to_string(rng() % 256);
    spec.srcPort = static_cast<std::uint16_t>(rng());
    spec.dst = fromCore ? "10.1.0.1" : "10.0.0.1";
    spec.dstPort = static_cast<std::uint16_t>((fromCore ? corePort : accessPort) + rtcp);
    spec.ttl = static_cast<std::uint8_t>(rng() % 254 + 2);
    spec.tos = static_cast<std::uint8_t>(rng());
    spec.payload = rng() % 400;
    spec.vlan = ctx.vlan[in] != 0;
    spec.vlanTci = ctx.vlan[in];
    run(makeUdp4(spec), fromCore ? kCorePort : kAccessPort);
    const unsigned egress = fromCore ? kAccessPort : kCorePort;
    ASSERT_EQ(tx.count[egress], 1) << "packet " << i;
    const rte_mbuf* m = tx.pkts[egress][0];
    const std::size_t l2 = ctx.vlan[out] != 0 ? 18 : 14;
    const auto* ip = rte_pktmbuf_mtod_offset(m, const rte_ipv4_hdr*, l2);
    const auto* udp = rte_pktmbuf_mtod_offset(m, const rte_udp_hdr*, l2 + 20);
    ASSERT_EQ(rte_ipv4_cksum(ip), 0) << "packet " << i;
    ASSERT_NE(udp->dgram_cksum, 0) << "packet " << i;
    ASSERT_EQ(rte_ipv4_udptcp_cksum_verify(ip, udp), 0) << "packet " << i;
    ASSERT_EQ(ip->time_to_live, spec.ttl - 1);
    ASSERT_EQ(ip->type_of_service, (ctx.dscp << 2) | (spec.tos & 3));
    ASSERT_EQ(ip->src_addr, ip4(fromCore ? "10.0.0.1" : "10.1.0.1"));
    ASSERT_EQ(ip->dst_addr, ip4(fromCore ? accessPeer : corePeer));
    ASSERT_EQ(ntohs(udp->src_port), (fromCore ? accessPort : corePort) + rtcp);
    ASSERT_EQ(ntohs(udp->dst_port), (fromCore ? accessPeerPort : corePeerPort) + rtcp);
    ASSERT_EQ(ntohs(udp->dgram_len), 8 + spec.payload);
    clearTx();
    ASSERT_TRUE(flows->removeStream(1));
    flows->synchronize();
    flows->reclaim();
  }
}

// Subscriber lines behind NAT, reached through the access realm's gateway: media from the
// core goes to each terminal's latched address and port (RTCP, until its own port latches,
// to the latched RTP port + 1) with the gateway's MAC and valid checksums, for random
// latched sources, ports and SDP addresses (the rules' sums are taken with the SDP address,
// or none). Then an on-link latched terminal: its own MAC, looked up.
TEST_F(FastPath, ForwardsToLatchedTerminalsThroughTheGateway) {
  RelaySettings settings = settings4();
  settings.realms[0].gateway = *IpAddress::parse("10.0.0.254");
  settings.realms[0].onLink = {*IpPrefix::parse("10.0.0.0/24")};
  build(settings);
  const rte_ether_addr gatewayMac{{0x02, 0xaa, 0, 0, 0, 0xfe}};
  neighbours.set(raw("10.0.0.254"), macToWord(gatewayMac));
  neighbours.set(raw("198.51.100.20"), macToWord(kCorePeerMac));
  std::mt19937 rng(4711);
  for (int i = 0; i < 500; ++i) {
    SCOPED_TRACE(i);
    const auto accessPort = static_cast<std::uint16_t>(10000 + 2 * (rng() % 499));
    ASSERT_TRUE(flows->installStream(1, 0, {accessPort, 20000}));
    const std::string terminal = "203.0.113." + std::to_string(rng() % 254 + 1);
    LegMedia line;
    if (rng() % 4 != 0) line.rtp = MediaAddress{*IpAddress::parse("10.77.0.9"), 4000};  // private
    line.allowedSources = {*IpPrefix::parse(terminal + "/32")};
    line.latch = true;
    ASSERT_TRUE(flows->updateLeg(1, Realm::access, line));
    ASSERT_TRUE(flows->updateLeg(1, Realm::core, leg("198.51.100.20", 5000, "198.51.100.0/24")));
    Udp4Spec up;
    up.src = terminal;
    up.srcPort = static_cast<std::uint16_t>(1024 + rng() % 60000);  // its NAT's port
    up.dstPort = accessPort;
    run(makeUdp4(up));
    ASSERT_EQ(tx.count[kCorePort], 1);
    clearTx();
    const std::uint16_t rtcp = rng() % 2;
    Udp4Spec down = fromCorePeer();
    down.srcPort = static_cast<std::uint16_t>(5000 + rtcp);
    down.dstPort = static_cast<std::uint16_t>(20000 + rtcp);
    down.ttl = static_cast<std::uint8_t>(rng() % 254 + 2);
    run(makeUdp4(down), kCorePort);
    ASSERT_EQ(tx.count[kAccessPort], 1);
    expectIpv4(tx.pkts[kAccessPort][0], kAccessMac, gatewayMac, "10.0.0.1",
               static_cast<std::uint16_t>(accessPort + rtcp), terminal,
               static_cast<std::uint16_t>(up.srcPort + rtcp), 172,
               static_cast<std::uint8_t>(down.ttl - 1));
    if (HasFatalFailure() || HasFailure()) return;
    clearTx();
    ASSERT_TRUE(flows->removeStream(1));
    flows->synchronize();
  }
  // On link: the terminal's own MAC, not the gateway's.
  ASSERT_TRUE(flows->installStream(1, 0, {10000, 20000}));
  LegMedia line;
  line.allowedSources = {*IpPrefix::parse("10.0.0.0/24")};
  line.latch = true;
  ASSERT_TRUE(flows->updateLeg(1, Realm::access, line));
  ASSERT_TRUE(flows->updateLeg(1, Realm::core, leg("198.51.100.20", 5000, "198.51.100.0/24")));
  neighbours.set(raw("10.0.0.66"), macToWord(kAccessPeerMac));
  Udp4Spec up;
  up.src = "10.0.0.66";
  up.srcPort = 7078;
  run(makeUdp4(up));
  clearTx();
  run(makeUdp4(fromCorePeer()), kCorePort);
  ASSERT_EQ(tx.count[kAccessPort], 1);
  expectIpv4(tx.pkts[kAccessPort][0], kAccessMac, kAccessPeerMac, "10.0.0.1", 10000, "10.0.0.66",
             7078, 172, 63);
}

TEST_F(FastPath, IncrementalChecksumsStayValidForRandomIpv6Headers) {
  build(settings6());
  ASSERT_TRUE(flows->installStream(1, 0, {10000, 20000}));
  ASSERT_TRUE(flows->updateLeg(1, Realm::access, leg("2001:db8:1::10", 4000, "2001:db8:1::/48")));
  std::mt19937 rng(20261128);
  const auto hex = [&rng] {
    char text[8];
    std::snprintf(text, sizeof text, "%x", static_cast<unsigned>(rng() % 0x10000));
    return std::string(text);
  };
  for (int i = 0; i < 3000; ++i) {
    const std::string peer = "2001:db8:200:" + hex() + ":" + hex() + "::" + hex();
    const auto peerPort = static_cast<std::uint16_t>(rng() % 65535 + 1);
    neighbours.set(raw(peer), macToWord(kCorePeerMac));
    ASSERT_TRUE(flows->updateLeg(1, Realm::core, leg(peer, peerPort, "2001:db8:200::/48")));
    flows->reclaim();
    ctx.dscp = static_cast<std::uint8_t>(rng() % 64);
    Udp6Spec spec;
    spec.src = "2001:db8:1:" + hex() + "::" + hex() + ":" + hex();
    spec.srcPort = static_cast<std::uint16_t>(rng());
    spec.hopLimit = static_cast<std::uint8_t>(rng() % 254 + 2);
    spec.payload = rng() % 400;
    run(makeUdp6(spec));
    ASSERT_EQ(tx.count[kCorePort], 1) << "packet " << i;
    const rte_mbuf* m = tx.pkts[kCorePort][0];
    const auto* ip = rte_pktmbuf_mtod_offset(m, const rte_ipv6_hdr*, 14);
    const auto* udp = rte_pktmbuf_mtod_offset(m, const rte_udp_hdr*, 54);
    ASSERT_NE(udp->dgram_cksum, 0) << "packet " << i;
    ASSERT_EQ(rte_ipv6_udptcp_cksum_verify(ip, udp), 0) << "packet " << i;
    ASSERT_EQ(ip->hop_limits, spec.hopLimit - 1);
    ASSERT_EQ(0, std::memcmp(ip->dst_addr, raw(peer).bytes.data(), 16));
    ASSERT_EQ(ntohs(udp->dst_port), peerPort);
    clearTx();
  }
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

// Proves: an ARP request for our media address is answered on the port it came in on; the
// asker is learnt only when it is a neighbour we know of (here one a flow would claim), and
// a stranger makes no entry.
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
  EXPECT_EQ(neighbours.find(raw("192.0.2.50")), nullptr) << "a stranger made an entry";
  EXPECT_EQ(read(counters.arpLearnt), 0u);
  clearTx();
  ASSERT_NE(neighbours.claim(raw("192.0.2.50")), nullptr);  // as a flow's next hop
  run(makeArp(RTE_ARP_OP_REQUEST, asker, "192.0.2.50", "10.0.0.1"));
  ASSERT_EQ(tx.count[kAccessPort], 1);
  EXPECT_EQ(neighbours.lookup(raw("192.0.2.50")), macToWord(asker) | NeighbourTable::kValid);
  EXPECT_EQ(read(counters.arpLearnt), 1u);
  clearTx();
  run(makeArp(RTE_ARP_OP_REQUEST, asker, "192.0.2.50", "10.0.0.9"));  // not ours
  EXPECT_EQ(totalTx(), 0u);
  EXPECT_EQ(read(counters.arpReplied), 2u);
  EXPECT_EQ(read(counters.arpIgnored), 1u);
}

// Proves: ARP cannot exhaust the neighbour table (it never evicts). 5,000 requests and 5,000
// unsolicited replies for our address from distinct senders are all answered (requests) but
// leave the table's entry count unchanged, and a real next hop still resolves afterwards.
// Before the fix each sender took a slot and the probe windows filled.
TEST_F(FastPath, ArpFromManySendersFillsNoNeighbourEntries) {
  const std::size_t before = neighbours.entries();
  ASSERT_EQ(before, 2u);  // the two static peers of SetUp
  constexpr unsigned kSenders = 5000;
  for (unsigned i = 0; i < kSenders; ++i) {
    const rte_ether_addr mac{{0x02, 0x66, 0, 0, static_cast<std::uint8_t>(i >> 8),
                              static_cast<std::uint8_t>(i)}};
    const std::string sender = "172.16." + std::to_string(i / 250) + "." +
                               std::to_string(i % 250 + 1);
    run(makeArp(RTE_ARP_OP_REQUEST, mac, sender, "10.0.0.1"));
    run(makeArp(RTE_ARP_OP_REPLY, mac, sender, "10.1.0.1"), kCorePort);
    clearTx();
  }
  EXPECT_EQ(neighbours.entries(), before);
  EXPECT_EQ(read(counters.arpReplied), kSenders);
  EXPECT_EQ(read(counters.arpLearnt), 0u);
  EXPECT_EQ(read(counters.arpIgnored), kSenders);  // the strangers' replies, each counted
  // A flow's next hop is still claimed, requested, learnt from the reply and used.
  openStream4();
  ASSERT_TRUE(flows->updateLeg(1, Realm::core, leg("198.51.100.99", 5000, "198.51.100.0/24")));
  run(makeUdp4({}));
  ASSERT_EQ(tx.count[kCorePort], 1);  // the ARP request for the new next hop
  EXPECT_EQ(read(counters.arpRequested), 1u);
  clearTx();
  const rte_ether_addr answer{{0x02, 0x99, 0, 0, 0, 0x99}};
  run(makeArp(RTE_ARP_OP_REPLY, answer, "198.51.100.99", "10.1.0.1"), kCorePort);
  EXPECT_EQ(read(counters.arpLearnt), 1u);
  run(makeUdp4({}));
  ASSERT_EQ(tx.count[kCorePort], 1);
  expectIpv4(tx.pkts[kCorePort][0], kCoreMac, answer, "10.1.0.1", 20000, "198.51.100.99", 5000,
             172, 63);
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

// Checks an ND message the relay sent, field by field: Ethernet, IPv6 (hop limit 255,
// next header 58, 32 bytes of payload), ICMPv6 type, code 0, flags, target, one link-layer
// option of `optionType` with `optionMac`, and a valid checksum.
void expectNd(const rte_mbuf* m, const rte_ether_addr& ethSrc, const rte_ether_addr& ethDst,
              const std::string& src, const std::string& dst, std::uint8_t type,
              std::uint32_t flags, const std::string& target, std::uint8_t optionType,
              const rte_ether_addr& optionMac, bool vlan = false) {
  const std::size_t l2 = vlan ? 18 : 14;
  ASSERT_EQ(rte_pktmbuf_data_len(m), l2 + 40 + 32);
  ASSERT_EQ(rte_pktmbuf_pkt_len(m), l2 + 40 + 32);
  const auto* eth = rte_pktmbuf_mtod(m, const rte_ether_hdr*);
  EXPECT_TRUE(rte_is_same_ether_addr(&eth->src_addr, &ethSrc));
  EXPECT_TRUE(rte_is_same_ether_addr(&eth->dst_addr, &ethDst));
  if (vlan) {
    EXPECT_EQ(eth->ether_type, htons(RTE_ETHER_TYPE_VLAN));
    const auto* tag = rte_pktmbuf_mtod_offset(m, const rte_vlan_hdr*, 14);
    EXPECT_EQ(ntohs(tag->vlan_tci), 42);
    EXPECT_EQ(tag->eth_proto, htons(RTE_ETHER_TYPE_IPV6));
  } else {
    EXPECT_EQ(eth->ether_type, htons(RTE_ETHER_TYPE_IPV6));
  }
  const auto* ip = rte_pktmbuf_mtod_offset(m, const rte_ipv6_hdr*, l2);
  EXPECT_EQ(ntohl(ip->vtc_flow) >> 28, 6u);
  EXPECT_EQ(ntohs(ip->payload_len), 32);
  EXPECT_EQ(ip->proto, IPPROTO_ICMPV6);
  EXPECT_EQ(ip->hop_limits, 255);
  EXPECT_EQ(0, std::memcmp(ip->src_addr, ip6(src).data(), 16)) << "source";
  EXPECT_EQ(0, std::memcmp(ip->dst_addr, ip6(dst).data(), 16)) << "destination";
  const auto* nd = rte_pktmbuf_mtod_offset(m, const std::uint8_t*, l2 + 40);
  EXPECT_EQ(nd[0], type);
  EXPECT_EQ(nd[1], 0);
  std::uint32_t wireFlags;
  std::memcpy(&wireFlags, nd + 4, 4);
  EXPECT_EQ(ntohl(wireFlags), flags);
  EXPECT_EQ(0, std::memcmp(nd + 8, ip6(target).data(), 16)) << "target";
  EXPECT_EQ(nd[24], optionType);
  EXPECT_EQ(nd[25], 1);
  EXPECT_EQ(0, std::memcmp(nd + 26, optionMac.addr_bytes, 6)) << "link-layer option";
  EXPECT_EQ(rte_ipv6_udptcp_cksum_verify(ip, nd), 0) << "ICMPv6 checksum invalid";
}

constexpr std::uint32_t kSolicited = 0x40000000, kOverride = 0x20000000;
const rte_ether_addr kAllNodesMac{{0x33, 0x33, 0, 0, 0, 0x01}};

std::uint64_t ndIgnored(const WorkerCounters& c) { return read(c.ndIgnored); }
std::uint64_t ndInvalid(const WorkerCounters& c) { return read(c.ndInvalid); }

// Proves: a Neighbor Solicitation for our IPv6 media address (to its solicited-node group,
// or unicast as the kernel's reachability probe sends it, or VLAN-tagged) is answered on
// the receiving port with a solicited, override advertisement carrying our MAC; the
// solicitor's link-layer option is learnt when it is a neighbour we know of (here one a
// flow would claim), and makes no entry otherwise.
TEST_F(FastPath, AnswersNeighbourSolicitationForOurAddress) {
  build(settings6());
  const rte_ether_addr asker{{0x02, 0x55, 0, 0, 0, 0x01}};
  NdSpec ns;
  ns.mac = asker;
  run(makeNd(ns));
  ASSERT_EQ(tx.count[kAccessPort], 1);
  EXPECT_EQ(tx.count[kCorePort], 0);
  expectNd(tx.pkts[kAccessPort][0], kAccessMac, asker, "2001:db8::1", "2001:db8::50",
           kNdAdvertisement, kSolicited | kOverride, "2001:db8::1", 2, kAccessMac);
  EXPECT_EQ(neighbours.find(raw("2001:db8::50")), nullptr) << "a stranger made an entry";
  EXPECT_EQ(read(counters.ndAnswered), 1u);
  EXPECT_EQ(read(counters.ndLearnt), 0u);
  clearTx();
  ASSERT_NE(neighbours.claim(raw("2001:db8::50")), nullptr);  // as a flow's next hop
  run(makeNd(ns));
  ASSERT_EQ(tx.count[kAccessPort], 1);
  EXPECT_EQ(neighbours.lookup(raw("2001:db8::50")), macToWord(asker) | NeighbourTable::kValid);
  EXPECT_EQ(read(counters.ndLearnt), 1u);
  clearTx();
  // Unicast, without a link-layer option (neighbour unreachability detection): answered to
  // the frame's source; nothing learnt.
  NdSpec probe;
  probe.src = "2001:db8::60";
  probe.dst = "2001:db8::1";
  probe.linkLayerOption = false;
  probe.mac = asker;
  run(makeNd(probe));
  ASSERT_EQ(tx.count[kAccessPort], 1);
  expectNd(tx.pkts[kAccessPort][0], kAccessMac, asker, "2001:db8::1", "2001:db8::60",
           kNdAdvertisement, kSolicited | kOverride, "2001:db8::1", 2, kAccessMac);
  EXPECT_EQ(neighbours.lookup(raw("2001:db8::60")), 0u);
  clearTx();
  // The core address on the core port, VLAN-tagged with the core realm's VLAN: the tag is
  // kept. Untagged it is another link's: ignored.
  ctx.vlan = {0, 42};
  NdSpec tagged;
  tagged.src = "2001:db8:100::fe";
  tagged.target = "2001:db8:100::1";
  tagged.vlan = true;
  tagged.mac = kCorePeerMac;
  run(makeNd(tagged), kCorePort);
  ASSERT_EQ(tx.count[kCorePort], 1);
  expectNd(tx.pkts[kCorePort][0], kCoreMac, kCorePeerMac, "2001:db8:100::1", "2001:db8:100::fe",
           kNdAdvertisement, kSolicited | kOverride, "2001:db8:100::1", 2, kCoreMac, true);
  EXPECT_EQ(read(counters.ndAnswered), 4u);
  EXPECT_EQ(ndIgnored(counters) + ndInvalid(counters), 0u);
  EXPECT_EQ(drops(DropReason::notUdp), 0u);
  clearTx();
  tagged.vlan = false;  // the core address asked for off the core VLAN
  run(makeNd(tagged), kCorePort);
  EXPECT_EQ(totalTx(), 0u);
  EXPECT_EQ(ndIgnored(counters), 1u);
}

// Proves: an IPv6 peer in a tagged realm (core: VLAN 300) is solicited with the realm's tag,
// its tagged advertisement is learnt, and media to it leaves tagged. The solicitation
// used to go out untagged.
TEST_F(FastPath, SolicitsOnTheRealmsVlan) {
  build(settings6());
  ctx.vlan = {0, 300};
  ASSERT_TRUE(flows->installStream(1, 0, {10000, 20000}));
  ASSERT_TRUE(flows->updateLeg(1, Realm::access, leg("2001:db8:1::10", 4000, "2001:db8:1::/48")));
  ASSERT_TRUE(flows->updateLeg(1, Realm::core, leg("2001:db8:100::99", 5000, "2001:db8:100::/48")));
  run(makeUdp6({}));
  ASSERT_EQ(tx.count[kCorePort], 1);
  const rte_mbuf* ns = tx.pkts[kCorePort][0];
  EXPECT_EQ(rte_pktmbuf_mtod(ns, const rte_ether_hdr*)->ether_type, htons(RTE_ETHER_TYPE_VLAN));
  const auto* tag = rte_pktmbuf_mtod_offset(ns, const rte_vlan_hdr*, 14);
  EXPECT_EQ(ntohs(tag->vlan_tci), 300);
  EXPECT_EQ(tag->eth_proto, htons(RTE_ETHER_TYPE_IPV6));
  const auto* ip = rte_pktmbuf_mtod_offset(ns, const rte_ipv6_hdr*, 18);
  EXPECT_EQ(ip->proto, IPPROTO_ICMPV6);
  EXPECT_EQ(rte_ipv6_udptcp_cksum_verify(ip, ip + 1), 0);
  EXPECT_EQ(reinterpret_cast<const std::uint8_t*>(ip + 1)[0], kNdSolicitation);
  EXPECT_EQ(rte_pktmbuf_data_len(ns), 18u + 40 + 32);
  clearTx();

  const rte_ether_addr answer{{0x02, 0x99, 0, 0, 0, 0x99}};
  NdSpec na;
  na.type = kNdAdvertisement;
  na.src = "2001:db8:100::99";
  na.target = "2001:db8:100::99";
  na.dst = "2001:db8:100::1";
  na.flags = kSolicited | kOverride;
  na.mac = answer;
  run(makeNd(na), kCorePort);  // untagged: not the core realm's link
  EXPECT_EQ(read(counters.ndLearnt), 0u);
  run(withVlan(makeNd(na), 300), kCorePort);
  EXPECT_EQ(read(counters.ndLearnt), 1u);
  run(makeUdp6({}));
  ASSERT_EQ(tx.count[kCorePort], 1);
  const rte_mbuf* media = tx.pkts[kCorePort][0];
  EXPECT_EQ(ntohs(rte_pktmbuf_mtod_offset(media, const rte_vlan_hdr*, 14)->vlan_tci), 5 << 13 | 300);
  EXPECT_TRUE(rte_is_same_ether_addr(&rte_pktmbuf_mtod(media, const rte_ether_hdr*)->dst_addr, &answer));
  const auto* ip6 = rte_pktmbuf_mtod_offset(media, const rte_ipv6_hdr*, 18);
  EXPECT_EQ(rte_ipv6_udptcp_cksum_verify(ip6, ip6 + 1), 0);
}

// Proves: duplicate address detection for our address (a solicitation from ::) is answered
// to all-nodes, not as solicited (RFC 4861 7.2.4), and teaches nothing.
TEST_F(FastPath, DefendsOurAddressAgainstDuplicateAddressDetection) {
  build(settings6());
  NdSpec dad;
  dad.src = "::";
  dad.linkLayerOption = false;
  run(makeNd(dad));
  ASSERT_EQ(tx.count[kAccessPort], 1);
  expectNd(tx.pkts[kAccessPort][0], kAccessMac, kAllNodesMac, "2001:db8::1", "ff02::1",
           kNdAdvertisement, kOverride, "2001:db8::1", 2, kAccessMac);
  EXPECT_EQ(read(counters.ndLearnt), 0u);
  EXPECT_EQ(neighbours.lookup(raw("::")), 0u);
}

// Proves: solicitations failing RFC 4861 7.1.1 are dropped and counted as invalid, none
// answered, nothing learnt.
TEST_F(FastPath, DropsInvalidNeighbourSolicitations) {
  build(settings6());
  std::uint64_t expected = 0;
  auto check = [&](rte_mbuf* m, const char* what) {
    run(m);
    ++expected;
    EXPECT_EQ(ndInvalid(counters), expected) << what;
    EXPECT_EQ(totalTx(), 0u) << what;
  };
  NdSpec ns;
  ns.hopLimit = 254;  // forwarded by a router: not from the link
  check(makeNd(ns), "hop limit 254");
  ns = {};
  ns.hopLimit = 64;
  check(makeNd(ns), "hop limit 64");
  ns = {};
  ns.corruptChecksum = true;
  check(makeNd(ns), "bad checksum");
  ns = {};
  ns.code = 1;
  check(makeNd(ns), "code 1");
  ns = {};
  ns.target = "ff02::1";
  ns.dst = "2001:db8::1";
  check(makeNd(ns), "multicast target");
  ns = {};
  ns.optionUnits = 0;
  check(makeNd(ns), "option of length 0");
  ns = {};
  ns.optionUnits = 2;
  check(makeNd(ns), "option beyond the message");
  ns = {};
  ns.src = "::";
  check(makeNd(ns), "DAD with a source link-layer option");
  ns = {};
  ns.src = "::";
  ns.linkLayerOption = false;
  ns.dst = "ff02::1";
  check(makeNd(ns), "DAD not to a solicited-node group");
  ns = {};
  ns.linkLayerOption = false;
  rte_mbuf* m = makeNd(ns);  // 24 bytes: cut the target short, checksum recomputed
  auto* ip = rte_pktmbuf_mtod_offset(m, rte_ipv6_hdr*, 14);
  ip->payload_len = htons(16);
  rte_pktmbuf_trim(m, 8);
  auto* icmp = rte_pktmbuf_mtod_offset(m, std::uint8_t*, 54);
  icmp[2] = icmp[3] = 0;
  const std::uint16_t sum = rte_ipv6_udptcp_cksum(ip, icmp);
  std::memcpy(icmp + 2, &sum, 2);
  check(m, "shorter than a solicitation");
  EXPECT_EQ(read(counters.ndAnswered), 0u);
  EXPECT_EQ(read(counters.ndLearnt), 0u);
  EXPECT_EQ(neighbours.lookup(raw("2001:db8::50")), 0u);
}

// Proves: a solicitation for an address that is not ours on the receiving port (another
// address; the other realm's address on this port; ours but sent to another node) is
// ignored and counted: no answer, nothing learnt.
TEST_F(FastPath, IgnoresNeighbourSolicitationsNotForUs) {
  build(settings6());
  NdSpec other;
  other.target = "2001:db8::9";
  run(makeNd(other));
  NdSpec otherRealm;
  otherRealm.target = "2001:db8:100::1";  // the core address, asked on the access port
  run(makeNd(otherRealm));
  NdSpec elsewhere;
  elsewhere.dst = "2001:db8::77";  // unicast to another node (seen in promiscuous mode)
  run(makeNd(elsewhere));
  EXPECT_EQ(totalTx(), 0u);
  EXPECT_EQ(ndIgnored(counters), 3u);
  EXPECT_EQ(read(counters.ndAnswered), 0u);
  EXPECT_EQ(neighbours.lookup(raw("2001:db8::50")), 0u);
  // Other ICMPv6 (an echo request) is not media and not ND.
  NdSpec echo;
  echo.type = 128;
  echo.linkLayerOption = false;
  run(makeNd(echo));
  EXPECT_EQ(drops(DropReason::notUdp), 1u);
  EXPECT_EQ(ndIgnored(counters), 3u);
}

// Proves: an unresolved IPv6 peer gets one Neighbor Solicitation (rate limited) to its
// solicited-node group from our core address, with our link-layer option; the media
// packets wait as on the IPv4 path (dropped, counted unresolved); an advertisement answers
// it and the next packet goes to the learnt MAC. An unsolicited advertisement for a
// neighbour we never asked about, or one that would override without the override flag,
// is not learnt.
TEST_F(FastPath, ResolvesUnknownIpv6PeerByNeighbourDiscovery) {
  build(settings6());
  ASSERT_TRUE(flows->installStream(1, 0, {10000, 20000}));
  ASSERT_TRUE(flows->updateLeg(1, Realm::access, leg("2001:db8:1::10", 4000, "2001:db8:1::/48")));
  ASSERT_TRUE(flows->updateLeg(1, Realm::core, leg("2001:db8:100::99", 5000, "2001:db8:100::/48")));
  run(makeUdp6({}));
  run(makeUdp6({}));
  ASSERT_EQ(tx.count[kCorePort], 1);  // one solicitation, no media
  EXPECT_EQ(tx.count[kAccessPort], 0);
  EXPECT_EQ(read(counters.unresolved), 2u);
  EXPECT_EQ(read(counters.ndRequested), 1u);
  expectNd(tx.pkts[kCorePort][0], kCoreMac, rte_ether_addr{{0x33, 0x33, 0xff, 0, 0, 0x99}},
           "2001:db8:100::1", "ff02::1:ff00:99", kNdSolicitation, 0, "2001:db8:100::99", 1,
           kCoreMac);
  EXPECT_EQ(flows->streamCounters(1)->dropped[0], 2u);
  clearTx();

  const rte_ether_addr answer{{0x02, 0x99, 0, 0, 0, 0x99}};
  NdSpec unasked;
  unasked.type = kNdAdvertisement;
  unasked.src = "2001:db8:100::77";
  unasked.target = "2001:db8:100::77";
  unasked.dst = "ff02::1";
  unasked.flags = kOverride;
  unasked.mac = answer;
  run(makeNd(unasked), kCorePort);
  EXPECT_EQ(neighbours.lookup(raw("2001:db8:100::77")), 0u);
  EXPECT_EQ(ndIgnored(counters), 1u);
  NdSpec na;
  na.type = kNdAdvertisement;
  na.src = "2001:db8:100::99";
  na.target = "2001:db8:100::99";
  na.dst = "2001:db8:100::1";
  na.flags = kSolicited | kOverride;
  na.mac = answer;
  run(makeNd(na), kCorePort);
  EXPECT_EQ(totalTx(), 0u);
  EXPECT_EQ(read(counters.ndLearnt), 1u);
  run(makeUdp6({}));
  ASSERT_EQ(tx.count[kCorePort], 1);
  const auto* eth = rte_pktmbuf_mtod(tx.pkts[kCorePort][0], const rte_ether_hdr*);
  EXPECT_TRUE(rte_is_same_ether_addr(&eth->dst_addr, &answer));
  EXPECT_TRUE(rte_is_same_ether_addr(&eth->src_addr, &kCoreMac));
  const auto* ip = rte_pktmbuf_mtod_offset(tx.pkts[kCorePort][0], const rte_ipv6_hdr*, 14);
  EXPECT_EQ(0, std::memcmp(ip->dst_addr, ip6("2001:db8:100::99").data(), 16));
  clearTx();

  // Without the override flag, a different MAC for a known neighbour is not taken.
  NdSpec weak = na;
  weak.flags = kSolicited;
  weak.mac = rte_ether_addr{{0x02, 0x66, 0, 0, 0, 0x66}};
  run(makeNd(weak), kCorePort);
  EXPECT_EQ(neighbours.lookup(raw("2001:db8:100::99")), macToWord(answer) | NeighbourTable::kValid);
  EXPECT_EQ(ndIgnored(counters), 2u);
  // A solicited advertisement sent to a multicast group is invalid.
  NdSpec bad = na;
  bad.dst = "ff02::1";
  run(makeNd(bad), kCorePort);
  EXPECT_EQ(ndInvalid(counters), 1u);
  EXPECT_EQ(read(counters.ndLearnt), 1u);
}

// Proves: with an IPv6 gateway, an off-link peer is reached through the gateway's MAC,
// resolved by a solicitation for the gateway (not the peer), the peer's address kept.
TEST_F(FastPath, ReachesOffLinkIpv6PeersThroughTheGateway) {
  RelaySettings settings = settings6();
  settings.realms[1].gateway = *IpAddress::parse("2001:db8:100::fe");
  settings.realms[1].onLink = {*IpPrefix::parse("2001:db8:100::/64")};
  build(settings);
  ASSERT_TRUE(flows->installStream(1, 0, {10000, 20000}));
  ASSERT_TRUE(flows->updateLeg(1, Realm::access, leg("2001:db8:1::10", 4000, "2001:db8:1::/48")));
  ASSERT_TRUE(flows->updateLeg(1, Realm::core, leg("2001:db8:200::20", 5000, "2001:db8:200::/48")));
  run(makeUdp6({}));
  ASSERT_EQ(tx.count[kCorePort], 1);
  expectNd(tx.pkts[kCorePort][0], kCoreMac, rte_ether_addr{{0x33, 0x33, 0xff, 0, 0, 0xfe}},
           "2001:db8:100::1", "ff02::1:ff00:fe", kNdSolicitation, 0, "2001:db8:100::fe", 1,
           kCoreMac);
  EXPECT_EQ(read(counters.unresolved), 1u);
  clearTx();
  const rte_ether_addr gatewayMac{{0x02, 0xcc, 0, 0, 0, 0xfe}};
  NdSpec na;
  na.type = kNdAdvertisement;
  na.src = "fe80::fe";  // routers answer from their link-local address
  na.target = "2001:db8:100::fe";
  na.dst = "2001:db8:100::1";
  na.flags = kSolicited | kOverride;
  na.mac = gatewayMac;
  run(makeNd(na), kCorePort);
  run(makeUdp6({}));
  ASSERT_EQ(tx.count[kCorePort], 1);
  const rte_mbuf* m = tx.pkts[kCorePort][0];
  const auto* eth = rte_pktmbuf_mtod(m, const rte_ether_hdr*);
  EXPECT_TRUE(rte_is_same_ether_addr(&eth->dst_addr, &gatewayMac));
  const auto* ip = rte_pktmbuf_mtod_offset(m, const rte_ipv6_hdr*, 14);
  EXPECT_EQ(0, std::memcmp(ip->dst_addr, ip6("2001:db8:200::20").data(), 16));
  EXPECT_EQ(0, std::memcmp(ip->src_addr, ip6("2001:db8:100::1").data(), 16));
  EXPECT_EQ(rte_ipv6_udptcp_cksum_verify(ip, rte_pktmbuf_mtod_offset(m, const void*, 54)), 0);
  EXPECT_EQ(neighbours.lookup(raw("2001:db8:200::20")), 0u);  // never asked for the peer
}

// Proves: a burst of IPv6 media waiting for resolution and ND messages of every outcome
// (answered, learnt, ignored, invalid, other ICMPv6) gives every mbuf back to the pool.
TEST_F(FastPath, NeighbourDiscoveryBurstLeaksNothing) {
  build(settings6());
  ASSERT_TRUE(flows->installStream(1, 0, {10000, 20000}));
  ASSERT_TRUE(flows->updateLeg(1, Realm::access, leg("2001:db8:1::10", 4000, "2001:db8:1::/48")));
  ASSERT_TRUE(flows->updateLeg(1, Realm::core, leg("2001:db8:100::99", 5000, "2001:db8:100::/48")));
  const unsigned before = rte_mempool_avail_count(testPool());
  std::array<rte_mbuf*, kBurst> burst;
  for (unsigned i = 0; i < kBurst; ++i) {
    NdSpec nd;
    switch (i % 6) {
      case 0: burst[i] = makeUdp6({}); continue;  // unresolved: one solicitation goes out
      case 1: break;                              // answered
      case 2: nd.hopLimit = 1; break;             // invalid
      case 3: nd.target = "2001:db8::9"; break;   // ignored
      case 4:                                     // answered, the stranger not learnt
        nd.src = "2001:db8::" + std::to_string(100 + i);
        break;
      default: nd.type = 128; nd.linkLayerOption = false; break;  // not ND
    }
    burst[i] = makeNd(nd);
  }
  forwardBurst(burst.data(), kBurst, kAccessPort, ctx, counters, rte_rdtsc(), tx);
  EXPECT_EQ(read(counters.ndRequested), 1u);
  EXPECT_EQ(read(counters.unresolved), 6u);
  EXPECT_EQ(read(counters.ndAnswered), 11u);
  EXPECT_EQ(ndInvalid(counters), 5u);
  EXPECT_EQ(ndIgnored(counters), 5u);
  EXPECT_EQ(drops(DropReason::notUdp), 5u);
  EXPECT_EQ(read(counters.ndLearnt), 0u);
  EXPECT_EQ(tx.count[kAccessPort] + tx.count[kCorePort], 12u);
  clearTx();
  EXPECT_EQ(rte_mempool_avail_count(testPool()), before);
}

// Proves: hostile ND input is handled: thousands of solicitations and advertisements with
// random flags, targets, destinations, lengths and options (checksums made valid, so they
// reach the option parser) crash nothing and give every mbuf back to the pool.
TEST_F(FastPath, RandomNeighbourDiscoveryLeaksNothing) {
  build(settings6());
  ASSERT_TRUE(flows->installStream(1, 0, {10000, 20000}));
  ASSERT_TRUE(flows->updateLeg(1, Realm::core, leg("2001:db8:100::99", 5000, "2001:db8:100::/48")));
  const unsigned before = rte_mempool_avail_count(testPool());
  std::uint32_t seed = 12345;
  const auto next = [&seed] {
    seed = seed * 1664525u + 1013904223u;
    return seed >> 8;
  };
  const char* targets[] = {"2001:db8::1", "2001:db8:100::1", "2001:db8:100::99", "::", "ff02::1"};
  const char* destinations[] = {"", "2001:db8::1", "ff02::1", "2001:db8::77"};
  for (int round = 0; round < 200; ++round) {
    std::array<rte_mbuf*, 16> burst;
    for (auto& m : burst) {
      NdSpec nd;
      nd.type = next() % 2 == 0 ? kNdSolicitation : kNdAdvertisement;
      nd.src = next() % 4 == 0 ? "::" : "2001:db8::50";
      nd.target = targets[next() % 5];
      nd.dst = destinations[next() % 4];
      nd.flags = next() << 8;
      nd.linkLayerOption = next() % 3 != 0;
      nd.optionUnits = static_cast<std::uint8_t>(next() % 4);
      m = makeNd(nd);
      ASSERT_NE(m, nullptr);
      // Random bytes over the option and a random IPv6 payload length within the frame,
      // then a valid checksum over what the length now covers.
      auto* ip = rte_pktmbuf_mtod_offset(m, rte_ipv6_hdr*, 14);
      auto* icmp = rte_pktmbuf_mtod_offset(m, std::uint8_t*, 54);
      const std::uint32_t room = rte_pktmbuf_data_len(m) - 54;
      for (std::uint32_t i = 24; i < room; ++i)
        if (next() % 4 == 0) icmp[i] = static_cast<std::uint8_t>(next());
      const auto length = static_cast<std::uint16_t>(next() % (room + 1));
      ip->payload_len = htons(length);
      if (length >= 4) {
        icmp[2] = icmp[3] = 0;
        const std::uint16_t sum = rte_ipv6_udptcp_cksum(ip, icmp);
        std::memcpy(icmp + 2, &sum, 2);
      }
    }
    forwardBurst(burst.data(), static_cast<std::uint16_t>(burst.size()),
                 next() % 2 == 0 ? kAccessPort : kCorePort, ctx, counters, rte_rdtsc(), tx);
    clearTx();
  }
  EXPECT_GT(read(counters.ndAnswered), 0u);
  EXPECT_GT(ndInvalid(counters), 0u);
  EXPECT_GT(ndIgnored(counters), 0u);
  EXPECT_EQ(rte_mempool_avail_count(testPool()), before);
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
