// libFuzzer target: the configuration parser is fed hostile text. A ConfigException is the
// one accepted outcome for bad input; any other exception, crash, leak or sanitizer report
// is a bug.

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "config/config.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    const sbc::config::Config config = sbc::config::parseConfigText(text, "fuzz.cfg");
    // A config that validates must also translate.
    const auto rules = sbc::config::toPolicyRules(config);
    (void)rules;
  } catch (const sbc::config::ConfigException& error) {
    // Every error must render; what() is built from them.
    for (const auto& e : error.errors()) {
      (void)e.toString();
    }
  }
  return 0;
}
