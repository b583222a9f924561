#pragma once
// Levelled log lines on stderr: "2026-11-25T09:00:00.123Z info [component] message".
// Control-plane only: never call from a media worker's packet loop.

#include <sstream>
#include <string>
#include <string_view>
#include <utility>

namespace sbc::log {

enum class Level : unsigned char { debug, info, warning, error };

void setLevel(Level level) noexcept;
Level level() noexcept;
bool enabled(Level level) noexcept;
void write(Level level, std::string_view component, std::string_view message);

template <typename... Parts>
void emit(Level lvl, std::string_view component, Parts&&... parts) {
  if (!enabled(lvl)) return;
  std::ostringstream text;
  (text << ... << std::forward<Parts>(parts));
  write(lvl, component, text.str());
}

template <typename... Parts>
void debug(std::string_view component, Parts&&... parts) {
  emit(Level::debug, component, std::forward<Parts>(parts)...);
}
template <typename... Parts>
void info(std::string_view component, Parts&&... parts) {
  emit(Level::info, component, std::forward<Parts>(parts)...);
}
template <typename... Parts>
void warning(std::string_view component, Parts&&... parts) {
  emit(Level::warning, component, std::forward<Parts>(parts)...);
}
template <typename... Parts>
void error(std::string_view component, Parts&&... parts) {
  emit(Level::error, component, std::forward<Parts>(parts)...);
}

}  // namespace sbc::log
