// Which headers cross between the legs of a call: parsed by Sofia-SIP as nta parses them.

#include "signaling/header_allow_list.h"

#include <cstring>
#include <memory>

#include <gtest/gtest.h>

#include <sofia-sip/msg.h>

#include "tests/signaling/sip_message.h"

namespace sbc::signaling {
namespace {

using testing::Message;
using testing::parse;

const std::string kInvite =
    "INVITE sip:100@sbc SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n"
    "From: <sip:200@pbx.example>;tag=1\r\n"
    "To: <sip:100@sbc>\r\n"
    "Call-ID: abc@pbx.example\r\n"
    "CSeq: 1 INVITE\r\n"
    "X-Account-Code: 4711\r\n"
    "X-Internal-Route: pbx7.example\r\n"
    "x-account-code: 4712\r\n"
    "Subject: quarterly numbers\r\n"
    "Organization: pbx.example\r\n"
    "P-Asserted-Identity: <sip:200@pbx.example>\r\n"
    "User-Agent: PBX/1.0\r\n"
    "Content-Length: 0\r\n"
    "\r\n";

// Proves: listed headers cross with their values (unknown and known to Sofia alike, any
// case, every occurrence); unlisted ones do not.
TEST(HeaderAllowList, OnlyListedHeadersCross) {
  const Message msg = parse(kInvite);
  ASSERT_TRUE(msg);
  const sip_t* sip = sip_object(msg.get());
  EXPECT_EQ(allowedHeaderLines(sip, {"X-Account-Code", "Subject"}),
            "X-Account-Code: 4711\r\nX-Account-Code: 4712\r\nSubject: quarterly numbers\r\n");
  EXPECT_EQ(allowedHeaderLines(sip, {"P-Asserted-Identity"}),
            "P-Asserted-Identity: <sip:200@pbx.example>\r\n");
  EXPECT_EQ(allowedHeaderLines(sip, {}), "");
  EXPECT_EQ(allowedHeaderLines(sip, {"X-Not-There"}), "");
  EXPECT_EQ(allowedHeaderLines(nullptr, {"Subject"}), "");
}

// Proves: a value too long for one line is dropped rather than cut.
TEST(HeaderAllowList, OverlongValueIsDropped) {
  std::string text = kInvite;
  text.insert(text.find("Content-Length"),
              "X-Big: " + std::string(kMaxPassedValue + 1, 'a') + "\r\n");
  const Message msg = parse(text);
  ASSERT_TRUE(msg);
  EXPECT_EQ(allowedHeaderLines(sip_object(msg.get()), {"X-Big", "X-Account-Code"}),
            "X-Account-Code: 4711\r\nX-Account-Code: 4712\r\n");
}

}  // namespace
}  // namespace sbc::signaling
