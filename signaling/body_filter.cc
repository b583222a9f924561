#include "signaling/body_filter.h"

#include <strings.h>

#include <algorithm>

#include <sofia-sip/msg_mime.h>
#include <sofia-sip/su_alloc.h>

namespace sbc::signaling {
namespace {

constexpr const char* kSipfrag = "message/sipfrag";

bool listed(const char* type, const std::vector<std::string>& allowedTypes) {
  return type != nullptr &&
         std::any_of(allowedTypes.begin(), allowedTypes.end(), [&](const std::string& allowed) {
           return ::strcasecmp(allowed.c_str(), type) == 0;
         });
}

bool isMultipart(const char* type) {
  return type != nullptr && ::strncasecmp(type, "multipart/", 10) == 0;
}

BodyVerdict checkMultipart(const sip_t* sip, const std::vector<std::string>& allowedTypes) {
  su_home_t* home = static_cast<su_home_t*>(su_home_new(sizeof(su_home_t)));
  if (home == nullptr) return BodyVerdict::refusedMultipart;
  // Sofia splits the body in place: it works on a copy, the message stays as it came.
  msg_payload_t* copy = msg_payload_dup(home, sip->sip_payload);
  msg_multipart_t* parts =
      copy != nullptr ? msg_multipart_parse(home, sip->sip_content_type, copy) : nullptr;
  BodyVerdict verdict = parts != nullptr ? BodyVerdict::allowed : BodyVerdict::refusedMultipart;
  for (const msg_multipart_t* part = parts; part != nullptr; part = part->mp_next) {
    // RFC 2046 5.1: a part without Content-Type is text/plain.
    const char* type = part->mp_content_type != nullptr && part->mp_content_type->c_type
                           ? part->mp_content_type->c_type
                           : "text/plain";
    if (isMultipart(type) || !listed(type, allowedTypes)) {
      verdict = BodyVerdict::refusedMultipart;
      break;
    }
  }
  su_home_unref(home);
  return verdict;
}

}  // namespace

BodyVerdict checkBody(const sip_t* sip, const std::vector<std::string>& allowedTypes) {
  if (sip == nullptr || sip->sip_payload == nullptr || sip->sip_payload->pl_len == 0) {
    return BodyVerdict::none;
  }
  const char* type = sip->sip_content_type != nullptr ? sip->sip_content_type->c_type : nullptr;
  if (type == nullptr) return BodyVerdict::refusedType;
  if (::strcasecmp(type, kSipfrag) == 0 || listed(type, allowedTypes)) {
    return BodyVerdict::allowed;
  }
  if (isMultipart(type)) return checkMultipart(sip, allowedTypes);
  return BodyVerdict::refusedType;
}

const char* refusalReason(BodyVerdict verdict) {
  return verdict == BodyVerdict::refusedMultipart ? "multipart" : "content_type";
}

std::string acceptedTypes(const std::vector<std::string>& allowedTypes) {
  std::string accept;
  for (const auto& type : allowedTypes) accept += type + ", ";
  return accept + kSipfrag;
}

}  // namespace sbc::signaling
