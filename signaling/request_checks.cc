#include "signaling/request_checks.h"

namespace sbc::signaling {
namespace {

bool isHex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

bool isUserChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         std::string_view("-_.!~*'()&=+$,;?/").find(c) != std::string_view::npos;
}

}  // namespace

bool isUriUser(std::string_view user) {
  if (user.empty()) return false;
  for (std::size_t i = 0; i < user.size(); ++i) {
    if (user[i] == '%') {
      if (i + 2 >= user.size() || !isHex(user[i + 1]) || !isHex(user[i + 2])) return false;
      i += 2;
    } else if (!isUserChar(user[i])) {
      return false;
    }
  }
  return true;
}

}  // namespace sbc::signaling
