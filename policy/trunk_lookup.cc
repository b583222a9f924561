#include "policy/trunk_lookup.h"

#include <algorithm>
#include <compare>
#include <limits>
#include <tuple>

// Build: the prefixes of one family form a laminar set (any two are nested or disjoint).
// Sorted by start ascending, then length ascending (outer before inner), a sweep with a
// stack of open prefixes flattens them into sorted, non-overlapping ranges, each naming the
// innermost (longest) prefix's trunk or "no trunk". A lookup is then one binary search
// (branch-free upper_bound) over a contiguous array of range starts: O(log n), no allocation.

namespace sbc::policy {
namespace {

struct U128 {
  std::uint64_t hi = 0;
  std::uint64_t lo = 0;
  friend auto operator<=>(const U128&, const U128&) = default;
};

constexpr std::uint32_t kNone = std::numeric_limits<std::uint32_t>::max();

bool isMax(std::uint32_t key) { return key == std::numeric_limits<std::uint32_t>::max(); }
bool isMax(const U128& key) {
  return key.hi == std::numeric_limits<std::uint64_t>::max() &&
         key.lo == std::numeric_limits<std::uint64_t>::max();
}
std::uint32_t next(std::uint32_t key) { return key + 1; }
U128 next(const U128& key) {
  U128 result = key;
  if (++result.lo == 0) ++result.hi;
  return result;
}

std::uint32_t loadV4(const IpAddress& address) noexcept {
  const auto& b = address.bytes;
  return (std::uint32_t{b[0]} << 24) | (std::uint32_t{b[1]} << 16) | (std::uint32_t{b[2]} << 8) |
         std::uint32_t{b[3]};
}

std::uint64_t loadBe64(const std::uint8_t* p) noexcept {
  std::uint64_t value = 0;
  for (int i = 0; i < 8; ++i) value = (value << 8) | p[i];
  return value;
}

U128 loadV6(const IpAddress& address) noexcept {
  return U128{loadBe64(address.bytes.data()), loadBe64(address.bytes.data() + 8)};
}

// First and last address of a prefix (host bits of the stored address are ignored).
std::pair<std::uint32_t, std::uint32_t> bounds(std::uint32_t address, unsigned length) {
  const std::uint32_t hostMask = length >= 32 ? 0 : (~std::uint32_t{0} >> length);
  return {address & ~hostMask, address | hostMask};
}

std::uint64_t hostMask64(unsigned length) {  // length in [0, 64]
  return length >= 64 ? 0 : (~std::uint64_t{0} >> length);
}

std::pair<U128, U128> bounds(const U128& address, unsigned length) {
  const std::uint64_t hiMask = hostMask64(std::min(length, 64u));
  const std::uint64_t loMask = hostMask64(length > 64 ? length - 64 : 0);
  return {U128{address.hi & ~hiMask, address.lo & ~loMask},
          U128{address.hi | hiMask, address.lo | loMask}};
}

constexpr std::size_t kNotFound = std::numeric_limits<std::size_t>::max();

// The index of the last element <= key in a sorted array (std::upper_bound - 1), or
// kNotFound. Branch-free halving: the loop runs log2(n) times whatever the key, and the
// compiler turns the step into a conditional move, so random keys cost no mispredictions.
template <typename Key>
std::size_t lastNotAfter(const Key* data, std::size_t size, const Key& key) noexcept {
  if (size == 0) return kNotFound;
  const Key* base = data;
  std::size_t n = size;
  while (n > 1) {
    const std::size_t half = n / 2;
    base = (key < base[half]) ? base : base + half;
    n -= half;
  }
  if (key < *base) return kNotFound;  // only when key precedes every start
  return static_cast<std::size_t>(base - data);
}

template <typename Key>
struct Entry {
  Key start;
  Key last;  // inclusive
  unsigned length;
  std::uint32_t trunk;
};

template <typename Key>
struct Range {
  Key start;
  std::uint32_t trunk;
};

// Appends "from `start` on, the owner is `trunk`", overwriting a range that starts at the
// same place and merging with an equal neighbour.
template <typename Key>
void emit(std::vector<Range<Key>>& out, const Key& start, std::uint32_t trunk) {
  if (!out.empty() && out.back().start == start) {
    out.back().trunk = trunk;
    if (out.size() >= 2 && out[out.size() - 2].trunk == trunk) out.pop_back();
    if (out.size() == 1 && out.back().trunk == kNone) out.pop_back();
    return;
  }
  if (out.empty() ? trunk == kNone : out.back().trunk == trunk) return;
  out.push_back({start, trunk});
}

template <typename Key>
std::vector<Range<Key>> flatten(std::vector<Entry<Key>> entries) {
  // Outer before inner; equal prefixes: the earlier trunk first, the later ones dropped.
  std::sort(entries.begin(), entries.end(), [](const Entry<Key>& a, const Entry<Key>& b) {
    return std::tie(a.start, a.length, a.trunk) < std::tie(b.start, b.length, b.trunk);
  });
  entries.erase(std::unique(entries.begin(), entries.end(),
                            [](const Entry<Key>& a, const Entry<Key>& b) {
                              return a.start == b.start && a.length == b.length;
                            }),
                entries.end());

  std::vector<Range<Key>> out;
  std::vector<const Entry<Key>*> open;  // nested prefixes, innermost on top
  const auto close = [&] {
    const Entry<Key>* closed = open.back();
    open.pop_back();
    if (!isMax(closed->last))
      emit(out, next(closed->last), open.empty() ? kNone : open.back()->trunk);
  };
  for (const auto& entry : entries) {
    while (!open.empty() && open.back()->last < entry.start) close();
    // Laminar: whatever is still open contains `entry`.
    open.push_back(&entry);
    emit(out, entry.start, entry.trunk);
  }
  while (!open.empty()) close();
  return out;
}

}  // namespace

TrunkLookup::TrunkLookup(const std::vector<TrunkRule>& trunks) {
  std::vector<Entry<std::uint32_t>> v4;
  std::vector<Entry<U128>> v6;
  for (std::size_t i = 0; i < trunks.size(); ++i) {
    const auto trunk = static_cast<std::uint32_t>(i);
    for (const IpPrefix& prefix : trunks[i].sourcePrefixes) {
      if (prefix.address.family == IpFamily::v4) {
        const unsigned length = std::min<unsigned>(prefix.length, 32);
        const auto [first, last] = bounds(loadV4(prefix.address), length);
        v4.push_back({first, last, length, trunk});
      } else {
        const unsigned length = std::min<unsigned>(prefix.length, 128);
        const auto [first, last] = bounds(loadV6(prefix.address), length);
        v6.push_back({first, last, length, trunk});
      }
    }
  }
  for (const auto& range : flatten(std::move(v4))) {
    v4Starts_.push_back(range.start);
    v4Trunks_.push_back(range.trunk);
  }
  for (const auto& range : flatten(std::move(v6))) {
    v6Starts_.push_back(V6Key{range.start.hi, range.start.lo});
    v6Trunks_.push_back(range.trunk);
  }
}

std::optional<std::uint32_t> TrunkLookup::find(const IpAddress& source) const noexcept {
  // Called on any thread; const, no allocation.
  std::uint32_t trunk = kNoTrunk;
  if (source.family == IpFamily::v4) {
    const std::size_t at = lastNotAfter(v4Starts_.data(), v4Starts_.size(), loadV4(source));
    if (at != kNotFound) trunk = v4Trunks_[at];
  } else {
    const U128 parsed = loadV6(source);
    const std::size_t at =
        lastNotAfter(v6Starts_.data(), v6Starts_.size(), V6Key{parsed.hi, parsed.lo});
    if (at != kNotFound) trunk = v6Trunks_[at];
  }
  if (trunk == kNoTrunk) return std::nullopt;
  return trunk;
}

}  // namespace sbc::policy
