// config/: refused configurations. Each error names file, line, setting and reason, and
// every problem in a file is reported, not only the first.

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "config/config.h"
#include "tests/config/config_text.h"

namespace sbc::config {
namespace {

using testing::dump;
using testing::errorFor;
using testing::errorsOf;
using testing::kMinimal;
using testing::kTestFile;
using testing::lineOf;
using testing::parse;
using testing::withMinimal;

// A trunk list with one trunk whose body is `body` plus valid required settings.
std::string oneTrunk(const std::string& body) {
  return withMinimal("trunks = ( { name = \"t\"; source_prefixes = [ \"192.0.2.0/24\" ];\n"
                     "  target = { host = \"192.0.2.1\"; };\n  " +
                     body + "\n} );\n");
}

// ---- libconfig syntax errors

// A syntax error gives file and line from libconfig and nothing else.
TEST(SyntaxError, NamesFileAndLine) {
  const auto errors = errorsOf("log_level = \"info\";\nrealms = {\n  access = ;\n};\n");
  ASSERT_EQ(errors.size(), 1u) << dump(errors);
  EXPECT_EQ(errors[0].file, kTestFile);
  EXPECT_EQ(errors[0].line, 3);
  EXPECT_EQ(errors[0].setting, "");
  EXPECT_EQ(errors[0].toString(), "test.cfg:3: syntax error");
}

// A string where a terminator belongs is a syntax error on its line (libconfig leaks the
// string here; see lsan_suppressions.cc).
TEST(SyntaxError, StringWhereTerminatorBelongs) {
  const auto errors = errorsOf(withMinimal("drain = { timeout_s = 1 \"s\"; };\n"));
  ASSERT_EQ(errors.size(), 1u) << dump(errors);
  EXPECT_EQ(errors[0].toString(), "test.cfg:6: syntax error");
}

// A setting given twice in one group is libconfig's "duplicate setting name".
TEST(SyntaxError, DuplicateSettingName) {
  const auto errors = errorsOf(withMinimal("drain = { timeout_s = 1;\n timeout_s = 2; };\n"));
  ASSERT_EQ(errors.size(), 1u) << dump(errors);
  EXPECT_EQ(errors[0].line, 7);
  EXPECT_EQ(errors[0].reason, "duplicate setting name");
}

// Mixed element types in an array are a libconfig parse error.
TEST(SyntaxError, MixedArray) {
  const auto errors = errorsOf(withMinimal("dpdk = { eal_args = [ \"-l\", 1 ]; };\n"));
  ASSERT_EQ(errors.size(), 1u) << dump(errors);
  EXPECT_EQ(errors[0].reason, "mismatched element type in array");
}

// @include would make libconfig open other files: refused, with its line.
TEST(SyntaxError, IncludeIsRefused) {
  const auto errors = errorsOf(kMinimal + "  @include \"/etc/passwd\"\n");
  ASSERT_EQ(errors.size(), 1u) << dump(errors);
  EXPECT_EQ(errors[0].line, 6);
  EXPECT_EQ(errors[0].reason,
            "@include is not supported: keep the whole configuration in one file");
}

// A NUL byte would silently cut the text short in libconfig: refused, with its line.
TEST(SyntaxError, NulByteIsRefused) {
  std::string text = kMinimal + "drain = { timeout_s = 1; };\n";
  text.insert(text.size() - 3, 1, '\0');
  const auto errors = errorsOf(text);
  ASSERT_EQ(errors.size(), 1u) << dump(errors);
  EXPECT_EQ(errors[0].line, 6);
  EXPECT_EQ(errors[0].reason, "contains a NUL byte: not a text file");
}

// ---- unknown settings

// A misspelt top-level name is reported with the closest valid one.
TEST(UnknownSetting, TopLevelSuggestsClosest) {
  const std::string text = withMinimal("log_levle = \"info\";\n");
  const auto errors = errorsOf(text);
  ASSERT_EQ(errors.size(), 1u) << dump(errors);
  EXPECT_EQ(errors[0].toString(),
            "test.cfg:6: log_levle: unknown setting 'log_levle'; did you mean 'log_level'?");
}

// Inside a trunk (an element of a list) the path has the index and the suggestion works.
TEST(UnknownSetting, InsideTrunkSuggestsClosest) {
  const std::string text = oneTrunk("max_call = 5;");
  const ConfigError e = errorFor(errorsOf(text), "trunks.[0].max_call");
  EXPECT_EQ(e.reason, "unknown setting 'max_call'; did you mean 'max_calls'?");
  EXPECT_EQ(e.line, lineOf(text, "max_call ="));
}

// Unknown names are found at every level, all reported in one go.
TEST(UnknownSetting, EveryGroupLevel) {
  const std::string text = R"(
realms = {
  acess = {};
  access = { sip = ( { address = "127.0.0.10"; prot = 5060; } ); media = { address = "127.0.0.10"; portmin = 10000; }; medai = 1; };
  core   = { sip = ( { address = "127.0.0.11"; } ); media = { address = "127.0.0.11"; }; };
};
core = { next_hops = ( { host = "127.0.0.3"; trasnport = "udp"; } ); nexthops = (); };
media = { dcsp = 46; };
sip = { T1_ms = 500; };
lines = { max_binding = 1; };
metrics = { listen_on = "127.0.0.1:1"; };
control = { sockets = "/x"; };
drain = { timeout = 3; };
trunks = ( { name = "t"; source_prefix = [ "192.0.2.0/24" ]; target = { hots = "h"; host = "h"; };
             challenge = { user = "u"; username = "u"; password = "p"; }; } );
)";
  const auto errors = errorsOf(text);
  const auto expect = [&](const std::string& setting, const std::string& reason) {
    EXPECT_EQ(errorFor(errors, setting).reason, reason) << setting;
  };
  expect("realms.acess", "unknown setting 'acess'; did you mean 'access'?");
  expect("realms.access.sip.[0].prot", "unknown setting 'prot'; did you mean 'port'?");
  expect("realms.access.media.portmin", "unknown setting 'portmin'; did you mean 'port_min'?");
  expect("realms.access.medai", "unknown setting 'medai'; did you mean 'media'?");
  expect("core.next_hops.[0].trasnport", "unknown setting 'trasnport'; did you mean 'transport'?");
  expect("core.nexthops", "unknown setting 'nexthops'; did you mean 'next_hops'?");
  expect("media.dcsp", "unknown setting 'dcsp'; did you mean 'dscp'?");
  expect("sip.T1_ms", "unknown setting 'T1_ms'; did you mean 't1_ms'?");
  expect("lines.max_binding", "unknown setting 'max_binding'; did you mean 'max_bindings'?");
  expect("metrics.listen_on", "unknown setting 'listen_on'; did you mean 'listen'?");
  expect("control.sockets", "unknown setting 'sockets'; did you mean 'socket'?");
  expect("drain.timeout", "unknown setting 'timeout'; did you mean 'timeout_s'?");
  expect("trunks.[0].source_prefix",
         "unknown setting 'source_prefix'; did you mean 'source_prefixes'?");
  expect("trunks.[0].target.hots", "unknown setting 'hots'; did you mean 'host'?");
  expect("trunks.[0].challenge.user", "unknown setting 'user'; did you mean 'username'?");
  // The misspelt source_prefix leaves the trunk without its required prefixes.
  expect("trunks.[0].source_prefixes", "required setting is missing");
  EXPECT_EQ(errorFor(errors, "media.dcsp").line, lineOf(text, "dcsp"));
  EXPECT_EQ(errors.size(), 16u) << dump(errors);
}

// A name close to nothing lists the valid names of its group instead.
TEST(UnknownSetting, NoCloseNameListsValidOnes) {
  const auto errors = errorsOf(withMinimal("lines = { colour = \"blue\"; };\n"));
  EXPECT_EQ(errorFor(errors, "lines.colour").reason,
            "unknown setting 'colour'; valid settings here: max_calls, register_expires_s, "
            "max_bindings, throttle_registrations, core_register_expires_s, over_limit_status, "
            "register_rate_per_source");
}

// ---- wrong types

// A string where an integer belongs: the message names both types.
TEST(WrongType, StringForInteger) {
  const auto errors = errorsOf(withMinimal("media = { dscp = \"46\"; };\n"));
  EXPECT_EQ(errorFor(errors, "media.dscp").toString(),
            "test.cfg:6: media.dscp: wrong type: expected an integer, got a string");
}

// Integers are written without a decimal point: a float port is refused.
TEST(WrongType, FloatForInteger) {
  const auto errors = errorsOf(oneTrunk("max_calls = 10.0;"));
  EXPECT_EQ(errorFor(errors, "trunks.[0].max_calls").reason,
            "wrong type: expected an integer, got a float");
}

// Groups, lists, arrays, booleans and strings are each checked.
TEST(WrongType, AggregatesAndScalars) {
  const std::string text = R"(
log_level = 3;
realms = {
  access = { sip = { address = "127.0.0.10"; }; media = { address = "127.0.0.10"; }; };
  core   = ( );
};
core = { next_hops = "127.0.0.3"; };
media = [ 1 ];
trunks = { name = "x"; };
lines = { max_calls = true; };
metrics = { listen = 9469; };
)";
  const auto errors = errorsOf(text);
  const auto expect = [&](const std::string& setting, const std::string& reason) {
    EXPECT_EQ(errorFor(errors, setting).reason, reason) << setting;
  };
  expect("log_level", "wrong type: expected a string, got an integer");
  expect("realms.access.sip",
         "wrong type: expected a list of listen groups ( { ... }, ... ), got a group");
  expect("realms.core", "wrong type: expected a group { ... }, got a list");
  expect("core.next_hops", "wrong type: expected a list of next hops ( { ... }, ... ), got a string");
  expect("media", "wrong type: expected a group { ... }, got an array");
  expect("trunks", "wrong type: expected a list of trunks ( { ... }, ... ), got a group");
  expect("lines.max_calls", "wrong type: expected an integer, got a boolean");
  expect("metrics.listen", "wrong type: expected a string, got an integer");
  EXPECT_EQ(errors.size(), 8u) << dump(errors);
}

