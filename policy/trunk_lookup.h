#pragma once
// Longest-prefix match of a source address to a trunk, IPv4 and IPv6.

#include <compare>
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
  // A 128-bit IPv6 address as two host-order halves; compares lexicographically.
  struct V6Key {
    std::uint64_t hi = 0;
    std::uint64_t lo = 0;
    friend auto operator<=>(const V6Key&, const V6Key&) = default;
  };
  static constexpr std::uint32_t kNoTrunk = UINT32_MAX;

  // Flattened, sorted, non-overlapping ranges: range i covers [starts[i], starts[i + 1]) and
  // belongs to trunks[i] (kNoTrunk for a gap). Built once; see trunk_lookup.cc.
  std::vector<std::uint32_t> v4Starts_;
  std::vector<std::uint32_t> v4Trunks_;
  std::vector<V6Key> v6Starts_;
  std::vector<std::uint32_t> v6Trunks_;
};

}  // namespace sbc::policy
