// Fast-path cost of the DPDK media relay (a benchmark, not a test): cycles per packet over
// an in-process net_ring port (rte_eth_from_rings), crafted RTP packets (172-byte payload)
// spread at random over 10,000 flows. The timed region is rx_burst → forwardBurst →
// tx_burst → RCU quiescent report, exactly as a worker loop does it. The ring is refilled
// and drained outside the timed region.
//
// Also counted over the timed region: heap allocations (this binary interposes malloc,
// calloc, realloc, free, memalign, posix_memalign, aligned_alloc: operator new goes through
// them) and — under strace — the thread's system calls: the timed thread calls getppid()
// right before and right after each timed region as markers, and
// tools/bench_fast_path.sh counts the syscalls strace saw on that thread between them.
//
// Usage: bench_fast_path [runs=5] [rounds=100] [packets per round=8192] [flows=10000]
//                        [rings] [huge] [latch]

#include <rte_cycles.h>
#include <rte_eth_ring.h>
#include <rte_ethdev.h>
#include <rte_rcu_qsbr.h>
#include <rte_ring.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "dataplane/dpdk/eal.h"
#include "dataplane/dpdk/fast_path.h"
#include "dataplane/dpdk/flow_table.h"

// ---- allocation counter -------------------------------------------------------------
extern "C" {
void* __libc_malloc(size_t);
void* __libc_calloc(size_t, size_t);
void* __libc_realloc(void*, size_t);
void __libc_free(void*);
void* __libc_memalign(size_t, size_t);
}
namespace {
std::atomic<bool> counting{false};
std::atomic<unsigned long> allocations{0};
inline void countOne() {
  if (counting.load(std::memory_order_relaxed)) allocations.fetch_add(1, std::memory_order_relaxed);
}
}  // namespace
extern "C" {
void* malloc(size_t n) {
  countOne();
  return __libc_malloc(n);
}
void* calloc(size_t n, size_t size) {
  countOne();
  return __libc_calloc(n, size);
}
void* realloc(void* p, size_t n) {
  countOne();
  return __libc_realloc(p, n);
}
void free(void* p) {
  if (p != nullptr) countOne();
  __libc_free(p);
}
void* memalign(size_t alignment, size_t n) {
  countOne();
  return __libc_memalign(alignment, n);
}
void* aligned_alloc(size_t alignment, size_t n) {
  countOne();
  return __libc_memalign(alignment, n);
}
int posix_memalign(void** out, size_t alignment, size_t n) {
  countOne();
  void* p = __libc_memalign(alignment, n);
  if (p == nullptr) return ENOMEM;
  *out = p;
  return 0;
}
}

namespace {

using namespace sbc::dataplane;
using namespace sbc::dataplane::dpdk;
using sbc::policy::IpAddress;
using sbc::policy::IpPrefix;

unsigned kFlows = 10000;
constexpr unsigned kPayload = 172;
constexpr unsigned kFrame = 14 + 20 + 8 + kPayload;

// RTP of one flow: from its access peer to the SBC's access port, or with `fromCore`
// from its core peer to the SBC's core port.
std::vector<std::uint8_t> frameFor(unsigned flow, bool fromCore = false) {
  std::vector<std::uint8_t> f(kFrame, 0);
  auto* eth = reinterpret_cast<rte_ether_hdr*>(f.data());
  eth->src_addr = rte_ether_addr{{0x02, 0, 0, 0, 0, 0x10}};
  eth->dst_addr = rte_ether_addr{{0x02, 0, 0, 0, 0, 0x01}};
  eth->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
  auto* ip = reinterpret_cast<rte_ipv4_hdr*>(f.data() + 14);
  ip->version_ihl = 0x45;
  ip->total_length = rte_cpu_to_be_16(20 + 8 + kPayload);
  ip->time_to_live = 64;
  ip->next_proto_id = 17;
  ip->src_addr = fromCore ? rte_cpu_to_be_32(0xC6336400u | (1 + flow % 16))   // 198.51.100.x
                          : rte_cpu_to_be_32(0xC0000200u | (1 + flow % 200));  // 192.0.2.x
  ip->dst_addr = rte_cpu_to_be_32(fromCore ? 0x0A010001u : 0x0A000001u);     // 10.1.0.1, 10.0.0.1
  ip->hdr_checksum = rte_ipv4_cksum(ip);
  auto* udp = reinterpret_cast<rte_udp_hdr*>(f.data() + 34);
  udp->src_port = rte_cpu_to_be_16(
      static_cast<std::uint16_t>(fromCore ? 20000 + 2 * (flow % 5000) : 16384 + flow));
  udp->dst_port = rte_cpu_to_be_16(static_cast<std::uint16_t>((fromCore ? 40000 : 10000) + 2 * flow));
  udp->dgram_len = rte_cpu_to_be_16(8 + kPayload);
  std::uint8_t* rtp = f.data() + 42;
  rtp[0] = 0x80;
  rtp[1] = 0;  // PCMU
  for (unsigned i = 12; i < kPayload; ++i) rtp[i] = static_cast<std::uint8_t>(0xff - i);
  udp->dgram_cksum = rte_ipv4_udptcp_cksum(ip, udp);
  return f;
}

// This thread's CPU time in ns (a system call: read outside the syscall markers).
std::uint64_t threadCpuNs() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<std::uint64_t>(ts.tv_nsec);
}

}  // namespace

