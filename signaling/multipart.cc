#include "signaling/multipart.h"

#include <strings.h>

#include <algorithm>
#include <cctype>
#include <random>

#include <sofia-sip/msg_header.h>
#include <sofia-sip/msg_mime.h>
#include <sofia-sip/msg_mime_protos.h>
#include <sofia-sip/su_alloc.h>

namespace sbc::signaling {
namespace {

constexpr std::size_t kMaxHeaderValue = 1024;

bool blank(std::string_view text) {
  return text.find_first_not_of(" \t\r\n") == std::string_view::npos;
}

bool named(std::string_view name, std::string_view wanted) {
  return name.size() == wanted.size() &&
         ::strncasecmp(name.data(), wanted.data(), wanted.size()) == 0;
}

// A header value parsed by Sofia (`make`) and printed back by it: nothing of the
// sender's spelling crosses but what the grammar keeps. nullopt when it does not parse.
template <typename Header, typename Make>
std::optional<std::string> reprinted(std::string_view value, Make make, Header** parsedOut,
                                     su_home_t* home) {
  const std::string text(value);
  Header* parsed = make(home, text.c_str());
  if (parsed == nullptr) return std::nullopt;
  char printed[kMaxHeaderValue + 1];
  const issize_t length =
      msg_header_field_e(printed, sizeof printed, reinterpret_cast<msg_header_t*>(parsed), 0);
  if (length <= 0 || static_cast<std::size_t>(length) >= sizeof printed) return std::nullopt;
  *parsedOut = parsed;
  return std::string(printed, static_cast<std::size_t>(length));
}

// The part's own headers (before its first empty line) into `part`; false when they are
// not plain header lines or a Content-Type or Content-Disposition does not parse.
bool readPartHeaders(std::string_view headers, BodyPart& part) {
  part.type = "text/plain";  // RFC 2046 5.1: a part without Content-Type
  su_home_t home[1] = {SU_HOME_INIT(home)};
  bool good = true;
  while (good && !headers.empty()) {
    const std::size_t end = headers.find('\n');
    std::string_view line = headers.substr(0, end);
    headers = end == std::string_view::npos ? std::string_view() : headers.substr(end + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) continue;
    // Folded or odd lines are refused rather than guessed at: a lone CR ends a line for
    // some parsers and not for others.
    if (line.front() == ' ' || line.front() == '\t' ||
        line.find_first_of(std::string_view("\0\r", 2)) != std::string_view::npos ||
        line.size() > kMaxHeaderValue) {
      good = false;
      break;
    }
    const std::size_t colon = line.find(':');
    if (colon == std::string_view::npos) {
      good = false;
      break;
    }
    std::string_view name = line.substr(0, colon);
    while (!name.empty() && (name.back() == ' ' || name.back() == '\t')) name.remove_suffix(1);
    const std::string_view value = line.substr(colon + 1);
    if (named(name, "Content-Type")) {
      msg_content_type_t* parsed = nullptr;
      auto printed = reprinted(value, msg_content_type_make, &parsed, home);
      if (!printed || parsed->c_type == nullptr) {
        good = false;
        break;
      }
      part.type = parsed->c_type;
      std::transform(part.type.begin(), part.type.end(), part.type.begin(),
                     [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
      part.contentType = std::move(*printed);
    } else if (named(name, "Content-Disposition")) {
      msg_content_disposition_t* parsed = nullptr;
      auto printed = reprinted(value, msg_content_disposition_make, &parsed, home);
      if (!printed) {
        good = false;
        break;
      }
      part.disposition = std::move(*printed);
    }
  }
  su_home_deinit(home);
  return good;
}

// A boundary of 32 random hex digits: one that appears in no part (RFC 2046 5.1.1) is
// found at the first draw but for a contrived part.
std::string freshBoundary() {
  thread_local std::mt19937_64 generator{std::random_device{}()};
  static constexpr char kHex[] = "0123456789abcdef";
  std::string boundary = "sbc-";
  for (int word = 0; word < 2; ++word) {
    std::uint64_t bits = generator();
    for (int digit = 0; digit < 16; ++digit, bits >>= 4) boundary += kHex[bits & 0xf];
  }
  return boundary;
}

}  // namespace

std::string_view boundaryOf(const msg_content_type_t* type) {
  if (type == nullptr) return {};
  const char* value = msg_header_find_param(type->c_common, "boundary=");
  if (value == nullptr) return {};
  std::string_view boundary(value);
  if (boundary.size() >= 2 && boundary.front() == '"' && boundary.back() == '"') {
    boundary = boundary.substr(1, boundary.size() - 2);
  }
  return boundary;
}

// RFC 2046 5.1.1: parts between "--boundary" delimiter lines, closed by "--boundary--".
std::optional<std::vector<BodyPart>> splitMultipart(std::string_view boundary,
                                                    std::string_view body) {
  if (boundary.empty() || boundary.size() > kMaxBoundary) return std::nullopt;
  const std::string delimiter = "--" + std::string(boundary);
  const std::string lineDelimiter = "\n" + delimiter;
  // The first delimiter starts the body or a line.
  std::size_t at = body.rfind(delimiter, 0) == 0 ? 0 : body.find(lineDelimiter);
  if (at == std::string_view::npos) return std::nullopt;
  if (at != 0) ++at;
  // Nothing may hide outside the parts: the preamble, a delimiter line's padding and the
  // epilogue may hold white space only.
  if (!blank(body.substr(0, at))) return std::nullopt;
  std::vector<BodyPart> parts;
  for (;;) {
    const std::size_t after = at + delimiter.size();
    if (body.compare(after, 2, "--") == 0) {  // the close delimiter
      if (!blank(body.substr(after + 2))) return std::nullopt;
      break;
    }
    const std::size_t lineEnd = body.find('\n', after);
    if (lineEnd == std::string_view::npos || !blank(body.substr(after, lineEnd - after))) {
      return std::nullopt;
    }
    const std::size_t partStart = lineEnd + 1;
    const std::size_t next = body.find(lineDelimiter, partStart - 1);
    if (next == std::string_view::npos) return std::nullopt;  // no close delimiter
    if (parts.size() == kMaxBodyParts) return std::nullopt;
    // The line break before a delimiter belongs to the delimiter (RFC 2046 5.1.1), not to
    // the part: the part's bytes end before it. An empty part has none.
    std::size_t partEnd = next < partStart ? partStart : next;
    if (partEnd > partStart && body[partEnd - 1] == '\r') --partEnd;
    const std::string_view part = body.substr(partStart, partEnd - partStart);
    // The part's headers end at its first empty line (a part may have none).
    std::size_t headersEnd = 0;
    std::size_t contentStart = 0;
    if (part.rfind("\r\n", 0) == 0) {
      contentStart = 2;
    } else if (part.rfind("\n", 0) == 0) {
      contentStart = 1;
    } else {
      // Whichever empty line comes first, CRLF or bare LF; none: headers only.
      const std::size_t crlf = part.find("\r\n\r\n");
      const std::size_t lf = part.find("\n\n");
      if (crlf != std::string_view::npos && (lf == std::string_view::npos || crlf < lf)) {
        headersEnd = crlf;
        contentStart = crlf + 4;
      } else if (lf != std::string_view::npos) {
        headersEnd = lf;
        contentStart = lf + 2;
      } else {
        headersEnd = part.size();
        contentStart = part.size();
      }
    }
    BodyPart parsed;
    if (!readPartHeaders(part.substr(0, headersEnd), parsed)) return std::nullopt;
    parsed.content = std::string(part.substr(contentStart));
    parts.push_back(std::move(parsed));
    at = next + 1;
  }
  if (parts.empty()) return std::nullopt;
  return parts;
}

OutgoingBody buildBody(const std::vector<BodyPart>& parts) {
  OutgoingBody out;
  if (parts.empty()) return out;
  if (parts.size() == 1) {
    const BodyPart& part = parts.front();
    out.contentType = part.contentType.empty() ? part.type : part.contentType;
    out.disposition = part.disposition;
    out.bytes = part.content;
    return out;
  }
  std::string boundary = freshBoundary();
  while (std::any_of(parts.begin(), parts.end(), [&](const BodyPart& part) {
    return part.content.find(boundary) != std::string::npos;
  })) {
    boundary = freshBoundary();
  }
  for (const BodyPart& part : parts) {
    out.bytes += "--" + boundary + "\r\n";
    if (!part.contentType.empty()) out.bytes += "Content-Type: " + part.contentType + "\r\n";
    if (!part.disposition.empty()) {
      out.bytes += "Content-Disposition: " + part.disposition + "\r\n";
    }
    out.bytes += "\r\n";
    out.bytes += part.content;
    out.bytes += "\r\n";
  }
  out.bytes += "--" + boundary + "--\r\n";
  out.contentType = "multipart/mixed;boundary=" + boundary;
  return out;
}

}  // namespace sbc::signaling