// Trunk fields: prefixes must be an array of strings, trusted a boolean, a list element a group.
TEST(WrongType, TrunkFields) {
  const std::string text = withMinimal(R"(
trunks = ( { name = "t"; source_prefixes = "192.0.2.0/24"; target = { host = "h"; }; trusted = "yes";
             max_calls_per_second = "fast"; },
           "not a trunk",
           { name = "u"; source_prefixes = [ 1 ]; target = { host = "h"; }; } );
)");
  const auto errors = errorsOf(text);
  EXPECT_EQ(errorFor(errors, "trunks.[0].source_prefixes").reason,
            "wrong type: expected an array of strings [ \"...\", ... ], got a string");
  EXPECT_EQ(errorFor(errors, "trunks.[0].trusted").reason,
            "wrong type: expected a boolean (true or false), got a string");
  EXPECT_EQ(errorFor(errors, "trunks.[0].max_calls_per_second").reason,
            "wrong type: expected a number, got a string");
  EXPECT_EQ(errorFor(errors, "trunks.[1]").reason,
            "wrong type: expected a group { ... }, got a string");
  EXPECT_EQ(errorFor(errors, "trunks.[2].source_prefixes.[0]").reason,
            "wrong type: expected a string, got an integer");
  EXPECT_EQ(errors.size(), 5u) << dump(errors);
}

// ---- out of range

struct RangeCase {
  std::string text;     // appended to the minimal config
  std::string setting;  // path of the error
  std::string reason;
};

// Every bounded number says its range and the value given.
TEST(OutOfRange, SaysRangeAndValue) {
  const std::vector<RangeCase> cases = {
      {"media = { dscp = 64; };", "media.dscp", "out of range: 64 (valid: 0..63)"},
      {"media = { dscp = -1; };", "media.dscp", "out of range: -1 (valid: 0..63)"},
      {"media = { quarantine_ms = 60001; };", "media.quarantine_ms",
       "out of range: 60001 (valid: 0..60000)"},
      {"media = { timeout_s = 86401; };", "media.timeout_s", "out of range: 86401 (valid: 0..86400)"},
      {"sip = { t1_ms = 0; };", "sip.t1_ms", "out of range: 0 (valid: 1..10000)"},
      {"sip = { t1_ms = 10001; };", "sip.t1_ms", "out of range: 10001 (valid: 1..10000)"},
      {"sip = { t1x64_ms = 600001; };", "sip.t1x64_ms", "out of range: 600001 (valid: 500..600000)"},
      {"sip = { overload_queue_kib = -1; };", "sip.overload_queue_kib",
       "out of range: -1 (valid: 0..1048576)"},
      {"sip = { overload_queue_kib = 1048577; };", "sip.overload_queue_kib",
       "out of range: 1048577 (valid: 0..1048576)"},
      {"sip = { realtime_priority = 100; };", "sip.realtime_priority",
       "out of range: 100 (valid: 0..99)"},
      {"sip = { realtime_priority = -1; };", "sip.realtime_priority",
       "out of range: -1 (valid: 0..99)"},
      {"sip = { nonce_expires_s = 0; };", "sip.nonce_expires_s", "out of range: 0 (valid: 1..86400)"},
      {"sip = { min_se_s = 100; session_expires_s = 99; };", "sip.session_expires_s",
       "below min_se_s (100): 99 (0 turns session timers off)"},
      {"sip = { max_session_expires_s = 1000; };", "sip.max_session_expires_s",
       "below session_expires_s (1800): 1000"},
      {"sip = { max_session_expires_s = 86401; };", "sip.max_session_expires_s",
       "out of range: 86401 (valid: 1..86400)"},
      {"sip = { min_se_s = 2000; };", "sip",
       "the default session_expires_s (1800) is below min_se_s (2000): set session_expires_s"},
      {"sip = { t1_ms = 1000; t1x64_ms = 999; };", "sip.t1x64_ms",
       "out of range: 999 (valid: 1000..600000)"},
      {"lines = { max_calls = 0; };", "lines.max_calls", "out of range: 0 (valid: 1..100)"},
      {"lines = { max_calls = 101; };", "lines.max_calls", "out of range: 101 (valid: 1..100)"},
      {"lines = { register_expires_s = 9; };", "lines.register_expires_s",
       "out of range: 9 (valid: 10..86400)"},
      {"lines = { max_bindings = 10000001; };", "lines.max_bindings",
       "out of range: 10000001 (valid: 1..10000000)"},
      {"lines = { core_register_expires_s = 59; };", "lines.core_register_expires_s",
       "out of range: 59 (valid: 60..86400)"},
      {"lines = { over_limit_status = 407; };", "lines.over_limit_status",
       "401 and 407 ask for credentials; choose another status"},
      {"lines = { register_rate_per_source = 0; };", "lines.register_rate_per_source",
       "out of range: 0 (valid: 1..1000000)"},
      {"lines = { throttle_registrations = 1; };", "lines.throttle_registrations",
       "wrong type: expected a boolean (true or false), got an integer"},
      {"media = { kernel_forwarding = \"yes\"; };", "media.kernel_forwarding",
       "wrong type: expected a boolean (true or false), got a string"},
      {"drain = { timeout_s = 3601; };", "drain.timeout_s", "out of range: 3601 (valid: 0..3600)"},
      {"drain = { timeout_s = 99999999999L; };", "drain.timeout_s",
       "out of range: 99999999999 (valid: 0..3600)"},
      {"core = { next_hops = ( { host = \"h\"; port = 0; } ); };", "core.next_hops.[0].port",
       "out of range: 0 (valid: 1..65535)"},
  };
  for (const RangeCase& c : cases) {
    // Settings given twice are a syntax error, so the case replaces the minimal `core`.
    std::string text = c.text.rfind("core", 0) == 0
                           ? kMinimal.substr(0, kMinimal.find("core = {")) + c.text + "\n"
                           : withMinimal(c.text + "\n");
    const auto errors = errorsOf(text);
    const ConfigError e = errorFor(errors, c.setting);
    EXPECT_EQ(e.reason, c.reason) << c.text;
    EXPECT_EQ(e.line, lineOf(text, c.text)) << c.text;
    EXPECT_EQ(errors.size(), 1u) << c.text << "\n" << dump(errors);
  }
}

