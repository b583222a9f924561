#include "policy/ip.h"

#include <gtest/gtest.h>

namespace sbc::policy {
namespace {

// Dotted IPv4 text parses to network-order bytes and prints back the same.
TEST(IpAddressTest, ParsesAndPrintsIpv4) {
  const auto address = IpAddress::parse("192.0.2.17");
  ASSERT_TRUE(address.has_value());
  EXPECT_EQ(address->family, IpFamily::v4);
  EXPECT_EQ(address->bytes[0], 192);
  EXPECT_EQ(address->bytes[1], 0);
  EXPECT_EQ(address->bytes[2], 2);
  EXPECT_EQ(address->bytes[3], 17);
  for (std::size_t i = 4; i < 16; ++i) EXPECT_EQ(address->bytes[i], 0) << i;
  EXPECT_EQ(address->toString(), "192.0.2.17");
  EXPECT_EQ(*address, IpAddress::v4(0xC0000211u));
}

// IPv6 text (compressed, full, embedded IPv4) parses and prints in canonical form.
TEST(IpAddressTest, ParsesAndPrintsIpv6) {
  const auto address = IpAddress::parse("2001:DB8:0:0:0:0:0:1");
  ASSERT_TRUE(address.has_value());
  EXPECT_EQ(address->family, IpFamily::v6);
  EXPECT_EQ(address->bytes[0], 0x20);
  EXPECT_EQ(address->bytes[1], 0x01);
  EXPECT_EQ(address->bytes[15], 0x01);
  EXPECT_EQ(address->toString(), "2001:db8::1");

  const auto any = IpAddress::parse("::");
  ASSERT_TRUE(any.has_value());
  EXPECT_EQ(any->family, IpFamily::v6);
  EXPECT_EQ(any->toString(), "::");

  const auto mapped = IpAddress::parse("::ffff:192.0.2.1");
  ASSERT_TRUE(mapped.has_value());
  EXPECT_EQ(mapped->family, IpFamily::v6);
  EXPECT_EQ(mapped->bytes[10], 0xff);
  EXPECT_EQ(mapped->bytes[12], 192);
  EXPECT_EQ(mapped->toString(), "::ffff:192.0.2.1");
}

// Anything that is not exactly one address is refused.
TEST(IpAddressTest, RefusesJunk) {
  for (const char* text : {"",
                           " ",
                           "1.2.3",
                           "1.2.3.4.5",
                           "256.1.1.1",
                           "1.2.3.4 ",
                           " 1.2.3.4",
                           "1.2.3.-1",
                           "0x01.2.3.4",
                           "01.2.3.4",
                           "a.b.c.d",
                           "1.2.3.4/8",
                           "2001:db8::1::2",
                           "2001:db8:::1",
                           "12345::",
                           "::g",
                           "fe80::1%eth0",
                           "1:2:3:4:5:6:7:8:9",
                           "localhost",
                           "::ffff:1.2.3.4.5",
                           "[::1]"}) {
    EXPECT_FALSE(IpAddress::parse(text).has_value()) << '"' << text << '"';
  }
  EXPECT_FALSE(IpAddress::parse(std::string_view("1.2.3.4\0", 8)).has_value());
  EXPECT_FALSE(IpAddress::parse(std::string(100, '1')).has_value());
}

// Prefixes with a length, and bare addresses as host prefixes, parse and print.
TEST(IpPrefixTest, ParsesGoodPrefixes) {
  const auto net = IpPrefix::parse("10.0.0.0/8");
  ASSERT_TRUE(net.has_value());
  EXPECT_EQ(net->length, 8);
  EXPECT_EQ(net->address, *IpAddress::parse("10.0.0.0"));
  EXPECT_EQ(net->toString(), "10.0.0.0/8");

  const auto host = IpPrefix::parse("192.0.2.1");
  ASSERT_TRUE(host.has_value());
  EXPECT_EQ(host->length, 32);
  EXPECT_EQ(host->toString(), "192.0.2.1/32");

  const auto v6host = IpPrefix::parse("2001:db8::1");
  ASSERT_TRUE(v6host.has_value());
  EXPECT_EQ(v6host->length, 128);

  const auto all4 = IpPrefix::parse("0.0.0.0/0");
  ASSERT_TRUE(all4.has_value());
  EXPECT_EQ(all4->length, 0);
  const auto all6 = IpPrefix::parse("::/0");
  ASSERT_TRUE(all6.has_value());
  EXPECT_EQ(all6->toString(), "::/0");

  const auto v6 = IpPrefix::parse("2001:db8:abcd::/48");
  ASSERT_TRUE(v6.has_value());
  EXPECT_EQ(v6->length, 48);
  EXPECT_EQ(v6->toString(), "2001:db8:abcd::/48");

  EXPECT_TRUE(IpPrefix::parse("255.255.255.255/32").has_value());
  EXPECT_TRUE(IpPrefix::parse("2001:db8::1/128").has_value());
  EXPECT_TRUE(IpPrefix::parse("10.128.0.0/9").has_value());
}

// Host bits set, lengths out of range and malformed lengths are refused.
TEST(IpPrefixTest, RefusesBadPrefixes) {
  for (const char* text : {"10.0.0.1/8",     "10.128.0.0/8",  "192.0.2.1/31",
                           "2001:db8::1/64", "2001:db9::/31", "::1/127",
                           "10.0.0.0/33",    "10.0.0.0/999",  "10.0.0.0/1000",
                           "2001:db8::/129", "10.0.0.0/",     "/8",
                           "10.0.0.0/-1",    "10.0.0.0/+8",   "10.0.0.0/ 8",
                           "10.0.0.0/8 ",    "10.0.0.0/8/8",  "10.0.0.0/a",
                           "10.0.0/8",       "junk/8",        ""}) {
    EXPECT_FALSE(IpPrefix::parse(text).has_value()) << '"' << text << '"';
  }
}

// contains() matches exactly the addresses under the prefix, same family only.
TEST(IpPrefixTest, ContainsRespectsBoundariesAndFamily) {
  const auto net = *IpPrefix::parse("10.128.0.0/9");
  EXPECT_TRUE(net.contains(*IpAddress::parse("10.128.0.0")));
  EXPECT_TRUE(net.contains(*IpAddress::parse("10.255.255.255")));
  EXPECT_FALSE(net.contains(*IpAddress::parse("10.127.255.255")));
  EXPECT_FALSE(net.contains(*IpAddress::parse("11.0.0.0")));
  EXPECT_FALSE(net.contains(*IpAddress::parse("::ffff:10.128.0.1")));

  const auto all4 = *IpPrefix::parse("0.0.0.0/0");
  EXPECT_TRUE(all4.contains(*IpAddress::parse("255.255.255.255")));
  EXPECT_FALSE(all4.contains(*IpAddress::parse("::")));

  const auto host = *IpPrefix::parse("192.0.2.1/32");
  EXPECT_TRUE(host.contains(*IpAddress::parse("192.0.2.1")));
  EXPECT_FALSE(host.contains(*IpAddress::parse("192.0.2.0")));

  const auto v6 = *IpPrefix::parse("2001:db8:8000::/33");
  EXPECT_TRUE(v6.contains(*IpAddress::parse("2001:db8:ffff::1")));
  EXPECT_FALSE(v6.contains(*IpAddress::parse("2001:db8:7fff::1")));
  EXPECT_FALSE(v6.contains(*IpAddress::parse("10.0.0.1")));

  const auto v6host = *IpPrefix::parse("2001:db8::1/128");
  EXPECT_TRUE(v6host.contains(*IpAddress::parse("2001:db8::1")));
  EXPECT_FALSE(v6host.contains(*IpAddress::parse("2001:db8::2")));
}

// toString() of a parsed prefix parses back to the same prefix.
TEST(IpPrefixTest, RoundTrips) {
  for (const char* text : {"0.0.0.0/0", "10.0.0.0/8", "172.16.0.0/12", "192.0.2.128/25", "::/0",
                           "2001:db8::/32", "fe80::/10", "2001:db8::1/128"}) {
    const auto prefix = IpPrefix::parse(text);
    ASSERT_TRUE(prefix.has_value()) << text;
    EXPECT_EQ(prefix->toString(), text);
    EXPECT_EQ(IpPrefix::parse(prefix->toString()), prefix);
  }
}

}  // namespace
}  // namespace sbc::policy
