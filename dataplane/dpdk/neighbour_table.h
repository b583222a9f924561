#pragma once
// IP → Ethernet address of on-link neighbours (peers or next hops), for the fast path.
// Open addressing over a fixed array, never resized. Lock-free for readers: a slot is
// claimed with a compare-and-swap on its state (rare: control thread, or a worker resolving
// a latched address), its address is written before the state is published (release), and
// readers (workers, per packet) do acquire loads only. The MAC is one atomic 64-bit word
// (bit 63 = valid); a neighbour's MAC may change and is overwritten in place.
//
// Why slots are freed, and how: every on-link SDP peer address takes a slot (rules carry
// their peer's slot), so offers naming ever-new addresses would fill the table and no new
// call's media could then be resolved. The control thread counts the rules referring to a
// slot (workers never write the count); when the last one is retired the slot is marked
// retiring (invisible to find and claim) and handed to the flow table's RCU deferred queue
// with the rule, and only after that grace period, when no worker can still hold a pointer
// to it, does it become a tombstone that claim reuses. Tombstones keep probe chains intact
// (find passes over them), and claim reuses the first one on its chain, so churn never
// fills the table. Pinned slots (static neighbours, the realms' gateways) are never freed.
// Slots a worker claims for a latched destination (no rule refers to them) are freed the
// same way once nobody has used them for a while (expireIdle, run by the control thread):
// the worker notes their use at most about once a second (lastUsed).

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>

namespace sbc::dataplane::dpdk {

// An address as the fast path sees it: 16 bytes, IPv4 in the first four (network order).
struct alignas(8) RawAddress {
  std::array<std::uint8_t, 16> bytes{};
  std::uint64_t word(unsigned i) const noexcept {
    std::uint64_t w;
    std::memcpy(&w, bytes.data() + 8 * i, 8);
    return w;
  }
  // Two word compares (a defaulted == on the array calls memcmp).
  friend bool operator==(const RawAddress& a, const RawAddress& b) noexcept {
    return a.word(0) == b.word(0) && a.word(1) == b.word(1);
  }
};

class NeighbourTable {
 public:
  static constexpr std::uint64_t kValid = 1ull << 63;
  static constexpr std::size_t kSlots = 65536;  // power of two (4 MB)
  static constexpr std::size_t kMaxProbe = 32;

  enum State : std::uint32_t {
    kFree = 0,       // never used: ends every probe chain
    kClaiming = 1,   // its address is being written
    kReady = 2,      // an entry
    kRetiring = 3,   // released, waiting for the grace period: skipped, not reusable
    kTombstone = 4,  // released and graced: skipped by find, reused by claim
  };

  struct alignas(64) Slot {
    std::atomic<std::uint32_t> state{kFree};
    RawAddress address;                   // immutable while ready
    std::atomic<std::uint64_t> mac{0};    // 48-bit MAC | kValid, 0 = unresolved
    std::atomic<std::uint64_t> lastRequest{0};  // TSC of the last ARP/ND request (a hint)
    mutable std::atomic<std::uint64_t> lastUsed{0};  // TSC, roughly: entries no rule carries
    // Control thread only (workers never read or write them).
    std::uint32_t references = 0;  // rules carrying this slot
    bool pinned = false;           // a static neighbour or a gateway: never freed

    // Any worker; whether a request for this neighbour may go out at `now` (and if so, it
    // is noted as sent). Racing workers may both send one: harmless.
    bool requestDue(std::uint64_t now, std::uint64_t interval) noexcept {
      const std::uint64_t last = lastRequest.load(std::memory_order_relaxed);
      if (last != 0 && now - last < interval) return false;
      lastRequest.store(now, std::memory_order_relaxed);
      return true;
    }
    // Any worker, per packet to a neighbour no rule carries: a load, and a store only when
    // the last one is about 2^30 cycles (a fraction of a second) old, so the line stays
    // shared between workers.
    void noteUse(std::uint64_t now) const noexcept {
      if ((now - lastUsed.load(std::memory_order_relaxed)) >> 30 != 0)
        lastUsed.store(now, std::memory_order_relaxed);
    }
  };

  NeighbourTable() : slots_(std::make_unique<Slot[]>(kSlots)) {}

  // Called on a worker lcore or the control thread; lock-free. The slot for `address`, or
  // nullptr when it has none.
  const Slot* find(const RawAddress& address) const noexcept {
    std::size_t i = home(address);
    for (std::size_t probe = 0; probe < kMaxProbe; ++probe, i = (i + 1) & (kSlots - 1)) {
      const Slot& slot = slots_[i];
      const std::uint32_t state = slot.state.load(std::memory_order_acquire);
      if (state == kFree) return nullptr;
      if (state == kReady && slot.address == address) return &slot;
    }
    return nullptr;
  }

  // Any thread; lock-free (one CAS when the address is new). The address's entry, made in
  // the first free slot or tombstone of its chain when there is none; nullptr when the probe
  // window has neither (the caller counts it).
  Slot* claim(const RawAddress& address) noexcept {
    for (int attempt = 0; attempt < 4; ++attempt) {
      Slot* candidate = nullptr;
      std::uint32_t candidateState = kFree;
      std::size_t i = home(address);
      for (std::size_t probe = 0; probe < kMaxProbe; ++probe, i = (i + 1) & (kSlots - 1)) {
        Slot& slot = slots_[i];
        std::uint32_t state = slot.state.load(std::memory_order_acquire);
        while (state == kClaiming) state = slot.state.load(std::memory_order_acquire);  // ns
        if (state == kReady && slot.address == address) return &slot;
        if ((state == kFree || state == kTombstone) && candidate == nullptr) {
          candidate = &slot;
          candidateState = state;
        }
        if (state == kFree) break;  // the chain ends: the address is not further on
      }
      if (candidate == nullptr) return nullptr;
      std::uint32_t expected = candidateState;
      if (candidate->state.compare_exchange_strong(expected, kClaiming,
                                                   std::memory_order_acq_rel)) {
        candidate->address = address;
        candidate->mac.store(0, std::memory_order_relaxed);
        candidate->lastRequest.store(0, std::memory_order_relaxed);
        candidate->lastUsed.store(0, std::memory_order_relaxed);
        candidate->state.store(kReady, std::memory_order_release);
        inUse_.fetch_add(1, std::memory_order_relaxed);  // rare (a new neighbour), not per packet
        return candidate;
      }
      // Another thread took it, perhaps for this address: look again.
    }
    return nullptr;
  }

