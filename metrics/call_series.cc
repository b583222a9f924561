#include "metrics/call_series.h"

namespace sbc::metrics {
namespace {

CallSeries lookUp(Metrics& metrics, const std::string& trunk, CallDirection direction) {
  CallSeries series;
  auto& calls = metrics.counter(FamilyId::callsTotal);
  for (std::size_t result = 0; result < kCallResultCount; ++result) {
    series.results[result] =
        &calls.Add({{"trunk", trunk},
                    {"direction", toString(direction)},
                    {"result", toString(static_cast<CallResult>(result))}});
  }
  series.setupSeconds = &metrics.histogram(FamilyId::callSetupSeconds)
                             .Add({{"trunk", trunk}, {"direction", toString(direction)}},
                                  callSetupBuckets());
  return series;
}

}  // namespace

const char* toString(CallDirection direction) {
  switch (direction) {
    case CallDirection::fromTrunk: return "from_trunk";
    case CallDirection::toTrunk: return "to_trunk";
    case CallDirection::fromLine: return "from_line";
    case CallDirection::toLine: return "to_line";
  }
  return "?";
}

const char* toString(CallResult result) {
  switch (result) {
    case CallResult::answered: return "answered";
    case CallResult::mediaTimeout: return "media_timeout";
    case CallResult::aborted: return "aborted";
    case CallResult::cancelled: return "cancelled";
    case CallResult::failed: return "failed";
    case CallResult::timeout: return "timeout";
    case CallResult::refused: return "refused";
  }
  return "?";
}

const prometheus::Histogram::BucketBoundaries& callSetupBuckets() {
  static const prometheus::Histogram::BucketBoundaries buckets = {
      0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 60};
  return buckets;
}

const CallSeries& CallSeriesCache::of(const std::string& trunk, CallDirection direction) {
  const auto key = std::make_pair(trunk, direction);
  auto found = series_.find(key);
  if (found == series_.end()) {
    found = series_.emplace(key, lookUp(metrics_, trunk, direction)).first;
  }
  return found->second;
}

void exposeCallSeries(Metrics& metrics, const policy::Snapshot& snapshot) {
  for (std::size_t i = 0; i < snapshot.trunkCount(); ++i) {
    for (const auto direction : {CallDirection::fromTrunk, CallDirection::toTrunk}) {
      lookUp(metrics, snapshot.trunk(i).name, direction);
    }
  }
}

}  // namespace sbc::metrics
