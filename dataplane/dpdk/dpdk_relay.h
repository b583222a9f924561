#pragma once
// The DPDK media relay: MediaRelay over DPDK ports, poll-mode workers on lcores, the
// lock-free flow table of flow_table.h and the fast path of fast_path.h.
//
// Threads: the signaling thread calls the MediaRelay methods; each worker polls its RX
// queue on every port in bursts and backs off when idle; a housekeeping thread reclaims
// retired flow memory after the RCU grace period and scans for media timeouts. Workers
// take no lock; the signaling and housekeeping threads share a mutex (never held by a
// worker, never waiting on one).

#include <rte_ether.h>

#include <chrono>
#include <cstdint>
#include <memory>

#include "dataplane/media_relay.h"
#include "dataplane/relay_settings.h"

namespace sbc::dataplane {

struct DpdkTuning {
  std::uint32_t idleSpins = 512;             // empty polls (rte_pause) before sleeping
  std::chrono::microseconds idleSleep{100};  // then sleep this long per empty poll; 0: spin
  std::chrono::milliseconds arpRetry{200};   // at most one ARP/ND request per next hop this often
  std::chrono::milliseconds housekeeping{20};  // reclaim + media-timeout scan period
  // A neighbour entry no flow's SDP peer holds (made for a latched destination) is freed
  // after this long unused.
  std::chrono::milliseconds neighbourIdle{60000};
  unsigned mbufs = 8191;                     // mbuf pool size
};

// Counters only the DPDK driver has (summed over workers).
struct DpdkStats {
  std::uint64_t forwarded = 0;
  std::uint64_t unresolved = 0;  // dropped while the next hop's MAC was unknown
  std::uint64_t arpReplied = 0, arpRequested = 0, arpLearnt = 0, arpIgnored = 0;
  // IPv6 neighbour discovery: solicitations answered, neighbours learnt, solicitations
  // sent, messages not for us, messages failing validation.
  std::uint64_t ndAnswered = 0, ndLearnt = 0, ndRequested = 0, ndIgnored = 0, ndInvalid = 0;
  std::uint64_t ttlExpired = 0;
  unsigned workers = 0;
};

class DpdkRelay : public MediaRelay {
 public:
  virtual DpdkStats dpdkStats() const = 0;
  // A static neighbour (next hop) entry; ARP and ND learn the others. Control thread.
  virtual bool setNeighbour(const policy::IpAddress& address, const rte_ether_addr& mac) = 0;
};

// Initialises the EAL from dpdk.ealArgs the first time in the process (later calls reuse
// it), sets up dpdk.ports (device names as registered: "net_ring0", "net_af_packet0", or a
// name given to rte_eth_from_rings; text after a comma is ignored) and starts the workers:
// one per EAL worker lcore (-l 0,1: one worker on lcore 1), or one non-EAL thread when the
// EAL has none. Throws std::runtime_error when DPDK cannot be set up.
std::unique_ptr<DpdkRelay> makeDpdkRelay(const RelaySettings& settings, const DpdkSettings& dpdk,
                                         const DpdkTuning& tuning = {});

}  // namespace sbc::dataplane
