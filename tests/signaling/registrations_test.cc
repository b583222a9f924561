// The subscriber-line binding table: keys, indexes, bounds and expiry.

#include "signaling/registrations.h"

#include <gtest/gtest.h>

namespace sbc::signaling {
namespace {

using namespace std::chrono_literals;

TerminalAddress at(const char* address, std::uint16_t port) {
  return TerminalAddress{*policy::IpAddress::parse(address), port, config::Transport::udp};
}

Binding binding(const std::string& aor, const std::string& instance, const std::string& token,
                TerminalAddress terminal, RegistrationClock::time_point expires) {
  Binding b;
  b.aor = aor;
  b.instance = instance;
  b.token = token;
  b.contact = "sip:x@10.0.0.1";
  b.terminal = terminal;
  b.expires = expires;
  return b;
}

const auto kNow = RegistrationClock::time_point{} + 1000s;

TEST(Registrations, AorIsUserAtLowerCaseHost) {
  EXPECT_EQ(Registrations::aorOf("Alice", "Example.TEST"), "Alice@example.test");
  EXPECT_EQ(Registrations::aorOf("", "example.test"), "@example.test");
  EXPECT_EQ(Registrations::aorOf("alice", ""), "");
}

TEST(Registrations, FoundByKeyTokenAndTerminal) {
  Registrations table(10);
  ASSERT_TRUE(table.store(binding("a@x", "i1", "t1", at("192.0.2.1", 5060), kNow + 60s)));
  ASSERT_TRUE(table.store(binding("a@x", "i2", "t2", at("192.0.2.2", 5060), kNow + 60s)));
  ASSERT_NE(table.find("a@x", "i1"), nullptr);
  EXPECT_EQ(table.byToken("t2")->instance, "i2");
  EXPECT_EQ(table.byTerminal(at("192.0.2.1", 5060))->token, "t1");
  EXPECT_EQ(table.byTerminal(at("192.0.2.1", 5061)), nullptr);
  EXPECT_TRUE(table.hasTerminalAt(*policy::IpAddress::parse("192.0.2.2")));
  EXPECT_FALSE(table.hasTerminalAt(*policy::IpAddress::parse("192.0.2.3")));
  EXPECT_EQ(table.ofAor("a@x").size(), 2u);
  EXPECT_TRUE(table.ofAor("a@").empty());
}

// A refresh from a new address moves the binding: the old address no longer finds it.
TEST(Registrations, RefreshMovesTheBinding) {
  Registrations table(10);
  ASSERT_TRUE(table.store(binding("a@x", "i1", "t1", at("192.0.2.1", 5060), kNow + 60s)));
  ASSERT_TRUE(table.store(binding("a@x", "i1", "t1", at("198.51.100.9", 40000), kNow + 90s)));
  EXPECT_EQ(table.size(), 1u);
  EXPECT_EQ(table.byTerminal(at("192.0.2.1", 5060)), nullptr);
  EXPECT_FALSE(table.hasTerminalAt(*policy::IpAddress::parse("192.0.2.1")));
  EXPECT_EQ(table.byTerminal(at("198.51.100.9", 40000))->aor, "a@x");
  // The old expiry is gone with the old entry: only the new one counts.
  EXPECT_EQ(table.expire(kNow + 61s), 0u);
  EXPECT_EQ(table.expire(kNow + 90s), 1u);
  EXPECT_EQ(table.byToken("t1"), nullptr);
}

TEST(Registrations, NewBindingsAreBoundedRefreshesAreNot) {
  Registrations table(1);
  ASSERT_TRUE(table.store(binding("a@x", "i1", "t1", at("192.0.2.1", 5060), kNow + 60s)));
  EXPECT_TRUE(table.full());
  EXPECT_FALSE(table.store(binding("b@x", "i1", "t2", at("192.0.2.2", 5060), kNow + 60s)));
  EXPECT_TRUE(table.store(binding("a@x", "i1", "t1", at("192.0.2.1", 5060), kNow + 120s)));
  EXPECT_EQ(table.size(), 1u);
  table.setMaxBindings(2);
  EXPECT_TRUE(table.store(binding("b@x", "i1", "t2", at("192.0.2.2", 5060), kNow + 60s)));
}

TEST(Registrations, RemoveOneOrTheWholeAor) {
  Registrations table(10);
  table.store(binding("a@x", "i1", "t1", at("192.0.2.1", 5060), kNow + 60s));
  table.store(binding("a@x", "i2", "t2", at("192.0.2.1", 5062), kNow + 60s));
  table.store(binding("b@x", "i1", "t3", at("192.0.2.1", 5064), kNow + 60s));
  table.remove("a@x", "i1");
  EXPECT_EQ(table.byToken("t1"), nullptr);
  EXPECT_EQ(table.size(), 2u);
  table.removeAor("a@x");
  EXPECT_EQ(table.size(), 1u);
  EXPECT_EQ(table.byToken("t2"), nullptr);
  EXPECT_NE(table.byToken("t3"), nullptr);
  EXPECT_TRUE(table.hasTerminalAt(*policy::IpAddress::parse("192.0.2.1")));
  // Removing what is not there changes nothing.
  table.remove("a@x", "i1");
  table.removeAor("zz@x");
  EXPECT_EQ(table.size(), 1u);
}

TEST(Registrations, ExpireTakesOnlyTheExpired) {
  Registrations table(10);
  table.store(binding("a@x", "i1", "t1", at("192.0.2.1", 5060), kNow + 10s));
  table.store(binding("b@x", "i1", "t2", at("192.0.2.2", 5060), kNow + 20s));
  table.store(binding("c@x", "i1", "t3", at("192.0.2.3", 5060), kNow + 10s));
  EXPECT_EQ(table.expire(kNow + 9s), 0u);
  EXPECT_EQ(table.expire(kNow + 10s), 2u);
  EXPECT_EQ(table.size(), 1u);
  EXPECT_NE(table.find("b@x", "i1"), nullptr);
  EXPECT_EQ(table.expire(kNow + 30s), 1u);
  EXPECT_EQ(table.size(), 0u);
}

TEST(Registrations, TerminalAddressText) {
  EXPECT_EQ(at("192.0.2.1", 5060).toString(), "udp:192.0.2.1:5060");
  TerminalAddress v6{*policy::IpAddress::parse("2001:db8::1"), 5061, config::Transport::tcp};
  EXPECT_EQ(v6.toString(), "tcp:[2001:db8::1]:5061");
}

}  // namespace
}  // namespace sbc::signaling
