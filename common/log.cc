#include "common/log.h"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>

namespace sbc::log {
namespace {
std::atomic<Level> currentLevel{Level::info};

const char* name(Level lvl) {
  switch (lvl) {
    case Level::debug: return "debug";
    case Level::info: return "info";
    case Level::warning: return "warning";
    case Level::error: return "error";
  }
  return "?";
}
}  // namespace

void setLevel(Level lvl) noexcept { currentLevel.store(lvl, std::memory_order_relaxed); }
Level level() noexcept { return currentLevel.load(std::memory_order_relaxed); }
bool enabled(Level lvl) noexcept { return lvl >= level(); }

void write(Level lvl, std::string_view component, std::string_view message) {
  const auto now = std::chrono::system_clock::now();
  const std::time_t seconds = std::chrono::system_clock::to_time_t(now);
  const auto millis =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() %
      1000;
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &utc);
  // One fprintf per line: stdio locks the stream, so lines from threads don't interleave.
  std::fprintf(stderr, "%s.%03dZ %s [%.*s] %.*s\n", stamp, static_cast<int>(millis), name(lvl),
               static_cast<int>(component.size()), component.data(),
               static_cast<int>(message.size()), message.data());
}

}  // namespace sbc::log