// libconfig 1.5 wraps integers beyond 32 bits ("4294967297" reads as 1): refused instead.
TEST(OutOfRange, IntegerLiteralBeyond32BitsIsNotMisread) {
  const std::string text = oneTrunk("max_calls = 4294967297;\n  call_rate_burst = 0x100000001;") +
                           "lines = { max_bindings = 99999999999999999999L; max_calls = 0; };\n";
  const auto errors = errorsOf(text);
  ASSERT_EQ(errors.size(), 4u) << dump(errors);
  EXPECT_EQ(errors[0].toString(),
            "test.cfg:8: integer '4294967297' does not fit in 32 bits; write '4294967297L' for a "
            "64-bit integer");
  EXPECT_EQ(errors[1].toString(),
            "test.cfg:9: integer '0x100000001' does not fit in 32 bits; write '0x100000001L' for "
            "a 64-bit integer");
  EXPECT_EQ(errors[2].toString(),
            "test.cfg:11: integer '99999999999999999999L' does not fit in 64 bits");
  // The validator is quiet about the misread values, not about other problems.
  EXPECT_EQ(errors[3].setting, "lines.max_calls");
}

// Numbers inside strings, comments, names and floats are not integer literals.
TEST(OutOfRange, LiteralScanSkipsStringsCommentsNamesFloats) {
  const std::string text = withMinimal(R"(# 99999999999
/* 99999999999
   99999999999 */ // 99999999999
trunks = ( { name = "t99999999999"; source_prefixes = [ "192.0.2.0/24" ];
             target = { host = "h99999999999"; }; max_calls_per_second = 1.5e-99999999999;
             challenge = { username = "u"; password = "a\"99999999999\\"; realm = "x99999999999"; }; } );
sip = { t1_ms = 2147483647L; };
)");
  const auto errors = errorsOf(text);
  ASSERT_EQ(errors.size(), 2u) << dump(errors);
  EXPECT_EQ(errors[0].setting, "trunks.[0].max_calls_per_second");  // 0 after underflow
  EXPECT_EQ(errors[1].setting, "sip.t1_ms");
  EXPECT_EQ(errors[1].reason, "out of range: 2147483647 (valid: 1..10000)");
}

// Trunk numbers: limits, rate (exclusive zero, float or integer), burst, target port.
TEST(OutOfRange, TrunkNumbers) {
  const auto reasonFor = [](const std::string& body, const std::string& setting) {
    return errorFor(errorsOf(oneTrunk(body)), setting).reason;
  };
  EXPECT_EQ(reasonFor("max_calls = 0;", "trunks.[0].max_calls"),
            "out of range: 0 (valid: 1..1000000)");
  EXPECT_EQ(reasonFor("max_calls = 1000001;", "trunks.[0].max_calls"),
            "out of range: 1000001 (valid: 1..1000000)");
  EXPECT_EQ(reasonFor("max_calls_per_second = 0;", "trunks.[0].max_calls_per_second"),
            "out of range: 0 (valid: > 0 and <= 100000)");
  EXPECT_EQ(reasonFor("max_calls_per_second = -0.5;", "trunks.[0].max_calls_per_second"),
            "out of range: -0.5 (valid: > 0 and <= 100000)");
  EXPECT_EQ(reasonFor("max_calls_per_second = 100000.5;", "trunks.[0].max_calls_per_second"),
            "out of range: 100000 (valid: > 0 and <= 100000)");
  EXPECT_EQ(reasonFor("max_calls_per_second = 1e999;", "trunks.[0].max_calls_per_second"),
            "out of range: inf (valid: > 0 and <= 100000)");
  // The largest 64-bit literal: checked as read, not converted back from its double (2^63,
  // undefined as a long long; found by fuzz-config).
  EXPECT_EQ(reasonFor("max_calls_per_second = 9223372036854775807L;",
                      "trunks.[0].max_calls_per_second")
                .rfind("out of range: ", 0),
            0u);
  EXPECT_EQ(reasonFor("call_rate_burst = -1;", "trunks.[0].call_rate_burst"),
            "out of range: -1 (valid: 0..1000000)");
  const std::string text = withMinimal(
      "trunks = ( { name = \"t\"; source_prefixes = [ \"192.0.2.0/24\" ]; "
      "target = { host = \"192.0.2.1\"; port = 65536; }; } );\n");
  EXPECT_EQ(errorFor(errorsOf(text), "trunks.[0].target.port").reason,
            "out of range: 65536 (valid: 1..65535)");
}

// SIP listen ports are 0..65535 (0 = any free port).
TEST(OutOfRange, SipListenPort) {
  const std::string text = R"(realms = {
  access = { sip = ( { address = "127.0.0.10"; port = 65536; } ); media = { address = "127.0.0.10"; }; };
  core   = { sip = ( { address = "127.0.0.11"; port = -1; } ); media = { address = "127.0.0.11"; }; };
};
core = { next_hops = ( { host = "127.0.0.3"; } ); };
)";
  const auto errors = errorsOf(text);
  EXPECT_EQ(errorFor(errors, "realms.access.sip.[0].port").reason,
            "out of range: 65536 (valid: 0..65535)");
  EXPECT_EQ(errorFor(errors, "realms.core.sip.[0].port").reason,
            "out of range: -1 (valid: 0..65535)");
  EXPECT_EQ(errorFor(errors, "realms.core.sip.[0].port").line, 3);
}

// ---- media port ranges

std::string withAccessMedia(const std::string& media) {
  return "realms = {\n  access = { sip = ( { address = \"127.0.0.10\"; } ); media = { " + media +
         " }; };\n  core = { sip = ( { address = \"127.0.0.11\"; } ); media = { address = "
         "\"127.0.0.11\"; }; };\n};\ncore = { next_hops = ( { host = \"127.0.0.3\"; } ); };\n";
}

// port_min is even, port_max above it, both within 1024..65535.
TEST(MediaRange, BoundsEvenAndOrder) {
  const auto reason = [](const std::string& media, const std::string& setting) {
    return errorFor(errorsOf(withAccessMedia("address = \"127.0.0.10\"; " + media)), setting)
        .reason;
  };
  EXPECT_EQ(reason("port_min = 10001;", "realms.access.media.port_min"),
            "must be even (RTP takes the even port, RTCP the next one), got 10001");
  EXPECT_EQ(reason("port_min = 1022;", "realms.access.media.port_min"),
            "out of range: 1022 (valid: 1024..65535)");
  EXPECT_EQ(reason("port_max = 65536;", "realms.access.media.port_max"),
            "out of range: 65536 (valid: 1024..65535)");
  EXPECT_EQ(reason("port_min = 20000; port_max = 20000;", "realms.access.media.port_max"),
            "port_max (20000) must be greater than port_min (20000)");
  // Only port_max given, below the default port_min.
  EXPECT_EQ(reason("port_max = 5000;", "realms.access.media.port_max"),
            "port_max (5000) must be greater than port_min (10000)");
}

