#pragma once
// Starting the real sbcd binary on a temporary configuration, for integration tests.

#include <sched.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "tests/support/test_env.h"

namespace sbc::test {

using namespace std::chrono_literals;

// A complete configuration on loopback with two trunks; `alphaLimit` is trunk alpha's
// concurrent-call ceiling, `extra` is appended verbatim.
inline std::string configText(const TempDir& dir, int alphaLimit, const std::string& extra = "") {
  return R"(
log_level = "debug";
realms = {
  access = { sip = ( { address = "127.0.0.1"; port = 0; transport = "udp"; } );
             media = { address = "127.0.0.1"; port_min = 20000; port_max = 20999; }; };
  core = { sip = ( { address = "127.0.0.1"; port = 0; transport = "udp"; } );
           media = { address = "127.0.0.1"; port_min = 21000; port_max = 21999; }; };
};
core = { next_hops = ( { host = "127.0.0.3"; port = 5060; transport = "udp"; } ); };
trunks = (
  { name = "alpha"; source_prefixes = [ "127.0.0.2/32" ];
    target = { host = "127.0.0.2"; port = 5060; transport = "udp"; };
    max_calls = )" + std::to_string(alphaLimit) + R"(; max_calls_per_second = 5.0; },
  { name = "beta"; source_prefixes = [ "127.0.1.0/24", "::1/128" ];
    target = { host = "127.0.1.1"; port = 5060; transport = "udp"; };
    max_calls = 3; max_calls_per_second = 1.0; }
);
metrics = { listen = "127.0.0.1:0"; };
control = { socket = ")" + dir.file("ctl/sbcd.sock") + R"("; };
drain = { timeout_s = 5; };
)" + extra;
}

// How long sbcd gets to exit after the first SIGTERM: with no calls up it stops at once.
inline constexpr auto kSbcdStopTime = 3s;
// After a second SIGTERM (calls still up: sbcd would wait for drain.timeout_s) it stops at
// once; under AddressSanitizer its leak check at exit takes a few seconds of this.
inline constexpr auto kSbcdStopNowTime = 20s;

// Whether sbcd's output holds a sanitizer report (ASan, LSan, UBSan).
inline bool hasSanitizerReport(const std::string& output) {
  return output.find("Sanitizer") != std::string::npos ||
         output.find("runtime error:") != std::string::npos;
}

// The part of sbcd's output worth showing when its exit fails a test: the sanitizer
// report if there is one, else the last lines.
inline std::string exitExcerpt(const std::string& output) {
  constexpr std::size_t kShown = 12000;
  auto from = output.find("==ERROR:");
  if (from == std::string::npos) from = output.find("runtime error:");
  if (from == std::string::npos) from = output.size() > kShown ? output.size() - kShown : 0;
  return output.substr(from, kShown);
}

// Starts sbcd and finds the metrics port it bound from its start-up line. When destroyed it
// stops sbcd with SIGTERM rather than SIGKILL, so that under AddressSanitizer LeakSanitizer
// checks the daemon at its normal exit; the current test fails unless sbcd exits 0 with no
// sanitizer report in its output.
class RunningDaemon {
 public:
  // `wrapper`: a command sbcd is started under (e.g. one that takes away a capability).
  explicit RunningDaemon(const std::string& configPath,
                         const std::vector<std::string>& wrapper = {})
      : process_(withWrapper(wrapper, {builtProgram("SBCD"), "-c", configPath})) {
    const auto bound = process_.waitForLine("bound metrics=", 10s);
    if (!bound) return;
    boundLine_ = *bound;
    std::smatch match;
    static const std::regex portPattern(R"(metrics=http://127\.0\.0\.1:(\d+)/metrics)");
    if (std::regex_search(*bound, match, portPattern)) metricsPort_ = std::stoi(match[1]);
  }
  RunningDaemon(const RunningDaemon&) = delete;
  RunningDaemon& operator=(const RunningDaemon&) = delete;
  ~RunningDaemon() { stopAndCheckExit(); }

