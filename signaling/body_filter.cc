#include "signaling/body_filter.h"

#include <strings.h>

#include <algorithm>
#include <optional>
#include <string_view>

#include <sofia-sip/msg_header.h>
#include <sofia-sip/msg_mime.h>
#include <sofia-sip/msg_mime_protos.h>
#include <sofia-sip/su_alloc.h>

namespace sbc::signaling {
namespace {

constexpr const char* kSipfrag = "message/sipfrag";
// Bounds on what a hostile multipart body can make the check do.
constexpr std::size_t kMaxParts = 16;
constexpr std::size_t kMaxBoundary = 70;  // RFC 2046 5.1.1

bool listed(const char* type, const std::vector<std::string>& allowedTypes) {
  return type != nullptr &&
         std::any_of(allowedTypes.begin(), allowedTypes.end(), [&](const std::string& allowed) {
           return ::strcasecmp(allowed.c_str(), type) == 0;
         });
}

bool isMultipart(const char* type) {
  return type != nullptr && ::strncasecmp(type, "multipart/", 10) == 0;
}

bool blank(std::string_view text) {
  return text.find_first_not_of(" \t\r\n") == std::string_view::npos;
}

// The boundary parameter of a multipart Content-Type, without quotes; empty if none.
std::string_view boundaryOf(const msg_content_type_t* type) {
  const char* value = msg_header_find_param(type->c_common, "boundary=");
  if (value == nullptr) return {};
  std::string_view boundary(value);
  if (boundary.size() >= 2 && boundary.front() == '"' && boundary.back() == '"') {
    boundary = boundary.substr(1, boundary.size() - 2);
  }
  return boundary;
}

// The type ("type/subtype") a body part's headers give it, as Sofia's Content-Type parser
// reads it: RFC 2046 5.1's text/plain when none is given, nullopt when the part's headers
// are not plain header lines or its Content-Type does not parse.
std::optional<std::string> partType(std::string_view headers) {
  std::optional<std::string> type = "text/plain";
  while (!headers.empty()) {
    const std::size_t end = headers.find('\n');
    std::string_view line = headers.substr(0, end);
    headers = end == std::string_view::npos ? std::string_view() : headers.substr(end + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) continue;
    // Folded or odd lines are refused rather than guessed at.
    if (line.front() == ' ' || line.front() == '\t' ||
        line.find('\0') != std::string_view::npos) {
      return std::nullopt;
    }
    const std::size_t colon = line.find(':');
    if (colon == std::string_view::npos) return std::nullopt;
    std::string_view name = line.substr(0, colon);
    while (!name.empty() && (name.back() == ' ' || name.back() == '\t')) name.remove_suffix(1);
    if (name.size() != 12 || ::strncasecmp(name.data(), "Content-Type", 12) != 0) continue;
    const std::string value(line.substr(colon + 1));
    su_home_t home[1] = {SU_HOME_INIT(home)};
    const msg_content_type_t* parsed = msg_content_type_make(home, value.c_str());
    type = parsed != nullptr && parsed->c_type != nullptr
               ? std::optional<std::string>(parsed->c_type)
               : std::nullopt;
    su_home_deinit(home);
    if (!type) return std::nullopt;
  }
  return type;
}

// RFC 2046 5.1.1: parts between "--boundary" delimiter lines, closed by "--boundary--".
// Sofia's own msg_multipart_parse() asserts (aborting the process) on some malformed
// bodies, so the body is split here and only each part's Content-Type value goes to
// Sofia's header parser; anything unexpected refuses the body.
BodyVerdict checkMultipart(const sip_t* sip, const std::vector<std::string>& allowedTypes) {
  const std::string_view boundary = boundaryOf(sip->sip_content_type);
  if (boundary.empty() || boundary.size() > kMaxBoundary) return BodyVerdict::refusedMultipart;
  const std::string delimiter = "--" + std::string(boundary);
  const std::string_view body(sip->sip_payload->pl_data, sip->sip_payload->pl_len);
  // The first delimiter starts the body or a line.
  std::size_t at = body.rfind(delimiter, 0) == 0 ? 0 : body.find("\n" + delimiter);
  if (at == std::string_view::npos) return BodyVerdict::refusedMultipart;
  if (at != 0) ++at;
  // Nothing may hide outside the parts: the preamble, a delimiter line's padding and the
  // epilogue may hold white space only.
  if (!blank(body.substr(0, at))) return BodyVerdict::refusedMultipart;
  std::size_t parts = 0;
  for (;;) {
    const std::size_t after = at + delimiter.size();
    if (body.compare(after, 2, "--") == 0) {  // the close delimiter
      if (!blank(body.substr(after + 2))) return BodyVerdict::refusedMultipart;
      break;
    }
    const std::size_t lineEnd = body.find('\n', after);
    if (lineEnd == std::string_view::npos || !blank(body.substr(after, lineEnd - after))) {
      return BodyVerdict::refusedMultipart;
    }
    const std::size_t partStart = lineEnd + 1;
    const std::size_t next = body.find("\n" + delimiter, partStart - 1);
    if (next == std::string_view::npos || next + 1 < partStart) {
      return BodyVerdict::refusedMultipart;  // no close delimiter
    }
    if (++parts > kMaxParts) return BodyVerdict::refusedMultipart;
    std::string_view part = body.substr(partStart, next + 1 - partStart);
    // The part's headers end at its first empty line (a part may have none).
    std::size_t headersEnd = part.find("\r\n\r\n");
    if (part.rfind("\r\n", 0) == 0 || part.rfind("\n", 0) == 0) headersEnd = 0;
    if (headersEnd == std::string_view::npos) headersEnd = part.find("\n\n");
    const std::optional<std::string> type =
        partType(part.substr(0, headersEnd == std::string_view::npos ? part.size() : headersEnd));
    if (!type || isMultipart(type->c_str()) || !listed(type->c_str(), allowedTypes)) {
      return BodyVerdict::refusedMultipart;
    }
    at = next + 1;
  }
  return parts > 0 ? BodyVerdict::allowed : BodyVerdict::refusedMultipart;
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
