// The socket media driver. Threads:
// - signaling (every MediaRelay call but stats()): owns the port allocators, binds the
//   sockets (so EADDRINUSE can move on to the next port synchronously), and posts commands
//   (open, update, close, retire) to the worker. It never waits on the worker.
// - the worker: epoll over the command eventfd and every bound media socket; per ready
//   socket a recvmmsg burst, a source check per packet, and one sendmmsg out of the paired
//   socket of the other realm. It alone touches a stream's forwarding state, decides which
//   stream (if any) a socket serves, and writes the counters.
// - any thread (stats()): sums counters.
//
// Command queue: a mutex-protected vector plus an eventfd. The worker takes the mutex once
// per command batch (it swaps the whole vector out), never per packet; signaling holds it
// for one push_back. Only `retire` wakes the worker (descriptors must come back): `open`,
// `update` and `close` wait until the worker wakes anyway, because it applies waiting
// commands before it reads any socket or checks silence. With no packet to wake it, the
// worker still looks at its queue every kIdleWakeMs, so a closed stream's ports come back
// within that. Waking it for every command cost a context switch each: the media thread
// took about a tenth of a call's CPU time at a few hundred calls/s. A lock-free SPSC ring
// would need a policy for "ring full" on the signaling side (wait or fail the call); the
// vector never fills, and commands are rare next to packets. Closed streams and retired
// sockets come back to signaling through vectors under the same mutex, so signaling frees
// ports, descriptors and memory only after the worker let go of them.
//
// Sockets are kept, not closed, and stay in the worker's epoll set for their whole life: a
// closed stream's sockets only stop serving it, and signaling keeps the bound pair ("warm",
// up to kWarmPairsPerRealm per realm) for its port. While a socket rests the worker reads
// and drops what reaches it (counted as no_flow, as for a port without a stream), so the
// pair serves the next stream once the port's quarantine is over with nothing left over.
// Opening and closing four sockets per call (socket, two setsockopt, bind, close each) was
// about a tenth of a call's CPU time at 1,500 calls/s; taking a reused pair out of the epoll
// set and back in, and emptying it, cost 12 more system calls per call; now reuse costs none.
// A socket is closed only through the worker ("retire": out of the epoll set first), so an
// event the worker already holds can never name a descriptor that has been closed and
// reused by someone else.
//
// sk_lookup mode (RelaySettings::socketPorts): a port has no socket of its own. Per realm,
// one UDP socket receives the datagrams of every port in the range (a BPF sk_lookup program
// steers them to it; see port_steering.h) and one raw socket sends them with the relay port
// as the UDP source port (headers written here: udp_headers.h). A stream's ports are then
// only entries in the worker's per-realm table of port owners, set on `open` and cleared on
// `close`; a closed stream's ports go straight into the allocator's quarantine, and what
// reaches a port without an owner is dropped as no_flow. One receive burst mixes streams, so
// each datagram is looked up, checked and counted on its own. Why: in per-port mode 10,000
// calls need 40,000 sockets, more than RLIMIT_NOFILE allows in many deployments (a hard
// limit of 20,000 on the machine this was measured on); this mode needs four descriptors
// whatever the load, and batches across streams (one recvmmsg and one sendmmsg serve many).

#include "dataplane/socket/socket_relay.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <linux/sockios.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <system_error>
#include <thread>
#include <unordered_map>

#include "common/socket_address.h"
#include "dataplane/port_allocator.h"
#include "dataplane/socket/kernel_forwarding.h"
#include "dataplane/socket/port_steering.h"
#include "dataplane/socket/udp_headers.h"

namespace sbc::dataplane {
namespace {

using Clock = std::chrono::steady_clock;
using Nanos = std::int64_t;  // steady-clock time in the worker

#ifndef SBC_SOCKET_RELAY_BATCH
#define SBC_SOCKET_RELAY_BATCH 64  // tools/ builds a variant with 1 to measure batching
#endif
constexpr std::size_t kBatch = SBC_SOCKET_RELAY_BATCH;  // datagrams per recvmmsg / sendmmsg
constexpr std::size_t kMaxDatagram = 2048;    // larger datagrams are truncated: malformed
// Up to 256 datagrams per ready socket per round, then the next socket: fairness.
constexpr int kBurstsPerEvent = static_cast<int>(256 / kBatch > 0 ? 256 / kBatch : 1);
constexpr int kMaxEvents = 256;
// sk_lookup mode: before streams are reported silent, up to this many fairness-bounded reads
// (256 datagrams each) of a realm's socket look for their media in its queue.
constexpr int kCatchUpRounds = 64;
constexpr int kReceiveBuffer = 1 << 20;  // per socket (the kernel doubles it for overhead)
// sk_lookup mode: one socket takes the realm's whole load, where per-port mode has a
// megabyte per port. 16 MiB overflowed at 200k packets/s while the worker waited for a CPU
// (bench_socket_relay, 2 vCPUs); only a limit: memory is used as packets queue.
constexpr int kSteeredReceiveBuffer = 64 << 20;
constexpr int kSteeredSendBuffer = 4 << 20;
// Room for one IP_ORIGDSTADDR / IPV6_ORIGDSTADDR control message.
constexpr std::size_t kControlSize = CMSG_SPACE(sizeof(sockaddr_in6));
constexpr std::size_t kKinds = 2;             // RTP, RTCP
// Warm pairs kept per realm: enough for the ports released during a quarantine at a
// thousand calls/s or more; 4 descriptors per pair over both realms count against
// RLIMIT_NOFILE, so a socket that cannot be made for want of descriptors retires warm ones.
constexpr std::size_t kWarmPairsPerRealm = 1024;
// Warm pairs retired at once when binding runs out of descriptors.
constexpr std::size_t kRetiredWhenOutOfDescriptors = 16;
// With no packet or retirement to wake it, the worker applies waiting commands (and hands
// closed streams back) this often.
constexpr int kIdleWakeMs = 50;
// Kernel forwarding: what the kernel forwarded is folded into the worker's counters (and
// its silence tracking) at most this often, and before every silence scan.
constexpr std::int64_t kKernelFoldNs = 10'000'000;

enum class Kind : std::uint8_t { rtp = 0, rtcp = 1 };

Nanos nowNanos() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
      .count();
}

// Written by the worker only: a load and a store, no read-modify-write.
inline void bump(std::atomic<std::uint64_t>& counter, std::uint64_t n) {
  counter.store(counter.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
}
inline std::uint64_t readCounter(const std::atomic<std::uint64_t>& counter) {
  return counter.load(std::memory_order_relaxed);
}

struct alignas(64) LabelCounters {
  explicit LabelCounters(std::string name) : label(std::move(name)) {}
  const std::string label;
  std::array<std::atomic<std::uint64_t>, kRealmCount> packets{};
  std::array<std::atomic<std::uint64_t>, kRealmCount> bytes{};
  std::atomic<std::uint64_t> dropped{0};
};

struct alignas(64) WorkerCounters {
  std::array<std::atomic<std::uint64_t>, static_cast<std::size_t>(DropReason::count)> dropped{};
  std::atomic<std::uint64_t> flows{0};
  std::atomic<std::uint64_t> kernelForwarded{0};
};

using common::SocketAddress;
using common::ipOf;
using common::portOf;
using common::setPort;
using common::toSocketAddress;

struct Stream;

// One bound media socket, from its bind until it is retired; epoll's data.ptr points here
// for all of that time, whether it serves a stream or rests.
struct MediaSocket {
  MediaSocket(int descriptor, Realm r, Kind k) : fd(descriptor), realm(r), kind(k) {}
  ~MediaSocket() {
    if (fd >= 0) ::close(fd);
  }
  MediaSocket(const MediaSocket&) = delete;
  MediaSocket& operator=(const MediaSocket&) = delete;

  const int fd;  // -1 in sk_lookup mode, where a port has no socket of its own
  const Realm realm;
  const Kind kind;
  bool steeredReceiver = false;  // sk_lookup mode: the realm's socket for the whole range
  Stream* stream = nullptr;  // worker only: the installed stream it serves; none = resting
  bool retired = false;      // worker only: out of the epoll set, on its way to signaling
  std::uint16_t port = 0;    // per-port mode: the port it is bound to
};
using SocketPtr = std::unique_ptr<MediaSocket>;

// One realm's RTP/RTCP sockets of a port, bound and in the worker's epoll set.
struct SocketPair {
  std::uint16_t port = 0;
  SocketPtr rtp;
  SocketPtr rtcp;
  Clock::time_point reusableAt;  // warm pairs: the port's quarantine ends
};

// The worker's view of one realm's side of a stream.
struct LegState {
  bool known = false;  // an update arrived: until then nothing is accepted
  LegMedia media;
  SocketAddress rtpDest;   // media.rtp, if its family matches the realm's
  SocketAddress rtcpDest;  // media.rtcp, or rtp port + 1
  std::array<SocketAddress, kKinds> latched;  // learnt per port (RTP, RTCP) when media.latch
  Nanos lastRx = 0;  // last accepted packet from this side
};

// Kernel forwarding: one relay port's counters in the kernel, as last folded in.
struct KernelSeen {
  std::uint64_t packets = 0;
  std::uint64_t bytes = 0;
  std::uint64_t passed = 0;   // the handoff counts at the last fold
  std::uint64_t handled = 0;
};

struct Stream {
  StreamId id = 0;
  std::array<SocketPair, kRealmCount> pairs;  // set by signaling before `open` is posted
  LabelCounters* label = nullptr;
  // Written by the worker, read by signaling (streamCounters()).
  std::array<std::atomic<std::uint64_t>, kRealmCount> packets{};
  std::array<std::atomic<std::uint64_t>, kRealmCount> bytes{};
  std::array<std::atomic<std::uint64_t>, kRealmCount> dropped{};
  // Worker only.
  std::array<LegState, kRealmCount> legs;
  Nanos lastChange = 0;  // open or last update: silence is measured from here at least
  bool timeoutReported = false;
  bool installed = false;  // the worker has applied its `open`
  bool closed = false;
  std::size_t activeIndex = 0;  // position in the worker's list of open streams
  // Kernel forwarding. Under SocketRelay::kernelMutex_: updates and closes posted but not
  // applied yet; while there are any, the stream has no entries in the kernel.
  int kernelHolds = 0;
  std::array<std::array<bool, kKinds>, kRealmCount> kernelEntry{};  // its ports' entries there
  // Worker only.
  std::array<std::array<KernelSeen, kKinds>, kRealmCount> kernelSeen{};
  bool kernelDirty = false;  // learnt a latch: its entries are rewritten at the round's end

  MediaSocket& socket(std::size_t realm, Kind kind) const {
    return kind == Kind::rtp ? *pairs[realm].rtp : *pairs[realm].rtcp;
  }
};

struct Command {
  enum class Type : std::uint8_t { open, update, close };
  Type type = Type::open;
  Stream* stream = nullptr;
  Realm realm = Realm::access;
  LegMedia leg;
};

void closeFd(int& fd) {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

// Opens and binds one UDP socket; returns -errno on failure.
int bindSocket(const policy::IpAddress& address, std::uint16_t port, std::uint8_t dscp) {
  const int family = address.family == policy::IpFamily::v4 ? AF_INET : AF_INET6;
  const int fd = ::socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  // A deeper receive queue rides out the worker being descheduled for a few milliseconds
  // (2-core machines shared with signaling). Only a limit: memory is used as packets queue.
  // SO_RCVBUFFORCE (root) may exceed net.core.rmem_max; otherwise the sysctl caps it.
  const int receiveBuffer = kReceiveBuffer;
  if (::setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &receiveBuffer, sizeof receiveBuffer) != 0) {
    ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &receiveBuffer, sizeof receiveBuffer);
  }
  const int tos = dscp << 2;
  if (family == AF_INET) {
    ::setsockopt(fd, IPPROTO_IP, IP_TOS, &tos, sizeof tos);
  } else {
    const int one = 1;
    ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    ::setsockopt(fd, IPPROTO_IPV6, IPV6_TCLASS, &tos, sizeof tos);
  }
  const SocketAddress local = toSocketAddress(address, port);
  if (::bind(fd, local.get(), local.length) != 0) {
    const int error = errno;
    ::close(fd);
    return -error;
  }
  return fd;
}

#ifndef IPV6_HDRINCL
#define IPV6_HDRINCL 36  // linux/in6.h; glibc's netinet/in.h lacks it
#endif

// sk_lookup mode: what one realm has instead of a socket per port.
struct SteeredRealm {
  std::unique_ptr<MediaSocket> receiver;  // every port's datagrams, IP_ORIGDSTADDR on each
  std::unique_ptr<MediaSocket> sender;    // raw: sends the IP and UDP headers written here
  std::unique_ptr<PortSteering> steering;
  SocketAddress source;  // the realm's media address; the port is set per datagram
  std::uint16_t firstPort = 0;
  std::vector<MediaSocket*> owners;  // worker only: by port - firstPort, the socket serving it