// media.gateway and media.on_link (the dpdk driver's route to off-link peers): parsed, and
// refused when they could not work.
TEST(MediaRange, GatewayAndOnLink) {
  const Config config = parse(withAccessMedia(
      "address = \"127.0.0.10\"; gateway = \"127.0.0.254\"; on_link = [ \"127.0.0.0/24\" ];"));
  EXPECT_EQ(config.access.media.gateway, "127.0.0.254");
  EXPECT_EQ(config.access.media.onLink, std::vector<std::string>{"127.0.0.0/24"});
  EXPECT_TRUE(config.core.media.gateway.empty());
  const auto reason = [](const std::string& media, const std::string& setting) {
    return errorFor(errorsOf(withAccessMedia("address = \"127.0.0.10\"; " + media)), setting)
        .reason;
  };
  EXPECT_EQ(reason("gateway = \"::1\";", "realms.access.media.gateway"),
            "must be of the same family as the media address '127.0.0.10'");
  EXPECT_EQ(reason("gateway = \"127.0.0.10\";", "realms.access.media.gateway"),
            "is the media address itself");
  EXPECT_EQ(reason("on_link = [ \"127.0.0.0/24\" ];", "realms.access.media.on_link"),
            "needs a gateway: without one every peer is on-link already");
  EXPECT_EQ(reason("gateway = \"10.9.9.9\"; on_link = [ \"127.0.0.0/24\" ];",
                   "realms.access.media.gateway"),
            "gateway '10.9.9.9' is in none of the on_link prefixes: it could not be reached");
  EXPECT_EQ(reason("gateway = \"127.0.0.1\"; on_link = [ \"127.0.0.1/24\" ];",
                   "realms.access.media.on_link.[0]"),
            "not an address prefix (ADDRESS/LENGTH with no host bits set): '127.0.0.1/24'");
}

// Proves: an IPv6 gateway may be a link-local address outside on_link (routers are known by
// theirs, and it is on the link by definition); a global one must still be inside on_link.
TEST(MediaRange, Ipv6LinkLocalGatewayNeedsNoOnLinkPrefix) {
  const Config config = parse(withAccessMedia(
      "address = \"2001:db8::10\"; gateway = \"fe80::1\"; on_link = [ \"2001:db8::/64\" ];"));
  EXPECT_EQ(config.access.media.gateway, "fe80::1");
  EXPECT_EQ(config.access.media.onLink, std::vector<std::string>{"2001:db8::/64"});
  EXPECT_EQ(errorFor(errorsOf(withAccessMedia("address = \"2001:db8::10\"; gateway = "
                                              "\"2001:db8:9::1\"; on_link = [ \"2001:db8::/64\" ];")),
                     "realms.access.media.gateway")
                .reason,
            "gateway '2001:db8:9::1' is in none of the on_link prefixes: it could not be reached");
}

// Proves: media.vlan (the dpdk driver's 802.1Q VLAN of a realm) is read per realm, absent
// means untagged (0), and only 1..4094 are accepted (0 and 4095 are reserved).
TEST(MediaRange, Vlan) {
  const Config config = parse(withAccessMedia("address = \"127.0.0.10\"; vlan = 100;"));
  EXPECT_EQ(config.access.media.vlan, 100);
  EXPECT_EQ(config.core.media.vlan, 0);
  EXPECT_EQ(parse(withAccessMedia("address = \"127.0.0.10\"; vlan = 4094;")).access.media.vlan, 4094);
  const auto reason = [](const std::string& media) {
    return errorFor(errorsOf(withAccessMedia("address = \"127.0.0.10\"; " + media)),
                    "realms.access.media.vlan")
        .reason;
  };
  EXPECT_EQ(reason("vlan = 0;"), "out of range: 0 (valid: 1..4094)");
  EXPECT_EQ(reason("vlan = 4095;"), "out of range: 4095 (valid: 1..4094)");
  EXPECT_NE(reason("vlan = \"100\";"), "");
}

// Two realms on one media address must not share ports.
TEST(MediaRange, OverlapOnSameAddressIsRefused) {
  const std::string text = R"(realms = {
  access = { sip = ( { address = "127.0.0.10"; } ); media = { address = "127.0.0.10"; port_min = 10000; port_max = 20001; }; };
  core   = { sip = ( { address = "127.0.0.11"; } ); media = { address = "127.0.0.10"; port_min = 20000; port_max = 29999; }; };
};
core = { next_hops = ( { host = "127.0.0.3"; } ); };
)";
  const auto errors = errorsOf(text);
  ASSERT_EQ(errors.size(), 1u) << dump(errors);
  EXPECT_EQ(errors[0].toString(),
            "test.cfg:3: realms.core.media: port range 20000..29999 overlaps realms.access.media "
            "(10000..20001) on the same address '127.0.0.10'");
}

// The default ranges clash when both realms use the same address.
TEST(MediaRange, DefaultRangesOnSameAddressOverlap) {
  const auto errors = errorsOf(withAccessMedia("address = \"127.0.0.11\";"));
  EXPECT_NE(errorFor(errors, "realms.core.media").reason.find("overlaps"), std::string::npos);
}

// A UDP SIP listen inside a media range on the same address is refused (TCP is not).
TEST(MediaRange, SipPortInsideMediaRangeOnSameAddress) {
  const std::string text = R"(realms = {
  access = { sip = ( { address = "127.0.0.10"; port = 12000; }, { address = "127.0.0.10"; port = 12002; transport = "tcp"; } );
             media = { address = "127.0.0.10"; }; };
  core   = { sip = ( { address = "127.0.0.11"; port = 20000; } ); media = { address = "127.0.0.10"; port_min = 40000; port_max = 40099; }; };
};
core = { next_hops = ( { host = "127.0.0.3"; } ); };
)";
  const auto errors = errorsOf(text);
  ASSERT_EQ(errors.size(), 1u) << dump(errors);
  EXPECT_EQ(errors[0].toString(),
            "test.cfg:2: realms.access.sip.[0]: UDP port 12000 is inside the media port range "
            "10000..32767 of realms.access.media on the same address");
}

// ---- duplicates

// Two trunks with one name: the second is reported with the line of the first.
TEST(Duplicates, TrunkNames) {
  const std::string text = withMinimal(R"(trunks = (
  { name = "acme"; source_prefixes = [ "192.0.2.0/24" ]; target = { host = "192.0.2.1"; }; },
  { name = "acme"; source_prefixes = [ "198.51.100.0/24" ]; target = { host = "198.51.100.1"; }; }
);
)");
  const auto errors = errorsOf(text);
  ASSERT_EQ(errors.size(), 1u) << dump(errors);
  EXPECT_EQ(errors[0].toString(),
            "test.cfg:8: trunks.[1].name: duplicate trunk name 'acme' (first defined at line 7)");
}

// The same prefix in two trunks is ambiguous: refused, naming the other trunk.
TEST(Duplicates, SamePrefixInTwoTrunks) {
  const std::string text = withMinimal(R"(trunks = (
  { name = "a"; source_prefixes = [ "192.0.2.0/24", "2001:db8::/32" ]; target = { host = "192.0.2.1"; }; },
  { name = "b"; source_prefixes = [ "10.0.0.0/8", "2001:db8:0::/32" ]; target = { host = "10.0.0.1"; }; }
);
)");
  const auto errors = errorsOf(text);
  ASSERT_EQ(errors.size(), 1u) << dump(errors);
  EXPECT_EQ(errors[0].toString(),
            "test.cfg:8: trunks.[1].source_prefixes.[1]: prefix '2001:db8:0::/32' is already "
            "used by trunk 'a' (trunks.[0].source_prefixes.[1]); a source prefix must belong "
            "to one trunk");
}

