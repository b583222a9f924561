#pragma once
// Samples the media relay's per-worker counters at scrape time (the relay sums them).

#include <memory>
#include <vector>

#include <prometheus/collectable.h>

#include "dataplane/media_relay.h"

namespace sbc::metrics {

class MediaCollector : public prometheus::Collectable {
 public:
  explicit MediaCollector(std::shared_ptr<const dataplane::MediaRelay> relay)
      : relay_(std::move(relay)) {}

  // Called on an exposer thread; MediaRelay::stats() only reads counters.
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  std::shared_ptr<const dataplane::MediaRelay> relay_;
};

}  // namespace sbc::metrics
