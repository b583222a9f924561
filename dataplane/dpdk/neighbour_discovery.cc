#include "dataplane/dpdk/neighbour_discovery.h"

#include <netinet/in.h>
#include <rte_byteorder.h>
#include <rte_ip.h>

#include <cstddef>
#include <cstring>

namespace sbc::dataplane::dpdk {
namespace {

// DPDK 22.11's rte_icmp.h describes ICMPv4 echo only: the ND message layout is ours.
// Solicitation and advertisement share it (RFC 4861 4.3, 4.4); options follow.
struct NdMessage {
  std::uint8_t type;
  std::uint8_t code;
  rte_be16_t checksum;
  rte_be32_t flags;  // reserved in a solicitation
  std::uint8_t target[16];
} __attribute__((packed));
static_assert(sizeof(NdMessage) == 24);

// A link-layer address option for Ethernet (RFC 4861 4.6.1): 8 bytes, length 1.
struct LinkLayerOption {
  std::uint8_t type;
  std::uint8_t length;  // in units of 8 bytes
  rte_ether_addr mac;
};
static_assert(sizeof(LinkLayerOption) == 8);

constexpr std::uint8_t kSolicitation = 135;
constexpr std::uint8_t kAdvertisement = 136;
constexpr std::uint8_t kSourceLinkLayer = 1;
constexpr std::uint8_t kTargetLinkLayer = 2;
constexpr std::uint8_t kNdHopLimit = 255;
constexpr rte_be32_t kSolicitedFlag = RTE_BE32(0x40000000);
constexpr rte_be32_t kOverrideFlag = RTE_BE32(0x20000000);
// What the SBC sends: the message and one link-layer option.
constexpr std::uint16_t kNdLength = sizeof(NdMessage) + sizeof(LinkLayerOption);

RawAddress fromBytes(const std::uint8_t* bytes) noexcept {
  RawAddress a;
  std::memcpy(a.bytes.data(), bytes, 16);
  return a;
}

bool isMulticast(const RawAddress& a) noexcept { return a.bytes[0] == 0xff; }
bool isUnspecified(const RawAddress& a) noexcept { return a.word(0) == 0 && a.word(1) == 0; }

// Whether `a` is the IPv6 media address of a realm this port carries on VLAN `vlan`.
bool ourAddressOnPort(const RawAddress& a, unsigned port, std::uint16_t vlan,
                      const FastPathContext& ctx) noexcept {
  for (unsigned r = 0; r < kRealmCount; ++r) {
    if (!ctx.flows->isV4(r) && ctx.egressPort[r] == port && ctx.vlan[r] == vlan &&
        ctx.flows->address(r) == a)
      return true;
  }
  return false;
}

// Whether a packet to `dst` is for us on this port: one of our addresses, the
// solicited-node group of one, or all-nodes (the groups we listen to).
bool addressedToUs(const RawAddress& dst, unsigned port, std::uint16_t vlan,
                   const FastPathContext& ctx) noexcept {
  if (dst == allNodesGroup()) return true;
  for (unsigned r = 0; r < kRealmCount; ++r) {
    if (ctx.flows->isV4(r) || ctx.egressPort[r] != port || ctx.vlan[r] != vlan) continue;
    const RawAddress& ours = ctx.flows->address(r);
    if (dst == ours || dst == solicitedNodeGroup(ours)) return true;
  }
  return false;
}

// The options after the message: false when one is malformed (length 0 or beyond the end,
// RFC 4861 7.1.1). `linkLayer` gets the address of the last `wanted` option of Ethernet
// size, `found` whether there is one.
bool parseOptions(const std::uint8_t* options, std::uint32_t length, std::uint8_t wanted,
                  rte_ether_addr& linkLayer, bool& found) noexcept {
  found = false;
  std::uint32_t at = 0;
  while (at + 2 <= length) {
    const std::uint32_t size = std::uint32_t{options[at + 1]} * 8;
    if (size == 0 || at + size > length) return false;
    if (options[at] == wanted && size == sizeof(LinkLayerOption)) {
      std::memcpy(linkLayer.addr_bytes, options + at + offsetof(LinkLayerOption, mac),
                  RTE_ETHER_ADDR_LEN);
      found = true;
    }
    at += size;
  }
  return at == length;
}

// Fills the ND message of a packet whose IPv6 header is complete but for its checksum.
void finishMessage(rte_ipv6_hdr* ip, std::uint8_t type, rte_be32_t flags,
                   const RawAddress& target, std::uint8_t optionType,
                   const rte_ether_addr& mac) noexcept {
  auto* nd = reinterpret_cast<NdMessage*>(ip + 1);
  nd->type = type;
  nd->code = 0;
  nd->checksum = 0;
  nd->flags = flags;
  std::memcpy(nd->target, target.bytes.data(), 16);
  auto* option = reinterpret_cast<LinkLayerOption*>(nd + 1);
  option->type = optionType;
  option->length = 1;
  option->mac = mac;
  nd->checksum = rte_ipv6_udptcp_cksum(ip, nd);  // next header 58: no UDP zero rule
}

void fillIpv6(rte_ipv6_hdr* ip, const RawAddress& src, const RawAddress& dst) noexcept {
  ip->vtc_flow = RTE_BE32(0x60000000);
  ip->payload_len = RTE_BE16(kNdLength);
  ip->proto = IPPROTO_ICMPV6;
  ip->hop_limits = kNdHopLimit;
  std::memcpy(ip->src_addr, src.bytes.data(), 16);
  std::memcpy(ip->dst_addr, dst.bytes.data(), 16);
}

NdOutcome drop(rte_mbuf* m, Counter& counter) noexcept {
  bump(counter);
  rte_pktmbuf_free(m);
  return NdOutcome::consumed;
}

// A solicitation for one of our addresses: learn the solicitor if it is a neighbour we
// know of, answer in place (the packet's Ethernet header and VLAN tag are kept, the rest
// rewritten).
NdOutcome answerSolicitation(rte_mbuf* m, std::uint32_t l3, const RawAddress& source,
                             const RawAddress& target, const rte_ether_addr* sourceLinkLayer,
                             unsigned rxPort, const FastPathContext& ctx,
                             WorkerCounters& counters, TxBatch& tx) noexcept {
  // Duplicate address detection (RFC 4861 7.2.4): defend our address to all-nodes, not
  // as solicited, and learn nothing (the sender has no address yet).
  const bool dad = isUnspecified(source);
  auto* eth = rte_pktmbuf_mtod(m, rte_ether_hdr*);
  rte_ether_addr to = eth->src_addr;
  if (dad) {
    to = multicastMac(allNodesGroup());
  } else if (sourceLinkLayer != nullptr) {
    to = *sourceLinkLayer;
    // Only into an entry that exists (a flow's next hop, a neighbour we solicited, a static
    // one): the table never evicts, and anyone on the link can solicit from any number of
    // addresses (RFC 4861 would create an entry; a cache with eviction can afford to).
    if (ctx.neighbours->learn(source, macToWord(to))) bump(counters.ndLearnt);
  }
  const std::uint32_t length = l3 + sizeof(rte_ipv6_hdr) + kNdLength;
  const std::uint32_t have = rte_pktmbuf_data_len(m);
  if (have < length ? rte_pktmbuf_append(m, static_cast<std::uint16_t>(length - have)) == nullptr
                    : rte_pktmbuf_trim(m, static_cast<std::uint16_t>(have - length)) != 0)
    return drop(m, counters.ndIgnored);  // no room (never with 2 KB mbufs)
  eth = rte_pktmbuf_mtod(m, rte_ether_hdr*);
  eth->dst_addr = to;
  eth->src_addr = ctx.portMac[rxPort];
  auto* ip = rte_pktmbuf_mtod_offset(m, rte_ipv6_hdr*, l3);
  fillIpv6(ip, target, dad ? allNodesGroup() : source);
  finishMessage(ip, kAdvertisement, dad ? kOverrideFlag : (kSolicitedFlag | kOverrideFlag),
                target, kTargetLinkLayer, ctx.portMac[rxPort]);
  if (!tx.push(rxPort, m)) return NdOutcome::txFull;
  bump(counters.ndAnswered);
  return NdOutcome::consumed;
}

// An advertisement: learn the target's MAC if we asked for it (RFC 4861 7.2.5: an entry
// must exist), honouring the override flag.
NdOutcome learnAdvertisement(rte_mbuf* m, const NdMessage& nd, const RawAddress& target,
                             const rte_ether_addr* targetLinkLayer, unsigned rxPort,
                             std::uint16_t vlan, const FastPathContext& ctx,
                             WorkerCounters& counters) noexcept {
  if (targetLinkLayer == nullptr || ourAddressOnPort(target, rxPort, vlan, ctx))
    return drop(m, counters.ndIgnored);
  const NeighbourTable::Slot* slot = ctx.neighbours->find(target);
  if (slot == nullptr) return drop(m, counters.ndIgnored);
  const std::uint64_t known = slot->mac.load(std::memory_order_acquire);
  const std::uint64_t mac = macToWord(*targetLinkLayer);
  if ((nd.flags & kOverrideFlag) == 0 && known != 0 && known != (mac | NeighbourTable::kValid))
    return drop(m, counters.ndIgnored);
  if (ctx.neighbours->learn(target, mac)) bump(counters.ndLearnt);
  rte_pktmbuf_free(m);
  return NdOutcome::consumed;
}

}  // namespace

RawAddress solicitedNodeGroup(const RawAddress& address) noexcept {
  RawAddress group;
  group.bytes = {0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0xff, 0, 0, 0};
  std::memcpy(group.bytes.data() + 13, address.bytes.data() + 13, 3);
  return group;
}

rte_ether_addr multicastMac(const RawAddress& group) noexcept {
  rte_ether_addr mac{{0x33, 0x33, 0, 0, 0, 0}};
  std::memcpy(mac.addr_bytes + 2, group.bytes.data() + 12, 4);
  return mac;
}

RawAddress allNodesGroup() noexcept {
  RawAddress group;
  group.bytes = {0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01};
  return group;
}

NdOutcome handleNeighbourDiscovery(rte_mbuf* m, std::uint32_t l3, std::uint16_t vlan,
                                   unsigned rxPort, const FastPathContext& ctx,
                                   WorkerCounters& counters, TxBatch& tx) noexcept {
  auto* ip = rte_pktmbuf_mtod_offset(m, rte_ipv6_hdr*, l3);
  const std::uint32_t length = rte_be_to_cpu_16(ip->payload_len);
  const auto* message = reinterpret_cast<const std::uint8_t*>(ip + 1);
  if (length == 0 || (message[0] != kSolicitation && message[0] != kAdvertisement))
    return NdOutcome::notNd;
  const auto& nd = *reinterpret_cast<const NdMessage*>(message);
  if (length < sizeof(NdMessage) || ip->hop_limits != kNdHopLimit || nd.code != 0 ||
      rte_ipv6_udptcp_cksum_verify(ip, message) != 0)
    return drop(m, counters.ndInvalid);
  const RawAddress target = fromBytes(nd.target);
  const RawAddress source = fromBytes(ip->src_addr);
  const RawAddress destination = fromBytes(ip->dst_addr);
  const bool solicitation = nd.type == kSolicitation;
  rte_ether_addr option;
  bool hasOption;
  if (isMulticast(target) || isMulticast(source) ||
      !parseOptions(message + sizeof(NdMessage), length - sizeof(NdMessage),
                    solicitation ? kSourceLinkLayer : kTargetLinkLayer, option, hasOption))
    return drop(m, counters.ndInvalid);
  const rte_ether_addr* linkLayer = hasOption ? &option : nullptr;
  if (solicitation) {
    // From the unspecified address (duplicate address detection): only to the target's
    // solicited-node group and without a source link-layer option.
    if (isUnspecified(source) && (destination != solicitedNodeGroup(target) || linkLayer != nullptr))
      return drop(m, counters.ndInvalid);
    if (!ourAddressOnPort(target, rxPort, vlan, ctx) ||
        !addressedToUs(destination, rxPort, vlan, ctx))
      return drop(m, counters.ndIgnored);
    return answerSolicitation(m, l3, source, target, linkLayer, rxPort, ctx, counters, tx);
  }
  if (isMulticast(destination) && (nd.flags & kSolicitedFlag) != 0)
    return drop(m, counters.ndInvalid);
  if (!addressedToUs(destination, rxPort, vlan, ctx)) return drop(m, counters.ndIgnored);
  return learnAdvertisement(m, nd, target, linkLayer, rxPort, vlan, ctx, counters);
}

void sendNeighbourSolicitation(const FastPathContext& ctx, WorkerCounters& counters,
                               NeighbourTable::Slot* slot, const RawAddress& source,
                               unsigned port, std::uint16_t vlan, std::uint64_t now,
                               TxBatch& tx) noexcept {
  if (slot == nullptr || ctx.arpPool == nullptr || !slot->requestDue(now, ctx.arpRetryCycles))
    return;
  rte_mbuf* m = rte_pktmbuf_alloc(ctx.arpPool);
  if (m == nullptr) return;
  const std::uint16_t l2 = vlan == 0 ? sizeof(rte_ether_hdr) : sizeof(rte_ether_hdr) + sizeof(rte_vlan_hdr);
  const std::uint16_t frame = l2 + sizeof(rte_ipv6_hdr) + kNdLength;
  auto* data = reinterpret_cast<std::uint8_t*>(rte_pktmbuf_append(m, frame));
  if (data == nullptr) {
    rte_pktmbuf_free(m);
    return;
  }
  const RawAddress target = slot->address;
  const RawAddress group = solicitedNodeGroup(target);
  writeEthernet(data, multicastMac(group), ctx.portMac[port], vlan, RTE_BE16(RTE_ETHER_TYPE_IPV6));
  auto* ip = reinterpret_cast<rte_ipv6_hdr*>(data + l2);
  fillIpv6(ip, source, group);
  finishMessage(ip, kSolicitation, 0, target, kSourceLinkLayer, ctx.portMac[port]);
  if (!tx.push(port, m)) {
    rte_pktmbuf_free(m);
    return;
  }
  bump(counters.ndRequested);
}

}  // namespace sbc::dataplane::dpdk
