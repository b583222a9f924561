#include "signaling/dial_plan.h"

#include <algorithm>
#include <functional>

namespace sbc::signaling {

DialPlan::DialPlan(const std::vector<config::Trunk>& trunks) {
  for (std::size_t index = 0; index < trunks.size(); ++index) {
    for (const auto& prefix : trunks[index].dialPrefixes) {
      trunkByPrefix_.emplace(prefix, index);
      lengths_.push_back(prefix.size());
    }
  }
  std::sort(lengths_.begin(), lengths_.end(), std::greater<>());
  lengths_.erase(std::unique(lengths_.begin(), lengths_.end()), lengths_.end());
}

// One lookup per distinct prefix length (a handful), not one per prefix.
std::optional<std::size_t> DialPlan::route(std::string_view user) const {
  for (const std::size_t length : lengths_) {
    if (length > user.size()) continue;
    const auto found = trunkByPrefix_.find(user.substr(0, length));
    if (found != trunkByPrefix_.end()) return found->second;
  }
  return std::nullopt;
}

}  // namespace sbc::signaling
