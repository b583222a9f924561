#pragma once
// Per-worker fast-path counters. Each worker owns one WorkerCounters (cache-aligned) and is
// its only writer: a counter moves by a relaxed load of its own value and a relaxed store
// (no read-modify-write, no lock). Readers (metrics scrape, tests) sum over workers.

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>

#include "dataplane/media_relay.h"

namespace sbc::dataplane::dpdk {

inline constexpr std::size_t kMaxWorkers = 8;
inline constexpr std::size_t kMaxLabels = 1024;  // label 0 is "" (line calls)
inline constexpr std::size_t kDropReasons = static_cast<std::size_t>(DropReason::count);

using Counter = std::atomic<std::uint64_t>;

// Called only by the counter's owning worker.
inline void bump(Counter& counter, std::uint64_t by = 1) noexcept {
  counter.store(counter.load(std::memory_order_relaxed) + by, std::memory_order_relaxed);
}
inline std::uint64_t read(const Counter& counter) noexcept {
  return counter.load(std::memory_order_relaxed);
}

struct LabelCounters {
  std::array<Counter, kRealmCount> packets{};  // indexed by the realm packets came from
  std::array<Counter, kRealmCount> bytes{};
  Counter dropped{};
};

struct alignas(64) WorkerCounters {
  explicit WorkerCounters(unsigned id = 0) : workerId(id) {}
  unsigned workerId;  // index of this worker's per-flow counters and RCU reader id
  std::array<Counter, kDropReasons> dropped{};
  Counter forwarded{};
  Counter unresolved{};      // dropped: next hop's MAC not known yet (an ARP/ND request went out)
  Counter arpReplied{};      // ARP requests for our addresses answered
  Counter arpLearnt{};       // neighbour entries (existing ones only) learnt from ARP
  Counter arpRequested{};    // ARP requests sent to resolve a next hop
  Counter arpIgnored{};      // ARP not for us
  Counter ndAnswered{};      // IPv6 Neighbor Solicitations for our addresses answered
  Counter ndLearnt{};        // neighbour entries learnt from ND
  Counter ndRequested{};     // Neighbor Solicitations sent to resolve a next hop
  Counter ndIgnored{};       // valid ND not for us (other target or destination, unasked)
  Counter ndInvalid{};       // ND failing RFC 4861 7.1 validation (hop limit, checksum...)
  Counter ttlExpired{};      // also counted as malformed
  alignas(64) std::array<LabelCounters, kMaxLabels> labels{};
};

// Per flow slot and worker, in one dense array per worker and realm (32 bytes a slot, so
// workers never share a line and a packet touches one line of it).
struct FlowCounters {
  Counter packets{};
  Counter bytes{};
  Counter dropped{};
  std::atomic<std::uint64_t> lastSeen{0};  // TSC of the last accepted packet
};

}  // namespace sbc::dataplane::dpdk
