#include "dataplane/dpdk/eal.h"

#include <pthread.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <sched.h>

#include <filesystem>
#include <mutex>

namespace sbc::dataplane::dpdk {
namespace {

std::mutex ealMutex;
bool ealTried = false;
bool ealOk = false;
std::string ealError;

std::string argValue(const std::vector<std::string>& args, const std::string& name) {
  for (std::size_t i = 0; i < args.size(); ++i) {
    if (args[i].rfind(name + "=", 0) == 0) return args[i].substr(name.size() + 1);
    if (args[i] == name && i + 1 < args.size()) return args[i + 1];
  }
  return {};
}

bool hasArg(const std::vector<std::string>& args, const std::string& name) {
  for (const std::string& arg : args)
    if (arg == name) return true;
  return false;
}

}  // namespace

bool ensureEal(const std::vector<std::string>& args, std::string* error) {
  std::lock_guard lock(ealMutex);
  if (!ealTried) {
    ealTried = true;
    cpu_set_t before;
    CPU_ZERO(&before);
    const bool haveAffinity =
        pthread_getaffinity_np(pthread_self(), sizeof(before), &before) == 0;
    std::vector<std::string> storage;
    storage.push_back("sbcd");
    storage.insert(storage.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (std::string& arg : storage) argv.push_back(arg.data());
    argv.push_back(nullptr);
    int rc = rte_eal_init(static_cast<int>(storage.size()), argv.data());
    if (haveAffinity) pthread_setaffinity_np(pthread_self(), sizeof(before), &before);
    ealOk = rc >= 0;
    if (!ealOk) ealError = std::string("rte_eal_init: ") + rte_strerror(rte_errno);
    // Without shared config (--no-shconf, or --in-memory which implies it) nothing else can
    // attach to this process's runtime folder: it is removed now rather than left behind.
    if (ealOk && (hasArg(args, "--no-shconf") || hasArg(args, "--in-memory"))) {
      std::string prefix = argValue(args, "--file-prefix");
      if (prefix.empty()) prefix = "rte";
      std::error_code ignored;
      std::filesystem::remove_all("/var/run/dpdk/" + prefix, ignored);
      std::filesystem::remove_all("/tmp/dpdk/" + prefix, ignored);
    }
  }
  if (!ealOk && error != nullptr) *error = ealError;
  return ealOk;
}

}  // namespace sbc::dataplane::dpdk
