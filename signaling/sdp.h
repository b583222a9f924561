#pragma once
// SDP as the B2BUA needs it, on Sofia-SIP's SDP parser and printer: what each m= line of a
// peer's description asks for, and the description rewritten for the other realm so that
// every address, port and origin in it is the SBC's own. Pure: no I/O, any thread.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dataplane/media_relay.h"

namespace sbc::signaling {

enum class SdpDirection : std::uint8_t { sendrecv, sendonly, recvonly, inactive };

// One m= line as a peer described it.
struct SdpStream {
  std::string media;  // "audio", "video", "image", ...
  bool rejected = false;  // port 0
  std::optional<dataplane::MediaAddress> rtp;   // c= (media or session level) + m= port
  std::optional<dataplane::MediaAddress> rtcp;  // a=rtcp, if given
  bool rtcpMux = false;                          // a=rtcp-mux
  SdpDirection direction = SdpDirection::sendrecv;
  // The m= line's formats in order: an RTP payload type by its number, a dynamic one
  // (96-127) with its a=rtpmap encoding and clock rate ("101 telephone-event/8000",
  // encoding in lower case); other transports' formats as written ("t38").
  std::vector<std::string> formats;
};

struct SdpDescription {
  std::vector<SdpStream> streams;
};

// Whether `answer`, an answer given to another offer, would also answer `offer` (RFC 3264
// 6): the same number of m= lines with the same media types, every stream the answer
// accepts still offered, and every format it accepts offered there too (a dynamic payload
// type under the same number, encoding and clock rate). A stream the answer rejects fits
// any offer.
bool answerFits(const SdpDescription& answer, const SdpDescription& offer);

// A peer's description as Sofia-SIP parsed it, read (description()) and then rewritten for
// the other realm (rewrite()) from the same parse: each body crosses the parser once.
class ParsedSdp {
 public:
  // nullopt (with the reason in `error`) when the body is not SDP Sofia accepts, has no
  // m= line, or names an address that is not a literal IPv4/IPv6 address.
  static std::optional<ParsedSdp> parse(std::string_view body, std::string& error);

  ParsedSdp(ParsedSdp&&) noexcept;
  ParsedSdp& operator=(ParsedSdp&&) noexcept;
  ~ParsedSdp();

  const SdpDescription& description() const noexcept { return description_; }
  SdpDescription& description() noexcept { return description_; }

  // The same description for the other realm: c= and o= carry `address`; stream i's m=
  // port becomes relayPorts[i] (a rejected stream keeps port 0), a=rtcp points at
  // relayPorts[i]+1 on `address`; the o= username becomes "sbc" and its session id and
  // version `sessionId` and `version`; s= becomes "-" and the free-text lines i=, u=, e=,
  // p= are dropped; ICE attributes (candidate, ice-*, remote-candidates,
  // end-of-candidates) are removed. Payload types and all other attributes (rtpmap, fmtp,
  // telephone-event, crypto, rtcp-mux, direction) pass unchanged. nullopt with `error`
  // when relayPorts has not one entry per m= line or Sofia cannot print the result. The
  // parsed session is edited in place: once rewritten, a second call fails.
  std::optional<std::string> rewrite(const policy::IpAddress& address,
                                     const std::vector<std::uint16_t>& relayPorts,
                                     std::uint64_t sessionId, std::uint64_t version,
                                     std::string& error);

 private:
  struct Parser;
  ParsedSdp(std::unique_ptr<Parser> parser, SdpDescription description);

  std::unique_ptr<Parser> parser_;  // nullptr once rewritten
  SdpDescription description_;
};

// ParsedSdp::parse(body).description(), for callers that only read.
std::optional<SdpDescription> parseSdp(std::string_view body, std::string& error);

// ParsedSdp::parse(body) then rewrite(...), for callers that only rewrite.
std::optional<std::string> rewriteSdp(std::string_view body, const policy::IpAddress& address,
                                      const std::vector<std::uint16_t>& relayPorts,
                                      std::uint64_t sessionId, std::uint64_t version,
                                      std::string& error);

}  // namespace sbc::signaling
