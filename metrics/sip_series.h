#pragma once
// The per-message families sbc_sip_requests_total{realm,method} and
// sbc_sip_responses_total{realm,code}, with their series looked up once: prometheus-cpp's
// Family::Add hashes a label map under the registry's mutex, which cost the signaling
// thread a few per cent of its time when done for every message.
//
// The method label is bounded: a method name comes from the network (any token is a valid
// extension method), so only the methods the SBC knows are named; the rest count as
// "other". Otherwise one peer could create a series per random name.

#include <array>
#include <cstddef>
#include <string_view>

#include <prometheus/counter.h>

#include "metrics/metrics.h"

namespace sbc::metrics {

// Methods with a label value of their own, in this order; anything else is "other".
inline constexpr std::array<std::string_view, 14> kSipMethodLabels = {
    "INVITE", "ACK",    "BYE",     "CANCEL",    "OPTIONS", "REGISTER", "INFO",
    "PRACK",  "UPDATE", "MESSAGE", "SUBSCRIBE", "NOTIFY",  "REFER",    "PUBLISH"};
inline constexpr std::string_view kOtherMethodLabel = "other";

// The label value counted for a request method (case-sensitive, as RFC 3261 says), and its
// index in kSipMethodLabels (kSipMethodLabels.size() for "other").
std::string_view sipMethodLabel(std::string_view method);
std::size_t sipMethodIndex(std::string_view method);

// Not thread-safe: one per signaling thread. Realms are "access" and "core".
class SipMessageSeries {
 public:
  explicit SipMessageSeries(Metrics& metrics) : metrics_(metrics) {}

  void countRequest(std::string_view realm, std::string_view method);
  // Status codes outside 100-699 are counted as they are (never sent by nta).
  void countResponse(std::string_view realm, int code);

 private:
  static constexpr std::size_t kRealms = 2;
  static constexpr int kFirstCode = 100;
  static constexpr int kCodes = 600;
  static std::size_t realmIndex(std::string_view realm) { return realm == "core" ? 1 : 0; }

  Metrics& metrics_;
  std::array<std::array<prometheus::Counter*, kSipMethodLabels.size() + 1>, kRealms> requests_{};
  std::array<std::array<prometheus::Counter*, kCodes>, kRealms> responses_{};
};

}  // namespace sbc::metrics
