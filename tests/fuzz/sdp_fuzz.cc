// libFuzzer target: arbitrary bytes as an SDP body through the reader and the rewriter the
// B2BUA uses on every offer and answer. Refusals are fine; crashes, leaks and UB are not.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "signaling/sdp.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  std::string error;
  const auto description = sbc::signaling::parseSdp(body, error);
  if (!description) return 0;
  std::vector<std::uint16_t> ports;
  for (std::size_t i = 0; i < description->streams.size(); ++i) {
    ports.push_back(static_cast<std::uint16_t>(20000 + 2 * i));
  }
  static const auto address = *sbc::policy::IpAddress::parse("127.0.0.11");
  const auto rewritten = sbc::signaling::rewriteSdp(body, address, ports, 1, 1, error);
  if (rewritten) {
    // What we send must itself be SDP we accept, with as many streams.
    const auto again = sbc::signaling::parseSdp(*rewritten, error);
    if (!again || again->streams.size() != description->streams.size()) __builtin_trap();
  }
  return 0;
}
