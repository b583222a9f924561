#pragma once
// The DPDK relay's per-packet work, as a pure function over a burst (VPP / l3fwd style):
// parse, look up, filter, rewrite, and sort into per-port transmit batches. The worker loop
// (dpdk_relay.cc) does rx_burst → forwardBurst → tx_burst; tests call it on crafted mbufs.

#include <rte_ether.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>

#include <array>
#include <cstdint>

#include "dataplane/dpdk/counters.h"
#include "dataplane/dpdk/flow_table.h"
#include "dataplane/dpdk/neighbour_table.h"

namespace sbc::dataplane::dpdk {

inline constexpr std::uint16_t kBurst = 32;
inline constexpr std::size_t kMaxPorts = 4;

// One transmit batch per port. A burst of at most kBurst packets yields at most one
// transmitted packet per received one, so a batch never overflows within a burst.
struct TxBatch {
  std::array<std::array<rte_mbuf*, kBurst>, kMaxPorts> pkts{};
  std::array<std::uint16_t, kMaxPorts> count{};
  bool push(unsigned port, rte_mbuf* m) noexcept {
    if (count[port] == kBurst) return false;
    pkts[port][count[port]++] = m;
    return true;
  }
};

// Immutable while workers run.
struct FastPathContext {
  const FlowTable* flows = nullptr;
  NeighbourTable* neighbours = nullptr;
  unsigned portCount = 1;
  std::array<std::uint8_t, kRealmCount> egressPort{};  // per realm: index into the ports
  std::array<rte_ether_addr, kMaxPorts> portMac{};
  std::uint8_t dscp = 46;
  // Per realm: the 802.1Q VLAN id its media and ARP/ND are received and sent with on its
  // port; 0: untagged (a priority tag, VLAN id 0, is taken as untagged).
  std::array<std::uint16_t, kRealmCount> vlan{};
  rte_mempool* arpPool = nullptr;       // where ARP requests and ND solicitations come from;
                                        // nullptr: none sent
  std::uint64_t arpRetryCycles = 0;     // at most one ARP/ND request per neighbour this often
};

// Called on a worker lcore; lock-free, no heap allocation, no syscall, no exception.
// Takes ownership of pkts[0..n): each is either appended to `tx` (forwarded, or an ARP
// reply or ND advertisement on the receiving port) or freed and counted. `rxPort` indexes
// ctx.portMac.
void forwardBurst(rte_mbuf** pkts, std::uint16_t n, unsigned rxPort, const FastPathContext& ctx,
                  WorkerCounters& counters, std::uint64_t now, TxBatch& tx) noexcept;

// Writes an Ethernet header at `data`, with an 802.1Q tag (priority 0) when `vlan` is not 0,
// for frames the relay makes itself (ARP requests, neighbour solicitations). Returns its
// length (14 or 18). `etherTypeBe` in network order.
std::uint32_t writeEthernet(std::uint8_t* data, const rte_ether_addr& dst,
                            const rte_ether_addr& src, std::uint16_t vlan,
                            std::uint16_t etherTypeBe) noexcept;

// 48-bit MAC -> the neighbour table's word (its first 6 bytes as stored).
std::uint64_t macToWord(const rte_ether_addr& mac) noexcept;

}  // namespace sbc::dataplane::dpdk
