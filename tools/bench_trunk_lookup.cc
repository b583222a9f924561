// bench_trunk_lookup: lookups per second of policy::TrunkLookup::find on one core.
//
// Builds 1,000 and 10,000 trunks (one or two IPv4 prefixes of /16../32 each, some nested in
// other trunks' prefixes, and IPv6 prefixes on a third of them), then times 10 million
// lookups of precomputed addresses (about half inside some prefix, half random) per run,
// five runs per case, and prints the median, IPv4 and IPv6 separately.
//
// Usage: bench_trunk_lookup [lookups-per-run]

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "policy/ip.h"
#include "policy/rules.h"
#include "policy/trunk_lookup.h"

namespace {

using sbc::policy::IpAddress;
using sbc::policy::IpFamily;
using sbc::policy::IpPrefix;
using sbc::policy::TrunkLookup;
using sbc::policy::TrunkRule;

constexpr int kRuns = 5;
constexpr std::size_t kProbeCount = std::size_t{1} << 20;  // cycled through during a run

volatile std::uint64_t gSink = 0;  // keeps the timed loop from being optimised away

IpPrefix v4Prefix(std::uint32_t value, unsigned length) {
  const std::uint32_t mask = length == 0 ? 0 : ~std::uint32_t{0} << (32 - length);
  return IpPrefix{IpAddress::v4(value & mask), static_cast<std::uint8_t>(length)};
}

IpAddress v6Address(std::uint64_t hi, std::uint64_t lo) {
  IpAddress address;
  address.family = IpFamily::v6;
  for (unsigned i = 0; i < 8; ++i) {
    address.bytes[i] = static_cast<std::uint8_t>(hi >> (56 - 8 * i));
    address.bytes[8 + i] = static_cast<std::uint8_t>(lo >> (56 - 8 * i));
  }
  return address;
}

IpPrefix v6Prefix(std::uint64_t hi, std::uint64_t lo, unsigned length) {
  IpPrefix prefix{v6Address(hi, lo), static_cast<std::uint8_t>(length)};
  for (unsigned bit = length; bit < 128; ++bit)
    prefix.address.bytes[bit / 8] &= static_cast<std::uint8_t>(~(0x80u >> (bit % 8)));
  return prefix;
}

// A random address inside `prefix`.
IpAddress inside(const IpPrefix& prefix, std::mt19937_64& rng) {
  IpAddress address = prefix.address;
  const unsigned bits = prefix.address.family == IpFamily::v4 ? 32 : 128;
  for (unsigned bit = prefix.length; bit < bits; ++bit) {
    if (rng() & 1) address.bytes[bit / 8] |= static_cast<std::uint8_t>(0x80u >> (bit % 8));
  }
  return address;
}

struct Workload {
  std::vector<TrunkRule> trunks;
  std::vector<IpPrefix> v4Prefixes;
  std::vector<IpPrefix> v6Prefixes;
};

Workload makeTrunks(std::size_t count, std::mt19937_64& rng) {
  Workload work;
  for (std::size_t i = 0; i < count; ++i) {
    TrunkRule rule;
    rule.name = "trunk-" + std::to_string(i);
    rule.maxConcurrentCalls = 100;
    rule.maxCallsPerSecond = 10;
    const std::size_t v4Count = 1 + rng() % 2;
    for (std::size_t k = 0; k < v4Count; ++k) {
      IpPrefix prefix;
      if (!work.v4Prefixes.empty() && rng() % 5 == 0) {
        // Nested: a longer prefix inside an earlier trunk's prefix.
        const IpPrefix& parent = work.v4Prefixes[rng() % work.v4Prefixes.size()];
        if (parent.length >= 32) {
          prefix = parent;  // a repeat: ignored by the lookup, harmless here
        } else {
          const unsigned length =
              parent.length + 1 + static_cast<unsigned>(rng() % (32 - parent.length));
          const IpAddress at = inside(parent, rng);
          const std::uint32_t value = (std::uint32_t{at.bytes[0]} << 24) |
                                      (std::uint32_t{at.bytes[1]} << 16) |
                                      (std::uint32_t{at.bytes[2]} << 8) | at.bytes[3];
          prefix = v4Prefix(value, length);
        }
      } else {
        prefix =
            v4Prefix(static_cast<std::uint32_t>(rng()), 16 + static_cast<unsigned>(rng() % 17));
      }
      rule.sourcePrefixes.push_back(prefix);
      work.v4Prefixes.push_back(prefix);
    }
    if (rng() % 3 == 0) {
      // IPv6: /32../64 customer blocks under 2000::/4, now and then a /128 host.
      const std::uint64_t hi = 0x2000000000000000ull | (rng() >> 4);
      const unsigned length = rng() % 8 == 0 ? 128 : 32 + static_cast<unsigned>(rng() % 33);
      const IpPrefix prefix = v6Prefix(hi, rng(), length);
      rule.sourcePrefixes.push_back(prefix);
      work.v6Prefixes.push_back(prefix);
    }
    work.trunks.push_back(std::move(rule));
  }
  return work;
}

// Half the probes fall inside a random prefix, half are uniformly random addresses.
std::vector<IpAddress> makeProbes(const std::vector<IpPrefix>& prefixes, IpFamily family,
                                  std::mt19937_64& rng) {
  std::vector<IpAddress> probes;
  probes.reserve(kProbeCount);
  for (std::size_t i = 0; i < kProbeCount; ++i) {
    if (i % 2 == 0 && !prefixes.empty()) {
      probes.push_back(inside(prefixes[rng() % prefixes.size()], rng));
    } else if (family == IpFamily::v4) {
      probes.push_back(IpAddress::v4(static_cast<std::uint32_t>(rng())));
    } else {
      probes.push_back(v6Address(0x2000000000000000ull | (rng() >> 4), rng()));
    }
  }
  std::shuffle(probes.begin(), probes.end(), rng);
  return probes;
}

struct Result {
  double lookupsPerSecond;
  double hitRatio;
};

Result timeLookups(const TrunkLookup& lookup, const std::vector<IpAddress>& probes,
                   std::size_t lookups) {
  std::vector<double> rates;
  std::uint64_t hits = 0;
  for (int run = 0; run < kRuns; ++run) {
    std::uint64_t checksum = 0;
    hits = 0;
    const auto start = std::chrono::steady_clock::now();
    for (std::size_t i = 0, p = 0; i < lookups; ++i) {
      const auto trunk = lookup.find(probes[p]);
      if (trunk) {
        checksum += *trunk + 1;
        ++hits;
      }
      if (++p == probes.size()) p = 0;
    }
    const auto stop = std::chrono::steady_clock::now();
    gSink = gSink + checksum;
    const double seconds = std::chrono::duration<double>(stop - start).count();
    rates.push_back(static_cast<double>(lookups) / seconds);
  }
  std::sort(rates.begin(), rates.end());
  return {rates[rates.size() / 2], static_cast<double>(hits) / static_cast<double>(lookups)};
}

}  // namespace