// Two trunks that share a name and a prefix: both problems, the prefix naming the other trunk.
TEST(Duplicates, SameNameAndPrefixInTwoTrunks) {
  const std::string text = withMinimal(R"(trunks = (
  { name = "acme"; source_prefixes = [ "192.0.2.0/24" ]; target = { host = "192.0.2.1"; }; },
  { name = "acme"; source_prefixes = [ "192.0.2.0/24" ]; target = { host = "192.0.2.1"; }; }
);
)");
  const auto errors = errorsOf(text);
  EXPECT_EQ(errorFor(errors, "trunks.[1].name").reason,
            "duplicate trunk name 'acme' (first defined at line 7)");
  EXPECT_EQ(errorFor(errors, "trunks.[1].source_prefixes.[0]").reason,
            "prefix '192.0.2.0/24' is already used by trunk 'acme' "
            "(trunks.[0].source_prefixes.[0]); a source prefix must belong to one trunk");
  EXPECT_EQ(errors.size(), 2u) << dump(errors);
}

// A prefix listed twice in one trunk is reported too.
TEST(Duplicates, SamePrefixTwiceInOneTrunk) {
  const auto errors = errorsOf(oneTrunk("").replace(
      oneTrunk("").find("[ \"192.0.2.0/24\" ]"), 18, "[ \"192.0.2.0/24\", \"192.0.2.0/24\" ]"));
  EXPECT_EQ(errorFor(errors, "trunks.[0].source_prefixes.[1]").reason,
            "prefix '192.0.2.0/24' is listed twice (also trunks.[0].source_prefixes.[0])");
}

// A dial prefix routes to one trunk: the same prefix in two trunks, or twice in one, is
// refused naming the other use; a prefix with characters no dial string has, or too long,
// or not a string, is refused.
TEST(Duplicates, DialPrefixes) {
  const std::string text = withMinimal(R"(trunks = (
  { name = "a"; source_prefixes = [ "192.0.2.0/24" ]; target = { host = "192.0.2.1"; }; dial_prefixes = [ "+4930", "0030", "+4930" ]; },
  { name = "b"; source_prefixes = [ "10.0.0.0/8" ]; target = { host = "10.0.0.1"; }; dial_prefixes = [ "0030", "+49 30", "123456789012345678901234567890123" ]; }
);
)");
  const auto errors = errorsOf(text);
  EXPECT_EQ(errorFor(errors, "trunks.[0].dial_prefixes.[2]").toString(),
            "test.cfg:7: trunks.[0].dial_prefixes.[2]: dial prefix '+4930' is listed twice "
            "(also trunks.[0].dial_prefixes.[0])");
  EXPECT_EQ(errorFor(errors, "trunks.[1].dial_prefixes.[0]").toString(),
            "test.cfg:8: trunks.[1].dial_prefixes.[0]: dial prefix '0030' is already used by "
            "trunk 'a' (trunks.[0].dial_prefixes.[1]); a dial prefix must route to one trunk");
  EXPECT_EQ(errorFor(errors, "trunks.[1].dial_prefixes.[1]").reason,
            "not a dial prefix: '+49 30' (0..32 characters of 0-9 A-Z a-z + * # . - _)");
  EXPECT_EQ(errorFor(errors, "trunks.[1].dial_prefixes.[2]").reason,
            "not a dial prefix: '123456789012345678901234567890123' (0..32 characters of 0-9 "
            "A-Z a-z + * # . - _)");
  EXPECT_EQ(errors.size(), 4u) << dump(errors);
}

// dial_prefixes must be an array of strings.
TEST(WrongType, DialPrefixes) {
  const auto errors = errorsOf(withMinimal(R"(trunks = (
  { name = "a"; source_prefixes = [ "192.0.2.0/24" ]; target = { host = "192.0.2.1"; }; dial_prefixes = "+4930"; } );
)"));
  ASSERT_EQ(errors.size(), 1u) << dump(errors);
  EXPECT_EQ(errors[0].setting, "trunks.[0].dial_prefixes");
}

// Two listens on one address, port and transport cannot both bind, across realms too.
TEST(Duplicates, SipListens) {
  const std::string text = R"(realms = {
  access = { sip = ( { address = "127.0.0.10"; }, { address = "127.0.0.10"; port = 5060; transport = "udp"; } );
             media = { address = "127.0.0.10"; }; };
  core   = { sip = ( { address = "127.0.0.10"; transport = "tcp"; }, { address = "127.0.0.10"; transport = "tcp"; } );
             media = { address = "127.0.0.11"; }; };
};
core = { next_hops = ( { host = "127.0.0.3"; } ); };
)";
  const auto errors = errorsOf(text);
  EXPECT_EQ(errorFor(errors, "realms.access.sip.[1]").reason,
            "listens on the same address, port and transport as realms.access.sip.[0]");
  EXPECT_EQ(errorFor(errors, "realms.core.sip.[1]").reason,
            "listens on the same address, port and transport as realms.core.sip.[0]");
  EXPECT_EQ(errors.size(), 2u) << dump(errors);
}

// ---- missing settings

// An empty file lacks the two required top-level groups; no line to point at.
TEST(Missing, EmptyFile) {
  const auto errors = errorsOf("");
  ASSERT_EQ(errors.size(), 2u) << dump(errors);
  EXPECT_EQ(errors[0].toString(), "test.cfg: realms: required setting is missing");
  EXPECT_EQ(errors[1].toString(), "test.cfg: core: required setting is missing");
}

// Each required setting inside a group is named, with the line of its group.
TEST(Missing, RequiredInsideGroups) {
  const std::string text = R"(realms = {
  access = { media = { port_min = 10000; }; };
  core = { sip = ( { port = 5060; } ); };
};
core = { };
trunks = ( { }, { name = "t"; source_prefixes = [ "192.0.2.0/24" ]; target = { port = 5060; };
                  challenge = { realm = "r"; }; } );
)";
  const auto errors = errorsOf(text);
  const auto expect = [&](const std::string& setting, int line) {
    const ConfigError e = errorFor(errors, setting);
    EXPECT_EQ(e.reason, "required setting is missing") << setting;
    EXPECT_EQ(e.line, line) << setting;
  };
  expect("realms.access.sip", 2);
  expect("realms.access.media.address", 2);
  expect("realms.core.sip.[0].address", 3);
  expect("realms.core.media", 3);
  expect("core.next_hops", 5);
  expect("trunks.[0].name", 6);
  expect("trunks.[0].source_prefixes", 6);
  expect("trunks.[0].target", 6);
  expect("trunks.[1].target.host", 6);
  expect("trunks.[1].challenge.username", 7);
  expect("trunks.[1].challenge.password", 7);
  EXPECT_EQ(errors.size(), 11u) << dump(errors);
}

// Lists that must not be empty: SIP listens, next hops, a trunk's prefixes.
TEST(Missing, EmptyLists) {
  const std::string text = R"(realms = {
  access = { sip = ( ); media = { address = "127.0.0.10"; }; };
  core   = { sip = ( { address = "127.0.0.11"; } ); media = { address = "127.0.0.11"; }; };
};
core = { next_hops = ( ); };
trunks = ( { name = "t"; source_prefixes = [ ]; target = { host = "h"; }; } );
)";
  const auto errors = errorsOf(text);
  EXPECT_EQ(errorFor(errors, "realms.access.sip").reason, "needs at least one listen address");
  EXPECT_EQ(errorFor(errors, "core.next_hops").reason, "needs at least one next hop");
  EXPECT_EQ(errorFor(errors, "trunks.[0].source_prefixes").reason,
            "needs at least one prefix: calls are matched by source address");
  EXPECT_EQ(errors.size(), 3u) << dump(errors);
}

