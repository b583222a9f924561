#include "signaling/header_allow_list.h"

#include <strings.h>

#include <string_view>

#include <sofia-sip/msg_header.h>
#include <sofia-sip/msg_mclass.h>

namespace sbc::signaling {
namespace {

void appendLine(std::string& out, const std::string& name, std::string_view value) {
  if (value.size() > kMaxPassedValue ||
      value.find_first_of(std::string_view("\r\n\0", 3)) != std::string_view::npos) {
    return;
  }
  out += name;
  out += ": ";
  out += value;
  out += "\r\n";
}

}  // namespace

std::string allowedHeaderLines(const sip_t* sip, const std::vector<std::string>& names) {
  std::string lines;
  if (sip == nullptr) return lines;
  // nta parses with the default SIP message class; headers it does not know land in the
  // sip_unknown list under the name as written.
  const msg_mclass_t* mclass = sip_default_mclass();
  for (const std::string& name : names) {
    const msg_href_t* known = msg_find_hclass(mclass, name.c_str(), nullptr);
    if (known == nullptr || known == mclass->mc_error || known->hr_class == nullptr) continue;
    if (known == mclass->mc_unknown) {
      for (const sip_unknown_t* header = sip->sip_unknown; header != nullptr;
           header = header->un_next) {
        if (header->un_name != nullptr && header->un_value != nullptr &&
            ::strcasecmp(header->un_name, name.c_str()) == 0) {
          appendLine(lines, name, header->un_value);
        }
      }
      continue;
    }
    msg_header_t** slot = msg_hclass_offset(
        mclass, reinterpret_cast<const msg_pub_t*>(sip), known->hr_class);
    for (const msg_header_t* header = slot != nullptr ? *slot : nullptr; header != nullptr;
         header = header->sh_next) {
      char value[kMaxPassedValue + 1];
      const issize_t length = msg_header_field_e(value, sizeof value, header, 0);
      if (length < 0 || static_cast<std::size_t>(length) >= sizeof value) continue;
      appendLine(lines, name, std::string_view(value, static_cast<std::size_t>(length)));
    }
  }
  return lines;
}

}  // namespace sbc::signaling
