// libFuzzer target: the configuration parser is fed hostile text. A ConfigException is the
// one accepted outcome for bad input; any other exception, crash, leak or sanitizer report
// is a bug.

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "config/config.h"

// libconfig 1.5's bison parser has no %destructor: when a syntax error is found with a
// string token as lookahead ("a = 1 \"x\";"), that token's buffer (from strbuf_append) is
// leaked, a few bytes per refused file. It is libconfig's bug, not reachable from our code,
// so LeakSanitizer is told to ignore leaks allocated inside libconfig only.
extern "C" const char* __lsan_default_suppressions() {
  return "leak:strbuf_append\n"
         "leak:libconfig++.so\n";
}

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
