// Reading and validating the libconfig file. Untrusted input: every problem becomes a
// ConfigError (file, line, setting path, reason), all of them are collected, and nothing
// here may crash or throw anything but ConfigException, whatever the text.
//
// Paths name settings the way libconfig's own lookup does: "trunks.[1].max_calls" is the
// max_calls of the second trunk (indexes count from 0).

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <initializer_list>
#include <libconfig.h++>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include "config/config.h"
#include "policy/ip.h"

namespace sbc::config {

namespace {

using libconfig::Setting;

// Larger than any sane configuration; stops `--check-config /dev/zero` from eating memory.
constexpr std::size_t kMaxConfigBytes = std::size_t{16} << 20;
// Longest trunk name: it becomes a metric label and a log field.
constexpr std::size_t kMaxTrunkNameLength = 64;
constexpr std::size_t kMaxDialPrefixLength = 32;
constexpr std::size_t kMaxHeaderNameLength = 64;
constexpr std::size_t kMaxMediaTypeLength = 127;
constexpr std::size_t kMaxCredentialLength = 256;
// A trunk's limits when the file gives none (Trunk's own defaults are "no limit set").
constexpr std::uint32_t kDefaultTrunkMaxCalls = 100;
constexpr double kDefaultTrunkCallsPerSecond = 10.0;
// sizeof(sockaddr_un::sun_path) is 108 including the terminating NUL.
constexpr std::size_t kMaxSocketPathLength = 107;

// ---------------------------------------------------------------------------------------
// Text helpers

// A value from the file, made safe to print on one line: quoted, control bytes escaped,
// long text cut short.
std::string quote(std::string_view text) {
  constexpr std::size_t kMaxShown = 80;
  std::string out = "'";
  std::size_t shown = 0;
  for (const char raw : text) {
    if (shown == kMaxShown) {
      out += "...";
      break;
    }
    const auto c = static_cast<unsigned char>(raw);
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\\' || c == '\'') {
      out += '\\';
      out += raw;
    } else if (c < 0x20 || c == 0x7f) {
      static constexpr char kHex[] = "0123456789abcdef";
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 0xf];
    } else {
      out += raw;
    }
    ++shown;
  }
  out += "'";
  return out;
}

char lowerAscii(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

// Levenshtein distance, ASCII case-insensitive.
std::size_t editDistance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) {
    row[j] = j;
  }
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t above = row[j];
      const std::size_t substitution =
          diagonal + (lowerAscii(a[i - 1]) == lowerAscii(b[j - 1]) ? 0 : 1);
      row[j] = std::min({above + 1, row[j - 1] + 1, substitution});
      diagonal = above;
    }
  }
  return row[b.size()];
}

