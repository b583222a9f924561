// SDP reading and rewriting for the other realm (Sofia-SIP's parser and printer).

#include "signaling/sdp.h"

#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace sbc::signaling {
namespace {

const std::string kOffer =
    "v=0\r\n"
    "o=pbx-user 4711 42 IN IP4 192.0.2.66\r\n"
    "s=PBX-9000 of pbx.example\r\n"
    "i=line 7 at pbx.example\r\n"
    "u=http://pbx.example/about\r\n"
    "e=admin@pbx.example\r\n"
    "p=+1 555 0100\r\n"
    "c=IN IP4 192.0.2.66\r\n"
    "t=0 0\r\n"
    "a=ice-ufrag:Fh3k\r\n"
    "m=audio 40000 RTP/AVP 0 8 101\r\n"
    "i=trunk port 3 of pbx.example\r\n"
    "a=rtpmap:0 PCMU/8000\r\n"
    "a=rtpmap:8 PCMA/8000\r\n"
    "a=rtpmap:101 telephone-event/8000\r\n"
    "a=fmtp:101 0-16\r\n"
    "a=rtcp:40001 IN IP4 192.0.2.66\r\n"
    "a=rtcp-mux\r\n"
    "a=candidate:1 1 UDP 2130706431 192.0.2.66 40000 typ host\r\n"
    "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz\r\n"
    "a=sendonly\r\n"
    "m=video 0 RTP/AVP 96\r\n"
    "a=rtpmap:96 H264/90000\r\n"
    "m=image 40010 udptl t38\r\n"
    "c=IN IP4 192.0.2.67\r\n"
    "a=T38FaxVersion:0\r\n";

const policy::IpAddress kSbc = *policy::IpAddress::parse("127.0.0.11");

// Proves: each m= line's address, port, rtcp, rtcp-mux and direction are read, with the
// session c= as default and the media c= overriding it.
TEST(Sdp, ParsesStreams) {
  std::string error;
  const auto sdp = parseSdp(kOffer, error);
  ASSERT_TRUE(sdp.has_value()) << error;
  ASSERT_EQ(sdp->streams.size(), 3u);
  const auto& audio = sdp->streams[0];
  EXPECT_EQ(audio.media, "audio");
  EXPECT_FALSE(audio.rejected);
  EXPECT_EQ(audio.rtp->address.toString(), "192.0.2.66");
  EXPECT_EQ(audio.rtp->port, 40000);
  EXPECT_EQ(audio.rtcp->port, 40001);
  EXPECT_TRUE(audio.rtcpMux);
  EXPECT_EQ(audio.direction, SdpDirection::sendonly);
  EXPECT_TRUE(sdp->streams[1].rejected);
  EXPECT_FALSE(sdp->streams[1].rtp.has_value());
  EXPECT_EQ(sdp->streams[2].media, "image");
  EXPECT_EQ(sdp->streams[2].rtp->address.toString(), "192.0.2.67");
  EXPECT_EQ(sdp->streams[2].direction, SdpDirection::sendrecv);
}

// Proves: each m= line's formats are read in order, dynamic payload types with their
// encoding (lower case) and clock rate, static ones and non-RTP formats as numbers/tokens.
TEST(Sdp, ReadsFormats) {
  std::string error;
  const auto sdp = parseSdp(kOffer, error);
  ASSERT_TRUE(sdp.has_value()) << error;
  EXPECT_EQ(sdp->streams[0].formats,
            (std::vector<std::string>{"0", "8", "101 telephone-event/8000"}));
  EXPECT_EQ(sdp->streams[1].formats, (std::vector<std::string>{"96 h264/90000"}));
  EXPECT_EQ(sdp->streams[2].formats, (std::vector<std::string>{"t38"}));
}

SdpDescription describe(const std::string& media) {
  std::string error;
  auto sdp = parseSdp("v=0\r\no=x 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\n"
                      "t=0 0\r\n" + media, error);
  EXPECT_TRUE(sdp.has_value()) << error;
  return sdp.value_or(SdpDescription{});
}

// Proves: an answer fits another offer only with the same m= lines, every accepted format
// offered there (a dynamic payload type under the same number, encoding and rate), and no
// accepted stream the offer rejects; a stream the answer rejects fits anything.
TEST(Sdp, AnswerFitsAnOfferOfferingWhatItAccepts) {
  const auto answer = describe(
      "m=audio 5000 RTP/AVP 8 101\r\na=rtpmap:101 telephone-event/8000\r\n"
      "m=video 0 RTP/AVP 96\r\n");
  EXPECT_TRUE(answerFits(answer, describe("m=audio 6000 RTP/AVP 0 8 101\r\n"
                                          "a=rtpmap:101 TELEPHONE-EVENT/8000\r\n"
                                          "m=video 6002 RTP/AVP 97\r\n"
                                          "a=rtpmap:97 VP8/90000\r\n")));
  // PCMA missing.
  EXPECT_FALSE(answerFits(answer, describe("m=audio 6000 RTP/AVP 0 101\r\n"
                                           "a=rtpmap:101 telephone-event/8000\r\n"
                                           "m=video 6002 RTP/AVP 96\r\n")));
  // telephone-event under another number.
  EXPECT_FALSE(answerFits(answer, describe("m=audio 6000 RTP/AVP 8 100\r\n"
                                           "a=rtpmap:100 telephone-event/8000\r\n"
                                           "m=video 6002 RTP/AVP 96\r\n")));
  // One m= line fewer, another media type, the accepted stream rejected by the offer.
  EXPECT_FALSE(answerFits(answer, describe("m=audio 6000 RTP/AVP 8 101\r\n"
                                           "a=rtpmap:101 telephone-event/8000\r\n")));
  EXPECT_FALSE(answerFits(answer, describe("m=audio 6000 RTP/AVP 8 101\r\n"
                                           "a=rtpmap:101 telephone-event/8000\r\n"
                                           "m=image 6002 udptl t38\r\n")));
  EXPECT_FALSE(answerFits(answer, describe("m=audio 0 RTP/AVP 8 101\r\n"
                                           "a=rtpmap:101 telephone-event/8000\r\n"
                                           "m=video 6002 RTP/AVP 96\r\n")));
}

// Proves: nothing of the peer's addresses, origin, free text (s=, i=, u=, e=, p=) or ICE
// survives the rewrite, while
// payload types, telephone-event, crypto, rtcp-mux and direction pass unchanged.
TEST(Sdp, RewriteHidesThePeer) {
  std::string error;
  const auto out = rewriteSdp(kOffer, kSbc, {21000, 21002, 21004}, 99, 3, error);
  ASSERT_TRUE(out.has_value()) << error;
  EXPECT_EQ(out->find("192.0.2."), std::string::npos) << *out;
  EXPECT_EQ(out->find("pbx-user"), std::string::npos) << *out;
  EXPECT_EQ(out->find("4711"), std::string::npos) << *out;
  EXPECT_EQ(out->find("candidate"), std::string::npos) << *out;
  EXPECT_EQ(out->find("ice-ufrag"), std::string::npos) << *out;
  EXPECT_EQ(out->find("pbx.example"), std::string::npos) << *out;
  EXPECT_EQ(out->find("555"), std::string::npos) << *out;
  EXPECT_NE(out->find("s=-\r\n"), std::string::npos) << *out;
  EXPECT_NE(out->find("o=sbc 99 3 IN IP4 127.0.0.11"), std::string::npos) << *out;
  EXPECT_NE(out->find("c=IN IP4 127.0.0.11"), std::string::npos) << *out;
  EXPECT_NE(out->find("m=audio 21000 RTP/AVP 0 8 101"), std::string::npos) << *out;
  EXPECT_NE(out->find("m=video 0 RTP/AVP 96"), std::string::npos) << *out;
  EXPECT_NE(out->find("m=image 21004 udptl t38"), std::string::npos) << *out;
  EXPECT_NE(out->find("a=rtcp:21001 IN IP4 127.0.0.11"), std::string::npos) << *out;
  EXPECT_NE(out->find("a=rtpmap:101 telephone-event/8000"), std::string::npos) << *out;
  EXPECT_NE(out->find("a=fmtp:101 0-16"), std::string::npos) << *out;
  EXPECT_NE(out->find("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewky"),
            std::string::npos)
      << *out;
  EXPECT_NE(out->find("a=rtcp-mux"), std::string::npos) << *out;
  EXPECT_NE(out->find("a=sendonly"), std::string::npos) << *out;
  EXPECT_NE(out->find("a=T38FaxVersion:0"), std::string::npos) << *out;

  // The rewritten description reads back as what it says.
  const auto again = parseSdp(*out, error);
  ASSERT_TRUE(again.has_value()) << error;
  EXPECT_EQ(again->streams[0].rtp->address, kSbc);
  EXPECT_EQ(again->streams[2].rtp->port, 21004);
}

// Proves: one parse serves both the reading and the rewrite (what the B2BUA does with each
// body): the description read before the rewrite is the peer's, the rewrite is the same as
// rewriteSdp's, and the edited session cannot be rewritten a second time.
TEST(Sdp, OneParseIsReadThenRewrittenOnce) {
  std::string error;
  auto parsed = ParsedSdp::parse(kOffer, error);
  ASSERT_TRUE(parsed.has_value()) << error;
  ASSERT_EQ(parsed->description().streams.size(), 3u);
  const auto peerAddress = parsed->description().streams[0].rtp->address;
  EXPECT_NE(peerAddress, kSbc);

  const auto out = parsed->rewrite(kSbc, {21000, 21002, 21004}, 99, 3, error);
  ASSERT_TRUE(out.has_value()) << error;
  EXPECT_EQ(*out, rewriteSdp(kOffer, kSbc, {21000, 21002, 21004}, 99, 3, error).value());
  EXPECT_EQ(parsed->description().streams[0].rtp->address, peerAddress);

  EXPECT_FALSE(parsed->rewrite(kSbc, {21000, 21002, 21004}, 99, 4, error).has_value());
  EXPECT_EQ(error, "SDP already rewritten");
}

// Proves: the rewrite prints the rtpmap lines the peer wrote and adds none of its own.
TEST(Sdp, RewriteKeepsRtpmapsAsWritten) {
  const std::string offer =
      "v=0\r\no=a 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
      "m=audio 4000 RTP/AVP 0 8\r\na=rtpmap:0 PCMU/8000\r\n";
  std::string error;
  const auto out = rewriteSdp(offer, kSbc, {21000}, 1, 1, error);
  ASSERT_TRUE(out.has_value()) << error;
  EXPECT_NE(out->find("a=rtpmap:0 PCMU/8000"), std::string::npos) << *out;
  EXPECT_EQ(out->find("a=rtpmap:8"), std::string::npos) << *out;
}

// Proves: an IPv6 relay address gives IP6 lines.
TEST(Sdp, RewriteToIpv6) {
  std::string error;
  const auto out =
      rewriteSdp(kOffer, *policy::IpAddress::parse("::1"), {30000, 0, 30004}, 1, 1, error);
  ASSERT_TRUE(out.has_value()) << error;
  EXPECT_NE(out->find("c=IN IP6 ::1"), std::string::npos) << *out;
  EXPECT_EQ(out->find("IP4"), std::string::npos) << *out;
}

// Proves: bodies that are not usable SDP are refused with a reason (the caller answers 488).
TEST(Sdp, RefusesBadDescriptions) {
  std::string error;
  EXPECT_FALSE(parseSdp("", error).has_value());
  EXPECT_FALSE(parseSdp("hello world", error).has_value());
  EXPECT_FALSE(parseSdp("v=0\r\no=a 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\n",
                        error)
                   .has_value());
  EXPECT_EQ(error, "SDP has no m= line");
  EXPECT_FALSE(parseSdp("v=0\r\no=a 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 pbx.example\r\n"
                        "t=0 0\r\nm=audio 4000 RTP/AVP 0\r\n",
                        error)
                   .has_value());
  EXPECT_EQ(error, "c= is missing or not a literal IP address");
  EXPECT_FALSE(parseSdp(std::string("v=0\r\n\0m=audio", 14), error).has_value());
  // Sofia-SIP itself would allocate without bound on this m= line (found by the fuzzer).
  EXPECT_FALSE(parseSdp("v=0\r\no=a 1 1 IN IP6 ::1\r\ns=-\r\nc=IN IP6 2002:db8::1\r\n"
                        "t=0 0\r\nm=audio 4 X 2001:db8::2\r\n",
                        error)
                   .has_value());
  EXPECT_EQ(error, "m= line is not <media> <port> <proto> <formats> in SDP's characters");
  EXPECT_FALSE(rewriteSdp(kOffer, kSbc, {21000}, 1, 1, error).has_value());
  EXPECT_EQ(error, "one relay port per m= line is needed");
}

// Proves: a=rtpmap lines Sofia parses but cannot print back as they came are refused, so
// nothing like "a=rtpmap:101 (null)/7" is ever sent on (found by the fuzzer).
TEST(Sdp, RefusesRtpmapsThatCannotBeSentOn) {
  const std::string head =
      "v=0\r\no=a 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
      "m=audio 4000 RTP/AVP 0 101\r\n";
  std::string error;
  EXPECT_FALSE(parseSdp(head + "a=rtpmap:101 \f7 8000\r\n", error).has_value());
  EXPECT_EQ(error, "a=rtpmap has no encoding name");
  EXPECT_FALSE(rewriteSdp(head + "a=rtpmap:101 \f7 8000\r\n", kSbc, {21000}, 1, 1, error));
  EXPECT_FALSE(
      parseSdp(head + "a=rtpmap:101 telephone-event/4294967296\r\n", error).has_value());
  EXPECT_EQ(error, "a=rtpmap clock rate out of range");
  EXPECT_FALSE(parseSdp(head + "a=rtpmap:101 6 255555555555555555555555\r\n", error));
  // The largest clock rate there is still passes.
  EXPECT_TRUE(parseSdp(head + "a=rtpmap:101 telephone-event/4294967295\r\n", error)) << error;
}

}  // namespace
}  // namespace sbc::signaling
