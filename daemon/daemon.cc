#include "daemon/daemon.h"

#include <sys/resource.h>

#include <csignal>
#include <sstream>

#include "common/log.h"
#include "daemon/media_setup.h"
#include "metrics/media_collector.h"
#include "metrics/policy_collector.h"

namespace sbc::daemon {
namespace {

constexpr auto kDrainPollInterval = std::chrono::milliseconds(100);
// After the drain time, calls are ended with BYE; this long is given for that to finish.
constexpr auto kByeGrace = std::chrono::seconds(2);
// Often enough that a load peak's heap is back with the kernel within seconds of its end;
// a trim costs a walk of the free chunks (measured in docs/performance.md).
constexpr auto kHeapTrimInterval = std::chrono::seconds(10);

log::Level toLogLevel(config::LogLevel level) {
  switch (level) {
    case config::LogLevel::debug: return log::Level::debug;
    case config::LogLevel::info: return log::Level::info;
    case config::LogLevel::warning: return log::Level::warning;
    case config::LogLevel::error: return log::Level::error;
  }
  return log::Level::info;
}

// Settings that a reload cannot change on a running daemon: named in a warning so the
// operator knows a restart is needed.
std::vector<std::string> restartOnlyChanges(const config::Config& running,
                                            const config::Config& loaded) {
  std::vector<std::string> changed;
  const auto note = [&](bool differs, const char* setting) {
    if (differs) changed.emplace_back(setting);
  };
  note(running.access.sip != loaded.access.sip, "realms.access.sip");
  note(running.core.sip != loaded.core.sip, "realms.core.sip");
  note(running.access.media != loaded.access.media, "realms.access.media");
  note(running.core.media != loaded.core.media, "realms.core.media");
  note(running.coreNextHops != loaded.coreNextHops, "core.next_hops");
  note(running.coreFailoverTimeoutMs != loaded.coreFailoverTimeoutMs, "core.failover_timeout_ms");
  note(running.refusals != loaded.refusals, "refusals");
  note(running.media != loaded.media, "media");
  note(running.dpdk.ealArgs != loaded.dpdk.ealArgs, "dpdk.eal_args");
  note(running.dpdk.ports != loaded.dpdk.ports, "dpdk.ports");
  note(running.sipTimers != loaded.sipTimers, "sip");
  note(running.headerAllowList != loaded.headerAllowList, "sip.header_allow_list");
  note(running.bodyTypes != loaded.bodyTypes, "sip.body_types");
  note(running.metricsListen != loaded.metricsListen, "metrics.listen");
  note(running.controlSocket != loaded.controlSocket, "control.socket");
  return changed;
}

}  // namespace

unsigned long raiseOpenFileLimit() {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) return 0;
  if (limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &limit);
    ::getrlimit(RLIMIT_NOFILE, &limit);
  }
  return static_cast<unsigned long>(limit.rlim_cur);
}

Daemon::Daemon(std::string configPath, config::Config config)
    : signals_(io_, SIGHUP, SIGTERM, SIGINT),
      drainTimer_(io_),
      heapTrimmer_(io_, kHeapTrimInterval),
      configPath_(std::move(configPath)),
      config_(std::move(config)),
      policy_(std::make_shared<policy::Policy>(config::toPolicyRules(config_))),
      startedAt_(std::chrono::steady_clock::now()) {
  log::setLevel(toLogLevel(config_.logLevel));
  metrics_.gauge(metrics::FamilyId::buildInfo).Add({{"version", SBC_VERSION}}).Set(1);
  for (const char* result : {"success", "failure"}) {
    metrics_.counter(metrics::FamilyId::configReloadsTotal).Add({{"result", result}});
  }
  for (const char* realm : {"access", "core"}) {
    metrics_.counter(metrics::FamilyId::unknownSourceTotal).Add({{"realm", realm}});
  }
  metrics::exposeTrunkSeries(metrics_, *policy_->current());
  metrics_.addCollector(std::make_shared<metrics::PolicyCollector>(policy_));
  relay_ = makeMediaRelay(config_);
  metrics_.addCollector(std::make_shared<metrics::MediaCollector>(relay_));

  for (const char* realm : {"access", "core"}) {
    metrics_.counter(metrics::FamilyId::sipUnansweredTotal)
        .Add({{"realm", realm}, {"reason", "unknown_source"}});
    for (const char* reason : {"not_sip", "bad_request", "bad_user"}) {
      metrics_.counter(metrics::FamilyId::sipMalformedTotal)
          .Add({{"realm", realm}, {"reason", reason}});
    }
  }
  const std::string metricsBound = metrics_.serve(config_.metricsListen);
  control_ = std::make_unique<ControlServer>(io_, config_.controlSocket, controlCommands());
  signaling_ = std::make_unique<signaling::SignalingPlane>(config_, policy_, metrics_, relay_);
  std::string sipBound;
  for (const auto& address : signaling_->boundAddresses()) sipBound += " sip." + address;

  const unsigned long openFiles = raiseOpenFileLimit();
  // One line with every address actually bound, so tests and operators can find ports
  // chosen by the kernel (port 0).
  log::info("sbcd", "bound metrics=http://", metricsBound, "/metrics control=unix:",
            control_->path(), sipBound, " ", describeMedia(config_));
  log::info("sbcd", "sbcd ", SBC_VERSION, " running: config=", configPath_,
            " trunks=", config_.trunks.size(), " media_driver=",
            config::toString(config_.media.driver), " open_files_limit=", openFiles);
}

Daemon::~Daemon() = default;

int Daemon::run() {
  waitForSignal();
  heapTrimmer_.start();
  io_.run();
  signaling_.reset();
  log::info("sbcd", "stopped");
  return 0;
}

