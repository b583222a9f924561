#pragma once
// What a MediaRelay driver is built from; daemon/ translates config::Config into it.

#include <array>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "dataplane/media_relay.h"

namespace sbc::dataplane {

struct RealmMedia {
  policy::IpAddress address;
  std::uint16_t portMin = 10000;  // even
  std::uint16_t portMax = 32767;
  // dpdk driver only: peers outside `onLink` are reached through `gateway` (unset: every
  // peer is on-link). The socket driver leaves routing to the kernel.
  std::optional<policy::IpAddress> gateway{};
  std::vector<policy::IpPrefix> onLink{};
  // dpdk driver only: the 802.1Q VLAN id media of this realm is received with and sent with
  // on its port; 0: untagged.
  std::uint16_t vlan = 0;
};

// socket driver: how datagrams for the relay ports reach its worker.
enum class SocketPorts : std::uint8_t {
  // A bound UDP socket per RTP and per RTCP port: four descriptors per call, counted
  // against RLIMIT_NOFILE. Needs no privilege.
  perPort,
  // One UDP socket per realm; a BPF sk_lookup program steers the realm's whole port range
  // to it, and a raw socket sends with any relay port as the source. A few descriptors in
  // all; needs CAP_BPF + CAP_NET_ADMIN (or CAP_SYS_ADMIN) and CAP_NET_RAW, Linux 5.9 or later.
  skLookup,
};

struct RelaySettings {
  std::array<RealmMedia, kRealmCount> realms;  // indexed by Realm
  std::uint8_t dscp = 46;                      // EF
  std::chrono::milliseconds quarantine{2000};  // a released port rests this long
  std::chrono::milliseconds mediaTimeout{60000};  // 0: never report silence
  SocketPorts socketPorts = SocketPorts::perPort;  // socket driver only
  // socket driver only: a TC program forwards the streams' media inside the kernel once the
  // worker has described them (socket/kernel_forwarding.h); what it does not take reaches the
  // sockets as without it. Needs CAP_BPF + CAP_NET_ADMIN; media addresses on Ethernet-like
  // interfaces (or loopback).
  bool kernelForwarding = false;
  // Attach it as a clsact filter, as on kernels before 6.6, even where TCX links exist
  // (tests of that path).
  bool kernelForwardingAsTcFilter = false;
};

struct DpdkPortSettings {
  std::string device;  // EAL device name
  Realm realm = Realm::access;
};

struct DpdkSettings {
  std::vector<std::string> ealArgs;
  std::vector<DpdkPortSettings> ports;
};

}  // namespace sbc::dataplane
