#pragma once
// The media plane as signaling sees it. A call's media is one or more streams (one per SDP
// m= line); each stream has one relay endpoint in each realm. An endpoint is an even RTP
// port on the SBC's media address of that realm, RTCP on port + 1 (or the RTP port itself
// with rtcp-mux). A packet that arrives at a stream's endpoint in one realm from an allowed
// source leaves from the stream's endpoint in the other realm, towards that realm's peer.
//
// Every call is made on the signaling thread and never blocks on the media workers.

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "policy/ip.h"

namespace sbc::dataplane {

enum class Realm : std::uint8_t { access = 0, core = 1 };
inline constexpr std::size_t kRealmCount = 2;
constexpr Realm otherRealm(Realm realm) {
  return realm == Realm::access ? Realm::core : Realm::access;
}
const char* toString(Realm realm) noexcept;  // "access", "core"

struct MediaAddress {
  policy::IpAddress address;
  std::uint16_t port = 0;
  friend bool operator==(const MediaAddress&, const MediaAddress&) = default;
};

// What signaling knows about one realm's side of a stream, from that side's SDP.
struct LegMedia {
  // Where that side wants RTP (SDP c= and m=). nullopt: not known yet, or the stream is
  // rejected (port 0): nothing is sent to that side.
  std::optional<MediaAddress> rtp;
  // Where that side wants RTCP (a=rtcp); nullopt: rtp.port + 1.
  std::optional<MediaAddress> rtcp;
  // Both sides negotiated rtcp-mux: RTCP shares the RTP port in both directions.
  bool rtcpMux = false;
  // Media from that side is accepted only from inside these prefixes (the trunk's
  // prefixes, or the prefix a terminal signals from). Empty: nothing is accepted.
  std::vector<policy::IpPrefix> allowedSources;
  // Learn the side's real address and port from its first packet inside allowedSources
  // and send its media there instead of to `rtp` (terminals behind NAT). A later update
  // with latch set starts learning afresh (the terminal moved).
  bool latch = false;
  // The side's media is on hold (sendonly/inactive): its silence is not a media timeout.
  bool silenceExpected = false;
};

using StreamId = std::uint32_t;

struct StreamEndpoints {
  StreamId id = 0;
  std::array<MediaAddress, kRealmCount> rtp;  // the SBC's RTP endpoint, indexed by Realm
};

// Counted per direction, indexed by the realm the packets came from.
struct StreamCounters {
  std::array<std::uint64_t, kRealmCount> packets{};
  std::array<std::uint64_t, kRealmCount> bytes{};
  std::array<std::uint64_t, kRealmCount> dropped{};
};

enum class DropReason : std::uint8_t {
  noFlow,            // no stream owns the destination port
  sourceNotAllowed,  // source outside the allowed prefixes, or not the latched address
  malformed,         // truncated or inconsistent headers
  notUdp,            // not UDP (or not IP) on a media address
  txFull,            // the transmit queue or socket buffer was full
  wrongVlan,         // dpdk: tagged with another VLAN than the realm's (or untagged for a
                     // tagged realm, or tagged for an untagged one)
  count
};
const char* toString(DropReason reason) noexcept;  // "no_flow", "source_not_allowed", ...

// Everything the metrics plane reads at scrape time, summed over workers.
struct MediaStats {
  struct PerLabel {
    std::string label;  // trunk name, or "" for line calls
    std::array<std::uint64_t, kRealmCount> packets{};
    std::array<std::uint64_t, kRealmCount> bytes{};
    std::uint64_t dropped = 0;
  };
  std::array<std::uint64_t, static_cast<std::size_t>(DropReason::count)> dropped{};
  std::vector<PerLabel> labels;
  std::uint64_t flows = 0;  // installed RTP/RTCP flows
  // Packets the socket driver's kernel forwarding sent on (also in the labels' packets);
  // nullopt without it.
  std::optional<std::uint64_t> kernelForwarded;

  // Address resolution by a driver that does its own (dpdk: ARP and IPv6 neighbour
  // discovery on its ports); nullopt for one that leaves it to the kernel (socket).
  struct Neighbours {
    enum Event : std::size_t { answered, requested, learnt, ignored, invalid, eventCount };
    std::array<std::uint64_t, eventCount> arp{};  // no `invalid`: malformed ARP is `malformed`
    std::array<std::uint64_t, eventCount> nd{};
    std::uint64_t unresolved = 0;  // media dropped: the next hop's MAC not known yet
    std::uint64_t entries = 0;     // neighbour table entries in use (a gauge)
  };
  std::optional<Neighbours> neighbours;
};

class MediaRelay {
 public:
  virtual ~MediaRelay() = default;

  // Allocates an endpoint in each realm. `label` names the trunk the stream's counters are
  // kept under ("" for line calls). nullopt when a realm's port range is exhausted, or the
  // driver has no memory left for the stream's flow state (dpdk: DPDK memory).
  virtual std::optional<StreamEndpoints> openStream(std::string_view label) = 0;

  // Sets (or replaces) one realm's side of a stream. False for an unknown stream, or when
  // the driver has no memory for the new flow state (the stream then forwards as before).
  virtual bool updateLeg(StreamId stream, Realm realm, const LegMedia& leg) = 0;

  // Stops forwarding and frees the endpoints. Once the release's grace period has passed no
  // packet is forwarded for the stream; its ports are reused only after the quarantine.
  virtual void closeStream(StreamId stream) = 0;

  virtual std::optional<StreamCounters> streamCounters(StreamId stream) const = 0;

  // Media timeout: a stream none of whose sides expecting media has sent a packet for the
  // configured time is reported once. The descriptor becomes readable when reports wait
  // (signaling registers it with its event loop); takeTimedOut() drains them.
  virtual int timeoutNotifyFd() const = 0;
  virtual std::vector<StreamId> takeTimedOut() = 0;

  virtual MediaStats stats() const = 0;
};

}  // namespace sbc::dataplane
