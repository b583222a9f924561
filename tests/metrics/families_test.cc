// The metric family list: naming conventions, docs/metrics.md in step with it, and the
// exposition produced from it (stored and sampled families).

#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

#include "metrics/families.h"
#include "metrics/metrics.h"
#include "metrics/policy_collector.h"
#include "policy/policy.h"
#include "tests/support/test_env.h"

namespace sbc::metrics {
namespace {

std::string readFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Proves: names are unique, prefixed, and counters (only counters) end in _total.
TEST(Families, FollowPrometheusNaming) {
  std::set<std::string_view> names;
  for (const auto& family : kFamilies) {
    EXPECT_TRUE(names.insert(family.name).second) << family.name;
    EXPECT_EQ(family.name.rfind("sbc_", 0), 0u) << family.name;
    const bool endsTotal = family.name.ends_with("_total");
    EXPECT_EQ(endsTotal, family.kind == Kind::counter) << family.name;
    EXPECT_FALSE(family.help.empty()) << family.name;
    EXPECT_EQ(&spec(family.id), &family) << "FamilyId order differs from the list";
  }
}

// Proves: docs/metrics.md documents exactly the families in the list.
TEST(Families, DocsListEveryFamilyAndNoOther) {
  const std::string docs = readFile(std::string(SBC_SOURCE_ROOT) + "/docs/metrics.md");
  ASSERT_FALSE(docs.empty());
  std::set<std::string> documented;
  static const std::regex name(R"(`(sbc_[a-z0-9_]+)`)");
  for (auto it = std::sregex_iterator(docs.begin(), docs.end(), name);
       it != std::sregex_iterator(); ++it) {
    documented.insert((*it)[1]);
  }
  std::set<std::string> listed;
  for (const auto& family : kFamilies) listed.emplace(family.name);
  EXPECT_EQ(documented, listed);
}

// Proves: the exposition carries stored counters and the sampled trunk gauges, which follow
// the live counts and a reload.
TEST(Families, RenderSamplesLivePolicyState) {
  policy::Rules rules;
  policy::TrunkRule alpha;
  alpha.name = "alpha";
  alpha.sourcePrefixes = {*policy::IpPrefix::parse("127.0.0.2/32")};
  alpha.maxConcurrentCalls = 4;
  alpha.maxCallsPerSecond = 100;
  alpha.callRateBurst = 100;
  rules.trunks = {alpha};
  auto policy = std::make_shared<policy::Policy>(rules);

  Metrics metrics;
  metrics.addCollector(std::make_shared<PolicyCollector>(policy));
  exposeTrunkSeries(metrics, *policy->current());

  auto slot = policy->admitTrunkCall(*policy->current(), 0);
  ASSERT_EQ(slot.result, policy::AdmissionResult::admitted);
  std::string text = metrics.render();
  EXPECT_EQ(test::metricValue(text, "sbc_trunk_active_calls{trunk=\"alpha\"}"), 1.0) << text;
  EXPECT_EQ(test::metricValue(text, "sbc_trunk_call_limit{trunk=\"alpha\"}"), 4.0);
  EXPECT_EQ(test::metricValue(text, "sbc_admission_total{result=\"admitted\",trunk=\"alpha\"}"),
            0.0);

  rules.trunks[0].maxConcurrentCalls = 9;
  policy->publish(rules);
  slot.slot.release();
  text = metrics.render();
  EXPECT_EQ(test::metricValue(text, "sbc_trunk_active_calls{trunk=\"alpha\"}"), 0.0) << text;
  EXPECT_EQ(test::metricValue(text, "sbc_trunk_call_limit{trunk=\"alpha\"}"), 9.0);
}

// Proves: asking for a family as the wrong kind is caught as a programming error.
TEST(FamiliesDeathTest, WrongKindAborts) {
  EXPECT_DEATH(
      {
        Metrics metrics;
        metrics.gauge(FamilyId::configReloadsTotal);
      },
      "not a stored gauge");
}

}  // namespace
}  // namespace sbc::metrics
