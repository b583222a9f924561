#pragma once
// The DPDK relay's flow table: (local address → realm, UDP port) → flow entry.
//
// Why a direct-indexed array and not rte_hash: the SBC allocates its own media ports from a
// bounded range per realm, so the key space is small and dense. A slot per port
// (index = port - portMin, RTCP on port + 1) of atomic pointers is one bounds check and one
// acquire load per packet, needs no hashing, never rehashes or moves entries and has no
// writer-side locking at all (the control thread is the only writer of slots and rules).
// 64k ports × 8 bytes × 2 realms is at most 1 MB.
//
// A slot holds the flow's immutable FlowRule directly (one dependent load per packet); the
// per-worker counters are dense arrays indexed like the slots, so they can be prefetched
// from the port number alone. A FlowEntry (per realm, RTP or RTCP) holds the only mutable
// per-flow state, the latched source, and lives from installStream to removeStream; rules
// are replaced whole on updateLeg. Retired rules and entries go
// to an rte_rcu_qsbr deferred queue and are freed once every worker has reported a
// quiescent state since (workers report once per loop iteration), so the control thread
// never waits for workers. Neighbour slots go the same way: a rule carries its peer's slot
// (reference-counted here), and the slot is freed with the last rule carrying it. Workers
// write only the per-entry fields they own: the latched source (a single-writer seqlock) and
// last-seen time, and their own counters.
//
// Slots, counters, rules and entries live in DPDK memory (rte_malloc on the ports' NUMA
// socket): hugepages in production, where 10,000 calls' flow state then needs a handful of
// TLB entries instead of thousands of 4 KiB pages (a TLB miss under a hypervisor is a
// two-dimensional page walk). Measured in docs/performance.md.

#include <rte_rcu_qsbr.h>

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <new>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "dataplane/dpdk/counters.h"
#include "dataplane/dpdk/neighbour_table.h"
#include "dataplane/media_relay.h"
#include "dataplane/relay_settings.h"

namespace sbc::dataplane::dpdk {

inline constexpr std::size_t kMaxOnLinkPrefixes = 16;

struct MaskedPrefix {
  std::uint64_t net0 = 0, net1 = 0, mask0 = 0, mask1 = 0;
  bool contains(std::uint64_t a0, std::uint64_t a1) const noexcept {
    return (a0 & mask0) == net0 && (a1 & mask1) == net1;
  }
};

// An IPv4 source prefix in a rule's first cache line: address and mask as stored.
struct Prefix4 {
  std::uint32_t net = 0, mask = 0;
  bool contains(std::uint32_t address) const noexcept { return (address & mask) == net; }
};

struct FlowEntry;

// Immutable once published. Describes packets arriving at one SBC port in realm `in`.
// The first cache line holds everything a `direct` rule's packets read (the common trunk
// case: IPv4 from up to kInlinePrefixes4 source prefixes to the SDP peer), so they touch
// one line of it. Other packets also read the second line, which holds the latching state
// and the first of the allowed source prefixes (any number, in the same block of DPDK
// memory), then the rarely read peerRtpEntry. 10,000 calls' rules fit a few megabytes
// (hugepages in production: few TLB entries). Allocated at a cache-line boundary.
struct FlowRule {
  static constexpr std::size_t kInlinePrefixes4 = 3;
  // --- first line ---
  const NeighbourTable::Slot* peerNeighbour = nullptr;  // its MAC, resolved or not
  RawAddress peer;                       // the other side's SDP address (egress)
  std::uint16_t label = 0;
  std::uint16_t srcPortBe = 0;   // the SBC's port in the other realm (network order)
  std::uint16_t peerPortBe = 0;
  std::uint16_t prefixCount = 0;
  // IPv4 on both sides: the part of the checksum updates that every packet of this rule
  // shares (the SBC's address and port it arrived at, the SBC's address and port it leaves
  // from, `peer` and peerPortBe, the TTL decrement), folded. A packet adds only its own
  // source address, source port and DSCP change (and a latched destination's difference
  // from `peer`).
  std::uint16_t ipv4HeaderSum = 0;
  std::uint16_t ipv4UdpSum = 0;
  bool active : 1 = true;  // false: the port is not served (RTCP port under rtcp-mux)
  bool latch : 1 = false;
  bool hasPeer : 1 = false;  // the other side's SDP address is known
  bool peerLatch : 1 = false;
  // IPv4 on both sides, active, towards the SDP peer through the neighbour slot the rule
  // carries, or towards a latching side: forwarded with the sums above, reading nothing
  // past the first line unless a side latches or this one has more than kInlinePrefixes4
  // prefixes.
  bool direct : 1 = false;
  // IPv4 rules with at most kInlinePrefixes4 prefixes: the same prefixes as prefixes().
  std::array<Prefix4, kInlinePrefixes4> prefixes4{};
  // --- second line ---
  const FlowEntry* entry = nullptr;      // this flow's latched source
  const FlowEntry* peerEntry = nullptr;  // where the other side's latched source is learnt
  std::uint32_t latchEpoch = 0;
  std::uint32_t peerLatchEpoch = 0;

