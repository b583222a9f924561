// The subscriber-line binding table: keys, indexes, bounds and expiry.

#include "signaling/registrations.h"

#include <gtest/gtest.h>

namespace sbc::signaling {
namespace {

using namespace std::chrono_literals;

TerminalAddress at(const char* address, std::uint16_t port) {
  return TerminalAddress{*policy::IpAddress::parse(address), port, config::Transport::udp};
}

// The text is string literals: a Binding only views it until the table copies it.
Binding binding(std::string_view aor, std::string_view instance, std::string_view token,
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

// The table keeps its own copy of the text: the caller's strings may go at once.
TEST(Registrations, StoresACopyOfTheText) {
  Registrations table(10);
  {
    std::string aor = "alice@example.test", instance = "<urn:uuid:1>", token = "t1";
    std::string contact = "sip:alice@10.0.0.1:5060", params = ";+sip.instance=x", callId = "c1";
    Binding b = binding(aor, instance, token, at("192.0.2.1", 5060), kNow + 60s);
    b.contact = contact;
    b.contactParams = params;
    b.callId = callId;
    ASSERT_TRUE(table.store(b));
    for (std::string* text : {&aor, &instance, &token, &contact, &params, &callId}) {
      text->assign(text->size(), '#');
    }
  }
  const Binding* stored = table.find("alice@example.test", "<urn:uuid:1>");
  ASSERT_NE(stored, nullptr);
  EXPECT_EQ(stored->aor, "alice@example.test");
  EXPECT_EQ(stored->instance, "<urn:uuid:1>");
  EXPECT_EQ(stored->token, "t1");
  EXPECT_EQ(stored->contact, "sip:alice@10.0.0.1:5060");
  EXPECT_EQ(stored->contactParams, ";+sip.instance=x");
  EXPECT_EQ(stored->callId, "c1");
}

// A binding read from the table, changed and stored again (a refresh with a new Contact, or
// the same text with new times) replaces the one it was read from, text and indexes alike.
TEST(Registrations, StoresABindingReadFromItself) {
  Registrations table(10);
  Binding first = binding("a@x", "sip:a@10.0.0.1", "t1", at("192.0.2.1", 5060), kNow + 60s);
  first.contact = "sip:a@10.0.0.1";  // no +sip.instance: the Contact is the instance
  ASSERT_TRUE(table.store(first));

  Binding sameText = *table.find("a@x", "sip:a@10.0.0.1");
  sameText.terminal = at("192.0.2.9", 7000);
  sameText.expires = kNow + 120s;
  ASSERT_TRUE(table.store(sameText));
  EXPECT_EQ(table.byTerminal(at("192.0.2.1", 5060)), nullptr);
  ASSERT_NE(table.byTerminal(at("192.0.2.9", 7000)), nullptr);
  EXPECT_EQ(table.expire(kNow + 61s), 0u);

  Binding newText = *table.find("a@x", "sip:a@10.0.0.1");
  newText.callId = "a new Call-ID, longer than the old one";
  newText.contactParams = ";reg-id=1";
  ASSERT_TRUE(table.store(newText));
  const Binding* stored = table.byToken("t1");
  ASSERT_NE(stored, nullptr);
  EXPECT_EQ(stored->callId, "a new Call-ID, longer than the old one");
  EXPECT_EQ(stored->contactParams, ";reg-id=1");
  EXPECT_EQ(stored->instance, "sip:a@10.0.0.1");
  EXPECT_EQ(stored->contact, "sip:a@10.0.0.1");
  EXPECT_EQ(table.byTerminal(at("192.0.2.9", 7000)), stored);
  EXPECT_EQ(table.size(), 1u);
  EXPECT_EQ(table.expire(kNow + 120s), 1u);
  EXPECT_EQ(table.byToken("t1"), nullptr);
}

// Well past the token index's first bucket array (it grows), every binding is found by each
// index, and removing them all leaves nothing findable.
TEST(Registrations, ManyBindingsStayFindable) {
  constexpr int kCount = 5000;
  Registrations table(kCount);
  std::vector<std::string> aors, tokens;
  for (int i = 0; i < kCount; ++i) {
    aors.push_back("u" + std::to_string(i) + "@x");
    tokens.push_back("token" + std::to_string(i));
  }
  for (int i = 0; i < kCount; ++i) {
    const auto address = policy::IpAddress::v4(0xC0000200u + static_cast<std::uint32_t>(i % 200));
    const TerminalAddress terminal{address, static_cast<std::uint16_t>(5000 + i), config::Transport::udp};
    ASSERT_TRUE(table.store(binding(aors[i], "i", tokens[i], terminal, kNow + std::chrono::seconds(i))));
  }
  EXPECT_TRUE(table.full());
  for (int i = 0; i < kCount; ++i) {
    const Binding* byToken = table.byToken(tokens[i]);
    ASSERT_NE(byToken, nullptr) << tokens[i];
    EXPECT_EQ(byToken->aor, aors[i]);
    EXPECT_EQ(table.find(aors[i], "i"), byToken);
    EXPECT_EQ(table.byTerminal(byToken->terminal), byToken);
  }
  EXPECT_EQ(table.expire(kNow + std::chrono::seconds(kCount / 2 - 1)), static_cast<std::size_t>(kCount / 2));
  for (int i = 0; i < kCount; ++i) {
    EXPECT_EQ(table.byToken(tokens[i]) != nullptr, i >= kCount / 2) << i;
  }
  for (int i = kCount / 2; i < kCount; ++i) table.remove(aors[i], "i");
  EXPECT_EQ(table.size(), 0u);
  EXPECT_FALSE(table.hasTerminalAt(policy::IpAddress::v4(0xC0000200u)));
}

TEST(Registrations, TerminalAddressText) {
  EXPECT_EQ(at("192.0.2.1", 5060).toString(), "udp:192.0.2.1:5060");
  TerminalAddress v6{*policy::IpAddress::parse("2001:db8::1"), 5061, config::Transport::tcp};
  EXPECT_EQ(v6.toString(), "tcp:[2001:db8::1]:5061");
}

}  // namespace
}  // namespace sbc::signaling
