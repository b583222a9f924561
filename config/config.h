#pragma once
// The whole daemon configuration as a plain value. Only config/ reads the file.

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "policy/ip.h"
#include "policy/rules.h"

namespace sbc::config {

enum class Transport : std::uint8_t { udp, tcp };
enum class MediaDriver : std::uint8_t { socket, dpdk };
// socket driver: a bound socket per relay port, or one socket per realm with BPF sk_lookup.
enum class SocketPorts : std::uint8_t { perPort, skLookup };
enum class LogLevel : std::uint8_t { debug, info, warning, error };

const char* toString(Transport transport) noexcept;
const char* toString(MediaDriver driver) noexcept;
const char* toString(SocketPorts ports) noexcept;
const char* toString(LogLevel level) noexcept;

struct SipListen {
  std::string address;  // a literal IPv4/IPv6 address
  std::uint16_t port = 5060;  // 0 = any free port (tests)
  Transport transport = Transport::udp;
  friend bool operator==(const SipListen&, const SipListen&) = default;
};

struct MediaRange {
  std::string address;
  std::uint16_t portMin = 10000;  // even
  std::uint16_t portMax = 32767;
  // For the dpdk driver, which has no routing table: peers outside `onLink` are reached
  // through `gateway` ("" = none: every peer is on-link). The socket driver uses the kernel's.
  std::string gateway;
  std::vector<std::string> onLink;  // prefixes, same family as `address`
  // dpdk driver: the 802.1Q VLAN id of the realm's media on its port (0 = untagged).
  std::uint16_t vlan = 0;
  friend bool operator==(const MediaRange&, const MediaRange&) = default;
};

struct Realm {
  std::vector<SipListen> sip;
  MediaRange media;
};

struct HostPort {
  std::string host;
  std::uint16_t port = 5060;
  Transport transport = Transport::udp;
  friend bool operator==(const HostPort&, const HostPort&) = default;
};

struct Credentials {
  std::string username;
  std::string password;
  std::string realm;  // empty: the SBC's default realm (challenges) / any realm (answers)
};

struct Trunk {
  std::string name;
  std::vector<policy::IpPrefix> sourcePrefixes;
  HostPort target;  // where calls to the trunk go
  // Request-URI user prefixes routing core calls to this trunk (longest across trunks wins).
  std::vector<std::string> dialPrefixes;
  std::optional<Credentials> challenge;  // the SBC challenges the trunk with these
  std::optional<Credentials> answer;     // the SBC answers the trunk's challenges with these
  std::uint32_t maxConcurrentCalls = 0;
  double maxCallsPerSecond = 0;
  std::uint32_t callRateBurst = 0;  // 0 in the file = derived: max(1, ceil(rate))
  bool trusted = false;
};

struct Lines {
  std::uint32_t maxConcurrentCalls = 2;
  std::uint32_t registerExpiresS = 60;  // the longest expiry granted to terminals
  std::uint32_t maxBindings = 100000;
  // Registration throttling: the core is asked for coreRegisterExpiresS and the terminals'
  // refreshes in between are answered by the SBC (signaling/register_relay.h says when).
  bool throttleRegistrations = true;
  std::uint32_t coreRegisterExpiresS = 3600;
  std::uint16_t overLimitStatus = 486;  // a line's call over its concurrent ceiling
  // REGISTERs per second one source address may send (burst: 4 seconds' worth) before the
  // rest are dropped: many terminals behind one NAT address share it.
  std::uint32_t registerRatePerSource = 5;
  friend bool operator==(const Lines&, const Lines&) = default;
};

struct SipTimers {
  std::uint32_t t1Ms = 500;
  std::uint32_t t1x64Ms = 32000;
  std::uint32_t nonceExpiresS = 300;  // lifetime of a digest nonce in a trunk challenge
  std::uint32_t sessionExpiresS = 1800;  // RFC 4028 interval the SBC asks for; 0 = off
  std::uint32_t minSeS = 90;             // the smallest interval the SBC accepts
  // The longest interval the SBC agrees to when a callee's 422 asks for more than it asked.
  std::uint32_t maxSessionExpiresS = 7200;
  // Overload control: new calls get 503 while more than this waits in the SIP UDP receive
  // queues (signaling/overload_guard.h); 0 = never.
  std::uint32_t overloadQueueKib = 4096;
  // SCHED_FIFO priority of the signaling thread (1..99), so that other work on the machine
  // does not delay it; 0 = the normal scheduler.
  std::uint32_t realtimePriority = 0;
  friend bool operator==(const SipTimers&, const SipTimers&) = default;
};

enum class UnknownSourceAction : std::uint8_t { forbidden, drop };

// What the SBC answers when it refuses a request at the door.
struct Refusals {
  // A request from a source in no trunk's prefixes (access) or no next hop (core): 403
  // (rate limited per source) or no response at all.
  UnknownSourceAction unknownSource = UnknownSourceAction::forbidden;
  std::uint16_t overLimitStatus = 503;  // a call over a trunk's concurrent or rate ceiling
  std::uint32_t retryAfterS = 5;        // Retry-After with it (and with drain's 503); 0: none
  friend bool operator==(const Refusals&, const Refusals&) = default;
};

struct DpdkPort {
  std::string device;  // an EAL device name, e.g. "net_af_packet0"
  std::string realm;   // "access" or "core"
  friend bool operator==(const DpdkPort&, const DpdkPort&) = default;
};

struct Dpdk {
  std::vector<std::string> ealArgs;
  std::vector<DpdkPort> ports;
};

struct Media {
  MediaDriver driver = MediaDriver::socket;
  SocketPorts socketPorts = SocketPorts::perPort;
  bool kernelForwarding = false;  // socket driver: a TC program forwards described streams
  std::uint8_t dscp = 46;  // EF
  std::uint32_t quarantineMs = 2000;
  std::uint32_t timeoutS = 60;
  friend bool operator==(const Media&, const Media&) = default;
};

struct Config {
  std::string sourceFile;
  LogLevel logLevel = LogLevel::info;
  Realm access;
  Realm core;
  std::vector<HostPort> coreNextHops;  // priority order; also the registrar for lines
  // A next hop that has not answered an INVITE at all (not even 100 Trying) within this
  // time is passed over for the next one; 0 = only Timer B (t1x64) gives up on a hop.
  std::uint32_t coreFailoverTimeoutMs = 2000;
  Media media;
  Dpdk dpdk;
  std::vector<Trunk> trunks;
  Lines lines;
  SipTimers sipTimers;
  // sip.header_allow_list: headers copied from one leg of a call to the other (nothing else
  // crosses), as written in the file; names are unique case-insensitively.
  std::vector<std::string> headerAllowList;
  // sip.body_types: the content types ("type/subtype", lower case) of bodies that cross
  // between the legs in requests and responses other than an offer/answer's SDP (and of the
  // parts beside that SDP in a multipart body). ISUP by default: SIP-I trunks need it, and
  // it carries numbers, not addresses.
  std::vector<std::string> bodyTypes = {"application/dtmf-relay", "application/dtmf",
                                        "text/plain", "application/isup"};
  std::string metricsListen = "127.0.0.1:9469";
  std::string controlSocket = "/run/sbc/sbcd.sock";
  std::uint32_t drainTimeoutS = 30;
  Refusals refusals;
};

struct ConfigError {
  std::string file;
  int line = 0;  // 0 when the problem has no line (e.g. a missing setting)
  std::string setting;  // dotted path, e.g. "trunks.[2].max_calls"
  std::string reason;
  std::string toString() const;  // "FILE:LINE: SETTING: REASON"
};

class ConfigException : public std::runtime_error {
 public:
  explicit ConfigException(std::vector<ConfigError> errors);
  const std::vector<ConfigError>& errors() const noexcept { return errors_; }

 private:
  std::vector<ConfigError> errors_;
};

// Both throw ConfigException listing every problem found (not only the first).
Config loadConfigFile(const std::string& path);
Config parseConfigText(std::string_view text, const std::string& fileName);

policy::Rules toPolicyRules(const Config& config);

}  // namespace sbc::config
