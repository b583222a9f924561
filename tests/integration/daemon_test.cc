// The real sbcd binary: start-up, /metrics over HTTP, reload by SIGHUP and by the control
// socket, a broken reload keeping the old config, drain on SIGTERM, --check-config.

#include <signal.h>

#include <chrono>
#include <filesystem>
#include <regex>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "tests/integration/sbcd_process.h"
#include "tests/support/test_env.h"

namespace sbc::test {
namespace {

using namespace std::chrono_literals;

// Proves: the exposition serves every foundation family with the configured values.
TEST(Daemon, ServesMetricsFromTheConfiguration) {
  TempDir dir;
  RunningDaemon daemon(dir.write("sbc.cfg", configText(dir, 10)));
  ASSERT_GT(daemon.metricsPort(), 0) << daemon.process().output();
  const std::string text = daemon.scrape();
  EXPECT_EQ(metricValue(text, "sbc_trunk_call_limit{trunk=\"alpha\"}"), 10.0) << text;
  EXPECT_EQ(metricValue(text, "sbc_trunk_call_limit{trunk=\"beta\"}"), 3.0);
  EXPECT_EQ(metricValue(text, "sbc_trunk_active_calls{trunk=\"alpha\"}"), 0.0);
  EXPECT_EQ(metricValue(text, "sbc_admission_total{result=\"over_rate\",trunk=\"beta\"}"), 0.0)
      << text;
  EXPECT_EQ(metricValue(text, "sbc_config_reloads_total{result=\"failure\"}"), 0.0);
  EXPECT_EQ(metricValue(text, "sbc_unknown_source_total{realm=\"access\"}"), 0.0);
  EXPECT_EQ(metricValue(text, "sbc_build_info{version=\"0.1.0\"}"), 1.0);
}

// Proves: SIGHUP applies a changed limit; a broken file is refused, counted, logged with
// its line, and the running limit stays.
TEST(Daemon, ReloadAppliesChangesAndKeepsOldConfigOnError) {
  TempDir dir;
  const std::string path = dir.write("sbc.cfg", configText(dir, 10));
  RunningDaemon daemon(path);
  ASSERT_GT(daemon.metricsPort(), 0) << daemon.process().output();
  const std::string alphaLimit = "sbc_trunk_call_limit{trunk=\"alpha\"}";
  ASSERT_TRUE(daemon.waitForMetric(alphaLimit, 10));

  dir.write("sbc.cfg", configText(dir, 25));
  daemon.process().signal(SIGHUP);
  EXPECT_TRUE(daemon.waitForMetric(alphaLimit, 25)) << daemon.scrape();
  EXPECT_TRUE(daemon.waitForMetric("sbc_config_reloads_total{result=\"success\"}", 1));

  // Line 7 of the file: max_calls has a string where a number belongs.
  std::string broken = configText(dir, 40);
  broken.replace(broken.find("max_calls = 40"), 14, "max_calls = \"forty\"");
  dir.write("sbc.cfg", broken);
  daemon.process().signal(SIGHUP);
  EXPECT_TRUE(daemon.waitForMetric("sbc_config_reloads_total{result=\"failure\"}", 1));
  EXPECT_EQ(metricValue(daemon.scrape(), alphaLimit), 25.0);
  const auto logged = daemon.process().waitForLine("reload (SIGHUP) rejected", 5s);
  ASSERT_TRUE(logged.has_value()) << daemon.process().output();
  EXPECT_NE(logged->find("sbc.cfg:"), std::string::npos) << *logged;
  EXPECT_NE(logged->find("max_calls"), std::string::npos) << *logged;

  // A removed trunk disappears from the limits; the daemon still stops cleanly.
  std::string oneTrunk = configText(dir, 7);
  const auto betaStart = oneTrunk.find(",\n  { name = \"beta\"");
  oneTrunk.erase(betaStart, oneTrunk.find("\n);", betaStart) - betaStart);
  dir.write("sbc.cfg", oneTrunk);
  daemon.process().signal(SIGHUP);
  EXPECT_TRUE(daemon.waitForMetric(alphaLimit, 7));
  EXPECT_FALSE(metricValue(daemon.scrape(), "sbc_trunk_call_limit{trunk=\"beta\"}").has_value());

  daemon.process().signal(SIGTERM);
  EXPECT_EQ(daemon.process().waitForExit(10s), 0);
}

// Proves: the control socket answers sbcctl (status, trunks, reload, unknown command) and
// is removed when sbcd stops.
TEST(Daemon, ControlSocketServesSbcctl) {
  TempDir dir;
  const std::string path = dir.write("sbc.cfg", configText(dir, 10));
  RunningDaemon daemon(path);
  ASSERT_GT(daemon.metricsPort(), 0) << daemon.process().output();
  const std::string socket = dir.file("ctl/sbcd.sock");
  const std::string sbcctl = builtProgram("SBCCTL");

  const auto status = runCommand({sbcctl, "-s", socket, "status"});
  EXPECT_EQ(status.status, 0) << status.output;
  EXPECT_NE(status.output.find("draining no"), std::string::npos) << status.output;

  const auto trunks = runCommand({sbcctl, "-s", socket, "trunks"});
  EXPECT_NE(trunks.output.find("alpha 0/10"), std::string::npos) << trunks.output;

  dir.write("sbc.cfg", configText(dir, 12));
  const auto reload = runCommand({sbcctl, "-s", socket, "reload"});
  EXPECT_EQ(reload.status, 0) << reload.output;
  EXPECT_EQ(metricValue(daemon.scrape(), "sbc_trunk_call_limit{trunk=\"alpha\"}"), 12.0);

  const auto unknown = runCommand({sbcctl, "-s", socket, "frobnicate"});
  EXPECT_EQ(unknown.status, 1);
  EXPECT_NE(unknown.output.find("unknown command 'frobnicate'"), std::string::npos);

  daemon.process().signal(SIGINT);
  EXPECT_EQ(daemon.process().waitForExit(10s), 0);
  EXPECT_FALSE(std::filesystem::exists(socket));
}

// Proves: a reload that changes a restart-only setting applies the rest and names the
// setting in a warning.
TEST(Daemon, ReloadWarnsAboutRestartOnlySettings) {
  TempDir dir;
  const std::string path = dir.write("sbc.cfg", configText(dir, 10));
  RunningDaemon daemon(path);
  ASSERT_GT(daemon.metricsPort(), 0) << daemon.process().output();
  std::string changed = configText(dir, 11);
  changed.replace(changed.find("port_min = 20000"), 16, "port_min = 20100");
  dir.write("sbc.cfg", changed);
  daemon.process().signal(SIGHUP);
  const auto warning = daemon.process().waitForLine("takes effect after a restart", 5s);
  ASSERT_TRUE(warning.has_value()) << daemon.process().output();
  EXPECT_NE(warning->find("realms.access.media"), std::string::npos) << *warning;
  EXPECT_TRUE(daemon.waitForMetric("sbc_trunk_call_limit{trunk=\"alpha\"}", 11));
}

// Proves: --check-config exits 0 on a valid file and 1 naming file and line otherwise.
TEST(Daemon, CheckConfigValidates) {
  TempDir dir;
  const auto good = runCommand({builtProgram("SBCD"), "--check-config",
                                dir.write("good.cfg", configText(dir, 10))});
  EXPECT_EQ(good.status, 0) << good.output;
  const auto bad = runCommand({builtProgram("SBCD"), "--check-config",
                               dir.write("bad.cfg", configText(dir, 10, "bogus_setting = 1;\n"))});
  EXPECT_EQ(bad.status, 1) << bad.output;
  EXPECT_NE(bad.output.find("bad.cfg:"), std::string::npos) << bad.output;
  EXPECT_NE(bad.output.find("bogus_setting"), std::string::npos) << bad.output;
}

// Proves: a daemon that cannot bind its metrics address refuses to start and says why.
TEST(Daemon, RefusesToStartWhenMetricsPortIsTaken) {
  TempDir dir;
  RunningDaemon first(dir.write("first.cfg", configText(dir, 10)));
  ASSERT_GT(first.metricsPort(), 0) << first.process().output();
  std::string second = configText(dir, 10);
  second.replace(second.find("127.0.0.1:0"), 11, "127.0.0.1:" + std::to_string(first.metricsPort()));
  second.replace(second.find("ctl/sbcd.sock"), 13, "ctl/second.sock");
  ChildProcess process({builtProgram("SBCD"), "-c", dir.write("second.cfg", second)});
  EXPECT_EQ(process.waitForExit(10s), 1);
  EXPECT_NE(process.output().find("cannot serve metrics"), std::string::npos) << process.output();
}

}  // namespace
}  // namespace sbc::test