  // Any thread; lock-free. Learns `mac48` into the entries of `address` that exist (ARP and
  // ND never make one: anyone on the link could otherwise fill the table). Every entry: a
  // rare race (a claim while a tombstone appears earlier on the chain) can give an address
  // two, and each must resolve. False when there is none.
  bool learn(const RawAddress& address, std::uint64_t mac48) noexcept {
    bool learnt = false;
    std::size_t i = home(address);
    for (std::size_t probe = 0; probe < kMaxProbe; ++probe, i = (i + 1) & (kSlots - 1)) {
      Slot& slot = slots_[i];
      const std::uint32_t state = slot.state.load(std::memory_order_acquire);
      if (state == kFree) break;
      if (state == kReady && slot.address == address) {
        slot.mac.store((mac48 & 0xffffffffffffull) | kValid, std::memory_order_release);
        learnt = true;
      }
    }
    return learnt;
  }

  // Control thread: a static neighbour, pinned (never freed).
  bool set(const RawAddress& address, std::uint64_t mac48) noexcept {
    Slot* slot = pin(address);
    if (slot == nullptr) return false;
    slot->mac.store((mac48 & 0xffffffffffffull) | kValid, std::memory_order_release);
    return true;
  }
  // Control thread: the entry of a neighbour that must never be freed (a gateway).
  Slot* pin(const RawAddress& address) noexcept {
    Slot* slot = claim(address);
    if (slot != nullptr) slot->pinned = true;
    return slot;
  }

  // Control thread: a rule now carries `address`'s slot (nullptr when the table is full).
  Slot* acquire(const RawAddress& address) noexcept {
    Slot* slot = claim(address);
    if (slot != nullptr) ++slot->references;
    return slot;
  }
  // Control thread: a rule carrying `slot` has been retired. True when that was the last
  // one and the slot is now retiring: the caller hands it to recycle() after a grace period.
  bool release(Slot* slot) noexcept {
    if (--slot->references != 0 || slot->pinned) return false;
    slot->state.store(kRetiring, std::memory_order_release);
    inUse_.fetch_sub(1, std::memory_order_relaxed);
    return true;
  }
  // Control thread: of the `count` slots from `*cursor` on (which advances, wrapping), the
  // entries no rule carries and nobody pinned that no worker has used or asked for during
  // the last `idle` cycles become retiring, and each is passed to `retire` (which hands it
  // to recycle() after a grace period). An entry seen for the first time is stamped `now`
  // (a fresh claim's worker may not have noted its use yet). Returns how many expired.
  template <typename Retire>
  std::size_t expireIdle(std::size_t* cursor, std::size_t count, std::uint64_t now,
                         std::uint64_t idle, Retire&& retire) noexcept {
    std::size_t expired = 0;
    for (std::size_t n = 0; n < count; ++n) {
      Slot& slot = slots_[*cursor];
      *cursor = (*cursor + 1) & (kSlots - 1);
      if (slot.state.load(std::memory_order_acquire) != kReady || slot.references != 0 ||
          slot.pinned)
        continue;
      const std::uint64_t used = std::max(slot.lastUsed.load(std::memory_order_relaxed),
                                          slot.lastRequest.load(std::memory_order_relaxed));
      if (used == 0) {
        slot.lastUsed.store(now, std::memory_order_relaxed);
        continue;
      }
      if (now - used < idle || used > now) continue;
      slot.state.store(kRetiring, std::memory_order_release);
      inUse_.fetch_sub(1, std::memory_order_relaxed);
      retire(&slot);
      ++expired;
    }
    return expired;
  }

  // Control thread, once no worker can hold `slot` (a grace period after release()).
  void recycle(Slot* slot) noexcept {
    slot->mac.store(0, std::memory_order_relaxed);
    slot->lastRequest.store(0, std::memory_order_relaxed);
    slot->lastUsed.store(0, std::memory_order_relaxed);
    slot->state.store(kTombstone, std::memory_order_release);
  }

  // Any thread: how many addresses have an entry (kept as entries are made and released).
  std::size_t entries() const noexcept { return inUse_.load(std::memory_order_relaxed); }

  // 0 when unknown, else the MAC | kValid.
  std::uint64_t lookup(const RawAddress& address) const noexcept {
    const Slot* slot = find(address);
    return slot == nullptr ? 0 : slot->mac.load(std::memory_order_acquire);
  }

  // Where `a`'s probe chain starts (tests place addresses with it).
  static std::size_t home(const RawAddress& a) noexcept {
    std::uint64_t h = (a.word(0) * 0x9E3779B97F4A7C15ull) ^ (a.word(1) * 0xC2B2AE3D27D4EB4Full);
    return static_cast<std::size_t>(h >> 40) & (kSlots - 1);
  }
  // Tests: the slot at `index`.
  const Slot& at(std::size_t index) const noexcept { return slots_[index & (kSlots - 1)]; }

 private:
  std::unique_ptr<Slot[]> slots_;
  std::atomic<std::size_t> inUse_{0};
};

}  // namespace sbc::dataplane::dpdk
