// The DPDK flow table: control-side bookkeeping, and lock-free reads while the control
// thread adds, changes and removes thousands of streams (RCU reclamation; run under ASan).
#include "dataplane/dpdk/flow_table.h"

#include <gtest/gtest.h>
#include <rte_cycles.h>
#include <rte_malloc.h>
#include <rte_rcu_qsbr.h>

#include <arpa/inet.h>

#include <atomic>
#include <cstring>
#include <string>
#include <memory>
#include <random>
#include <thread>
#include <vector>

#include "dataplane/dpdk/fast_path.h"
#include "tests/dataplane/dpdk_test_util.h"

namespace sbc::dataplane::dpdk {
namespace {

using namespace testing;
using policy::IpAddress;
using policy::IpPrefix;

RelaySettings settings() {
  RelaySettings s;
  s.realms[0] = {*IpAddress::parse("10.0.0.1"), 10000, 19998};
  s.realms[1] = {*IpAddress::parse("10.1.0.1"), 20000, 29998};
  return s;
}

LegMedia leg(const std::string& rtp, std::uint16_t port, const std::string& prefix) {
  LegMedia l;
  l.rtp = MediaAddress{*IpAddress::parse(rtp), port};
  l.allowedSources = {*IpPrefix::parse(prefix)};
  return l;
}

// Ports outside the range, odd overlaps and double installs are refused; flows are counted.
TEST(FlowTable, RefusesBadInstallsAndCountsFlows) {
  FlowTable table(settings(), 1);
  EXPECT_TRUE(table.installStream(1, 0, {10000, 20000}));
  EXPECT_EQ(table.flowCount(), 4u);
  EXPECT_FALSE(table.installStream(1, 0, {10002, 20002})) << "same id";
  EXPECT_FALSE(table.installStream(2, 0, {10000, 20002})) << "port in use";
  EXPECT_FALSE(table.installStream(3, 0, {9998, 20004})) << "below range";
  EXPECT_FALSE(table.installStream(4, 0, {10002, 30000})) << "above range";
  EXPECT_TRUE(table.installStream(5, 0, {19998, 29998})) << "last port, RTCP on max + 1";
  EXPECT_EQ(table.flowCount(), 8u);
  EXPECT_FALSE(table.updateLeg(9, Realm::access, LegMedia{}));
  EXPECT_TRUE(table.removeStream(1));
  EXPECT_FALSE(table.removeStream(1));
  EXPECT_EQ(table.flowCount(), 4u);
  EXPECT_EQ(table.find(0, 10000), nullptr);
  EXPECT_NE(table.find(0, 19999), nullptr);
}

// Flow state lives in DPDK memory. Without any left, a new stream is refused and a leg
// update changes nothing (the stream forwards as it did); once memory is back, both work.
TEST(FlowTable, OutOfDpdkMemoryRefusesChangesAndKeepsWhatForwards) {
  FlowTable table(settings(), 1);
  ASSERT_TRUE(table.installStream(1, 0, {10000, 20000}));
  ASSERT_TRUE(table.updateLeg(1, Realm::access, leg("192.0.2.10", 4000, "192.0.2.0/24")));
  ASSERT_TRUE(table.updateLeg(1, Realm::core, leg("198.51.100.20", 5000, "198.51.100.0/24")));
  const FlowRule* before = table.find(0, 10000);
  ASSERT_NE(before, nullptr);
  std::vector<void*> hog;  // every byte of DPDK memory, in ever smaller pieces
  for (std::size_t size : {std::size_t{1} << 20, std::size_t{1} << 14, std::size_t{256}, std::size_t{64}}) {
    for (int i = 0; i < 100000; ++i) {
      void* p = rte_malloc(nullptr, size, 0);
      if (p == nullptr) break;
      hog.push_back(p);
    }
  }
  ASSERT_EQ(rte_malloc(nullptr, 64, 0), nullptr) << "DPDK memory not exhausted";
  EXPECT_FALSE(table.installStream(2, 0, {10002, 20002}));
  EXPECT_FALSE(table.hasStream(2));
  EXPECT_EQ(table.flowCount(), 4u);
  EXPECT_EQ(table.find(0, 10002), nullptr);
  EXPECT_FALSE(table.updateLeg(1, Realm::core, leg("198.51.100.30", 6000, "198.51.100.0/24")));
  EXPECT_EQ(table.find(0, 10000), before);
  EXPECT_EQ(table.find(0, 10000)->peerPortBe, htons(5000));
  for (void* p : hog) rte_free(p);
  EXPECT_TRUE(table.installStream(2, 0, {10002, 20002}));
  EXPECT_TRUE(table.updateLeg(1, Realm::core, leg("198.51.100.30", 6000, "198.51.100.0/24")));
  EXPECT_EQ(table.find(0, 10000)->peerPortBe, htons(6000));
}

// A worker forwards continuously while the control thread installs, updates and removes
// 5,000 streams: nothing crashes (ASan: no use after free), nothing is forwarded for a
// stream whose removal has passed its grace period, and live streams do forward.
TEST(FlowTable, ConcurrentChangesWhileForwarding) {
  constexpr unsigned kStreams = 5000;
  constexpr unsigned kWindow = 400;
  FlowTable table(settings(), 1);
  NeighbourTable neighbours;
  neighbours.set(toRaw(*IpAddress::parse("198.51.100.20")), 0x020000000020ull);
  FastPathContext ctx;
  ctx.flows = &table;
  ctx.neighbours = &neighbours;
  ctx.portCount = 2;
  ctx.egressPort = {0, 1};
  std::vector<std::atomic<int>> state(kStreams);  // 0 new, 1 installed, 2 removed + graced
  std::atomic<unsigned> frontier{0};
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> forwarded{0}, stale{0}, bursts{0};
  const unsigned before = rte_mempool_avail_count(testPool());

  std::thread worker([&] {
    rte_rcu_qsbr* qs = table.qsbr();
    rte_rcu_qsbr_thread_register(qs, 0);
    rte_rcu_qsbr_thread_online(qs, 0);
    auto counters = std::make_unique<WorkerCounters>(0);
    TxBatch tx;
    std::mt19937 rng(7);
    std::array<rte_mbuf*, 16> burst;
    std::array<unsigned, 16> streamOf;
    std::array<int, 16> stateBefore;
    while (!stop.load(std::memory_order_relaxed)) {
      const unsigned top = frontier.load(std::memory_order_acquire);
      unsigned n = 0;
      for (; n < burst.size(); ++n) {
        const unsigned i = top - std::min(top, static_cast<unsigned>(rng() % kWindow));
        streamOf[n] = i;
        stateBefore[n] = state[i].load(std::memory_order_acquire);
        Udp4Spec spec;
        spec.dstPort = static_cast<std::uint16_t>(10000 + 2 * i);
        spec.payload = 20;
        burst[n] = makeUdp4(spec);
        if (burst[n] == nullptr) break;
      }
      forwardBurst(burst.data(), static_cast<std::uint16_t>(n), 0, ctx, *counters, rte_rdtsc(), tx);
      // Stale: forwarded although its stream had completed removal (grace period passed)
      // before the burst began. A packet's stream is known from its egress port 20000 + 2i.
      for (unsigned k = 0; k < tx.count[1]; ++k) {
        rte_mbuf* m = tx.pkts[1][k];
        const auto* udp = rte_pktmbuf_mtod_offset(m, const rte_udp_hdr*, 34);
        const unsigned i = (ntohs(udp->src_port) - 20000u) / 2;
        for (unsigned s = 0; s < n; ++s)
          if (streamOf[s] == i && stateBefore[s] == 2) {
            stale.fetch_add(1);
            break;
          }
        rte_pktmbuf_free(m);
      }
      forwarded.fetch_add(tx.count[1]);
      tx.count = {};
      bursts.fetch_add(1);
      rte_rcu_qsbr_quiescent(qs, 0);
    }
    rte_rcu_qsbr_thread_offline(qs, 0);
    rte_rcu_qsbr_thread_unregister(qs, 0);
  });

  std::mt19937 rng(11);
  std::vector<unsigned> pendingRemoval;
  for (unsigned i = 0; i < kStreams; ++i) {
    ASSERT_TRUE(table.installStream(i, 0, {static_cast<std::uint16_t>(10000 + 2 * i),
                                           static_cast<std::uint16_t>(20000 + 2 * i)}));
    ASSERT_TRUE(table.updateLeg(i, Realm::access, leg("192.0.2.10", 4000, "192.0.2.0/24")));
    ASSERT_TRUE(table.updateLeg(i, Realm::core, leg("198.51.100.20", 5000, "198.51.100.0/24")));
    state[i].store(1, std::memory_order_release);
    frontier.store(i, std::memory_order_release);
    if (i >= kWindow / 2) {
      const unsigned victim = i - kWindow / 2;
      LegMedia again = leg("192.0.2.10", 4000, "192.0.2.0/24");
      again.latch = (rng() & 1) != 0;
      ASSERT_TRUE(table.updateLeg(victim, Realm::access, again));  // retires rules
      ASSERT_TRUE(table.removeStream(victim));
      pendingRemoval.push_back(victim);
    }
    if (pendingRemoval.size() == 50) {
      table.synchronize();  // the worker has passed a quiescent state: removals complete
      for (unsigned v : pendingRemoval) state[v].store(2, std::memory_order_release);
      pendingRemoval.clear();
    }
    table.reclaim();
  }
  stop = true;
  worker.join();
  EXPECT_EQ(stale.load(), 0u);
  EXPECT_GT(forwarded.load(), 0u);
  EXPECT_GT(bursts.load(), 10u);
  EXPECT_EQ(rte_mempool_avail_count(testPool()), before);
}

// Proves: a neighbour slot whose last rule is gone is not reused while a worker could still
// hold it (an RCU reader online that has not passed a quiescent state since): an address
// whose probe chain starts at that slot is placed elsewhere, and the released address is
// no longer found. Once the reader passes a quiescent state the slot is a tombstone the
// next claim on that chain reuses. Fails if release() frees the slot at once.
TEST(FlowTable, ReleasedNeighbourSlotWaitsForGracePeriod) {
  NeighbourTable neighbours;  // outlives the flow table
  FlowTable table(settings(), 1);
  table.setNeighbours(&neighbours);
  rte_rcu_qsbr* qs = table.qsbr();
  rte_rcu_qsbr_thread_register(qs, 0);
  rte_rcu_qsbr_thread_online(qs, 0);  // a worker that may hold any rule it has loaded

  const RawAddress peer = toRaw(*IpAddress::parse("198.51.100.77"));
  ASSERT_TRUE(table.installStream(1, 0, {10000, 20000}));
  ASSERT_TRUE(table.updateLeg(1, Realm::core, leg("198.51.100.77", 5000, "198.51.100.0/24")));
  const FlowRule* rule = table.find(0, 10000);
  ASSERT_NE(rule, nullptr);
  const NeighbourTable::Slot* held = rule->peerNeighbour;  // what the worker would hold
  ASSERT_NE(held, nullptr);
  EXPECT_EQ(held->references, 2u) << "the RTP and the RTCP rule";
  EXPECT_EQ(neighbours.entries(), 1u);
  const std::size_t index = static_cast<std::size_t>(held - &neighbours.at(0));

  ASSERT_TRUE(table.removeStream(1));
  table.reclaim();
  EXPECT_EQ(neighbours.find(peer), nullptr) << "released: no longer found";
  EXPECT_EQ(neighbours.entries(), 0u);
  EXPECT_EQ(held->state.load(), NeighbourTable::kRetiring);
  EXPECT_TRUE(held->address == peer) << "untouched while a reader may hold it";

  // Addresses whose chains start at the held slot.
  std::vector<RawAddress> sameHome;
  for (std::uint32_t i = 1; sameHome.size() < 2 && i < (1u << 24); ++i) {
    RawAddress a;
    const std::uint32_t ip = htonl(0x0a000000u | i);  // 10.x.y.z
    std::memcpy(a.bytes.data(), &ip, 4);
    if (NeighbourTable::home(a) == index) sameHome.push_back(a);
  }
  ASSERT_EQ(sameHome.size(), 2u);
  const NeighbourTable::Slot* during = neighbours.claim(sameHome[0]);
  ASSERT_NE(during, nullptr);
  EXPECT_NE(during, held) << "reused before the grace period";

  rte_rcu_qsbr_quiescent(qs, 0);
  table.reclaim();
  EXPECT_EQ(held->state.load(), NeighbourTable::kTombstone);
  EXPECT_EQ(neighbours.claim(sameHome[1]), held) << "the tombstone is reused";
  EXPECT_EQ(neighbours.find(sameHome[0]), during) << "found past the reused slot";
  rte_rcu_qsbr_thread_offline(qs, 0);
  rte_rcu_qsbr_thread_unregister(qs, 0);
}

// Proves: calls naming ever-new on-link peers in SDP (three times the table's 65,536
// slots) do not fill the neighbour table: every ended call's slot is freed after the grace
// period and reused, the entry count goes back to the pinned ones (a static neighbour and
// the gateway), and a new call's peer still gets a slot. Fails without reference counts
// (the table fills after about 60,000 peers and claim returns nullptr).
TEST(FlowTable, NeighbourSlotsOfEndedCallsAreReused) {
  NeighbourTable neighbours;
  RelaySettings s = settings();
  s.realms[1].gateway = *IpAddress::parse("10.1.0.254");
  s.realms[1].onLink = {*IpPrefix::parse("100.64.0.0/10"), *IpPrefix::parse("10.1.0.0/16")};
  FlowTable table(s, 1);
  table.setNeighbours(&neighbours);
  neighbours.set(toRaw(*IpAddress::parse("192.0.2.1")), 0x020000000001ull);
  const std::size_t pinned = neighbours.entries();
  EXPECT_EQ(pinned, 2u) << "the static neighbour and the core gateway";
  for (std::uint32_t call = 0; call < 3 * NeighbourTable::kSlots; ++call) {
    const auto id = static_cast<StreamId>(call + 1);
    ASSERT_TRUE(table.installStream(id, 0, {10000, 20000}));
    const std::uint32_t host = 0x64400000u + call;  // 100.64.0.0/10: on the core link
    const std::string peer = std::to_string(host >> 24) + "." + std::to_string((host >> 16) & 255) +
                             "." + std::to_string((host >> 8) & 255) + "." + std::to_string(host & 255);
    ASSERT_TRUE(table.updateLeg(id, Realm::core, leg(peer, 5000, "100.64.0.0/10")));
    ASSERT_NE(table.find(0, 10000)->peerNeighbour, nullptr) << "call " << call << " to " << peer;
    ASSERT_TRUE(table.removeStream(id));
    table.reclaim();  // no reader online: the grace period is over at once
  }
  EXPECT_EQ(neighbours.entries(), pinned);
  // Off-link peers share the pinned gateway's slot, which outlives their calls.
  ASSERT_TRUE(table.installStream(1, 0, {10000, 20000}));
  ASSERT_TRUE(table.updateLeg(1, Realm::core, leg("203.0.113.9", 5000, "203.0.113.0/24")));
  const NeighbourTable::Slot* gateway = table.find(0, 10000)->peerNeighbour;
  ASSERT_NE(gateway, nullptr);
  EXPECT_TRUE(gateway->address == toRaw(*IpAddress::parse("10.1.0.254")));
  ASSERT_TRUE(table.removeStream(1));
  table.reclaim();
  EXPECT_EQ(neighbours.find(toRaw(*IpAddress::parse("10.1.0.254"))), gateway);
  EXPECT_EQ(neighbours.entries(), pinned);
}

}  // namespace
}  // namespace sbc::dataplane::dpdk
