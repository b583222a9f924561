#pragma once
// Helpers shared by tests: temp folders, child processes, HTTP scrapes, CI rules.

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace sbc::test {

// Under CI=true a test that cannot run fails; elsewhere it is skipped. Use as
// `if (!requirement(ok, "why")) return;` inside a TEST body.
bool runningInCi();

// For a test binary's main(), before any thread: moves the process into a network namespace
// of its own with loopback up, so its packets, addresses and BPF programs meet no other
// test's and vanish with the process, also after a crash. Needs root and iproute2's `ip`.
// Returns 0 when done; otherwise prints why and returns what main() should exit with: 1
// under CI=true (a test that cannot run fails), 77 elsewhere (meson: skipped).
int enterOwnNetworkNamespace();

// A folder unique to this process, removed with everything in it when destroyed, or when
// the process is killed by a signal (abort, crash, SIGTERM) while it exists.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }
  std::string write(const std::string& name, const std::string& content) const;

 private:
  std::string path_;
  int liveSlot_ = -1;
};

// A child process whose stdout and stderr are read line by line. The destructor kills
// it (by its PID, SIGKILL) if it still runs, and reaps it; so does a fatal signal to the
// test process.
class ChildProcess {
 public:
  explicit ChildProcess(const std::vector<std::string>& argv);
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }
  // Waits for an output line containing `needle`; returns it, or nullopt at the deadline
  // or when the process closes its output.
  std::optional<std::string> waitForLine(const std::string& needle,
                                         std::chrono::milliseconds timeout);
  void signal(int signo) const;
  // Exit status (or 128 + signal), or nullopt if still running at the deadline.
  std::optional<int> waitForExit(std::chrono::milliseconds timeout);
  const std::string& output() const { return output_; }

 private:
  bool readSome(std::chrono::milliseconds timeout);

  pid_t pid_ = -1;
  int outputFd_ = -1;
  std::string output_;
  std::size_t scanned_ = 0;
  std::optional<int> exitStatus_;
  int liveSlot_ = -1;
};

// Runs a command to completion (bounded), returning exit status and combined output.
struct CommandResult {
  int status = -1;
  std::string output;
};
CommandResult runCommand(const std::vector<std::string>& argv,
                         std::chrono::milliseconds timeout = std::chrono::seconds(30));

// GET http://host:port/path; nullopt when unreachable. Body only.
std::optional<std::string> httpGet(const std::string& host, int port, const std::string& path);

// The value of one sample in a Prometheus text exposition, e.g.
// metricValue(text, "sbc_trunk_call_limit{trunk=\"alpha\"}").
std::optional<double> metricValue(const std::string& exposition, const std::string& series);

// The path of a program built by meson, from the environment variable meson sets.
std::string builtProgram(const char* variable);

}  // namespace sbc::test
