// Which bodies cross between the legs of a call (sip.body_types): parsed by Sofia-SIP as nta
// parses them.

#include "signaling/body_filter.h"

#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <sofia-sip/msg.h>

#include "tests/signaling/sip_message.h"

namespace sbc::signaling {
namespace {

using testing::Message;

const std::vector<std::string> kAllowed = {"application/dtmf-relay", "application/dtmf",
                                           "text/plain"};

// An INFO with `contentType` (none when empty) and `body`.
Message info(const std::string& contentType, const std::string& body) {
  return testing::requestWithBody("INFO", 2, true, contentType, body);
}

BodyVerdict verdictOn(const std::string& contentType, const std::string& body) {
  const Message message = info(contentType, body);
  EXPECT_NE(message, nullptr);
  return filterBody(sip_object(message.get()), kAllowed).verdict;
}

const std::string kMultipartType = "multipart/mixed;boundary=unique-boundary-1";
std::string multipart(const std::string& secondType) {
  return "--unique-boundary-1\r\n"
         "Content-Type: application/dtmf-relay\r\n\r\n"
         "Signal=5\r\nDuration=160\r\n"
         "--unique-boundary-1\r\n"
         "Content-Type: " + secondType + "\r\n\r\n"
         "<presence entity=\"sip:200@pbx.example\"/>\r\n"
         "--unique-boundary-1--\r\n";
}

// Proves: a listed type is allowed whatever its case and parameters; no body is no verdict.
TEST(BodyFilter, ListedTypesAreAllowed) {
  EXPECT_EQ(verdictOn("application/dtmf-relay", "Signal=5\r\n"), BodyVerdict::allowed);
  EXPECT_EQ(verdictOn("Text/Plain;charset=UTF-8", "hello"), BodyVerdict::allowed);
  EXPECT_EQ(verdictOn("", ""), BodyVerdict::none);
}

// Proves: message/sipfrag is allowed without being listed (sbcd rewrites it itself).
TEST(BodyFilter, SipfragIsAlwaysAllowed) {
  EXPECT_EQ(verdictOn("message/sipfrag", "SIP/2.0 200 OK\r\n"), BodyVerdict::allowed);
}

// Proves: a type off the list, and a body without Content-Type, are refused.
TEST(BodyFilter, OtherTypesAreRefused) {
  EXPECT_EQ(verdictOn("application/pidf+xml", "<presence/>"), BodyVerdict::refusedType);
  EXPECT_EQ(verdictOn("application/dialog-info+xml", "<dialog-info/>"),
            BodyVerdict::refusedType);
  EXPECT_EQ(verdictOn("", "Signal=5\r\n"), BodyVerdict::refusedType);
}

// Proves: a multipart body is allowed when every part's type is listed, and refused when one
// part's is not, when it nests a multipart, or when it cannot be split into parts.
TEST(BodyFilter, MultipartNeedsEveryPartListed) {
  EXPECT_EQ(verdictOn(kMultipartType, multipart("text/plain")), BodyVerdict::allowed);
  EXPECT_EQ(verdictOn(kMultipartType, multipart("application/pidf+xml")),
            BodyVerdict::refusedMultipart);
  EXPECT_EQ(verdictOn(kMultipartType, multipart("multipart/mixed;boundary=x")),
            BodyVerdict::refusedMultipart);
  EXPECT_EQ(verdictOn(kMultipartType, "no boundary anywhere"), BodyVerdict::refusedMultipart);
  EXPECT_EQ(verdictOn("multipart/mixed", multipart("text/plain")),
            BodyVerdict::refusedMultipart);  // no boundary parameter
}

// Proves: nothing hides outside the parts of an allowed multipart body: text in the
// preamble, the epilogue or a delimiter line refuses it, as does a part whose headers are
// not plain lines or that is never closed.
TEST(BodyFilter, MultipartRefusesTextOutsideItsParts) {
  EXPECT_EQ(verdictOn(kMultipartType, "sip:secret@core.example\r\n" + multipart("text/plain")),
            BodyVerdict::refusedMultipart);
  EXPECT_EQ(verdictOn(kMultipartType, multipart("text/plain") + "sip:secret@core.example\r\n"),
            BodyVerdict::refusedMultipart);
  EXPECT_EQ(verdictOn(kMultipartType,
                      "--unique-boundary-1 sip:secret@core.example\r\n\r\nhi\r\n"
                      "--unique-boundary-1--\r\n"),
            BodyVerdict::refusedMultipart);
  EXPECT_EQ(verdictOn(kMultipartType,
                      "--unique-boundary-1\r\nContent-Type: text/plain\r\n folded\r\n\r\nhi\r\n"
                      "--unique-boundary-1--\r\n"),
            BodyVerdict::refusedMultipart);
  EXPECT_EQ(verdictOn(kMultipartType, "--unique-boundary-1\r\n\r\nhi\r\n"),
            BodyVerdict::refusedMultipart);
}

// Proves: a body that made Sofia's own multipart parser abort the process (an assertion on
// a part header it could not extract; found by sip_message_fuzz) is refused, not a crash.
TEST(BodyFilter, MalformedMultipartIsRefusedWithoutCrashing) {
  const std::string body(
      "--b1\r\nContent-Type: application/dtmf-relay\r\n\xf5\nSignal=5\r\nDuration=1"
      "\0\0\0\0\0\0\0\x1a\r\nContent-Type: text/plain\r\n\r\nhello\r\n--b1--\r\n",
      119);
  EXPECT_EQ(verdictOn("multipart/mixed;boundary=b1", body), BodyVerdict::refusedMultipart);
}

// The body `filterBody` lets cross for an INFO with `contentType` and `body`.
OutgoingBody crossingOf(const std::string& contentType, const std::string& body) {
  const Message message = info(contentType, body);
  EXPECT_NE(message, nullptr);
  return filterBody(sip_object(message.get()), kAllowed).crossing;
}

// Proves: the verdict comes with the body as it crosses, from the same split: a sipfrag cut
// to its status line (its quoted Contact stays behind), a listed body as it came, a
// multipart body rebuilt under a boundary of sbcd's with every part's bytes, nothing for a
// refused one.
TEST(BodyFilter, AllowedBodiesComeWithWhatCrosses) {
  const OutgoingBody fragment =
      crossingOf("message/sipfrag", "SIP/2.0 200 OK\r\nContact: <sip:pbx@10.1.2.3>\r\n");
  EXPECT_EQ(fragment.contentType, "message/sipfrag");
  EXPECT_EQ(fragment.bytes, "SIP/2.0 200 OK\r\n");

  const OutgoingBody dtmf = crossingOf("application/dtmf-relay", "Signal=5\r\n");
  EXPECT_EQ(dtmf.contentType, "application/dtmf-relay");
  EXPECT_EQ(dtmf.bytes, "Signal=5\r\n");

  const OutgoingBody rebuilt = crossingOf(kMultipartType, multipart("text/plain"));
  const std::string prefix = "multipart/mixed;boundary=";
  ASSERT_EQ(rebuilt.contentType.rfind(prefix, 0), 0u) << rebuilt.contentType;
  EXPECT_EQ(rebuilt.contentType.find("unique-boundary-1"), std::string::npos);
  const auto parts = splitMultipart(rebuilt.contentType.substr(prefix.size()), rebuilt.bytes);
  ASSERT_TRUE(parts.has_value()) << rebuilt.bytes;
  ASSERT_EQ(parts->size(), 2u);
  EXPECT_EQ((*parts)[0].content, "Signal=5\r\nDuration=160");
  EXPECT_EQ((*parts)[1].content, "<presence entity=\"sip:200@pbx.example\"/>");

  EXPECT_TRUE(crossingOf(kMultipartType, multipart("application/pidf+xml")).empty());
  EXPECT_TRUE(crossingOf("application/pidf+xml", "<presence/>").empty());
}

// Proves: the 415's Accept lists the configured types and message/sipfrag, and each refusal
// has its label.
TEST(BodyFilter, AcceptAndReasons) {
  EXPECT_EQ(acceptedTypes(kAllowed),
            "application/dtmf-relay, application/dtmf, text/plain, message/sipfrag");
  EXPECT_EQ(acceptedTypes({}), "message/sipfrag");
  EXPECT_STREQ(refusalReason(BodyVerdict::refusedType), "content_type");
  EXPECT_STREQ(refusalReason(BodyVerdict::refusedMultipart), "multipart");
}

}  // namespace
}  // namespace sbc::signaling
