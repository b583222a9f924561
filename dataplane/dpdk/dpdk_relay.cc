#include "dataplane/dpdk/dpdk_relay.h"

#include <pthread.h>
#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_pause.h>
#include <rte_rcu_qsbr.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "dataplane/dpdk/counters.h"
#include "dataplane/dpdk/eal.h"
#include "dataplane/dpdk/fast_path.h"
#include "dataplane/dpdk/flow_table.h"
#include "dataplane/dpdk/neighbour_discovery.h"
#include "dataplane/dpdk/neighbour_table.h"
#include "dataplane/dpdk/silence_horizon.h"
#include "dataplane/port_allocator.h"

namespace sbc::dataplane {
namespace {

using namespace dpdk;

std::atomic<unsigned> relaySerial{0};

// Neighbor Solicitations for our IPv6 media addresses go to their solicited-node groups
// (33:33:ff:..), which a NIC's multicast filter drops unless told (promiscuous mode may
// not cover multicast, or may be unavailable): the port accepts those groups and all-nodes
// (unsolicited advertisements), or, where the PMD has no multicast list, all multicast.
void listenToNeighbourDiscovery(std::uint16_t id, unsigned port, const RelaySettings& settings,
                                const std::array<std::uint8_t, kRealmCount>& egressPort) {
  std::vector<rte_ether_addr> groups{multicastMac(allNodesGroup())};
  for (std::size_t r = 0; r < kRealmCount; ++r) {
    if (settings.realms[r].address.family != policy::IpFamily::v6 || egressPort[r] != port)
      continue;
    groups.push_back(multicastMac(solicitedNodeGroup(toRaw(settings.realms[r].address))));
  }
  if (groups.size() == 1) return;  // no IPv6 media address on this port
  const auto count = static_cast<std::uint32_t>(groups.size());
  if (rte_eth_dev_set_mc_addr_list(id, groups.data(), count) != 0)
    rte_eth_allmulticast_enable(id);  // best effort, like promiscuous mode
}

// Threads made after rte_eal_init must not inherit the main lcore's single CPU.
void allowAllCpus() {
  cpu_set_t all;
  CPU_ZERO(&all);
  const long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  for (long c = 0; c < cpus && c < CPU_SETSIZE; ++c) CPU_SET(static_cast<int>(c), &all);
  pthread_setaffinity_np(pthread_self(), sizeof(all), &all);
}

class DpdkRelayImpl final : public DpdkRelay {
 public:
  DpdkRelayImpl(const RelaySettings& settings, const DpdkSettings& dpdk, const DpdkTuning& tuning);
  ~DpdkRelayImpl() override;

  std::optional<StreamEndpoints> openStream(std::string_view label) override;
  bool updateLeg(StreamId stream, Realm realm, const LegMedia& leg) override;
  void closeStream(StreamId stream) override;
  std::optional<StreamCounters> streamCounters(StreamId stream) const override;
  int timeoutNotifyFd() const override { return eventFd_; }
  std::vector<StreamId> takeTimedOut() override;
  MediaStats stats() const override;
  DpdkStats dpdkStats() const override;
  bool setNeighbour(const policy::IpAddress& address, const rte_ether_addr& mac) override;

 private:
  struct Worker {
    DpdkRelayImpl* relay = nullptr;
    unsigned id = 0;
    unsigned lcore = 0;  // RTE_MAX_LCORE: runs on a std::thread
    std::unique_ptr<WorkerCounters> counters;
    std::thread thread;
    // Written by the worker once per round, read by housekeeping (silenceHorizon()).
    alignas(64) std::atomic<std::uint64_t> roundAt{0};
    std::atomic<std::uint64_t> caughtUpAt{0};
  };
  struct StreamInfo {
    std::array<std::uint16_t, kRealmCount> port{};
    // A side expects media unless signaling said it is on hold (a stream nobody updated
    // yet is silent on both sides, and times out).
    std::array<bool, kRealmCount> expectsMedia{true, true};
    std::uint64_t changed = 0;  // TSC of open / last update
    bool reported = false;
  };