// An empty trunk list is valid (a lines-only SBC).
TEST(Missing, EmptyTrunkListIsValid) {
  EXPECT_NO_THROW(testing::parse(withMinimal("trunks = ( );\n")));
}

// ---- bad text: prefixes, addresses, hosts, names

// Prefixes go through policy::IpPrefix::parse: host bits, lengths and junk are refused.
TEST(BadText, Prefixes) {
  const std::string text = withMinimal(R"(
trunks = ( { name = "t"; source_prefixes = [ "192.0.2.1/24", "192.0.2.0/33", "2001:db8::/129", "garbage", "", "10.0.0.0/" ];
             target = { host = "h"; }; } );
)");
  const auto errors = errorsOf(text);
  const std::string reason = "not an address prefix (ADDRESS/LENGTH with no host bits set): ";
  EXPECT_EQ(errorFor(errors, "trunks.[0].source_prefixes.[0]").reason, reason + "'192.0.2.1/24'");
  EXPECT_EQ(errorFor(errors, "trunks.[0].source_prefixes.[1]").reason, reason + "'192.0.2.0/33'");
  EXPECT_EQ(errorFor(errors, "trunks.[0].source_prefixes.[2]").reason,
            reason + "'2001:db8::/129'");
  EXPECT_EQ(errorFor(errors, "trunks.[0].source_prefixes.[3]").reason, reason + "'garbage'");
  EXPECT_EQ(errorFor(errors, "trunks.[0].source_prefixes.[4]").reason, reason + "''");
  EXPECT_EQ(errorFor(errors, "trunks.[0].source_prefixes.[5]").reason, reason + "'10.0.0.0/'");
  EXPECT_EQ(errorFor(errors, "trunks.[0].source_prefixes.[0]").line, 7);
  EXPECT_EQ(errors.size(), 6u) << dump(errors);
}

// Listen and media addresses are literal and specific: no names, no 0.0.0.0 or ::.
TEST(BadText, Addresses) {
  const std::string text = R"(realms = {
  access = { sip = ( { address = "localhost"; }, { address = "0.0.0.0"; } ); media = { address = "10.0.0.256"; }; };
  core   = { sip = ( { address = "[::1]"; } ); media = { address = "::"; }; };
};
core = { next_hops = ( { host = "127.0.0.3"; } ); };
)";
  const auto errors = errorsOf(text);
  EXPECT_EQ(errorFor(errors, "realms.access.sip.[0].address").reason,
            "not a literal IPv4 or IPv6 address: 'localhost'");
  EXPECT_EQ(errorFor(errors, "realms.access.sip.[1].address").reason,
            "the unspecified address '0.0.0.0' cannot be used: give the address to bind and "
            "advertise");
  EXPECT_EQ(errorFor(errors, "realms.access.media.address").reason,
            "not a literal IPv4 or IPv6 address: '10.0.0.256'");
  EXPECT_EQ(errorFor(errors, "realms.core.sip.[0].address").reason,
            "not a literal IPv4 or IPv6 address: '[::1]'");
  EXPECT_EQ(errorFor(errors, "realms.core.media.address").line, 3);
  EXPECT_EQ(errors.size(), 5u) << dump(errors);
}

// Next hops and targets: an IP literal or a sane host name.
TEST(BadText, Hosts) {
  const std::string text = kMinimal.substr(0, kMinimal.find("core = {")) + R"(core = { next_hops = (
  { host = ""; }, { host = "bad host"; }, { host = "192.0.2.300"; }, { host = "-x.example"; },
  { host = "a..b"; }, { host = "[2001:db8::1]"; }, { host = "0.0.0.0"; }, { host = "ok.example."; },
  { host = "fine-1.example"; } ); };
)";
  const auto errors = errorsOf(text);
  const auto reason = [&](int i) {
    return errorFor(errors, "core.next_hops.[" + std::to_string(i) + "].host").reason;
  };
  EXPECT_EQ(reason(0), "must not be empty");
  EXPECT_EQ(reason(1), "not a literal IP address or a valid host name: 'bad host'");
  EXPECT_EQ(reason(2), "not a literal IP address or a valid host name: '192.0.2.300'");
  EXPECT_EQ(reason(3), "not a literal IP address or a valid host name: '-x.example'");
  EXPECT_EQ(reason(4), "not a literal IP address or a valid host name: 'a..b'");
  EXPECT_EQ(reason(5), "not a literal IP address or a valid host name: '[2001:db8::1]'");
  EXPECT_EQ(reason(6), "the unspecified address '0.0.0.0' is not a destination");
  EXPECT_EQ(reason(7), "not a literal IP address or a valid host name: 'ok.example.'");
  EXPECT_EQ(errors.size(), 8u) << dump(errors);
}

// Trunk names: characters, length; control characters in values are escaped in messages.
TEST(BadText, TrunkNames) {
  const std::string text = withMinimal(R"(trunks = (
  { name = ""; source_prefixes = [ "10.0.0.1" ]; target = { host = "h"; }; },
  { name = "a b"; source_prefixes = [ "10.0.0.2" ]; target = { host = "h"; }; },
  { name = "x\ny"; source_prefixes = [ "10.0.0.3" ]; target = { host = "h"; }; },
  { name = "12345678901234567890123456789012345678901234567890123456789012345"; source_prefixes = [ "10.0.0.4" ]; target = { host = "h"; }; }
);
)");
  const auto errors = errorsOf(text);
  const std::string rule = " (1..64 characters of A-Z a-z 0-9 _ . -)";
  EXPECT_EQ(errorFor(errors, "trunks.[0].name").reason, "not a valid trunk name: ''" + rule);
  EXPECT_EQ(errorFor(errors, "trunks.[1].name").reason, "not a valid trunk name: 'a b'" + rule);
  EXPECT_EQ(errorFor(errors, "trunks.[2].name").reason, "not a valid trunk name: 'x\\ny'" + rule);
  EXPECT_NE(errorFor(errors, "trunks.[3].name").reason.find("not a valid trunk name"),
            std::string::npos);
  EXPECT_EQ(errors.size(), 4u) << dump(errors);
}

// Credentials: required non-empty fields; no header-breaking characters.
TEST(BadText, Credentials) {
  const std::string text = oneTrunk(
      "challenge = { username = \"\"; password = \"p\"; realm = \"a\\\"b\"; };\n"
      "  answer = { username = \"u\\r\\nVia: x\"; password = \"\"; };");
  const auto errors = errorsOf(text);
  EXPECT_EQ(errorFor(errors, "trunks.[0].challenge.username").reason, "must not be empty");
  EXPECT_EQ(errorFor(errors, "trunks.[0].challenge.realm").reason,
            "'\"' and '\\' are not allowed: 'a\"b'");
  EXPECT_EQ(errorFor(errors, "trunks.[0].answer.username").reason,
            "control characters are not allowed");
  EXPECT_EQ(errorFor(errors, "trunks.[0].answer.password").reason, "must not be empty");
  EXPECT_EQ(errors.size(), 4u) << dump(errors);
}

