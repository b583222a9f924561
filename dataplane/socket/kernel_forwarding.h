#pragma once
// The socket driver's in-kernel forwarding (RelaySettings::kernelForwarding): loads the TC
// program of bpf/media_forward.bpf.c (embedded in the binary), attaches it at ingress of the
// interfaces that hold the realms' media addresses, and gives the worker its two maps.
//
// The worker stays the authority: it writes a relay port's entry only when it knows every
// packet's fate there (see forwarding_abi.h), and the kernel hands everything else to the
// socket as before. What the kernel forwarded it reads back from the counters map, which is
// mapped into this process (no system call per read).
//
// Attachment: a TCX link (Linux 6.6 or later), which the kernel removes when this process
// goes away, even after a crash; older kernels get a clsact filter instead (handle 0x5bc),
// removed by the destructor and replaced by the next sbcd if a crash left it behind.
// Needs CAP_BPF and CAP_NET_ADMIN (or CAP_SYS_ADMIN).

#include <array>
#include <cstdint>
#include <optional>
#include <vector>

#include "dataplane/media_relay.h"
#include "dataplane/relay_settings.h"
#include "dataplane/socket/bpf/forwarding_abi.h"

struct bpf_object;

namespace sbc::dataplane {

class KernelForwarding {
 public:
  // `tcFilter`: attach as a clsact filter even where TCX links exist. Throws
  // std::system_error naming the step that failed.
  KernelForwarding(const std::array<RealmMedia, kRealmCount>& realms, bool tcFilter);
  ~KernelForwarding();
  KernelForwarding(const KernelForwarding&) = delete;
  KernelForwarding& operator=(const KernelForwarding&) = delete;

  // Any thread (the kernel serialises map updates; readers see the old or the new entry).
  bool put(const MediaAddress& relayPort, const sbc_fwd_flow& flow) noexcept;
  void erase(const MediaAddress& relayPort) noexcept;

  struct Egress {
    sbc_fwd_egress how = SBC_FWD_LOCAL;
    std::uint32_t ifindex = 0;
  };
  // How the program sends a packet that leaves `realm` towards `peer`; nullopt when it
  // cannot (the realm's address is on loopback and the peer is not on this host).
  std::optional<Egress> egressTo(Realm realm, const policy::IpAddress& peer) const noexcept;

  // What the program forwarded through relay port `slot` so far, and the handoff counts
  // (forwarding_abi.h). The program writes these words concurrently: each is read with an
  // atomic load; `handled` is the worker's to write (atomic store).
  sbc_fwd_counters& counters(std::uint32_t slot) const noexcept { return counters_[slot]; }
  // The counters slot of a relay port (one per port of both realms' ranges).
  std::uint32_t slotOf(std::size_t realm, std::uint16_t port) const noexcept {
    return slotBase_[realm] + (port - realms_[realm].portMin);
  }
  // A number that changes whenever the program forwards a datagram or leaves one to a relay
  // port's socket (one system call: the per-CPU counts summed).
  std::uint64_t activity() const noexcept;

 private:
  struct Attachment {
    int ifindex = 0;
    int linkFd = -1;          // TCX
    bool legacyFilter = false;  // clsact filter instead
    bool createdQdisc = false;
  };

  void attach(int ifindex, bool tcFilter);
  void detachAll() noexcept;

  bpf_object* object_ = nullptr;
  int programFd_ = -1;
  int flowsFd_ = -1;
  int activityFd_ = -1;
  mutable std::vector<std::uint64_t> perCpu_;  // activity()'s buffer, one per possible CPU
  sbc_fwd_counters* counters_ = nullptr;
  std::size_t countersBytes_ = 0;
  const std::array<RealmMedia, kRealmCount> realms_;
  std::array<std::uint32_t, kRealmCount> slotBase_{};
  std::uint32_t slots_ = 0;
  std::array<int, kRealmCount> realmIfindex_{};
  std::vector<policy::IpAddress> localAddresses_;  // of this host, when the relay started
  std::vector<Attachment> attachments_;
};

}  // namespace sbc::dataplane
