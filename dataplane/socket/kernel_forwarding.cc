#include "dataplane/socket/kernel_forwarding.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <string>
#include <system_error>

namespace sbc::dataplane {

extern const unsigned char kMediaForwardObject[];
extern const std::size_t kMediaForwardObjectSize;

namespace {

// linux/bpf.h of Debian 12 (Linux 6.1) predates TCX (6.6); the kernel's value.
constexpr int kTcxIngress = 46;
constexpr std::uint32_t kLegacyHandle = 0x5bc;
constexpr std::uint32_t kLegacyPriority = 1;

[[noreturn]] void fail(int error, const std::string& step) {
  throw std::system_error(error < 0 ? -error : (error == 0 ? EINVAL : error),
                          std::generic_category(), "media kernel forwarding: " + step);
}

// libbpf reports through a process-wide callback: its warnings name what the kernel refused
// (the verifier's log), worth a line on stderr; its debug chatter is not.
int libbpfPrint(libbpf_print_level level, const char* format, va_list arguments) {
  if (level == LIBBPF_DEBUG) return 0;
  std::fputs("libbpf: ", stderr);
  return std::vfprintf(stderr, format, arguments);
}

bool isLoopbackRange(const policy::IpAddress& address) {
  if (address.family == policy::IpFamily::v4) return address.bytes[0] == 127;
  static const auto kLoopback6 = *policy::IpAddress::parse("::1");
  return address == kLoopback6;
}

struct InterfaceAddress {
  policy::IpAddress address;
  int ifindex = 0;
};

std::vector<InterfaceAddress> interfaceAddresses() {
  std::vector<InterfaceAddress> out;
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) fail(errno, "cannot list the interfaces' addresses");
  for (const ifaddrs* entry = list; entry != nullptr; entry = entry->ifa_next) {
    if (entry->ifa_addr == nullptr) continue;
    InterfaceAddress item;
    if (entry->ifa_addr->sa_family == AF_INET) {
      const auto* in = reinterpret_cast<const sockaddr_in*>(entry->ifa_addr);
      item.address.family = policy::IpFamily::v4;
      std::memcpy(item.address.bytes.data(), &in->sin_addr, 4);
    } else if (entry->ifa_addr->sa_family == AF_INET6) {
      const auto* in = reinterpret_cast<const sockaddr_in6*>(entry->ifa_addr);
      item.address.family = policy::IpFamily::v6;
      std::memcpy(item.address.bytes.data(), &in->sin6_addr, 16);
    } else {
      continue;
    }
    item.ifindex = static_cast<int>(::if_nametoindex(entry->ifa_name));
    if (item.ifindex > 0) out.push_back(item);
  }
  ::freeifaddrs(list);
  return out;
}

sbc_fwd_key keyOf(const MediaAddress& relayPort) {
  sbc_fwd_key key{};
  const bool v4 = relayPort.address.family == policy::IpFamily::v4;
  std::memcpy(key.address, relayPort.address.bytes.data(), v4 ? 4 : 16);
  key.port = htons(relayPort.port);
  key.family = v4 ? 4 : 6;
  return key;
}

}  // namespace

