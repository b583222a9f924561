#pragma once
// Signaling overload control. When SIP arrives faster than the signaling thread can serve
// it, the datagrams wait in the SIP sockets' receive queues (8 MiB each); past half a
// second of waiting the peers retransmit, every retransmission adds work, and all calls
// fail together (measured: 83,000 of 120,000 calls at 2,000 calls/s, docs/performance.md).
// The queued bytes are the earliest sign of it, so while they stay above a threshold new
// calls are refused with 503 at once and the thread's time goes to the calls it has
// already taken (their in-dialog requests and responses are never refused).

#include <cstddef>
#include <string>
#include <utility>
#include <vector>

namespace sbc::signaling {

// The bytes waiting in a set of UDP sockets' receive queues, as the kernel counts them
// (each datagram with its buffer overhead: about 1-2 KiB for a SIP request on loopback).
class ReceiveBacklog {
 public:
  // The UDP sockets of this process bound to `address`:`port` (numeric host, IPv6
  // without brackets). nta owns its sockets and hands out no descriptors, so they are found
  // by what they are bound to, once after the agents listen.
  static std::vector<int> udpSocketsBoundTo(const std::string& address, unsigned port);

  ReceiveBacklog() = default;
  explicit ReceiveBacklog(std::vector<int> sockets) : sockets_(std::move(sockets)) {}

  // One SO_MEMINFO read per socket; 0 for a socket that cannot be read.
  std::size_t bytes() const;
  bool empty() const { return sockets_.empty(); }

 private:
  std::vector<int> sockets_;
};

// Whether new calls are refused, from the queued bytes seen: on above `thresholdBytes`, off
// again once they are down to half of it (so one busy moment does not flap it). A
// threshold of 0 never refuses.
class OverloadGuard {
 public:
  explicit OverloadGuard(std::size_t thresholdBytes = 0) : threshold_(thresholdBytes) {}

  // The decision for a new call now that `queuedBytes` wait. Returns whether it is refused.
  bool refuse(std::size_t queuedBytes);

  bool overloaded() const { return overloaded_; }
  std::size_t threshold() const { return threshold_; }
  bool enabled() const { return threshold_ > 0; }

 private:
  std::size_t threshold_;
  bool overloaded_ = false;
};

}  // namespace sbc::signaling
