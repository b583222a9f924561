#include "tests/support/test_env.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <arpa/inet.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <stdexcept>
#include <thread>

extern char** environ;

namespace sbc::test {

bool runningInCi() {
  const char* ci = std::getenv("CI");
  return ci != nullptr && std::string(ci) == "true";
}

int enterOwnNetworkNamespace() {
  std::string missing;
  if (::geteuid() != 0) {
    missing = "needs root (a network namespace of its own)";
  } else if (!std::filesystem::exists("/usr/sbin/ip") && !std::filesystem::exists("/usr/bin/ip")) {
    missing = "iproute2's ip is not installed (tools/install-deps installs it)";
  } else if (::unshare(CLONE_NEWNET) != 0) {
    missing = "cannot make a network namespace";
  } else if (std::system("ip link set lo up") != 0) {
    missing = "cannot bring loopback up in the new namespace";
  }
  if (missing.empty()) return 0;
  if (runningInCi()) {
    std::cerr << "FAILED (CI=true): " << missing << "\n";
    return 1;
  }
  std::cerr << "skipped: " << missing << "\n";
  return 77;
}

namespace {

// Temp folders still alive, so a test process killed by a signal (a sanitizer's abort, a
// crash, a timeout's SIGTERM) removes them too: destructors do not run then. Fixed arrays,
// because the handler may only use async-signal-safe calls (fork, execve, waitpid).
constexpr int kMaxLiveDirs = 32;
constexpr std::size_t kMaxPath = 256;
char liveDirs[kMaxLiveDirs][kMaxPath];
std::atomic<bool> liveDirUsed[kMaxLiveDirs];
pid_t liveDirsOwner = 0;  // a forked child (gtest death tests) must not remove them
sighandler_t previousHandlers[NSIG] = {};

// Children still running (sbcd, SIPp, Prometheus), killed by the same handler.
constexpr int kMaxLiveChildren = 64;
std::atomic<pid_t> liveChildren[kMaxLiveChildren];

void removeLiveDirsAndDie(int signo) {
  if (::getpid() == liveDirsOwner) {
    for (auto& child : liveChildren) {
      const pid_t pid = child.load();
      if (pid > 0) ::kill(pid, SIGKILL);
    }
    for (int i = 0; i < kMaxLiveDirs; ++i) {
      if (!liveDirUsed[i].load()) continue;
      const pid_t child = ::fork();
      if (child == 0) {
        char rm[] = "/bin/rm";
        char flags[] = "-rf";
        char* const argv[] = {rm, flags, liveDirs[i], nullptr};
        ::execve(rm, argv, environ);
        ::_exit(127);
      }
      if (child > 0) ::waitpid(child, nullptr, 0);
    }
  }
  // Whatever handled the signal before runs next (by default: the process dies of it).
  ::signal(signo, previousHandlers[signo] == SIG_ERR ? SIG_DFL : previousHandlers[signo]);
  ::raise(signo);
}

void installCleanupHandler() {
  static const bool installed = [] {
    liveDirsOwner = ::getpid();
    for (int signo : {SIGABRT, SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTERM, SIGINT, SIGHUP}) {
      previousHandlers[signo] = ::signal(signo, removeLiveDirsAndDie);
    }
    return true;
  }();
  (void)installed;
}

int registerLiveDir(const std::string& path) {
  installCleanupHandler();
  if (path.size() >= kMaxPath) return -1;
  for (int i = 0; i < kMaxLiveDirs; ++i) {
    if (liveDirUsed[i].load()) continue;
    std::memcpy(liveDirs[i], path.c_str(), path.size() + 1);
    liveDirUsed[i].store(true);
    return i;
  }
  return -1;
}

int registerLiveChild(pid_t pid) {
  installCleanupHandler();
  for (int i = 0; i < kMaxLiveChildren; ++i) {
    pid_t empty = 0;
    if (liveChildren[i].compare_exchange_strong(empty, pid)) return i;
  }
  return -1;
}

}  // namespace

TempDir::TempDir() {
  std::string pattern = (std::filesystem::temp_directory_path() /
                         ("sbc-test-" + std::to_string(::getpid()) + "-XXXXXX"))
                            .string();
  if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  path_ = pattern;
  liveSlot_ = registerLiveDir(path_);
}

TempDir::~TempDir() {
  if (liveSlot_ >= 0) liveDirUsed[liveSlot_].store(false);
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

std::string TempDir::write(const std::string& name, const std::string& content) const {
  const std::string target = file(name);
  const std::string partial = target + ".partial";
  {
    std::ofstream out(partial, std::ios::binary | std::ios::trunc);
    out << content;
  }
  // Rename so a daemon reading on SIGHUP never sees a half-written file.
  std::filesystem::rename(partial, target);
  return target;
}

ChildProcess::ChildProcess(const std::vector<std::string>& argv) {
  int pipeFds[2];
  if (::pipe2(pipeFds, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, pipeFds[1], STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, pipeFds[1], STDERR_FILENO);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  std::vector<char*> args;
  for (const auto& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  const int error = ::posix_spawn(&pid_, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(pipeFds[1]);
  if (error != 0) {
    ::close(pipeFds[0]);
    throw std::runtime_error("cannot start " + argv[0] + ": " + std::strerror(error));
  }
  outputFd_ = pipeFds[0];
  liveSlot_ = registerLiveChild(pid_);
}

ChildProcess::~ChildProcess() {
  if (!exitStatus_ && pid_ > 0) {
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
  }
  if (liveSlot_ >= 0) liveChildren[liveSlot_].store(0);
  if (outputFd_ >= 0) ::close(outputFd_);
}

bool ChildProcess::readSome(std::chrono::milliseconds timeout) {
  if (outputFd_ < 0) return false;
  pollfd entry{outputFd_, POLLIN, 0};
  if (::poll(&entry, 1, static_cast<int>(timeout.count())) <= 0) return true;
  char buffer[4096];
  const ssize_t got = ::read(outputFd_, buffer, sizeof buffer);
  if (got <= 0) {
    ::close(outputFd_);
    outputFd_ = -1;
    return false;
  }
  output_.append(buffer, static_cast<std::size_t>(got));
  return true;
}

std::optional<std::string> ChildProcess::waitForLine(const std::string& needle,
                                                     std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    for (std::size_t end; (end = output_.find('\n', scanned_)) != std::string::npos;) {
      std::string line = output_.substr(scanned_, end - scanned_);
      scanned_ = end + 1;
      if (line.find(needle) != std::string::npos) return line;
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return std::nullopt;
    if (!readSome(std::min(left, std::chrono::milliseconds(100)))) {
      if (output_.find('\n', scanned_) == std::string::npos) return std::nullopt;
    }
  }
}

void ChildProcess::signal(int signo) const {
  if (!exitStatus_ && pid_ > 0) ::kill(pid_, signo);
}

std::optional<int> ChildProcess::waitForExit(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!exitStatus_) {
    int status = 0;
    const pid_t done = ::waitpid(pid_, &status, WNOHANG);
    if (done == pid_) {
      exitStatus_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      // Reaped: its PID may be reused, so the signal handler must no longer kill it.
      if (liveSlot_ >= 0) liveChildren[liveSlot_].store(0);
      liveSlot_ = -1;
      break;
    }
    if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
    // Keep draining output so the child never blocks on a full pipe.
    readSome(std::chrono::milliseconds(20));
  }
  while (readSome(std::chrono::milliseconds(0)) && outputFd_ >= 0) {
  }
  return exitStatus_;
}

CommandResult runCommand(const std::vector<std::string>& argv,
                         std::chrono::milliseconds timeout) {
  ChildProcess child(argv);
  CommandResult result;
  const auto status = child.waitForExit(timeout);
  result.status = status.value_or(-1);
  result.output = child.output();
  return result;
}

std::optional<std::string> httpGet(const std::string& host, int port, const std::string& path) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return std::nullopt;
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<std::uint16_t>(port));
  ::inet_pton(AF_INET, host.c_str(), &address.sin_addr);
  timeval timeout{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    ::close(fd);
    return std::nullopt;
  }
  const std::string request =
      "GET " + path + " HTTP/1.1\r\nHost: " + host + "\r\nConnection: close\r\n\r\n";
  if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) !=
      static_cast<ssize_t>(request.size())) {
    ::close(fd);
    return std::nullopt;
  }
  std::string response;
  char buffer[8192];
  for (ssize_t got; (got = ::recv(fd, buffer, sizeof buffer, 0)) > 0;) {
    response.append(buffer, static_cast<std::size_t>(got));
  }
  ::close(fd);
  const auto bodyStart = response.find("\r\n\r\n");
  if (response.rfind("HTTP/1.1 200", 0) != 0 || bodyStart == std::string::npos) {
    return std::nullopt;
  }
  std::string body = response.substr(bodyStart + 4);
  if (response.find("Transfer-Encoding: chunked") != std::string::npos) {
    // De-chunk: size line, data, CRLF, until a zero-size chunk.
    std::string plain;
    std::size_t at = 0;
    while (at < body.size()) {
      const auto lineEnd = body.find("\r\n", at);
      if (lineEnd == std::string::npos) break;
      const auto size = std::stoul(body.substr(at, lineEnd - at), nullptr, 16);
      if (size == 0) break;
      plain += body.substr(lineEnd + 2, size);
      at = lineEnd + 2 + size + 2;
    }
    body = plain;
  }
  return body;
}

std::optional<double> metricValue(const std::string& exposition, const std::string& series) {
  std::istringstream lines(exposition);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind(series + " ", 0) == 0) return std::stod(line.substr(series.size() + 1));
  }
  return std::nullopt;
}

std::string builtProgram(const char* variable) {
  const char* path = std::getenv(variable);
  if (path == nullptr) throw std::runtime_error(std::string("environment lacks ") + variable);
  return path;
}

}  // namespace sbc::test
