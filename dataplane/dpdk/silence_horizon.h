#pragma once
// Up to when a DPDK worker has read everything that reached its queues: media silence is
// measured up to that moment, not up to the clock. Pure logic, no DPDK, so that it is
// tested on its own.

#include <algorithm>
#include <cstdint>

namespace sbc::dataplane::dpdk {

// What a worker publishes once per poll round (relaxed stores, read by housekeeping).
struct WorkerProgress {
  std::uint64_t roundAt = 0;     // TSC at the start of its latest round
  std::uint64_t caughtUpAt = 0;  // start of its latest round whose RX bursts all came back short
};

// A worker kept from its CPU (descheduled, a paused VM) has not looked at what arrived
// since `roundAt`: streams it serves are not silent for that time, however long it lasts.
// A worker that runs but never empties its queues (overloaded) has read everything older
// than `caughtUpAt` at least; that bound trails the clock by at most `timeout`, so silent
// calls are still reported then, one timeout late. All times are TSC values; a progress
// stamped after `now` was read (or on a vCPU whose TSC runs ahead) counts as `now`.
constexpr std::uint64_t silenceHorizon(std::uint64_t now, const WorkerProgress& progress,
                                       std::uint64_t timeout) {
  const std::uint64_t round = std::min(now, progress.roundAt);
  const std::uint64_t caughtUp = std::min(now, progress.caughtUpAt);
  const std::uint64_t overloadBound = now > timeout ? now - timeout : 0;
  return std::min(round, std::max(caughtUp, overloadBound));
}

}  // namespace sbc::dataplane::dpdk
