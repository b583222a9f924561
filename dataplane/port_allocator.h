#pragma once
// Even RTP ports of one realm's range (RTCP takes port + 1). A released port rests in
// quarantine before reuse, so late packets of an old call never reach a new one.
// Signaling thread only; O(1) per operation, no allocation after construction.

#include <chrono>
#include <cstdint>
#include <optional>
#include <vector>

namespace sbc::dataplane {

class PortAllocator {
 public:
  using Clock = std::chrono::steady_clock;

  PortAllocator(std::uint16_t portMin, std::uint16_t portMax,
                std::chrono::milliseconds quarantine);

  // The next free even port (least recently released first), or nullopt when every port
  // is in use or quarantined.
  std::optional<std::uint16_t> allocate(Clock::time_point now = Clock::now());
  // Gives a port back; it becomes allocatable after the quarantine.
  void release(std::uint16_t port, Clock::time_point now = Clock::now());

  std::size_t capacity() const noexcept { return capacity_; }
  std::size_t inUse() const noexcept { return inUse_; }

 private:
  struct Resting {
    std::uint16_t port;
    Clock::time_point until;
  };
  std::uint16_t portMin_;
  std::size_t capacity_;
  std::chrono::milliseconds quarantine_;
  // Two FIFO rings of `capacity_` entries: a port is in exactly one of free_, resting_
  // or in use, so neither can overflow. Release order is expiry order.
  std::vector<std::uint16_t> free_;
  std::size_t freeHead_ = 0;
  std::size_t freeCount_ = 0;
  std::vector<Resting> resting_;
  std::size_t restingHead_ = 0;
  std::size_t restingCount_ = 0;
  std::vector<bool> allocated_;  // guards against double release
  std::size_t inUse_ = 0;
};

}  // namespace sbc::dataplane
