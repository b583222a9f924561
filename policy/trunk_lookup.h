#pragma once
// Longest-prefix match of a source address to a trunk, IPv4 and IPv6.

#include <cstdint>
#include <optional>
#include <vector>

#include "policy/ip.h"
#include "policy/rules.h"

namespace sbc::policy {

class TrunkLookup {
 public:
  // Built once per snapshot; the prefixes of different trunks may nest but not repeat
  // (config validation refuses repeats; if one slips through, the later trunk is ignored
  // for that prefix).
  explicit TrunkLookup(const std::vector<TrunkRule>& trunks);

  // The index into `trunks` of the trunk whose longest prefix contains `source`.
  // Thread-safe (const, no allocation).
  std::optional<std::uint32_t> find(const IpAddress& source) const noexcept;

 private:
  struct Impl;
  // Implementation detail owned by the .cc: flattened, sorted, non-overlapping ranges.
  std::vector<std::uint64_t> v4Starts_;  // placeholder layout; see trunk_lookup.cc
  std::vector<std::uint32_t> v4Trunks_;
  std::vector<unsigned __int128> v6Starts_;
  std::vector<std::uint32_t> v6Trunks_;
};

}  // namespace sbc::policy
