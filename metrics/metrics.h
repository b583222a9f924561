#pragma once
// Owns the prometheus-cpp registry and the HTTP exposer. Families are created from the one
// list in families.h; nothing else names a metric.

#include <memory>
#include <string>
#include <variant>
#include <vector>

#include <prometheus/collectable.h>
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include "metrics/families.h"

namespace prometheus {
class Exposer;
}

namespace sbc::metrics {

class Metrics {
 public:
  Metrics();
  ~Metrics();
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  // Stored families only; asking for a family of another kind or a sampled one aborts
  // (a programming error, caught by the first test that touches it).
  prometheus::Family<prometheus::Counter>& counter(FamilyId id);
  prometheus::Family<prometheus::Gauge>& gauge(FamilyId id);
  prometheus::Family<prometheus::Histogram>& histogram(FamilyId id);

  // A collector for sampled families, asked at every scrape.
  void addCollector(std::shared_ptr<prometheus::Collectable> collector);

  // Starts serving /metrics on "host:port" ("[v6]:port"; port 0 picks a free one).
  // Returns the bound "host:port". Throws std::runtime_error when it cannot bind.
  std::string serve(const std::string& listenAddress);

  // The registry and collectors rendered in the text exposition format (tests, sbcctl).
  std::string render() const;

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  using FamilyRef = std::variant<std::monostate, prometheus::Family<prometheus::Counter>*,
                                 prometheus::Family<prometheus::Gauge>*,
                                 prometheus::Family<prometheus::Histogram>*>;
  std::vector<FamilyRef> families_;  // indexed by FamilyId; points into registry_
  std::vector<std::shared_ptr<prometheus::Collectable>> collectors_;
  std::unique_ptr<prometheus::Exposer> exposer_;
};

// Helper for collectors: an empty family of a sampled spec, ready for samples.
prometheus::MetricFamily sampledFamily(FamilyId id);

}  // namespace sbc::metrics
