// Translation of a validated Config into the policy's own rules type.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <utility>

#include "config/config.h"

namespace sbc::config {

namespace {

// A burst of 0 in the file means "as many as the rate allows in one second", at least 1.
std::uint32_t effectiveBurst(const Trunk& trunk) {
  if (trunk.callRateBurst != 0) {
    return trunk.callRateBurst;
  }
  const double perSecond = std::ceil(trunk.maxCallsPerSecond);
  // The parser bounds the rate to (0, 100000]; the guard keeps a hand-built Config safe.
  if (!(perSecond >= 1.0)) {
    return 1;
  }
  if (perSecond >= 4294967295.0) {
    return UINT32_MAX;
  }
  return std::max<std::uint32_t>(1, static_cast<std::uint32_t>(perSecond));
}

}  // namespace

policy::Rules toPolicyRules(const Config& config) {
  policy::Rules rules;
  rules.trunks.reserve(config.trunks.size());
  for (const Trunk& trunk : config.trunks) {
    policy::TrunkRule rule;
    rule.name = trunk.name;
    rule.sourcePrefixes = trunk.sourcePrefixes;
    rule.maxConcurrentCalls = trunk.maxConcurrentCalls;
    rule.maxCallsPerSecond = trunk.maxCallsPerSecond;
    rule.callRateBurst = effectiveBurst(trunk);
    rules.trunks.push_back(std::move(rule));
  }
  rules.lines.maxConcurrentCalls = config.lines.maxConcurrentCalls;
  return rules;
}

}  // namespace sbc::config
