#pragma once
// SIP messages for signaling's unit tests, parsed by Sofia-SIP as nta parses them.

#include <memory>
#include <string>

#include <sofia-sip/msg.h>
#include <sofia-sip/sip.h>

namespace sbc::signaling::testing {

struct MessageDeleter {
  void operator()(msg_t* msg) const { msg_destroy(msg); }
};
using Message = std::unique_ptr<msg_t, MessageDeleter>;

inline Message parse(const std::string& text) {
  return Message(msg_make(sip_default_mclass(), 0, text.data(), text.size()));
}

// A request from a PBX to sbcd: `method` with CSeq `cseq`, inside a dialog (To tag) when
// `inDialog`, with `contentType` (none when empty) and `body`.
inline Message requestWithBody(const std::string& method, unsigned cseq, bool inDialog,
                               const std::string& contentType, const std::string& body) {
  return parse(method + " sip:100@sbc SIP/2.0\r\n"
               "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n"
               "From: <sip:200@pbx.example>;tag=1\r\n"
               "To: <sip:100@sbc>" + (inDialog ? ";tag=2" : "") + "\r\n"
               "Call-ID: abc@pbx.example\r\n"
               "CSeq: " + std::to_string(cseq) + " " + method + "\r\n" +
               (contentType.empty() ? "" : "Content-Type: " + contentType + "\r\n") +
               "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body);
}

}  // namespace sbc::signaling::testing
