#pragma once
// Crafted packets and the per-binary EAL environment for the DPDK tests.

#include <arpa/inet.h>
#include <rte_arp.h>
#include <rte_ether.h>
#include <rte_ip.h>
#include <rte_mbuf.h>
#include <rte_eth_ring.h>
#include <rte_ethdev.h>
#include <rte_ring.h>
#include <rte_udp.h>

#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <thread>
#include <cstring>
#include <string>
#include <vector>

namespace sbc::dataplane::dpdk::testing {

// The one mbuf pool of the test binary (EAL is initialised by dpdk_test_main.cc).
rte_mempool* testPool();

// Why a test that makes network namespaces and veths cannot run here, "" when it can. The
// caller fails under CI=true (runningInCi) and skips otherwise.
inline std::string namespacesUnavailable() {
  if (geteuid() != 0) return "needs root (network namespaces, veths, af_packet)";
  if (!std::filesystem::exists("/usr/sbin/ip") && !std::filesystem::exists("/usr/bin/ip"))
    return "iproute2's ip is not installed (tools/install-deps installs it)";
  return "";
}

struct Udp4Spec {
  std::string src = "192.0.2.10";
  std::uint16_t srcPort = 4000;
  std::string dst = "10.0.0.1";
  std::uint16_t dstPort = 10000;
  std::size_t payload = 172;
  bool vlan = false;
  std::uint16_t vlanTci = 42;
  std::uint8_t ttl = 64;
  std::uint8_t tos = 0;
  std::uint8_t proto = IPPROTO_UDP;
  bool udpChecksum = true;
  std::uint16_t fragment = 0;  // host order: flags and offset
};

struct Udp6Spec {
  std::string src = "2001:db8:1::10";
  std::uint16_t srcPort = 4000;
  std::string dst = "2001:db8::1";
  std::uint16_t dstPort = 10000;
  std::size_t payload = 172;
  std::uint8_t hopLimit = 64;
  std::uint8_t nextHeader = IPPROTO_UDP;
};

inline const rte_ether_addr kPeerMac{{0x02, 0, 0, 0, 0, 0x10}};

inline std::uint32_t ip4(const std::string& text) {
  in_addr a{};
  inet_pton(AF_INET, text.c_str(), &a);
  return a.s_addr;
}

inline std::uint8_t payloadByte(std::size_t i) { return static_cast<std::uint8_t>(i * 7 + 3); }

inline rte_mbuf* makeUdp4(const Udp4Spec& spec, rte_mempool* pool = testPool()) {
  rte_mbuf* m = rte_pktmbuf_alloc(pool);
  if (m == nullptr) return nullptr;
  const std::size_t l2 = sizeof(rte_ether_hdr) + (spec.vlan ? sizeof(rte_vlan_hdr) : 0);
  const std::size_t len = l2 + sizeof(rte_ipv4_hdr) + sizeof(rte_udp_hdr) + spec.payload;
  auto* data = reinterpret_cast<std::uint8_t*>(rte_pktmbuf_append(m, static_cast<std::uint16_t>(len)));
  if (data == nullptr) {
    rte_pktmbuf_free(m);
    return nullptr;
  }
  std::memset(data, 0, len);
  auto* eth = reinterpret_cast<rte_ether_hdr*>(data);
  eth->src_addr = kPeerMac;
  eth->dst_addr = rte_ether_addr{{0x02, 0, 0, 0, 0, 0x01}};
  if (spec.vlan) {
    eth->ether_type = htons(RTE_ETHER_TYPE_VLAN);
    auto* vlan = reinterpret_cast<rte_vlan_hdr*>(data + sizeof(rte_ether_hdr));
    vlan->vlan_tci = htons(spec.vlanTci);
    vlan->eth_proto = htons(RTE_ETHER_TYPE_IPV4);
  } else {
    eth->ether_type = htons(RTE_ETHER_TYPE_IPV4);
  }
  auto* ip = reinterpret_cast<rte_ipv4_hdr*>(data + l2);
  ip->version_ihl = 0x45;
  ip->type_of_service = spec.tos;
  ip->total_length = htons(static_cast<std::uint16_t>(len - l2));
  ip->packet_id = htons(7);
  ip->fragment_offset = htons(spec.fragment);
  ip->time_to_live = spec.ttl;
  ip->next_proto_id = spec.proto;
  ip->src_addr = ip4(spec.src);
  ip->dst_addr = ip4(spec.dst);
  ip->hdr_checksum = rte_ipv4_cksum(ip);
  auto* udp = reinterpret_cast<rte_udp_hdr*>(data + l2 + sizeof(rte_ipv4_hdr));
  udp->src_port = htons(spec.srcPort);
  udp->dst_port = htons(spec.dstPort);
  udp->dgram_len = htons(static_cast<std::uint16_t>(sizeof(rte_udp_hdr) + spec.payload));
  auto* payload = data + l2 + sizeof(rte_ipv4_hdr) + sizeof(rte_udp_hdr);
  for (std::size_t i = 0; i < spec.payload; ++i) payload[i] = payloadByte(i);
  if (spec.udpChecksum) udp->dgram_cksum = rte_ipv4_udptcp_cksum(ip, udp);
  return m;
}

inline rte_mbuf* makeUdp6(const Udp6Spec& spec, rte_mempool* pool = testPool()) {
  rte_mbuf* m = rte_pktmbuf_alloc(pool);
  if (m == nullptr) return nullptr;
  const std::size_t l2 = sizeof(rte_ether_hdr);
  const std::size_t len = l2 + sizeof(rte_ipv6_hdr) + sizeof(rte_udp_hdr) + spec.payload;
  auto* data = reinterpret_cast<std::uint8_t*>(rte_pktmbuf_append(m, static_cast<std::uint16_t>(len)));
  if (data == nullptr) {
    rte_pktmbuf_free(m);
    return nullptr;
  }
  std::memset(data, 0, len);
  auto* eth = reinterpret_cast<rte_ether_hdr*>(data);
  eth->src_addr = kPeerMac;
  eth->ether_type = htons(RTE_ETHER_TYPE_IPV6);
  auto* ip = reinterpret_cast<rte_ipv6_hdr*>(data + l2);
  ip->vtc_flow = htonl(0x60000000u | 0x12345u);
  ip->payload_len = htons(static_cast<std::uint16_t>(sizeof(rte_udp_hdr) + spec.payload));
  ip->proto = spec.nextHeader;
  ip->hop_limits = spec.hopLimit;
  inet_pton(AF_INET6, spec.src.c_str(), ip->src_addr);
  inet_pton(AF_INET6, spec.dst.c_str(), ip->dst_addr);
  auto* udp = reinterpret_cast<rte_udp_hdr*>(data + l2 + sizeof(rte_ipv6_hdr));
  udp->src_port = htons(spec.srcPort);
  udp->dst_port = htons(spec.dstPort);
  udp->dgram_len = ip->payload_len;
  auto* payload = data + l2 + sizeof(rte_ipv6_hdr) + sizeof(rte_udp_hdr);
  for (std::size_t i = 0; i < spec.payload; ++i) payload[i] = payloadByte(i);
  udp->dgram_cksum = rte_ipv6_udptcp_cksum(ip, udp);
  return m;
}

inline rte_mbuf* makeArp(std::uint16_t op, const rte_ether_addr& sha, const std::string& sip,
                         const std::string& tip, rte_mempool* pool = testPool()) {
  rte_mbuf* m = rte_pktmbuf_alloc(pool);
  if (m == nullptr) return nullptr;
  const std::size_t len = 60;
  auto* data = reinterpret_cast<std::uint8_t*>(rte_pktmbuf_append(m, len));
  if (data == nullptr) {
    rte_pktmbuf_free(m);
    return nullptr;
  }
  std::memset(data, 0, len);
  auto* eth = reinterpret_cast<rte_ether_hdr*>(data);
  std::memset(&eth->dst_addr, 0xff, 6);
  eth->src_addr = sha;
  eth->ether_type = htons(RTE_ETHER_TYPE_ARP);
  auto* arp = reinterpret_cast<rte_arp_hdr*>(data + sizeof(rte_ether_hdr));
  arp->arp_hardware = htons(RTE_ARP_HRD_ETHER);
  arp->arp_protocol = htons(RTE_ETHER_TYPE_IPV4);
  arp->arp_hlen = 6;
  arp->arp_plen = 4;
  arp->arp_opcode = htons(op);
  arp->arp_data.arp_sha = sha;
  arp->arp_data.arp_sip = ip4(sip);
  arp->arp_data.arp_tip = ip4(tip);
  return m;
}

// `m` with an 802.1Q tag (`tci`: priority, DEI and VLAN id) after its MAC addresses, as a
// switch port in that VLAN sends it; nullptr (and `m` freed) when it cannot be inserted.
inline rte_mbuf* withVlan(rte_mbuf* m, std::uint16_t tci) {
  if (m == nullptr) return nullptr;
  m->vlan_tci = tci;
  if (rte_vlan_insert(&m) != 0) {
    rte_pktmbuf_free(m);
    return nullptr;
  }
  return m;
}

// An IPv6 neighbour discovery message (RFC 4861 4.3 / 4.4) with an optional link-layer
// option (source for a solicitation, target for an advertisement).
struct NdSpec {
  std::uint8_t type = 135;  // 135 solicitation, 136 advertisement
  std::string src = "2001:db8::50";
  std::string dst;  // empty: the target's solicited-node group
  std::string target = "2001:db8::1";
  std::uint8_t hopLimit = 255;
  std::uint8_t code = 0;
  std::uint32_t flags = 0;  // host order: 0x40000000 solicited, 0x20000000 override
  bool linkLayerOption = true;
  std::uint8_t optionUnits = 1;  // the option's length field (units of 8 bytes)
  rte_ether_addr mac = kPeerMac;  // Ethernet source and the option's address
  bool corruptChecksum = false;
  bool vlan = false;
};

inline constexpr std::uint8_t kNdSolicitation = 135;
inline constexpr std::uint8_t kNdAdvertisement = 136;

inline std::array<std::uint8_t, 16> ip6(const std::string& text) {
  std::array<std::uint8_t, 16> a{};
  inet_pton(AF_INET6, text.c_str(), a.data());
  return a;
}

inline rte_mbuf* makeNd(const NdSpec& spec, rte_mempool* pool = testPool()) {
  rte_mbuf* m = rte_pktmbuf_alloc(pool);
  if (m == nullptr) return nullptr;
  const std::size_t l2 = sizeof(rte_ether_hdr) + (spec.vlan ? sizeof(rte_vlan_hdr) : 0);
  const std::size_t icmp = 24 + (spec.linkLayerOption ? 8 : 0);
  const std::size_t len = l2 + sizeof(rte_ipv6_hdr) + icmp;
  auto* data = reinterpret_cast<std::uint8_t*>(rte_pktmbuf_append(m, static_cast<std::uint16_t>(len)));
  if (data == nullptr) {
    rte_pktmbuf_free(m);
    return nullptr;
  }
  std::memset(data, 0, len);
  const auto target = ip6(spec.target);
  std::array<std::uint8_t, 16> dst = ip6(spec.dst);
  if (spec.dst.empty()) {
    dst = ip6("ff02::1:ff00:0");
    std::memcpy(dst.data() + 13, target.data() + 13, 3);
  }
  auto* eth = reinterpret_cast<rte_ether_hdr*>(data);
  eth->src_addr = spec.mac;
  eth->dst_addr = rte_ether_addr{{0x33, 0x33, dst[12], dst[13], dst[14], dst[15]}};
  if (spec.vlan) {
    eth->ether_type = htons(RTE_ETHER_TYPE_VLAN);
    auto* vlan = reinterpret_cast<rte_vlan_hdr*>(data + sizeof(rte_ether_hdr));
    vlan->vlan_tci = htons(42);
    vlan->eth_proto = htons(RTE_ETHER_TYPE_IPV6);
  } else {
    eth->ether_type = htons(RTE_ETHER_TYPE_IPV6);
  }
  auto* ip = reinterpret_cast<rte_ipv6_hdr*>(data + l2);
  ip->vtc_flow = htonl(0x60000000u);
  ip->payload_len = htons(static_cast<std::uint16_t>(icmp));
  ip->proto = IPPROTO_ICMPV6;
  ip->hop_limits = spec.hopLimit;
  inet_pton(AF_INET6, spec.src.c_str(), ip->src_addr);
  std::memcpy(ip->dst_addr, dst.data(), 16);
  std::uint8_t* nd = data + l2 + sizeof(rte_ipv6_hdr);
  nd[0] = spec.type;
  nd[1] = spec.code;
  const std::uint32_t flags = htonl(spec.flags);
  std::memcpy(nd + 4, &flags, 4);
  std::memcpy(nd + 8, target.data(), 16);
  if (spec.linkLayerOption) {
    nd[24] = spec.type == kNdSolicitation ? 1 : 2;
    nd[25] = spec.optionUnits;
    std::memcpy(nd + 26, spec.mac.addr_bytes, 6);
  }
  std::uint16_t checksum = rte_ipv6_udptcp_cksum(ip, nd);
  if (spec.corruptChecksum) checksum = static_cast<std::uint16_t>(checksum ^ 0x0100);
  std::memcpy(nd + 2, &checksum, 2);
  return m;
}

// A port made of two in-process rings: the test injects on RX and captures TX.
class RingPort {
 public:
  RingPort() {
    static int serial = 0;
    const std::string n = std::to_string(serial++);
    name_ = "sbc_rp" + n;
    rx_ = rte_ring_create(("sbc_rx" + n).c_str(), 1024, SOCKET_ID_ANY, RING_F_SP_ENQ | RING_F_SC_DEQ);
    tx_ = rte_ring_create(("sbc_tx" + n).c_str(), 1024, SOCKET_ID_ANY, RING_F_SP_ENQ | RING_F_SC_DEQ);
    port_ = rte_eth_from_rings(name_.c_str(), &rx_, 1, &tx_, 1, SOCKET_ID_ANY);
    char registered[RTE_ETH_NAME_MAX_LEN] = {};
    if (port_ >= 0 && rte_eth_dev_get_name_by_port(static_cast<std::uint16_t>(port_), registered) == 0)
      name_ = registered;  // as the ethdev layer knows it
  }
  bool ok() const { return rx_ != nullptr && tx_ != nullptr && port_ >= 0; }
  const std::string& name() const { return name_; }
  bool inject(rte_mbuf* m) { return m != nullptr && rte_ring_enqueue(rx_, m) == 0; }
  // The next packet the relay sent on this port, within `timeout`.
  rte_mbuf* capture(std::chrono::milliseconds timeout = std::chrono::milliseconds(2000)) {
    const auto end = std::chrono::steady_clock::now() + timeout;
    void* m = nullptr;
    while (rte_ring_dequeue(tx_, &m) != 0) {
      if (std::chrono::steady_clock::now() > end) return nullptr;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return static_cast<rte_mbuf*>(m);
  }
  void drain() {
    void* m = nullptr;
    while (rte_ring_dequeue(tx_, &m) == 0) rte_pktmbuf_free(static_cast<rte_mbuf*>(m));
    while (rte_ring_dequeue(rx_, &m) == 0) rte_pktmbuf_free(static_cast<rte_mbuf*>(m));
  }

 private:
  std::string name_;
  rte_ring* rx_ = nullptr;
  rte_ring* tx_ = nullptr;
  int port_ = -1;
};

inline std::vector<std::uint8_t> bytesOf(const rte_mbuf* m) {
  const auto* data = rte_pktmbuf_mtod(m, const std::uint8_t*);
  return {data, data + rte_pktmbuf_data_len(m)};
}

}  // namespace sbc::dataplane::dpdk::testing