// metrics.listen is ADDRESS:PORT with a literal address; IPv6 in brackets.
TEST(BadText, MetricsListen) {
  const auto reason = [](const std::string& listen) {
    return errorFor(errorsOf(withMinimal("metrics = { listen = \"" + listen + "\"; };\n")),
                    "metrics.listen")
        .reason;
  };
  const std::string usage =
      " (expected ADDRESS:PORT, e.g. \"127.0.0.1:9469\" or \"[::1]:9469\")";
  EXPECT_EQ(reason("127.0.0.1"), "no port in '127.0.0.1'" + usage);
  EXPECT_EQ(reason("::1:9469"), "an IPv6 address needs brackets: '::1:9469'" + usage);
  EXPECT_EQ(reason("localhost:9469"), "not a literal IP address: 'localhost'" + usage);
  EXPECT_EQ(reason("[127.0.0.1]:9469"), "not a literal IP address: '127.0.0.1'" + usage);
  EXPECT_EQ(reason("[::1:9469"), "missing ']' in '[::1:9469'" + usage);
  EXPECT_EQ(reason("127.0.0.1:"), "bad port in '127.0.0.1:'" + usage);
  EXPECT_EQ(reason("127.0.0.1:http"), "bad port in '127.0.0.1:http'" + usage);
  EXPECT_EQ(reason("[::1]9469"), "bad port in '[::1]9469'" + usage);
  EXPECT_EQ(reason("127.0.0.1:65536"), "port out of range: 65536 (valid: 0..65535)");
  EXPECT_NO_THROW(testing::parse(withMinimal("metrics = { listen = \"0.0.0.0:9469\"; };\n")));
}

// The control socket is an absolute path that fits in sockaddr_un.
TEST(BadText, ControlSocket) {
  const auto reason = [](const std::string& path) {
    return errorFor(errorsOf(withMinimal("control = { socket = \"" + path + "\"; };\n")),
                    "control.socket")
        .reason;
  };
  EXPECT_EQ(reason("sbcd.sock"), "must be an absolute path: 'sbcd.sock'");
  EXPECT_EQ(reason(""), "must be an absolute path: ''");
  EXPECT_EQ(reason("/" + std::string(107, 'x')),
            "too long for a unix socket: 108 bytes (at most 107)");
}

// ---- enumerations

// An unknown enumeration value lists the valid ones.
TEST(UnknownEnum, ListsValidValues) {
  const std::string text = R"(log_level = "verbose";
realms = {
  access = { sip = ( { address = "127.0.0.10"; transport = "sctp"; } ); media = { address = "127.0.0.10"; }; };
  core   = { sip = ( { address = "127.0.0.11"; } ); media = { address = "127.0.0.11"; }; };
};
core = { next_hops = ( { host = "127.0.0.3"; transport = "TCP"; } ); };
media = { driver = "xdp"; socket_ports = "ebpf"; };
)";
  const auto errors = errorsOf(text);
  EXPECT_EQ(errorFor(errors, "log_level").toString(),
            "test.cfg:1: log_level: unknown value 'verbose'; valid values: debug, info, warning, "
            "error");
  EXPECT_EQ(errorFor(errors, "realms.access.sip.[0].transport").reason,
            "unknown value 'sctp'; valid values: udp, tcp");
  EXPECT_EQ(errorFor(errors, "core.next_hops.[0].transport").reason,
            "unknown value 'TCP'; valid values: udp, tcp");
  EXPECT_EQ(errorFor(errors, "media.driver").reason,
            "unknown value 'xdp'; valid values: socket, dpdk");
  EXPECT_EQ(errorFor(errors, "media.socket_ports").reason,
            "unknown value 'ebpf'; valid values: per_port, sk_lookup");
  EXPECT_EQ(errors.size(), 5u) << dump(errors);
}

// ---- dpdk

// With driver = "dpdk" the dpdk section is required.
TEST(Dpdk, RequiredWithDpdkDriver) {
  const auto errors = errorsOf(withMinimal("media = { driver = \"dpdk\"; };\n"));
  ASSERT_EQ(errors.size(), 1u) << dump(errors);
  EXPECT_EQ(errors[0].toString(),
            "test.cfg: dpdk: required setting is missing (media.driver is \"dpdk\")");
}

// With driver = "dpdk" the section is checked: names, ports, realms, devices.
TEST(Dpdk, CheckedWithDpdkDriver) {
  const std::string text = withMinimal(R"(media = { driver = "dpdk"; };
dpdk = { eal_arg = [ "-l" ]; eal_args = [ "-l", "" ];
         ports = ( { device = "net_ring0"; realm = "access"; }, { device = "net_ring1"; realm = "edge"; },
                   { device = "bad name"; realm = "core"; }, { realm = "core"; },
                   { device = "net_ring0"; realm = "access"; } ); };
)");
  const auto errors = errorsOf(text);
  EXPECT_EQ(errorFor(errors, "dpdk.eal_arg").reason,
            "unknown setting 'eal_arg'; did you mean 'eal_args'?");
  EXPECT_EQ(errorFor(errors, "dpdk.eal_args.[1]").reason, "an EAL argument must not be empty");
  EXPECT_EQ(errorFor(errors, "dpdk.ports.[4].device").reason,
            "realm 'access' already has its port (dpdk.ports.[0]); bond several links into "
            "one port (net_bonding)");
  EXPECT_EQ(errorFor(errors, "dpdk.ports.[1].realm").reason,
            "unknown value 'edge'; valid values: access, core");
  EXPECT_EQ(errorFor(errors, "dpdk.ports.[2].device").reason,
            "not an EAL device name: 'bad name'");
  EXPECT_EQ(errorFor(errors, "dpdk.ports.[3].device").reason, "required setting is missing");
  EXPECT_EQ(errors.size(), 6u) << dump(errors);
}

// Proves: one device may carry both realms (listed once for each, e.g. on two VLANs of one
// link); it used to be refused as "already used".
TEST(Dpdk, OneDeviceMayCarryBothRealms) {
  const Config config = parse(withMinimal(R"(media = { driver = "dpdk"; };
dpdk = { ports = ( { device = "net_ring0"; realm = "access"; }, { device = "net_ring0"; realm = "core"; } ); };
)"));
  ASSERT_EQ(config.dpdk.ports.size(), 2u);
  EXPECT_EQ(config.dpdk.ports[0].device, config.dpdk.ports[1].device);
  EXPECT_EQ(config.dpdk.ports[1].realm, "core");
}

// Proves: a realm is carried by one port. A second device for a realm used to be accepted
// while only the first transmitted and resolved neighbours; several links are bonded into
// one port (DPDK's net_bonding) instead.
TEST(Dpdk, ARealmHasOnePort) {
  const std::string text = withMinimal(R"(media = { driver = "dpdk"; };
dpdk = { ports = ( { device = "net_ring0"; realm = "access"; }, { device = "net_ring1"; realm = "core"; },
                   { device = "net_ring2"; realm = "access"; } ); };
)");
  const auto errors = errorsOf(text);
  ASSERT_EQ(errors.size(), 1u) << dump(errors);
  EXPECT_EQ(errorFor(errors, "dpdk.ports.[2].device").reason,
            "realm 'access' already has its port (dpdk.ports.[0]); bond several links into "
            "one port (net_bonding)");
}

// Every realm needs a DPDK port when the dpdk driver carries the media.
TEST(Dpdk, EachRealmNeedsAPort) {
  const std::string text = withMinimal(R"(media = { driver = "dpdk"; };
dpdk = { ports = ( { device = "net_ring0"; realm = "access"; } ); };
)");
  const auto errors = errorsOf(text);
  ASSERT_EQ(errors.size(), 1u) << dump(errors);
  EXPECT_EQ(errors[0].toString(),
            "test.cfg:7: dpdk.ports: no port serves realm 'core': each realm needs one");
}

// ---- all errors at once, and hostile text

// Problems in different places are all reported in one exception, sorted by line (those
// without a line first).
TEST(AllErrors, CollectedNotFirstOnly) {
  const std::string text = R"(log_level = "loud";
realms = {
  access = { sip = ( { address = "127.0.0.10"; port = 70000; } ); media = { address = "127.0.0.10"; port_min = 3; }; };
  core   = { sip = ( { address = "127.0.0.11"; } ); media = { address = "nowhere"; }; };
};
media = { dscp = 99; };
trunks = ( { name = "t"; source_prefixes = [ "10.0.0.1/8" ]; target = { host = "h"; }; max_call = 1; } );
lines = { max_calls = 1000; };
)";
  try {
    parseConfigText(text, "multi.cfg");
    FAIL() << "accepted";
  } catch (const ConfigException& e) {
    std::vector<std::string> got;
    for (const ConfigError& error : e.errors()) got.push_back(error.toString());
    const std::vector<std::string> expected = {
        "multi.cfg: core: required setting is missing",
        "multi.cfg:1: log_level: unknown value 'loud'; valid values: debug, info, warning, error",
        "multi.cfg:3: realms.access.sip.[0].port: out of range: 70000 (valid: 0..65535)",
        "multi.cfg:3: realms.access.media.port_min: out of range: 3 (valid: 1024..65535)",
        "multi.cfg:4: realms.core.media.address: not a literal IPv4 or IPv6 address: 'nowhere'",
        "multi.cfg:6: media.dscp: out of range: 99 (valid: 0..63)",
        "multi.cfg:7: trunks.[0].max_call: unknown setting 'max_call'; did you mean 'max_calls'?",
        "multi.cfg:7: trunks.[0].source_prefixes.[0]: not an address prefix (ADDRESS/LENGTH with "
        "no host bits set): '10.0.0.1/8'",
        "multi.cfg:8: lines.max_calls: out of range: 1000 (valid: 1..100)",
    };
    EXPECT_EQ(got, expected);
    EXPECT_EQ(std::string(e.what()).find(expected[0]), 0u);
  }
}

