#include "dataplane/dpdk/flow_table.h"

#include <rte_errno.h>
#include <rte_malloc.h>
#include <rte_rcu_qsbr.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <atomic>
#include <cstring>
#include <new>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "dataplane/dpdk/checksum.h"

namespace sbc::dataplane::dpdk {
namespace {

// A neighbour slot is retired with the rule that last carried it (see neighbour_table.h).
enum RetiredKind : std::uint32_t { kRule = 0, kEntry = 1, kNeighbour = 2 };
struct Retired {
  void* pointer;
  std::uint32_t kind;
  std::uint32_t pad;
};
constexpr std::uint32_t kDeferredQueueSize = 1u << 16;

std::atomic<unsigned> tableSerial{0};

}  // namespace

void FlowTable::RteFree::operator()(void* p) const noexcept { rte_free(p); }

// Zeroed DPDK memory for `count` objects of T, each constructed; throws when there is none.
template <typename T>
FlowTable::DpdkArray<T> FlowTable::dpdkArray(std::size_t count, const char* what) {
  static_assert(std::is_trivially_destructible_v<T>, "freed with rte_free, not destroyed");
  void* memory = rte_zmalloc(what, count * sizeof(T), RTE_CACHE_LINE_SIZE);
  if (memory == nullptr)
    throw std::runtime_error(std::string("dpdk flow table: no DPDK memory for ") + what);
  auto* objects = static_cast<T*>(memory);
  for (std::size_t i = 0; i < count; ++i) new (objects + i) T();
  return DpdkArray<T>(objects);
}

RawAddress toRaw(const policy::IpAddress& address) noexcept {
  RawAddress raw;
  std::memcpy(raw.bytes.data(), address.bytes.data(), address.family == policy::IpFamily::v4 ? 4 : 16);
  return raw;
}

MaskedPrefix toMasked(const policy::IpPrefix& prefix) noexcept {
  std::array<std::uint8_t, 16> mask{};
  unsigned bits = prefix.length;
  for (std::size_t i = 0; i < 16 && bits > 0; ++i) {
    unsigned take = bits >= 8 ? 8 : bits;
    mask[i] = static_cast<std::uint8_t>(0xff00u >> take);
    bits -= take;
  }
  RawAddress raw = toRaw(prefix.address);
  MaskedPrefix out;
  std::memcpy(&out.mask0, mask.data(), 8);
  std::memcpy(&out.mask1, mask.data() + 8, 8);
  out.net0 = raw.word(0) & out.mask0;
  out.net1 = raw.word(1) & out.mask1;
  return out;
}

FlowTable::FlowTable(const RelaySettings& settings, unsigned maxWorkers)
    : maxWorkers_(maxWorkers) {
  if (maxWorkers == 0 || maxWorkers > kMaxWorkers)
    throw std::invalid_argument("dpdk flow table: 1 to 8 workers");
  for (std::size_t r = 0; r < kRealmCount; ++r) {
    const RealmMedia& realm = settings.realms[r];
    if (realm.portMin > realm.portMax)
      throw std::invalid_argument("dpdk flow table: empty port range");
    slots_[r].portMin = realm.portMin;
    slots_[r].size = static_cast<std::uint32_t>(realm.portMax) - realm.portMin + 2;
    slots_[r].rules = dpdkArray<std::atomic<const FlowRule*>>(slots_[r].size, "sbc_flow_slots");
    for (unsigned w = 0; w < maxWorkers; ++w)
      counters_[w][r] = dpdkArray<FlowCounters>(slots_[r].size, "sbc_flow_counters");
    address_[r] = toRaw(realm.address);
    v4_[r] = realm.address.family == policy::IpFamily::v4;
    std::memcpy(&addr4_[r], realm.address.bytes.data(), 4);
    if (realm.gateway) {
      if (realm.onLink.size() > kMaxOnLinkPrefixes)
        throw std::invalid_argument("dpdk flow table: at most 16 on-link prefixes per realm");
      routing_[r].hasGateway = true;
      routing_[r].gateway = toRaw(*realm.gateway);
      for (const policy::IpPrefix& prefix : realm.onLink)
        routing_[r].onLink[routing_[r].onLinkCount++] = toMasked(prefix);
    }
  }
  std::size_t size = rte_rcu_qsbr_get_memsize(maxWorkers);
  qsbr_ = static_cast<rte_rcu_qsbr*>(rte_zmalloc("sbc_flow_qsbr", size, RTE_CACHE_LINE_SIZE));
  if (qsbr_ == nullptr) throw std::runtime_error("dpdk flow table: no memory for RCU");
  rte_rcu_qsbr_init(qsbr_, maxWorkers);
  std::string name = "sbc_fdq" + std::to_string(tableSerial.fetch_add(1));
  rte_rcu_qsbr_dq_parameters params{};
  params.name = name.c_str();
  params.flags = RTE_RCU_QSBR_DQ_MT_UNSAFE;
  params.size = kDeferredQueueSize;
  params.esize = sizeof(Retired);
  params.trigger_reclaim_limit = 64;
  params.max_reclaim_size = 256;
  params.free_fn = &FlowTable::freeRetired;
  params.p = this;
  params.v = qsbr_;
  dq_ = rte_rcu_qsbr_dq_create(&params);
  if (dq_ == nullptr) {
    rte_free(qsbr_);
    throw std::runtime_error("dpdk flow table: cannot create the RCU deferred queue: " +
                             std::string(rte_strerror(rte_errno)));
  }
}

FlowTable::~FlowTable() {
  neighbours_ = nullptr;  // it may be gone already, and its slots need no more freeing
  std::vector<StreamId> ids;
  for (const auto& [id, stream] : streams_) ids.push_back(id);
  for (StreamId id : ids) removeStream(id);
  // Workers are offline: everything queued is reclaimable now.
  while (rte_rcu_qsbr_dq_delete(dq_) != 0) rte_rcu_qsbr_synchronize(qsbr_, RTE_QSBR_THRID_INVALID);
  rte_free(qsbr_);
}

void FlowTable::freeRetired(void* table, void* elements, unsigned int n) {
  auto* retired = static_cast<Retired*>(elements);
  NeighbourTable* neighbours = static_cast<FlowTable*>(table)->neighbours_;
  for (unsigned i = 0; i < n; ++i) {
    if (retired[i].kind == kRule || retired[i].kind == kEntry) {
      rte_free(retired[i].pointer);  // trivially destructible
    } else if (neighbours != nullptr) {
      neighbours->recycle(static_cast<NeighbourTable::Slot*>(retired[i].pointer));
    }
  }
}

void FlowTable::releaseNeighbourOf(const FlowRule& rule) noexcept {
  if (rule.peerNeighbour == nullptr || neighbours_ == nullptr) return;
  auto* slot = const_cast<NeighbourTable::Slot*>(rule.peerNeighbour);
  if (neighbours_->release(slot)) retire(slot, kNeighbour);
}

void FlowTable::retireRule(const FlowRule* rule) noexcept {
  // The rule's neighbour reference goes now; the slot (if that was the last one) is freed
  // with the rule, after the same grace period, so a worker still reading the rule never
  // sees the slot reused under it.
  releaseNeighbourOf(*rule);
  retire(const_cast<FlowRule*>(rule), kRule);
}

std::size_t FlowTable::expireIdleNeighbours(std::uint64_t now, std::uint64_t idleCycles,
                                            std::size_t slots) noexcept {
  if (neighbours_ == nullptr) return 0;
  return neighbours_->expireIdle(&neighbourCursor_, slots, now, idleCycles,
                                 [this](NeighbourTable::Slot* slot) { retire(slot, kNeighbour); });
}

void FlowTable::setNeighbours(NeighbourTable* neighbours) noexcept {
  neighbours_ = neighbours;
  // A gateway stays resolved between calls: it is not one call's peer.
  for (Routing& routing : routing_)
    if (routing.hasGateway) routing.gatewaySlot = neighbours_->pin(routing.gateway);
}

void FlowTable::retire(void* pointer, std::uint32_t kind) noexcept {
  Retired element{pointer, kind, 0};
  if (rte_rcu_qsbr_dq_enqueue(dq_, &element) == 0) return;
  // The queue holds 64k retirements: full only when a worker has stalled. Wait for it
  // rather than leak or free too early.
  rte_rcu_qsbr_synchronize(qsbr_, RTE_QSBR_THRID_INVALID);
  freeRetired(this, &element, 1);
}

void FlowTable::reclaim() noexcept {
  unsigned freed = 0, pending = 0, available = 0;
  rte_rcu_qsbr_dq_reclaim(dq_, kDeferredQueueSize, &freed, &pending, &available);
}

void FlowTable::synchronize() noexcept {
  rte_rcu_qsbr_synchronize(qsbr_, RTE_QSBR_THRID_INVALID);
  reclaim();
}

FlowRule* FlowTable::buildRule(const Stream& stream, Realm in, bool rtcp) const {
  const std::size_t i = static_cast<std::size_t>(in);
  const Realm outRealm = otherRealm(in);
  const std::size_t o = static_cast<std::size_t>(outRealm);
  const LegMedia& mine = stream.legs[i];
  const LegMedia& theirs = stream.legs[o];
  const bool mux = stream.legs[0].rtcpMux && stream.legs[1].rtcpMux;
  const auto family = v4_[i] ? policy::IpFamily::v4 : policy::IpFamily::v6;
  std::size_t prefixCount = 0;
  for (const policy::IpPrefix& prefix : mine.allowedSources)
    prefixCount += prefix.address.family == family ? 1 : 0;
  if (prefixCount > UINT16_MAX) return nullptr;
  void* block = rte_malloc("sbc_flow_rule", FlowRule::bytesFor(prefixCount), RTE_CACHE_LINE_SIZE);
  if (block == nullptr) return nullptr;
  auto* rule = new (block) FlowRule;
  auto* prefixes = reinterpret_cast<std::uint8_t*>(rule + 1);
  for (const policy::IpPrefix& prefix : mine.allowedSources) {
    if (prefix.address.family != family) continue;
    const MaskedPrefix masked = toMasked(prefix);
    if (v4_[i] && prefixCount <= FlowRule::kInlinePrefixes4) {
      Prefix4& inline4 = rule->prefixes4[rule->prefixCount];
      std::memcpy(&inline4.net, &masked.net0, 4);  // the address's four bytes, as stored
      std::memcpy(&inline4.mask, &masked.mask0, 4);
    }
    new (prefixes + rule->prefixCount++ * sizeof(MaskedPrefix)) MaskedPrefix(masked);
  }
  const FlowEntry** peerRtpEntry =
      new (prefixes + prefixCount * sizeof(MaskedPrefix)) const FlowEntry*(nullptr);
  rule->label = stream.label;
  rule->active = !(rtcp && mux);
  rule->latch = mine.latch;
  rule->latchEpoch = stream.latchEpoch[i];
  rule->srcPortBe = htons(static_cast<std::uint16_t>(stream.port[o] + (rtcp ? 1 : 0)));
  const auto outFamily = v4_[o] ? policy::IpFamily::v4 : policy::IpFamily::v6;
  std::optional<MediaAddress> target;
  if (theirs.rtp) {
    if (!rtcp || mux) {
      target = theirs.rtp;
    } else if (theirs.rtcp) {
      target = theirs.rtcp;
    } else {
      target = MediaAddress{theirs.rtp->address, static_cast<std::uint16_t>(theirs.rtp->port + 1)};
    }
  }
  if (target && target->address.family == outFamily && target->port != 0 && v4_[i] == v4_[o]) {
    rule->hasPeer = true;
    rule->peer = toRaw(target->address);
    rule->peerPortBe = htons(target->port);
    if (neighbours_ != nullptr) rule->peerNeighbour = neighbours_->acquire(nextHop(o, rule->peer));
  }
  rule->entry = stream.entries[i][rtcp ? 1 : 0];
  rule->peerEntry = stream.entries[o][rtcp && !mux ? 1 : 0];
  if (rtcp && !mux) *peerRtpEntry = stream.entries[o][0];
  rule->peerLatch = theirs.latch && v4_[i] == v4_[o];
  rule->peerLatchEpoch = stream.latchEpoch[o];
  if (v4_[i] && v4_[o]) {
    // The sums are taken with the SDP peer (0.0.0.0 port 0 while there is none); the fast
    // path adds the change from it to a latched destination.
    std::uint32_t peer4;
    std::memcpy(&peer4, rule->peer.bytes.data(), 4);
    // Destination: our address in this realm -> the peer; source: (the packet's) -> ours
    // in the other realm.
    const std::uint64_t addresses = csumDelta32(addr4_[i], peer4) + addr4_[o];
    // [TTL, protocol] as stored, TTL one less (the fast path forwards only TTL > 1, so the
    // protocol byte never borrows and the change is the same for every TTL).
    const std::uint8_t ttlBefore[2] = {64, IPPROTO_UDP};
    const std::uint8_t ttlAfter[2] = {63, IPPROTO_UDP};
    std::uint16_t before16, after16;
    std::memcpy(&before16, ttlBefore, 2);
    std::memcpy(&after16, ttlAfter, 2);
    rule->ipv4HeaderSum = csumFold(addresses + csumDelta16(before16, after16));
    const std::uint16_t ownPortBe = htons(static_cast<std::uint16_t>(stream.port[i] + (rtcp ? 1 : 0)));
    rule->ipv4UdpSum =
        csumFold(addresses + csumDelta16(ownPortBe, rule->peerPortBe) + rule->srcPortBe);
    rule->direct = rule->active && ((rule->hasPeer && rule->peerNeighbour != nullptr) || rule->peerLatch);
  }
  return rule;
}

bool FlowTable::publishRules(Stream& stream) {
  // All four built before any is published: out of DPDK memory, the stream keeps the rules
  // it had.
  std::array<std::array<FlowRule*, 2>, kRealmCount> built{};
  for (std::size_t r = 0; r < kRealmCount; ++r) {
    for (std::size_t rtcp = 0; rtcp < 2; ++rtcp) {
      built[r][rtcp] = buildRule(stream, static_cast<Realm>(r), rtcp == 1);
      if (built[r][rtcp] != nullptr) continue;
      for (auto& realmRules : built)
        for (FlowRule* rule : realmRules)
          if (rule != nullptr) {
            releaseNeighbourOf(*rule);
            rte_free(rule);  // never published: no reader can hold it
          }
      return false;
    }
  }
  for (std::size_t r = 0; r < kRealmCount; ++r) {
    for (std::size_t rtcp = 0; rtcp < 2; ++rtcp) {
      const std::uint32_t index =
          static_cast<std::uint32_t>(stream.port[r]) - slots_[r].portMin + static_cast<std::uint32_t>(rtcp);
      const FlowRule* old = slots_[r].rules[index].exchange(built[r][rtcp], std::memory_order_acq_rel);
      if (old != nullptr) retireRule(old);
    }
  }
  return true;
}

bool FlowTable::installStream(StreamId id, std::uint16_t label,
                              std::array<std::uint16_t, kRealmCount> ports) {
  if (streams_.count(id) != 0) return false;
  for (std::size_t r = 0; r < kRealmCount; ++r) {
    std::uint32_t index = static_cast<std::uint32_t>(ports[r]) - slots_[r].portMin;
    if (index + 1 >= slots_[r].size) return false;
    if (slots_[r].rules[index].load(std::memory_order_relaxed) != nullptr ||
        slots_[r].rules[index + 1].load(std::memory_order_relaxed) != nullptr)
      return false;
  }
  Stream stream;
  stream.id = id;
  stream.label = label < kMaxLabels ? label : 0;
  stream.port = ports;
  const auto freeEntries = [&stream] {
    for (auto& realmEntries : stream.entries)
      for (FlowEntry* entry : realmEntries) rte_free(entry);  // never published
  };
  for (std::size_t r = 0; r < kRealmCount; ++r) {
    for (std::size_t rtcp = 0; rtcp < 2; ++rtcp) {
      void* block = rte_malloc("sbc_flow_entry", sizeof(FlowEntry), RTE_CACHE_LINE_SIZE);
      if (block == nullptr) {
        freeEntries();
        return false;
      }
      auto* entry = new (block) FlowEntry;
      entry->realm = static_cast<Realm>(r);
      entry->rtcp = rtcp == 1;
      stream.entries[r][rtcp] = entry;
    }
  }
  stream.baseline = sumSlots(stream);
  if (!publishRules(stream)) {
    freeEntries();
    return false;
  }
  streams_.emplace(id, stream);
  flows_ += 4;
  return true;
}

bool FlowTable::updateLeg(StreamId id, Realm realm, const LegMedia& leg) {
  auto it = streams_.find(id);
  if (it == streams_.end()) return false;
  Stream& stream = it->second;
  const std::size_t r = static_cast<std::size_t>(realm);
  const LegMedia before = stream.legs[r];
  const std::uint32_t epochBefore = stream.latchEpoch[r];
  stream.legs[r] = leg;
  if (leg.latch) stream.latchEpoch[r] = nextEpoch_++;  // learn afresh
  if (publishRules(stream)) return true;
  stream.legs[r] = before;  // out of DPDK memory: the stream forwards as it did
  stream.latchEpoch[r] = epochBefore;
  return false;
}

bool FlowTable::removeStream(StreamId id) {
  auto it = streams_.find(id);
  if (it == streams_.end()) return false;
  Stream& stream = it->second;
  for (std::size_t r = 0; r < kRealmCount; ++r) {
    std::uint32_t index = static_cast<std::uint32_t>(stream.port[r]) - slots_[r].portMin;
    for (std::uint32_t k = 0; k < 2; ++k) {
      const FlowRule* old = slots_[r].rules[index + k].exchange(nullptr, std::memory_order_acq_rel);
      if (old != nullptr) retireRule(old);
    }
  }
  for (std::size_t r = 0; r < kRealmCount; ++r)
    for (std::size_t rtcp = 0; rtcp < 2; ++rtcp) retire(stream.entries[r][rtcp], kEntry);
  streams_.erase(it);
  flows_ -= 4;
  return true;
}

StreamCounters FlowTable::sumSlots(const Stream& stream) const {
  StreamCounters out;
  for (std::size_t r = 0; r < kRealmCount; ++r) {
    const std::uint32_t index = static_cast<std::uint32_t>(stream.port[r]) - slots_[r].portMin;
    for (unsigned w = 0; w < maxWorkers_; ++w) {
      for (std::uint32_t k = 0; k < 2; ++k) {
        const FlowCounters& c = counters_[w][r][index + k];
        out.packets[r] += read(c.packets);
        out.bytes[r] += read(c.bytes);
        out.dropped[r] += read(c.dropped);
      }
    }
  }
  return out;
}

std::optional<StreamCounters> FlowTable::streamCounters(StreamId id) const {
  auto it = streams_.find(id);
  if (it == streams_.end()) return std::nullopt;
  StreamCounters out = sumSlots(it->second);
  const StreamCounters& base = it->second.baseline;
  for (std::size_t r = 0; r < kRealmCount; ++r) {
    out.packets[r] -= base.packets[r];
    out.bytes[r] -= base.bytes[r];
    out.dropped[r] -= base.dropped[r];
  }
  return out;
}

std::uint64_t FlowTable::lastSeen(StreamId id, Realm realm) const {
  auto it = streams_.find(id);
  if (it == streams_.end()) return 0;
  const std::size_t r = static_cast<std::size_t>(realm);
  const std::uint32_t index = static_cast<std::uint32_t>(it->second.port[r]) - slots_[r].portMin;
  std::uint64_t newest = 0;
  for (unsigned w = 0; w < maxWorkers_; ++w) {
    for (std::uint32_t k = 0; k < 2; ++k) {
      const std::uint64_t seen = counters_[w][r][index + k].lastSeen.load(std::memory_order_relaxed);
      if (seen > newest) newest = seen;
    }
  }
  return newest;
}

}  // namespace sbc::dataplane::dpdk