  MediaSocket* ownerOf(std::uint16_t port) const noexcept {
    if (port < firstPort) return nullptr;
    const std::size_t index = port - firstPort;
    return index < owners.size() ? owners[index] : nullptr;
  }
};

[[noreturn]] void failSteering(int error, const std::string& what) {
  throw std::system_error(error, std::generic_category(), "media sk_lookup: " + what);
}

SteeredRealm steerRealm(const RealmMedia& media, Realm realm, std::uint8_t dscp) {
  SteeredRealm out;
  const bool v4 = media.address.family == policy::IpFamily::v4;
  const int fd = bindSocket(media.address, 0, dscp);
  if (fd < 0) failSteering(-fd, "cannot bind a socket on " + media.address.toString());
  out.receiver = std::make_unique<MediaSocket>(fd, realm, Kind::rtp);
  out.receiver->steeredReceiver = true;
  const int one = 1;
  const int origDst = v4 ? ::setsockopt(fd, IPPROTO_IP, IP_RECVORIGDSTADDR, &one, sizeof one)
                         : ::setsockopt(fd, IPPROTO_IPV6, IPV6_RECVORIGDSTADDR, &one, sizeof one);
  if (origDst != 0) failSteering(errno, "cannot ask for each datagram's destination port");
  const int receiveBuffer = kSteeredReceiveBuffer;
  if (::setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &receiveBuffer, sizeof receiveBuffer) != 0) {
    ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &receiveBuffer, sizeof receiveBuffer);
  }

  const int raw = ::socket(v4 ? AF_INET : AF_INET6, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC,
                           IPPROTO_RAW);
  if (raw < 0) failSteering(errno, "cannot open a raw socket to send media (needs CAP_NET_RAW)");
  out.sender = std::make_unique<MediaSocket>(raw, realm, Kind::rtp);
  if (!v4 && ::setsockopt(raw, IPPROTO_IPV6, IPV6_HDRINCL, &one, sizeof one) != 0) {
    failSteering(errno, "cannot send IPv6 headers as written (IPV6_HDRINCL)");
  }
  const int sendBuffer = kSteeredSendBuffer;
  if (::setsockopt(raw, SOL_SOCKET, SO_SNDBUFFORCE, &sendBuffer, sizeof sendBuffer) != 0) {
    ::setsockopt(raw, SOL_SOCKET, SO_SNDBUF, &sendBuffer, sizeof sendBuffer);
  }

  out.steering = std::make_unique<PortSteering>(media.address, media.portMin, media.portMax, fd);
  out.source = toSocketAddress(media.address, 0);
  out.firstPort = media.portMin;
  out.owners.assign(static_cast<std::size_t>(media.portMax - media.portMin) + 1, nullptr);
  return out;
}

// The destination port a steered datagram was sent to (IP_ORIGDSTADDR); 0 when missing.
std::uint16_t originalPort(const msghdr& message) noexcept {
  for (const cmsghdr* control = CMSG_FIRSTHDR(&message); control != nullptr;
       control = CMSG_NXTHDR(const_cast<msghdr*>(&message), const_cast<cmsghdr*>(control))) {
    if (control->cmsg_level == IPPROTO_IP && control->cmsg_type == IP_ORIGDSTADDR) {
      sockaddr_in address{};
      std::memcpy(&address, CMSG_DATA(control), sizeof address);
      return ntohs(address.sin_port);
    }
    if (control->cmsg_level == IPPROTO_IPV6 && control->cmsg_type == IPV6_ORIGDSTADDR) {
      sockaddr_in6 address{};
      std::memcpy(&address, CMSG_DATA(control), sizeof address);
      return ntohs(address.sin6_port);
    }
  }
  return 0;
}