// Proves: sip.header_allow_list keeps valid names as written and refuses, each at its own
// element, a name with a non-token character, a compact form, a header the SBC writes
// itself, P-Asserted-Identity (trunks.trusted governs it) and a case-insensitive repeat.
TEST(HeaderAllowList, NamesAreValidated) {
  const Config ok = parse(withMinimal(
      "sip = { header_allow_list = [ \"X-Account-Code\", \"Subject\", \"Priority\" ]; };\n"));
  EXPECT_EQ(ok.headerAllowList,
            (std::vector<std::string>{"X-Account-Code", "Subject", "Priority"}));
  EXPECT_TRUE(parse(kMinimal).headerAllowList.empty());

  const auto errors = errorsOf(withMinimal(
      "sip = { header_allow_list = [ \"X Account\", \"s\", \"via\", \"P-Asserted-Identity\",\n"
      "  \"X-A\", \"x-a\", \"\" ]; };\n"));
  EXPECT_NE(errorFor(errors, "sip.header_allow_list.[0]").reason.find("not a header name"),
            std::string::npos);
  EXPECT_NE(errorFor(errors, "sip.header_allow_list.[1]").reason.find("compact"),
            std::string::npos);
  EXPECT_NE(errorFor(errors, "sip.header_allow_list.[2]").reason.find("written by the SBC"),
            std::string::npos);
  EXPECT_NE(errorFor(errors, "sip.header_allow_list.[3]").reason.find("trunks.trusted"),
            std::string::npos);
  EXPECT_NE(errorFor(errors, "sip.header_allow_list.[5]").reason.find("listed twice"),
            std::string::npos);
  EXPECT_NE(errorFor(errors, "sip.header_allow_list.[6]").reason.find("not a header name"),
            std::string::npos);
  EXPECT_EQ(errors.size(), 6u) << dump(errors);
}

// Proves: sip.body_types defaults to DTMF, plain text and ISUP (SIP-I), keeps valid types in lower case,
// may be empty, and refuses, each at its own element, a non-type, a type with parameters,
// the types sbcd rewrites itself, a multipart type and a case-insensitive repeat.
TEST(BodyTypes, TypesAreValidated) {
  EXPECT_EQ(parse(kMinimal).bodyTypes,
            (std::vector<std::string>{"application/dtmf-relay", "application/dtmf",
                                      "text/plain", "application/isup"}));
  const Config ok = parse(withMinimal(
      "sip = { body_types = [ \"Application/DTMF-Relay\", \"application/dialog-info+xml\" ]; };\n"));
  EXPECT_EQ(ok.bodyTypes,
            (std::vector<std::string>{"application/dtmf-relay", "application/dialog-info+xml"}));
  EXPECT_TRUE(parse(withMinimal("sip = { body_types = [ ]; };\n")).bodyTypes.empty());

  const auto errors = errorsOf(withMinimal(
      "sip = { body_types = [ \"text\", \"text/plain;charset=UTF-8\", \"application/sdp\",\n"
      "  \"message/sipfrag\", \"multipart/mixed\", \"text/plain\", \"TEXT/plain\" ]; };\n"));
  EXPECT_NE(errorFor(errors, "sip.body_types.[0]").reason.find("not a media type"),
            std::string::npos);
  EXPECT_NE(errorFor(errors, "sip.body_types.[1]").reason.find("not a media type"),
            std::string::npos);
  EXPECT_NE(errorFor(errors, "sip.body_types.[2]").reason.find("rewritten by the SBC"),
            std::string::npos);
  EXPECT_NE(errorFor(errors, "sip.body_types.[3]").reason.find("rewritten by the SBC"),
            std::string::npos);
  EXPECT_NE(errorFor(errors, "sip.body_types.[4]").reason.find("multipart"),
            std::string::npos);
  EXPECT_NE(errorFor(errors, "sip.body_types.[6]").reason.find("listed twice"),
            std::string::npos);
  EXPECT_EQ(errors.size(), 6u) << dump(errors);
}

// Hostile text ends in ConfigException, never a crash or another exception.
TEST(AllErrors, HostileTextIsRefusedCleanly) {
  const std::vector<std::string> inputs = {
      std::string(5000, '('),
      std::string(5000, '{'),
      "a = " + std::string(3000, '(') + std::string(3000, ')') + ";",
      "realms = 99999999999999999999999; core = 0x7fffffffffffffffffff;",
      "trunks = ( ( ( ) ) ); realms = [ ]; core = \"\\x00\\xff\";",
      "x = \"unterminated",
      "/* unterminated comment",
      "\xff\xfe\x00garbage",
      "@include \"/dev/zero\"\n",
      "trunks = ( { name = \"t\"; source_prefixes = [ \"::ffff:1.2.3.4/200\" ]; max_calls_per_second = nan; } );",
      "realms = { access = { media = { port_min = -9223372036854775808L; }; }; };",
  };
  for (const std::string& input : inputs) {
    EXPECT_THROW(parseConfigText(input, "hostile.cfg"), ConfigException) << input.substr(0, 60);
  }
}

// A refusal status that asks for credentials, one out of range and an unknown action are
// each refused with the setting named.
TEST(Refusals, BadValuesAreNamed) {
  const auto errors = errorsOf(withMinimal(
      "refusals = { unknown_source = \"ignore\"; over_limit_status = 407; };\n"));
  ASSERT_EQ(errors.size(), 2u) << dump(errors);
  EXPECT_EQ(errors[0].setting, "refusals.unknown_source");
  EXPECT_EQ(errors[1].setting, "refusals.over_limit_status");
  EXPECT_NE(errors[1].reason.find("credentials"), std::string::npos) << errors[1].reason;
  const auto range = errorsOf(withMinimal("refusals = { over_limit_status = 399; };\n"));
  ASSERT_EQ(range.size(), 1u) << dump(range);
  EXPECT_EQ(range[0].setting, "refusals.over_limit_status");
}

}  // namespace
}  // namespace sbc::config
