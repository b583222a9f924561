// Multipart bodies split and rebuilt by sbcd (multipart.h), and a SIP-I message's body taken
// apart into the SDP sbcd anchors and the parts that cross beside it (body_filter.h).

#include "signaling/multipart.h"

#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <sofia-sip/msg.h>

#include "signaling/body_filter.h"
#include "tests/signaling/sip_message.h"

namespace sbc::signaling {
namespace {

using testing::Message;

// An INVITE with `contentType` (none when empty) and `body`.
Message invite(const std::string& contentType, const std::string& body) {
  return testing::requestWithBody("INVITE", 1, false, contentType, body);
}

const std::string kSdp =
    "v=0\r\no=gw 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
    "m=audio 4000 RTP/AVP 8\r\n";
// An ISUP IAM's bytes as a SIP-I gateway sends them: binary, with NUL, CR, LF and a "--".
const std::string kIsup("\x01\x00\x60\x01\x0a\x00\x02\x0a\x08\x83\x90\x89\x12\r\n--\x0f\x0a"
                        "\x07\x03\x13\x09\x21\x43\x65\x00",
                        28);
const std::string kSipIType = "multipart/mixed;boundary=gw-stack-boundary-42";
const std::string kSipIBody =
    "--gw-stack-boundary-42\r\n"
    "Content-Type: application/sdp\r\n"
    "\r\n" + kSdp + "\r\n"
    "--gw-stack-boundary-42\r\n"
    "Content-Type: application/ISUP; version=itu-t92+\r\n"
    "Content-Disposition: signal; handling=optional\r\n"
    "Content-ID: <isup@gw.example>\r\n"
    "\r\n" + kIsup + "\r\n"
    "--gw-stack-boundary-42--\r\n";

const std::vector<std::string> kIsupAllowed = {"application/dtmf-relay", "application/isup"};
const std::vector<std::string> kIsupNotAllowed = {"application/dtmf-relay"};

// Proves: a SIP-I body splits into its SDP and ISUP parts, each part's bytes exactly as sent
// (binary ISUP with NUL, CR, LF and "--" in it; the CRLF before a delimiter is not part of
// the part), the type lower case, Content-Type (parameters kept) and Content-Disposition as
// Sofia prints them; no other part header is kept.
TEST(Multipart, SplitsASipIBodyByteForByte) {
  const auto parts = splitMultipart("gw-stack-boundary-42", kSipIBody);
  ASSERT_TRUE(parts.has_value());
  ASSERT_EQ(parts->size(), 2u);
  EXPECT_EQ((*parts)[0].type, "application/sdp");
  EXPECT_EQ((*parts)[0].content, kSdp);
  EXPECT_TRUE((*parts)[0].disposition.empty());
  EXPECT_EQ((*parts)[1].type, "application/isup");
  EXPECT_EQ((*parts)[1].contentType, "application/ISUP;version=itu-t92+");
  EXPECT_EQ((*parts)[1].disposition, "signal;handling=optional");
  EXPECT_EQ((*parts)[1].content, kIsup);
}

// Proves: what cannot be split cleanly is refused: no or a wrong boundary, no close
// delimiter, text outside the parts, a part whose Content-Type or Content-Disposition does
// not parse, a header with a lone CR, more than 16 parts.
TEST(Multipart, RefusesWhatCannotBeSplitCleanly) {
  EXPECT_FALSE(splitMultipart("", kSipIBody).has_value());
  EXPECT_FALSE(splitMultipart("other-boundary", kSipIBody).has_value());
  EXPECT_FALSE(splitMultipart(std::string(71, 'b'), kSipIBody).has_value());
  EXPECT_FALSE(
      splitMultipart("b", "--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n--b\r\n").has_value());
  EXPECT_FALSE(splitMultipart("b", "junk\r\n--b\r\n\r\nhi\r\n--b--\r\n").has_value());
  EXPECT_FALSE(splitMultipart("b", "--b\r\nContent-Type: /\r\n\r\nhi\r\n--b--\r\n").has_value());
  EXPECT_FALSE(
      splitMultipart("b", "--b\r\nContent-Disposition: ;;\r\n\r\nhi\r\n--b--\r\n").has_value());
  EXPECT_FALSE(
      splitMultipart("b", "--b\r\nContent-Type: text/plain\rX: y\r\n\r\nhi\r\n--b--\r\n")
          .has_value());
  std::string many;
  for (int i = 0; i < 17; ++i) many += "--b\r\n\r\npart\r\n";
  EXPECT_FALSE(splitMultipart("b", many + "--b--\r\n").has_value());
  EXPECT_TRUE(splitMultipart("b", "--b\r\n\r\npart\r\n--b--\r\n").has_value());
}

// Proves: parts rebuilt into one body split back into the same parts; the boundary is
// fresh each time (not the sender's, not the last one) and occurs in no part; one part
// alone is a plain body of its own type and disposition; none is no body.
TEST(Multipart, RebuildsWithAFreshBoundary) {
  const auto parts = splitMultipart("gw-stack-boundary-42", kSipIBody);
  ASSERT_TRUE(parts.has_value());
  const OutgoingBody first = buildBody(*parts);
  const OutgoingBody second = buildBody(*parts);
  EXPECT_EQ(first.bytes.find("gw-stack-boundary-42"), std::string::npos);
  EXPECT_EQ(first.contentType.rfind("multipart/mixed;boundary=", 0), 0u) << first.contentType;
  EXPECT_NE(first.contentType, second.contentType);
  EXPECT_TRUE(first.disposition.empty());
  const std::string boundary = first.contentType.substr(first.contentType.find('=') + 1);
  const auto again = splitMultipart(boundary, first.bytes);
  ASSERT_TRUE(again.has_value()) << first.bytes;
  ASSERT_EQ(again->size(), 2u);
  for (std::size_t i = 0; i < 2; ++i) {
    EXPECT_EQ((*again)[i].type, (*parts)[i].type);
    EXPECT_EQ((*again)[i].contentType, (*parts)[i].contentType);
    EXPECT_EQ((*again)[i].disposition, (*parts)[i].disposition);
    EXPECT_EQ((*again)[i].content, (*parts)[i].content);
  }
  EXPECT_EQ(first.bytes.find("Content-ID"), std::string::npos);

  const OutgoingBody alone = buildBody({(*parts)[1]});
  EXPECT_EQ(alone.contentType, "application/ISUP;version=itu-t92+");
  EXPECT_EQ(alone.disposition, "signal;handling=optional");
  EXPECT_EQ(alone.bytes, kIsup);
  EXPECT_TRUE(buildBody({}).empty());
}

// Proves: a SIP-I INVITE's body gives the SDP to anchor and the ISUP part to pass when
// application/isup is listed; crossing() puts the rewritten SDP first and the ISUP part
// byte for byte after it, under a fresh boundary.
TEST(SessionBody, SipIOfferKeepsItsIsupWhenListed) {
  const Message message = invite(kSipIType, kSipIBody);
  ASSERT_NE(message, nullptr);
  std::string error;
  const auto split = splitSessionBody(sip_object(message.get()), kIsupAllowed, error);
  ASSERT_TRUE(split.has_value()) << error;
  ASSERT_TRUE(split->sdp.has_value());
  EXPECT_EQ(*split->sdp, kSdp);
  EXPECT_FALSE(split->refusedParts);
  ASSERT_EQ(split->passed.size(), 1u);

  const std::string rewritten = "v=0\r\no=sbc 9 9 IN IP4 127.0.0.11\r\n";
  const OutgoingBody out = split->crossing(rewritten);
  const std::string boundary = out.contentType.substr(out.contentType.find('=') + 1);
  const auto parts = splitMultipart(boundary, out.bytes);
  ASSERT_TRUE(parts.has_value()) << out.bytes;
  ASSERT_EQ(parts->size(), 2u);
  EXPECT_EQ((*parts)[0].type, "application/sdp");
  EXPECT_EQ((*parts)[0].content, rewritten);
  EXPECT_EQ((*parts)[1].content, kIsup);
  EXPECT_EQ((*parts)[1].disposition, "signal;handling=optional");
}

// Proves: with application/isup off the list the ISUP part is left out and said so, and what
// crosses is the rewritten SDP alone as a plain application/sdp body.
TEST(SessionBody, UnlistedIsupIsLeftOutAndSdpCrossesPlain) {
  const Message message = invite(kSipIType, kSipIBody);
  std::string error;
  const auto split = splitSessionBody(sip_object(message.get()), kIsupNotAllowed, error);
  ASSERT_TRUE(split.has_value()) << error;
  EXPECT_TRUE(split->refusedParts);
  EXPECT_TRUE(split->multipart);
  EXPECT_TRUE(split->passed.empty());
  const OutgoingBody out = split->crossing("v=0\r\n");
  EXPECT_EQ(out.contentType, "application/sdp");
  EXPECT_EQ(out.bytes, "v=0\r\n");
  EXPECT_TRUE(out.disposition.empty());
}

// Proves: a multipart body with two SDP parts, or one that cannot be split, is no usable
// offer (nullopt with the reason); a plain SDP body is the SDP; a plain body of another
// type has no SDP and passes only if listed; no body is an empty split.
TEST(SessionBody, AmbiguousOrBrokenBodiesAreRefused) {
  std::string error;
  const std::string twoSdp = "--b\r\nContent-Type: application/sdp\r\n\r\n" + kSdp +
                             "\r\n--b\r\nContent-Type: application/sdp\r\n\r\n" + kSdp +
                             "\r\n--b--\r\n";
  const Message two = invite("multipart/mixed;boundary=b", twoSdp);
  EXPECT_FALSE(splitSessionBody(sip_object(two.get()), kIsupAllowed, error).has_value());
  EXPECT_NE(error.find("more than one"), std::string::npos) << error;

  error.clear();
  const Message broken = invite("multipart/mixed;boundary=wrong", kSipIBody);
  EXPECT_FALSE(splitSessionBody(sip_object(broken.get()), kIsupAllowed, error).has_value());
  EXPECT_NE(error.find("cannot be split"), std::string::npos) << error;

  const Message plain = invite("application/sdp", kSdp);
  const auto sdp = splitSessionBody(sip_object(plain.get()), {}, error);
  ASSERT_TRUE(sdp && sdp->sdp);
  EXPECT_EQ(*sdp->sdp, kSdp);
  EXPECT_EQ(sdp->crossing("v=0\r\n").contentType, "application/sdp");

  const Message isupOnly = invite("application/isup;version=itu-t92+", kIsup);
  const auto listed = splitSessionBody(sip_object(isupOnly.get()), kIsupAllowed, error);
  ASSERT_TRUE(listed.has_value());
  EXPECT_FALSE(listed->sdp.has_value());
  EXPECT_EQ(listed->crossing("").bytes, kIsup);
  EXPECT_EQ(listed->crossing("").contentType, "application/isup;version=itu-t92+");
  const auto unlisted = splitSessionBody(sip_object(isupOnly.get()), kIsupNotAllowed, error);
  ASSERT_TRUE(unlisted.has_value());
  EXPECT_TRUE(unlisted->refusedParts);
  EXPECT_TRUE(unlisted->crossing("").empty());

  const Message none = invite("", "");
  const auto empty = splitSessionBody(sip_object(none.get()), kIsupAllowed, error);
  ASSERT_TRUE(empty.has_value());
  EXPECT_FALSE(empty->sdp.has_value());
  EXPECT_TRUE(empty->crossing("").empty());
}

// Proves: a body without Content-Type (RFC 3261 requires one) is taken for SDP, as sbcd did
// before multipart bodies were split: an offer from a peer that leaves the header out is
// still anchored (the SDP parser decides), not turned into a late offer.
TEST(SessionBody, ABodyWithoutContentTypeIsTakenForSdp) {
  const Message message = invite("", kSdp);
  ASSERT_NE(message, nullptr);
  std::string error;
  const auto split = splitSessionBody(sip_object(message.get()), kIsupAllowed, error);
  ASSERT_TRUE(split && split->sdp) << error;
  EXPECT_EQ(*split->sdp, kSdp);
  EXPECT_FALSE(split->refusedParts);
}

}  // namespace
}  // namespace sbc::signaling