class SocketRelay final : public MediaRelay {
 public:
  explicit SocketRelay(const RelaySettings& settings)
      : settings_(settings),
        ports_{PortAllocator(settings.realms[0].portMin, settings.realms[0].portMax,
                             settings.quarantine),
               PortAllocator(settings.realms[1].portMin, settings.realms[1].portMax,
                             settings.quarantine)},
        steering_(settings.socketPorts == SocketPorts::skLookup) {
    epollFd_ = ::epoll_create1(EPOLL_CLOEXEC);
    commandFd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    timeoutFd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (epollFd_ < 0 || commandFd_ < 0 || timeoutFd_ < 0) {
      const int error = errno;
      closeFd(epollFd_);
      closeFd(commandFd_);
      closeFd(timeoutFd_);
      throw std::system_error(error, std::generic_category(), "socket relay: epoll/eventfd");
    }
    epoll_event event{};
    event.events = EPOLLIN;
    event.data.ptr = nullptr;  // the command eventfd
    ::epoll_ctl(epollFd_, EPOLL_CTL_ADD, commandFd_, &event);
    if (steering_) {
      try {
        for (std::size_t r = 0; r < kRealmCount; ++r) {
          steered_[r] = steerRealm(settings.realms[r], static_cast<Realm>(r), settings.dscp);
          watch(*steered_[r].receiver);
        }
      } catch (...) {
        closeFd(epollFd_);
        closeFd(commandFd_);
        closeFd(timeoutFd_);
        throw;
      }
    }
    if (settings.kernelForwarding) {
      try {
        kernel_ = std::make_unique<KernelForwarding>(settings.realms,
                                                     settings.kernelForwardingAsTcFilter);
      } catch (...) {
        closeFd(epollFd_);
        closeFd(commandFd_);
        closeFd(timeoutFd_);
        throw;
      }
    }
    commands_.reserve(1024);
    pending_.reserve(1024);
    active_.reserve(1024);
    for (std::size_t i = 0; i < kBatch; ++i) {
      rxIov_[i] = {rxBuffers_[i].data(), kMaxDatagram};
      rx_[i].msg_hdr.msg_name = &sources_[i];
      rx_[i].msg_hdr.msg_iov = &rxIov_[i];
      rx_[i].msg_hdr.msg_iovlen = 1;
      tx_[i].msg_hdr.msg_iov = &txIov_[i];
      tx_[i].msg_hdr.msg_iovlen = 1;
      if (steering_) {
        rx_[i].msg_hdr.msg_control = rxControl_[i].data();
        tx_[i].msg_hdr.msg_iov = txSteeredIov_[i].data();  // headers, then the payload
        tx_[i].msg_hdr.msg_iovlen = 2;
      }
    }
    worker_ = std::thread([this] { run(); });
  }

  ~SocketRelay() override {
    stopping_.store(true, std::memory_order_relaxed);
    wake();
    worker_.join();
    workerGone_ = true;  // from here on, sockets are closed here, not retired through it
    // The worker is gone: finish its queue here, then free what is left. Sockets close with
    // the streams and pairs that own them.
    processCommands(nowNanos(), true);
    handBack();
    reclaim();
    streams_.clear();
    for (auto& realm : warm_) realm.clear();
    closeFd(epollFd_);
    closeFd(commandFd_);
    closeFd(timeoutFd_);
  }

  std::optional<StreamEndpoints> openStream(std::string_view label) override {
    reclaim();
    auto stream = std::make_unique<Stream>();
    std::size_t bound = 0;
    for (; bound < kRealmCount; ++bound) {
      if (!bindRealm(*stream, bound)) break;
    }
    if (bound < kRealmCount) {
      // They never served this stream: reusable at once, before any other warm pair.
      for (std::size_t r = 0; r < bound && steering_; ++r) {
        ports_[r].release(stream->pairs[r].port, Clock::now() - settings_.quarantine);
      }
      for (std::size_t r = 0; r < bound && !steering_; ++r) {
        stream->pairs[r].reusableAt = Clock::now();
        warm_[r].push_front(std::move(stream->pairs[r]));
      }
      return std::nullopt;
    }
    do {
      stream->id = nextId_++;
    } while (stream->id == 0 || streams_.contains(stream->id));
    stream->label = labelCounters(label);
    StreamEndpoints out;
    out.id = stream->id;
    for (std::size_t r = 0; r < kRealmCount; ++r) {
      out.rtp[r] = MediaAddress{settings_.realms[r].address, stream->pairs[r].port};
    }
    Stream* raw = stream.get();
    streams_.emplace(out.id, std::move(stream));
    // Its sockets may wake the worker before it sees `open`: it then looks at the queue
    // before treating them as resting (see run()).
    post(Command{Command::Type::open, raw, Realm::access, {}}, false);
    return out;
  }

  bool updateLeg(StreamId id, Realm realm, const LegMedia& leg) override {
    reclaim();
    const auto it = streams_.find(id);
    if (it == streams_.end()) return false;
    holdKernel(*it->second);
    post(Command{Command::Type::update, it->second.get(), realm, leg}, false);
    return true;
  }

  void closeStream(StreamId id) override {
    reclaim();
    const auto it = streams_.find(id);
    if (it == streams_.end()) return;
    Stream* raw = it->second.release();  // owned by the queue until the worker hands it back
    streams_.erase(it);
    holdKernel(*raw);
    post(Command{Command::Type::close, raw, Realm::access, {}}, false);
  }

  std::optional<StreamCounters> streamCounters(StreamId id) const override {
    const auto it = streams_.find(id);
    if (it == streams_.end()) return std::nullopt;
    StreamCounters out;
    for (std::size_t r = 0; r < kRealmCount; ++r) {
      out.packets[r] = readCounter(it->second->packets[r]);
      out.bytes[r] = readCounter(it->second->bytes[r]);
      out.dropped[r] = readCounter(it->second->dropped[r]);
    }
    return out;
  }

  int timeoutNotifyFd() const override { return timeoutFd_; }

  std::vector<StreamId> takeTimedOut() override {
    std::uint64_t value = 0;
    [[maybe_unused]] const auto n = ::read(timeoutFd_, &value, sizeof value);  // re-arm first
    std::vector<StreamId> out;
    std::lock_guard lock(mutex_);
    out.swap(timedOut_);
    return out;
  }

  MediaStats stats() const override {
    MediaStats out;
    for (std::size_t i = 0; i < out.dropped.size(); ++i) {
      out.dropped[i] = readCounter(counters_.dropped[i]);
    }
    out.flows = readCounter(counters_.flows);
    if (kernel_) out.kernelForwarded = readCounter(counters_.kernelForwarded);
    std::lock_guard lock(labelsMutex_);
    out.labels.reserve(labels_.size());
    for (const auto& label : labels_) {
      MediaStats::PerLabel entry;
      entry.label = label.label;
      for (std::size_t r = 0; r < kRealmCount; ++r) {
        entry.packets[r] = readCounter(label.packets[r]);
        entry.bytes[r] = readCounter(label.bytes[r]);
      }
      entry.dropped = readCounter(label.dropped);
      out.labels.push_back(std::move(entry));
    }
    return out;
  }

 private:
  // Signaling thread: an even port and its RTCP neighbour, bound and in the worker's epoll
  // set; skips ports in use by someone else (EADDRINUSE). False when the range is exhausted,
  // descriptors run out, or binding fails otherwise.
  bool bindRealm(Stream& stream, std::size_t realm) {
    if (steering_) {
      // Nothing to bind: the port becomes the stream's when the worker installs it.
      const auto port = ports_[realm].allocate();
      if (!port) return false;
      SocketPair& pair = stream.pairs[realm];
      pair.port = *port;
      pair.rtp = std::make_unique<MediaSocket>(-1, static_cast<Realm>(realm), Kind::rtp);
      pair.rtcp = std::make_unique<MediaSocket>(-1, static_cast<Realm>(realm), Kind::rtcp);
      return true;
    }
    if (auto pair = takeWarm(realm)) {
      stream.pairs[realm] = std::move(*pair);
      return true;
    }
    const RealmMedia& media = settings_.realms[realm];
    for (std::size_t attempt = 0; attempt < ports_[realm].capacity(); ++attempt) {
      const auto port = ports_[realm].allocate();
      if (!port) return false;
      const int rtp = bindSocket(media.address, *port, settings_.dscp);
      const int rtcp = rtp >= 0 ? bindSocket(media.address, static_cast<std::uint16_t>(*port + 1),
                                             settings_.dscp)
                                : rtp;
      if (rtp >= 0 && rtcp >= 0) {
        SocketPair& pair = stream.pairs[realm];
        pair.port = *port;
        pair.rtp = std::make_unique<MediaSocket>(rtp, static_cast<Realm>(realm), Kind::rtp);
        pair.rtcp = std::make_unique<MediaSocket>(rtcp, static_cast<Realm>(realm), Kind::rtcp);
        pair.rtp->port = *port;
        pair.rtcp->port = static_cast<std::uint16_t>(*port + 1);
        watch(*pair.rtp);
        watch(*pair.rtcp);
        return true;
      }
      if (rtp >= 0) ::close(rtp);
      ports_[realm].release(*port);  // rests in quarantine like any other
      if (rtcp == -EMFILE || rtcp == -ENFILE) {
        // Warm pairs hold descriptors: hand some back for the calls after this one. They
        // close on the worker's next round, so this open fails.
        retireOldestWarm(kRetiredWhenOutOfDescriptors);
        return false;
      }
      if (rtcp != -EADDRINUSE) return false;
    }
    return false;
  }