  // Stops sbcd if it still runs (SIGTERM; a second SIGTERM if calls keep it draining) and
  // records a test failure if it did not stop in time, exited non-zero or reported a
  // sanitizer finding. Idempotent; a test that stopped sbcd itself may call it to check.
  void stopAndCheckExit() {
    if (checked_) return;
    checked_ = true;
    ChildProcess& sbcd = process_;
    auto status = sbcd.waitForExit(0ms);
    if (!status) {
      sbcd.signal(SIGTERM);
      status = sbcd.waitForExit(kSbcdStopTime);
    }
    if (!status) {
      sbcd.signal(SIGTERM);
      status = sbcd.waitForExit(kSbcdStopNowTime);
    }
    if (!status) {
      ADD_FAILURE() << "sbcd did not exit within " << (kSbcdStopTime + kSbcdStopNowTime).count()
                    << " s of SIGTERM (killed now)\n"
                    << exitExcerpt(sbcd.output());
      return;  // ChildProcess's destructor kills it by PID.
    }
    if (*status != 0 || hasSanitizerReport(sbcd.output())) {
      ADD_FAILURE() << "sbcd exited with status " << *status << "\n" << exitExcerpt(sbcd.output());
    }
  }

  ChildProcess& process() { return process_; }
  int metricsPort() const { return metricsPort_; }
  // sbcd's start-up line naming every bound address.
  const std::string& boundLine() const { return boundLine_; }
  std::string scrape() { return httpGet("127.0.0.1", metricsPort_, "/metrics").value_or(""); }

  // Polls /metrics until `series` has `value` (reload is asynchronous to the signal).
  bool waitForMetric(const std::string& series, double value) {
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    while (std::chrono::steady_clock::now() < deadline) {
      if (metricValue(scrape(), series) == value) return true;
      std::this_thread::sleep_for(50ms);
    }
    return false;
  }

 private:
  static std::vector<std::string> withWrapper(std::vector<std::string> wrapper,
                                              const std::vector<std::string>& command) {
    wrapper.insert(wrapper.end(), command.begin(), command.end());
    return wrapper;
  }

  ChildProcess process_;
  bool checked_ = false;
  int metricsPort_ = 0;
  std::string boundLine_;
};

// How the kernel schedules one thread of a process: /proc/PID/task/TID/comm, its policy
// (SCHED_OTHER, SCHED_FIFO, ...) and its real-time priority (0 unless real-time).
struct ThreadSchedule {
  std::string name;
  int policy = -1;
  int priority = -1;
};

inline std::vector<ThreadSchedule> threadSchedules(pid_t pid) {
  std::vector<ThreadSchedule> threads;
  const std::string tasks = "/proc/" + std::to_string(pid) + "/task";
  for (const auto& task : std::filesystem::directory_iterator(tasks)) {
    const pid_t tid = std::stoi(task.path().filename().string());
    ThreadSchedule thread;
    std::ifstream comm(task.path() / "comm");
    std::getline(comm, thread.name);
    thread.policy = ::sched_getscheduler(tid);
    sched_param param{};
    if (::sched_getparam(tid, &param) == 0) thread.priority = param.sched_priority;
    if (thread.policy >= 0) threads.push_back(thread);  // a thread that ended meanwhile: left out
  }
  return threads;
}

// The c= address and first m=audio port of the first 200 OK in a SIPp message trace
// (-trace_msg -message_file), polled until it appears (up to 2.5 s). `messages` gets the
// whole trace, for leak checks and failure messages.
struct AnsweredMedia {
  std::string address;
  int port = 0;
};
inline std::optional<AnsweredMedia> waitForAnsweredMedia(const std::string& traceFile,
                                                         std::string& messages) {
  static const std::regex mLine(R"(c=IN IP4 ([0-9.]+)\r?\n(?:.*\r?\n)*?m=audio (\d+))");
  for (int i = 0; i < 50; ++i) {
    std::ifstream in(traceFile);
    messages.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    const auto ok = messages.find("SIP/2.0 200 OK");
    std::smatch media;
    if (ok != std::string::npos) {
      const std::string answer = messages.substr(ok);
      if (std::regex_search(answer, media, mLine)) {
        return AnsweredMedia{media[1].str(), std::stoi(media[2].str())};
      }
    }
    std::this_thread::sleep_for(50ms);
  }
  return std::nullopt;
}

}  // namespace sbc::test
