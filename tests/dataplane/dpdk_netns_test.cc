// DpdkRelay end to end over net_af_packet on veth pairs: real kernel UDP peers in two
// network namespaces (trunk side and core side), ARP and IPv6 neighbour discovery included.
// Root and iproute2 only: skipped otherwise, a failure under CI=true. Namespaces and veths
// carry the test's PID and are removed after each test, also when it fails, and at exit.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <rte_dev.h>
#include <rte_ethdev.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "dataplane/dpdk/dpdk_relay.h"
#include "tests/dataplane/dpdk_test_util.h"
#include "tests/support/test_env.h"

namespace sbc::dataplane {
namespace {

using namespace std::chrono_literals;
using policy::IpAddress;
using policy::IpPrefix;

const std::string kId = std::to_string(getpid());
const std::string kTrunkNs = "sbc" + kId + "t", kCoreNs = "sbc" + kId + "c";
const std::string kTrunkIf = "sbc" + kId + "ta", kTrunkPeerIf = "sbc" + kId + "tb";
const std::string kCoreIf = "sbc" + kId + "ca", kCorePeerIf = "sbc" + kId + "cb";

int sh(const std::string& command) { return std::system((command + " >/dev/null 2>&1").c_str()); }

void removeTopology() {
  sh("ip netns del " + kTrunkNs);
  sh("ip netns del " + kCoreNs);
  sh("ip link del " + kTrunkIf);
  sh("ip link del " + kCoreIf);
}

bool makeSide(const std::string& ns, const std::string& ours, const std::string& peer,
              const std::string& peerAddress) {
  return sh("ip netns add " + ns) == 0 &&
         sh("ip link add " + ours + " type veth peer name " + peer) == 0 &&
         sh("ip link set " + peer + " netns " + ns) == 0 &&
         sh("sysctl -w net.ipv6.conf." + ours + ".disable_ipv6=1") == 0 &&
         sh("ip link set " + ours + " up") == 0 &&
         sh("ip netns exec " + ns + " ip addr add " + peerAddress + "/24 dev " + peer) == 0 &&
         sh("ip netns exec " + ns + " ip link set " + peer + " up") == 0 &&
         sh("ip netns exec " + ns + " ip link set lo up") == 0 &&
         sh("ip netns exec " + ns + " ethtool -K " + peer + " tx off") == 0;
}

// An IPv6 address on a namespace's interface, usable at once: no duplicate address
// detection on it (nor on the link-local address the kernel gives the interface).
bool addIpv6(const std::string& ns, const std::string& interface, const std::string& address) {
  return sh("ip netns exec " + ns + " sysctl -w net.ipv6.conf." + interface + ".accept_dad=0") == 0 &&
         sh("ip netns exec " + ns + " ip -6 addr add " + address + " dev " + interface + " nodad") == 0;
}

// What a shell command prints (stdout).
std::string output(const std::string& command) {
  std::string text;
  FILE* pipe = popen((command + " 2>/dev/null").c_str(), "r");
  if (pipe == nullptr) return text;
  char buffer[256];
  while (fgets(buffer, sizeof(buffer), pipe) != nullptr) text += buffer;
  pclose(pipe);
  return text;
}

std::string macOf(const std::string& interface) {
  std::ifstream file("/sys/class/net/" + interface + "/address");
  std::string mac;
  std::getline(file, mac);
  return mac;
}

// Any literal address as a socket address.
socklen_t socketAddress(const std::string& address, std::uint16_t port, sockaddr_storage& out) {
  out = {};
  if (address.find(':') != std::string::npos) {
    auto& sa = reinterpret_cast<sockaddr_in6&>(out);
    sa.sin6_family = AF_INET6;
    sa.sin6_port = htons(port);
    inet_pton(AF_INET6, address.c_str(), &sa.sin6_addr);
    return sizeof(sa);
  }
  auto& sa = reinterpret_cast<sockaddr_in&>(out);
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  inet_pton(AF_INET, address.c_str(), &sa.sin_addr);
  return sizeof(sa);
}

// A UDP socket inside a namespace (made by a thread that entered it; the socket stays there).
int socketIn(const std::string& ns, const std::string& address, std::uint16_t port) {
  int fd = -1;
  std::thread([&] {
    const int nsFd = open(("/var/run/netns/" + ns).c_str(), O_RDONLY | O_CLOEXEC);
    if (nsFd < 0 || setns(nsFd, CLONE_NEWNET) != 0) return;
    close(nsFd);
    sockaddr_storage sa;
    const socklen_t len = socketAddress(address, port, sa);
    fd = socket(sa.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (bind(fd, reinterpret_cast<sockaddr*>(&sa), len) != 0) {
      close(fd);
      fd = -1;
    }
  }).join();
  return fd;
}

void sendTo(int fd, const MediaAddress& to, const std::string& payload) {
  sockaddr_storage sa;
  const socklen_t len = socketAddress(to.address.toString(), to.port, sa);
  sendto(fd, payload.data(), payload.size(), 0, reinterpret_cast<sockaddr*>(&sa), len);
}

// The next datagram within `timeout`, with its source.
bool receive(int fd, std::string& payload, std::string& from, std::uint16_t& fromPort,
             std::chrono::milliseconds timeout) {
  pollfd pfd{fd, POLLIN, 0};
  if (poll(&pfd, 1, static_cast<int>(timeout.count())) != 1) return false;
  char buffer[2048];
  sockaddr_storage sa{};
  socklen_t len = sizeof(sa);
  const ssize_t n = recvfrom(fd, buffer, sizeof(buffer), 0, reinterpret_cast<sockaddr*>(&sa), &len);
  if (n < 0) return false;
  payload.assign(buffer, static_cast<std::size_t>(n));
  char text[INET6_ADDRSTRLEN];
  if (sa.ss_family == AF_INET6) {
    const auto& sa6 = reinterpret_cast<const sockaddr_in6&>(sa);
    inet_ntop(AF_INET6, &sa6.sin6_addr, text, sizeof(text));
    fromPort = ntohs(sa6.sin6_port);
  } else {
    const auto& sa4 = reinterpret_cast<const sockaddr_in&>(sa);
    inet_ntop(AF_INET, &sa4.sin_addr, text, sizeof(text));
    fromPort = ntohs(sa4.sin_port);
  }
  from = text;
  return true;
}

// Sends `payload` from `fd` to `to` until a datagram arrives on `at`
// (the first ones may wait for ARP on either side); false after `attempts` tries.
bool sendUntilReceived(int fd, const MediaAddress& to, const std::string& payload, int at,
                       int attempts, std::string& received, std::string& from,
                       std::uint16_t& fromPort) {
  for (int attempt = 0; attempt < attempts; ++attempt) {
    sendTo(fd, to, payload);
    if (receive(at, received, from, fromPort, 100ms)) return true;
  }
  return false;
}

class DpdkNetns : public ::testing::Test {
 protected:
  void SetUp() override {
    if (const std::string missing = dpdk::testing::namespacesUnavailable(); !missing.empty()) {
      if (sbc::test::runningInCi()) FAIL() << missing;
      GTEST_SKIP() << missing;
    }
    static bool registered = false;
    if (!registered) std::atexit(removeTopology);
    registered = true;
    removeTopology();
    ASSERT_TRUE(makeSide(kTrunkNs, kTrunkIf, kTrunkPeerIf, "10.50.0.2"));
    ASSERT_TRUE(makeSide(kCoreNs, kCoreIf, kCorePeerIf, "10.60.0.2"));
    static int serial = 0;
    const std::string n = std::to_string(serial++);
    trunkDev = "net_af_packet_t" + n;
    coreDev = "net_af_packet_c" + n;
    ASSERT_EQ(rte_dev_probe((trunkDev + ",iface=" + kTrunkIf).c_str()), 0);
    ASSERT_EQ(rte_dev_probe((coreDev + ",iface=" + kCoreIf).c_str()), 0);
  }
  void TearDown() override {
    relay.reset();
    for (const std::string& dev : {trunkDev, coreDev}) {
      std::uint16_t id;
      if (!dev.empty() && rte_eth_dev_get_port_by_name(dev.c_str(), &id) == 0) {
        rte_eth_dev_stop(id);
        rte_eth_dev_close(id);
        rte_eal_hotplug_remove("vdev", dev.c_str());
      }
    }
    for (int fd : fds) close(fd);
    removeTopology();
  }
  int track(int fd) {
    fds.push_back(fd);
    return fd;
  }

  // The relay's media addresses and the trunk peer's, in one address family.
  struct Plan {
    std::string accessMedia, coreMedia, trunkPeer, hostPrefix;
  };
  static inline const Plan kIpv4{"10.50.0.1", "10.60.0.1", "10.50.0.2", "/32"};
  static inline const Plan kIpv6{"2001:db8:50::1", "2001:db8:60::1", "2001:db8:50::2", "/128"};

  // A relay on both ports (media addresses of `plan`; `coreRouting` adds the core realm's
  // gateway and on-link prefixes) and one stream between the trunk peer (port 4000) and
  // the core peer `coreAddress`:5000, media allowed from `corePrefix`. Opens both peers'
  // sockets into trunkFd/coreFd.
  std::optional<StreamEndpoints> startCall(const std::string& coreAddress,
                                           const std::string& corePrefix,
                                           const RealmMedia& coreRouting = {},
                                           const Plan& plan = kIpv4) {
    RelaySettings settings;
    settings.realms[0] = {*IpAddress::parse(plan.accessMedia), 30000, 30010};
    settings.realms[1] = {*IpAddress::parse(plan.coreMedia), 40000, 40010};
    settings.realms[1].gateway = coreRouting.gateway;
    settings.realms[1].onLink = coreRouting.onLink;
    settings.mediaTimeout = 0ms;
    DpdkSettings dpdk;
    dpdk.ports = {{trunkDev, Realm::access}, {coreDev, Realm::core}};
    relay = makeDpdkRelay(settings, dpdk);
    trunkFd = track(socketIn(kTrunkNs, plan.trunkPeer, 4000));
    coreFd = track(socketIn(kCoreNs, coreAddress, 5000));
    if (trunkFd < 0 || coreFd < 0) return std::nullopt;
    const auto stream = relay->openStream("trunk");
    if (!stream) return std::nullopt;
    LegMedia a, c;
    a.rtp = MediaAddress{*IpAddress::parse(plan.trunkPeer), 4000};
    a.allowedSources = {*IpPrefix::parse(plan.trunkPeer + plan.hostPrefix)};
    c.rtp = MediaAddress{*IpAddress::parse(coreAddress), 5000};
    c.allowedSources = {*IpPrefix::parse(corePrefix)};
    if (!relay->updateLeg(stream->id, Realm::access, a) ||
        !relay->updateLeg(stream->id, Realm::core, c)) {
      return std::nullopt;
    }
    return stream;
  }

  // Sends `tag` from `fromFd` to the relay's `via` until a datagram reaches `toFd` (the first
  // ones may wait for address resolution on either side): it must be `tag`, from the SBC's
  // media address and port of the other realm (`sbcAddress`, `sbcPort`).
  static void expectCrosses(int fromFd, const MediaAddress& via, const std::string& tag,
                            int toFd, int attempts, const std::string& sbcAddress,
                            std::uint16_t sbcPort, const std::string& failure) {
    std::string payload, from;
    std::uint16_t fromPort = 0;
    ASSERT_TRUE(sendUntilReceived(fromFd, via, tag, toFd, attempts, payload, from, fromPort))
        << failure;
    EXPECT_EQ(payload, tag);
    EXPECT_EQ(from, sbcAddress);
    EXPECT_EQ(fromPort, sbcPort);
  }

  // Once the path is resolved: 20 numbered datagrams reach `toFd` intact and in order.
  static void expectInOrder(int fromFd, const MediaAddress& via, int toFd) {
    std::string payload, from;
    std::uint16_t fromPort = 0;
    while (receive(toFd, payload, from, fromPort, 50ms)) {
    }
    for (int i = 0; i < 20; ++i) sendTo(fromFd, via, "seq-" + std::to_string(i));
    for (int i = 0; i < 20; ++i) {
      ASSERT_TRUE(receive(toFd, payload, from, fromPort, 1000ms)) << i;
      EXPECT_EQ(payload, "seq-" + std::to_string(i));
    }
  }

  // An IPv6 core peer off the DPDK port's link, behind a router: the core namespace plays
  // the router (`gateway` on the link, with a route back to the relay's link) and holds the
  // peer's address 2001:db8:70::2 on its loopback, which its kernel never advertises on the
  // link. Media reaches the peer only if the relay resolves the gateway by ND and sends to
  // its MAC with the peer's address kept; the answer must come back.
  void expectReachesOffLinkIpv6Peer(const std::string& gateway) {
    ASSERT_TRUE(addIpv6(kTrunkNs, kTrunkPeerIf, "2001:db8:50::2/64"));
    ASSERT_TRUE(addIpv6(kCoreNs, kCorePeerIf, gateway + "/64"));
    ASSERT_EQ(sh("ip netns exec " + kCoreNs + " ip -6 route replace 2001:db8:60::/64 dev " +
                 kCorePeerIf), 0);
    ASSERT_EQ(sh("ip netns exec " + kCoreNs + " ip -6 addr add 2001:db8:70::2/128 dev lo"), 0);
    RealmMedia routing;
    routing.gateway = *IpAddress::parse(gateway);
    routing.onLink = {*IpPrefix::parse("2001:db8:60::/64")};
    const auto s = startCall("2001:db8:70::2", "2001:db8:70::2/128", routing, kIpv6);
    ASSERT_TRUE(s);
    ASSERT_NO_FATAL_FAILURE(expectCrosses(trunkFd, s->rtp[0], "rtp-", coreFd, 40,
                                          "2001:db8:60::1", s->rtp[1].port,
                                          "nothing reached the off-link core peer through " +
                                              gateway));
    ASSERT_NO_FATAL_FAILURE(expectCrosses(coreFd, s->rtp[1], "back", trunkFd, 20,
                                          "2001:db8:50::1", s->rtp[0].port,
                                          "the peer's answer did not come back"));
  }

  std::string trunkDev, coreDev;
  std::unique_ptr<DpdkRelay> relay;
  std::vector<int> fds;
  int trunkFd = -1, coreFd = -1;
};

// Real peers: the trunk's kernel resolves the relay's access address by ARP (the relay
// answers), the relay resolves the core peer by ARP, and datagrams arrive intact from the
// SBC's media address and port of each realm, both ways; an intruder's are dropped.
TEST_F(DpdkNetns, ForwardsBetweenKernelPeersWithArp) {
  const auto s = startCall("10.60.0.2", "10.60.0.0/24");
  ASSERT_TRUE(s);
  const int trunk = trunkFd, core = coreFd;

  // The first datagrams may wait for ARP (kernel → relay, then relay → core peer).
  ASSERT_NO_FATAL_FAILURE(expectCrosses(trunk, s->rtp[0], "rtp-", core, 40, "10.60.0.1",
                                        s->rtp[1].port, "nothing reached the core peer"));
  EXPECT_GE(relay->dpdkStats().arpReplied, 1u);
  EXPECT_GE(relay->dpdkStats().arpLearnt, 1u);
  ASSERT_NO_FATAL_FAILURE(expectInOrder(trunk, s->rtp[0], core));
  // Back: core → trunk, from the access media address.
  ASSERT_NO_FATAL_FAILURE(expectCrosses(core, s->rtp[1], "back", trunk, 20, "10.50.0.1",
                                        s->rtp[0].port, "nothing came back to the trunk"));
  // An intruder inside the trunk's namespace but outside the allowed /32.
  std::string payload, from;
  std::uint16_t fromPort = 0;
  ASSERT_EQ(sh("ip netns exec " + kTrunkNs + " ip addr add 10.50.0.9/24 dev " + kTrunkPeerIf), 0);
  const int intruder = track(socketIn(kTrunkNs, "10.50.0.9", 4000));
  ASSERT_GE(intruder, 0);
  const auto droppedBefore = relay->stats().dropped[static_cast<std::size_t>(DropReason::sourceNotAllowed)];
  for (int i = 0; i < 5; ++i) sendTo(intruder, s->rtp[0], "evil");
  EXPECT_FALSE(receive(core, payload, from, fromPort, 300ms));
  EXPECT_GE(relay->stats().dropped[static_cast<std::size_t>(DropReason::sourceNotAllowed)],
            droppedBefore + 1);
}

// A core peer off the DPDK port's link, behind a router: the core namespace plays the
// router (10.60.0.254 on the link) and holds the peer's address 10.70.0.2 on its loopback.
// It answers ARP only for addresses of the interface asked on (arp_ignore=1), so the peer's
// own address is never resolvable on the link: media reaches it only if the relay sends it
// to the gateway's MAC, with the peer's IP address kept.
TEST_F(DpdkNetns, ReachesOffLinkPeerThroughGateway) {
  ASSERT_EQ(sh("ip netns exec " + kCoreNs + " ip addr add 10.60.0.254/24 dev " + kCorePeerIf), 0);
  ASSERT_EQ(sh("ip netns exec " + kCoreNs + " ip addr add 10.70.0.2/32 dev lo"), 0);
  ASSERT_EQ(sh("ip netns exec " + kCoreNs + " sysctl -w net.ipv4.conf.all.arp_ignore=1"), 0);
  ASSERT_EQ(sh("ip netns exec " + kCoreNs + " sysctl -w net.ipv4.conf." + kCorePeerIf +
               ".arp_ignore=1"), 0);
  RealmMedia routing;
  routing.gateway = *IpAddress::parse("10.60.0.254");
  routing.onLink = {*IpPrefix::parse("10.60.0.0/24")};
  const auto s = startCall("10.70.0.2", "10.70.0.2/32", routing);
  ASSERT_TRUE(s);

  ASSERT_NO_FATAL_FAILURE(expectCrosses(trunkFd, s->rtp[0], "rtp-", coreFd, 40, "10.60.0.1",
                                        s->rtp[1].port,
                                        "nothing reached the off-link core peer"));
  // Back through the router: from the peer's address, to the SBC's core media address.
  ASSERT_NO_FATAL_FAILURE(expectCrosses(coreFd, s->rtp[1], "back", trunkFd, 20, "10.50.0.1",
                                        s->rtp[0].port, "the peer's answer did not come back"));
}

// Proves: IPv6 neighbour discovery both ways with real kernel stacks. The trunk's kernel
// resolves the relay's access address with its own solicitation, which the relay answers
// (its neighbour table then holds the DPDK port's MAC); the relay resolves the core peer
// with a solicitation its kernel answers; datagrams arrive intact from the SBC's media
// address and port of each realm, both ways. The DPDK-driven veths have IPv6 disabled, so
// no kernel answers for the relay. Fails without ND: nothing crosses.
TEST_F(DpdkNetns, ForwardsBetweenKernelPeersWithNeighbourDiscovery) {
  ASSERT_TRUE(addIpv6(kTrunkNs, kTrunkPeerIf, "2001:db8:50::2/64"));
  ASSERT_TRUE(addIpv6(kCoreNs, kCorePeerIf, "2001:db8:60::2/64"));
  const auto s = startCall("2001:db8:60::2", "2001:db8:60::/64", {}, kIpv6);
  ASSERT_TRUE(s);
  ASSERT_NO_FATAL_FAILURE(expectCrosses(trunkFd, s->rtp[0], "rtp-", coreFd, 40,
                                        "2001:db8:60::1", s->rtp[1].port,
                                        "nothing reached the core peer"));
  const std::string neighbour = output("ip netns exec " + kTrunkNs + " ip -6 neigh show " +
                                       "2001:db8:50::1 dev " + kTrunkPeerIf);
  EXPECT_NE(neighbour.find("lladdr " + macOf(kTrunkIf)), std::string::npos) << neighbour;
  const DpdkStats nd = relay->dpdkStats();
  EXPECT_GE(nd.ndAnswered, 1u);
  EXPECT_GE(nd.ndRequested, 1u);
  EXPECT_GE(nd.ndLearnt, 2u);  // the trunk's solicitation, the core peer's advertisement
  EXPECT_EQ(nd.ndInvalid, 0u);
  ASSERT_NO_FATAL_FAILURE(expectInOrder(trunkFd, s->rtp[0], coreFd));
  // Back: core → trunk, from the access media address (the core's kernel learnt the
  // relay's MAC from its solicitation, or asks itself).
  ASSERT_NO_FATAL_FAILURE(expectCrosses(coreFd, s->rtp[1], "back", trunkFd, 20,
                                        "2001:db8:50::1", s->rtp[0].port,
                                        "nothing came back to the trunk"));
}

// Proves: an IPv6 peer off the link is reached through a global gateway address.
TEST_F(DpdkNetns, ReachesOffLinkIpv6PeerThroughGateway) {
  expectReachesOffLinkIpv6Peer("2001:db8:60::fe");
}

// Proves: the same through a gateway known by its link-local address (as IPv6 routers
// usually are), solicited from the relay's global media address.
TEST_F(DpdkNetns, ReachesOffLinkIpv6PeerThroughLinkLocalGateway) {
  expectReachesOffLinkIpv6Peer("fe80::fe");
}

}  // namespace
}  // namespace sbc::dataplane