  // The block a rule with `prefixes` source prefixes needs (see FlowTable::buildRule).
  static constexpr std::size_t bytesFor(std::size_t prefixes) noexcept {
    return sizeof(FlowRule) + prefixes * sizeof(MaskedPrefix) + sizeof(const FlowEntry*);
  }
  const MaskedPrefix* prefixes() const noexcept {
    return std::launder(reinterpret_cast<const MaskedPrefix*>(this + 1));
  }
  // RTCP (without rtcp-mux) towards a latching side whose RTCP has not latched yet goes to
  // its latched RTP address, port + 1.
  const FlowEntry* peerRtpEntry() const noexcept {
    return *std::launder(reinterpret_cast<const FlowEntry* const*>(prefixes() + prefixCount));
  }
};
static_assert(offsetof(FlowRule, entry) == 64, "a direct rule's fields fill the first line");
static_assert(sizeof(FlowRule) + sizeof(MaskedPrefix) <= 128,
              "the first source prefix is in the second line");
static_assert(sizeof(MaskedPrefix) == 32 && alignof(MaskedPrefix) <= 64);

// The latched source: written by one worker (the one receiving the flow's packets),
// read by any worker. Seqlock without retry: a torn read counts as "not latched".
struct LatchedSource {
  std::atomic<std::uint32_t> seq{0};
  std::atomic<std::uint32_t> epoch{0};
  std::atomic<std::uint64_t> addr0{0}, addr1{0};
  std::atomic<std::uint16_t> portBe{0};

  // Called on a worker lcore; the single writer.
  void write(std::uint32_t ep, std::uint64_t a0, std::uint64_t a1, std::uint16_t port) noexcept {
    std::uint32_t s = seq.load(std::memory_order_relaxed);
    seq.store(s + 1, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_release);
    addr0.store(a0, std::memory_order_relaxed);
    addr1.store(a1, std::memory_order_relaxed);
    portBe.store(port, std::memory_order_relaxed);
    epoch.store(ep, std::memory_order_relaxed);
    seq.store(s + 2, std::memory_order_release);
  }
  // Any thread. True with the address when latched under `ep`.
  bool read(std::uint32_t ep, std::uint64_t& a0, std::uint64_t& a1,
            std::uint16_t& port) const noexcept {
    std::uint32_t s1 = seq.load(std::memory_order_acquire);
    if (s1 & 1u) return false;
    std::uint32_t e = epoch.load(std::memory_order_relaxed);
    a0 = addr0.load(std::memory_order_relaxed);
    a1 = addr1.load(std::memory_order_relaxed);
    port = portBe.load(std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_acquire);
    return seq.load(std::memory_order_relaxed) == s1 && e == ep && ep != 0;
  }
};

struct alignas(64) FlowEntry {
  Realm realm = Realm::access;
  bool rtcp = false;
  // Worker-owned (written through const pointers by the receiving worker only).
  alignas(64) mutable LatchedSource latched;
};

class FlowTable {
 public:
  // maxWorkers: RCU reader ids 0..maxWorkers-1. Throws on bad settings or when DPDK memory
  // for the RCU variable or the deferred queue is not available (EAL must be initialised).
  FlowTable(const RelaySettings& settings, unsigned maxWorkers);
  ~FlowTable();  // workers must have stopped (offline) before
  FlowTable(const FlowTable&) = delete;
  FlowTable& operator=(const FlowTable&) = delete;