  // Adds a freshly bound socket to the worker's epoll set, resting until a stream installs.
  void watch(MediaSocket& socket) {
    epoll_event event{};
    event.events = EPOLLIN;
    event.data.ptr = &socket;
    ::epoll_ctl(epollFd_, EPOLL_CTL_ADD, socket.fd, &event);
  }

  // Out of descriptors: gives back up to `count` of the oldest warm pairs of either realm.
  void retireOldestWarm(std::size_t count) {
    for (std::size_t r = 0; r < kRealmCount; ++r) {
      while (count > 0 && !warm_[r].empty()) {
        retire(std::move(warm_[r].front()));
        warm_[r].pop_front();
        --count;
      }
    }
  }

  // Signaling thread: the counters of `label`, made on first use and kept for the
  // relay's lifetime (labels are trunk names: a bounded set).
  LabelCounters* labelCounters(std::string_view label) {
    const auto it = labelIndex_.find(label);
    if (it != labelIndex_.end()) return it->second;
    std::lock_guard lock(labelsMutex_);
    LabelCounters* counters = &labels_.emplace_back(std::string(label));
    labelIndex_.emplace(counters->label, counters);
    return counters;
  }

  // Signaling thread, kernel forwarding: a packet sent once updateLeg() or closeStream() has
  // returned must be judged by the new state, which only the worker can turn into kernel
  // entries. So the stream leaves the kernel now, and the worker puts it back once it has
  // applied every command posted for it (releaseKernelHold).
  void holdKernel(Stream& stream) {
    if (!kernel_) return;
    std::lock_guard lock(kernelMutex_);
    ++stream.kernelHolds;
    eraseKernelEntries(stream);
  }

  void post(Command&& command, bool wakeWorker) {
    bool needsWake = false;
    {
      std::lock_guard lock(mutex_);
      commands_.push_back(std::move(command));
      commandsWaiting_.store(true, std::memory_order_release);
      needsWake = wakeWorker && !wakePending_;
      wakePending_ = wakePending_ || wakeWorker;
    }
    if (needsWake) wake();
  }

  void wake() {
    const std::uint64_t one = 1;
    [[maybe_unused]] const auto n = ::write(commandFd_, &one, sizeof one);
  }

  // Signaling thread: takes back what the worker let go of. A closed stream's pairs rest
  // warm for their port's quarantine (or are retired when enough rest already); retired
  // pairs are closed and their ports enter the allocator's quarantine.
  void reclaim() {
    {
      std::lock_guard lock(mutex_);
      if (closed_.empty() && retired_.empty()) return;
      reclaiming_.swap(closed_);
      retiredBack_.swap(retired_);
    }
    const auto now = Clock::now();
    for (Stream* stream : reclaiming_) {
      for (std::size_t r = 0; r < kRealmCount; ++r) {
        SocketPair& pair = stream->pairs[r];
        pair.reusableAt = now + settings_.quarantine;
        if (steering_) {
          ports_[r].release(pair.port, now);  // no socket to keep warm
        } else if (warm_[r].size() < kWarmPairsPerRealm) {
          warm_[r].push_back(std::move(pair));
        } else {
          retire(std::move(pair));
        }
      }
      delete stream;
    }
    reclaiming_.clear();
    for (SocketPair& pair : retiredBack_) {
      const auto realm = static_cast<std::size_t>(pair.rtp->realm);
      pair.rtp.reset();  // closes
      pair.rtcp.reset();
      ports_[realm].release(pair.port, now);
    }
    retiredBack_.clear();
  }

  // Signaling thread: the oldest warm pair of `realm` whose quarantine is over; nullopt
  // when there is none. What reached it while it rested the worker has already dropped.
  std::optional<SocketPair> takeWarm(std::size_t realm) {
    auto& pairs = warm_[realm];
    if (pairs.empty() || pairs.front().reusableAt > Clock::now()) return std::nullopt;
    std::optional<SocketPair> pair(std::move(pairs.front()));
    pairs.pop_front();
    return pair;
  }

  // Signaling thread: closes a pair for good. The worker takes it out of its epoll set
  // first and hands it back to reclaim(), which closes it.
  void retire(SocketPair pair) {
    if (workerGone_) {
      const auto realm = static_cast<std::size_t>(pair.rtp->realm);
      pair.rtp.reset();  // closes
      pair.rtcp.reset();
      ports_[realm].release(pair.port);
      return;
    }
    bool needsWake = false;
    {
      std::lock_guard lock(mutex_);
      retiring_.push_back(std::move(pair));
      commandsWaiting_.store(true, std::memory_order_release);
      needsWake = !wakePending_;
      wakePending_ = true;
    }
    if (needsWake) wake();
  }

  // --- worker thread -------------------------------------------------------------------

  void run() {
    pinToAllCpus();
    pthread_setname_np(pthread_self(), kSocketWorkerThreadName);
    std::array<epoll_event, kMaxEvents> events{};
    const Nanos timeout =
        std::chrono::duration_cast<std::chrono::nanoseconds>(settings_.mediaTimeout).count();
    // Silence is checked a few times per timeout period, at least every second.
    const int scanMs = timeout > 0 ? static_cast<int>(std::clamp<std::int64_t>(
                                         settings_.mediaTimeout.count() / 8, 5, 1000))
                                   : -1;
    const int waitMs = scanMs > 0 ? std::min(scanMs, kIdleWakeMs) : kIdleWakeMs;
    Nanos nextScan = nowNanos() + std::int64_t{scanMs} * 1000000;
    while (!stopping_.load(std::memory_order_relaxed)) {
      const int n = ::epoll_wait(epollFd_, events.data(), kMaxEvents, waitMs);
      const Nanos now = nowNanos();
      // Commands first: a packet sent after updateLeg() or closeStream() returned is always
      // judged by the new state. A stream closed here is skipped below and handed back to
      // signaling (which frees it) only at the end of the round; so are retired sockets.
      bool commandEvent = false;
      for (int i = 0; i < n; ++i) {
        commandEvent = commandEvent || events[static_cast<std::size_t>(i)].data.ptr == nullptr;
      }
      if (commandEvent || commandsWaiting_.load(std::memory_order_acquire)) {
        processCommands(now, commandEvent);
      }
      for (int i = 0; i < n; ++i) {
        auto* socket = static_cast<MediaSocket*>(events[static_cast<std::size_t>(i)].data.ptr);
        if (socket == nullptr || socket->retired) continue;
        if (socket->steeredReceiver) {
          drainSteered(*socket, now);
          continue;
        }
        // A stream may have been opened on a resting socket since the check above.
        if (socket->stream == nullptr && commandsWaiting_.load(std::memory_order_acquire)) {
          processCommands(now, false);
        }
        if (socket->stream != nullptr) {
          drain(*socket, now);
        } else if (!socket->retired) {
          dropResting(*socket);
        }
      }
      if (kernel_ && now - lastKernelFold_ >= kKernelFoldNs) foldKernelCounters(now);
      if (timeout > 0 && now >= nextScan) {
        scanTimeouts(now, timeout);
        nextScan = now + std::int64_t{scanMs} * 1000000;
      }
      if (!kernelDirty_.empty()) writeDirtyKernelEntries();
      handBack();
    }
  }

  static void pinToAllCpus() {
    // DPDK may have pinned the thread that made us to one lcore: undo that.
    cpu_set_t cpus;
    CPU_ZERO(&cpus);
    const int count = std::min(get_nprocs_conf(), CPU_SETSIZE);
    for (int cpu = 0; cpu < count; ++cpu) CPU_SET(cpu, &cpus);
    pthread_setaffinity_np(pthread_self(), sizeof cpus, &cpus);
  }

  void processCommands(Nanos now, bool readWake) {
    if (readWake) {
      std::uint64_t value = 0;
      [[maybe_unused]] const auto n = ::read(commandFd_, &value, sizeof value);
    }
    {
      std::lock_guard lock(mutex_);
      pending_.swap(commands_);
      retiringLocal_.swap(retiring_);
      commandsWaiting_.store(false, std::memory_order_relaxed);
      wakePending_ = false;
    }
    for (Command& command : pending_) {
      Stream& stream = *command.stream;
      switch (command.type) {
        case Command::Type::open: install(stream, now); break;
        case Command::Type::update:
          applyLeg(stream, command.realm, std::move(command.leg), now);
          releaseKernelHold(stream);
          break;
        case Command::Type::close: uninstall(stream); break;
      }
    }
    pending_.clear();
    for (SocketPair& pair : retiringLocal_) {
      for (MediaSocket* socket : {pair.rtp.get(), pair.rtcp.get()}) {
        ::epoll_ctl(epollFd_, EPOLL_CTL_DEL, socket->fd, nullptr);
        socket->retired = true;  // events of this round that name it are skipped
      }
      retiredLocal_.push_back(std::move(pair));
    }
    retiringLocal_.clear();
  }

