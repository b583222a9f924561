#include "policy/trunk_lookup.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <vector>

namespace sbc::policy {
namespace {

IpAddress addr(const char* text) {
  const auto parsed = IpAddress::parse(text);
  EXPECT_TRUE(parsed.has_value()) << text;
  return parsed.value_or(IpAddress{});
}

TrunkRule trunk(std::string name, std::initializer_list<const char*> prefixes) {
  TrunkRule rule;
  rule.name = std::move(name);
  for (const char* text : prefixes) {
    const auto prefix = IpPrefix::parse(text);
    EXPECT_TRUE(prefix.has_value()) << text;
    if (prefix) rule.sourcePrefixes.push_back(*prefix);
  }
  return rule;
}

// Brute-force reference: the longest containing prefix; on a repeated prefix, the earlier
// trunk wins (the header's documented rule).
std::optional<std::uint32_t> linearFind(const std::vector<TrunkRule>& trunks,
                                        const IpAddress& source) {
  std::optional<std::uint32_t> best;
  int bestLength = -1;
  for (std::uint32_t i = 0; i < trunks.size(); ++i) {
    for (const IpPrefix& prefix : trunks[i].sourcePrefixes) {
      if (prefix.contains(source) && prefix.length > bestLength) {
        best = i;
        bestLength = prefix.length;
      }
    }
  }
  return best;
}

// An empty rule set matches nothing in either family.
TEST(TrunkLookupTest, EmptyMatchesNothing) {
  const TrunkLookup lookup({});
  EXPECT_EQ(lookup.find(addr("10.0.0.1")), std::nullopt);
  EXPECT_EQ(lookup.find(addr("0.0.0.0")), std::nullopt);
  EXPECT_EQ(lookup.find(addr("2001:db8::1")), std::nullopt);
}

// Nested IPv4 prefixes: the longest one containing the source wins; outside all: none.
TEST(TrunkLookupTest, LongestIpv4PrefixWins) {
  const std::vector<TrunkRule> trunks = {
      trunk("wide", {"10.0.0.0/8"}),
      trunk("mid", {"10.1.0.0/16"}),
      trunk("narrow", {"10.1.2.0/24", "192.0.2.10"}),
      trunk("host", {"10.1.2.3/32"}),
  };
  const TrunkLookup lookup(trunks);
  EXPECT_EQ(lookup.find(addr("10.9.9.9")), 0u);
  EXPECT_EQ(lookup.find(addr("10.0.0.0")), 0u);
  EXPECT_EQ(lookup.find(addr("10.255.255.255")), 0u);
  EXPECT_EQ(lookup.find(addr("10.1.0.0")), 1u);
  EXPECT_EQ(lookup.find(addr("10.1.255.255")), 1u);
  EXPECT_EQ(lookup.find(addr("10.1.1.255")), 1u);
  EXPECT_EQ(lookup.find(addr("10.1.2.0")), 2u);
  EXPECT_EQ(lookup.find(addr("10.1.2.2")), 2u);
  EXPECT_EQ(lookup.find(addr("10.1.2.3")), 3u);
  EXPECT_EQ(lookup.find(addr("10.1.2.4")), 2u);
  EXPECT_EQ(lookup.find(addr("10.1.2.255")), 2u);
  EXPECT_EQ(lookup.find(addr("10.1.3.0")), 1u);
  EXPECT_EQ(lookup.find(addr("10.2.0.0")), 0u);
  EXPECT_EQ(lookup.find(addr("192.0.2.10")), 2u);
  EXPECT_EQ(lookup.find(addr("192.0.2.11")), std::nullopt);
  EXPECT_EQ(lookup.find(addr("192.0.2.9")), std::nullopt);
  EXPECT_EQ(lookup.find(addr("9.255.255.255")), std::nullopt);
  EXPECT_EQ(lookup.find(addr("11.0.0.0")), std::nullopt);
  EXPECT_EQ(lookup.find(addr("0.0.0.0")), std::nullopt);
  EXPECT_EQ(lookup.find(addr("255.255.255.255")), std::nullopt);
}

// Nested IPv6 prefixes, /128 host prefixes and the family split: a v4 source never matches
// a v6 prefix and the reverse.
TEST(TrunkLookupTest, LongestIpv6PrefixWinsAndFamiliesAreSeparate) {
  const std::vector<TrunkRule> trunks = {
      trunk("v6wide", {"2001:db8::/32"}),
      trunk("v6narrow", {"2001:db8:1::/48"}),
      trunk("v6host", {"2001:db8:1::1/128"}),
      trunk("v4", {"32.1.13.184/29"}),  // bytes equal to the start of 2001:db8::
      trunk("top", {"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128"}),
  };
  const TrunkLookup lookup(trunks);
  EXPECT_EQ(lookup.find(addr("2001:db8::1")), 0u);
  EXPECT_EQ(lookup.find(addr("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff")), 0u);
  EXPECT_EQ(lookup.find(addr("2001:db8:1::")), 1u);
  EXPECT_EQ(lookup.find(addr("2001:db8:1::1")), 2u);
  EXPECT_EQ(lookup.find(addr("2001:db8:1::2")), 1u);
  EXPECT_EQ(lookup.find(addr("2001:db8:1:ffff:ffff:ffff:ffff:ffff")), 1u);
  EXPECT_EQ(lookup.find(addr("2001:db8:2::")), 0u);
  EXPECT_EQ(lookup.find(addr("2001:db7:ffff:ffff:ffff:ffff:ffff:ffff")), std::nullopt);
  EXPECT_EQ(lookup.find(addr("2001:db9::")), std::nullopt);
  EXPECT_EQ(lookup.find(addr("::")), std::nullopt);
  EXPECT_EQ(lookup.find(addr("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")), 4u);
  EXPECT_EQ(lookup.find(addr("ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe")), std::nullopt);
  EXPECT_EQ(lookup.find(addr("32.1.13.184")), 3u);
  EXPECT_EQ(lookup.find(addr("32.1.13.191")), 3u);
  EXPECT_EQ(lookup.find(addr("32.1.13.192")), std::nullopt);
}

// A /0 default route catches everything of its family only; longer prefixes still win.
TEST(TrunkLookupTest, DefaultRoutesCatchTheRestOfTheirFamily) {
  const std::vector<TrunkRule> trunks = {
      trunk("default4", {"0.0.0.0/0"}),
      trunk("specific4", {"198.51.100.0/24", "255.255.255.255/32", "0.0.0.0/32"}),
      trunk("default6", {"::/0"}),
      trunk("specific6", {"2001:db8::/32", "::/128"}),
  };
  const TrunkLookup lookup(trunks);
  EXPECT_EQ(lookup.find(addr("0.0.0.0")), 1u);
  EXPECT_EQ(lookup.find(addr("0.0.0.1")), 0u);
  EXPECT_EQ(lookup.find(addr("198.51.100.7")), 1u);
  EXPECT_EQ(lookup.find(addr("198.51.101.0")), 0u);
  EXPECT_EQ(lookup.find(addr("255.255.255.254")), 0u);
  EXPECT_EQ(lookup.find(addr("255.255.255.255")), 1u);
  EXPECT_EQ(lookup.find(addr("::")), 3u);
  EXPECT_EQ(lookup.find(addr("::1")), 2u);
  EXPECT_EQ(lookup.find(addr("2001:db8::5")), 3u);
  EXPECT_EQ(lookup.find(addr("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")), 2u);
}

// Without a default route, the gaps between and after trunks' prefixes match nothing, and
// adjacent prefixes of different trunks keep their exact borders.
TEST(TrunkLookupTest, GapsAndAdjacentPrefixesWithoutDefault) {
  const std::vector<TrunkRule> trunks = {
      trunk("a", {"192.0.2.0/25"}),
      trunk("b", {"192.0.2.128/25"}),
      trunk("c", {"192.0.4.0/24"}),
  };
  const TrunkLookup lookup(trunks);
  EXPECT_EQ(lookup.find(addr("192.0.1.255")), std::nullopt);
  EXPECT_EQ(lookup.find(addr("192.0.2.0")), 0u);
  EXPECT_EQ(lookup.find(addr("192.0.2.127")), 0u);
  EXPECT_EQ(lookup.find(addr("192.0.2.128")), 1u);
  EXPECT_EQ(lookup.find(addr("192.0.2.255")), 1u);
  EXPECT_EQ(lookup.find(addr("192.0.3.0")), std::nullopt);
  EXPECT_EQ(lookup.find(addr("192.0.4.77")), 2u);
  EXPECT_EQ(lookup.find(addr("192.0.5.0")), std::nullopt);
}

// A prefix repeated by a later trunk is ignored for it: the earlier trunk keeps it.
TEST(TrunkLookupTest, RepeatedPrefixGoesToTheEarlierTrunk) {
  const std::vector<TrunkRule> trunks = {
      trunk("first", {"203.0.113.0/24", "2001:db8::/64"}),
      trunk("second", {"203.0.113.0/24", "203.0.113.64/26", "2001:db8::/64"}),
  };
  const TrunkLookup lookup(trunks);
  EXPECT_EQ(lookup.find(addr("203.0.113.1")), 0u);
  EXPECT_EQ(lookup.find(addr("203.0.113.65")), 1u);
  EXPECT_EQ(lookup.find(addr("2001:db8::1")), 0u);
}

// Randomised cross-check against the linear reference: thousands of random nested prefixes
// in both families, probed at random addresses and at every prefix border (fixed seed).
TEST(TrunkLookupTest, MatchesLinearReferenceOnRandomNestedPrefixes) {
  std::mt19937_64 rng(20240611);
  const auto randomBits = [&](unsigned n) { return n == 0 ? 0 : (rng() >> (64 - n)); };

  // v4: seed prefixes, then children carved out of earlier prefixes (deeper nesting).
  std::vector<IpPrefix> pool;
  const auto makeV4 = [](std::uint32_t value, unsigned length) {
    const std::uint32_t mask = length == 0 ? 0 : ~std::uint32_t{0} << (32 - length);
    return IpPrefix{IpAddress::v4(value & mask), static_cast<std::uint8_t>(length)};
  };
  const auto makeV6 = [](std::uint64_t hi, std::uint64_t lo, unsigned length) {
    IpPrefix prefix;
    prefix.address.family = IpFamily::v6;
    prefix.length = static_cast<std::uint8_t>(length);
    for (unsigned i = 0; i < 8; ++i) {
      prefix.address.bytes[i] = static_cast<std::uint8_t>(hi >> (56 - 8 * i));
      prefix.address.bytes[8 + i] = static_cast<std::uint8_t>(lo >> (56 - 8 * i));
    }
    for (unsigned bit = length; bit < 128; ++bit)
      prefix.address.bytes[bit / 8] &= static_cast<std::uint8_t>(~(0x80u >> (bit % 8)));
    return prefix;
  };
  // Concentrate on a few /8 (v4) and /16 (v6) regions so that prefixes really nest.
  const std::uint32_t v4Regions[] = {0x0A000000u, 0xC0000000u, 0xFF000000u, 0x00000000u};
  for (int i = 0; i < 300; ++i) {
    const std::uint32_t base = v4Regions[rng() % 4] | static_cast<std::uint32_t>(randomBits(24));
    pool.push_back(makeV4(base, 8 + static_cast<unsigned>(rng() % 12)));
  }
  for (int i = 0; i < 2700; ++i) {
    const IpPrefix& parent = pool[rng() % pool.size()];
    if (parent.address.family != IpFamily::v4 || parent.length >= 32) continue;
    const unsigned length = parent.length + 1 + static_cast<unsigned>(rng() % (32 - parent.length));
    std::uint32_t value = (std::uint32_t{parent.address.bytes[0]} << 24) |
                          (std::uint32_t{parent.address.bytes[1]} << 16) |
                          (std::uint32_t{parent.address.bytes[2]} << 8) | parent.address.bytes[3];
    value |= static_cast<std::uint32_t>(randomBits(32 - parent.length));
    pool.push_back(makeV4(value, length));
  }
  pool.push_back(makeV4(0, 0));             // one default route...
  pool.push_back(makeV4(0xFFFFFFFFu, 32));  // ...and the extremes
  pool.push_back(makeV4(0, 32));
  const std::size_t v4Count = pool.size();
  const std::uint64_t v6Regions[] = {0x20010DB800000000ull, 0xFE80000000000000ull,
                                     0xFFFF000000000000ull};
  for (int i = 0; i < 200; ++i) {
    const std::uint64_t hi = v6Regions[rng() % 3] | randomBits(48);
    pool.push_back(makeV6(hi, rng(), 16 + static_cast<unsigned>(rng() % 40)));
  }
  for (int i = 0; i < 1800; ++i) {
    const IpPrefix& parent = pool[v4Count + rng() % (pool.size() - v4Count)];
    if (parent.length >= 128) continue;
    const unsigned length =
        parent.length + 1 + static_cast<unsigned>(rng() % (128 - parent.length));
    std::uint64_t hi = 0;
    std::uint64_t lo = 0;
    for (unsigned b = 0; b < 8; ++b) {
      hi = (hi << 8) | parent.address.bytes[b];
      lo = (lo << 8) | parent.address.bytes[8 + b];
    }
    // Random host bits below the parent's length; makeV6 masks to `length`.
    const unsigned free = 128 - parent.length;
    if (free >= 64) {
      lo = rng();
      hi |= randomBits(free - 64);
    } else {
      lo |= randomBits(free);
    }
    pool.push_back(makeV6(hi, lo, length));
  }
  pool.push_back(makeV6(~0ull, ~0ull, 128));

  // Spread the pool over trunks of one to three prefixes (the order is shuffled so that
  // nesting crosses trunks); a few repeats of the same prefix are kept on purpose.
  std::shuffle(pool.begin(), pool.end(), rng);
  std::vector<TrunkRule> trunks;
  for (std::size_t i = 0; i < pool.size();) {
    TrunkRule rule;
    rule.name = "t" + std::to_string(trunks.size());
    const std::size_t n = 1 + rng() % 3;
    for (std::size_t k = 0; k < n && i < pool.size(); ++k) rule.sourcePrefixes.push_back(pool[i++]);
    trunks.push_back(std::move(rule));
  }
  ASSERT_GT(trunks.size(), 1000u);

  const TrunkLookup lookup(trunks);
  std::vector<IpAddress> probes;
  for (int i = 0; i < 3000; ++i) {
    probes.push_back(IpAddress::v4(static_cast<std::uint32_t>(rng())));
    probes.push_back(makeV6(rng(), rng(), 128).address);
    probes.push_back(makeV6(v6Regions[rng() % 3] | randomBits(48), rng(), 128).address);
  }
  for (const IpPrefix& prefix : pool) {
    // The first and last address of every prefix, and the addresses either side of them.
    IpAddress first = prefix.address;
    IpAddress last = prefix.address;
    const unsigned bits = prefix.address.family == IpFamily::v4 ? 32 : 128;
    for (unsigned bit = prefix.length; bit < bits; ++bit)
      last.bytes[bit / 8] |= static_cast<std::uint8_t>(0x80u >> (bit % 8));
    const auto step = [bits](IpAddress a, int delta) {
      for (int i = static_cast<int>(bits / 8) - 1; i >= 0; --i) {
        const auto before = a.bytes[static_cast<std::size_t>(i)];
        a.bytes[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(before + delta);
        if ((delta > 0 && before != 0xFF) || (delta < 0 && before != 0x00)) break;
      }
      return a;
    };
    probes.insert(probes.end(), {first, last, step(first, -1), step(last, +1)});
  }
  std::size_t hits = 0;
  for (const IpAddress& probe : probes) {
    const auto expected = linearFind(trunks, probe);
    ASSERT_EQ(lookup.find(probe), expected) << probe.toString();
    hits += expected.has_value();
  }
  // The probes must exercise both outcomes or the comparison proves little.
  EXPECT_GT(hits, probes.size() / 4);
  EXPECT_LT(hits, probes.size());
}

}  // namespace
}  // namespace sbc::policy
