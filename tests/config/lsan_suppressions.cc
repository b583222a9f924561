// LeakSanitizer hook for config_test (used only in sanitizer builds).
//
// libconfig 1.5's bison parser has no %destructor: a syntax error found with a string token
// as lookahead ("a = 1 \"x\";") leaks that token's buffer, a few bytes per refused file.
// That is libconfig's bug; leaks allocated inside libconfig are ignored, ours are not.
// tests/fuzz/config_fuzz.cc carries the same list.

extern "C" const char* __lsan_default_suppressions();

extern "C" const char* __lsan_default_suppressions() {
  return "leak:strbuf_append\n"
         "leak:libconfig++.so\n";
}
