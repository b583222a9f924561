#pragma once
// Incremental Internet checksum updates (RFC 1624: HC' = ~(~HC + ~m + m')) over header
// fields as they are stored in the packet. One's-complement sums do not depend on byte order,
// and a 32-bit field as stored is two 16-bit words as stored, so fields are summed 32 bits at
// a time into a 64-bit accumulator and folded once at the end. Shared by the fast path and
// the flow table, which precomputes the part of a rewrite's sum that is the same for every
// packet of a rule.

#include <cstdint>

namespace sbc::dataplane::dpdk {

// ~before + after, for one field.
[[gnu::always_inline]] inline std::uint64_t csumDelta32(std::uint32_t before,
                                                        std::uint32_t after) noexcept {
  return std::uint64_t{static_cast<std::uint32_t>(~before)} + after;
}
[[gnu::always_inline]] inline std::uint64_t csumDelta16(std::uint16_t before,
                                                        std::uint16_t after) noexcept {
  return std::uint64_t{static_cast<std::uint16_t>(~before)} + after;
}
[[gnu::always_inline]] inline std::uint64_t csumDelta64(std::uint64_t before,
                                                        std::uint64_t after) noexcept {
  return csumDelta32(static_cast<std::uint32_t>(before), static_cast<std::uint32_t>(after)) +
         csumDelta32(static_cast<std::uint32_t>(before >> 32),
                     static_cast<std::uint32_t>(after >> 32));
}

// A sum of 16-bit words folded to 16 bits (one's complement: each carry out of the top
// is added back in at the bottom). `sum` may use all 64 bits.
[[gnu::always_inline]] inline std::uint16_t csumFold(std::uint64_t sum) noexcept {
  std::uint32_t sum32;
  const bool carry32 = __builtin_add_overflow(static_cast<std::uint32_t>(sum),
                                              static_cast<std::uint32_t>(sum >> 32), &sum32);
  sum32 += carry32;  // cannot carry again: the sum was at most 2^33 - 2
  std::uint16_t sum16;
  const bool carry16 = __builtin_add_overflow(static_cast<std::uint16_t>(sum32),
                                              static_cast<std::uint16_t>(sum32 >> 16), &sum16);
  return static_cast<std::uint16_t>(sum16 + carry16);
}

// The checksum field `checksum` (as stored) with `delta` applied.
[[gnu::always_inline]] inline std::uint16_t csumApply(std::uint16_t checksum,
                                                      std::uint64_t delta) noexcept {
  return static_cast<std::uint16_t>(
      ~csumFold(std::uint64_t{static_cast<std::uint16_t>(~checksum)} + delta));
}

}  // namespace sbc::dataplane::dpdk