// The known name closest to `name`, if it is close enough to be a likely typo.
std::optional<std::string_view> closestName(std::string_view name,
                                            std::initializer_list<std::string_view> known) {
  if (name.size() > 64) {
    return std::nullopt;
  }
  std::optional<std::string_view> best;
  std::size_t bestDistance = 0;
  for (const std::string_view candidate : known) {
    const std::size_t distance = editDistance(name, candidate);
    if (!best || distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  if (best && (bestDistance <= 2 || bestDistance * 3 <= best->size())) {
    return best;
  }
  // A cut-short or extended name: "user" for "username", "listen_on" for "listen".
  const auto startsWith = [](std::string_view text, std::string_view start) {
    return text.size() >= start.size() &&
           editDistance(text.substr(0, start.size()), start) == 0;
  };
  for (const std::string_view candidate : known) {
    const std::string_view shorter = name.size() < candidate.size() ? name : candidate;
    if (shorter.size() >= 3 && (startsWith(name, candidate) || startsWith(candidate, name))) {
      return candidate;
    }
  }
  return std::nullopt;
}

std::string joinNames(std::initializer_list<std::string_view> names) {
  std::string out;
  for (const std::string_view name : names) {
    if (!out.empty()) {
      out += ", ";
    }
    out += name;
  }
  return out;
}

bool hasControlCharacter(std::string_view text) {
  return std::any_of(text.begin(), text.end(), [](char raw) {
    const auto c = static_cast<unsigned char>(raw);
    return c < 0x20 || c == 0x7f;
  });
}

const char* typeName(Setting::Type type) {
  switch (type) {
    case Setting::TypeInt:
    case Setting::TypeInt64:
      return "an integer";
    case Setting::TypeFloat:
      return "a float";
    case Setting::TypeString:
      return "a string";
    case Setting::TypeBoolean:
      return "a boolean";
    case Setting::TypeGroup:
      return "a group";
    case Setting::TypeArray:
      return "an array";
    case Setting::TypeList:
      return "a list";
    case Setting::TypeNone:
      break;
  }
  return "no value";
}

std::string formatNumber(double value) {
  if (std::isnan(value)) {
    return "nan";
  }
  if (std::isinf(value)) {
    return value > 0 ? "inf" : "-inf";
  }
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%g", value);
  return buffer;
}

// Why `host` is not a usable destination (a literal IP address or a DNS host name), or
// nullopt when it is.
std::optional<std::string> hostProblem(std::string_view host) {
  if (host.empty()) {
    return "must not be empty";
  }
  if (const auto address = policy::IpAddress::parse(host)) {
    if (address->bytes == std::array<std::uint8_t, 16>{}) {
      return "the unspecified address " + quote(host) + " is not a destination";
    }
    return std::nullopt;
  }
  const std::string bad = "not a literal IP address or a valid host name: " + quote(host);
  if (host.size() > 253 || host.find(':') != std::string_view::npos) {
    return bad;
  }
  std::string_view rest = host;
  std::string_view label;
  while (true) {
    const std::size_t dot = rest.find('.');
    label = rest.substr(0, dot);
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') {
      return bad;
    }
    for (const char c : label) {
      const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                      (c >= '0' && c <= '9') || c == '-';
      if (!ok) {
        return bad;
      }
    }
    if (dot == std::string_view::npos) {
      break;
    }
    rest.remove_prefix(dot + 1);
  }
  // No top-level domain is all digits: "192.0.2.300" is a broken address, not a name.
  if (std::all_of(label.begin(), label.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return bad;
  }
  return std::nullopt;
}

bool isUnspecified(const policy::IpAddress& address) {
  return address.bytes == std::array<std::uint8_t, 16>{};
}

template <typename E>
struct EnumName {
  std::string_view name;
  E value;
};

constexpr EnumName<LogLevel> kLogLevels[] = {{"debug", LogLevel::debug},
                                             {"info", LogLevel::info},
                                             {"warning", LogLevel::warning},
                                             {"error", LogLevel::error}};
constexpr EnumName<Transport> kTransports[] = {{"udp", Transport::udp}, {"tcp", Transport::tcp}};
constexpr EnumName<UnknownSourceAction> kUnknownSourceActions[] = {
    {"forbidden", UnknownSourceAction::forbidden}, {"drop", UnknownSourceAction::drop}};
constexpr EnumName<MediaDriver> kDrivers[] = {{"socket", MediaDriver::socket},
                                              {"dpdk", MediaDriver::dpdk}};
constexpr EnumName<SocketPorts> kSocketPorts[] = {{"per_port", SocketPorts::perPort},
                                                  {"sk_lookup", SocketPorts::skLookup}};

enum class RealmName : std::uint8_t { access, core };
constexpr EnumName<RealmName> kRealmNames[] = {{"access", RealmName::access},
                                               {"core", RealmName::core}};

// ---------------------------------------------------------------------------------------
// Walking the setting tree

// One setting of the file and the path that names it in messages.
struct Node {
  const Setting* setting = nullptr;
  std::string path;

  const Setting& operator*() const { return *setting; }
  const Setting* operator->() const { return setting; }
};

std::string childPath(const std::string& parent, std::string_view name) {
  if (parent.empty()) {
    return std::string(name);
  }
  std::string path = parent;
  path += '.';
  path += name;
  return path;
}

std::string elementPath(const std::string& parent, int index) {
  return parent + ".[" + std::to_string(index) + "]";
}

int lineOf(const Setting& setting) {
  const unsigned int line = setting.getSourceLine();
  return line > 1000000000u ? 0 : static_cast<int>(line);
}

// Collects errors and reads typed values; every reader reports what is wrong and returns
// nullopt, so the caller just skips the value and carries on to find the next problem.
class Validator {
 public:
  explicit Validator(std::string file) : file_(std::move(file)) {}

  // The errors by line, those without a line (missing settings) first.
  std::vector<ConfigError> takeErrors() {
    std::stable_sort(errors_.begin(), errors_.end(),
                     [](const ConfigError& a, const ConfigError& b) { return a.line < b.line; });
    return std::move(errors_);
  }
  bool failed() const { return !errors_.empty(); }
  const std::string& file() const { return file_; }

  void fail(const Node& node, std::string reason) {
    errors_.push_back(ConfigError{file_, lineOf(*node), node.path, std::move(reason)});
  }
  void failAt(int line, std::string setting, std::string reason) {
    errors_.push_back(ConfigError{file_, line, std::move(setting), std::move(reason)});
  }

  // A group whose members must all be in `known`; unknown ones are reported with the
  // closest valid name. False (reported) when `node` is not a group at all.
  bool group(const Node& node, std::initializer_list<std::string_view> known) {
    if (!node->isGroup()) {
      wrongType(node, "a group { ... }");
      return false;
    }
    const int count = node->getLength();
    for (int i = 0; i < count; ++i) {
      const Setting& child = (*node)[i];
      const char* rawName = child.getName();
      const std::string_view name = rawName != nullptr ? rawName : "";
      if (std::find(known.begin(), known.end(), name) != known.end()) {
        continue;
      }
      std::string reason = "unknown setting " + quote(name);
      if (const auto suggestion = closestName(name, known)) {
        reason += "; did you mean '" + std::string(*suggestion) + "'?";
      } else {
        reason += "; valid settings here: " + joinNames(known);
      }
      errors_.push_back(
          ConfigError{file_, lineOf(child), childPath(node.path, name), std::move(reason)});
    }
    return true;
  }

  // The member called `name` of a group already checked with group().
  static std::optional<Node> member(const Node& group, std::string_view name) {
    const int count = group->getLength();
    for (int i = 0; i < count; ++i) {
      const Setting& child = (*group)[i];
      const char* rawName = child.getName();
      if (rawName != nullptr && name == rawName) {
        return Node{&child, childPath(group.path, name)};
      }
    }
    return std::nullopt;
  }

  std::optional<Node> required(const Node& group, std::string_view name) {
    auto node = member(group, name);
    if (!node) {
      missing(group, name);
    }
    return node;
  }

  void missing(const Node& group, std::string_view name) {
    // The line of the enclosing group helps find where it belongs; the root has none.
    const int line = group->isRoot() ? 0 : lineOf(*group);
    failAt(line, childPath(group.path, name), "required setting is missing");
  }

  // An integer libconfig misread on this line (already reported): not judged again.
  void ignoreMisread(int line, long long value) { misread_.emplace(line, value); }
  bool isMisread(const Node& node, long long value) const {
    return misread_.count({lineOf(*node), value}) != 0;
  }

  void wrongType(const Node& node, std::string_view expected) {
    fail(node, "wrong type: expected " + std::string(expected) + ", got " +
                   typeName(node->getType()));
  }

  // The value of an integer setting (TypeInt or TypeInt64); nullopt for any other type.
  static std::optional<long long> wholeValue(const Node& node) {
    switch (node->getType()) {
      case Setting::TypeInt:
        return static_cast<int>(*node);
      case Setting::TypeInt64:
        return static_cast<long long>(*node);
      default:
        return std::nullopt;
    }
  }

  std::optional<long long> integer(const Node& node, long long min, long long max) {
    const std::optional<long long> value = wholeValue(node);
    if (!value) {
      wrongType(node, "an integer");
      return std::nullopt;
    }
    if (isMisread(node, *value)) {
      return std::nullopt;
    }
    if (*value < min || *value > max) {
      fail(node, "out of range: " + std::to_string(*value) + " (valid: " + std::to_string(min) +
                     ".." + std::to_string(max) + ")");
      return std::nullopt;
    }
    return value;
  }

  // An integer or a float, in (min, max] when `minExclusive`, else [min, max].
  std::optional<double> number(const Node& node, double min, bool minExclusive, double max) {
    double value = 0;
    // An integer is checked as read: converting it back from the double is undefined for
    // one at the edge of long long (2^63 - 1 rounds up to 2^63).
    if (const std::optional<long long> whole = wholeValue(node)) {
      if (isMisread(node, *whole)) return std::nullopt;
      value = static_cast<double>(*whole);
    } else if (node->getType() == Setting::TypeFloat) {
      value = static_cast<double>(*node);
    } else {
      wrongType(node, "a number");
      return std::nullopt;
    }
    const bool aboveMin = minExclusive ? value > min : value >= min;
    if (!(aboveMin && value <= max)) {  // also refuses nan
      fail(node, "out of range: " + formatNumber(value) + " (valid: " +
                     (minExclusive ? "> " : ">= ") + formatNumber(min) + " and <= " +
                     formatNumber(max) + ")");
      return std::nullopt;
    }
    return value;
  }

  std::optional<std::string> string(const Node& node) {
    if (node->getType() != Setting::TypeString) {
      wrongType(node, "a string");
      return std::nullopt;
    }
    const char* text = node->c_str();
    return std::string(text != nullptr ? text : "");
  }

  std::optional<bool> boolean(const Node& node) {
    if (node->getType() != Setting::TypeBoolean) {
      wrongType(node, "a boolean (true or false)");
      return std::nullopt;
    }
    return static_cast<bool>(*node);
  }

  template <typename E, std::size_t N>
  std::optional<E> enumeration(const Node& node, const EnumName<E> (&names)[N]) {
    const auto text = string(node);
    if (!text) {
      return std::nullopt;
    }
    std::string valid;
    for (const EnumName<E>& entry : names) {
      if (entry.name == *text) {
        return entry.value;
      }
      if (!valid.empty()) {
        valid += ", ";
      }
      valid += entry.name;
    }
    fail(node, "unknown value " + quote(*text) + "; valid values: " + valid);
    return std::nullopt;
  }

  // The elements of a list ( ... ) or, when `arrayToo`, of an array [ ... ].
  std::optional<std::vector<Node>> elements(const Node& node, bool arrayToo,
                                            std::string_view expected) {
    if (!node->isList() && !(arrayToo && node->isArray())) {
      wrongType(node, expected);
      return std::nullopt;
    }
    std::vector<Node> out;
    const int count = node->getLength();
    out.reserve(static_cast<std::size_t>(std::max(count, 0)));
    for (int i = 0; i < count; ++i) {
      out.push_back(Node{&(*node)[i], elementPath(node.path, i)});
    }
    return out;
  }

  // The strings of an array [ "...", ... ] (a list of strings is accepted too).
  std::optional<std::vector<std::pair<Node, std::string>>> strings(const Node& node) {
    const auto items = elements(node, true, "an array of strings [ \"...\", ... ]");
    if (!items) {
      return std::nullopt;
    }
    std::vector<std::pair<Node, std::string>> out;
    for (const Node& item : *items) {
      if (auto text = string(item)) {
        out.emplace_back(item, std::move(*text));
      }
    }
    return out;
  }

  // Reads an optional integer member into `out` (left at its default when absent or bad).
  template <typename T>
  void readInteger(const Node& group, std::string_view name, long long min, long long max,
                   T& out) {
    if (const auto node = member(group, name)) {
      if (const auto value = integer(*node, min, max)) {
        out = static_cast<T>(*value);
      }
    }
  }

 private:
  std::string file_;
  std::vector<ConfigError> errors_;
  std::set<std::pair<int, long long>> misread_;
};

// ---------------------------------------------------------------------------------------
// The schema

class Parser {
 public:
  explicit Parser(Validator& v) : v_(v) {}

  Config parse(const Setting& root) {
    Config config;
    config.sourceFile = v_.file();
    const Node node{&root, ""};
    v_.group(node, {"log_level", "realms", "core", "media", "dpdk", "sip", "trunks", "lines",
                    "metrics", "control", "drain", "refusals"});
    if (const auto level = Validator::member(node, "log_level")) {
      if (const auto value = v_.enumeration(*level, kLogLevels)) {
        config.logLevel = *value;
      }
    }
    parseRealms(node, config);
    parseCore(node, config);
    const bool driverKnown = parseMedia(node, config.media);
    if (driverKnown && config.media.driver == MediaDriver::dpdk) {
      parseDpdk(node, config.dpdk);
    }
    parseSip(node, config.sipTimers);
    parseHeaderAllowList(node, config.headerAllowList);
    parseBodyTypes(node, config.bodyTypes);
    parseTrunks(node, config.trunks);
    parseLines(node, config.lines);
    parseMetrics(node, config.metricsListen);
    parseControl(node, config.controlSocket);
    parseDrain(node, config.drainTimeoutS);
    parseRefusals(node, config.refusals);
    return config;
  }

 private:
  // A literal, specific IP address (it is bound and advertised, so not 0.0.0.0 or ::).
  std::optional<policy::IpAddress> address(const Node& node) {
    const auto text = v_.string(node);
    if (!text) {
      return std::nullopt;
    }
    const auto parsed = policy::IpAddress::parse(*text);
    if (!parsed) {
      v_.fail(node, "not a literal IPv4 or IPv6 address: " + quote(*text));
      return std::nullopt;
    }
    if (isUnspecified(*parsed)) {
      v_.fail(node, "the unspecified address " + quote(*text) +
                        " cannot be used: give the address to bind and advertise");
      return std::nullopt;
    }
    return parsed;
  }

  // `text` (an element of `node`'s list) as an address prefix; reported when it is none.
  std::optional<policy::IpPrefix> prefix(const Node& node, const std::string& text) {
    const auto parsed = policy::IpPrefix::parse(text);
    if (!parsed) {
      v_.fail(node, "not an address prefix (ADDRESS/LENGTH with no host bits set): " +
                        quote(text));
    }
    return parsed;
  }

  template <typename E, std::size_t N>
  void readEnum(const Node& group, std::string_view name, const EnumName<E> (&names)[N],
                E& out) {
    if (const auto node = Validator::member(group, name)) {
      if (const auto value = v_.enumeration(*node, names)) {
        out = *value;
      }
    }
  }

  void parseRealms(const Node& root, Config& config) {
    const auto realms = v_.required(root, "realms");
    if (!realms || !v_.group(*realms, {"access", "core"})) {
      return;
    }
    std::optional<policy::IpAddress> mediaAddress[2];
    bool mediaRangeOk[2] = {false, false};
    Node mediaNode[2];
    Realm* targets[2] = {&config.access, &config.core};
    const char* names[2] = {"access", "core"};
    for (int i = 0; i < 2; ++i) {
      const auto realm = v_.required(*realms, names[i]);
      if (!realm || !v_.group(*realm, {"sip", "media"})) {
        continue;
      }
      parseSipListens(*realm, targets[i]->sip);
      if (const auto media = v_.required(*realm, "media")) {
        mediaNode[i] = *media;
        mediaRangeOk[i] = parseMediaRange(*media, targets[i]->media, mediaAddress[i]);
      }
    }
    // Two realms may share a media address only with ports apart.
    if (mediaAddress[0] && mediaAddress[1] && *mediaAddress[0] == *mediaAddress[1] &&
        mediaRangeOk[0] && mediaRangeOk[1]) {
      const MediaRange& a = config.access.media;
      const MediaRange& c = config.core.media;
      if (a.portMin <= c.portMax && c.portMin <= a.portMax) {
        v_.fail(mediaNode[1], "port range " + std::to_string(c.portMin) + ".." +
                                  std::to_string(c.portMax) + " overlaps realms.access.media (" +
                                  std::to_string(a.portMin) + ".." +
                                  std::to_string(a.portMax) + ") on the same address " +
                                  quote(c.address));
      }
    }
    // A UDP SIP port inside a media range on the same address: one of them cannot bind.
    for (int i = 0; i < 2; ++i) {
      if (!mediaAddress[i] || !mediaRangeOk[i]) {
        continue;
      }
      const MediaRange& range = targets[i]->media;
      for (const auto& [key, listen] : listens_) {
        const auto& [family, bytes, port, transport] = key;
        if (transport == Transport::udp && family == mediaAddress[i]->family &&
            bytes == mediaAddress[i]->bytes && port >= range.portMin && port <= range.portMax) {
          v_.fail(listen, "UDP port " + std::to_string(port) + " is inside the media port range " +
                              std::to_string(range.portMin) + ".." +
                              std::to_string(range.portMax) + " of realms." + names[i] +
                              ".media on the same address");
        }
      }
    }
  }

  void parseSipListens(const Node& realm, std::vector<SipListen>& out) {
    const auto sip = v_.required(realm, "sip");
    if (!sip) {
      return;
    }
    const auto items = v_.elements(*sip, false, "a list of listen groups ( { ... }, ... )");
    if (!items) {
      return;
    }
    if (items->empty()) {
      v_.fail(*sip, "needs at least one listen address");
      return;
    }
    for (const Node& item : *items) {
      if (!v_.group(item, {"address", "port", "transport"})) {
        continue;
      }
      SipListen listen;
      std::optional<policy::IpAddress> parsed;
      if (const auto addressNode = v_.required(item, "address")) {
        parsed = address(*addressNode);
        if (parsed) {
          listen.address = *v_.string(*addressNode);
        }
      }
      v_.readInteger(item, "port", 0, 65535, listen.port);
      readEnum(item, "transport", kTransports, listen.transport);
      if (parsed) {
        checkListenClash(item, *parsed, listen);
      }
      out.push_back(std::move(listen));
    }
  }

  // Two listens (in either realm) on one address, port and transport cannot both bind;
  // port 0 (any free port) never clashes.
  void checkListenClash(const Node& item, const policy::IpAddress& address,
                        const SipListen& listen) {
    if (listen.port == 0) {
      return;
    }
    const ListenKey key{address.family, address.bytes, listen.port, listen.transport};
    const auto [it, inserted] = listens_.emplace(key, item);
    if (!inserted) {
      v_.fail(item, "listens on the same address, port and transport as " + it->second.path);
    }
  }

  // An IPv6 link-local address (fe80::/10) is on the link by definition (RFC 4291 2.5.6),
  // and the one an IPv6 router is usually known by (it advertises itself from it).
  static bool isLinkLocal(const policy::IpAddress& address) {
    return address.family == policy::IpFamily::v6 && address.bytes[0] == 0xfe &&
           (address.bytes[1] & 0xc0) == 0x80;
  }

  // media.gateway and media.on_link: where the dpdk driver sends media for off-link peers.
  void parseMediaGateway(const Node& media, MediaRange& out,
                         const std::optional<policy::IpAddress>& own) {
    std::optional<policy::IpAddress> gateway;
    const auto gatewayNode = Validator::member(media, "gateway");
    if (gatewayNode) {
      gateway = address(*gatewayNode);
      if (gateway && own && gateway->family != own->family) {
        v_.fail(*gatewayNode, "must be of the same family as the media address " +
                                  quote(out.address));
        gateway.reset();
      } else if (gateway && own && gateway->bytes == own->bytes) {
        v_.fail(*gatewayNode, "is the media address itself");
        gateway.reset();
      }
      if (gateway) out.gateway = *v_.string(*gatewayNode);
    }
    const auto onLinkNode = Validator::member(media, "on_link");
    if (!onLinkNode) return;
    std::vector<policy::IpPrefix> prefixes;
    if (const auto texts = v_.strings(*onLinkNode)) {
      for (const auto& [node, text] : *texts) {
        const auto parsed = prefix(node, text);
        if (!parsed) continue;
        if (own && parsed->address.family != own->family) {
          v_.fail(node, "must be of the same family as the media address " + quote(out.address));
        } else {
          prefixes.push_back(*parsed);
          out.onLink.push_back(text);
        }
      }
    }
    if (!gatewayNode) {
      v_.fail(*onLinkNode, "needs a gateway: without one every peer is on-link already");
    } else if (gateway && !prefixes.empty() && !isLinkLocal(*gateway) &&
               std::none_of(prefixes.begin(), prefixes.end(),
                            [&](const policy::IpPrefix& p) { return p.contains(*gateway); })) {
      v_.fail(*gatewayNode, "gateway " + quote(out.gateway) +
                                " is in none of the on_link prefixes: it could not be reached");
    }
  }

  // True when the port range is usable (for the overlap check).
  bool parseMediaRange(const Node& media, MediaRange& out,
                       std::optional<policy::IpAddress>& parsedAddress) {
    if (!v_.group(media, {"address", "port_min", "port_max", "gateway", "on_link", "vlan"})) {
      return false;
    }
    if (const auto addressNode = v_.required(media, "address")) {
      parsedAddress = address(*addressNode);
      if (parsedAddress) {
        out.address = *v_.string(*addressNode);
      }
    }
    parseMediaGateway(media, out, parsedAddress);
    v_.readInteger(media, "vlan", 1, 4094, out.vlan);  // 0 and 4095 are reserved (802.1Q)
    bool ok = true;
    const auto minNode = Validator::member(media, "port_min");
    const auto maxNode = Validator::member(media, "port_max");
    if (minNode) {
      if (const auto value = v_.integer(*minNode, 1024, 65535)) {
        if (*value % 2 != 0) {
          v_.fail(*minNode, "must be even (RTP takes the even port, RTCP the next one), got " +
                                std::to_string(*value));
          ok = false;
        } else {
          out.portMin = static_cast<std::uint16_t>(*value);
        }
      } else {
        ok = false;
      }
    }
    if (maxNode) {
      if (const auto value = v_.integer(*maxNode, 1024, 65535)) {
        out.portMax = static_cast<std::uint16_t>(*value);
      } else {
        ok = false;
      }
    }
    if (ok && out.portMax <= out.portMin) {
      const Node& where = maxNode ? *maxNode : (minNode ? *minNode : media);
      v_.fail(where, "port_max (" + std::to_string(out.portMax) +
                         ") must be greater than port_min (" + std::to_string(out.portMin) +
                         ")");
      ok = false;
    }
    return ok;
  }

  std::optional<HostPort> parseHostPort(const Node& node) {
    if (!v_.group(node, {"host", "port", "transport"})) {
      return std::nullopt;
    }
    HostPort out;
    bool ok = true;
    if (const auto hostNode = v_.required(node, "host")) {
      if (const auto host = v_.string(*hostNode)) {
        if (const auto problem = hostProblem(*host)) {
          v_.fail(*hostNode, *problem);
          ok = false;
        } else {
          out.host = *host;
        }
      } else {
        ok = false;
      }
    } else {
      ok = false;
    }
    v_.readInteger(node, "port", 1, 65535, out.port);
    readEnum(node, "transport", kTransports, out.transport);
    if (!ok) {
      return std::nullopt;
    }
    return out;
  }

  void parseCore(const Node& root, Config& config) {
    const auto core = v_.required(root, "core");
    if (!core || !v_.group(*core, {"next_hops", "failover_timeout_ms"})) {
      return;
    }
    v_.readInteger(*core, "failover_timeout_ms", 0, 600000, config.coreFailoverTimeoutMs);
    const auto hops = v_.required(*core, "next_hops");
    if (!hops) {
      return;
    }
    const auto items = v_.elements(*hops, false, "a list of next hops ( { ... }, ... )");
    if (!items) {
      return;
    }
    if (items->empty()) {
      v_.fail(*hops, "needs at least one next hop");
      return;
    }
    for (const Node& item : *items) {
      if (auto hop = parseHostPort(item)) {
        config.coreNextHops.push_back(std::move(*hop));
      }
    }
  }

  // False when the driver is unknown (then the dpdk section cannot be judged).
  bool parseMedia(const Node& root, Media& out) {
    const auto media = Validator::member(root, "media");
    if (!media ||
        !v_.group(*media, {"driver", "socket_ports", "kernel_forwarding", "dscp", "quarantine_ms",
                           "timeout_s"})) {
      return !media;
    }
    bool driverKnown = true;
    if (const auto driver = Validator::member(*media, "driver")) {
      if (const auto value = v_.enumeration(*driver, kDrivers)) {
        out.driver = *value;
      } else {
        driverKnown = false;
      }
    }
    if (const auto ports = Validator::member(*media, "socket_ports")) {
      if (const auto value = v_.enumeration(*ports, kSocketPorts)) out.socketPorts = *value;
    }
    if (const auto kernel = Validator::member(*media, "kernel_forwarding")) {
      if (const auto value = v_.boolean(*kernel)) out.kernelForwarding = *value;
    }
    v_.readInteger(*media, "dscp", 0, 63, out.dscp);
    v_.readInteger(*media, "quarantine_ms", 0, 60000, out.quarantineMs);
    v_.readInteger(*media, "timeout_s", 0, 86400, out.timeoutS);
    return driverKnown;
  }

  // Only read when media.driver = "dpdk"; then it is required.
  void parseDpdk(const Node& root, Dpdk& out) {
    const auto dpdk = Validator::member(root, "dpdk");
    if (!dpdk) {
      v_.failAt(0, "dpdk", "required setting is missing (media.driver is \"dpdk\")");
      return;
    }
    if (!v_.group(*dpdk, {"eal_args", "ports"})) {
      return;
    }
    if (const auto args = Validator::member(*dpdk, "eal_args")) {
      if (const auto items = v_.strings(*args)) {
        for (const auto& [node, text] : *items) {
          if (text.empty()) {
            v_.fail(node, "an EAL argument must not be empty");
          } else if (hasControlCharacter(text)) {
            v_.fail(node, "control characters are not allowed: " + quote(text));
          } else {
            out.ealArgs.push_back(text);
          }
        }
      }
    }
    const auto ports = v_.required(*dpdk, "ports");
    if (!ports) {
      return;
    }
    const auto items = v_.elements(*ports, false, "a list of ports ( { ... }, ... )");
    if (!items) {
      return;
    }
    bool served[2] = {false, false};
    // realm -> path of its port. One device may carry both realms (told apart by their
    // media addresses, and by VLAN when realms.<realm>.media.vlan is set), but a realm has
    // one port: its media leaves by it, and several links in one realm are DPDK's bonding
    // driver's job (net_bonding, one port to sbcd), not a choice sbcd would make per packet.
    std::map<std::string, std::string> portOfRealm;
    bool allOk = true;
    for (const Node& item : *items) {
      if (!v_.group(item, {"device", "realm"})) {
        allOk = false;
        continue;
      }
      DpdkPort port;
      bool ok = true;
      std::optional<Node> deviceAt;
      if (const auto deviceNode = v_.required(item, "device")) {
        if (const auto device = v_.string(*deviceNode)) {
          const bool sane = !device->empty() && std::all_of(device->begin(), device->end(),
                                                             [](char c) {
                                                               return c > ' ' && c < 0x7f;
                                                             });
          if (!sane) {
            v_.fail(*deviceNode, "not an EAL device name: " + quote(*device));
            ok = false;
          } else {
            port.device = *device;
            deviceAt = *deviceNode;
          }
        } else {
          ok = false;
        }
      } else {
        ok = false;
      }
      if (const auto realmNode = v_.required(item, "realm")) {
        if (const auto realm = v_.enumeration(*realmNode, kRealmNames)) {
          port.realm = *realm == RealmName::access ? "access" : "core";
          served[static_cast<int>(*realm)] = true;
        } else {
          ok = false;
        }
      } else {
        ok = false;
      }
      if (ok && deviceAt) {
        if (const auto [it, inserted] = portOfRealm.emplace(port.realm, item.path); !inserted) {
          v_.fail(*deviceAt, "realm " + quote(port.realm) + " already has its port (" +
                                 it->second + "); bond several links into one port "
                                 "(net_bonding)");
          ok = false;
        }
      }
      if (ok) {
        out.ports.push_back(std::move(port));
      } else {
        allOk = false;
      }
    }
    if (allOk) {
      for (const EnumName<RealmName>& realm : kRealmNames) {
        if (!served[static_cast<int>(realm.value)]) {
          v_.fail(*ports, "no port serves realm '" + std::string(realm.name) +
                              "': each realm needs one");
        }
      }
    }
  }

  void parseSip(const Node& root, SipTimers& out) {
    const auto sip = Validator::member(root, "sip");
    if (!sip || !v_.group(*sip, {"t1_ms", "t1x64_ms", "nonce_expires_s", "header_allow_list",
                                 "body_types", "session_expires_s", "min_se_s",
                                 "max_session_expires_s", "overload_queue_kib",
                                 "realtime_priority"})) {
      return;
    }
    v_.readInteger(*sip, "nonce_expires_s", 1, 86400, out.nonceExpiresS);
    v_.readInteger(*sip, "min_se_s", 1, 86400, out.minSeS);
    if (const auto node = Validator::member(*sip, "session_expires_s")) {
      // 0 turns session timers off; otherwise at least our own Min-SE.
      if (const auto value = v_.integer(*node, 0, 86400)) {
        if (*value != 0 && *value < out.minSeS) {
          v_.fail(*node, "below min_se_s (" + std::to_string(out.minSeS) +
                             "): " + std::to_string(*value) + " (0 turns session timers off)");
        } else {
          out.sessionExpiresS = static_cast<std::uint32_t>(*value);
        }
      }
    } else if (out.sessionExpiresS < out.minSeS) {
      v_.fail(*sip, "the default session_expires_s (" + std::to_string(out.sessionExpiresS) +
                        ") is below min_se_s (" + std::to_string(out.minSeS) +
                        "): set session_expires_s");
    }
    if (const auto node = Validator::member(*sip, "max_session_expires_s")) {
      if (const auto value = v_.integer(*node, 1, 86400)) {
        if (*value < out.sessionExpiresS) {
          v_.fail(*node, "below session_expires_s (" + std::to_string(out.sessionExpiresS) +
                             "): " + std::to_string(*value));
        } else {
          out.maxSessionExpiresS = static_cast<std::uint32_t>(*value);
        }
      }
    } else {
      // Never below the interval sbcd asks for itself.
      out.maxSessionExpiresS = std::max(out.maxSessionExpiresS, out.sessionExpiresS);
    }
    v_.readInteger(*sip, "overload_queue_kib", 0, 1 << 20, out.overloadQueueKib);
    v_.readInteger(*sip, "realtime_priority", 0, 99, out.realtimePriority);
    v_.readInteger(*sip, "t1_ms", 1, 10000, out.t1Ms);
    if (const auto node = Validator::member(*sip, "t1x64_ms")) {
      // At least T1 itself (never below 1); the check uses T1's default if T1 was bad.
      if (const auto value = v_.integer(*node, std::max<long long>(1, out.t1Ms), 600000)) {
        out.t1x64Ms = static_cast<std::uint32_t>(*value);
      }
    } else if (out.t1x64Ms < out.t1Ms) {
      v_.fail(*sip, "the default t1x64_ms (" + std::to_string(out.t1x64Ms) +
                        ") is below t1_ms (" + std::to_string(out.t1Ms) + "): set t1x64_ms");
    }
  }

  // RFC 3261 token characters: what a header name is made of.
  static bool validHeaderName(std::string_view name) {
    return !name.empty() && name.size() <= kMaxHeaderNameLength &&
           std::all_of(name.begin(), name.end(), [](char c) {
             return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    std::string_view("-.!%*_+`'~").find(c) != std::string_view::npos;
           });
  }

  // Headers that describe the SBC's own legs (routing, dialog, transaction, body framing,
  // authentication) or ask for extensions the SBC itself would have to support: writing
  // another leg's copy of them would break the call or the topology hiding. The caller's
  // identity (P-Asserted-Identity) follows trunks.trusted instead.
  static bool headerOwnedBySbc(std::string_view name) {
    static constexpr std::string_view kOwned[] = {
        "Via", "From", "To", "Call-ID", "CSeq", "Contact", "Route", "Record-Route",
        "Max-Forwards", "Content-Length", "Content-Type", "Content-Encoding",
        "Content-Disposition", "Authorization", "Proxy-Authorization", "WWW-Authenticate",
        "Proxy-Authenticate", "Authentication-Info", "Require", "Proxy-Require", "Supported",
        "Unsupported", "RSeq", "RAck", "Session-Expires", "Min-SE", "Event",
        "Subscription-State", "Allow", "P-Asserted-Identity", "Path", "Service-Route"};
    return std::any_of(std::begin(kOwned), std::end(kOwned),
                       [&](std::string_view owned) { return sameHeaderName(owned, name); });
  }

  static bool sameHeaderName(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
             return std::tolower(static_cast<unsigned char>(x)) ==
                    std::tolower(static_cast<unsigned char>(y));
           });
  }

  void parseHeaderAllowList(const Node& root, std::vector<std::string>& out) {
    const auto sip = Validator::member(root, "sip");
    if (!sip || !(*sip)->isGroup()) return;
    const auto list = Validator::member(*sip, "header_allow_list");
    if (!list) return;
    const auto names = v_.strings(*list);
    if (!names) return;
    std::vector<std::string> lowered;
    for (const auto& [node, name] : *names) {
      if (!validHeaderName(name)) {
        v_.fail(node, "not a header name (1.." + std::to_string(kMaxHeaderNameLength) +
                          " characters of A-Z a-z 0-9 - . ! % * _ + ` ' ~): " + quote(name));
        continue;
      }
      if (name.size() == 1) {
        v_.fail(node, "compact header forms are not accepted; give the full name: " +
                          quote(name));
        continue;
      }
      if (headerOwnedBySbc(name)) {
        v_.fail(node, sameHeaderName(name, "P-Asserted-Identity")
                          ? quote(name) + " follows trunks.trusted, not the allow-list"
                          : quote(name) + " is written by the SBC itself on each leg and "
                                          "cannot be passed");
        continue;
      }
      std::string key(name);
      std::transform(key.begin(), key.end(), key.begin(),
                     [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
      if (std::find(lowered.begin(), lowered.end(), key) != lowered.end()) {
        v_.fail(node, quote(name) + " is listed twice (names are case-insensitive)");
        continue;
      }
      lowered.push_back(std::move(key));
      out.push_back(name);
    }
  }

  // A media type as RFC 2045 writes it: "type/subtype", each an RFC 2045 token.
  static bool validMediaType(std::string_view type) {
    const auto token = [](std::string_view part) {
      return !part.empty() && std::all_of(part.begin(), part.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) ||
               std::string_view("!#$%&'*+-.^_`{|}~").find(c) != std::string_view::npos;
      });
    };
    const auto slash = type.find('/');
    return type.size() <= kMaxMediaTypeLength && slash != std::string_view::npos &&
           token(type.substr(0, slash)) && token(type.substr(slash + 1));
  }

  void parseBodyTypes(const Node& root, std::vector<std::string>& out) {
    const auto sip = Validator::member(root, "sip");
    if (!sip || !(*sip)->isGroup()) return;
    const auto list = Validator::member(*sip, "body_types");
    if (!list) return;
    const auto types = v_.strings(*list);
    if (!types) return;
    out.clear();
    for (const auto& [node, type] : *types) {
      std::string lowered(type);
      std::transform(lowered.begin(), lowered.end(), lowered.begin(),
                     [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
      if (!validMediaType(type)) {
        v_.fail(node, "not a media type (type/subtype, at most " +
                          std::to_string(kMaxMediaTypeLength) +
                          " characters, no parameters): " + quote(type));
        continue;
      }
      if (lowered == "application/sdp" || lowered == "message/sipfrag") {
        v_.fail(node, quote(type) + " is rewritten by the SBC itself and cannot be listed");
        continue;
      }
      if (lowered.rfind("multipart/", 0) == 0) {
        v_.fail(node, quote(type) + ": a multipart body crosses when each of its parts' "
                                    "types is listed; list those");
        continue;
      }
      if (std::find(out.begin(), out.end(), lowered) != out.end()) {
        v_.fail(node, quote(type) + " is listed twice (types are case-insensitive)");
        continue;
      }
      out.push_back(std::move(lowered));
    }
  }

  // The start of a Request-URI user part: digits, letters, and what dial strings use. Empty
  // matches every user (a default route).
  static bool validDialPrefix(std::string_view prefix) {
    return prefix.size() <= kMaxDialPrefixLength &&
           std::all_of(prefix.begin(), prefix.end(), [](char c) {
             return std::isalnum(static_cast<unsigned char>(c)) ||
                    std::string_view("+*#.-_").find(c) != std::string_view::npos;
           });
  }

  static bool validTrunkName(std::string_view name) {
    return !name.empty() && name.size() <= kMaxTrunkNameLength &&
           std::all_of(name.begin(), name.end(), [](char c) {
             return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '.' || c == '-';
           });
  }

  std::optional<Credentials> parseCredentials(const Node& node) {
    if (!v_.group(node, {"username", "password", "realm"})) {
      return std::nullopt;
    }
    Credentials out;
    bool ok = true;
    // Username and realm are sent in quoted strings of SIP headers; the password never is.
    const auto field = [&](std::string_view name, bool required, bool quoted,
                           std::string& target) {
      const auto setting = required ? v_.required(node, name) : Validator::member(node, name);
      if (!setting) {
        ok = ok && !required;
        return;
      }
      const auto text = v_.string(*setting);
      if (!text) {
        ok = false;
        return;
      }
      if (required && text->empty()) {
        v_.fail(*setting, "must not be empty");
        ok = false;
      } else if (text->size() > kMaxCredentialLength) {
        v_.fail(*setting, "too long: " + std::to_string(text->size()) + " characters (at most " +
                            std::to_string(kMaxCredentialLength) + ")");
        ok = false;
      } else if (hasControlCharacter(*text)) {
        v_.fail(*setting, "control characters are not allowed");
        ok = false;
      } else if (quoted && text->find_first_of("\"\\") != std::string::npos) {
        v_.fail(*setting, "'\"' and '\\' are not allowed: " + quote(*text));
        ok = false;
      } else {
        target = *text;
      }
    };
    field("username", true, true, out.username);
    field("password", true, false, out.password);
    field("realm", false, true, out.realm);
    if (!ok) {
      return std::nullopt;
    }
    return out;
  }

  void parseTrunks(const Node& root, std::vector<Trunk>& out) {
    const auto trunks = Validator::member(root, "trunks");
    if (!trunks) {
      return;
    }
    const auto items = v_.elements(*trunks, false, "a list of trunks ( { ... }, ... )");
    if (!items) {
      return;
    }
    // Where each name and each prefix was first seen, for duplicate reports.
    std::map<std::string, int> nameLines;
    using PrefixKey = std::tuple<policy::IpFamily, std::array<std::uint8_t, 16>, std::uint8_t>;
    struct PrefixUse {
      const Node* trunk;  // the trunk's list element
      std::string name;
      std::string path;
    };
    std::map<PrefixKey, PrefixUse> prefixes;
    std::map<std::string, PrefixUse> dialPrefixes;
    for (const Node& item : *items) {
      if (!v_.group(item, {"name", "source_prefixes", "dial_prefixes", "target", "max_calls",
                           "max_calls_per_second", "call_rate_burst", "trusted", "challenge",
                           "answer"})) {
        continue;
      }
      Trunk trunk;
      trunk.maxConcurrentCalls = kDefaultTrunkMaxCalls;
      trunk.maxCallsPerSecond = kDefaultTrunkCallsPerSecond;
      if (const auto nameNode = v_.required(item, "name")) {
        if (const auto name = v_.string(*nameNode)) {
          if (!validTrunkName(*name)) {
            v_.fail(*nameNode,
                    "not a valid trunk name: " + quote(*name) + " (1.." +
                        std::to_string(kMaxTrunkNameLength) + " characters of A-Z a-z 0-9 _ . -)");
          } else if (const auto [it, inserted] = nameLines.emplace(*name, lineOf(**nameNode));
                     !inserted) {
            v_.fail(*nameNode, "duplicate trunk name " + quote(*name) +
                                   " (first defined at line " + std::to_string(it->second) +
                                   ")");
          }
          trunk.name = *name;
        }
      }
      if (const auto prefixNode = v_.required(item, "source_prefixes")) {
        if (const auto texts = v_.strings(*prefixNode)) {
          if ((*prefixNode)->getLength() == 0) {
            v_.fail(*prefixNode, "needs at least one prefix: calls are matched by source address");
          }
          for (const auto& [node, text] : *texts) {
            const auto parsed = prefix(node, text);
            if (!parsed) continue;
            const PrefixKey key{parsed->address.family, parsed->address.bytes, parsed->length};
            const auto [it, inserted] =
                prefixes.emplace(key, PrefixUse{&item, trunk.name, node.path});
            if (!inserted) {
              if (it->second.trunk == &item) {
                v_.fail(node, "prefix " + quote(text) + " is listed twice (also " +
                                  it->second.path + ")");
              } else {
                v_.fail(node, "prefix " + quote(text) + " is already used by trunk " +
                                  quote(it->second.name) + " (" + it->second.path +
                                  "); a source prefix must belong to one trunk");
              }
              continue;
            }
            trunk.sourcePrefixes.push_back(*parsed);
          }
        }
      }
      if (const auto dialNode = Validator::member(item, "dial_prefixes")) {
        if (const auto texts = v_.strings(*dialNode)) {
          for (const auto& [node, text] : *texts) {
            if (!validDialPrefix(text)) {
              v_.fail(node, "not a dial prefix: " + quote(text) + " (0.." +
                                std::to_string(kMaxDialPrefixLength) +
                                " characters of 0-9 A-Z a-z + * # . - _)");
              continue;
            }
            const auto [it, inserted] =
                dialPrefixes.emplace(text, PrefixUse{&item, trunk.name, node.path});
            if (!inserted) {
              if (it->second.trunk == &item) {
                v_.fail(node, "dial prefix " + quote(text) + " is listed twice (also " +
                                  it->second.path + ")");
              } else {
                v_.fail(node, "dial prefix " + quote(text) + " is already used by trunk " +
                                  quote(it->second.name) + " (" + it->second.path +
                                  "); a dial prefix must route to one trunk");
              }
              continue;
            }
            trunk.dialPrefixes.push_back(text);
          }
        }
      }
      if (const auto targetNode = v_.required(item, "target")) {
        if (auto target = parseHostPort(*targetNode)) {
          trunk.target = std::move(*target);
        }
      }
      v_.readInteger(item, "max_calls", 1, 1000000, trunk.maxConcurrentCalls);
      if (const auto rateNode = Validator::member(item, "max_calls_per_second")) {
        if (const auto rate = v_.number(*rateNode, 0, true, 100000)) {
          trunk.maxCallsPerSecond = *rate;
        }
      }
      v_.readInteger(item, "call_rate_burst", 0, 1000000, trunk.callRateBurst);
      if (const auto trustedNode = Validator::member(item, "trusted")) {
        if (const auto trusted = v_.boolean(*trustedNode)) {
          trunk.trusted = *trusted;
        }
      }
      if (const auto challengeNode = Validator::member(item, "challenge")) {
        trunk.challenge = parseCredentials(*challengeNode);
      }
      if (const auto answerNode = Validator::member(item, "answer")) {
        trunk.answer = parseCredentials(*answerNode);
      }
      out.push_back(std::move(trunk));
    }
  }

  void parseLines(const Node& root, Lines& out) {
    const auto lines = Validator::member(root, "lines");
    if (!lines || !v_.group(*lines, {"max_calls", "register_expires_s", "max_bindings",
                                     "throttle_registrations", "core_register_expires_s",
                                     "over_limit_status", "register_rate_per_source"})) {
      return;
    }
    v_.readInteger(*lines, "max_calls", 1, 100, out.maxConcurrentCalls);
    v_.readInteger(*lines, "register_expires_s", 10, 86400, out.registerExpiresS);
    v_.readInteger(*lines, "max_bindings", 1, 10000000, out.maxBindings);
    if (const auto throttle = Validator::member(*lines, "throttle_registrations")) {
      if (const auto value = v_.boolean(*throttle)) out.throttleRegistrations = *value;
    }
    v_.readInteger(*lines, "core_register_expires_s", 60, 86400, out.coreRegisterExpiresS);
    readRefusalStatus(*lines, "over_limit_status", out.overLimitStatus);
    v_.readInteger(*lines, "register_rate_per_source", 1, 1000000, out.registerRatePerSource);
  }

  // "ADDRESS:PORT" with a literal IPv4 address or "[IPv6]:PORT"; port 0 = any free port.
  void parseMetrics(const Node& root, std::string& out) {
    const auto metrics = Validator::member(root, "metrics");
    if (!metrics || !v_.group(*metrics, {"listen"})) {
      return;
    }
    const auto listenNode = Validator::member(*metrics, "listen");
    if (!listenNode) {
      return;
    }
    const auto text = v_.string(*listenNode);
    if (!text) {
      return;
    }
    const std::string usage = " (expected ADDRESS:PORT, e.g. \"127.0.0.1:9469\" or \"[::1]:9469\")";
    std::string_view rest = *text;
    std::string_view host;
    bool v6 = false;
    if (!rest.empty() && rest.front() == '[') {
      const std::size_t close = rest.find(']');
      if (close == std::string_view::npos) {
        v_.fail(*listenNode, "missing ']' in " + quote(*text) + usage);
        return;
      }
      host = rest.substr(1, close - 1);
      rest.remove_prefix(close + 1);
      v6 = true;
    } else {
      const std::size_t colon = rest.rfind(':');
      if (colon == std::string_view::npos) {
        v_.fail(*listenNode, "no port in " + quote(*text) + usage);
        return;
      }
      host = rest.substr(0, colon);
      rest.remove_prefix(colon);
      if (host.find(':') != std::string_view::npos) {
        v_.fail(*listenNode, "an IPv6 address needs brackets: " + quote(*text) + usage);
        return;
      }
    }
    const auto address = policy::IpAddress::parse(host);
    if (!address || (address->family == policy::IpFamily::v6) != v6) {
      v_.fail(*listenNode, "not a literal IP address: " + quote(host) + usage);
      return;
    }
    if (rest.size() < 2 || rest.front() != ':' || rest.size() > 6 ||
        !std::all_of(rest.begin() + 1, rest.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      v_.fail(*listenNode, "bad port in " + quote(*text) + usage);
      return;
    }
    const long port = std::strtol(std::string(rest.substr(1)).c_str(), nullptr, 10);
    if (port > 65535) {
      v_.fail(*listenNode, "port out of range: " + std::to_string(port) + " (valid: 0..65535)");
      return;
    }
    out = *text;
  }

  void parseControl(const Node& root, std::string& out) {
    const auto control = Validator::member(root, "control");
    if (!control || !v_.group(*control, {"socket"})) {
      return;
    }
    const auto socketNode = Validator::member(*control, "socket");
    if (!socketNode) {
      return;
    }
    const auto path = v_.string(*socketNode);
    if (!path) {
      return;
    }
    if (path->empty() || path->front() != '/') {
      v_.fail(*socketNode, "must be an absolute path: " + quote(*path));
    } else if (path->size() > kMaxSocketPathLength) {
      v_.fail(*socketNode, "too long for a unix socket: " + std::to_string(path->size()) +
                               " bytes (at most " + std::to_string(kMaxSocketPathLength) + ")");
    } else if (hasControlCharacter(*path)) {
      v_.fail(*socketNode, "control characters are not allowed: " + quote(*path));
    } else {
      out = *path;
    }
  }

  void parseDrain(const Node& root, std::uint32_t& out) {
    const auto drain = Validator::member(root, "drain");
    if (!drain || !v_.group(*drain, {"timeout_s"})) {
      return;
    }
    v_.readInteger(*drain, "timeout_s", 0, 3600, out);
  }

  void parseRefusals(const Node& root, Refusals& out) {
    const auto refusals = Validator::member(root, "refusals");
    if (!refusals ||
        !v_.group(*refusals, {"unknown_source", "over_limit_status", "retry_after_s"})) {
      return;
    }
    readEnum(*refusals, "unknown_source", kUnknownSourceActions, out.unknownSource);
    readRefusalStatus(*refusals, "over_limit_status", out.overLimitStatus);
    v_.readInteger(*refusals, "retry_after_s", 0, 86400, out.retryAfterS);
  }

  // A final failure the caller understands as "not now": 4xx-6xx but 407 (which asks for
  // credentials) and 401.
  void readRefusalStatus(const Node& group, const char* name, std::uint16_t& out) {
    if (const auto node = Validator::member(group, name)) {
      if (const auto value = v_.integer(*node, 400, 699)) {
        if (*value == 401 || *value == 407) {
          v_.fail(*node, "401 and 407 ask for credentials; choose another status");
        } else {
          out = static_cast<std::uint16_t>(*value);
        }
      }
    }
  }

  using ListenKey =
      std::tuple<policy::IpFamily, std::array<std::uint8_t, 16>, std::uint16_t, Transport>;

  Validator& v_;
  std::map<ListenKey, Node> listens_;  // -> the first listen
};

// libconfig 1.5 (Debian's build) stores a decimal or hex integer written without an L
// suffix in 32 bits and silently wraps a larger one ("4294967297" reads as 1). This scan
// follows its scanner (comments, strings, names, floats) to find such literals, and 64-bit
// ones (with L) that do not fit either, so they are refused instead of misread.
struct BadLiteral {
  int line = 0;
  std::string reason;
  long long misread = 0;  // the value libconfig stores instead
};

bool isDigit(char c) { return c >= '0' && c <= '9'; }
bool isHexDigit(char c) { return isDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
bool isNameStart(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '*'; }
bool isNameChar(char c) { return isNameStart(c) || isDigit(c) || c == '-' || c == '_'; }

std::vector<BadLiteral> oversizedIntegers(std::string_view text) {
  std::vector<BadLiteral> bad;
  const std::size_t n = text.size();
  const auto at = [&](std::size_t i) { return i < n ? text[i] : '\0'; };
  int line = 1;
  std::size_t i = 0;
  while (i < n) {
    const char c = text[i];
    if (c == '\n') {
      ++line;
      ++i;
    } else if (c == '/' && at(i + 1) == '*') {
      i += 2;
      while (i < n && !(text[i] == '*' && at(i + 1) == '/')) {
        line += text[i] == '\n' ? 1 : 0;
        ++i;
      }
      i += 2;
    } else if (c == '#' || (c == '/' && at(i + 1) == '/')) {
      while (i < n && text[i] != '\n') {
        ++i;
      }
    } else if (c == '"') {
      ++i;
      while (i < n && text[i] != '"') {
        if (text[i] == '\\' && (at(i + 1) == '"' || at(i + 1) == '\\')) {
          i += 2;
          continue;
        }
        line += text[i] == '\n' ? 1 : 0;
        ++i;
      }
      ++i;
    } else if (isNameStart(c)) {
      while (i < n && isNameChar(text[i])) {
        ++i;
      }
    } else if (isDigit(c) || c == '.' || ((c == '-' || c == '+') && (isDigit(at(i + 1)) ||
                                                                     at(i + 1) == '.'))) {
      const std::size_t start = i;
      const bool negative = c == '-';
      std::size_t j = (c == '-' || c == '+') ? i + 1 : i;
      const std::size_t digits = j;
      while (isDigit(at(j))) {
        ++j;
      }
      const bool exponent =
          (at(j) == 'e' || at(j) == 'E') &&
          (isDigit(at(j + 1)) || ((at(j + 1) == '-' || at(j + 1) == '+') && isDigit(at(j + 2))));
      if (at(j) == '.' || (exponent && j > digits)) {  // a float: skip it
        if (at(j) == '.') {
          ++j;
          while (isDigit(at(j))) {
            ++j;
          }
        }
        if ((at(j) == 'e' || at(j) == 'E') &&
            (isDigit(at(j + 1)) ||
             ((at(j + 1) == '-' || at(j + 1) == '+') && isDigit(at(j + 2))))) {
          j += (at(j + 1) == '-' || at(j + 1) == '+') ? 2 : 1;
          while (isDigit(at(j))) {
            ++j;
          }
        }
        i = j;
        continue;
      }
      // An integer: decimal, or hex when "0x" and a hex digit follow an unsigned 0.
      const bool hex = digits == start && j == digits + 1 && text[digits] == '0' &&
                       (at(j) == 'x' || at(j) == 'X') && isHexDigit(at(j + 1));
      std::size_t end = j;
      unsigned long long magnitude = 0;
      bool overflow = false;
      const unsigned base = hex ? 16 : 10;
      std::size_t k = hex ? j + 1 : digits;
      if (hex) {
        end = j + 1;
        while (isHexDigit(at(end))) {
          ++end;
        }
      }
      for (; k < end; ++k) {
        const char d = text[k];
        const unsigned value = isDigit(d) ? static_cast<unsigned>(d - '0')
                                          : static_cast<unsigned>(lowerAscii(d) - 'a' + 10);
        if (magnitude > (~0ULL - value) / base) {
          overflow = true;
        } else {
          magnitude = magnitude * base + value;
        }
      }
      const bool wide = at(end) == 'L';
      const std::string literal(text.substr(start, end - start));
      end += wide ? (at(end + 1) == 'L' ? 2 : 1) : 0;
      const unsigned long long limit =
          wide ? (negative ? 0x8000000000000000ULL : 0x7fffffffffffffffULL)
               : (negative ? 0x80000000ULL : 0x7fffffffULL);
      if (overflow || magnitude > limit) {
        // What libconfig makes of it: strtol/atoll saturate to 64 bits (strtoul to all
        // ones), and a value without L is then cut to 32 bits.
        unsigned long long bits = 0;
        if (hex) {
          bits = overflow ? ~0ULL : magnitude;
        } else if (overflow || magnitude > (negative ? 0x8000000000000000ULL
                                                     : 0x7fffffffffffffffULL)) {
          bits = negative ? 0x8000000000000000ULL : 0x7fffffffffffffffULL;
        } else {
          bits = negative ? ~magnitude + 1 : magnitude;
        }
        const long long misread = wide ? static_cast<long long>(bits)
                                       : static_cast<std::int32_t>(bits & 0xffffffffULL);
        bad.push_back(
            {line,
             wide ? "integer " + quote(literal + "L") + " does not fit in 64 bits"
                  : "integer " + quote(literal) + " does not fit in 32 bits; write " +
                        quote(literal + "L") + " for a 64-bit integer",
             misread});
      }
      i = end;
    } else {
      ++i;
    }
  }
  return bad;
}

// libconfig reads `@include "file"` lines (at the start of a line, as its scanner does) by
// opening the file, even from readString. A configuration is one file: refuse them.
std::vector<int> includeLines(std::string_view text) {
  std::vector<int> lines;
  int line = 1;
  bool lineStart = true;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (lineStart) {
      std::size_t j = i;
      while (j < text.size() && (text[j] == ' ' || text[j] == '\t')) {
        ++j;
      }
      if (text.substr(j, 8) == "@include") {
        j += 8;
        const std::size_t afterKeyword = j;
        while (j < text.size() && (text[j] == ' ' || text[j] == '\t')) {
          ++j;
        }
        if (j > afterKeyword && j < text.size() && text[j] == '"') {
          lines.push_back(line);
        }
      }
    }
    lineStart = text[i] == '\n';
    if (lineStart) {
      ++line;
    }
  }
  return lines;
}

}  // namespace

Config parseConfigText(std::string_view text, const std::string& fileName) {
  Validator validator(fileName);
  if (text.size() > kMaxConfigBytes) {
    validator.failAt(0, "", "file too large: " + std::to_string(text.size()) +
                                " bytes (at most " + std::to_string(kMaxConfigBytes) + ")");
    throw ConfigException(validator.takeErrors());
  }
  if (const std::size_t nul = text.find('\0'); nul != std::string_view::npos) {
    const auto line = 1 + std::count(text.begin(), text.begin() + static_cast<long>(nul), '\n');
    validator.failAt(static_cast<int>(line), "", "contains a NUL byte: not a text file");
    throw ConfigException(validator.takeErrors());
  }
  for (const int line : includeLines(text)) {
    validator.failAt(line, "",
                     "@include is not supported: keep the whole configuration in one file");
  }
  if (validator.failed()) {
    throw ConfigException(validator.takeErrors());
  }
  // Reported here; the validator then stays quiet about the misread values on those lines.
  for (BadLiteral& literal : oversizedIntegers(text)) {
    validator.failAt(literal.line, "", std::move(literal.reason));
    validator.ignoreMisread(literal.line, literal.misread);
  }

  libconfig::Config file;
  file.setAutoConvert(false);
  const std::string terminated(text);
  try {
    file.readString(terminated);
  } catch (const libconfig::ParseException& error) {
    const char* reason = error.getError();
    validator.failAt(error.getLine(), "", reason != nullptr ? reason : "syntax error");
    throw ConfigException(validator.takeErrors());
  } catch (const libconfig::ConfigException& error) {
    validator.failAt(0, "", std::string("cannot parse: ") + error.what());
    throw ConfigException(validator.takeErrors());
  }

  Config config;
  try {
    Parser parser(validator);
    config = parser.parse(file.getRoot());
  } catch (const libconfig::ConfigException& error) {
    // Every access is type-checked first; this is a bug, reported instead of crashing.
    validator.failAt(0, "", std::string("internal error while validating: ") + error.what());
  }
  if (validator.failed()) {
    throw ConfigException(validator.takeErrors());
  }
  return config;
}

Config loadConfigFile(const std::string& path) {
  const auto fail = [&path](const std::string& reason) {
    throw ConfigException({ConfigError{path, 0, "", reason}});
  };
  std::FILE* stream = std::fopen(path.c_str(), "rb");
  if (stream == nullptr) {
    fail(std::string("cannot open the configuration file: ") + std::strerror(errno));
  }
  std::string text;
  std::array<char, 65536> buffer;
  bool tooLarge = false;
  while (true) {
    const std::size_t got = std::fread(buffer.data(), 1, buffer.size(), stream);
    text.append(buffer.data(), got);
    if (text.size() > kMaxConfigBytes) {
      tooLarge = true;
      break;
    }
    if (got < buffer.size()) {
      break;
    }
  }
  const bool readError = std::ferror(stream) != 0;
  const int readErrno = errno;
  std::fclose(stream);
  if (readError) {
    fail(std::string("cannot read the configuration file: ") + std::strerror(readErrno));
  }
  if (tooLarge) {
    fail("the configuration file is larger than " + std::to_string(kMaxConfigBytes) + " bytes");
  }
  return parseConfigText(text, path);
}

}  // namespace sbc::config