  void install(Stream& stream, Nanos now) {
    stream.lastChange = now;
    stream.installed = true;
    for (std::size_t r = 0; r < kRealmCount; ++r) {
      stream.pairs[r].rtp->stream = &stream;
      stream.pairs[r].rtcp->stream = &stream;
      if (steering_) setOwners(stream.pairs[r], r, true);
    }
    stream.activeIndex = active_.size();
    active_.push_back(&stream);
    bump(counters_.flows, kRealmCount * kKinds);
    if (kernel_) {
      for (std::size_t r = 0; r < kRealmCount; ++r) {
        for (std::size_t k = 0; k < kKinds; ++k) {
          const sbc_fwd_counters& counters = kernel_->counters(slotOf(stream, r, k));
          stream.kernelSeen[r][k] = {atomicLoad(counters.packets), atomicLoad(counters.bytes),
                                     atomicLoad(counters.passed), atomicLoad(counters.handled)};
        }
      }
    }
  }

  void uninstall(Stream& stream) {
    // Its kernel entries went when closeStream() was called: count what they forwarded.
    if (kernel_) foldKernelCounters(stream);
    // Its sockets rest: still bound and watched, their datagrams dropped as no_flow.
    for (std::size_t r = 0; r < kRealmCount; ++r) {
      stream.pairs[r].rtp->stream = nullptr;
      stream.pairs[r].rtcp->stream = nullptr;
      if (steering_) setOwners(stream.pairs[r], r, false);
    }
    stream.closed = true;
    Stream* last = active_.back();
    active_[stream.activeIndex] = last;
    last->activeIndex = stream.activeIndex;
    active_.pop_back();
    counters_.flows.store(readCounter(counters_.flows) - kRealmCount * kKinds,
                          std::memory_order_relaxed);
    toHandBack_.push_back(&stream);
  }

  // sk_lookup mode: the pair's two ports are served by its sockets, or by nobody.
  void setOwners(const SocketPair& pair, std::size_t realm, bool owned) {
    SteeredRealm& steered = steered_[realm];
    const std::size_t index = pair.port - steered.firstPort;
    steered.owners[index] = owned ? pair.rtp.get() : nullptr;
    steered.owners[index + 1] = owned ? pair.rtcp.get() : nullptr;
  }

  // Reads and drops what reached a resting socket, in bursts, up to the same fairness
  // bound as a stream's socket; the rest waits for the next round (level-triggered).
  void dropResting(const MediaSocket& socket) {
    std::uint64_t dropped = 0;
    for (int burst = 0; burst < kBurstsPerEvent; ++burst) {
      for (std::size_t i = 0; i < kBatch; ++i) {
        rx_[i].msg_hdr.msg_namelen = sizeof(sockaddr_storage);
      }
      const int got = ::recvmmsg(socket.fd, rx_.data(), kBatch, MSG_DONTWAIT, nullptr);
      if (got <= 0) break;
      dropped += static_cast<std::uint64_t>(got);
      if (static_cast<std::size_t>(got) < kBatch) break;
    }
    countDropReasons(dropped, 0, 0, 0);
    acknowledge(socket.realm, socket.port, dropped);
  }

  void applyLeg(Stream& stream, Realm realm, LegMedia&& media, Nanos now) {
    LegState& leg = stream.legs[static_cast<std::size_t>(realm)];
    const policy::IpFamily family = settings_.realms[static_cast<std::size_t>(realm)].address.family;
    leg.known = true;
    leg.media = std::move(media);
    leg.rtpDest = {};
    leg.rtcpDest = {};
    if (leg.media.rtp && leg.media.rtp->address.family == family) {
      leg.rtpDest = toSocketAddress(leg.media.rtp->address, leg.media.rtp->port);
      if (leg.media.rtcp && leg.media.rtcp->address.family == family) {
        leg.rtcpDest = toSocketAddress(leg.media.rtcp->address, leg.media.rtcp->port);
      } else {
        leg.rtcpDest = toSocketAddress(leg.media.rtp->address,
                                       static_cast<std::uint16_t>(leg.media.rtp->port + 1));
      }
    }
    leg.latched = {};  // latch: learn afresh; no latch: nothing learnt applies
    stream.lastChange = now;
    stream.timeoutReported = false;
  }

