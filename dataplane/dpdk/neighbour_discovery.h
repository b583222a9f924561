#pragma once
// IPv6 neighbour discovery (RFC 4861) for the DPDK fast path: what ARP is to IPv4. Answers
// Neighbor Solicitations for the SBC's IPv6 media addresses, learns neighbours from
// Neighbor Advertisements (and from the source link-layer option of solicitations sent to
// us), and solicits the MAC of an unresolved peer or gateway. It learns only into entries
// that exist (next hops of flows, neighbours it solicited, static ones): the table never
// evicts, so nobody on the link may fill it by soliciting from many addresses. The
// neighbour table, its rate limit per neighbour and the pool requests come from are the
// ones ARP uses.

#include <rte_ether.h>
#include <rte_mbuf.h>

#include <cstdint>

#include "dataplane/dpdk/counters.h"
#include "dataplane/dpdk/fast_path.h"
#include "dataplane/dpdk/neighbour_table.h"

namespace sbc::dataplane::dpdk {

enum class NdOutcome : std::uint8_t {
  consumed,  // answered (the packet is in tx, reused for the answer), or learnt from,
             // ignored or invalid (freed); counted in the nd* counters
  txFull,    // the answer did not fit in tx: the caller frees the packet and counts it
  notNd,     // ICMPv6 but neither a solicitation nor an advertisement: untouched
};

// Called on a worker lcore; lock-free, no heap allocation, no syscall. `m` carries ICMPv6
// (next header 58 right after the IPv6 header at offset `l3`) and arrived on `rxPort`; the
// caller has checked the IPv6 version and that the payload length lies within the frame.
// Validates as RFC 4861 7.1.1 / 7.1.2 require (hop limit 255, ICMPv6 checksum, code 0,
// length, target not multicast, option lengths, DAD from the unspecified address only to
// a solicited-node group) and accepts only messages for the media addresses of the realms
// the port carries on the packet's VLAN `vlan` (0: untagged) (addressed to one of them, to
// its solicited-node group or to all-nodes); others are ignored. An answer keeps the tag.
NdOutcome handleNeighbourDiscovery(rte_mbuf* m, std::uint32_t l3, std::uint16_t vlan,
                                   unsigned rxPort, const FastPathContext& ctx,
                                   WorkerCounters& counters, TxBatch& tx) noexcept;

// Called on a worker lcore; lock-free. Sends a Neighbor Solicitation for the address of
// `slot` (its neighbour entry; nullptr: none is sent) from `source` to that address's
// solicited-node group on `port`, with our source link-layer option; at most one per
// neighbour every ctx.arpRetryCycles (shared with ARP); tagged with `vlan` unless 0.
void sendNeighbourSolicitation(const FastPathContext& ctx, WorkerCounters& counters,
                               NeighbourTable::Slot* slot, const RawAddress& source,
                               unsigned port, std::uint16_t vlan, std::uint64_t now,
                               TxBatch& tx) noexcept;

// ff02::1:ffXX:XXXX, the group a node joins for each of its addresses (RFC 4291 2.7.1).
RawAddress solicitedNodeGroup(const RawAddress& address) noexcept;
// 33:33 and the group's last four bytes (RFC 2464 7): the Ethernet address a NIC must
// accept for packets to `group` to arrive.
rte_ether_addr multicastMac(const RawAddress& group) noexcept;
// ff02::1.
RawAddress allNodesGroup() noexcept;

}  // namespace sbc::dataplane::dpdk
