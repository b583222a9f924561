// A real Prometheus server (Debian's) scrapes the real sbcd: the exposition parses, the
// target is up, and a reloaded limit reaches Prometheus.

#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <regex>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "tests/integration/sbcd_process.h"
#include "tests/support/test_env.h"

namespace sbc::test {
namespace {

// A loopback TCP port free at the time of asking (Prometheus cannot report a port 0 bind).
int freeLoopbackPort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  ::close(fd);
  return ntohs(address.sin_port);
}

std::string urlEncode(const std::string& text) {
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '_' || c == '.' || c == '-') {
      out += static_cast<char>(c);
    } else {
      char hex[4];
      std::snprintf(hex, sizeof hex, "%%%02X", c);
      out += hex;
    }
  }
  return out;
}

// The single value an instant query returns, as Prometheus's JSON gives it ("10"), or "".
std::string queryValue(int port, const std::string& promql) {
  const auto body = httpGet("127.0.0.1", port, "/api/v1/query?query=" + urlEncode(promql));
  if (!body) return "";
  static const std::regex value(R"re("value":\[[0-9.]+,"([^"]*)"\])re");
  std::smatch match;
  return std::regex_search(*body, match, value) ? std::string(match[1]) : "";
}

bool waitForQuery(int port, const std::string& promql, const std::string& expected) {
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (std::chrono::steady_clock::now() < deadline) {
    if (queryValue(port, promql) == expected) return true;
    std::this_thread::sleep_for(250ms);
  }
  return false;
}

// Proves: Prometheus scrapes sbcd successfully and sees the configured and reloaded limits.
TEST(PrometheusScrape, SeesLimitsBeforeAndAfterReload) {
  const std::string prometheus = "/usr/bin/prometheus";
  if (!std::filesystem::exists(prometheus)) {
    if (runningInCi()) FAIL() << "prometheus is not installed (tools/install-deps installs it)";
    GTEST_SKIP() << "prometheus is not installed";
  }
  TempDir dir;
  const std::string path = dir.write("sbc.cfg", configText(dir, 10));
  RunningDaemon daemon(path);
  ASSERT_GT(daemon.metricsPort(), 0) << daemon.process().output();

  const int webPort = freeLoopbackPort();
  const std::string promConfig = dir.write(
      "prometheus.yml", "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
                        "scrape_configs:\n  - job_name: sbcd\n    static_configs:\n"
                        "      - targets: ['127.0.0.1:" +
                            std::to_string(daemon.metricsPort()) + "']\n");
  ChildProcess server({prometheus, "--config.file=" + promConfig,
                       "--storage.tsdb.path=" + dir.file("tsdb"),
                       "--web.listen-address=127.0.0.1:" + std::to_string(webPort),
                       "--log.level=warn"});

  EXPECT_TRUE(waitForQuery(webPort, "up{job=\"sbcd\"}", "1")) << server.output();
  EXPECT_TRUE(waitForQuery(webPort, "sbc_trunk_call_limit{trunk=\"alpha\"}", "10"));
  EXPECT_TRUE(waitForQuery(webPort, "sbc_build_info", "1"));

  dir.write("sbc.cfg", configText(dir, 30));
  daemon.process().signal(SIGHUP);
  EXPECT_TRUE(waitForQuery(webPort, "sbc_trunk_call_limit{trunk=\"alpha\"}", "30"));
  EXPECT_TRUE(waitForQuery(webPort, "sbc_config_reloads_total{result=\"success\"}", "1"));

  server.signal(SIGTERM);
  EXPECT_TRUE(server.waitForExit(20s).has_value());
}

}  // namespace
}  // namespace sbc::test