void Daemon::waitForSignal() {
  signals_.async_wait([this](const boost::system::error_code& error, int signal) {
    if (error) return;
    if (signal == SIGHUP) {
      reload("SIGHUP");
    } else if (draining_) {
      log::warning("sbcd", "second stop signal: stopping now with ",
                   policy_->activeTrunkCalls() + policy_->activeLineCalls(), " calls active");
      io_.stop();
      return;
    } else {
      beginDrain(signal == SIGTERM ? "SIGTERM" : "SIGINT");
    }
    waitForSignal();
  });
}

void Daemon::publishRules(const config::Config& config) {
  policy_->publish(config::toPolicyRules(config));
  metrics::exposeTrunkSeries(metrics_, *policy_->current());
}

ControlReply Daemon::reload(const char* trigger) {
  auto& reloads = metrics_.counter(metrics::FamilyId::configReloadsTotal);
  try {
    config::Config loaded = config::loadConfigFile(configPath_);
    for (const auto& setting : restartOnlyChanges(config_, loaded)) {
      log::warning("config", "reload: ", setting, " changed; it takes effect after a restart");
    }
    publishRules(loaded);
    signaling_->updateTrunks(loaded.trunks);
    signaling_->updateLines(loaded.lines);
    log::setLevel(toLogLevel(loaded.logLevel));
    // Restart-only settings keep describing what is running.
    config_.trunks = loaded.trunks;
    config_.lines = loaded.lines;
    config_.logLevel = loaded.logLevel;
    config_.drainTimeoutS = loaded.drainTimeoutS;
    reloads.Add({{"result", "success"}}).Increment();
    log::info("config", "reload (", trigger, ") applied: ", configPath_, " trunks=",
              loaded.trunks.size());
    return {true, "reloaded " + configPath_ + "\n"};
  } catch (const config::ConfigException& e) {
    reloads.Add({{"result", "failure"}}).Increment();
    std::string text;
    for (const auto& problem : e.errors()) {
      log::error("config", "reload (", trigger, ") rejected: ", problem.toString());
      text += problem.toString() + "\n";
    }
    log::error("config", "reload (", trigger, ") failed; the running configuration is kept");
    return {false, "reload failed; running configuration kept\n" + text};
  }
}

void Daemon::beginDrain(const char* trigger) {
  draining_ = true;
  policy_->setDraining(true);
  drainDeadline_ = std::chrono::steady_clock::now() + std::chrono::seconds(config_.drainTimeoutS);
  log::info("sbcd", trigger, ": draining; new calls refused, ",
            policy_->activeTrunkCalls() + policy_->activeLineCalls(), " calls active, up to ",
            config_.drainTimeoutS, " s");
  pollDrain();
}

void Daemon::pollDrain() {
  const auto active = policy_->activeTrunkCalls() + policy_->activeLineCalls();
  if (active == 0) {
    log::info("sbcd", "drained: no calls left");
    io_.stop();
    return;
  }
  const auto now = std::chrono::steady_clock::now();
  if (now >= drainDeadline_ + kByeGrace) {
    log::warning("sbcd", "stopping with ", active, " calls whose end was not confirmed");
    io_.stop();
    return;
  }
  if (now >= drainDeadline_ && !endingCalls_) {
    log::warning("sbcd", "drain time over with ", active, " calls still active; ending them");
    endingCalls_ = true;
    signaling_->endAllCalls("drain");
  }
  drainTimer_.expires_after(kDrainPollInterval);
  drainTimer_.async_wait([this](const boost::system::error_code& error) {
    if (!error) pollDrain();
  });
}

std::vector<ControlCommand> Daemon::controlCommands() {
  return {
      {"status", "status", "version, uptime, calls, draining",
       [this](const auto&) {
         const auto uptime = std::chrono::duration_cast<std::chrono::seconds>(
                                 std::chrono::steady_clock::now() - startedAt_)
                                 .count();
         std::ostringstream text;
         text << "version " << SBC_VERSION << "\nuptime_s " << uptime << "\ntrunks "
              << policy_->current()->trunkCount() << "\ntrunk_calls "
              << policy_->activeTrunkCalls() << "\nline_calls " << policy_->activeLineCalls()
              << "\ndraining " << (draining_ ? "yes" : "no") << "\n";
         return ControlReply{true, text.str()};
       }},
      {"trunks", "trunks", "each trunk: name, active calls, concurrent ceiling, calls/s",
       [this](const auto&) {
         const auto snapshot = policy_->current();
         std::ostringstream text;
         for (std::size_t i = 0; i < snapshot->trunkCount(); ++i) {
           const auto& trunk = snapshot->trunk(i);
           text << trunk.name << ' ' << snapshot->trunkState(i)->calls.active() << '/'
                << trunk.maxConcurrentCalls << ' ' << trunk.maxCallsPerSecond << "/s\n";
         }
         return ControlReply{true, text.str()};
       }},
      {"registrations", "registrations [AOR]",
       "subscriber-line bindings (of one AoR user@host): terminal address, expiries",
       [this](const std::vector<std::string>& args) {
         const std::string text = signaling_->describeRegistrations(
             args.empty() ? std::string() : args.front(), std::chrono::seconds(5));
         return ControlReply{true, text};
       }},
      {"reload", "reload", "re-read the configuration file (as SIGHUP)",
       [this](const auto&) { return reload("control socket"); }},
      {"metrics", "metrics", "the Prometheus exposition, as /metrics serves it",
       [this](const auto&) { return ControlReply{true, metrics_.render()}; }},
  };
}

}  // namespace sbc::daemon
