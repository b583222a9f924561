// The SIP message series: counted under bounded labels, each series looked up once.

#include <string>

#include <gtest/gtest.h>

#include "metrics/metrics.h"
#include "metrics/sip_series.h"
#include "tests/support/test_env.h"

namespace sbc::metrics {
namespace {

// Proves: known methods keep their name, any other token (case included) is "other", so a
// peer sending random method names cannot create series.
TEST(SipMessageSeries, MethodLabelIsBounded) {
  EXPECT_EQ(sipMethodLabel("INVITE"), "INVITE");
  EXPECT_EQ(sipMethodLabel("PUBLISH"), "PUBLISH");
  EXPECT_EQ(sipMethodLabel("invite"), "other");
  EXPECT_EQ(sipMethodLabel("XYZZY123"), "other");
  EXPECT_EQ(sipMethodLabel(""), "other");
  EXPECT_EQ(sipMethodIndex("XYZZY123"), kSipMethodLabels.size());

  Metrics metrics;
  SipMessageSeries series(metrics);
  series.countRequest("access", "INVITE");
  series.countRequest("access", "INVITE");
  series.countRequest("access", "FOO");
  series.countRequest("access", "BAR");
  series.countRequest("core", "BYE");
  const std::string text = metrics.render();
  EXPECT_EQ(test::metricValue(text, R"(sbc_sip_requests_total{method="INVITE",realm="access"})"),
            2.0)
      << text;
  EXPECT_EQ(test::metricValue(text, R"(sbc_sip_requests_total{method="other",realm="access"})"),
            2.0);
  EXPECT_EQ(test::metricValue(text, R"(sbc_sip_requests_total{method="BYE",realm="core"})"), 1.0);
  EXPECT_EQ(text.find("FOO"), std::string::npos);
}

// Proves: responses are counted per realm and code, including codes outside 100-699.
TEST(SipMessageSeries, ResponsesPerRealmAndCode) {
  Metrics metrics;
  SipMessageSeries series(metrics);
  series.countResponse("access", 200);
  series.countResponse("access", 200);
  series.countResponse("core", 200);
  series.countResponse("core", 699);
  series.countResponse("core", 100);
  series.countResponse("core", 700);
  const std::string text = metrics.render();
  EXPECT_EQ(test::metricValue(text, R"(sbc_sip_responses_total{code="200",realm="access"})"), 2.0)
      << text;
  EXPECT_EQ(test::metricValue(text, R"(sbc_sip_responses_total{code="200",realm="core"})"), 1.0);
  EXPECT_EQ(test::metricValue(text, R"(sbc_sip_responses_total{code="699",realm="core"})"), 1.0);
  EXPECT_EQ(test::metricValue(text, R"(sbc_sip_responses_total{code="100",realm="core"})"), 1.0);
  EXPECT_EQ(test::metricValue(text, R"(sbc_sip_responses_total{code="700",realm="core"})"), 1.0);
}

}  // namespace
}  // namespace sbc::metrics
