// sbcd: the session border controller daemon.

#include <cstdio>
#include <cstring>
#include <exception>
#include <string>

#include "common/log.h"
#include "config/config.h"
#include "daemon/daemon.h"

namespace {

constexpr const char* kUsage =
    "usage: sbcd -c FILE            run with the configuration FILE\n"
    "       sbcd --check-config FILE validate FILE and exit 0 (valid) or 1\n"
    "       sbcd --version | --help\n";

int checkConfig(const std::string& path) {
  try {
    const auto config = sbc::config::loadConfigFile(path);
    std::printf("%s: valid (%zu trunks)\n", path.c_str(), config.trunks.size());
    return 0;
  } catch (const sbc::config::ConfigException& e) {
    for (const auto& problem : e.errors()) std::fprintf(stderr, "%s\n", problem.toString().c_str());
    return 1;
  }
}

int runDaemon(const std::string& path) {
  sbc::config::Config config;
  try {
    config = sbc::config::loadConfigFile(path);
  } catch (const sbc::config::ConfigException& e) {
    for (const auto& problem : e.errors()) {
      sbc::log::error("config", problem.toString());
    }
    sbc::log::error("sbcd", "not started: the configuration has errors");
    return 1;
  }
  try {
    sbc::daemon::Daemon daemon(path, std::move(config));
    return daemon.run();
  } catch (const std::exception& e) {
    sbc::log::error("sbcd", "not started: ", e.what());
    return 1;
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 2 && (std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0)) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  if (argc == 2 && std::strcmp(argv[1], "--version") == 0) {
    std::printf("sbcd %s\n", SBC_VERSION);
    return 0;
  }
  if (argc == 3 && std::strcmp(argv[1], "--check-config") == 0) return checkConfig(argv[2]);
  if (argc == 3 && std::strcmp(argv[1], "-c") == 0) return runDaemon(argv[2]);
  std::fputs(kUsage, stderr);
  return 2;
}
