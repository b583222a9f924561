#include "signaling/sdp.h"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <memory>
#include <vector>

#include <strings.h>

#include "signaling/sofia.h"

#include <sofia-sip/sdp.h>
#include <sofia-sip/su_alloc.h>

namespace sbc::signaling {
namespace {

// Mode attributes are read and kept as written (sdp_f_mode_manual), never regenerated.
constexpr int kParseFlags = sdp_f_mode_manual;
constexpr int kPrintFlags = sdp_f_mode_manual;
constexpr std::size_t kMaxSdpBytes = 65536;

struct ParserDeleter {
  void operator()(sdp_parser_t* parser) const { sdp_parser_free(parser); }
};
using SofiaParser = std::unique_ptr<sdp_parser_t, ParserDeleter>;

bool isIceAttribute(const char* name) {
  return std::strcmp(name, "candidate") == 0 || std::strncmp(name, "ice-", 4) == 0 ||
         std::strcmp(name, "remote-candidates") == 0 ||
         std::strcmp(name, "end-of-candidates") == 0;
}

SdpDirection directionOf(const sdp_attribute_t* attributes, SdpDirection fallback) {
  for (const sdp_attribute_t* a = attributes; a != nullptr; a = a->a_next) {
    if (a->a_name == nullptr) continue;
    if (std::strcmp(a->a_name, "sendonly") == 0) return SdpDirection::sendonly;
    if (std::strcmp(a->a_name, "recvonly") == 0) return SdpDirection::recvonly;
    if (std::strcmp(a->a_name, "inactive") == 0) return SdpDirection::inactive;
    if (std::strcmp(a->a_name, "sendrecv") == 0) return SdpDirection::sendrecv;
  }
  return fallback;
}

const sdp_attribute_t* findAttribute(const sdp_attribute_t* attributes, const char* name) {
  for (const sdp_attribute_t* a = attributes; a != nullptr; a = a->a_next) {
    if (a->a_name != nullptr && std::strcmp(a->a_name, name) == 0) return a;
  }
  return nullptr;
}

std::vector<std::string> formatsOf(const sdp_media_t* m) {
  std::vector<std::string> formats;
  for (const sdp_rtpmap_t* map = m->m_rtpmaps; map != nullptr; map = map->rm_next) {
    std::string format = std::to_string(map->rm_pt);
    if (map->rm_pt >= 96 && map->rm_encoding != nullptr) {
      format += ' ';
      for (const char* c = map->rm_encoding; *c != '\0'; ++c) {
        format += static_cast<char>(std::tolower(static_cast<unsigned char>(*c)));
      }
      format += '/';
      format += std::to_string(map->rm_rate);
    }
    formats.push_back(std::move(format));
  }
  for (const sdp_list_t* item = m->m_format; item != nullptr; item = item->l_next) {
    if (item->l_text != nullptr) formats.emplace_back(item->l_text);
  }
  return formats;
}

// Sofia accepts some a=rtpmap lines that it then prints as something else: no encoding
// name ("(null)"), a clock rate past 2^32 - 1 (ULONG_MAX). The description sent on must be
// one its peer, and this parser, accept: refuse those (found by the fuzzer).
const char* rtpmapProblem(const sdp_media_t* m) {
  for (const sdp_rtpmap_t* map = m->m_rtpmaps; map != nullptr; map = map->rm_next) {
    if (map->rm_predef) continue;  // Sofia's own entry for a static payload type
    if (map->rm_encoding == nullptr || map->rm_encoding[0] == '\0') {
      return "a=rtpmap has no encoding name";
    }
    for (const char* c = map->rm_encoding; *c != '\0'; ++c) {
      if (*c < 0x21 || *c > 0x7e) return "a=rtpmap encoding name has a character SDP forbids";
    }
    if (map->rm_rate == 0 || map->rm_rate > 0xffffffffUL) {
      return "a=rtpmap clock rate out of range";
    }
  }
  return nullptr;
}

// RFC 4566 token characters: what an m= line's format list may hold.
bool isTokenChar(unsigned char c) {
  return c == 0x21 || (c >= 0x23 && c <= 0x27) || c == 0x2A || c == 0x2B || c == 0x2D ||
         c == 0x2E || (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) ||
         (c >= 0x5E && c <= 0x7E);
}

bool isToken(std::string_view text) {
  if (text.empty()) return false;
  for (const char c : text) {
    if (!isTokenChar(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

// <digits> or <digits>/<digits>
bool isPortSpec(std::string_view text) {
  const auto slash = text.find('/');
  const auto digits = [](std::string_view part) {
    return !part.empty() && part.size() <= 5 &&
           part.find_first_not_of("0123456789") == std::string_view::npos;
  };
  return slash == std::string_view::npos
             ? digits(text)
             : digits(text.substr(0, slash)) && digits(text.substr(slash + 1));
}

// token *("/" token), e.g. RTP/SAVPF or udptl
bool isProto(std::string_view text) {
  for (std::size_t at = 0;;) {
    const auto slash = text.find('/', at);
    if (!isToken(text.substr(at, slash == std::string_view::npos ? slash : slash - at))) {
      return false;
    }
    if (slash == std::string_view::npos) return true;
    at = slash + 1;
  }
}

bool mediaLineIsWellFormed(const std::vector<std::string_view>& fields) {
  if (fields.size() < 4 || !isToken(fields[0]) || !isPortSpec(fields[1]) ||
      !isProto(fields[2])) {
    return false;
  }
  for (std::size_t i = 3; i < fields.size(); ++i) {
    if (!isToken(fields[i])) return false;
  }
  return true;
}

// Sofia-SIP 1.12.11's sdp_parse() loops allocating without end on an m= line whose format
// list holds a non-token character (e.g. "m=audio 4 X 2001:db8::2": 19 GB, then failure,
// found by tests/fuzz/sdp_fuzz). Such lines are not SDP (RFC 4566: fmt is a token), so they
// are refused before Sofia sees them.
bool mediaLinesAreTokens(std::string_view body, std::string& error) {
  std::size_t start = 0;
  while (start < body.size()) {
    // Sofia ends a line at CR or LF alone as well as at CRLF: split the same way. (A plain
    // loop: find_first_of with a two-character set calls memchr once per character.)
    std::size_t end = start;
    while (end < body.size() && body[end] != '\r' && body[end] != '\n') ++end;
    const std::string_view line = body.substr(start, end - start);
    start = end + 1;
    if (line.empty()) continue;
    // <type>=<value> with a lower-case letter as type (RFC 4566); Sofia would also take a
    // line with leading blanks, which would slip past the m= check below.
    if (line.size() < 2 || line[0] < 'a' || line[0] > 'z' || line[1] != '=') {
      error = "SDP line is not <letter>=<value>";
      return false;
    }
    if (line[0] != 'm') continue;
    // m=<media> <port>[/<count>] <proto> <fmt> ...: RFC 4566's grammar, field by field.
    std::vector<std::string_view> fields;
    for (std::size_t at = 2; at <= line.size();) {
      std::size_t space = line.find(' ', at);
      if (space == std::string_view::npos) space = line.size();
      fields.push_back(line.substr(at, space - at));
      at = space + 1;
    }
    if (!mediaLineIsWellFormed(fields)) {
      error = "m= line is not <media> <port> <proto> <formats> in SDP's characters";
      return false;
    }
  }
  return true;
}

// Parses `body` into a session owned by the returned parser (its own memory home, which
// also holds the rewritten session and its printer); nullptr with `error` set.
SofiaParser parseWithSofia(std::string_view body, std::string& error) {
  if (body.empty() || body.size() > kMaxSdpBytes) {
    error = body.empty() ? "empty SDP" : "SDP larger than 64 KiB";
    return nullptr;
  }
  if (body.find('\0') != std::string_view::npos) {
    error = "SDP contains a NUL byte";
    return nullptr;
  }
  if (!mediaLinesAreTokens(body, error)) return nullptr;
  SofiaParser parser(
      sdp_parse(nullptr, body.data(), static_cast<issize_t>(body.size()), kParseFlags));
  if (!parser) {
    error = "SDP parser failed";
    return nullptr;
  }
  if (const char* problem = sdp_parsing_error(parser.get())) {
    error = std::string("bad SDP: ") + problem;
    return nullptr;
  }
  const sdp_session_t* session = sdp_session(parser.get());
  if (session == nullptr || session->sdp_media == nullptr) {
    error = "SDP has no m= line";
    return nullptr;
  }
  return parser;
}

std::optional<policy::IpAddress> connectionAddress(const sdp_connection_t* connection) {
  if (connection == nullptr || connection->c_address == nullptr) return std::nullopt;
  return policy::IpAddress::parse(connection->c_address);
}

}  // namespace

struct ParsedSdp::Parser {
  SofiaParser sofia;
};

ParsedSdp::ParsedSdp(std::unique_ptr<Parser> parser, SdpDescription description)
    : parser_(std::move(parser)), description_(std::move(description)) {}
ParsedSdp::ParsedSdp(ParsedSdp&&) noexcept = default;
ParsedSdp& ParsedSdp::operator=(ParsedSdp&&) noexcept = default;
ParsedSdp::~ParsedSdp() = default;

std::optional<ParsedSdp> ParsedSdp::parse(std::string_view body, std::string& error) {
  SofiaParser parser = parseWithSofia(body, error);
  if (!parser) return std::nullopt;
  const sdp_session_t* session = sdp_session(parser.get());
  const SdpDirection sessionDirection =
      directionOf(session->sdp_attributes, SdpDirection::sendrecv);

  SdpDescription description;
  for (const sdp_media_t* m = session->sdp_media; m != nullptr; m = m->m_next) {
    SdpStream stream;
    stream.media = m->m_type_name != nullptr ? m->m_type_name : "";
    stream.rejected = m->m_port == 0 || m->m_rejected;
    stream.direction = directionOf(m->m_attributes, sessionDirection);
    stream.rtcpMux = findAttribute(m->m_attributes, "rtcp-mux") != nullptr;
    if (const char* problem = rtpmapProblem(m)) {
      error = problem;
      return std::nullopt;
    }
    stream.formats = formatsOf(m);
    if (!stream.rejected) {
      if (m->m_port > 65535) {
        error = "m= port out of range";
        return std::nullopt;
      }
      const sdp_connection_t* connection =
          m->m_connections != nullptr ? m->m_connections : session->sdp_connection;
      const auto address = connectionAddress(connection);
      if (!address) {
        error = "c= is missing or not a literal IP address";
        return std::nullopt;
      }
      stream.rtp = dataplane::MediaAddress{*address, static_cast<std::uint16_t>(m->m_port)};
      if (const sdp_attribute_t* rtcp = findAttribute(m->m_attributes, "rtcp");
          rtcp != nullptr && rtcp->a_value != nullptr) {
        // a=rtcp:PORT [IN IP4 ADDRESS]
        char* end = nullptr;
        const unsigned long port = std::strtoul(rtcp->a_value, &end, 10);
        if (end == rtcp->a_value || port == 0 || port > 65535) {
          error = "a=rtcp has no valid port";
          return std::nullopt;
        }
        dataplane::MediaAddress target{*address, static_cast<std::uint16_t>(port)};
        const std::string_view rest(end);
        const auto ip = rest.rfind(' ');
        if (ip != std::string_view::npos && rest.find("IN IP") != std::string_view::npos) {
          const auto explicitAddress = policy::IpAddress::parse(rest.substr(ip + 1));
          if (!explicitAddress) {
            error = "a=rtcp names an address that is not a literal IP address";
            return std::nullopt;
          }
          target.address = *explicitAddress;
        }
        stream.rtcp = target;
      }
    }
    description.streams.push_back(std::move(stream));
  }
  return ParsedSdp(std::make_unique<Parser>(Parser{std::move(parser)}), std::move(description));
}

std::optional<std::string> ParsedSdp::rewrite(const policy::IpAddress& address,
                                              const std::vector<std::uint16_t>& relayPorts,
                                              std::uint64_t sessionId, std::uint64_t version,
                                              std::string& error) {
  if (!parser_) {
    error = "SDP already rewritten";
    return std::nullopt;
  }
  // Whatever happens below, the session is no longer the peer's: never rewrite it twice.
  const std::unique_ptr<Parser> parser = std::move(parser_);
  sdp_session_t* session = sdp_session(parser->sofia.get());
  su_home_t* sdpHome = sdp_parser_home(parser->sofia.get());

  std::size_t streams = 0;
  for (const sdp_media_t* m = session->sdp_media; m != nullptr; m = m->m_next) ++streams;
  if (streams != relayPorts.size()) {
    error = "one relay port per m= line is needed";
    return std::nullopt;
  }

  const std::string text = address.toString();
  char* ourAddress = su_strdup(sdpHome, text.c_str());
  const sdp_addrtype_e ourType =
      address.family == policy::IpFamily::v4 ? sdp_addr_ip4 : sdp_addr_ip6;
  const auto setConnection = [&](sdp_connection_t* connection) {
    for (; connection != nullptr; connection = connection->c_next) {
      connection->c_nettype = sdp_net_in;
      connection->c_addrtype = ourType;
      connection->c_address = ourAddress;
      connection->c_mcast = 0;
      connection->c_ttl = 0;
      connection->c_groups = 0;
    }
  };

  if (session->sdp_origin != nullptr) {
    session->sdp_origin->o_username = su_strdup(sdpHome, "sbc");
    session->sdp_origin->o_id = sessionId;
    session->sdp_origin->o_version = version;
    setConnection(session->sdp_origin->o_address);
  }
  setConnection(session->sdp_connection);
  // Free text can name the peer's product, host, owner or phone: s= becomes "-" (it is
  // mandatory), i=, u=, e= and p= are dropped.
  session->sdp_subject = su_strdup(sdpHome, "-");
  session->sdp_information = nullptr;
  session->sdp_uri = nullptr;
  session->sdp_emails = nullptr;
  session->sdp_phones = nullptr;
  // ICE candidates name the peer's addresses: none may cross.
  for (sdp_attribute_t** a = &session->sdp_attributes; *a != nullptr;) {
    if ((*a)->a_name != nullptr && isIceAttribute((*a)->a_name)) {
      *a = (*a)->a_next;
    } else {
      a = &(*a)->a_next;
    }
  }

  std::size_t index = 0;
  for (sdp_media_t* m = session->sdp_media; m != nullptr; m = m->m_next, ++index) {
    const bool rejected = m->m_port == 0 || m->m_rejected;
    m->m_port = rejected ? 0 : relayPorts[index];
    m->m_number_of_ports = 0;
    m->m_information = nullptr;
    setConnection(m->m_connections);
    for (sdp_attribute_t** a = &m->m_attributes; *a != nullptr;) {
      sdp_attribute_t* attribute = *a;
      if (attribute->a_name != nullptr && isIceAttribute(attribute->a_name)) {
        *a = attribute->a_next;
        continue;
      }
      if (attribute->a_name != nullptr && std::strcmp(attribute->a_name, "rtcp") == 0) {
        const std::string value = std::to_string(relayPorts[index] + 1) + " IN " +
                                  (ourType == sdp_addr_ip4 ? "IP4 " : "IP6 ") + text;
        attribute->a_value = su_strdup(sdpHome, value.c_str());
      }
      a = &attribute->a_next;
    }
  }

  sdp_printer_t* printer = sdp_print(sdpHome, session, nullptr, 0, kPrintFlags);
  if (printer == nullptr || sdp_printing_error(printer) != nullptr) {
    error = printer != nullptr ? std::string("cannot print SDP: ") + sdp_printing_error(printer)
                               : "cannot print SDP";
    if (printer != nullptr) sdp_printer_free(printer);
    return std::nullopt;
  }
  std::string result(sdp_message(printer), sdp_message_size(printer));
  sdp_printer_free(printer);
  return result;
}

bool answerFits(const SdpDescription& answer, const SdpDescription& offer) {
  if (answer.streams.size() != offer.streams.size()) return false;
  for (std::size_t i = 0; i < answer.streams.size(); ++i) {
    const SdpStream& answered = answer.streams[i];
    const SdpStream& offered = offer.streams[i];
    if (::strcasecmp(answered.media.c_str(), offered.media.c_str()) != 0) return false;
    if (answered.rejected) continue;
    if (offered.rejected) return false;
    for (const auto& format : answered.formats) {
      if (std::find(offered.formats.begin(), offered.formats.end(), format) ==
          offered.formats.end()) {
        return false;
      }
    }
  }
  return true;
}

std::optional<SdpDescription> parseSdp(std::string_view body, std::string& error) {
  auto parsed = ParsedSdp::parse(body, error);
  if (!parsed) return std::nullopt;
  return std::move(parsed->description());
}

std::optional<std::string> rewriteSdp(std::string_view body, const policy::IpAddress& address,
                                      const std::vector<std::uint16_t>& relayPorts,
                                      std::uint64_t sessionId, std::uint64_t version,
                                      std::string& error) {
  auto parsed = ParsedSdp::parse(body, error);
  if (!parsed) return std::nullopt;
  return parsed->rewrite(address, relayPorts, sessionId, version, error);
}

}  // namespace sbc::signaling
