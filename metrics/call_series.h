#pragma once
// The per-call families, sbc_calls_total{trunk,direction,result} and
// sbc_call_setup_seconds{trunk,direction}: their label values and a cache of their series.
// Every call on a trunk is counted once, when it is over, with one result; its setup time
// (initial INVITE received to final response sent) is observed once, so the histogram's
// _count equals the sum of sbc_calls_total over results for the same trunk and direction.

#include <array>
#include <cstddef>
#include <map>
#include <string>
#include <utility>

#include <prometheus/counter.h>
#include <prometheus/histogram.h>

#include "metrics/metrics.h"
#include "policy/policy.h"

namespace sbc::metrics {

// Who sent the initial INVITE: the trunk (towards the core) or the core (towards the trunk);
// for a subscriber line's call, the line (towards the core) or the core (towards the line).
enum class CallDirection : unsigned char { fromTrunk, toTrunk, fromLine, toLine };
inline constexpr std::size_t kCallDirectionCount = 4;

enum class CallResult : unsigned char {
  answered,      // answered, then ended by a BYE from either side
  mediaTimeout,  // answered, ended by the SBC because its media stopped
  aborted,       // ended by the SBC itself: drain, no ACK for the 2xx, unusable SDP, error
  cancelled,     // the caller gave up (CANCEL, or BYE) before the answer
  failed,        // the callee answered with a final failure (3xx-6xx but 408)
  timeout,       // the callee never answered in time (408: Timer B or the callee's own)
  refused,       // the SBC refused it before relaying: ceiling, rate, bad SDP, max hops, ports
};
inline constexpr std::size_t kCallResultCount = 7;

const char* toString(CallDirection direction);
const char* toString(CallResult result);

// Upper bounds of sbc_call_setup_seconds: refusals take milliseconds, answered calls
// include the callee's ringing (seconds to a minute).
const prometheus::Histogram::BucketBoundaries& callSetupBuckets();

// The series of one trunk and direction, looked up once: prometheus-cpp's Family::Add
// hashes a label map on every call.
struct CallSeries {
  std::array<prometheus::Counter*, kCallResultCount> results{};
  prometheus::Histogram* setupSeconds = nullptr;

  void count(CallResult result) const {
    results[static_cast<std::size_t>(result)]->Increment();
  }
};

// Not thread-safe: one per signaling thread. Series stay valid for the registry's life.
class CallSeriesCache {
 public:
  explicit CallSeriesCache(Metrics& metrics) : metrics_(metrics) {}
  const CallSeries& of(const std::string& trunk, CallDirection direction);

 private:
  Metrics& metrics_;
  std::map<std::pair<std::string, CallDirection>, CallSeries> series_;
};

// Creates every trunk's call series at zero (both directions, every result), so a dashboard
// sees them before the first call. Thread-safe (the registry locks).
void exposeCallSeries(Metrics& metrics, const policy::Snapshot& snapshot);

}  // namespace sbc::metrics
