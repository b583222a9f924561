// The shared MediaRelay behaviour suite (relay_behaviour.h) against the dpdk driver: the
// relay drives one end of a veth pair per realm through net_af_packet; the peers are kernel
// UDP sockets on the other ends. The binary runs in its own network namespace
// (dpdk_test_main.cc, SBC_DPDK_TEST_OWN_NETNS), so nothing is seen outside it.
#include <rte_dev.h>
#include <rte_ethdev.h>

#include <net/if.h>
#include <sys/ioctl.h>

#include <cstdlib>
#include <cstring>

#include "dataplane/dpdk/dpdk_relay.h"
#include "tests/dataplane/relay_behaviour.h"

namespace sbc::dataplane::testing {
namespace {

const std::string kId = std::to_string(::getpid());
const std::string kAccessIf = "sbc" + kId + "a", kAccessPeerIf = "sbc" + kId + "b";
const std::string kCoreIf = "sbc" + kId + "c", kCorePeerIf = "sbc" + kId + "d";

int sh(const std::string& command) { return std::system((command + " >/dev/null 2>&1").c_str()); }

// Asked of the kernel in this namespace (/sys/class/net shows the namespace sysfs was
// mounted in, not ours).
rte_ether_addr macOf(const std::string& interface) {
  rte_ether_addr mac{};
  const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  ifreq request{};
  std::strncpy(request.ifr_name, interface.c_str(), IFNAMSIZ - 1);
  if (fd >= 0 && ::ioctl(fd, SIOCGIFHWADDR, &request) == 0)
    std::memcpy(mac.addr_bytes, request.ifr_hwaddr.sa_data, RTE_ETHER_ADDR_LEN);
  if (fd >= 0) ::close(fd);
  return mac;
}

struct Topology {
  bool ok = false;
  rte_ether_addr accessPeerMac{}, corePeerMac{};
};

// Once per process: two veth pairs, the peers' addresses on the kernel ends, af_packet
// ports on the others (no kernel address: only the relay answers for its media addresses).
const Topology& topology() {
  static const Topology topo = [] {
    Topology t;
    const auto side = [](const std::string& ours, const std::string& peer,
                         const std::vector<std::string>& addresses) {
      bool ok = sh("ip link add " + ours + " type veth peer name " + peer) == 0 &&
                sh("sysctl -w net.ipv6.conf." + ours + ".disable_ipv6=1") == 0 &&
                sh("sysctl -w net.ipv6.conf." + peer + ".disable_ipv6=1") == 0 &&
                sh("ip link set " + ours + " up") == 0 && sh("ip link set " + peer + " up") == 0 &&
                sh("ethtool -K " + peer + " tx off") == 0;
      for (const std::string& address : addresses)
        ok = ok && sh("ip addr add " + address + "/24 dev " + peer) == 0;
      return ok;
    };
    t.ok = side(kAccessIf, kAccessPeerIf, {"10.50.0.2", "10.50.0.4", "10.50.0.5"}) &&
           side(kCoreIf, kCorePeerIf, {"10.60.0.3"}) &&
           rte_dev_probe(("net_af_packet_a,iface=" + kAccessIf).c_str()) == 0 &&
           rte_dev_probe(("net_af_packet_c,iface=" + kCoreIf).c_str()) == 0;
    t.accessPeerMac = macOf(kAccessPeerIf);
    t.corePeerMac = macOf(kCorePeerIf);
    // The peers' kernels learn the relay's MACs up front too, so neither side waits for ARP
    // (a slow relay, e.g. under ASan, could otherwise miss the first packets' resolution).
    const auto macText = [](const rte_ether_addr& mac) {
      char text[RTE_ETHER_ADDR_FMT_SIZE];
      rte_ether_format_addr(text, sizeof text, &mac);
      return std::string(text);
    };
    t.ok = t.ok &&
           sh("ip neigh replace 10.50.0.1 lladdr " + macText(macOf(kAccessIf)) + " dev " +
              kAccessPeerIf + " nud permanent") == 0 &&
           sh("ip neigh replace 10.60.0.1 lladdr " + macText(macOf(kCoreIf)) + " dev " +
              kCorePeerIf + " nud permanent") == 0;
    t.ok = t.ok && !rte_is_zero_ether_addr(&t.accessPeerMac) && !rte_is_zero_ether_addr(&t.corePeerMac);
    return t;
  }();
  return topo;
}

std::unique_ptr<MediaRelay> makeOverVeth(const RelaySettings& settings) {
  const Topology& topo = topology();
  if (!topo.ok) throw std::runtime_error("cannot set up the veth topology");
  DpdkSettings dpdk;
  dpdk.ports = {{"net_af_packet_a", Realm::access}, {"net_af_packet_c", Realm::core}};
  auto relay = makeDpdkRelay(settings, dpdk);
  // The peers' MACs are known up front, as a static next hop would be: the suite checks
  // that every packet arrives, and the first ones would otherwise wait for ARP.
  for (const char* peer : {"10.50.0.2", "10.50.0.4", "10.50.0.5"})
    relay->setNeighbour(*policy::IpAddress::parse(peer), topo.accessPeerMac);
  relay->setNeighbour(*policy::IpAddress::parse("10.60.0.3"), topo.corePeerMac);
  return relay;
}

RelayTarget dpdkTarget() {
  RelayTarget target{"dpdk", makeOverVeth};
  target.accessMedia = "10.50.0.1";
  target.coreMedia = "10.60.0.1";
  target.trunk = "10.50.0.2";
  target.core = "10.60.0.3";
  target.intruder = "10.50.0.4";
  target.natted = "10.50.0.5";
  target.latchPrefix = "10.50.0.0/24";
  return target;
}

INSTANTIATE_TEST_SUITE_P(Dpdk, RelayBehaviour, ::testing::Values(dpdkTarget()), relayTargetName);

}  // namespace
}  // namespace sbc::dataplane::testing
