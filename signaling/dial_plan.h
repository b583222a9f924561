#pragma once
// Routing of calls from the core to a trunk by the Request-URI user: the trunk whose
// dial_prefixes holds the longest prefix of the user wins ("" matches every user).
// Built from the running configuration's trunk table and rebuilt on reload. Pure.

#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"

namespace sbc::signaling {

class DialPlan {
 public:
  DialPlan() = default;
  // Prefixes are unique across trunks (config/ refuses duplicates).
  explicit DialPlan(const std::vector<config::Trunk>& trunks);

  // The index in `trunks` of the trunk the user routes to, or nullopt.
  std::optional<std::size_t> route(std::string_view user) const;

 private:
  std::map<std::string, std::size_t, std::less<>> trunkByPrefix_;
  std::vector<std::size_t> lengths_;  // the distinct prefix lengths, longest first
};

}  // namespace sbc::signaling
