#pragma once
// IP addresses and prefixes as plain values: what the policy matches sources against.

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace sbc::policy {

enum class IpFamily : std::uint8_t { v4, v6 };

struct IpAddress {
  IpFamily family = IpFamily::v4;
  // Network byte order; an IPv4 address uses the first four bytes, the rest stay zero.
  std::array<std::uint8_t, 16> bytes{};

  // Accepts dotted IPv4 and RFC 4291 IPv6 text; nullopt for anything else.
  static std::optional<IpAddress> parse(std::string_view text);
  static IpAddress v4(std::uint32_t hostOrder);
  std::string toString() const;
  friend bool operator==(const IpAddress&, const IpAddress&) = default;
};

struct IpPrefix {
  IpAddress address;  // host bits are zero
  std::uint8_t length = 0;

  // "addr/len" or a bare address (a host prefix). Host bits set below the length are
  // refused (nullopt): "10.0.0.1/8" is almost always a typo for something else.
  static std::optional<IpPrefix> parse(std::string_view text);
  bool contains(const IpAddress& candidate) const noexcept;
  std::string toString() const;
  friend bool operator==(const IpPrefix&, const IpPrefix&) = default;
};

}  // namespace sbc::policy