int main(int argc, char** argv) {
  std::size_t lookups = 10'000'000;
  if (argc > 1) lookups = std::strtoull(argv[1], nullptr, 10);
  if (lookups == 0) {
    std::fprintf(stderr, "usage: %s [lookups-per-run > 0]\n", argv[0]);
    return 2;
  }
  std::printf("bench_trunk_lookup: %zu lookups per run, median of %d runs, one thread\n", lookups,
              kRuns);
  for (const std::size_t trunkCount : {std::size_t{1000}, std::size_t{10000}}) {
    std::mt19937_64 rng(42 + trunkCount);
    const Workload work = makeTrunks(trunkCount, rng);
    const auto buildStart = std::chrono::steady_clock::now();
    const TrunkLookup lookup(work.trunks);
    const double buildMs =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - buildStart)
            .count();
    std::printf("trunks=%zu  v4 prefixes=%zu  v6 prefixes=%zu  build=%.2f ms\n", trunkCount,
                work.v4Prefixes.size(), work.v6Prefixes.size(), buildMs);
    for (const IpFamily family : {IpFamily::v4, IpFamily::v6}) {
      const auto probes =
          makeProbes(family == IpFamily::v4 ? work.v4Prefixes : work.v6Prefixes, family, rng);
      const Result result = timeLookups(lookup, probes, lookups);
      std::printf("  %s: median %.2f M lookups/s  (hits %.1f%%)\n",
                  family == IpFamily::v4 ? "IPv4" : "IPv6", result.lookupsPerSecond / 1e6,
                  100.0 * result.hitRatio);
    }
  }
  return gSink == 0xFFFFFFFFFFFFFFFFull ? 1 : 0;  // read the sink once
}