KernelForwarding::KernelForwarding(const std::array<RealmMedia, kRealmCount>& realms,
                                   bool tcFilter)
    : realms_(realms) {
  libbpf_set_print(libbpfPrint);
  for (std::size_t r = 0; r < kRealmCount; ++r) {
    slotBase_[r] = slots_;
    slots_ += static_cast<std::uint32_t>(realms[r].portMax - realms[r].portMin) + 1;
  }
  try {
    const auto addresses = interfaceAddresses();
    for (const auto& item : addresses) localAddresses_.push_back(item.address);
    for (std::size_t r = 0; r < kRealmCount; ++r) {
      const auto found = std::find_if(addresses.begin(), addresses.end(), [&](const auto& item) {
        return item.address == realms[r].address;
      });
      if (found != addresses.end()) {
        realmIfindex_[r] = found->ifindex;
      } else if (isLoopbackRange(realms[r].address)) {
        realmIfindex_[r] = SBC_FWD_LOOPBACK_IFINDEX;  // 127.0.0.0/8 is all on lo
      } else {
        fail(EADDRNOTAVAIL, "no interface has the media address " + realms[r].address.toString());
      }
    }

    bpf_object_open_opts options{};
    options.sz = sizeof options;
    options.object_name = "sbc_media_forward";
    object_ = bpf_object__open_mem(kMediaForwardObject, kMediaForwardObjectSize, &options);
    if (object_ == nullptr) fail(errno, "cannot open the embedded BPF object");
    bpf_map* flows = bpf_object__find_map_by_name(object_, "sbc_fwd_flows");
    bpf_map* counters = bpf_object__find_map_by_name(object_, "sbc_fwd_counters");
    bpf_map* realmsMap = bpf_object__find_map_by_name(object_, "sbc_fwd_realms");
    bpf_map* activity = bpf_object__find_map_by_name(object_, "sbc_fwd_activity");
    bpf_program* program = bpf_object__find_program_by_name(object_, "sbc_media_fwd");
    if (flows == nullptr || counters == nullptr || realmsMap == nullptr || activity == nullptr ||
        program == nullptr) {
      fail(ENOENT, "the embedded BPF object lacks its maps or program");
    }
    bpf_map__set_max_entries(flows, slots_);  // at most one entry per relay port
    bpf_map__set_max_entries(counters, slots_);
    if (const int rc = bpf_object__load(object_); rc != 0) {
      fail(rc, "the kernel refused the program or its maps (needs CAP_BPF and CAP_NET_ADMIN)");
    }
    programFd_ = bpf_program__fd(program);
    flowsFd_ = bpf_map__fd(flows);
    activityFd_ = bpf_map__fd(activity);
    const int cpus = libbpf_num_possible_cpus();
    if (cpus <= 0) fail(cpus, "cannot count the possible CPUs");
    perCpu_.assign(static_cast<std::size_t>(cpus), 0);
    for (std::uint32_t r = 0; r < kRealmCount; ++r) {
      const bool v4 = realms[r].address.family == policy::IpFamily::v4;
      sbc_fwd_realm realm{};
      std::memcpy(realm.address, realms[r].address.bytes.data(), v4 ? 4 : 16);
      realm.slot_base = slotBase_[r];
      realm.port_min = realms[r].portMin;
      realm.port_max = realms[r].portMax;
      realm.family = v4 ? 4 : 6;
      if (const int rc = bpf_map_update_elem(bpf_map__fd(realmsMap), &r, &realm, BPF_ANY); rc != 0) {
        fail(rc, "cannot describe the realms to the program");
      }
    }
    const auto page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
    countersBytes_ = (slots_ * sizeof(sbc_fwd_counters) + page - 1) / page * page;
    void* mapped = ::mmap(nullptr, countersBytes_, PROT_READ | PROT_WRITE, MAP_SHARED,
                          bpf_map__fd(counters), 0);
    if (mapped == MAP_FAILED) fail(errno, "cannot map the counters");
    counters_ = static_cast<sbc_fwd_counters*>(mapped);

    for (const int ifindex : realmIfindex_) {
      const bool done = std::any_of(attachments_.begin(), attachments_.end(),
                                    [&](const Attachment& a) { return a.ifindex == ifindex; });
      if (!done) attach(ifindex, tcFilter);
    }
  } catch (...) {
    detachAll();
    if (counters_ != nullptr) ::munmap(counters_, countersBytes_);
    bpf_object__close(object_);
    throw;
  }
}

KernelForwarding::~KernelForwarding() {
  detachAll();
  ::munmap(counters_, countersBytes_);
  bpf_object__close(object_);  // the maps and the program go with their last reference
}