  // Called on the worker; the packets' source check. Latches when the leg asks for it, and
  // then marks the stream for kernel forwarding to learn the latch too.
  bool accept(Stream& stream, LegState& leg, Kind kind, const sockaddr_storage& source) noexcept {
    if (!leg.known) return false;
    SocketAddress& latched = leg.latched[static_cast<std::size_t>(kind)];
    if (leg.media.latch && latched.valid()) return common::sameEndpoint(source, latched.storage);
    if (source.ss_family != AF_INET && source.ss_family != AF_INET6) return false;
    const policy::IpAddress address = ipOf(source);
    bool inside = false;
    for (const auto& prefix : leg.media.allowedSources) {
      if (prefix.contains(address)) {
        inside = true;
        break;
      }
    }
    if (inside && leg.media.latch) {
      latched.storage = source;
      latched.length = source.ss_family == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6);
      if (kernel_ && !stream.kernelDirty) {
        stream.kernelDirty = true;
        kernelDirty_.push_back(&stream);
      }
    }
    return inside;
  }

  // Where packets that arrived on a `kind` port go on the other side, and out of which
  // socket. nullptr: that side gets nothing (its address is unknown or rejected).
  static const SocketAddress* destination(const LegState& leg, Kind kind, Kind& outKind,
                                          SocketAddress& scratch) noexcept {
    if (!leg.rtpDest.valid()) return nullptr;
    const SocketAddress& latchedRtp = leg.latched[0];
    if (kind == Kind::rtp || leg.media.rtcpMux) {
      outKind = Kind::rtp;
      return latchedRtp.valid() ? &latchedRtp : &leg.rtpDest;
    }
    outKind = Kind::rtcp;
    const SocketAddress& latchedRtcp = leg.latched[1];
    if (latchedRtcp.valid()) return &latchedRtcp;
    if (latchedRtp.valid()) {
      scratch = latchedRtp;
      setPort(scratch, static_cast<std::uint16_t>(portOf(latchedRtp.storage) + 1));
      return &scratch;
    }
    return &leg.rtcpDest;
  }

  // Called on the worker; lock-free, no allocation: bursts from one ready socket.
  // Returns true when the socket may hold more (the fairness bound stopped it).
  bool drain(const MediaSocket& socket, Nanos now) {
    for (int burst = 0; burst < kBurstsPerEvent; ++burst) {
      // A close or update posted meanwhile applies before the next burst (one relaxed load
      // per burst): the grace period after closeStream() is one burst, not one round.
      if (commandsWaiting_.load(std::memory_order_relaxed)) processCommands(now, false);
      if (socket.stream == nullptr) return false;  // closed (or its socket retired) just now
      if (forwardBurst(socket, now) < kBatch) return false;
    }
    return true;
  }

  std::size_t forwardBurst(const MediaSocket& socket, Nanos now) {
    for (std::size_t i = 0; i < kBatch; ++i) {
      rx_[i].msg_hdr.msg_namelen = sizeof(sockaddr_storage);  // the kernel shrinks it
    }
    const int got = ::recvmmsg(socket.fd, rx_.data(), kBatch, MSG_DONTWAIT, nullptr);
    if (got <= 0) return 0;
    const auto received = static_cast<std::size_t>(got);
    // An update or close posted between drain()'s look at the queue and this read may be
    // older than some of these datagrams (the peer was told, then sent): apply it first.
    if (commandsWaiting_.load(std::memory_order_acquire)) processCommands(now, false);
    if (socket.stream == nullptr) {  // closed just now: its port rests
      countDropReasons(received, 0, 0, 0);
      acknowledge(socket.realm, socket.port, received);
      return received;
    }
    Stream& stream = *socket.stream;

    const auto in = static_cast<std::size_t>(socket.realm);
    const auto out = static_cast<std::size_t>(otherRealm(socket.realm));
    LegState& from = stream.legs[in];
    // Latching below changes only this side's learnt source, never where its packets go.
    Kind outKind = Kind::rtp;
    SocketAddress scratch;
    const SocketAddress* to = destination(stream.legs[out], socket.kind, outKind, scratch);

    std::size_t malformed = 0, refused = 0, accepted = 0, queued = 0;
    for (std::size_t i = 0; i < received; ++i) {
      const mmsghdr& message = rx_[i];
      if ((message.msg_hdr.msg_flags & MSG_TRUNC) != 0 || message.msg_len == 0) {
        ++malformed;
        continue;
      }
      if (!accept(stream, from, socket.kind, sources_[i])) {
        ++refused;
        continue;
      }
      ++accepted;
      if (to == nullptr) continue;
      txIov_[queued].iov_base = rxBuffers_[i].data();
      txIov_[queued].iov_len = message.msg_len;
      tx_[queued].msg_hdr.msg_name = const_cast<sockaddr_storage*>(&to->storage);
      tx_[queued].msg_hdr.msg_namelen = to->length;
      ++queued;
    }
    const std::size_t unrouted = to == nullptr ? accepted : 0;

    std::size_t sent = 0;
    std::uint64_t sentBytes = 0;
    // A latch learnt in this burst reaches the kernel before the burst leaves: the peer may
    // answer at once, and the kernel must then send to the learnt address too.
    if (!kernelDirty_.empty()) writeDirtyKernelEntries();
    if (queued > 0) {
      sent = transmit(stream.socket(out, outKind).fd, queued);
      for (std::size_t i = 0; i < queued; ++i) {
        if (txSent_[i]) sentBytes += txIov_[i].iov_len;
      }
    }
    const std::size_t txFailed = queued - sent;

    if (accepted > 0) from.lastRx = now;
    countDropReasons(0, malformed, refused, txFailed);
    acknowledge(socket.realm, socket.port, received);  // once they are sent
    if (sent > 0) countForwarded(stream, in, sent, sentBytes);
    countDropped(stream, in, malformed + refused + unrouted + txFailed);
    return received;
  }

  // The counters both port modes keep: per stream and trunk (forwarded, dropped), and the
  // relay's drops by reason. Only the worker writes them.
  static void countForwarded(Stream& stream, std::size_t in, std::uint64_t packets,
                             std::uint64_t bytes) {
    bump(stream.packets[in], packets);
    bump(stream.bytes[in], bytes);
    bump(stream.label->packets[in], packets);
    bump(stream.label->bytes[in], bytes);
  }
  static void countDropped(Stream& stream, std::size_t in, std::uint64_t packets) {
    if (packets == 0) return;
    bump(stream.dropped[in], packets);
    bump(stream.label->dropped, packets);
  }
  void countDropReasons(std::uint64_t noFlow, std::uint64_t malformed, std::uint64_t refused,
                        std::uint64_t txFull) {
    auto& drops = counters_.dropped;
    if (noFlow) bump(drops[static_cast<std::size_t>(DropReason::noFlow)], noFlow);
    if (malformed) bump(drops[static_cast<std::size_t>(DropReason::malformed)], malformed);
    if (refused) bump(drops[static_cast<std::size_t>(DropReason::sourceNotAllowed)], refused);
    if (txFull) bump(drops[static_cast<std::size_t>(DropReason::txFull)], txFull);
  }

  // Sends tx_[0, count) in as few sendmmsg calls as the kernel allows; txSent_ says which
  // went out. Returns how many did.
  std::size_t transmit(int fd, std::size_t count) {
    std::size_t pos = 0, sent = 0;
    while (pos < count) {
      const int n = ::sendmmsg(fd, tx_.data() + pos, static_cast<unsigned>(count - pos),
                               MSG_DONTWAIT);
      if (n > 0) {
        const std::size_t end = pos + static_cast<std::size_t>(n);
        for (std::size_t i = pos; i < end; ++i) txSent_[i] = true;
        sent += static_cast<std::size_t>(n);
        pos = end;
      } else if (n < 0 && errno == EINTR) {
        continue;
      } else if (n < 0 && errno != EAGAIN && errno != ENOBUFS) {
        txSent_[pos++] = false;  // this message failed on its own (e.g. no route): skip it
      } else {
        for (; pos < count; ++pos) txSent_[pos] = false;  // buffer full: the rest of the burst
      }
    }
    return sent;
  }

  // sk_lookup mode, on the worker: bursts from a realm's receiving socket, as drain() does
  // for one port's socket.
  // Returns true when the socket may hold more (the fairness bound stopped it).
  bool drainSteered(const MediaSocket& receiver, Nanos now) {
    for (int burst = 0; burst < kBurstsPerEvent; ++burst) {
      if (commandsWaiting_.load(std::memory_order_relaxed)) processCommands(now, false);
      if (forwardSteeredBurst(receiver, now) < kBatch) return false;
    }
    return true;
  }

  enum class Verdict : std::uint8_t { queued, noFlow, malformed, refused, unrouted };

  // sk_lookup mode: what becomes of received datagram `i`. Queued: its headers and
  // destination fill tx slot `slot`. `stream` is set unless the verdict is noFlow.
  Verdict judge(std::size_t i, std::size_t slot, std::size_t in, std::size_t out, Nanos now,
                Stream*& stream) {
    const mmsghdr& message = rx_[i];
    const MediaSocket* port = steered_[in].ownerOf(rxPorts_[i]);
    if (port == nullptr || port->stream == nullptr) return Verdict::noFlow;
    stream = port->stream;
    if ((message.msg_hdr.msg_flags & MSG_TRUNC) != 0 || message.msg_len == 0) {
      return Verdict::malformed;
    }
    LegState& from = stream->legs[in];
    if (!accept(*stream, from, port->kind, sources_[i])) return Verdict::refused;
    from.lastRx = now;
    Kind outKind = Kind::rtp;
    SocketAddress scratch;
    const SocketAddress* to = destination(stream->legs[out], port->kind, outKind, scratch);
    if (to == nullptr) return Verdict::unrouted;
    SocketAddress source = steered_[out].source;
    setPort(source, static_cast<std::uint16_t>(stream->pairs[out].port +
                                               (outKind == Kind::rtcp ? 1 : 0)));
    const std::size_t headers =
        writeUdpHeaders(txHeaders_[slot].data(), source.storage, to->storage, settings_.dscp,
                        rxBuffers_[i].data(), message.msg_len);
    if (headers == 0) return Verdict::unrouted;  // cannot happen: one family per realm
    txSteeredIov_[slot][0] = {txHeaders_[slot].data(), headers};
    txSteeredIov_[slot][1] = {rxBuffers_[i].data(), message.msg_len};
    // A raw socket routes by msg_name's address; its port would be read as a protocol.
    txDestinations_[slot] = *to;
    setPort(txDestinations_[slot], 0);
    tx_[slot].msg_hdr.msg_name = &txDestinations_[slot].storage;
    tx_[slot].msg_hdr.msg_namelen = txDestinations_[slot].length;
    txStreams_[slot] = stream;
    return Verdict::queued;
  }

  // One burst mixes the realm's streams: each datagram finds its stream by the port it was
  // sent to, is checked against that stream's leg, and is sent out of the other realm's raw
  // socket from the stream's port there. Lock-free, no allocation.
  std::size_t forwardSteeredBurst(const MediaSocket& receiver, Nanos now) {
    for (std::size_t i = 0; i < kBatch; ++i) {
      rx_[i].msg_hdr.msg_namelen = sizeof(sockaddr_storage);  // the kernel shrinks both
      rx_[i].msg_hdr.msg_controllen = kControlSize;
    }
    const int got = ::recvmmsg(receiver.fd, rx_.data(), kBatch, MSG_DONTWAIT, nullptr);
    if (got <= 0) return 0;
    const auto received = static_cast<std::size_t>(got);
    const auto in = static_cast<std::size_t>(receiver.realm);
    const auto out = static_cast<std::size_t>(otherRealm(receiver.realm));

    std::size_t noFlow = 0, malformed = 0, refused = 0, queued = 0;
    for (std::size_t i = 0; i < received; ++i) rxPorts_[i] = originalPort(rx_[i].msg_hdr);
    for (std::size_t i = 0; i < received; ++i) {
      Stream* stream = nullptr;
      Verdict verdict = judge(i, queued, in, out, now, stream);
      if (verdict != Verdict::queued && commandsWaiting_.load(std::memory_order_acquire)) {
        // Its stream may have been opened or updated after this burst began (the peer was
        // told, then sent): judged by the new state, as a new socket is in per-port mode.
        // Streams closed here stay allocated until the round ends, so the datagrams already
        // queued for sending still point at live streams.
        processCommands(now, false);
        verdict = judge(i, queued, in, out, now, stream);
      }
      switch (verdict) {
        case Verdict::queued: ++queued; continue;
        case Verdict::noFlow: ++noFlow; continue;
        case Verdict::malformed: ++malformed; break;
        case Verdict::refused: ++refused; break;
        case Verdict::unrouted: break;  // accepted; that side's address is unknown
      }
      countDropped(*stream, in, 1);
    }

    std::size_t txFailed = 0;
    // A latch learnt in this burst reaches the kernel before the burst leaves: the peer may
    // answer at once, and the kernel must then send to the learnt address too.
    if (!kernelDirty_.empty()) writeDirtyKernelEntries();
    if (queued > 0) {
      transmit(steered_[out].sender->fd, queued);
      for (std::size_t i = 0; i < queued; ++i) {
        Stream& stream = *txStreams_[i];
        if (!txSent_[i]) {
          ++txFailed;
          countDropped(stream, in, 1);
          continue;
        }
        countForwarded(stream, in, 1, txSteeredIov_[i][1].iov_len);
      }
    }
    countDropReasons(noFlow, malformed, refused, txFailed);
    for (std::size_t i = 0; kernel_ && i < received; ++i) {  // once they are sent
      acknowledge(receiver.realm, rxPorts_[i], 1);
    }
    return received;
  }

  // How long `stream` has been silent at `now`; nullopt when no side of it is expected to
  // talk (on hold), or when it is closed or already reported.
  static std::optional<Nanos> silence(const Stream& stream, Nanos now) {
    if (stream.closed || stream.timeoutReported) return std::nullopt;
    Nanos last = stream.lastChange;
    bool expecting = false;
    for (const LegState& leg : stream.legs) {
      if (leg.media.silenceExpected) continue;
      expecting = true;
      last = std::max(last, leg.lastRx);
    }
    if (!expecting) return std::nullopt;
    return now - last;
  }

  // A stream looks silent when no packet of it has been *read* for the timeout. After the
  // worker was kept from its CPU that long (a stalled VM, a busy host), datagrams that
  // arrived in time still wait in the sockets, more of them than one round reads: the streams
  // they belong to are talking. So before reporting, the worker reads the sockets the
  // suspects' media would be in; a suspect is reported only if it is still silent after
  // that. Where the reads could not empty a socket (the relay is overloaded), the report waits
  // for later scans, for at most one more timeout period. Costs syscalls only for suspects.
  void scanTimeouts(Nanos now, Nanos timeout) {
    if (kernel_) foldKernelCounters(now);  // the kernel's packets count as heard, too
    suspects_.clear();
    for (Stream* stream : active_) {
      const auto silent = silence(*stream, now);
      if (silent && *silent >= timeout) suspects_.push_back({stream, false});
    }
    if (suspects_.empty()) return;

    // Reading may apply commands (closing suspects, changing active_): suspects_ is a copy,
    // and a closed stream stays allocated until handBack() at the end of the round.
    if (steering_) {
      std::array<bool, kRealmCount> expected{}, backlog{};
      for (const Suspect& suspect : suspects_) {
        for (std::size_t r = 0; r < kRealmCount; ++r) {
          expected[r] = expected[r] || !suspect.stream->legs[r].media.silenceExpected;
        }
      }
      for (std::size_t r = 0; r < kRealmCount; ++r) {
        bool more = expected[r];
        for (int round = 0; more && round < kCatchUpRounds; ++round) {
          more = drainSteered(*steered_[r].receiver, now);
        }
        backlog[r] = more;
      }
      for (Suspect& suspect : suspects_) {
        for (std::size_t r = 0; r < kRealmCount; ++r) {
          suspect.maybeQueued = suspect.maybeQueued ||
                                (backlog[r] && !suspect.stream->legs[r].media.silenceExpected);
        }
      }
    } else {
      for (Suspect& suspect : suspects_) {
        const Stream& stream = *suspect.stream;
        for (std::size_t r = 0; r < kRealmCount && !stream.closed; ++r) {
          if (stream.legs[r].media.silenceExpected) continue;
          // drain() stops by itself once a close has detached the socket.
          const bool rtpMore = drain(*stream.pairs[r].rtp, now);
          const bool rtcpMore = drain(*stream.pairs[r].rtcp, now);
          suspect.maybeQueued = suspect.maybeQueued || rtpMore || rtcpMore;
        }
      }
    }

    for (const Suspect& suspect : suspects_) {
      const auto silent = silence(*suspect.stream, now);
      if (!silent || *silent < timeout) continue;
      if (suspect.maybeQueued && *silent < 2 * timeout) continue;  // look again next scan
      suspect.stream->timeoutReported = true;
      timedOutLocal_.push_back(suspect.stream->id);
    }
  }

  // --- kernel forwarding -----------------------------------------------------------------

  static std::uint64_t atomicLoad(const std::uint64_t& word) noexcept {
    return __atomic_load_n(&word, __ATOMIC_RELAXED);  // the program writes it concurrently
  }

  std::uint32_t slotOf(const Stream& stream, std::size_t realm, std::size_t kind) const noexcept {
    return kernel_->slotOf(realm, static_cast<std::uint16_t>(stream.pairs[realm].port + kind));
  }

  MediaAddress relayPort(const Stream& stream, std::size_t realm, std::size_t kind) const {
    return {settings_.realms[realm].address,
            static_cast<std::uint16_t>(stream.pairs[realm].port + kind)};
  }

  // Worker: `count` datagrams that reached relay port `port`'s socket have been read and dealt
  // with (sent on or dropped): the program may forward the port's next ones itself once it
  // has left no more than these to the socket.
  void acknowledge(Realm realm, std::uint16_t port, std::uint64_t count) noexcept {
    if (!kernel_ || count == 0) return;
    const RealmMedia& media = settings_.realms[static_cast<std::size_t>(realm)];
    if (port < media.portMin || port > media.portMax) return;
    sbc_fwd_counters& counters = kernel_->counters(kernel_->slotOf(static_cast<std::size_t>(realm), port));
    __atomic_store_n(&counters.handled, atomicLoad(counters.handled) + count, __ATOMIC_RELEASE);
  }

  // Under kernelMutex_.
  void eraseKernelEntries(Stream& stream) {
    for (std::size_t r = 0; r < kRealmCount; ++r) {
      for (std::size_t k = 0; k < kKinds; ++k) {
        if (stream.kernelEntry[r][k]) kernel_->erase(relayPort(stream, r, k));
        stream.kernelEntry[r][k] = false;
      }
    }
  }

  // Worker: the update just applied was the last one signaling posted: back into the kernel.
  void releaseKernelHold(Stream& stream) {
    if (!kernel_) return;
    std::lock_guard lock(kernelMutex_);
    if (--stream.kernelHolds == 0 && !stream.closed) writeKernelEntries(stream);
  }

  void writeDirtyKernelEntries() {
    std::lock_guard lock(kernelMutex_);
    for (Stream* stream : kernelDirty_) {
      stream->kernelDirty = false;
      if (stream->kernelHolds == 0 && !stream->closed) writeKernelEntries(*stream);
    }
    kernelDirty_.clear();
  }

  // Worker, under kernelMutex_: an entry for each of the stream's relay ports whose packets'
  // fate the kernel can decide exactly as accept() and destination() would; the others'
  // packets reach the socket.
  void writeKernelEntries(Stream& stream) {
    for (std::size_t r = 0; r < kRealmCount; ++r) {
      for (std::size_t k = 0; k < kKinds; ++k) {
        const MediaAddress port = relayPort(stream, r, k);
        const auto flow = kernelFlow(stream, r, static_cast<Kind>(k));
        bool& entry = stream.kernelEntry[r][k];
        if (flow && kernel_->put(port, *flow)) {
          entry = true;
        } else if (entry) {
          kernel_->erase(port);
          entry = false;
        }
      }
    }
  }

  std::optional<sbc_fwd_flow> kernelFlow(const Stream& stream, std::size_t in, Kind kind) const {
    const LegState& from = stream.legs[in];
    if (!from.known) return std::nullopt;
    const std::size_t out = 1 - in;
    const policy::IpFamily family = settings_.realms[in].address.family;
    const std::size_t bytes = family == policy::IpFamily::v4 ? 4 : 16;
    sbc_fwd_flow flow{};
    if (from.media.latch) {
      const SocketAddress& latched = from.latched[static_cast<std::size_t>(kind)];
      if (!latched.valid()) return std::nullopt;  // the worker learns it from the first packet
      flow.exact_source = 1;
      const policy::IpAddress address = ipOf(latched.storage);
      std::memcpy(flow.source_address, address.bytes.data(), bytes);
      flow.source_port = htons(portOf(latched.storage));
    } else {
      for (const policy::IpPrefix& prefix : from.media.allowedSources) {
        if (prefix.address.family != family) continue;  // never matches this realm's packets
        if (flow.prefix_count == SBC_FWD_MAX_PREFIXES) return std::nullopt;
        sbc_fwd_prefix& entry = flow.prefixes[flow.prefix_count++];
        for (std::size_t i = 0; i < bytes; ++i) {
          const int bits = std::clamp(static_cast<int>(prefix.length) - static_cast<int>(8 * i), 0, 8);
          entry.mask[i] = static_cast<std::uint8_t>(0xff00 >> bits);
          entry.address[i] = prefix.address.bytes[i] & entry.mask[i];
        }
      }
      if (flow.prefix_count == 0) return std::nullopt;
    }
    Kind outKind = Kind::rtp;
    SocketAddress scratch;
    const SocketAddress* destinationAddress = destination(stream.legs[out], kind, outKind, scratch);
    if (destinationAddress == nullptr) return std::nullopt;
    const policy::IpAddress peer = ipOf(destinationAddress->storage);
    if (peer.family != settings_.realms[out].address.family) return std::nullopt;
    const auto egress = kernel_->egressTo(static_cast<Realm>(out), peer);
    if (!egress) return std::nullopt;
    flow.egress = static_cast<std::uint8_t>(egress->how);
    flow.egress_ifindex = egress->ifindex;
    flow.tos = static_cast<std::uint8_t>(settings_.dscp << 2);
    const std::size_t outBytes = peer.family == policy::IpFamily::v4 ? 4 : 16;
    std::memcpy(flow.new_source, settings_.realms[out].address.bytes.data(), outBytes);
    flow.new_source_port =
        htons(static_cast<std::uint16_t>(stream.pairs[out].port + (outKind == Kind::rtcp ? 1 : 0)));
    std::memcpy(flow.new_destination, peer.bytes.data(), outBytes);
    flow.new_destination_port = htons(portOf(destinationAddress->storage));
    return flow;
  }

  // Worker: what the kernel forwarded for `stream` since the last look, into its counters,
  // its label's, and its sides' last-heard times.
  void foldKernelCounters(Stream& stream) {
    for (std::size_t r = 0; r < kRealmCount; ++r) {
      for (std::size_t k = 0; k < kKinds; ++k) {
        sbc_fwd_counters& counters = kernel_->counters(slotOf(stream, r, k));
        KernelSeen& seen = stream.kernelSeen[r][k];
        resynchronise(stream, r, k, counters, seen);
        const std::uint64_t packets = atomicLoad(counters.packets);
        if (packets == seen.packets) continue;
        const std::uint64_t bytes = atomicLoad(counters.bytes);
        countForwarded(stream, r, packets - seen.packets, bytes - seen.bytes);
        bump(counters_.kernelForwarded, packets - seen.packets);
        seen.packets = packets;
        seen.bytes = bytes;
        // The port's packets changed, so its last one was this stream's.
        const auto heard = static_cast<Nanos>(atomicLoad(counters.last_seen_ns));
        stream.legs[r].lastRx = std::max(stream.legs[r].lastRx, heard);
      }
    }
  }
  // A datagram the program left to a socket may never be read: the kernel dropped it on the
  // way (a full socket buffer, a bad checksum, no socket bound) or one arrived that the
  // program never saw (another interface, a fragment). Then passed and handled differ by the
  // same amount for good, also while the port's packets keep coming through the socket, and
  // the port would stay out of the kernel. A difference unchanged since the last fold, with
  // nothing waiting in the socket that serves the port, is such a loss: equal them.
  void resynchronise(const Stream& stream, std::size_t realm, std::size_t kind,
                     sbc_fwd_counters& counters, KernelSeen& seen) const noexcept {
    const std::uint64_t passed = atomicLoad(counters.passed);
    const std::uint64_t handled = atomicLoad(counters.handled);
    if (passed != handled && passed - handled == seen.passed - seen.handled) {
      const int fd = steering_ ? steered_[realm].receiver->fd
                               : stream.socket(realm, static_cast<Kind>(kind)).fd;
      int waiting = 0;
      if (::ioctl(fd, SIOCINQ, &waiting) == 0 && waiting == 0) {
        __atomic_store_n(&counters.handled, passed, __ATOMIC_RELEASE);
      }
    }
    seen.passed = passed;
    seen.handled = handled;
  }

  // Reading 4 counters per stream every fold costs a cache miss each: 2000 calls without any
  // media took 1.6 % of sbcd's CPU in it (perf). Nothing to read while the program is idle.
  void foldKernelCounters(Nanos now) {
    lastKernelFold_ = now;
    const std::uint64_t activity = kernel_->activity();
    if (activity == lastKernelActivity_) return;
    lastKernelActivity_ = activity;
    for (Stream* stream : active_) foldKernelCounters(*stream);
  }

  // Worker: hands closed streams, retired sockets and timeout reports over, one lock per
  // round.
  void handBack() {
    if (toHandBack_.empty() && retiredLocal_.empty() && timedOutLocal_.empty()) return;
    bool notify = false;
    {
      std::lock_guard lock(mutex_);
      closed_.insert(closed_.end(), toHandBack_.begin(), toHandBack_.end());
      for (SocketPair& pair : retiredLocal_) retired_.push_back(std::move(pair));
      if (!timedOutLocal_.empty()) {
        timedOut_.insert(timedOut_.end(), timedOutLocal_.begin(), timedOutLocal_.end());
        notify = true;
      }
    }
    toHandBack_.clear();
    retiredLocal_.clear();
    timedOutLocal_.clear();
    if (notify) {
      const std::uint64_t one = 1;
      [[maybe_unused]] const auto n = ::write(timeoutFd_, &one, sizeof one);
    }
  }

  const RelaySettings settings_;

  // Signaling thread only.
  std::array<PortAllocator, kRealmCount> ports_;
  std::unordered_map<StreamId, std::unique_ptr<Stream>> streams_;
  StreamId nextId_ = 1;
  std::map<std::string, LabelCounters*, std::less<>> labelIndex_;
  std::vector<Stream*> reclaiming_;
  std::vector<SocketPair> retiredBack_;
  std::array<std::deque<SocketPair>, kRealmCount> warm_;  // release order = reuse order
  bool workerGone_ = false;  // set by the destructor once the worker has stopped
  const bool steering_;  // sk_lookup mode
  // sk_lookup mode: made before the worker starts; `owners` is the worker's alone.
  std::array<SteeredRealm, kRealmCount> steered_{};
  // Kernel forwarding: made before the worker starts. Signaling erases entries, the worker
  // writes them, both under kernelMutex_ (commands and latches, never per packet).
  std::unique_ptr<KernelForwarding> kernel_;
  std::mutex kernelMutex_;

  // Labels: added by signaling, read by stats() on any thread.
  mutable std::mutex labelsMutex_;
  std::deque<LabelCounters> labels_;

  // Shared, under mutex_: commands and pairs to retire in; closed streams, retired pairs
  // and timeout reports out.
  std::mutex mutex_;
  std::vector<Command> commands_;
  std::vector<SocketPair> retiring_;
  std::vector<Stream*> closed_;
  std::vector<SocketPair> retired_;
  std::vector<StreamId> timedOut_;

  // Worker only.
  std::vector<Command> pending_;
  std::vector<SocketPair> retiringLocal_;
  std::vector<SocketPair> retiredLocal_;
  std::vector<Stream*> active_;
  std::vector<Stream*> toHandBack_;
  std::vector<StreamId> timedOutLocal_;
  struct Suspect {
    Stream* stream;
    bool maybeQueued;  // its sockets still held datagrams when the look stopped
  };
  std::vector<Suspect> suspects_;  // scanTimeouts() only; kept for its capacity
  std::vector<Stream*> kernelDirty_;  // latched this round: entries to rewrite
  Nanos lastKernelFold_ = 0;
  std::uint64_t lastKernelActivity_ = 0;
  std::array<std::array<std::uint8_t, kMaxDatagram>, kBatch> rxBuffers_{};
  std::array<sockaddr_storage, kBatch> sources_{};
  std::array<iovec, kBatch> rxIov_{};
  std::array<mmsghdr, kBatch> rx_{};
  std::array<iovec, kBatch> txIov_{};
  std::array<mmsghdr, kBatch> tx_{};
  std::array<bool, kBatch> txSent_{};
  // sk_lookup mode only.
  std::array<std::array<std::uint8_t, kControlSize>, kBatch> rxControl_{};
  std::array<std::array<std::uint8_t, kMaxUdpHeaders>, kBatch> txHeaders_{};
  std::array<std::array<iovec, 2>, kBatch> txSteeredIov_{};
  std::array<SocketAddress, kBatch> txDestinations_{};
  std::array<Stream*, kBatch> txStreams_{};
  std::array<std::uint16_t, kBatch> rxPorts_{};  // each datagram's original destination port
  WorkerCounters counters_;

  int epollFd_ = -1;
  int commandFd_ = -1;
  int timeoutFd_ = -1;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> commandsWaiting_{false};  // set under mutex_ by post(), cleared by the swap
  bool wakePending_ = false;  // under mutex_: the eventfd was written since the last swap
  std::thread worker_;
};

}  // namespace

std::unique_ptr<MediaRelay> makeSocketRelay(const RelaySettings& settings) {
  return std::make_unique<SocketRelay>(settings);
}

}  // namespace sbc::dataplane
