#include "dataplane/port_allocator.h"

#include <stdexcept>

namespace sbc::dataplane {

PortAllocator::PortAllocator(std::uint16_t portMin, std::uint16_t portMax,
                             std::chrono::milliseconds quarantine)
    : portMin_(static_cast<std::uint16_t>((portMin + 1) & ~1)), quarantine_(quarantine) {
  // The last usable RTP port needs its RTCP port (+1) inside the range too.
  if (portMax < portMin_ + 1) throw std::invalid_argument("media port range holds no RTP/RTCP pair");
  capacity_ = static_cast<std::size_t>(portMax - portMin_ + 1) / 2;
  free_.resize(capacity_);
  resting_.resize(capacity_);
  allocated_.assign(capacity_, false);
  for (std::size_t i = 0; i < capacity_; ++i) {
    free_[i] = static_cast<std::uint16_t>(portMin_ + 2 * i);
  }
  freeCount_ = capacity_;
}

std::optional<std::uint16_t> PortAllocator::allocate(Clock::time_point now) {
  while (restingCount_ > 0 && resting_[restingHead_].until <= now) {
    free_[(freeHead_ + freeCount_) % capacity_] = resting_[restingHead_].port;
    ++freeCount_;
    restingHead_ = (restingHead_ + 1) % capacity_;
    --restingCount_;
  }
  if (freeCount_ == 0) return std::nullopt;
  const std::uint16_t port = free_[freeHead_];
  freeHead_ = (freeHead_ + 1) % capacity_;
  --freeCount_;
  allocated_[(port - portMin_) / 2] = true;
  ++inUse_;
  return port;
}

void PortAllocator::release(std::uint16_t port, Clock::time_point now) {
  if (port < portMin_ || (port - portMin_) % 2 != 0) return;
  const std::size_t index = static_cast<std::size_t>(port - portMin_) / 2;
  if (index >= capacity_ || !allocated_[index]) return;  // not ours, or released twice
  allocated_[index] = false;
  --inUse_;
  resting_[(restingHead_ + restingCount_) % capacity_] = {port, now + quarantine_};
  ++restingCount_;
}

}  // namespace sbc::dataplane
