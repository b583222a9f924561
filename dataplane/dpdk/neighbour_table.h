#pragma once
// IP → Ethernet address of on-link neighbours (peers or next hops), for the fast path.
// Open addressing over a fixed array, never resized, entries never removed (a neighbour's
// MAC may change: it is overwritten in place). Lock-free: a slot is claimed once with a
// compare-and-swap on its state (rare: control thread or a worker learning from ARP or ND), its
// address is written before the state is published (release), and readers (workers, per
// packet) do acquire loads only. The MAC is one atomic 64-bit word (bit 63 = valid).

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

  struct alignas(64) Slot {
    std::atomic<std::uint32_t> state{0};  // 0 free, 1 being claimed, 2 ready
    RawAddress address;                   // immutable once ready
    std::atomic<std::uint64_t> mac{0};    // 48-bit MAC | kValid, 0 = unresolved
    std::atomic<std::uint64_t> lastRequest{0};  // TSC of the last ARP/ND request (a hint)

    // Any worker; whether a request for this neighbour may go out at `now` (and if so, it
    // is noted as sent). Racing workers may both send one: harmless.
    bool requestDue(std::uint64_t now, std::uint64_t interval) noexcept {
      const std::uint64_t last = lastRequest.load(std::memory_order_relaxed);
      if (last != 0 && now - last < interval) return false;
      lastRequest.store(now, std::memory_order_relaxed);
      return true;
    }
  };

  NeighbourTable() : slots_(std::make_unique<Slot[]>(kSlots)) {}

  // Called on a worker lcore or the control thread; lock-free. The slot for `address`, or
  // nullptr when it has none.
  const Slot* find(const RawAddress& address) const noexcept {
    std::size_t i = hash(address);
    for (std::size_t probe = 0; probe < kMaxProbe; ++probe, i = (i + 1) & (kSlots - 1)) {
      const Slot& slot = slots_[i];
      std::uint32_t state = slot.state.load(std::memory_order_acquire);
      if (state == 0) return nullptr;
      if (state == 2 && slot.address == address) return &slot;
    }
    return nullptr;
  }

  // Any thread; lock-free (one CAS when the address is new). nullptr when the probe window
  // is full (the caller counts it).
  Slot* claim(const RawAddress& address) noexcept {
    std::size_t i = hash(address);
    for (std::size_t probe = 0; probe < kMaxProbe; ++probe, i = (i + 1) & (kSlots - 1)) {
      Slot& slot = slots_[i];
      std::uint32_t state = slot.state.load(std::memory_order_acquire);
      if (state == 0) {
        std::uint32_t expected = 0;
        if (slot.state.compare_exchange_strong(expected, 1, std::memory_order_acq_rel)) {
          slot.address = address;
          slot.state.store(2, std::memory_order_release);
          return &slot;
        }
        state = expected;
      }
      while (state == 1) state = slot.state.load(std::memory_order_acquire);  // a few ns
      if (slot.address == address) return &slot;
    }
    return nullptr;
  }

  bool set(const RawAddress& address, std::uint64_t mac48) noexcept {
    Slot* slot = claim(address);
    if (slot == nullptr) return false;
    slot->mac.store((mac48 & 0xffffffffffffull) | kValid, std::memory_order_release);
    return true;
  }

  // Control thread or tests: how many addresses have an entry (a scan of every slot).
  std::size_t entries() const noexcept {
    std::size_t n = 0;
    for (std::size_t i = 0; i < kSlots; ++i)
      n += slots_[i].state.load(std::memory_order_acquire) == 2 ? 1 : 0;
    return n;
  }

  // 0 when unknown, else the MAC | kValid.
  std::uint64_t lookup(const RawAddress& address) const noexcept {
    const Slot* slot = find(address);
    return slot == nullptr ? 0 : slot->mac.load(std::memory_order_acquire);
  }

 private:
  static std::size_t hash(const RawAddress& a) noexcept {
    std::uint64_t h = (a.word(0) * 0x9E3779B97F4A7C15ull) ^ (a.word(1) * 0xC2B2AE3D27D4EB4Full);
    return static_cast<std::size_t>(h >> 40) & (kSlots - 1);
  }
  std::unique_ptr<Slot[]> slots_;
};

}  // namespace sbc::dataplane::dpdk
