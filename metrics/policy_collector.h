#pragma once
// Samples the policy's live trunk state at scrape time: sbc_trunk_active_calls and
// sbc_trunk_call_limit are read from the atomics, never copied into the registry.

#include <memory>
#include <vector>

#include <prometheus/collectable.h>

#include "metrics/metrics.h"
#include "policy/policy.h"

namespace sbc::metrics {

class PolicyCollector : public prometheus::Collectable {
 public:
  explicit PolicyCollector(std::shared_ptr<const policy::Policy> policy)
      : policy_(std::move(policy)) {}

  // Called on an exposer thread; reads atomics and the current snapshot only.
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  std::shared_ptr<const policy::Policy> policy_;
};

// Creates every trunk's admission and call series at zero, so a dashboard sees a trunk
// before its first call. Call after each publish.
void exposeTrunkSeries(Metrics& metrics, const policy::Snapshot& snapshot);

}  // namespace sbc::metrics
