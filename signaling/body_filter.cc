#include "signaling/body_filter.h"

#include <strings.h>

#include <algorithm>
#include <optional>
#include <string>
#include <string_view>

#include "signaling/multipart.h"

#include <sofia-sip/msg_header.h>

namespace sbc::signaling {
namespace {

constexpr const char* kSipfrag = "message/sipfrag";
constexpr const char* kSdp = "application/sdp";

bool listed(const char* type, const std::vector<std::string>& allowedTypes) {
  return type != nullptr &&
         std::any_of(allowedTypes.begin(), allowedTypes.end(), [&](const std::string& allowed) {
           return ::strcasecmp(allowed.c_str(), type) == 0;
         });
}

bool isMultipart(const char* type) {
  return type != nullptr && ::strncasecmp(type, "multipart/", 10) == 0;
}

// A header's value as Sofia prints it; nullopt if it does not fit 1 KiB.
std::optional<std::string> printedValue(const msg_header_t* header) {
  char printed[1025];
  const issize_t length = msg_header_field_e(printed, sizeof printed, header, 0);
  if (length <= 0 || static_cast<std::size_t>(length) >= sizeof printed) return std::nullopt;
  return std::string(printed, static_cast<std::size_t>(length));
}

// A body that is not multipart as the one part it is, its Content-Type and
// Content-Disposition as Sofia prints them; nullopt when the Content-Type does not print.
std::optional<BodyPart> wholeBody(const sip_t* sip, const char* type, std::string_view body) {
  BodyPart whole;
  whole.type = type;
  auto printedType = printedValue(reinterpret_cast<const msg_header_t*>(sip->sip_content_type));
  if (!printedType) return std::nullopt;
  whole.contentType = std::move(*printedType);
  if (sip->sip_content_disposition != nullptr) {
    whole.disposition =
        printedValue(reinterpret_cast<const msg_header_t*>(sip->sip_content_disposition))
            .value_or("");
  }
  whole.content = std::string(body);
  return whole;
}

// A message/sipfrag body's status line: the rest may quote the far side's response whole.
std::string sipfragStatusLine(std::string_view body) {
  std::string line(body.substr(0, body.find_first_of("\r\n")));
  line.erase(std::remove(line.begin(), line.end(), '\0'), line.end());
  return line + "\r\n";
}

}  // namespace

FilteredBody filterBody(const sip_t* sip, const std::vector<std::string>& allowedTypes) {
  FilteredBody filtered;
  if (sip == nullptr || sip->sip_payload == nullptr || sip->sip_payload->pl_len == 0) {
    return filtered;
  }
  const std::string_view body(sip->sip_payload->pl_data, sip->sip_payload->pl_len);
  const char* type = sip->sip_content_type != nullptr ? sip->sip_content_type->c_type : nullptr;
  filtered.verdict = BodyVerdict::refusedType;
  if (type == nullptr) return filtered;
  if (::strcasecmp(type, kSipfrag) == 0) {
    filtered.verdict = BodyVerdict::allowed;
    filtered.crossing.contentType = kSipfrag;
    filtered.crossing.bytes = sipfragStatusLine(body);
    return filtered;
  }
  if (listed(type, allowedTypes)) {
    filtered.verdict = BodyVerdict::allowed;
    // One whose Content-Type does not print (over 1 KiB) crosses without its body.
    if (auto whole = wholeBody(sip, type, body)) filtered.crossing = buildBody({*whole});
    return filtered;
  }
  if (!isMultipart(type)) return filtered;
  // Split by sbcd (multipart.h), never by Sofia's msg_multipart_parse(), which asserts on
  // some malformed bodies.
  filtered.verdict = BodyVerdict::refusedMultipart;
  const auto parts = splitMultipart(boundaryOf(sip->sip_content_type), body);
  if (!parts) return filtered;
  for (const BodyPart& part : *parts) {
    if (isMultipart(part.type.c_str()) || !listed(part.type.c_str(), allowedTypes)) {
      return filtered;
    }
  }
  filtered.verdict = BodyVerdict::allowed;
  filtered.crossing = buildBody(*parts);
  return filtered;
}

std::optional<SessionBody> splitSessionBody(const sip_t* sip,
                                            const std::vector<std::string>& allowedTypes,
                                            std::string& error) {
  SessionBody split;
  if (sip == nullptr || sip->sip_payload == nullptr || sip->sip_payload->pl_len == 0) {
    return split;
  }
  const std::string_view body(sip->sip_payload->pl_data, sip->sip_payload->pl_len);
  const msg_content_type_t* contentType = sip->sip_content_type;
  const char* type = contentType != nullptr ? contentType->c_type : nullptr;
  // A body without Content-Type (RFC 3261 requires one) is taken for SDP, as sbcd always
  // has: the SDP parser decides whether it is one.
  if (type == nullptr || ::strcasecmp(type, kSdp) == 0) {
    split.sdp = std::string(body);
    return split;
  }
  if (!isMultipart(type)) {
    // A body of its own, not SDP: it crosses as it is if listed.
    if (!listed(type, allowedTypes)) {
      split.refusedParts = true;
      return split;
    }
    auto whole = wholeBody(sip, type, body);
    if (!whole) {
      split.refusedParts = true;
      return split;
    }
    split.passed.push_back(std::move(*whole));
    return split;
  }
  split.multipart = true;
  auto parts = splitMultipart(boundaryOf(contentType), body);
  if (!parts) {
    error = "a multipart body that cannot be split into parts";
    return std::nullopt;
  }
  for (BodyPart& part : *parts) {
    if (part.type == kSdp) {
      if (split.sdp) {
        error = "a multipart body with more than one application/sdp part";
        return std::nullopt;
      }
      split.sdp = std::move(part.content);
      split.sdpDisposition = std::move(part.disposition);
    } else if (isMultipart(part.type.c_str()) || !listed(part.type.c_str(), allowedTypes)) {
      split.refusedParts = true;
    } else {
      split.passed.push_back(std::move(part));
    }
  }
  return split;
}

OutgoingBody SessionBody::crossing(std::string_view rewrittenSdp) const {
  std::vector<BodyPart> parts;
  parts.reserve(passed.size() + 1);
  if (!rewrittenSdp.empty()) {
    // The SDP goes first, as RFC 3204 and Q.1912.5 peers expect it.
    BodyPart sdpPart;
    sdpPart.type = kSdp;
    sdpPart.contentType = kSdp;
    // A plain SDP body has no disposition of its own to keep (RFC 3261 20.11: session).
    if (!passed.empty()) sdpPart.disposition = sdpDisposition;
    sdpPart.content = std::string(rewrittenSdp);
    parts.push_back(std::move(sdpPart));
  }
  parts.insert(parts.end(), passed.begin(), passed.end());
  return buildBody(parts);
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
