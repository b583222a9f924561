// Names of the enumerations and the text of configuration errors.

#include "config/config.h"

#include <string>
#include <utility>
#include <vector>

namespace sbc::config {

const char* toString(Transport transport) noexcept {
  switch (transport) {
    case Transport::udp:
      return "udp";
    case Transport::tcp:
      return "tcp";
  }
  return "?";
}

const char* toString(MediaDriver driver) noexcept {
  switch (driver) {
    case MediaDriver::socket:
      return "socket";
    case MediaDriver::dpdk:
      return "dpdk";
  }
  return "?";
}

const char* toString(SocketPorts ports) noexcept {
  switch (ports) {
    case SocketPorts::perPort:
      return "per_port";
    case SocketPorts::skLookup:
      return "sk_lookup";
  }
  return "?";
}

const char* toString(LogLevel level) noexcept {
  switch (level) {
    case LogLevel::debug:
      return "debug";
    case LogLevel::info:
      return "info";
    case LogLevel::warning:
      return "warning";
    case LogLevel::error:
      return "error";
  }
  return "?";
}

// "FILE:LINE: SETTING: REASON"; the line is left out when unknown (0), the setting when the
// problem is not about one setting (a syntax error).
std::string ConfigError::toString() const {
  std::string text = file.empty() ? std::string("<config>") : file;
  if (line > 0) {
    text += ':';
    text += std::to_string(line);
  }
  text += ": ";
  if (!setting.empty()) {
    text += setting;
    text += ": ";
  }
  text += reason;
  return text;
}

namespace {

std::string describe(const std::vector<ConfigError>& errors) {
  if (errors.empty()) {
    return "invalid configuration";
  }
  std::string text;
  for (const ConfigError& error : errors) {
    if (!text.empty()) {
      text += '\n';
    }
    text += error.toString();
  }
  return text;
}

}  // namespace

ConfigException::ConfigException(std::vector<ConfigError> errors)
    : std::runtime_error(describe(errors)), errors_(std::move(errors)) {}

}  // namespace sbc::config
