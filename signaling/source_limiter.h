#pragma once
// Bounds the responses sent to sources nobody knows: a fixed table of token buckets keyed
// by a hash of the source address, so a flood from many (possibly spoofed) addresses costs
// bounded memory. Sources that collide share a bucket, which only makes the limit stricter.
// Signaling thread only.

#include <array>
#include <chrono>
#include <cstdint>

#include "policy/ip.h"

namespace sbc::signaling {

class SourceLimiter {
 public:
  using Clock = std::chrono::steady_clock;

  SourceLimiter(double perSecond, double burst) : perSecond_(perSecond), burst_(burst) {}

  // True when a response to `source` is within its budget (and spends one token).
  bool allow(const policy::IpAddress& source, Clock::time_point now = Clock::now());

 private:
  struct Bucket {
    double tokens = 0;
    Clock::time_point refilled{};
    bool used = false;
  };
  static constexpr std::size_t kBuckets = 4096;

  double perSecond_;
  double burst_;
  std::array<Bucket, kBuckets> buckets_{};
};

}  // namespace sbc::signaling
