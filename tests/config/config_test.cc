// config/: accepted configurations, defaults, file loading, translation to policy rules.

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "config/config.h"
#include "tests/config/config_text.h"

namespace sbc::config {
namespace {

using testing::errorsOf;
using testing::kMinimal;
using testing::parse;
using testing::withMinimal;

std::string prefixText(const policy::IpPrefix& prefix) { return prefix.toString(); }

// A file in a fresh temporary directory, removed with the fixture.
class TempFile : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("sbc-config-test-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string write(const std::string& name, const std::string& text) {
    const auto path = dir_ / name;
    std::ofstream(path) << text;
    return path.string();
  }
  std::filesystem::path dir_;
};

// The shipped example is valid and says what its comments say.
TEST(ExampleConfig, LoadsWithTheDocumentedValues) {
  const std::string path = std::string(SBC_SOURCE_ROOT) + "/config/sbc.example.cfg";
  Config c;
  try {
    c = loadConfigFile(path);
  } catch (const ConfigException& e) {
    FAIL() << e.what();
  }
  EXPECT_EQ(c.sourceFile, path);
  EXPECT_EQ(c.logLevel, LogLevel::info);
  ASSERT_EQ(c.access.sip.size(), 2u);
  EXPECT_EQ(c.access.sip[0].address, "127.0.0.10");
  EXPECT_EQ(c.access.sip[0].port, 5060);
  EXPECT_EQ(c.access.sip[0].transport, Transport::udp);
  EXPECT_EQ(c.access.sip[1].address, "127.0.0.10");
  EXPECT_EQ(c.access.sip[1].transport, Transport::tcp);
  EXPECT_EQ(c.access.media.address, "127.0.0.10");
  EXPECT_EQ(c.access.media.portMin, 10000);
  EXPECT_EQ(c.access.media.portMax, 32767);
  ASSERT_EQ(c.core.sip.size(), 1u);
  EXPECT_EQ(c.core.sip[0].address, "127.0.0.11");
  EXPECT_EQ(c.core.sip[0].port, 5060);
  EXPECT_EQ(c.core.media.address, "127.0.0.11");
  ASSERT_EQ(c.coreNextHops.size(), 1u);
  EXPECT_EQ(c.coreNextHops[0].host, "127.0.0.3");
  EXPECT_EQ(c.coreNextHops[0].port, 5060);
  EXPECT_EQ(c.media.driver, MediaDriver::socket);
  EXPECT_EQ(c.media.socketPorts, SocketPorts::perPort);
  EXPECT_FALSE(c.media.kernelForwarding);
  EXPECT_EQ(c.media.dscp, 46);
  EXPECT_EQ(c.media.quarantineMs, 2000u);
  EXPECT_EQ(c.media.timeoutS, 60u);
  // driver = "socket": the dpdk section is not read.
  EXPECT_TRUE(c.dpdk.ealArgs.empty());
  EXPECT_TRUE(c.dpdk.ports.empty());
  EXPECT_EQ(c.sipTimers.t1Ms, 500u);
  EXPECT_EQ(c.sipTimers.t1x64Ms, 32000u);
  EXPECT_EQ(c.sipTimers.nonceExpiresS, 300u);
  EXPECT_EQ(c.sipTimers.sessionExpiresS, 1800u);
  EXPECT_EQ(c.sipTimers.minSeS, 90u);
  EXPECT_EQ(c.sipTimers.maxSessionExpiresS, 7200u);
  EXPECT_EQ(c.sipTimers.overloadQueueKib, 4096u);
  EXPECT_EQ(c.sipTimers.realtimePriority, 0u);
  ASSERT_EQ(c.trunks.size(), 4u);
  const Trunk& acme = c.trunks[0];
  EXPECT_EQ(acme.name, "acme");
  ASSERT_EQ(acme.sourcePrefixes.size(), 1u);
  EXPECT_EQ(prefixText(acme.sourcePrefixes[0]), "127.0.0.20/32");
  EXPECT_EQ(acme.target.host, "127.0.0.20");
  EXPECT_EQ(acme.maxConcurrentCalls, 200u);
  EXPECT_DOUBLE_EQ(acme.maxCallsPerSecond, 10.0);
  EXPECT_EQ(acme.callRateBurst, 20u);
  EXPECT_FALSE(acme.trusted);
  ASSERT_TRUE(acme.challenge.has_value());
  EXPECT_EQ(acme.challenge->username, "acme");
  EXPECT_EQ(acme.challenge->realm, "sbc.example.net");
  EXPECT_FALSE(acme.answer.has_value());
  EXPECT_EQ(acme.dialPrefixes, (std::vector<std::string>{"+4930", "004930"}));
  const Trunk& globex = c.trunks[1];
  EXPECT_EQ(globex.name, "globex");
  EXPECT_EQ(globex.target.port, 5070);
  EXPECT_EQ(globex.target.transport, Transport::tcp);
  EXPECT_EQ(globex.dialPrefixes, (std::vector<std::string>{"+493012"}));
  EXPECT_DOUBLE_EQ(globex.maxCallsPerSecond, 2.5);
  EXPECT_TRUE(globex.trusted);
  ASSERT_TRUE(globex.answer.has_value());
  EXPECT_EQ(globex.answer->username, "sbc");
  EXPECT_EQ(globex.answer->realm, "");
  EXPECT_EQ(prefixText(c.trunks[2].sourcePrefixes[0]), "127.0.1.0/24");
  EXPECT_EQ(prefixText(c.trunks[3].sourcePrefixes[0]), "127.0.1.128/25");
  EXPECT_DOUBLE_EQ(c.trunks[3].maxCallsPerSecond, 1.0);
  EXPECT_EQ(c.lines.maxConcurrentCalls, 2u);
  EXPECT_EQ(c.lines.registerExpiresS, 60u);
  EXPECT_EQ(c.lines.maxBindings, 100000u);
  EXPECT_TRUE(c.lines.throttleRegistrations);
  EXPECT_EQ(c.lines.coreRegisterExpiresS, 3600u);
  EXPECT_EQ(c.lines.overLimitStatus, 486);
  EXPECT_EQ(c.metricsListen, "127.0.0.1:9469");
  EXPECT_EQ(c.controlSocket, "/run/sbc/sbcd.sock");
  EXPECT_EQ(c.drainTimeoutS, 30u);
}

// The example's dpdk section is itself valid when the driver is switched to dpdk.
TEST(ExampleConfig, DpdkSectionIsValidWithTheDpdkDriver) {
  const std::string path = std::string(SBC_SOURCE_ROOT) + "/config/sbc.example.cfg";
  std::ifstream in(path);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::string from = "driver = \"socket\";";
  ASSERT_NE(text.find(from), std::string::npos);
  text.replace(text.find(from), from.size(), "driver = \"dpdk\";");
  const Config c = parse(text);
  EXPECT_EQ(c.media.driver, MediaDriver::dpdk);
  ASSERT_EQ(c.dpdk.ports.size(), 2u);
  EXPECT_EQ(c.dpdk.ports[0].device, "net_af_packet0");
  EXPECT_EQ(c.dpdk.ports[0].realm, "access");
  EXPECT_EQ(c.dpdk.ports[1].realm, "core");
  ASSERT_GE(c.dpdk.ealArgs.size(), 3u);
  EXPECT_EQ(c.dpdk.ealArgs[0], "-l");
  EXPECT_EQ(c.dpdk.ealArgs[1], "0,1");
}

// Only the required settings given: everything else takes its documented default.
TEST(Defaults, MinimalConfigGetsEveryDefault) {
  const Config c = parse(kMinimal);
  EXPECT_EQ(c.sourceFile, testing::kTestFile);
  EXPECT_EQ(c.logLevel, LogLevel::info);
  ASSERT_EQ(c.access.sip.size(), 1u);
  EXPECT_EQ(c.access.sip[0].port, 5060);
  EXPECT_EQ(c.access.sip[0].transport, Transport::udp);
  EXPECT_EQ(c.access.media.portMin, 10000);
  EXPECT_EQ(c.access.media.portMax, 32767);
  EXPECT_EQ(c.core.media.portMin, 10000);
  ASSERT_EQ(c.coreNextHops.size(), 1u);
  EXPECT_EQ(c.coreNextHops[0].port, 5060);
  EXPECT_EQ(c.coreNextHops[0].transport, Transport::udp);
  EXPECT_EQ(c.coreFailoverTimeoutMs, 2000u);
  EXPECT_EQ(c.media.driver, MediaDriver::socket);
  EXPECT_EQ(c.media.dscp, 46);
  EXPECT_EQ(c.media.quarantineMs, 2000u);
  EXPECT_EQ(c.media.timeoutS, 60u);
  EXPECT_EQ(c.sipTimers.t1Ms, 500u);
  EXPECT_EQ(c.sipTimers.t1x64Ms, 32000u);
  EXPECT_EQ(c.sipTimers.nonceExpiresS, 300u);
  EXPECT_EQ(c.sipTimers.sessionExpiresS, 1800u);
  EXPECT_EQ(c.sipTimers.minSeS, 90u);
  EXPECT_EQ(c.sipTimers.maxSessionExpiresS, 7200u);
  EXPECT_TRUE(c.trunks.empty());
  EXPECT_EQ(c.lines.maxConcurrentCalls, 2u);
  EXPECT_EQ(c.lines.registerExpiresS, 60u);
  EXPECT_EQ(c.lines.maxBindings, 100000u);
  EXPECT_EQ(c.metricsListen, "127.0.0.1:9469");
  EXPECT_EQ(c.controlSocket, "/run/sbc/sbcd.sock");
  EXPECT_EQ(c.drainTimeoutS, 30u);
  EXPECT_EQ(c.refusals.unknownSource, UnknownSourceAction::forbidden);
  EXPECT_EQ(c.refusals.overLimitStatus, 503);
  EXPECT_EQ(c.refusals.retryAfterS, 5u);
}

// A trunk with only its required settings gets the documented limits.
TEST(Defaults, TrunkDefaults) {
  const Config c = parse(withMinimal(R"(
trunks = ( { name = "t"; source_prefixes = [ "192.0.2.0/24" ]; target = { host = "pbx.example.net"; }; } );
)"));
  ASSERT_EQ(c.trunks.size(), 1u);
  EXPECT_EQ(c.trunks[0].maxConcurrentCalls, 100u);
  EXPECT_DOUBLE_EQ(c.trunks[0].maxCallsPerSecond, 10.0);
  EXPECT_EQ(c.trunks[0].callRateBurst, 0u);
  EXPECT_FALSE(c.trunks[0].trusted);
  EXPECT_FALSE(c.trunks[0].challenge.has_value());
  EXPECT_FALSE(c.trunks[0].answer.has_value());
  EXPECT_EQ(c.trunks[0].target.host, "pbx.example.net");
  EXPECT_EQ(c.trunks[0].target.port, 5060);
}

// Every setting given explicitly is read into its field.
TEST(Values, EverySettingIsRead) {
  const Config c = parse(R"(
log_level = "debug";
realms = {
  access = { sip = ( { address = "::1"; port = 0; transport = "tcp"; } );
             media = { address = "2001:db8::10"; port_min = 20000; port_max = 20999; }; };
  core = { sip = ( { address = "127.0.0.11"; port = 5080; } );
           media = { address = "127.0.0.11"; port_min = 40000; port_max = 49999; }; };
};
core = { next_hops = ( { host = "ss1.example.net"; port = 5062; transport = "tcp"; },
                       { host = "2001:db8::3"; } );
         failover_timeout_ms = 0; };
media = { driver = "dpdk"; socket_ports = "sk_lookup"; kernel_forwarding = true; dscp = 0;
          quarantine_ms = 0; timeout_s = 0; };
dpdk = { eal_args = [ "-l", "0" ]; ports = ( { device = "net_ring0"; realm = "access"; },
                                             { device = "net_ring1"; realm = "core"; } ); };
sip = { t1_ms = 250; t1x64_ms = 16000; nonce_expires_s = 45; session_expires_s = 0;
        min_se_s = 30; max_session_expires_s = 600; overload_queue_kib = 0;
        realtime_priority = 99; };
trunks = ( { name = "a.b-c_1"; source_prefixes = [ "2001:db8::/32", "198.51.100.7" ];
             target = { host = "198.51.100.7"; port = 5099; transport = "tcp"; };
             max_calls = 1000000; max_calls_per_second = 100000; call_rate_burst = 7; trusted = true;
             challenge = { username = "u"; password = "p"; };
             answer = { username = "v"; password = "q w\"x"; realm = "r"; }; } );
lines = { max_calls = 100; register_expires_s = 86400; max_bindings = 10000000;
          throttle_registrations = false; core_register_expires_s = 7200;
          over_limit_status = 503; register_rate_per_source = 1000000; };
metrics = { listen = "[::1]:0"; };
control = { socket = "/tmp/sbcd-test.sock"; };
drain = { timeout_s = 0; };
refusals = { unknown_source = "drop"; over_limit_status = 486; retry_after_s = 0; };
)");
  EXPECT_EQ(c.logLevel, LogLevel::debug);
  EXPECT_EQ(c.access.sip[0].address, "::1");
  EXPECT_EQ(c.access.sip[0].port, 0);
  EXPECT_EQ(c.access.sip[0].transport, Transport::tcp);
  EXPECT_EQ(c.access.media.address, "2001:db8::10");
  EXPECT_EQ(c.access.media.portMin, 20000);
  EXPECT_EQ(c.access.media.portMax, 20999);
  EXPECT_EQ(c.core.sip[0].port, 5080);
  EXPECT_EQ(c.core.media.portMin, 40000);
  ASSERT_EQ(c.coreNextHops.size(), 2u);
  EXPECT_EQ(c.coreNextHops[0].host, "ss1.example.net");
  EXPECT_EQ(c.coreNextHops[0].port, 5062);
  EXPECT_EQ(c.coreNextHops[0].transport, Transport::tcp);
  EXPECT_EQ(c.coreNextHops[1].host, "2001:db8::3");
  EXPECT_EQ(c.coreFailoverTimeoutMs, 0u);
  EXPECT_EQ(c.media.driver, MediaDriver::dpdk);
  EXPECT_EQ(c.media.socketPorts, SocketPorts::skLookup);
  EXPECT_TRUE(c.media.kernelForwarding);
  EXPECT_EQ(c.media.dscp, 0);
  EXPECT_EQ(c.media.quarantineMs, 0u);
  EXPECT_EQ(c.media.timeoutS, 0u);
  EXPECT_EQ(c.dpdk.ealArgs, (std::vector<std::string>{"-l", "0"}));
  ASSERT_EQ(c.dpdk.ports.size(), 2u);
  EXPECT_EQ(c.dpdk.ports[1].device, "net_ring1");
  EXPECT_EQ(c.dpdk.ports[1].realm, "core");
  EXPECT_EQ(c.sipTimers.t1Ms, 250u);
  EXPECT_EQ(c.sipTimers.t1x64Ms, 16000u);
  EXPECT_EQ(c.sipTimers.nonceExpiresS, 45u);
  EXPECT_EQ(c.sipTimers.sessionExpiresS, 0u);
  EXPECT_EQ(c.sipTimers.minSeS, 30u);
  EXPECT_EQ(c.sipTimers.maxSessionExpiresS, 600u);
  EXPECT_EQ(c.sipTimers.overloadQueueKib, 0u);
  EXPECT_EQ(c.sipTimers.realtimePriority, 99u);
  ASSERT_EQ(c.trunks.size(), 1u);
  const Trunk& t = c.trunks[0];
  EXPECT_EQ(t.name, "a.b-c_1");
  ASSERT_EQ(t.sourcePrefixes.size(), 2u);
  EXPECT_EQ(prefixText(t.sourcePrefixes[0]), "2001:db8::/32");
  EXPECT_EQ(prefixText(t.sourcePrefixes[1]), "198.51.100.7/32");
  EXPECT_EQ(t.target.port, 5099);
  EXPECT_EQ(t.maxConcurrentCalls, 1000000u);
  EXPECT_DOUBLE_EQ(t.maxCallsPerSecond, 100000.0);
  EXPECT_EQ(t.callRateBurst, 7u);
  EXPECT_TRUE(t.trusted);
  ASSERT_TRUE(t.challenge.has_value());
  EXPECT_EQ(t.challenge->username, "u");
  EXPECT_EQ(t.challenge->realm, "");
  ASSERT_TRUE(t.answer.has_value());
  EXPECT_EQ(t.answer->password, "q w\"x");
  EXPECT_EQ(t.answer->realm, "r");
  EXPECT_EQ(c.lines.maxConcurrentCalls, 100u);
  EXPECT_EQ(c.lines.registerExpiresS, 86400u);
  EXPECT_EQ(c.lines.maxBindings, 10000000u);
  EXPECT_FALSE(c.lines.throttleRegistrations);
  EXPECT_EQ(c.lines.coreRegisterExpiresS, 7200u);
  EXPECT_EQ(c.lines.overLimitStatus, 503);
  EXPECT_EQ(c.lines.registerRatePerSource, 1000000u);
  EXPECT_EQ(c.metricsListen, "[::1]:0");
  EXPECT_EQ(c.controlSocket, "/tmp/sbcd-test.sock");
  EXPECT_EQ(c.drainTimeoutS, 0u);
  EXPECT_EQ(c.refusals.unknownSource, UnknownSourceAction::drop);
  EXPECT_EQ(c.refusals.overLimitStatus, 486);
  EXPECT_EQ(c.refusals.retryAfterS, 0u);
}

// max_calls_per_second takes an integer or a float; integers are read exactly.
TEST(Values, RateAcceptsIntegerAndFloat) {
  const auto rateOf = [](const std::string& value) {
    return parse(withMinimal("trunks = ( { name = \"t\"; source_prefixes = [ \"10.0.0.0/8\" ]; "
                             "target = { host = \"10.0.0.1\"; }; max_calls_per_second = " +
                             value + "; } );"))
        .trunks.at(0)
        .maxCallsPerSecond;
  };
  EXPECT_DOUBLE_EQ(rateOf("10"), 10.0);
  EXPECT_DOUBLE_EQ(rateOf("0.25"), 0.25);
  EXPECT_DOUBLE_EQ(rateOf("1e2"), 100.0);
  EXPECT_DOUBLE_EQ(rateOf("100000L"), 100000.0);
}

// Nested source prefixes in different trunks are allowed (longest match decides).
TEST(Values, NestedPrefixesInDifferentTrunksAreAllowed) {
  const Config c = parse(withMinimal(R"(
trunks = ( { name = "wide"; source_prefixes = [ "10.0.0.0/8", "2001:db8::/32" ]; target = { host = "10.0.0.1"; }; },
           { name = "narrow"; source_prefixes = [ "10.1.0.0/16", "2001:db8:1::/48" ]; target = { host = "10.1.0.1"; }; },
           { name = "host"; source_prefixes = [ "10.1.2.3/32" ]; target = { host = "10.1.2.3"; }; } );
)"));
  EXPECT_EQ(c.trunks.size(), 3u);
}

// Dial prefixes: kept in order; nested ones in different trunks and the empty default are
// fine (the longest match decides); without the setting a trunk has none.
TEST(Values, DialPrefixes) {
  const Config c = parse(withMinimal(R"(
trunks = ( { name = "berlin"; source_prefixes = [ "10.0.0.1" ]; target = { host = "10.0.0.1"; };
             dial_prefixes = [ "+4930", "004930" ]; },
           { name = "berlin-mitte"; source_prefixes = [ "10.0.0.2" ]; target = { host = "10.0.0.2"; };
             dial_prefixes = [ "+49302", "*77#", "" ]; },
           { name = "none"; source_prefixes = [ "10.0.0.3" ]; target = { host = "10.0.0.3"; }; } );
)"));
  ASSERT_EQ(c.trunks.size(), 3u);
  EXPECT_EQ(c.trunks[0].dialPrefixes, (std::vector<std::string>{"+4930", "004930"}));
  EXPECT_EQ(c.trunks[1].dialPrefixes, (std::vector<std::string>{"+49302", "*77#", ""}));
  EXPECT_TRUE(c.trunks[2].dialPrefixes.empty());
}

// Both realms may share one media address when their port ranges are apart.
TEST(Values, SharedMediaAddressWithSeparateRanges) {
  const Config c = parse(R"(
realms = {
  access = { sip = ( { address = "127.0.0.10"; } ); media = { address = "127.0.0.10"; port_min = 10000; port_max = 19999; }; };
  core   = { sip = ( { address = "127.0.0.11"; } ); media = { address = "127.0.0.10"; port_min = 20000; port_max = 29999; }; };
};
core = { next_hops = ( { host = "127.0.0.3"; } ); };
)");
  EXPECT_EQ(c.core.media.portMin, 20000);
}

// Listens may share an address and port across transports, and port 0 may repeat.
TEST(Values, ListensMayShareAddressAcrossTransportsAndPortZero) {
  const Config c = parse(R"(
realms = {
  access = { sip = ( { address = "127.0.0.10"; transport = "udp"; }, { address = "127.0.0.10"; transport = "tcp"; },
                     { address = "127.0.0.10"; port = 0; }, { address = "127.0.0.10"; port = 0; } );
             media = { address = "127.0.0.10"; }; };
  core   = { sip = ( { address = "127.0.0.10"; port = 5080; } ); media = { address = "127.0.0.11"; }; };
};
core = { next_hops = ( { host = "127.0.0.3"; } ); };
)");
  EXPECT_EQ(c.access.sip.size(), 4u);
}

// The dpdk section is neither required nor checked with the socket driver.
TEST(Values, DpdkSectionIgnoredWithSocketDriver) {
  const Config c = parse(withMinimal(R"(dpdk = { whatever = 1; ports = "no"; };)"));
  EXPECT_EQ(c.media.driver, MediaDriver::socket);
  EXPECT_TRUE(c.dpdk.ports.empty());
}

// Trunk names are unique by exact text; host names with digits and hyphens are fine.
TEST(Values, HostNamesAndTrunkNameCase) {
  const Config c = parse(withMinimal(R"(
trunks = ( { name = "Acme"; source_prefixes = [ "10.0.0.1" ]; target = { host = "pbx-1.acme.example"; }; },
           { name = "acme"; source_prefixes = [ "10.0.0.2" ]; target = { host = "localhost"; }; } );
)"));
  EXPECT_EQ(c.trunks.size(), 2u);
}

// toPolicyRules copies trunks and line limits; a burst of 0 becomes max(1, ceil(rate)).
TEST(ToPolicyRules, TranslatesTrunksAndDerivesBurst) {
  const Config c = parse(withMinimal(R"(
trunks = ( { name = "a"; source_prefixes = [ "192.0.2.0/24", "2001:db8::/32" ]; target = { host = "192.0.2.1"; };
             max_calls = 200; max_calls_per_second = 10.0; call_rate_burst = 20; },
           { name = "b"; source_prefixes = [ "198.51.100.0/24" ]; target = { host = "198.51.100.1"; };
             max_calls = 5; max_calls_per_second = 2.5; },
           { name = "c"; source_prefixes = [ "203.0.113.0/24" ]; target = { host = "203.0.113.1"; };
             max_calls = 1; max_calls_per_second = 0.1; call_rate_burst = 0; } );
lines = { max_calls = 3; };
)"));
  const policy::Rules rules = toPolicyRules(c);
  ASSERT_EQ(rules.trunks.size(), 3u);
  EXPECT_EQ(rules.trunks[0].name, "a");
  ASSERT_EQ(rules.trunks[0].sourcePrefixes.size(), 2u);
  EXPECT_EQ(rules.trunks[0].sourcePrefixes[0], c.trunks[0].sourcePrefixes[0]);
  EXPECT_EQ(rules.trunks[0].sourcePrefixes[1], c.trunks[0].sourcePrefixes[1]);
  EXPECT_EQ(rules.trunks[0].maxConcurrentCalls, 200u);
  EXPECT_DOUBLE_EQ(rules.trunks[0].maxCallsPerSecond, 10.0);
  EXPECT_EQ(rules.trunks[0].callRateBurst, 20u);
  EXPECT_EQ(rules.trunks[1].name, "b");
  EXPECT_EQ(rules.trunks[1].maxConcurrentCalls, 5u);
  EXPECT_EQ(rules.trunks[1].callRateBurst, 3u);  // ceil(2.5)
  EXPECT_EQ(rules.trunks[2].callRateBurst, 1u);  // max(1, ceil(0.1))
  EXPECT_EQ(rules.lines.maxConcurrentCalls, 3u);
}

// With no trunks the rules have none, and the line limit is the default.
TEST(ToPolicyRules, EmptyTrunks) {
  const policy::Rules rules = toPolicyRules(parse(kMinimal));
  EXPECT_TRUE(rules.trunks.empty());
  EXPECT_EQ(rules.lines.maxConcurrentCalls, 2u);
}

// A hand-built Config with odd rates still gets a burst of at least 1.
TEST(ToPolicyRules, BurstNeverZeroForHandBuiltConfig) {
  Config c;
  c.trunks.resize(2);
  c.trunks[0].maxCallsPerSecond = 0;
  c.trunks[1].maxCallsPerSecond = 1.0;
  const policy::Rules rules = toPolicyRules(c);
  EXPECT_EQ(rules.trunks[0].callRateBurst, 1u);
  EXPECT_EQ(rules.trunks[1].callRateBurst, 1u);
}

// Enumerations print as they are written in the file.
TEST(Names, EnumToString) {
  EXPECT_STREQ(toString(Transport::udp), "udp");
  EXPECT_STREQ(toString(Transport::tcp), "tcp");
  EXPECT_STREQ(toString(MediaDriver::socket), "socket");
  EXPECT_STREQ(toString(MediaDriver::dpdk), "dpdk");
  EXPECT_STREQ(toString(LogLevel::debug), "debug");
  EXPECT_STREQ(toString(LogLevel::info), "info");
  EXPECT_STREQ(toString(LogLevel::warning), "warning");
  EXPECT_STREQ(toString(LogLevel::error), "error");
}

// ConfigError prints "FILE:LINE: SETTING: REASON", leaving out an unknown line or setting.
TEST(Names, ConfigErrorToString) {
  EXPECT_EQ((ConfigError{"a.cfg", 7, "trunks.[1].max_calls", "bad"}).toString(),
            "a.cfg:7: trunks.[1].max_calls: bad");
  EXPECT_EQ((ConfigError{"a.cfg", 0, "core.next_hops", "missing"}).toString(),
            "a.cfg: core.next_hops: missing");
  EXPECT_EQ((ConfigError{"a.cfg", 3, "", "syntax error"}).toString(), "a.cfg:3: syntax error");
}

// ConfigException::what() lists every error, one per line.
TEST(Names, ExceptionWhatListsAllErrors) {
  const ConfigException e({ConfigError{"f", 1, "a", "x"}, ConfigError{"f", 2, "b", "y"}});
  EXPECT_STREQ(e.what(), "f:1: a: x\nf:2: b: y");
  EXPECT_EQ(e.errors().size(), 2u);
}

// loadConfigFile reads a file and names it in errors and in Config::sourceFile.
TEST_F(TempFile, LoadsAFileAndNamesItInErrors) {
  const std::string good = write("good.cfg", kMinimal);
  EXPECT_EQ(loadConfigFile(good).sourceFile, good);
  const std::string bad = write("bad.cfg", withMinimal("drain = { timeout_s = 4000; };\n"));
  try {
    loadConfigFile(bad);
    FAIL() << "accepted";
  } catch (const ConfigException& e) {
    ASSERT_EQ(e.errors().size(), 1u);
    EXPECT_EQ(e.errors()[0].toString(),
              bad + ":6: drain.timeout_s: out of range: 4000 (valid: 0..3600)");
  }
}

// A missing file is a clear error naming the file and the system's reason.
TEST_F(TempFile, MissingFileIsAClearError) {
  const std::string path = (dir_ / "absent.cfg").string();
  try {
    loadConfigFile(path);
    FAIL() << "accepted";
  } catch (const ConfigException& e) {
    ASSERT_EQ(e.errors().size(), 1u);
    EXPECT_EQ(e.errors()[0].file, path);
    EXPECT_EQ(e.errors()[0].reason,
              "cannot open the configuration file: No such file or directory");
  }
}

// A directory given as the file is refused with the system's reason.
TEST_F(TempFile, DirectoryIsAClearError) {
  try {
    loadConfigFile(dir_.string());
    FAIL() << "accepted";
  } catch (const ConfigException& e) {
    ASSERT_EQ(e.errors().size(), 1u);
    EXPECT_EQ(e.errors()[0].reason, "cannot read the configuration file: Is a directory");
  }
}

// A file without read permission is refused. Root reads anything, so the load runs in a
// child that first drops to an unprivileged user.
TEST_F(TempFile, UnreadableFileIsAClearError) {
  const std::string path = write("secret.cfg", kMinimal);
  std::filesystem::permissions(path, std::filesystem::perms::none);
  EXPECT_EXIT(
      {
        if (::geteuid() == 0 && ::setuid(65534) != 0) std::_Exit(3);
        try {
          loadConfigFile(path);
          std::_Exit(1);
        } catch (const ConfigException& e) {
          const bool clear =
              e.errors().size() == 1 &&
              e.errors()[0].reason == "cannot open the configuration file: Permission denied";
          std::_Exit(clear ? 0 : 2);
        }
      },
      ::testing::ExitedWithCode(0), "");
}

}  // namespace
}  // namespace sbc::config
