#include "signaling/source_limiter.h"

#include <algorithm>

namespace sbc::signaling {

bool SourceLimiter::allow(const policy::IpAddress& source, Clock::time_point now) {
  // FNV-1a over the address bytes: cheap and spreads neighbouring addresses.
  std::uint64_t hash = 1469598103934665603ULL;
  for (const auto byte : source.bytes) hash = (hash ^ byte) * 1099511628211ULL;
  Bucket& bucket = buckets_[hash % kBuckets];
  if (!bucket.used) {
    bucket = {burst_, now, true};
  } else {
    const double elapsed = std::chrono::duration<double>(now - bucket.refilled).count();
    bucket.tokens = std::min(burst_, bucket.tokens + std::max(0.0, elapsed) * perSecond_);
    bucket.refilled = now;
  }
  if (bucket.tokens < 1.0) return false;
  bucket.tokens -= 1.0;
  return true;
}

}  // namespace sbc::signaling
