#include "policy/ip.h"

#include <arpa/inet.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>

namespace sbc::policy {
namespace {

// Longest valid text: an IPv6 address with an embedded IPv4 tail (INET6_ADDRSTRLEN - 1).
constexpr std::size_t kMaxAddressText = 45;

std::uint8_t maxLength(IpFamily family) noexcept { return family == IpFamily::v4 ? 32 : 128; }

// Strict decimal prefix length: 1 to 3 digits, nothing else.
std::optional<unsigned> parseLength(std::string_view text) noexcept {
  if (text.empty() || text.size() > 3) return std::nullopt;
  unsigned value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + static_cast<unsigned>(c - '0');
  }
  return value;
}

}  // namespace

std::optional<IpAddress> IpAddress::parse(std::string_view text) {
  if (text.empty() || text.size() > kMaxAddressText) return std::nullopt;
  if (text.find('\0') != std::string_view::npos) return std::nullopt;
  char buffer[kMaxAddressText + 1];
  std::memcpy(buffer, text.data(), text.size());
  buffer[text.size()] = '\0';

  IpAddress address;
  if (text.find(':') != std::string_view::npos) {
    address.family = IpFamily::v6;
    if (inet_pton(AF_INET6, buffer, address.bytes.data()) != 1) return std::nullopt;
  } else {
    address.family = IpFamily::v4;
    // inet_pton(AF_INET) takes strict dotted quads only: no octal, no short forms.
    if (inet_pton(AF_INET, buffer, address.bytes.data()) != 1) return std::nullopt;
  }
  return address;
}

IpAddress IpAddress::v4(std::uint32_t hostOrder) {
  IpAddress address;
  address.family = IpFamily::v4;
  address.bytes[0] = static_cast<std::uint8_t>(hostOrder >> 24);
  address.bytes[1] = static_cast<std::uint8_t>(hostOrder >> 16);
  address.bytes[2] = static_cast<std::uint8_t>(hostOrder >> 8);
  address.bytes[3] = static_cast<std::uint8_t>(hostOrder);
  return address;
}

std::string IpAddress::toString() const {
  char buffer[INET6_ADDRSTRLEN] = {};
  const int af = family == IpFamily::v4 ? AF_INET : AF_INET6;
  if (inet_ntop(af, bytes.data(), buffer, sizeof buffer) == nullptr) return {};
  return buffer;
}

std::optional<IpPrefix> IpPrefix::parse(std::string_view text) {
  const auto slash = text.find('/');
  const auto address = IpAddress::parse(text.substr(0, slash));
  if (!address) return std::nullopt;

  IpPrefix prefix;
  prefix.address = *address;
  const std::uint8_t max = maxLength(address->family);
  if (slash == std::string_view::npos) {
    prefix.length = max;
    return prefix;
  }
  const auto length = parseLength(text.substr(slash + 1));
  if (!length || *length > max) return std::nullopt;
  prefix.length = static_cast<std::uint8_t>(*length);

  // Refuse host bits below the length.
  for (unsigned bit = prefix.length; bit < max; ++bit) {
    if (prefix.address.bytes[bit / 8] & (0x80u >> (bit % 8))) return std::nullopt;
  }
  return prefix;
}

bool IpPrefix::contains(const IpAddress& candidate) const noexcept {
  if (candidate.family != address.family) return false;
  const unsigned length = std::min<unsigned>(this->length, maxLength(address.family));
  const unsigned fullBytes = length / 8;
  if (std::memcmp(candidate.bytes.data(), address.bytes.data(), fullBytes) != 0) return false;
  const unsigned restBits = length % 8;
  if (restBits == 0) return true;
  const auto mask = static_cast<std::uint8_t>(0xFFu << (8 - restBits));
  return (candidate.bytes[fullBytes] & mask) == (address.bytes[fullBytes] & mask);
}

std::string IpPrefix::toString() const { return address.toString() + "/" + std::to_string(length); }

}  // namespace sbc::policy
