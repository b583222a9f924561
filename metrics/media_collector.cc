#include "metrics/media_collector.h"

#include <string>

#include "metrics/metrics.h"

namespace sbc::metrics {
namespace {

prometheus::ClientMetric counterSample(std::vector<prometheus::ClientMetric::Label> labels,
                                       double value) {
  prometheus::ClientMetric sample;
  sample.label = std::move(labels);
  sample.counter.value = value;
  return sample;
}

constexpr const char* kDirections[dataplane::kRealmCount] = {"access_to_core",
                                                             "core_to_access"};

}  // namespace

std::vector<prometheus::MetricFamily> MediaCollector::Collect() const {
  const dataplane::MediaStats stats = relay_->stats();

  auto packets = sampledFamily(FamilyId::mediaPacketsTotal);
  auto bytes = sampledFamily(FamilyId::mediaBytesTotal);
  auto trunkDropped = sampledFamily(FamilyId::trunkMediaDroppedTotal);
  for (const auto& label : stats.labels) {
    if (label.label.empty()) continue;  // line calls: counted in the totals only
    for (std::size_t from = 0; from < dataplane::kRealmCount; ++from) {
      // Labels in name order, as the registry prints its own series.
      packets.metric.push_back(counterSample(
          {{"direction", kDirections[from]}, {"trunk", label.label}},
          static_cast<double>(label.packets[from])));
      bytes.metric.push_back(counterSample(
          {{"direction", kDirections[from]}, {"trunk", label.label}},
          static_cast<double>(label.bytes[from])));
    }
    trunkDropped.metric.push_back(
        counterSample({{"trunk", label.label}}, static_cast<double>(label.dropped)));
  }

  auto dropped = sampledFamily(FamilyId::mediaDroppedTotal);
  for (std::size_t reason = 0; reason < stats.dropped.size(); ++reason) {
    dropped.metric.push_back(counterSample(
        {{"reason", dataplane::toString(static_cast<dataplane::DropReason>(reason))}},
        static_cast<double>(stats.dropped[reason])));
  }

  // Only a driver that resolves neighbours itself has these (dpdk); the socket driver's
  // kernel does, and the families keep no sample for it rather than a misleading zero.
  auto neighbour = sampledFamily(FamilyId::mediaNeighbourTotal);
  if (stats.neighbours) {
    using Event = dataplane::MediaStats::Neighbours::Event;
    constexpr const char* kEvents[Event::eventCount] = {"answered", "requested", "learnt",
                                                       "ignored", "invalid"};
    for (std::size_t event = 0; event < Event::eventCount; ++event) {
      // Labels in name order, as the registry prints its own series.
      if (event != Event::invalid) {
        neighbour.metric.push_back(
            counterSample({{"event", kEvents[event]}, {"protocol", "arp"}},
                          static_cast<double>(stats.neighbours->arp[event])));
      }
      neighbour.metric.push_back(
          counterSample({{"event", kEvents[event]}, {"protocol", "nd"}},
                        static_cast<double>(stats.neighbours->nd[event])));
    }
    dropped.metric.push_back(counterSample(
        {{"reason", "unresolved"}}, static_cast<double>(stats.neighbours->unresolved)));
  }

  auto neighbourEntries = sampledFamily(FamilyId::mediaNeighbourEntries);
  if (stats.neighbours) {
    prometheus::ClientMetric entries;
    entries.gauge.value = static_cast<double>(stats.neighbours->entries);
    neighbourEntries.metric.push_back(entries);
  }

  auto flows = sampledFamily(FamilyId::mediaFlows);
  prometheus::ClientMetric flowCount;
  flowCount.gauge.value = static_cast<double>(stats.flows);
  flows.metric.push_back(flowCount);

  auto kernelForwarded = sampledFamily(FamilyId::mediaKernelForwardedTotal);
  if (stats.kernelForwarded) {
    kernelForwarded.metric.push_back(counterSample({}, static_cast<double>(*stats.kernelForwarded)));
  }

  return {std::move(packets), std::move(bytes), std::move(dropped), std::move(trunkDropped),
          std::move(neighbour), std::move(neighbourEntries), std::move(flows),
          std::move(kernelForwarded)};
}

}  // namespace sbc::metrics
