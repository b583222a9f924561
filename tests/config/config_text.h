#pragma once
// Helpers shared by the config tests: inline libconfig text and error lookups.

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"

namespace sbc::config::testing {

// The smallest valid configuration: exactly the settings that have no default.
inline const std::string kMinimal = R"(realms = {
  access = { sip = ( { address = "127.0.0.10"; } ); media = { address = "127.0.0.10"; }; };
  core   = { sip = ( { address = "127.0.0.11"; } ); media = { address = "127.0.0.11"; }; };
};
core = { next_hops = ( { host = "127.0.0.3"; } ); };
)";

inline const std::string kTestFile = "test.cfg";

// kMinimal followed by `extra` (more top-level settings).
inline std::string withMinimal(std::string_view extra) { return kMinimal + std::string(extra); }

inline Config parse(std::string_view text) { return parseConfigText(text, kTestFile); }

// The errors of text that must be refused; a test failure if it is accepted.
inline std::vector<ConfigError> errorsOf(std::string_view text) {
  try {
    parseConfigText(text, kTestFile);
  } catch (const ConfigException& e) {
    return e.errors();
  }
  ADD_FAILURE() << "configuration was accepted:\n" << text;
  return {};
}

// 1-based line of the first occurrence of `marker` in `text` (0 if absent).
inline int lineOf(std::string_view text, std::string_view marker) {
  const std::size_t at = text.find(marker);
  if (at == std::string_view::npos) return 0;
  return 1 + static_cast<int>(std::count(text.begin(), text.begin() + static_cast<long>(at), '\n'));
}

inline std::string dump(const std::vector<ConfigError>& errors) {
  std::string text;
  for (const ConfigError& error : errors) text += "  " + error.toString() + "\n";
  return text;
}

// The only error about `setting`; fails the test if there is none or several.
inline ConfigError errorFor(const std::vector<ConfigError>& errors, std::string_view setting) {
  std::vector<ConfigError> found;
  std::copy_if(errors.begin(), errors.end(), std::back_inserter(found),
               [&](const ConfigError& e) { return e.setting == setting; });
  EXPECT_EQ(found.size(), 1u) << "errors for '" << setting << "':\n" << dump(errors);
  return found.empty() ? ConfigError{} : found.front();
}

}  // namespace sbc::config::testing
