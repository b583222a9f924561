// Core → trunk routing by Request-URI user prefix.

#include <gtest/gtest.h>

#include "signaling/dial_plan.h"

namespace sbc::signaling {
namespace {

config::Trunk trunkWith(std::vector<std::string> prefixes) {
  config::Trunk trunk;
  trunk.dialPrefixes = std::move(prefixes);
  return trunk;
}

// Proves: the longest matching prefix wins, whichever trunk lists it and in which order.
TEST(DialPlan, LongestPrefixWins) {
  const DialPlan plan({trunkWith({"+49301", "0049301"}), trunkWith({"+4930", "004930"}),
                       trunkWith({"+493012"})});
  EXPECT_EQ(plan.route("+4930123"), 2u);
  EXPECT_EQ(plan.route("+4930199"), 0u);
  EXPECT_EQ(plan.route("+4930999"), 1u);
  EXPECT_EQ(plan.route("004930555"), 1u);
  EXPECT_EQ(plan.route("0049301"), 0u);  // a prefix equal to the whole user matches
}

// Proves: a user no prefix matches (shorter than every prefix, or another number, or
// empty) has no route; an empty plan routes nothing.
TEST(DialPlan, NoMatchHasNoRoute) {
  const DialPlan plan({trunkWith({"+4930"}), trunkWith({})});
  EXPECT_EQ(plan.route("+4940123"), std::nullopt);
  EXPECT_EQ(plan.route("+49"), std::nullopt);
  EXPECT_EQ(plan.route(""), std::nullopt);
  EXPECT_EQ(DialPlan().route("+4930"), std::nullopt);
  EXPECT_EQ(DialPlan(std::vector<config::Trunk>{}).route("+4930"), std::nullopt);
}

// Proves: the empty prefix is a default route, used only when nothing longer matches.
TEST(DialPlan, EmptyPrefixIsTheDefaultRoute) {
  const DialPlan plan({trunkWith({"+4930"}), trunkWith({""})});
  EXPECT_EQ(plan.route("+4930123"), 0u);
  EXPECT_EQ(plan.route("+3312345"), 1u);
  EXPECT_EQ(plan.route(""), 1u);
}

}  // namespace
}  // namespace sbc::signaling
