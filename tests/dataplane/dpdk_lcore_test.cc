// DpdkRelay with an EAL worker lcore (-l 0,1): the worker is launched on lcore 1 with
// rte_eal_remote_launch, forwards, and gives the lcore back when the relay goes.
#include <gtest/gtest.h>
#include <rte_launch.h>
#include <rte_lcore.h>

#include "dataplane/dpdk/dpdk_relay.h"
#include "tests/dataplane/dpdk_test_util.h"

namespace sbc::dataplane {
namespace {

using namespace std::chrono_literals;
using namespace dpdk::testing;
using policy::IpAddress;
using policy::IpPrefix;

// Proves: with a worker lcore the relay runs its worker there (not on a thread), forwards,
// and returns the lcore to WAIT on destruction (a later relay can launch again).
TEST(DpdkLcore, WorkerRunsOnLcoreOneAndForwards) {
  ASSERT_EQ(rte_lcore_count(), 2u);
  for (int round = 0; round < 2; ++round) {
    RingPort access, core;
    ASSERT_TRUE(access.ok() && core.ok());
    RelaySettings settings;
    settings.realms[0] = {*IpAddress::parse("10.0.0.1"), 10000, 10010};
    settings.realms[1] = {*IpAddress::parse("10.1.0.1"), 20000, 20010};
    settings.mediaTimeout = 0ms;
    DpdkSettings dpdk;
    dpdk.ports = {{access.name(), Realm::access}, {core.name(), Realm::core}};
    auto relay = makeDpdkRelay(settings, dpdk);
    EXPECT_EQ(rte_eal_get_lcore_state(1), RUNNING);
    relay->setNeighbour(*IpAddress::parse("198.51.100.20"), rte_ether_addr{{2, 0, 0, 0, 0, 0x20}});
    const auto s = relay->openStream("");
    ASSERT_TRUE(s);
    LegMedia a, c;
    a.rtp = MediaAddress{*IpAddress::parse("192.0.2.10"), 4000};
    a.allowedSources = {*IpPrefix::parse("192.0.2.0/24")};
    c.rtp = MediaAddress{*IpAddress::parse("198.51.100.20"), 5000};
    c.allowedSources = {*IpPrefix::parse("198.51.100.0/24")};
    ASSERT_TRUE(relay->updateLeg(s->id, Realm::access, a));
    ASSERT_TRUE(relay->updateLeg(s->id, Realm::core, c));
    Udp4Spec spec;
    spec.dstPort = s->rtp[0].port;
    ASSERT_TRUE(access.inject(makeUdp4(spec)));
    rte_mbuf* out = core.capture();
    ASSERT_NE(out, nullptr);
    EXPECT_EQ(ntohs(rte_pktmbuf_mtod_offset(out, const rte_udp_hdr*, 34)->src_port), s->rtp[1].port);
    rte_pktmbuf_free(out);
    access.drain();
    core.drain();
    relay.reset();
    EXPECT_EQ(rte_eal_get_lcore_state(1), WAIT);
  }
}

}  // namespace
}  // namespace sbc::dataplane
