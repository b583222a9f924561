// The front door's checks of request content.

#include "signaling/request_checks.h"

#include <gtest/gtest.h>

namespace sbc::signaling {
namespace {

// Proves: RFC 3261 user parts pass (telephone numbers, escapes, user-unreserved marks);
// spaces, raw bytes above 0x7f, control characters and broken escapes do not.
TEST(RequestChecks, UriUser) {
  for (const char* good : {"100", "+15550001", "alice.smith", "a%20b", "*67;phone-context=x",
                           "user&=+$,;?/-_.!~*'()"}) {
    EXPECT_TRUE(isUriUser(good)) << good;
  }
  for (const char* bad : {"", "a b", "1\xff\xfe", "pr\xc3\x28obe", "a%2", "a%zz", "a\tb",
                          "a<b", "a#b"}) {
    EXPECT_FALSE(isUriUser(bad)) << bad;
  }
}

}  // namespace
}  // namespace sbc::signaling
