#include "metrics/policy_collector.h"

#include "metrics/call_series.h"

namespace sbc::metrics {
namespace {

prometheus::ClientMetric trunkSample(const std::string& trunk, double value) {
  prometheus::ClientMetric sample;
  sample.label.push_back({"trunk", trunk});
  sample.gauge.value = value;
  return sample;
}

}  // namespace

std::vector<prometheus::MetricFamily> PolicyCollector::Collect() const {
  auto active = sampledFamily(FamilyId::trunkActiveCalls);
  policy_->forEachTrunkState([&](const policy::TrunkState& state) {
    active.metric.push_back(trunkSample(state.name, state.calls.active()));
  });

  auto limit = sampledFamily(FamilyId::trunkCallLimit);
  const auto snapshot = policy_->current();
  for (std::size_t i = 0; i < snapshot->trunkCount(); ++i) {
    const auto& trunk = snapshot->trunk(i);
    limit.metric.push_back(trunkSample(trunk.name, trunk.maxConcurrentCalls));
  }
  auto lines = sampledFamily(FamilyId::lineActiveCalls);
  prometheus::ClientMetric lineCalls;
  lineCalls.gauge.value = policy_->activeLineCalls();
  lines.metric.push_back(lineCalls);
  return {std::move(active), std::move(limit), std::move(lines)};
}

void exposeTrunkSeries(Metrics& metrics, const policy::Snapshot& snapshot) {
  auto& admissions = metrics.counter(FamilyId::admissionTotal);
  for (std::size_t i = 0; i < snapshot.trunkCount(); ++i) {
    for (auto result : {policy::AdmissionResult::admitted, policy::AdmissionResult::overConcurrent,
                        policy::AdmissionResult::overRate}) {
      admissions.Add({{"trunk", snapshot.trunk(i).name}, {"result", policy::toString(result)}});
    }
  }
  exposeCallSeries(metrics, snapshot);
}

}  // namespace sbc::metrics