void KernelForwarding::attach(int ifindex, bool tcFilter) {
  Attachment attachment;
  attachment.ifindex = ifindex;
  if (!tcFilter) {
    attachment.linkFd = bpf_link_create(programFd_, ifindex,
                                        static_cast<bpf_attach_type>(kTcxIngress), nullptr);
  }
  if (attachment.linkFd < 0) {
    // Before Linux 6.6: a direct-action filter on the clsact qdisc, made if missing.
    bpf_tc_hook hook{};
    hook.sz = sizeof hook;
    hook.ifindex = ifindex;
    hook.attach_point = BPF_TC_INGRESS;
    const int created = bpf_tc_hook_create(&hook);
    if (created != 0 && created != -EEXIST) fail(created, "cannot add a clsact qdisc");
    bpf_tc_opts opts{};
    opts.sz = sizeof opts;
    opts.prog_fd = programFd_;
    opts.handle = kLegacyHandle;
    opts.priority = kLegacyPriority;
    opts.flags = BPF_TC_F_REPLACE;  // one a crashed sbcd left behind
    if (const int rc = bpf_tc_attach(&hook, &opts); rc != 0) {
      if (created == 0) {
        hook.attach_point = static_cast<bpf_tc_attach_point>(BPF_TC_INGRESS | BPF_TC_EGRESS);
        bpf_tc_hook_destroy(&hook);
      }
      fail(rc, "cannot attach the program at ingress of interface " + std::to_string(ifindex));
    }
    attachment.legacyFilter = true;
    attachment.createdQdisc = created == 0;
  }
  attachments_.push_back(attachment);
}

void KernelForwarding::detachAll() noexcept {
  for (Attachment& attachment : attachments_) {
    if (attachment.linkFd >= 0) ::close(attachment.linkFd);  // detaches
    if (!attachment.legacyFilter) continue;
    bpf_tc_hook hook{};
    hook.sz = sizeof hook;
    hook.ifindex = attachment.ifindex;
    hook.attach_point = BPF_TC_INGRESS;
    bpf_tc_opts opts{};
    opts.sz = sizeof opts;
    opts.handle = kLegacyHandle;
    opts.priority = kLegacyPriority;
    bpf_tc_detach(&hook, &opts);
    if (attachment.createdQdisc) {
      // Ingress alone would only flush its filters; both together remove the qdisc.
      hook.attach_point = static_cast<bpf_tc_attach_point>(BPF_TC_INGRESS | BPF_TC_EGRESS);
      bpf_tc_hook_destroy(&hook);
    }
  }
  attachments_.clear();
}

bool KernelForwarding::put(const MediaAddress& relayPort, const sbc_fwd_flow& flow) noexcept {
  const sbc_fwd_key key = keyOf(relayPort);
  return bpf_map_update_elem(flowsFd_, &key, &flow, BPF_ANY) == 0;
}

void KernelForwarding::erase(const MediaAddress& relayPort) noexcept {
  const sbc_fwd_key key = keyOf(relayPort);
  bpf_map_delete_elem(flowsFd_, &key);  // ENOENT: there was none
}

std::uint64_t KernelForwarding::activity() const noexcept {
  const std::uint32_t zero = 0;
  if (bpf_map_lookup_elem(activityFd_, &zero, perCpu_.data()) != 0) return 0;
  std::uint64_t sum = 0;
  for (const std::uint64_t count : perCpu_) sum += count;
  return sum;
}

std::optional<KernelForwarding::Egress> KernelForwarding::egressTo(
    Realm realm, const policy::IpAddress& peer) const noexcept {
  const bool local = isLoopbackRange(peer) ||
                     std::find(localAddresses_.begin(), localAddresses_.end(), peer) !=
                         localAddresses_.end();
  if (local) return Egress{SBC_FWD_LOCAL, 0};
  const int ifindex = realmIfindex_[static_cast<std::size_t>(realm)];
  if (ifindex == SBC_FWD_LOOPBACK_IFINDEX) return std::nullopt;
  return Egress{SBC_FWD_REDIRECT, static_cast<std::uint32_t>(ifindex)};
}

}  // namespace sbc::dataplane
