#include "dataplane/dpdk/fast_path.h"

#include <netinet/in.h>
#include <rte_arp.h>
#include <rte_byteorder.h>
#include <rte_ip.h>
#include <rte_prefetch.h>
#include <rte_udp.h>

#include <cstring>

#include "dataplane/dpdk/checksum.h"
#include "dataplane/dpdk/neighbour_discovery.h"

namespace sbc::dataplane::dpdk {
namespace {

constexpr std::uint16_t kEthIpv4 = RTE_BE16(RTE_ETHER_TYPE_IPV4);
constexpr std::uint16_t kEthIpv6 = RTE_BE16(RTE_ETHER_TYPE_IPV6);
constexpr std::uint16_t kEthArp = RTE_BE16(RTE_ETHER_TYPE_ARP);
constexpr std::uint16_t kEthVlan = RTE_BE16(RTE_ETHER_TYPE_VLAN);
constexpr std::uint16_t kFragMask = RTE_BE16(RTE_IPV4_HDR_MF_FLAG | RTE_IPV4_HDR_OFFSET_MASK);
constexpr std::uint8_t kUdp = 17;

// What happened to one packet.
enum class Verdict : std::uint8_t {
  forwarded,   // in tx
  consumed,    // ARP or ND: in tx or already freed
  unresolved,  // dropped: next hop unknown (counted apart from DropReason)
  noFlow,
  sourceNotAllowed,
  malformed,
  notUdp,
  txFull,
  wrongVlan,
};
constexpr std::size_t reasonIndex(Verdict v) {
  switch (v) {
    case Verdict::noFlow: return static_cast<std::size_t>(DropReason::noFlow);
    case Verdict::sourceNotAllowed: return static_cast<std::size_t>(DropReason::sourceNotAllowed);
    case Verdict::malformed: return static_cast<std::size_t>(DropReason::malformed);
    case Verdict::notUdp: return static_cast<std::size_t>(DropReason::notUdp);
    case Verdict::wrongVlan: return static_cast<std::size_t>(DropReason::wrongVlan);
    default: return static_cast<std::size_t>(DropReason::txFull);
  }
}

inline std::uint64_t v4Word(std::uint32_t raw) noexcept {
  std::uint8_t bytes[8] = {};
  std::memcpy(bytes, &raw, 4);
  std::uint64_t word;
  std::memcpy(&word, bytes, 8);
  return word;
}
inline std::uint32_t wordV4(std::uint64_t word) noexcept {
  std::uint32_t raw;
  std::memcpy(&raw, &word, 4);
  return raw;
}

inline std::uint16_t load16(const void* p) noexcept {
  std::uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}
inline std::uint32_t load32(const void* p) noexcept {
  std::uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
inline std::uint64_t load64(const void* p) noexcept {
  std::uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

struct Packet {
  std::uint8_t* data;
  std::uint32_t len;
  std::uint32_t l2;    // 14, or 18 with an 802.1Q tag
  std::uint16_t vlan;  // the tag's VLAN id; 0 untagged (or priority-tagged)
};

constexpr std::uint16_t kVlanIdMask = 0x0fff;

// The source rules of `rule` for a packet from (a0, a1, portBe); learns it when latching.
inline bool sourceAllowed(const FlowRule& rule, std::uint64_t a0,
                          std::uint64_t a1, std::uint16_t portBe) noexcept {
  const FlowEntry& entry = *rule.entry;
  if (rule.latch) {
    std::uint64_t l0, l1;
    std::uint16_t lport;
    if (entry.latched.read(rule.latchEpoch, l0, l1, lport))
      return l0 == a0 && l1 == a1 && lport == portBe;
  }
  bool inside = false;
  const MaskedPrefix* prefixes = rule.prefixes();
  for (std::uint16_t i = 0; i < rule.prefixCount; ++i) {
    if (prefixes[i].contains(a0, a1)) {
      inside = true;
      break;
    }
  }
  if (inside && rule.latch) entry.latched.write(rule.latchEpoch, a0, a1, portBe);
  return inside;
}

// Where packets of `rule` go: the other side's latched source, else its SDP address.
inline bool destination(const FlowRule& rule, std::uint64_t& d0, std::uint64_t& d1,
                        std::uint16_t& portBe, bool& latched) noexcept {
  latched = rule.peerLatch && rule.peerEntry != nullptr &&
            rule.peerEntry->latched.read(rule.peerLatchEpoch, d0, d1, portBe);
  if (latched) return true;
  if (rule.peerLatch && rule.peerRtpEntry() != nullptr &&
      rule.peerRtpEntry()->latched.read(rule.peerLatchEpoch, d0, d1, portBe)) {
    portBe = rte_cpu_to_be_16(static_cast<std::uint16_t>(rte_be_to_cpu_16(portBe) + 1));
    latched = true;
    return true;
  }
  if (!rule.hasPeer) return false;
  d0 = rule.peer.word(0);
  d1 = rule.peer.word(1);
  portBe = rule.peerPortBe;
  return true;
}

// `slot` is the target's neighbour entry (where the answer is learnt, and the rate limit).
// `vlan`: the tag of the realm the target is in (0: none).
void sendArpRequest(const FastPathContext& ctx, WorkerCounters& counters,
                    NeighbourTable::Slot* slot, std::uint32_t sender, unsigned port,
                    std::uint16_t vlan, std::uint64_t now, TxBatch& tx) noexcept {
  if (slot == nullptr || ctx.arpPool == nullptr || !slot->requestDue(now, ctx.arpRetryCycles))
    return;
  rte_mbuf* m = rte_pktmbuf_alloc(ctx.arpPool);
  if (m == nullptr) return;
  constexpr std::uint16_t kFrame = RTE_ETHER_MIN_LEN - RTE_ETHER_CRC_LEN;  // 60
  auto* data = reinterpret_cast<std::uint8_t*>(rte_pktmbuf_append(m, kFrame));
  if (data == nullptr) {
    rte_pktmbuf_free(m);
    return;
  }
  std::memset(data, 0, kFrame);  // 60 bytes hold the tag too (18 + 28 + padding)
  rte_ether_addr broadcast;
  std::memset(&broadcast, 0xff, RTE_ETHER_ADDR_LEN);
  const std::uint32_t l2 = writeEthernet(data, broadcast, ctx.portMac[port], vlan, kEthArp);
  auto* arp = reinterpret_cast<rte_arp_hdr*>(data + l2);
  arp->arp_hardware = RTE_BE16(RTE_ARP_HRD_ETHER);
  arp->arp_protocol = kEthIpv4;
  arp->arp_hlen = RTE_ETHER_ADDR_LEN;
  arp->arp_plen = 4;
  arp->arp_opcode = RTE_BE16(RTE_ARP_OP_REQUEST);
  arp->arp_data.arp_sha = ctx.portMac[port];
  arp->arp_data.arp_sip = sender;
  std::memcpy(&arp->arp_data.arp_tip, slot->address.bytes.data(), 4);
  if (!tx.push(port, m)) {
    rte_pktmbuf_free(m);
    return;
  }
  bump(counters.arpRequested);
}

// ARP on the port: answer requests for our media addresses; learn who asked or answered
// only into a neighbour entry that exists (a flow's next hop, one we asked for, a static
// one), as ND does: the table never evicts, and anyone on the link can ARP for our address
// from any number of sender addresses and fill it, after which no next hop resolves.
Verdict handleArp(rte_mbuf* m, const Packet& p, unsigned rxPort, const FastPathContext& ctx,
                  WorkerCounters& counters, TxBatch& tx) noexcept {
  if (p.len < p.l2 + sizeof(rte_arp_hdr)) return Verdict::malformed;
  auto* arp = reinterpret_cast<rte_arp_hdr*>(p.data + p.l2);
  std::uint32_t tip = arp->arp_data.arp_tip;
  std::uint32_t sip = arp->arp_data.arp_sip;
  // Ours on the VLAN it came on (another VLAN's ARP is not for us: it is ignored).
  bool ours = false;
  for (unsigned r = 0; r < kRealmCount; ++r)
    ours = ours || (ctx.flows->isV4(r) && ctx.flows->address4(r) == tip && ctx.vlan[r] == p.vlan);
  if (arp->arp_hardware != RTE_BE16(RTE_ARP_HRD_ETHER) || arp->arp_protocol != kEthIpv4 ||
      arp->arp_hlen != RTE_ETHER_ADDR_LEN || arp->arp_plen != 4 || !ours) {
    bump(counters.arpIgnored);
    rte_pktmbuf_free(m);
    return Verdict::consumed;
  }
  rte_ether_addr sha = arp->arp_data.arp_sha;
  bool learnt = false;
  if (sip != 0) {
    RawAddress raw;
    std::memcpy(raw.bytes.data(), &sip, 4);
    learnt = ctx.neighbours->learn(raw, macToWord(sha));
    if (learnt) bump(counters.arpLearnt);
  }
  if (arp->arp_opcode != RTE_BE16(RTE_ARP_OP_REQUEST)) {
    // A reply about no neighbour of ours (a stranger's, unsolicited) is counted as ignored.
    if (!learnt) bump(counters.arpIgnored);
    rte_pktmbuf_free(m);
    return Verdict::consumed;
  }
  arp->arp_opcode = RTE_BE16(RTE_ARP_OP_REPLY);
  arp->arp_data.arp_tha = sha;
  arp->arp_data.arp_tip = sip;
  arp->arp_data.arp_sha = ctx.portMac[rxPort];
  arp->arp_data.arp_sip = tip;
  auto* eth = reinterpret_cast<rte_ether_hdr*>(p.data);  // its tag (the realm's VLAN) is kept
  eth->dst_addr = sha;
  eth->src_addr = ctx.portMac[rxPort];
  if (!tx.push(rxPort, m)) return Verdict::txFull;
  bump(counters.arpReplied);
  return Verdict::consumed;
}

// ICMPv6: neighbour discovery is answered or learnt from like ARP; other ICMPv6 is not media.
Verdict neighbourDiscovery(rte_mbuf* m, const Packet& p, unsigned rxPort,
                           const FastPathContext& ctx, WorkerCounters& counters,
                           TxBatch& tx) noexcept {
  switch (handleNeighbourDiscovery(m, p.l2, p.vlan, rxPort, ctx, counters, tx)) {
    case NdOutcome::consumed: return Verdict::consumed;
    case NdOutcome::txFull: return Verdict::txFull;
    case NdOutcome::notNd: break;
  }
  return Verdict::notUdp;
}

inline void countFlowDrop(FlowCounters& fc, const FlowRule& rule, WorkerCounters& counters) noexcept {
  bump(fc.dropped);
  bump(counters.labels[rule.label].dropped);
}

// The forwarded packet's 802.1Q tag made the egress realm's: `vlan` with the priority of
// its DSCP class (DSCP >> 3: 5 for EF, voice), or no tag for an untagged realm, whatever
// it came with. In software (the ring and af_packet PMDs have no VLAN insert offload):
// DPDK's rte_vlan_insert / rte_vlan_strip shift the 12 bytes of MAC addresses within the
// mbuf's headroom, no allocation. The new Ethernet header, or nullptr without headroom.
inline rte_ether_hdr* retag(rte_mbuf* m, const Packet& p, std::uint16_t vlan,
                            std::uint8_t dscp) noexcept {
  const bool tagged = p.l2 != sizeof(rte_ether_hdr);
  const auto tci = static_cast<std::uint16_t>((dscp >> 3) << 13 | vlan);
  if (tagged && vlan != 0) {
    reinterpret_cast<rte_vlan_hdr*>(p.data + sizeof(rte_ether_hdr))->vlan_tci = rte_cpu_to_be_16(tci);
  } else if (tagged) {
    rte_vlan_strip(m);
  } else if (vlan != 0) {
    m->vlan_tci = tci;
    if (rte_vlan_insert(&m) != 0) return nullptr;  // the same mbuf (direct, not shared)
  }
  return rte_pktmbuf_mtod(m, rte_ether_hdr*);
}

// What every forwarded packet ends with: the Ethernet addresses, the transmit batch, and
// the flow's and trunk's counters (`payload`: UDP payload bytes).
[[gnu::always_inline]] inline Verdict transmit(rte_mbuf* m, rte_ether_hdr* eth, std::uint64_t mac,
                                               unsigned egress, const FastPathContext& ctx,
                                               TxBatch& tx, FlowCounters& fc,
                                               WorkerCounters& counters, const FlowRule& rule,
                                               unsigned realm, std::uint64_t payload) noexcept {
  std::memcpy(&eth->dst_addr, &mac, RTE_ETHER_ADDR_LEN);  // the MAC as macToWord stored it
  eth->src_addr = ctx.portMac[egress];
  if (!tx.push(egress, m)) return Verdict::txFull;
  bump(fc.packets);
  bump(fc.bytes, payload);
  LabelCounters& lc = counters.labels[rule.label];
  bump(lc.packets[realm]);
  bump(lc.bytes[realm], payload);
  return Verdict::forwarded;
}

// One packet. Returns what happened; the caller frees dropped packets.
inline Verdict processOne(rte_mbuf* m, unsigned rxPort, const FastPathContext& ctx,
                          WorkerCounters& counters, std::uint64_t now, TxBatch& tx) noexcept {
  Packet p{rte_pktmbuf_mtod(m, std::uint8_t*), rte_pktmbuf_data_len(m), sizeof(rte_ether_hdr), 0};
  if (m->nb_segs != 1 || p.len < sizeof(rte_ether_hdr)) return Verdict::malformed;
  auto* eth = reinterpret_cast<rte_ether_hdr*>(p.data);
  std::uint16_t type = eth->ether_type;
  if (type == kEthVlan) {
    if (p.len < sizeof(rte_ether_hdr) + sizeof(rte_vlan_hdr)) return Verdict::malformed;
    const auto* tag = reinterpret_cast<const rte_vlan_hdr*>(p.data + sizeof(rte_ether_hdr));
    type = tag->eth_proto;
    p.vlan = rte_be_to_cpu_16(tag->vlan_tci) & kVlanIdMask;
    p.l2 += sizeof(rte_vlan_hdr);
  }
  const FlowTable& flows = *ctx.flows;
  std::uint64_t s0, s1, d0, d1;
  rte_udp_hdr* udp;
  unsigned realm;
  std::uint32_t udpLen;
  rte_ipv4_hdr* ip4 = nullptr;
  rte_ipv6_hdr* ip6 = nullptr;
  if (type == kEthIpv4) {
    if (p.len < p.l2 + sizeof(rte_ipv4_hdr)) return Verdict::malformed;
    ip4 = reinterpret_cast<rte_ipv4_hdr*>(p.data + p.l2);
    const std::uint8_t vihl = ip4->version_ihl;
    const std::uint32_t ihl = (vihl & 0x0fu) * 4u;
    const std::uint32_t total = rte_be_to_cpu_16(ip4->total_length);
    if ((vihl >> 4) != 4 || ihl < sizeof(rte_ipv4_hdr) || total < ihl || p.l2 + total > p.len)
      return Verdict::malformed;
    if ((ip4->fragment_offset & kFragMask) != 0) return Verdict::malformed;
    if (ip4->next_proto_id != kUdp) return Verdict::notUdp;
    if (total < ihl + sizeof(rte_udp_hdr)) return Verdict::malformed;
    udp = reinterpret_cast<rte_udp_hdr*>(p.data + p.l2 + ihl);
    const int r = flows.realmOf4(ip4->dst_addr, rte_be_to_cpu_16(udp->dst_port));
    if (r < 0) return Verdict::noFlow;
    realm = static_cast<unsigned>(r);
    if (p.vlan != ctx.vlan[realm]) return Verdict::wrongVlan;
    udpLen = rte_be_to_cpu_16(udp->dgram_len);
    if (udpLen != total - ihl) return Verdict::malformed;
    if (ip4->time_to_live <= 1) {
      bump(counters.ttlExpired);
      return Verdict::malformed;
    }
    s0 = v4Word(ip4->src_addr);
    s1 = 0;
  } else if (type == kEthIpv6) {
    if (p.len < p.l2 + sizeof(rte_ipv6_hdr)) return Verdict::malformed;
    ip6 = reinterpret_cast<rte_ipv6_hdr*>(p.data + p.l2);
    const std::uint32_t payload = rte_be_to_cpu_16(ip6->payload_len);
    if ((rte_be_to_cpu_32(ip6->vtc_flow) >> 28) != 6 ||
        p.l2 + sizeof(rte_ipv6_hdr) + payload > p.len)
      return Verdict::malformed;
    if (ip6->proto == IPPROTO_ICMPV6) return neighbourDiscovery(m, p, rxPort, ctx, counters, tx);
    // Extension headers (fragments included) are not media: not parsed.
    if (ip6->proto != kUdp) return Verdict::notUdp;
    if (payload < sizeof(rte_udp_hdr)) return Verdict::malformed;
    std::memcpy(&d0, ip6->dst_addr, 8);
    std::memcpy(&d1, ip6->dst_addr + 8, 8);
    udp = reinterpret_cast<rte_udp_hdr*>(p.data + p.l2 + sizeof(rte_ipv6_hdr));
    const int r = flows.realmOf6(d0, d1, rte_be_to_cpu_16(udp->dst_port));
    if (r < 0) return Verdict::noFlow;
    realm = static_cast<unsigned>(r);
    if (p.vlan != ctx.vlan[realm]) return Verdict::wrongVlan;
    udpLen = rte_be_to_cpu_16(udp->dgram_len);
    if (udpLen != payload) return Verdict::malformed;
    if (ip6->hop_limits <= 1) {
      bump(counters.ttlExpired);
      return Verdict::malformed;
    }
    std::memcpy(&s0, ip6->src_addr, 8);
    std::memcpy(&s1, ip6->src_addr + 8, 8);
  } else if (type == kEthArp) {
    return handleArp(m, p, rxPort, ctx, counters, tx);
  } else {
    return Verdict::notUdp;
  }

  const std::uint32_t index = flows.slotOf(realm, rte_be_to_cpu_16(udp->dst_port));
  if (index == FlowTable::kNoSlot) return Verdict::noFlow;
  const FlowRule* rule = flows.slot(realm, index)->load(std::memory_order_acquire);
  if (rule == nullptr || !rule->active) return Verdict::noFlow;
  FlowCounters& fc = flows.counters(counters.workerId, realm, index);
  const std::uint16_t srcPort = udp->src_port;
  if (!sourceAllowed(*rule, s0, s1, srcPort)) {
    countFlowDrop(fc, *rule, counters);
    return Verdict::sourceNotAllowed;
  }
  fc.lastSeen.store(now, std::memory_order_relaxed);
  std::uint16_t dstPort;
  bool latchedDestination;
  if (!destination(*rule, d0, d1, dstPort, latchedDestination)) {
    countFlowDrop(fc, *rule, counters);
    return Verdict::noFlow;  // the other side has no address yet
  }
  const unsigned out = realm ^ 1u;
  const unsigned egress = ctx.egressPort[out];
  RawAddress next;
  std::memcpy(next.bytes.data(), &d0, 8);
  std::memcpy(next.bytes.data() + 8, &d1, 8);
  // The SDP address's neighbour (the peer or the realm's gateway) was resolved into the
  // rule by the control thread; a latched address is routed here.
  const bool viaRule = !latchedDestination && rule->peerNeighbour != nullptr;
  const RawAddress& hop = viaRule ? rule->peerNeighbour->address : flows.nextHop(out, next);
  const NeighbourTable::Slot* hopSlot = viaRule ? rule->peerNeighbour : ctx.neighbours->find(hop);
  // No rule carries a latched address's entry: its use keeps it from expiring.
  if (!viaRule && hopSlot != nullptr) hopSlot->noteUse(now);
  const std::uint64_t mac = hopSlot == nullptr ? 0 : hopSlot->mac.load(std::memory_order_acquire);
  if (mac == 0) {
    // The rule's own slot (the control thread holds it for the rule); a latched address's
    // entry is made here, for the answer to be learnt into.
    NeighbourTable::Slot* slot = const_cast<NeighbourTable::Slot*>(hopSlot);
    if (slot == nullptr) {
      slot = ctx.neighbours->claim(hop);
      if (slot != nullptr) slot->noteUse(now);
    }
    if (ip4 != nullptr) {
      sendArpRequest(ctx, counters, slot, flows.address4(out), egress, ctx.vlan[out], now, tx);
    } else {
      sendNeighbourSolicitation(ctx, counters, slot, flows.address(out), egress, ctx.vlan[out],
                                now, tx);
    }
    countFlowDrop(fc, *rule, counters);
    return Verdict::unresolved;
  }

  // Rewrite: addresses, ports, DSCP, TTL, checksums (incremental), Ethernet.
  if (ip4 != nullptr) {
    // Changed: [version/ihl, TOS] (DSCP), [TTL, protocol], the addresses (in the IP and the
    // UDP pseudo-header sums), the ports (UDP sum only). Read once, computed in registers.
    const std::uint16_t tosBefore = load16(ip4);
    const std::uint16_t ttlBefore = load16(&ip4->time_to_live);
    const std::uint64_t addrBefore = load64(&ip4->src_addr);
    const std::uint32_t portsBefore = load32(&udp->src_port);
    const std::uint16_t tosAfter = rte_cpu_to_be_16(static_cast<std::uint16_t>(
        (rte_be_to_cpu_16(tosBefore) & 0xff03u) | (std::uint32_t{ctx.dscp} << 2)));
    // TTL is above 1 (checked): no borrow into the protocol byte.
    const std::uint16_t ttlAfter =
        rte_cpu_to_be_16(static_cast<std::uint16_t>(rte_be_to_cpu_16(ttlBefore) - 0x100u));
    const std::uint32_t newSrc = flows.address4(out);
    const std::uint32_t newDst = wordV4(d0);
    std::uint64_t addrAfter;  // src_addr, then dst_addr, as stored
    std::memcpy(&addrAfter, &newSrc, 4);
    std::memcpy(reinterpret_cast<std::uint8_t*>(&addrAfter) + 4, &newDst, 4);
    std::uint32_t portsAfter;
    std::memcpy(&portsAfter, &rule->srcPortBe, 2);
    std::memcpy(reinterpret_cast<std::uint8_t*>(&portsAfter) + 2, &dstPort, 2);
    const std::uint64_t addrDelta = csumDelta64(addrBefore, addrAfter);
    ip4->hdr_checksum = csumApply(ip4->hdr_checksum, addrDelta + csumDelta16(tosBefore, tosAfter) +
                                                         csumDelta16(ttlBefore, ttlAfter));
    if (udp->dgram_cksum != 0) {  // 0: the sender sent none, and none it stays
      const std::uint16_t c = csumApply(udp->dgram_cksum, addrDelta + csumDelta32(portsBefore, portsAfter));
      udp->dgram_cksum = c == 0 ? 0xffff : c;
    }
    std::memcpy(ip4, &tosAfter, 2);
    std::memcpy(&ip4->time_to_live, &ttlAfter, 2);
    std::memcpy(&ip4->src_addr, &addrAfter, 8);
    std::memcpy(&udp->src_port, &portsAfter, 4);
  } else {
    const std::uint8_t* newSrc = flows.address(out).bytes.data();
    std::uint64_t delta = csumDelta64(load64(ip6->src_addr), load64(newSrc)) +
                          csumDelta64(load64(ip6->src_addr + 8), load64(newSrc + 8)) +
                          csumDelta64(load64(ip6->dst_addr), d0) +
                          csumDelta64(load64(ip6->dst_addr + 8), d1);
    std::uint32_t portsAfter;
    std::memcpy(&portsAfter, &rule->srcPortBe, 2);
    std::memcpy(reinterpret_cast<std::uint8_t*>(&portsAfter) + 2, &dstPort, 2);
    delta += csumDelta32(load32(&udp->src_port), portsAfter);
    const std::uint32_t vtc = rte_be_to_cpu_32(ip6->vtc_flow);
    ip6->vtc_flow = rte_cpu_to_be_32((vtc & ~(0x3fu << 22)) | (std::uint32_t{ctx.dscp} << 22));
    ip6->hop_limits = static_cast<std::uint8_t>(ip6->hop_limits - 1);
    std::memcpy(ip6->src_addr, newSrc, 16);
    std::memcpy(ip6->dst_addr, next.bytes.data(), 16);
    std::memcpy(&udp->src_port, &portsAfter, 4);
    // IPv6 requires a UDP checksum: never 0 on the wire.
    const std::uint16_t c = csumApply(udp->dgram_cksum, delta);
    udp->dgram_cksum = c == 0 ? 0xffff : c;
  }
  eth = retag(m, p, ctx.vlan[out], ctx.dscp);
  if (eth == nullptr) return Verdict::txFull;  // no headroom for the tag (never from a PMD)
  return transmit(m, eth, mac, egress, ctx, tx, fc, counters, *rule, realm,
                  udpLen - sizeof(rte_udp_hdr));
}

// An IPv4/UDP datagram for one of our ports, as the common case has it: one segment, at
// most one 802.1Q tag (the realm's), no IP options, not a fragment, TTL above 1, lengths
// consistent. Parsed once per packet (the burst's first pass, which also prefetches its
// flow state). Anything else goes to processOne, which gives it its verdict.
struct Media4 {
  rte_ipv4_hdr* ip;
  std::uint32_t index;  // flow slot
  std::uint8_t realm;
  std::uint8_t l2;      // 14, or 18 with a tag
};

[[gnu::always_inline]] inline bool parseMedia4(rte_mbuf* m, const FastPathContext& ctx,
                                               Media4& out) noexcept {
  auto* data = rte_pktmbuf_mtod(m, std::uint8_t*);
  const std::uint32_t length = rte_pktmbuf_data_len(m);
  if (m->nb_segs != 1 || length < sizeof(rte_ether_hdr) + sizeof(rte_vlan_hdr) + 28) return false;
  std::uint16_t type = reinterpret_cast<const rte_ether_hdr*>(data)->ether_type;
  std::uint32_t l2 = sizeof(rte_ether_hdr);
  std::uint16_t vlan = 0;
  if (type == kEthVlan) {
    const auto* tag = reinterpret_cast<const rte_vlan_hdr*>(data + sizeof(rte_ether_hdr));
    type = tag->eth_proto;
    vlan = rte_be_to_cpu_16(tag->vlan_tci) & kVlanIdMask;
    l2 += sizeof(rte_vlan_hdr);
  }
  if (type != kEthIpv4) return false;
  auto* ip = reinterpret_cast<rte_ipv4_hdr*>(data + l2);
  const auto* udp = reinterpret_cast<const rte_udp_hdr*>(ip + 1);
  const std::uint32_t total = rte_be_to_cpu_16(ip->total_length);
  if (ip->version_ihl != 0x45 || (ip->fragment_offset & kFragMask) != 0 ||
      ip->next_proto_id != kUdp || ip->time_to_live <= 1 || total < 28 || l2 + total > length ||
      rte_be_to_cpu_16(udp->dgram_len) != total - 20)
    return false;
  unsigned realm;
  if (!ctx.flows->slotOf4(ip->dst_addr, rte_be_to_cpu_16(udp->dst_port), realm, out.index) ||
      ctx.vlan[realm] != vlan)
    return false;
  out.ip = ip;
  out.realm = static_cast<std::uint8_t>(realm);
  out.l2 = static_cast<std::uint8_t>(l2);
  return true;
}

// sourceAllowed for an IPv4 source (as stored) of a `direct` rule, whose prefixes are all
// IPv4: from the rule's first line when they fit there.
[[gnu::always_inline]] inline bool sourceAllowed4(const FlowRule& rule, std::uint32_t source,
                                                  std::uint16_t portBe) noexcept {
  if (rule.latch || rule.prefixCount > FlowRule::kInlinePrefixes4)
    return sourceAllowed(rule, v4Word(source), 0, portBe);
  for (std::uint16_t i = 0; i < rule.prefixCount; ++i)
    if (rule.prefixes4[i].contains(source)) return true;
  return false;
}

// A rule towards a latching side: its latched address and port once it has latched, with
// the realm's gateway as next hop (nullptr when on link); else the SDP peer as the rule has
// it. False without either. Out of line: trunk calls never come here.
[[gnu::noinline]] bool latchedTarget4(const FlowRule& rule, const FlowTable& flows, unsigned out,
                                      std::uint32_t& target4, std::uint16_t& targetPortBe,
                                      const NeighbourTable::Slot*& hop, bool& latched) noexcept {
  std::uint64_t d0, d1;
  if (!destination(rule, d0, d1, targetPortBe, latched)) return false;
  if (latched) {
    target4 = wordV4(d0);
    hop = flows.gatewayFor4(out, target4);
  }
  return true;
}

// A parsed IPv4 datagram whose rule is `direct`, to the SDP peer or to a latching side's
// latched address behind the realm's gateway, whose MAC is known: trunk and subscriber-line
// calls, with the checksum updates mostly precomputed in the rule (FlowRule::ipv4HeaderSum).
// Any other case goes to processOne before anything is changed (no destination yet, an
// on-link latched destination, an unresolved next hop).
inline Verdict forwardMedia4(rte_mbuf* m, const Media4& p, const FlowRule* rule, unsigned rxPort,
                             const FastPathContext& ctx, WorkerCounters& counters,
                             std::uint64_t now, TxBatch& tx) noexcept {
  if (rule == nullptr || !rule->direct) return processOne(m, rxPort, ctx, counters, now, tx);
  const FlowTable& flows = *ctx.flows;
  const unsigned realm = p.realm;
  const unsigned out = realm ^ 1u;
  // Where to: a latching side's latched source once it has one, through the realm's
  // gateway (an on-link one is left to processOne's neighbour lookup); else the SDP peer.
  std::uint32_t target4;
  std::memcpy(&target4, rule->peer.bytes.data(), 4);
  std::uint16_t targetPortBe = rule->peerPortBe;
  const NeighbourTable::Slot* hop = rule->peerNeighbour;
  bool latchedTarget = false;
  if (rule->peerLatch &&
      !latchedTarget4(*rule, flows, out, target4, targetPortBe, hop, latchedTarget))
    return processOne(m, rxPort, ctx, counters, now, tx);
  if (hop == nullptr) return processOne(m, rxPort, ctx, counters, now, tx);
  const std::uint64_t mac = hop->mac.load(std::memory_order_acquire);
  if (mac == 0) return processOne(m, rxPort, ctx, counters, now, tx);
  rte_ipv4_hdr* ip = p.ip;
  auto* udp = reinterpret_cast<rte_udp_hdr*>(ip + 1);
  FlowCounters& fc = flows.counters(counters.workerId, realm, p.index);
  const std::uint32_t source = ip->src_addr;
  const std::uint16_t sourcePort = udp->src_port;
  if (!sourceAllowed4(*rule, source, sourcePort)) {
    countFlowDrop(fc, *rule, counters);
    return Verdict::sourceNotAllowed;
  }
  fc.lastSeen.store(now, std::memory_order_relaxed);
  const unsigned egress = ctx.egressPort[out];

  const std::uint16_t tosBefore = load16(ip);
  const std::uint16_t tosAfter = rte_cpu_to_be_16(static_cast<std::uint16_t>(
      (rte_be_to_cpu_16(tosBefore) & 0xff03u) | (std::uint32_t{ctx.dscp} << 2)));
  const std::uint16_t ttlAfter = rte_cpu_to_be_16(
      static_cast<std::uint16_t>(rte_be_to_cpu_16(load16(&ip->time_to_live)) - 0x100u));
  const std::uint64_t sourceGone = static_cast<std::uint32_t>(~source);
  std::uint64_t ipDelta = rule->ipv4HeaderSum + sourceGone + csumDelta16(tosBefore, tosAfter);
  std::uint64_t udpDelta = rule->ipv4UdpSum + sourceGone + static_cast<std::uint16_t>(~sourcePort);
  if (latchedTarget) {  // the rule's sums are taken with `peer`
    std::uint32_t peer4;
    std::memcpy(&peer4, rule->peer.bytes.data(), 4);
    const std::uint64_t moved = csumDelta32(peer4, target4);
    ipDelta += moved;
    udpDelta += moved + csumDelta16(rule->peerPortBe, targetPortBe);
  }
  ip->hdr_checksum = csumApply(ip->hdr_checksum, ipDelta);
  if (udp->dgram_cksum != 0) {  // 0: the sender sent none, and none it stays
    const std::uint16_t c = csumApply(udp->dgram_cksum, udpDelta);
    udp->dgram_cksum = c == 0 ? 0xffff : c;
  }
  std::uint64_t addresses;  // src_addr, then dst_addr, as stored
  const std::uint32_t newSource = flows.address4(out);
  std::memcpy(&addresses, &newSource, 4);
  std::memcpy(reinterpret_cast<std::uint8_t*>(&addresses) + 4, &target4, 4);
  std::uint32_t ports;
  std::memcpy(&ports, &rule->srcPortBe, 2);
  std::memcpy(reinterpret_cast<std::uint8_t*>(&ports) + 2, &targetPortBe, 2);
  std::memcpy(ip, &tosAfter, 2);
  std::memcpy(&ip->time_to_live, &ttlAfter, 2);
  std::memcpy(&ip->src_addr, &addresses, 8);
  std::memcpy(&udp->src_port, &ports, 4);

  rte_ether_hdr* eth = rte_pktmbuf_mtod(m, rte_ether_hdr*);
  if (p.l2 != sizeof(rte_ether_hdr) || ctx.vlan[out] != 0) {
    const Packet packet{reinterpret_cast<std::uint8_t*>(eth), rte_pktmbuf_data_len(m), p.l2, 0};
    eth = retag(m, packet, ctx.vlan[out], ctx.dscp);
    if (eth == nullptr) return Verdict::txFull;  // no headroom for the tag (never from a PMD)
  }
  return transmit(m, eth, mac, egress, ctx, tx, fc, counters, *rule, realm,
                  rte_be_to_cpu_16(udp->dgram_len) - sizeof(rte_udp_hdr));
}

inline void prefetchLatched(const FlowRule* rule) noexcept {
  if (rule == nullptr) return;
  if (rule->latch) rte_prefetch0(&rule->entry->latched);
  if (rule->peerLatch && rule->peerEntry != nullptr) rte_prefetch0(&rule->peerEntry->latched);
}

}  // namespace

std::uint32_t writeEthernet(std::uint8_t* data, const rte_ether_addr& dst,
                            const rte_ether_addr& src, std::uint16_t vlan,
                            std::uint16_t etherTypeBe) noexcept {
  auto* eth = reinterpret_cast<rte_ether_hdr*>(data);
  eth->dst_addr = dst;
  eth->src_addr = src;
  if (vlan == 0) {
    eth->ether_type = etherTypeBe;
    return sizeof(rte_ether_hdr);
  }
  eth->ether_type = kEthVlan;
  auto* tag = reinterpret_cast<rte_vlan_hdr*>(eth + 1);
  tag->vlan_tci = rte_cpu_to_be_16(vlan);
  tag->eth_proto = etherTypeBe;
  return sizeof(rte_ether_hdr) + sizeof(rte_vlan_hdr);
}

std::uint64_t macToWord(const rte_ether_addr& mac) noexcept {
  std::uint64_t word = 0;
  std::memcpy(&word, mac.addr_bytes, RTE_ETHER_ADDR_LEN);
  return word;
}

void forwardBurst(rte_mbuf** pkts, std::uint16_t n, unsigned rxPort, const FastPathContext& ctx,
                  WorkerCounters& counters, std::uint64_t now, TxBatch& tx) noexcept {
  std::array<std::uint32_t, kDropReasons> drops{};
  std::uint32_t forwarded = 0, unresolved = 0;
  std::array<rte_mbuf*, kBurst> dropped;
  std::uint16_t droppedCount = 0;
  // The first pass parses each packet and prefetches its slot and this worker's counters
  // (known from the port alone); the second loads the rules and prefetches them; the third
  // forwards. The passes hide the dependent loads across the burst.
  const FlowTable& flows = *ctx.flows;
  std::array<Media4, kBurst> media;
  std::array<bool, kBurst> parsed;
  for (std::uint16_t i = 0; i < n; ++i) {
    parsed[i] = parseMedia4(pkts[i], ctx, media[i]);
    if (!parsed[i]) continue;
    rte_prefetch0(flows.slot(media[i].realm, media[i].index));
    rte_prefetch0(&flows.counters(counters.workerId, media[i].realm, media[i].index));
  }
  std::array<const FlowRule*, kBurst> rules;
  for (std::uint16_t i = 0; i < n; ++i) {
    rules[i] = parsed[i] ? flows.slot(media[i].realm, media[i].index)->load(std::memory_order_acquire)
                         : nullptr;
    if (rules[i] == nullptr) continue;
    rte_prefetch0(rules[i]);
    rte_prefetch0(reinterpret_cast<const std::uint8_t*>(rules[i]) + 64);
  }
  // A latching rule reads a third place, the latched source of its flow or of its peer's:
  // fetched kLatchAhead packets ahead, from the rules the second pass brought in.
  constexpr std::uint16_t kLatchAhead = 4;
  for (std::uint16_t i = 0; i < n && i < kLatchAhead; ++i) prefetchLatched(rules[i]);
  for (std::uint16_t i = 0; i < n; ++i) {
    if (i + kLatchAhead < n) prefetchLatched(rules[i + kLatchAhead]);
    const Verdict v = parsed[i] ? forwardMedia4(pkts[i], media[i], rules[i], rxPort, ctx, counters, now, tx)
                                : processOne(pkts[i], rxPort, ctx, counters, now, tx);
    switch (v) {
      case Verdict::forwarded: ++forwarded; break;
      case Verdict::consumed: break;
      case Verdict::unresolved:
        ++unresolved;
        dropped[droppedCount++] = pkts[i];
        break;
      default:
        ++drops[reasonIndex(v)];
        dropped[droppedCount++] = pkts[i];
        break;
    }
    if (droppedCount == kBurst) {
      rte_pktmbuf_free_bulk(dropped.data(), droppedCount);
      droppedCount = 0;
    }
  }
  if (droppedCount != 0) rte_pktmbuf_free_bulk(dropped.data(), droppedCount);
  if (forwarded != 0) bump(counters.forwarded, forwarded);
  if (unresolved != 0) bump(counters.unresolved, unresolved);
  for (std::size_t r = 0; r < kDropReasons; ++r)
    if (drops[r] != 0) bump(counters.dropped[r], drops[r]);
}

}  // namespace sbc::dataplane::dpdk
