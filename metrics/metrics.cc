#include "metrics/metrics.h"

#include <cstdio>
#include <cstdlib>
#include <stdexcept>

#include <prometheus/exposer.h>
#include <prometheus/text_serializer.h>

namespace sbc::metrics {
namespace {

prometheus::MetricType toPrometheus(Kind kind) {
  switch (kind) {
    case Kind::counter: return prometheus::MetricType::Counter;
    case Kind::gauge: return prometheus::MetricType::Gauge;
    case Kind::histogram: return prometheus::MetricType::Histogram;
  }
  std::abort();
}

// Aborting is right here: a wrong family kind is a bug in sbcd, not an input problem.
[[noreturn]] void wrongFamily(FamilyId id, const char* wanted) {
  std::fprintf(stderr, "internal error: metric family %s is not a stored %s\n",
               std::string(spec(id).name).c_str(), wanted);
  std::abort();
}

}  // namespace

Metrics::Metrics() : registry_(std::make_shared<prometheus::Registry>()) {
  families_.resize(kFamilies.size());
  for (const FamilySpec& family : kFamilies) {
    if (family.source != Source::stored) continue;
    const std::string name(family.name);
    const std::string help(family.help);
    auto& slot = families_[static_cast<std::size_t>(family.id)];
    switch (family.kind) {
      case Kind::counter:
        slot = &prometheus::BuildCounter().Name(name).Help(help).Register(*registry_);
        break;
      case Kind::gauge:
        slot = &prometheus::BuildGauge().Name(name).Help(help).Register(*registry_);
        break;
      case Kind::histogram:
        slot = &prometheus::BuildHistogram().Name(name).Help(help).Register(*registry_);
        break;
    }
  }
}

Metrics::~Metrics() = default;

prometheus::Family<prometheus::Counter>& Metrics::counter(FamilyId id) {
  auto* family =
      std::get_if<prometheus::Family<prometheus::Counter>*>(&families_[static_cast<size_t>(id)]);
  if (family == nullptr) wrongFamily(id, "counter");
  return **family;
}

prometheus::Family<prometheus::Gauge>& Metrics::gauge(FamilyId id) {
  auto* family =
      std::get_if<prometheus::Family<prometheus::Gauge>*>(&families_[static_cast<size_t>(id)]);
  if (family == nullptr) wrongFamily(id, "gauge");
  return **family;
}

prometheus::Family<prometheus::Histogram>& Metrics::histogram(FamilyId id) {
  auto* family = std::get_if<prometheus::Family<prometheus::Histogram>*>(
      &families_[static_cast<size_t>(id)]);
  if (family == nullptr) wrongFamily(id, "histogram");
  return **family;
}

void Metrics::addCollector(std::shared_ptr<prometheus::Collectable> collector) {
  if (exposer_) throw std::logic_error("collectors must be added before serve()");
  collectors_.push_back(std::move(collector));
}

std::string Metrics::serve(const std::string& listenAddress) {
  try {
    exposer_ = std::make_unique<prometheus::Exposer>(listenAddress, 2);
  } catch (const std::exception& e) {
    throw std::runtime_error("cannot serve metrics on " + listenAddress + ": " + e.what());
  }
  exposer_->RegisterCollectable(registry_);
  for (const auto& collector : collectors_) exposer_->RegisterCollectable(collector);
  const auto ports = exposer_->GetListeningPorts();
  if (ports.empty()) throw std::runtime_error("cannot serve metrics on " + listenAddress);
  const auto colon = listenAddress.rfind(':');
  return listenAddress.substr(0, colon) + ":" + std::to_string(ports.front());
}

std::string Metrics::render() const {
  auto families = registry_->Collect();
  for (const auto& collector : collectors_) {
    auto more = collector->Collect();
    families.insert(families.end(), std::make_move_iterator(more.begin()),
                    std::make_move_iterator(more.end()));
  }
  return prometheus::TextSerializer().Serialize(families);
}

prometheus::MetricFamily sampledFamily(FamilyId id) {
  const FamilySpec& family = spec(id);
  prometheus::MetricFamily result;
  result.name = std::string(family.name);
  result.help = std::string(family.help);
  result.type = toPrometheus(family.kind);
  return result;
}

}  // namespace sbc::metrics