  // --- read side: called on a worker lcore; lock-free, wait-free ---
  // The realm a datagram to `dst` (IPv4, or IPv6 as two words), UDP port `dstPort` (host
  // order), is for, or -1. Both realms may share one media address with their port ranges
  // apart (the config allows it): the range holding the port decides, else the first realm
  // with the address (whose slot lookup then finds no flow).
  int realmOf4(std::uint32_t dstBe, std::uint16_t dstPort) const noexcept {
    int found = -1;
    for (std::size_t r = 0; r < kRealmCount; ++r) {
      if (!v4_[r] || addr4_[r] != dstBe) continue;
      if (slotOf(static_cast<unsigned>(r), dstPort) != kNoSlot) return static_cast<int>(r);
      if (found < 0) found = static_cast<int>(r);
    }
    return found;
  }
  int realmOf6(std::uint64_t d0, std::uint64_t d1, std::uint16_t dstPort) const noexcept {
    int found = -1;
    for (std::size_t r = 0; r < kRealmCount; ++r) {
      if (v4_[r] || address_[r].word(0) != d0 || address_[r].word(1) != d1) continue;
      if (slotOf(static_cast<unsigned>(r), dstPort) != kNoSlot) return static_cast<int>(r);
      if (found < 0) found = static_cast<int>(r);
    }
    return found;
  }
  // The realm and flow slot of a datagram to `dstBe` (IPv4), UDP port `dstPort`; false when
  // the port is not in the range of a realm with that address (realmOf4 + slotOf in one).
  bool slotOf4(std::uint32_t dstBe, std::uint16_t dstPort, unsigned& realm,
               std::uint32_t& index) const noexcept {
    for (unsigned r = 0; r < kRealmCount; ++r) {
      const std::uint32_t i = static_cast<std::uint32_t>(dstPort) - slots_[r].portMin;
      if (v4_[r] && addr4_[r] == dstBe && i < slots_[r].size) {
        realm = r;
        index = i;
        return true;
      }
    }
    return false;
  }
  static constexpr std::uint32_t kNoSlot = ~0u;
  std::uint32_t slotOf(unsigned realm, std::uint16_t port) const noexcept {
    const std::uint32_t index = static_cast<std::uint32_t>(port) - slots_[realm].portMin;
    return index < slots_[realm].size ? index : kNoSlot;
  }
  const std::atomic<const FlowRule*>* slot(unsigned realm, std::uint32_t index) const noexcept {
    return &slots_[realm].rules[index];
  }
  const FlowRule* find(unsigned realm, std::uint16_t port) const noexcept {
    const std::uint32_t index = slotOf(realm, port);
    return index == kNoSlot ? nullptr : slot(realm, index)->load(std::memory_order_acquire);
  }
  // The calling worker's counters of a slot (written by that worker only).
  FlowCounters& counters(unsigned worker, unsigned realm, std::uint32_t index) const noexcept {
    return counters_[worker][realm][index];
  }
  const RawAddress& address(unsigned realm) const noexcept { return address_[realm]; }
  std::uint32_t address4(unsigned realm) const noexcept { return addr4_[realm]; }
  bool isV4(unsigned realm) const noexcept { return v4_[realm]; }
  // The on-link neighbour packets to `destination` in `realm` go to: the destination itself,
  // or the realm's gateway when one is set and the destination is outside its on-link
  // prefixes. Any thread; no allocation (a few compares).
  const RawAddress& nextHop(unsigned realm, const RawAddress& destination) const noexcept {
    const Routing& routing = routing_[realm];
    if (!routing.hasGateway) return destination;
    const std::uint64_t d0 = destination.word(0), d1 = destination.word(1);
    for (std::uint8_t i = 0; i < routing.onLinkCount; ++i) {
      if (routing.onLink[i].contains(d0, d1)) return destination;
    }
    return routing.gateway;
  }

  // The realm's gateway's neighbour slot when packets to `destination` (IPv4, as stored)
  // go through it; nullptr when they go to the destination itself (on link), or without a
  // gateway or neighbour table. Any thread; the slot is pinned (never freed).
  const NeighbourTable::Slot* gatewayFor4(unsigned realm, std::uint32_t destination) const noexcept {
    const Routing& routing = routing_[realm];
    if (routing.gatewaySlot == nullptr) return nullptr;
    std::uint64_t d0 = 0;
    std::memcpy(&d0, &destination, 4);
    for (std::uint8_t i = 0; i < routing.onLinkCount; ++i) {
      if (routing.onLink[i].contains(d0, 0)) return nullptr;
    }
    return routing.gatewaySlot;
  }