  static int launch(void* worker);
  void workerLoop(Worker& worker);
  void housekeepingLoop();
  void scanTimeouts();
  std::uint16_t labelIndex(std::string_view label);

  RelaySettings settings_;
  DpdkTuning tuning_;
  std::vector<std::uint16_t> portIds_;
  rte_mempool* pool_ = nullptr;
  NeighbourTable neighbours_;
  std::unique_ptr<FlowTable> flows_;
  FastPathContext ctx_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::atomic<bool> stop_{false};
  std::uint64_t idleSleepUs_ = 0;
  std::uint64_t neighbourIdleCycles_ = 0;

  mutable std::mutex mutex_;  // signaling + housekeeping only
  std::condition_variable wake_;
  bool stopHousekeeping_ = false;
  std::thread housekeeping_;
  std::array<std::unique_ptr<PortAllocator>, kRealmCount> ports_;
  std::unordered_map<StreamId, StreamInfo> streams_;
  std::vector<std::string> labels_{""};
  std::map<std::string, std::uint16_t, std::less<>> labelIds_{{"", 0}};
  StreamId nextId_ = 1;
  std::vector<StreamId> timedOut_;
  int eventFd_ = -1;
};

DpdkRelayImpl::DpdkRelayImpl(const RelaySettings& settings, const DpdkSettings& dpdk,
                             const DpdkTuning& tuning)
    : settings_(settings), tuning_(tuning) {
  std::string error;
  if (!ensureEal(dpdk.ealArgs, &error)) throw std::runtime_error("dpdk: " + error);
  if (settings.realms[0].address.family != settings.realms[1].address.family)
    throw std::runtime_error("dpdk: both realms' media addresses must be of one family");
  if (dpdk.ports.empty()) throw std::runtime_error("dpdk: no port configured");
  std::array<int, kRealmCount> realmPort{-1, -1};
  for (const DpdkPortSettings& port : dpdk.ports) {
    const std::string name = port.device.substr(0, port.device.find(','));
    std::uint16_t id = 0;
    if (rte_eth_dev_get_port_by_name(name.c_str(), &id) != 0)
      throw std::runtime_error("dpdk: no port named " + name + " (is it in eal_args as --vdev?)");
    std::size_t index = 0;
    while (index < portIds_.size() && portIds_[index] != id) ++index;
    if (index == portIds_.size()) {
      if (portIds_.size() == kMaxPorts) throw std::runtime_error("dpdk: at most 4 ports");
      portIds_.push_back(id);
    }
    // A realm's media leaves by its one port; several links are bonded into one (net_bonding).
    auto& slot = realmPort[static_cast<std::size_t>(port.realm)];
    if (slot >= 0) throw std::runtime_error("dpdk: a realm has one port (bond several links)");
    slot = static_cast<int>(index);
  }
  for (std::size_t r = 0; r < kRealmCount; ++r)
    ctx_.egressPort[r] = static_cast<std::uint8_t>(realmPort[r] < 0 ? 0 : realmPort[r]);

  std::vector<unsigned> lcores;
  unsigned lcore;
  RTE_LCORE_FOREACH_WORKER(lcore) {
    if (lcores.size() < kMaxWorkers) lcores.push_back(lcore);
  }
  unsigned workerCount = lcores.empty() ? 1u : static_cast<unsigned>(lcores.size());
  for (std::uint16_t id : portIds_) {
    rte_eth_dev_info info{};
    if (rte_eth_dev_info_get(id, &info) != 0) throw std::runtime_error("dpdk: no device info");
    workerCount = std::min<unsigned>(workerCount, std::min(info.max_rx_queues, info.max_tx_queues));
  }
  if (workerCount == 0) throw std::runtime_error("dpdk: a port has no queue");

  const unsigned serial = relaySerial.fetch_add(1);
  pool_ = rte_pktmbuf_pool_create(("sbc_relay" + std::to_string(serial)).c_str(), tuning.mbufs,
                                  256, 0, RTE_MBUF_DEFAULT_BUF_SIZE, static_cast<int>(rte_socket_id()));
  if (pool_ == nullptr) throw std::runtime_error("dpdk: cannot create the mbuf pool");
  for (std::size_t p = 0; p < portIds_.size(); ++p) {
    const std::uint16_t id = portIds_[p];
    rte_eth_conf conf{};
    const auto queues = static_cast<std::uint16_t>(workerCount);
    if (rte_eth_dev_configure(id, queues, queues, &conf) != 0)
      throw std::runtime_error("dpdk: cannot configure port " + std::to_string(id));
    for (std::uint16_t q = 0; q < queues; ++q) {
      if (rte_eth_rx_queue_setup(id, q, 1024, rte_eth_dev_socket_id(id), nullptr, pool_) != 0 ||
          rte_eth_tx_queue_setup(id, q, 1024, rte_eth_dev_socket_id(id), nullptr) != 0)
        throw std::runtime_error("dpdk: cannot set up queues of port " + std::to_string(id));
    }
    if (rte_eth_dev_start(id) != 0) throw std::runtime_error("dpdk: cannot start port " + std::to_string(id));
    rte_eth_promiscuous_enable(id);  // best effort (not every PMD has it)
    rte_eth_macaddr_get(id, &ctx_.portMac[p]);
    listenToNeighbourDiscovery(id, static_cast<unsigned>(p), settings, ctx_.egressPort);
  }

  flows_ = std::make_unique<FlowTable>(settings, workerCount);
  flows_->setNeighbours(&neighbours_);
  for (std::size_t r = 0; r < kRealmCount; ++r)
    ports_[r] = std::make_unique<PortAllocator>(settings.realms[r].portMin,
                                                settings.realms[r].portMax, settings.quarantine);
  ctx_.flows = flows_.get();
  ctx_.neighbours = &neighbours_;
  ctx_.portCount = static_cast<unsigned>(portIds_.size());
  ctx_.dscp = settings.dscp;
  for (std::size_t r = 0; r < kRealmCount; ++r) ctx_.vlan[r] = settings.realms[r].vlan;
  ctx_.arpPool = pool_;
  ctx_.arpRetryCycles = rte_get_tsc_hz() / 1000 * static_cast<std::uint64_t>(tuning.arpRetry.count());
  idleSleepUs_ = static_cast<std::uint64_t>(tuning.idleSleep.count());
  neighbourIdleCycles_ =
      rte_get_tsc_hz() / 1000 * static_cast<std::uint64_t>(tuning.neighbourIdle.count());
  eventFd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (eventFd_ < 0) throw std::runtime_error("dpdk: eventfd failed");

  for (unsigned w = 0; w < workerCount; ++w) {
    auto worker = std::make_unique<Worker>();
    worker->relay = this;
    worker->id = w;
    worker->counters = std::make_unique<WorkerCounters>(w);
    worker->lcore = lcores.empty() ? RTE_MAX_LCORE : lcores[w];
    workers_.push_back(std::move(worker));
  }
  for (auto& worker : workers_) {
    if (worker->lcore != RTE_MAX_LCORE &&
        rte_eal_remote_launch(&DpdkRelayImpl::launch, worker.get(), worker->lcore) == 0)
      continue;
    worker->lcore = RTE_MAX_LCORE;  // busy (another relay in this process) or none: a thread
    Worker* raw = worker.get();
    worker->thread = std::thread([this, raw] {
      allowAllCpus();
      pthread_setname_np(pthread_self(), ("sbc-dpdk-w" + std::to_string(raw->id)).c_str());
      workerLoop(*raw);
    });
  }
  housekeeping_ = std::thread([this] {
    allowAllCpus();
    pthread_setname_np(pthread_self(), "sbc-dpdk-hk");
    housekeepingLoop();
  });
}

DpdkRelayImpl::~DpdkRelayImpl() {
  {
    std::lock_guard lock(mutex_);
    stopHousekeeping_ = true;
  }
  wake_.notify_all();
  housekeeping_.join();
  stop_.store(true);
  for (auto& worker : workers_) {
    if (worker->thread.joinable())
      worker->thread.join();
    else
      rte_eal_wait_lcore(worker->lcore);
  }
  flows_.reset();  // every worker is offline: frees everything
  for (std::uint16_t id : portIds_) rte_eth_dev_stop(id);
  rte_mempool_free(pool_);
  close(eventFd_);
}

int DpdkRelayImpl::launch(void* arg) {
  auto* worker = static_cast<Worker*>(arg);
  worker->relay->workerLoop(*worker);
  return 0;
}

// Called on a worker lcore (or its thread); lock-free, no allocation, no syscall while busy.
void DpdkRelayImpl::workerLoop(Worker& worker) {
  rte_rcu_qsbr* qs = flows_->qsbr();
  rte_rcu_qsbr_thread_register(qs, worker.id);
  rte_rcu_qsbr_thread_online(qs, worker.id);
  const auto queue = static_cast<std::uint16_t>(worker.id);
  WorkerCounters& counters = *worker.counters;
  TxBatch tx;
  std::array<rte_mbuf*, kBurst> pkts;
  std::uint32_t idle = 0;
  const std::uint64_t started = rte_rdtsc();
  worker.roundAt.store(started, std::memory_order_relaxed);
  worker.caughtUpAt.store(started, std::memory_order_relaxed);
  while (!stop_.load(std::memory_order_relaxed)) {
    const std::uint64_t roundStart = rte_rdtsc();
    unsigned received = 0;
    bool queuesLeftFull = false;
    for (unsigned p = 0; p < portIds_.size(); ++p) {
      const std::uint16_t n = rte_eth_rx_burst(portIds_[p], queue, pkts.data(), kBurst);
      if (n == 0) continue;
      received += n;
      queuesLeftFull = queuesLeftFull || n == kBurst;
      forwardBurst(pkts.data(), n, p, ctx_, counters, roundStart, tx);
      for (unsigned out = 0; out < portIds_.size(); ++out) {
        const std::uint16_t count = tx.count[out];
        if (count == 0) continue;
        const std::uint16_t sent = rte_eth_tx_burst(portIds_[out], queue, tx.pkts[out].data(), count);
        if (sent < count) {
          rte_pktmbuf_free_bulk(tx.pkts[out].data() + sent, count - sent);
          bump(counters.dropped[static_cast<std::size_t>(DropReason::txFull)], count - sent);
        }
        tx.count[out] = 0;
      }
    }
    worker.roundAt.store(roundStart, std::memory_order_relaxed);
    if (!queuesLeftFull) worker.caughtUpAt.store(roundStart, std::memory_order_relaxed);
    rte_rcu_qsbr_quiescent(qs, worker.id);
    if (received != 0) {
      idle = 0;
    } else if (++idle < tuning_.idleSpins || idleSleepUs_ == 0) {
      rte_pause();
    } else {
      // Idle: offline while asleep, so grace periods do not wait for this worker.
      rte_rcu_qsbr_thread_offline(qs, worker.id);
      std::this_thread::sleep_for(std::chrono::microseconds(idleSleepUs_));
      rte_rcu_qsbr_thread_online(qs, worker.id);
    }
  }
  rte_rcu_qsbr_thread_offline(qs, worker.id);
  rte_rcu_qsbr_thread_unregister(qs, worker.id);
}

void DpdkRelayImpl::housekeepingLoop() {
  std::unique_lock lock(mutex_);
  while (!stopHousekeeping_) {
    wake_.wait_for(lock, tuning_.housekeeping);
    flows_->expireIdleNeighbours(rte_rdtsc(), neighbourIdleCycles_);
    flows_->reclaim();
    scanTimeouts();
  }
}

void DpdkRelayImpl::scanTimeouts() {
  if (settings_.mediaTimeout.count() <= 0) return;
  const std::uint64_t limit =
      rte_get_tsc_hz() / 1000 * static_cast<std::uint64_t>(settings_.mediaTimeout.count());
  // A stream's packets may reach any worker's queue: silence counts only up to where the
  // slowest worker has read.
  const std::uint64_t clock = rte_rdtsc();
  std::uint64_t now = clock;
  for (const auto& worker : workers_) {
    const WorkerProgress progress{worker->roundAt.load(std::memory_order_relaxed),
                                  worker->caughtUpAt.load(std::memory_order_relaxed)};
    now = std::min(now, silenceHorizon(clock, progress, limit));
  }
  bool reported = false;
  for (auto& [id, info] : streams_) {
    if (info.reported) continue;
    bool anyExpecting = false, allSilent = true;
    for (std::size_t r = 0; r < kRealmCount; ++r) {
      if (!info.expectsMedia[r]) continue;
      anyExpecting = true;
      const std::uint64_t seen = std::max(info.changed, flows_->lastSeen(id, static_cast<Realm>(r)));
      // A worker may have stamped a packet after `now` was read (or on a vCPU whose TSC runs
      // ahead): that side is talking, not 2^64 cycles silent.
      if (seen >= now || now - seen < limit) allSilent = false;
    }
    if (anyExpecting && allSilent) {
      info.reported = true;
      timedOut_.push_back(id);
      reported = true;
    }
  }
  if (reported) {
    const std::uint64_t one = 1;
    [[maybe_unused]] ssize_t written = ::write(eventFd_, &one, sizeof(one));
  }
}

std::uint16_t DpdkRelayImpl::labelIndex(std::string_view label) {
  auto it = labelIds_.find(label);
  if (it != labelIds_.end()) return it->second;
  if (labels_.size() >= kMaxLabels) return 0;  // beyond 1024 trunks: counted under ""
  const auto index = static_cast<std::uint16_t>(labels_.size());
  labels_.emplace_back(label);
  labelIds_.emplace(std::string(label), index);
  return index;
}

std::optional<StreamEndpoints> DpdkRelayImpl::openStream(std::string_view label) {
  std::lock_guard lock(mutex_);
  const auto now = PortAllocator::Clock::now();
  const auto access = ports_[0]->allocate(now);
  if (!access) return std::nullopt;
  const auto core = ports_[1]->allocate(now);
  if (!core) {
    ports_[0]->release(*access, now);
    return std::nullopt;
  }
  const StreamId id = nextId_++;
  if (!flows_->installStream(id, labelIndex(label), {*access, *core})) {
    ports_[0]->release(*access, now);
    ports_[1]->release(*core, now);
    return std::nullopt;
  }
  StreamInfo& info = streams_[id];
  info.port = {*access, *core};
  info.changed = rte_rdtsc();
  StreamEndpoints endpoints;
  endpoints.id = id;
  endpoints.rtp[0] = MediaAddress{settings_.realms[0].address, *access};
  endpoints.rtp[1] = MediaAddress{settings_.realms[1].address, *core};
  return endpoints;
}

bool DpdkRelayImpl::updateLeg(StreamId stream, Realm realm, const LegMedia& leg) {
  std::lock_guard lock(mutex_);
  auto it = streams_.find(stream);
  if (it == streams_.end() || !flows_->updateLeg(stream, realm, leg)) return false;
  StreamInfo& info = it->second;
  info.expectsMedia[static_cast<std::size_t>(realm)] = !leg.silenceExpected;
  info.changed = rte_rdtsc();
  return true;
}

void DpdkRelayImpl::closeStream(StreamId stream) {
  std::lock_guard lock(mutex_);
  auto it = streams_.find(stream);
  if (it == streams_.end()) return;
  flows_->removeStream(stream);  // freed after the grace period (deferred queue)
  const auto now = PortAllocator::Clock::now();
  for (std::size_t r = 0; r < kRealmCount; ++r) ports_[r]->release(it->second.port[r], now);
  streams_.erase(it);
}

std::optional<StreamCounters> DpdkRelayImpl::streamCounters(StreamId stream) const {
  std::lock_guard lock(mutex_);
  return flows_->streamCounters(stream);
}

std::vector<StreamId> DpdkRelayImpl::takeTimedOut() {
  std::lock_guard lock(mutex_);
  std::uint64_t value = 0;
  [[maybe_unused]] ssize_t got = ::read(eventFd_, &value, sizeof(value));
  std::vector<StreamId> out;
  out.swap(timedOut_);
  return out;
}

MediaStats DpdkRelayImpl::stats() const {
  MediaStats out;
  std::lock_guard lock(mutex_);
  out.labels.resize(labels_.size());
  for (std::size_t l = 0; l < labels_.size(); ++l) out.labels[l].label = labels_[l];
  for (const auto& worker : workers_) {
    const WorkerCounters& c = *worker->counters;
    for (std::size_t r = 0; r < kDropReasons; ++r) out.dropped[r] += read(c.dropped[r]);
    for (std::size_t l = 0; l < labels_.size(); ++l) {
      for (std::size_t r = 0; r < kRealmCount; ++r) {
        out.labels[l].packets[r] += read(c.labels[l].packets[r]);
        out.labels[l].bytes[r] += read(c.labels[l].bytes[r]);
      }
      out.labels[l].dropped += read(c.labels[l].dropped);
    }
  }
  out.flows = flows_->flowCount();
  const DpdkStats dpdk = dpdkStats();
  MediaStats::Neighbours& n = out.neighbours.emplace();
  using Event = MediaStats::Neighbours::Event;
  n.arp[Event::answered] = dpdk.arpReplied;
  n.arp[Event::requested] = dpdk.arpRequested;
  n.arp[Event::learnt] = dpdk.arpLearnt;
  n.arp[Event::ignored] = dpdk.arpIgnored;
  n.nd[Event::answered] = dpdk.ndAnswered;
  n.nd[Event::requested] = dpdk.ndRequested;
  n.nd[Event::learnt] = dpdk.ndLearnt;
  n.nd[Event::ignored] = dpdk.ndIgnored;
  n.nd[Event::invalid] = dpdk.ndInvalid;
  n.unresolved = dpdk.unresolved;
  n.entries = neighbours_.entries();
  return out;
}

DpdkStats DpdkRelayImpl::dpdkStats() const {
  DpdkStats out;
  for (const auto& worker : workers_) {
    const WorkerCounters& c = *worker->counters;
    out.forwarded += read(c.forwarded);
    out.unresolved += read(c.unresolved);
    out.arpReplied += read(c.arpReplied);
    out.arpRequested += read(c.arpRequested);
    out.arpLearnt += read(c.arpLearnt);
    out.arpIgnored += read(c.arpIgnored);
    out.ndAnswered += read(c.ndAnswered);
    out.ndLearnt += read(c.ndLearnt);
    out.ndRequested += read(c.ndRequested);
    out.ndIgnored += read(c.ndIgnored);
    out.ndInvalid += read(c.ndInvalid);
    out.ttlExpired += read(c.ttlExpired);
  }
  out.workers = static_cast<unsigned>(workers_.size());
  return out;
}

bool DpdkRelayImpl::setNeighbour(const policy::IpAddress& address, const rte_ether_addr& mac) {
  std::lock_guard lock(mutex_);  // the housekeeping thread reads the entries' pins
  return neighbours_.set(toRaw(address), macToWord(mac));
}

}  // namespace

std::unique_ptr<DpdkRelay> makeDpdkRelay(const RelaySettings& settings, const DpdkSettings& dpdk,
                                         const DpdkTuning& tuning) {
  return std::make_unique<DpdkRelayImpl>(settings, dpdk, tuning);
}

}  // namespace sbc::dataplane