int main(int argc, char** argv) {
  const unsigned runs = argc > 1 ? static_cast<unsigned>(std::atoi(argv[1])) : 5;
  const unsigned rounds = argc > 2 ? static_cast<unsigned>(std::atoi(argv[2])) : 100;
  const unsigned perRound = argc > 3 ? static_cast<unsigned>(std::atoi(argv[3])) : 8192;
  if (argc > 4) kFlows = std::min(10000u, static_cast<unsigned>(std::atoi(argv[4])));
  // Words after the numbers: "rings": rx_burst → tx_burst only (what the port costs
  // without the fast path); "huge": EAL memory (mbufs and the flow state) in 2 MiB
  // hugepages, as in production, instead of --no-huge's 4 KiB pages.
  // "latch": the access side latches (a subscriber line behind NAT) instead of being a
  // trunk's prefixes: its packets also read their flow's latched source. "reverse": the
  // packets come from the core side instead; with "latch", they go to the access side's
  // latched address (each flow's latch is learnt from one access packet before timing).
  bool ringsOnly = false, huge = false, latch = false, reverse = false;
  for (int i = 5; i < argc; ++i) {
    const std::string word = argv[i];
    ringsOnly = ringsOnly || word == "rings";
    huge = huge || word == "huge";
    latch = latch || word == "latch";
    reverse = reverse || word == "reverse";
  }
  const std::string prefix = "sbc-bench-" + std::to_string(getpid());
  std::string error;
  std::vector<std::string> eal{"-m", "256", "--no-pci", "--no-telemetry", "--file-prefix=" + prefix,
                               "-l", "0", "--log-level=lib.eal:error"};
  // --in-memory: hugepages without files under /dev/hugepages (nothing left behind).
  if (huge) {
    eal.push_back("--in-memory");
  } else {
    eal.push_back("--no-huge");
    eal.push_back("--no-shconf");
  }
  if (!ensureEal(eal, &error)) {
    std::fprintf(stderr, "%s\n", error.c_str());
    return 1;
  }
  rte_mempool* pool = rte_pktmbuf_pool_create("bench_pool", 16383, 256, 0,
                                              RTE_MBUF_DEFAULT_BUF_SIZE, SOCKET_ID_ANY);
  rte_ring* rxRing = rte_ring_create("bench_rx", 16384, SOCKET_ID_ANY, RING_F_SP_ENQ | RING_F_SC_DEQ);
  rte_ring* txRing = rte_ring_create("bench_tx", 16384, SOCKET_ID_ANY, RING_F_SP_ENQ | RING_F_SC_DEQ);
  if (pool == nullptr || rxRing == nullptr || txRing == nullptr) {
    std::fprintf(stderr, "no DPDK memory for the pool or rings\n");
    return 1;
  }
  int port = rte_eth_from_rings("bench_ring0", &rxRing, 1, &txRing, 1, SOCKET_ID_ANY);
  rte_eth_conf conf{};
  if (port < 0 || rte_eth_dev_configure(static_cast<std::uint16_t>(port), 1, 1, &conf) != 0 ||
      rte_eth_rx_queue_setup(static_cast<std::uint16_t>(port), 0, 1024, SOCKET_ID_ANY, nullptr, pool) != 0 ||
      rte_eth_tx_queue_setup(static_cast<std::uint16_t>(port), 0, 1024, SOCKET_ID_ANY, nullptr) != 0 ||
      rte_eth_dev_start(static_cast<std::uint16_t>(port)) != 0) {
    std::fprintf(stderr, "cannot set up the ring port\n");
    return 1;
  }
  const auto portId = static_cast<std::uint16_t>(port);

  RelaySettings settings;
  settings.realms[0] = {*IpAddress::parse("10.0.0.1"), 10000, 39998};
  settings.realms[1] = {*IpAddress::parse("10.1.0.1"), 40000, 59998};
  // The access peers (trunks' PBXs, lines' NATs) are off-link, behind a router.
  settings.realms[0].gateway = *IpAddress::parse("10.0.0.254");
  settings.realms[0].onLink = {*IpPrefix::parse("10.0.0.0/24")};
  FlowTable table(settings, 1);
  NeighbourTable neighbours;
  table.setNeighbours(&neighbours);
  for (unsigned i = 0; i < kFlows; ++i) {
    const std::uint16_t a = static_cast<std::uint16_t>(10000 + 2 * i);
    const std::uint16_t c = static_cast<std::uint16_t>(40000 + 2 * i);
    table.installStream(i, static_cast<std::uint16_t>(i % 50), {a, c});
    LegMedia access;
    access.rtp = MediaAddress{*IpAddress::parse("192.0.2.1"), static_cast<std::uint16_t>(16384 + i)};
    access.allowedSources = {*IpPrefix::parse("203.0.113.0/24"), *IpPrefix::parse("192.0.2.0/24")};
    access.latch = latch;
    LegMedia core;
    const std::string peer = "198.51.100." + std::to_string(1 + i % 16);
    core.rtp = MediaAddress{*IpAddress::parse(peer), static_cast<std::uint16_t>(20000 + 2 * (i % 5000))};
    core.allowedSources = {*IpPrefix::parse("198.51.100.0/24")};
    table.updateLeg(i, Realm::access, access);
    table.updateLeg(i, Realm::core, core);
  }
  for (unsigned h = 1; h <= 16; ++h)
    neighbours.set(toRaw(*IpAddress::parse("198.51.100." + std::to_string(h))), 0x200000000002ull + h);
  table.synchronize();

  FastPathContext ctx;
  ctx.flows = &table;
  ctx.neighbours = &neighbours;
  ctx.portCount = 1;
  ctx.egressPort = {0, 0};
  rte_eth_macaddr_get(portId, &ctx.portMac[0]);
  ctx.arpPool = pool;
  ctx.arpRetryCycles = rte_get_tsc_hz();
  auto counters = std::make_unique<WorkerCounters>(0);
  rte_rcu_qsbr* qs = table.qsbr();
  rte_rcu_qsbr_thread_register(qs, 0);
  rte_rcu_qsbr_thread_online(qs, 0);

  std::vector<std::vector<std::uint8_t>> frames;
  for (unsigned i = 0; i < kFlows; ++i) frames.push_back(frameFor(i, reverse));
  neighbours.set(toRaw(*IpAddress::parse("10.0.0.254")), 0x2000000000feull);
  if (reverse && latch) {
    // One packet of each flow from its access peer latches its address.
    for (unsigned i = 0; i < kFlows; ++i) {
      rte_mbuf* m = rte_pktmbuf_alloc(pool);
      if (m == nullptr) return 1;
      const auto f = frameFor(i);
      std::memcpy(rte_pktmbuf_append(m, kFrame), f.data(), kFrame);
      TxBatch primed;
      forwardBurst(&m, 1, 0, ctx, *counters, rte_rdtsc(), primed);
      rte_pktmbuf_free_bulk(primed.pkts[0].data(), primed.count[0]);
    }
    rte_rcu_qsbr_quiescent(qs, 0);
    counters->forwarded.store(0);
  }
  std::mt19937 rng(12345);
  std::vector<rte_mbuf*> fill(perRound);
  std::vector<rte_mbuf*> drain(perRound);
  std::vector<double> perPacket, perPacketCpu, perPacketBest, perPacketMedianRound;
  auto medianOf = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  TxBatch tx;
  std::array<rte_mbuf*, kBurst> pkts;
  unsigned long txFull = 0;
  std::printf("tsc_hz %lu, flows %u, payload %u bytes, %u runs x %u rounds x %u packets, thread %ld\n",
              static_cast<unsigned long>(rte_get_tsc_hz()), kFlows, kPayload, runs, rounds, perRound,
              static_cast<long>(syscall(SYS_gettid)));
  unsigned long allocationsTotal = 0;
  for (unsigned run = 0; run < runs; ++run) {
    std::uint64_t cycles = 0, packets = 0, cpuNs = 0;
    double best = 1e30;
    std::vector<double> roundCycles;  // per packet, each round
    roundCycles.reserve(rounds);
    for (unsigned round = 0; round < rounds; ++round) {
      if (rte_pktmbuf_alloc_bulk(pool, fill.data(), perRound) != 0) {
        std::fprintf(stderr, "pool exhausted\n");
        return 1;
      }
      for (unsigned k = 0; k < perRound; ++k) {
        const auto& f = frames[rng() % kFlows];
        std::memcpy(rte_pktmbuf_append(fill[k], kFrame), f.data(), kFrame);
      }
      rte_ring_enqueue_bulk(rxRing, reinterpret_cast<void* const*>(fill.data()), perRound, nullptr);

      const std::uint64_t cpu0 = threadCpuNs();
      syscall(SYS_getppid);  // marker: timed region starts
      counting.store(true);
      const std::uint64_t t0 = rte_rdtsc_precise();
      unsigned done = 0;
      while (done < perRound) {
        const std::uint16_t n = rte_eth_rx_burst(portId, 0, pkts.data(), kBurst);
        if (ringsOnly) {
          std::memcpy(tx.pkts[0].data(), pkts.data(), n * sizeof(rte_mbuf*));
          tx.count[0] = n;
          bump(counters->forwarded, n);
        } else {
          forwardBurst(pkts.data(), n, 0, ctx, *counters, rte_rdtsc(), tx);
        }
        if (tx.count[0] != 0) {
          const std::uint16_t sent = rte_eth_tx_burst(portId, 0, tx.pkts[0].data(), tx.count[0]);
          if (sent < tx.count[0]) {
            rte_pktmbuf_free_bulk(tx.pkts[0].data() + sent, tx.count[0] - sent);
            txFull += tx.count[0] - sent;
          }
          tx.count[0] = 0;
        }
        rte_rcu_qsbr_quiescent(qs, 0);
        done += n;
      }
      const std::uint64_t t1 = rte_rdtsc_precise();
      counting.store(false);
      syscall(SYS_getppid);  // marker: timed region ends
      cpuNs += threadCpuNs() - cpu0;
      cycles += t1 - t0;
      best = std::min(best, static_cast<double>(t1 - t0) / done);
      roundCycles.push_back(static_cast<double>(t1 - t0) / done);
      packets += done;
      const unsigned got = rte_ring_dequeue_burst(txRing, reinterpret_cast<void**>(drain.data()),
                                                  perRound, nullptr);
      rte_pktmbuf_free_bulk(drain.data(), got);
    }
    allocationsTotal += allocations.exchange(0);
    const double cpp = static_cast<double>(cycles) / static_cast<double>(packets);
    const double cpuCpp = static_cast<double>(cpuNs) * 1e-9 * static_cast<double>(rte_get_tsc_hz()) /
                          static_cast<double>(packets);
    perPacket.push_back(cpp);
    perPacketCpu.push_back(cpuCpp);
    perPacketBest.push_back(best);
    perPacketMedianRound.push_back(medianOf(roundCycles));
    std::printf("run %u: %.1f TSC cycles/packet (wall), %.1f (thread CPU time x tsc_hz), "
                "median round %.1f, best round %.1f, over %lu packets\n",
                run + 1, cpp, cpuCpp, perPacketMedianRound.back(), best,
                static_cast<unsigned long>(packets));
  }
  const double median = medianOf(perPacket);
  std::printf("median of runs: wall %.1f, thread CPU %.1f, median round %.1f, best round %.1f "
              "cycles/packet\n",
              median, medianOf(perPacketCpu), medianOf(perPacketMedianRound), medianOf(perPacketBest));
  std::uint64_t fwd = read(counters->forwarded);
  std::uint64_t dropped = 0;
  for (const auto& d : counters->dropped) dropped += read(d);
  std::printf("median %.1f cycles/packet (%.1f Mpps per core at tsc_hz); forwarded %lu, dropped %lu, tx_full %lu\n",
              median, static_cast<double>(rte_get_tsc_hz()) / median / 1e6,
              static_cast<unsigned long>(fwd), static_cast<unsigned long>(dropped), txFull);
  std::printf("heap allocations in timed regions: %lu\n", allocationsTotal);
  rte_rcu_qsbr_thread_offline(qs, 0);
  rte_rcu_qsbr_thread_unregister(qs, 0);
  rte_eth_dev_stop(portId);
  return (fwd == static_cast<std::uint64_t>(runs) * rounds * perRound && allocationsTotal == 0) ? 0 : 2;
}