  // --- control side: one thread at a time (the caller serialises); never waits on workers ---
  // Publishes the stream's RTP and RTCP entries on `ports` (the SBC's even RTP port per
  // realm); packets are dropped (source not allowed) until a leg allows a source. False
  // when the ports are taken or out of range, or without DPDK memory for the stream.
  bool installStream(StreamId id, std::uint16_t label, std::array<std::uint16_t, kRealmCount> ports);
  // False for an unknown stream, or without DPDK memory (the stream's rules stay as they were).
  bool updateLeg(StreamId id, Realm realm, const LegMedia& leg);
  // Unpublishes and retires the entries; memory is freed after the grace period.
  bool removeStream(StreamId id);
  bool hasStream(StreamId id) const { return streams_.count(id) != 0; }
  std::optional<StreamCounters> streamCounters(StreamId id) const;
  // Newest last-seen TSC of the stream's entries in `realm` (0: never).
  std::uint64_t lastSeen(StreamId id, Realm realm) const;
  std::size_t flowCount() const noexcept { return flows_; }
  // Frees what the grace period allows; non-blocking.
  void reclaim() noexcept;
  // Control thread, each housekeeping period: frees neighbour entries no rule carries (made
  // by workers for latched destinations) that have not been used for `idleCycles`, looking
  // at 1/64 of the table per call (all of it every 64 calls); see NeighbourTable::expireIdle.
  std::size_t expireIdleNeighbours(std::uint64_t now, std::uint64_t idleCycles,
                                   std::size_t slots = NeighbourTable::kSlots / 64) noexcept;
  // Test helper: blocks until every online reader has passed a quiescent state.
  void synchronize() noexcept;

  rte_rcu_qsbr* qsbr() const noexcept { return qsbr_; }
  // Rules built from now on carry their peer's neighbour slot (acquired here, released when
  // the rule is retired, freed after the grace period), so the fast path reads the MAC
  // without a hash lookup. Pins the realms' gateways. Control thread, before workers start.
  void setNeighbours(NeighbourTable* neighbours) noexcept;

 private:
  struct RteFree {
    void operator()(void* p) const noexcept;
  };
  template <typename T>
  using DpdkArray = std::unique_ptr<T[], RteFree>;
  struct Slots {
    std::uint32_t portMin = 0;
    std::uint32_t size = 0;  // ports portMin .. portMax + 1 (RTCP of the last RTP port)
    DpdkArray<std::atomic<const FlowRule*>> rules;
  };
  struct Stream {
    StreamId id = 0;
    std::uint16_t label = 0;
    std::array<std::uint16_t, kRealmCount> port{};
    std::array<LegMedia, kRealmCount> legs;
    std::array<std::uint32_t, kRealmCount> latchEpoch{};
    std::array<std::array<FlowEntry*, 2>, kRealmCount> entries{};  // [realm][rtcp]
    StreamCounters baseline;  // what the slots' counters held at install (earlier streams)
  };
  StreamCounters sumSlots(const Stream& stream) const;
  template <typename T>
  static DpdkArray<T> dpdkArray(std::size_t count, const char* what);
  // A rule in DPDK memory, or nullptr when there is none.
  FlowRule* buildRule(const Stream& stream, Realm in, bool rtcp) const;
  // Replaces the stream's four rules; false (nothing replaced) without DPDK memory.
  bool publishRules(Stream& stream);
  void releaseNeighbourOf(const FlowRule& rule) noexcept;
  void retire(void* pointer, std::uint32_t kind) noexcept;
  void retireRule(const FlowRule* rule) noexcept;
  static void freeRetired(void* p, void* elements, unsigned int n);

  std::array<Slots, kRealmCount> slots_;
  // [worker][realm][slot]; mutable: workers write their own through a const table.
  std::array<std::array<DpdkArray<FlowCounters>, kRealmCount>, kMaxWorkers> counters_;
  std::array<RawAddress, kRealmCount> address_;
  std::array<std::uint32_t, kRealmCount> addr4_{};
  std::array<bool, kRealmCount> v4_{};
  struct Routing {
    bool hasGateway = false;
    RawAddress gateway;
    const NeighbourTable::Slot* gatewaySlot = nullptr;  // pinned: never freed
    std::uint8_t onLinkCount = 0;
    std::array<MaskedPrefix, kMaxOnLinkPrefixes> onLink{};
  };
  std::array<Routing, kRealmCount> routing_{};
  std::unordered_map<StreamId, Stream> streams_;
  std::uint32_t nextEpoch_ = 1;
  std::size_t flows_ = 0;
  unsigned maxWorkers_;
  NeighbourTable* neighbours_ = nullptr;
  std::size_t neighbourCursor_ = 0;  // where expireIdleNeighbours goes on
  rte_rcu_qsbr* qsbr_ = nullptr;
  rte_rcu_qsbr_dq* dq_ = nullptr;
};

MaskedPrefix toMasked(const policy::IpPrefix& prefix) noexcept;
RawAddress toRaw(const policy::IpAddress& address) noexcept;

}  // namespace sbc::dataplane::dpdk
