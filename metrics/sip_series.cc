#include "metrics/sip_series.h"

#include <string>

namespace sbc::metrics {
namespace {

const char* realmName(std::string_view realm) { return realm == "core" ? "core" : "access"; }

}  // namespace

std::size_t sipMethodIndex(std::string_view method) {
  std::size_t index = 0;
  while (index < kSipMethodLabels.size() && kSipMethodLabels[index] != method) ++index;
  return index;
}

std::string_view sipMethodLabel(std::string_view method) {
  const std::size_t index = sipMethodIndex(method);
  return index < kSipMethodLabels.size() ? kSipMethodLabels[index] : kOtherMethodLabel;
}

void SipMessageSeries::countRequest(std::string_view realm, std::string_view method) {
  const std::size_t index = sipMethodIndex(method);
  prometheus::Counter*& counter = requests_[realmIndex(realm)][index];
  if (counter == nullptr) {
    const std::string label(sipMethodLabel(method));
    counter = &metrics_.counter(FamilyId::sipRequestsTotal)
                   .Add({{"realm", realmName(realm)}, {"method", label}});
  }
  counter->Increment();
}

void SipMessageSeries::countResponse(std::string_view realm, int code) {
  if (code < kFirstCode || code >= kFirstCode + kCodes) {
    metrics_.counter(FamilyId::sipResponsesTotal)
        .Add({{"realm", realmName(realm)}, {"code", std::to_string(code)}})
        .Increment();
    return;
  }
  prometheus::Counter*& counter = responses_[realmIndex(realm)][code - kFirstCode];
  if (counter == nullptr) {
    counter = &metrics_.counter(FamilyId::sipResponsesTotal)
                   .Add({{"realm", realmName(realm)}, {"code", std::to_string(code)}});
  }
  counter->Increment();
}

}  // namespace sbc::metrics
