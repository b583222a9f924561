#pragma once
// sbcd's control loop: a Boost.Asio io_context on the main thread for SIGHUP (reload),
// SIGTERM/SIGINT (drain) and the control socket.

#include <chrono>
#include <memory>
#include <string>

#include "config/config.h"
#include "dataplane/media_relay.h"
#include "daemon/asio.h"
#include "daemon/control_server.h"
#include "daemon/heap_trimmer.h"
#include "metrics/metrics.h"
#include "policy/policy.h"
#include "signaling/signaling_plane.h"

namespace sbc::daemon {

class Daemon {
 public:
  // Binds every listener (throws std::runtime_error naming what failed).
  Daemon(std::string configPath, config::Config config);
  ~Daemon();

  // Runs until drained after SIGTERM/SIGINT; returns the process exit code.
  int run();

 private:
  void waitForSignal();
  // Re-reads the file; a broken one leaves the running configuration untouched.
  ControlReply reload(const char* trigger);
  void beginDrain(const char* trigger);
  void pollDrain();
  void publishRules(const config::Config& config);
  std::vector<ControlCommand> controlCommands();

  boost::asio::io_context io_;
  boost::asio::signal_set signals_;
  boost::asio::steady_timer drainTimer_;
  HeapTrimmer heapTrimmer_;
  std::string configPath_;
  config::Config config_;
  std::shared_ptr<policy::Policy> policy_;
  metrics::Metrics metrics_;
  std::shared_ptr<dataplane::MediaRelay> relay_;
  std::unique_ptr<signaling::SignalingPlane> signaling_;
  std::unique_ptr<ControlServer> control_;
  std::chrono::steady_clock::time_point startedAt_;
  std::chrono::steady_clock::time_point drainDeadline_;
  bool draining_ = false;
  bool endingCalls_ = false;
};

// Raises RLIMIT_NOFILE's soft limit to the hard limit; returns the new soft limit.
unsigned long raiseOpenFileLimit();

}  // namespace sbc::daemon
