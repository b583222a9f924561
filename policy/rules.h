#pragma once
// The policy's own view of the configuration. config/ translates a Config into this, so
// policy/ depends on nothing but the standard library.

#include <cstdint>
#include <string>
#include <vector>

#include "policy/ip.h"

namespace sbc::policy {

struct TrunkRule {
  std::string name;
  std::vector<IpPrefix> sourcePrefixes;
  std::uint32_t maxConcurrentCalls = 0;
  // New calls per second sustained, and how many may arrive back to back.
  double maxCallsPerSecond = 0;
  std::uint32_t callRateBurst = 1;
};

struct LineRule {
  std::uint32_t maxConcurrentCalls = 2;
};

struct Rules {
  std::vector<TrunkRule> trunks;
  LineRule lines;
};

}  // namespace sbc::policy
