// bench_socket_relay: the socket media driver under load on loopback (a benchmark, not a
// test: run it by hand; see docs/performance.md).
//
// One relay (access 127.0.0.10, core 127.0.0.11). For each session count, every session is
// one stream whose access peer is the generator (127.0.0.2) and whose core peer is the sink
// (127.0.0.3). The generator thread sends 172-byte RTP packets (12-byte header + 160 bytes
// of G.711) round-robin over the sessions at a fixed offered rate; the sink thread counts
// what the relay forwarded. Per run: the relay worker's CPU time (its thread CPU clock) per
// forwarded packet, and loss = 1 - received/sent. Median of the runs.
// The generator and the sink are threads of this process: on a 2-core machine they compete
// with the relay worker for the CPUs, so the figures are pessimistic for the relay.
//
// Then memory: RSS and kernel slab growth for N concurrent streams (4 sockets each in
// per_port mode, none in sk_lookup mode).
//
// Both of the driver's port modes run (--socket-ports): per_port (a socket per relay port)
// and sk_lookup (one socket per realm, a BPF program steering the range to it, attached to
// this host's network namespace for 127.0.0.10/11 while the bench runs; needs root); and each
// of them with kernel forwarding (per_port+kernel, sk_lookup+kernel: a TC program on lo
// forwards the streams, attached while the relay lives; needs root). There the relay's CPU
// per packet is its worker thread's plus the program's own run time, which the kernel
// measures while this bench holds BPF_ENABLE_STATS (kernel.bpf_stats_enabled).
//
// Every mode and rtpengine also get "system us/pkt": all CPUs' busy time (/proc/stat) per
// packet sent, the generator, the sink and the kernel's work for them included. It compares
// what is not the relay's own thread: the softirq work each design causes elsewhere.
//
// When /usr/bin/rtpengine exists (Debian rtpengine-daemon) the same runs drive it too
// (userspace forwarding, one worker thread, ng protocol offer/answer per session; its CPU is
// the whole daemon's, from /proc/PID/stat) and both are printed side by side.
//
// Usage: bench_socket_relay [--seconds S] [--runs R] [--sessions 100,1000]
//                           [--rates 50000,100000,200000] [--memory-streams 10000]
//                           [--rtpengine /usr/bin/rtpengine|none]
//                           [--socket-ports per_port,sk_lookup,per_port+kernel,sk_lookup+kernel]

#include <bpf/bpf.h>
#include <netinet/in.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <signal.h>
#include <sys/wait.h>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/socket_address.h"
#include "dataplane/media_relay.h"
#include "dataplane/relay_settings.h"
#include "dataplane/socket/socket_relay.h"

namespace {

using namespace std::chrono_literals;
using sbc::dataplane::LegMedia;
using sbc::dataplane::MediaAddress;
using sbc::dataplane::MediaRelay;
using sbc::dataplane::Realm;
using sbc::dataplane::RelaySettings;
using sbc::dataplane::StreamEndpoints;
using sbc::policy::IpAddress;
using sbc::policy::IpPrefix;
using Clock = std::chrono::steady_clock;

constexpr std::size_t kPacketSize = 172;
constexpr char kAccess[] = "127.0.0.10";
constexpr char kCore[] = "127.0.0.11";
constexpr char kGenerator[] = "127.0.0.2";
constexpr char kSink[] = "127.0.0.3";

std::vector<long> parseList(const char* text) {
  std::vector<long> out;
  std::stringstream in(text);
  for (std::string item; std::getline(in, item, ',');) out.push_back(std::stol(item));
  return out;
}

IpAddress ip(const char* text) { return *IpAddress::parse(text); }

sockaddr_in toSockaddr(const MediaAddress& address) {
  sockaddr_in out{};
  out.sin_family = AF_INET;
  out.sin_port = htons(address.port);
  std::memcpy(&out.sin_addr, address.address.bytes.data(), 4);
  return out;
}

int udpSocket(const char* address, int buffer) {
  const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) std::exit(1);
  // Root may exceed net.core.[rw]mem_max; others get what the sysctl allows.
  if (::setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &buffer, sizeof buffer) != 0) {
    ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buffer, sizeof buffer);
  }
  if (::setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &buffer, sizeof buffer) != 0) {
    ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buffer, sizeof buffer);
  }
  sockaddr_in local = toSockaddr({ip(address), 0});
  if (::bind(fd, reinterpret_cast<sockaddr*>(&local), sizeof local) != 0) {
    std::perror("bind");
    std::exit(1);
  }
  return fd;
}

MediaAddress localAddress(int fd) {
  sockaddr_in local{};
  socklen_t length = sizeof local;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &length);
  IpAddress address;
  std::memcpy(address.bytes.data(), &local.sin_addr, 4);
  return {address, ntohs(local.sin_port)};
}

// The relay worker's thread id, found by its name.
pid_t workerTid() {
  for (int attempt = 0; attempt < 100; ++attempt) {
    for (const auto& task : std::filesystem::directory_iterator("/proc/self/task")) {
      std::ifstream comm(task.path() / "comm");
      std::string name;
      std::getline(comm, name);
      if (name == sbc::dataplane::kSocketWorkerThreadName) {
        return static_cast<pid_t>(std::stol(task.path().filename().string()));
      }
    }
    std::this_thread::sleep_for(10ms);
  }
  std::fprintf(stderr, "relay worker thread not found\n");
  std::exit(1);
}

// CPU time of another thread of this process, in ns (the kernel's per-thread CPU clock:
// MAKE_THREAD_CPUCLOCK(tid, CPUCLOCK_SCHED), as glibc's pthread_getcpuclockid builds it).
std::int64_t threadCpuNs(pid_t tid) {
  const clockid_t clock = static_cast<clockid_t>((~static_cast<unsigned>(tid) << 3) | 6);
  timespec ts{};
  if (::clock_gettime(clock, &ts) != 0) return -1;
  return std::int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

std::uint64_t udpRcvbufErrors() {
  std::ifstream snmp("/proc/net/snmp");
  std::string header, values;
  while (std::getline(snmp, header) && std::getline(snmp, values)) {
    if (header.rfind("Udp:", 0) != 0) continue;
    std::stringstream names(header), numbers(values);
    std::string name, number;
    while (names >> name && numbers >> number) {
      if (name == "RcvbufErrors") return std::stoull(number);
    }
  }
  return 0;
}

// The run time the kernel measured for the relay's forwarding program(s), in ns (0 unless
// BPF_ENABLE_STATS is held).
std::int64_t kernelProgramNs() {
  std::int64_t total = 0;
  __u32 id = 0;
  while (bpf_prog_get_next_id(id, &id) == 0) {
    const int fd = bpf_prog_get_fd_by_id(id);
    if (fd < 0) continue;
    bpf_prog_info info{};
    __u32 length = sizeof info;
    if (bpf_obj_get_info_by_fd(fd, &info, &length) == 0 &&
        std::string(info.name) == "sbc_media_fwd") {
      total += static_cast<std::int64_t>(info.run_time_ns);
    }
    ::close(fd);
  }
  return total;
}

// The kernel memory the forwarding program's maps hold (their fdinfo's memlock), in bytes.
long long kernelMapBytes() {
  long long total = 0;
  __u32 id = 0;
  while (bpf_prog_get_next_id(id, &id) == 0) {
    const int fd = bpf_prog_get_fd_by_id(id);
    if (fd < 0) continue;
    std::array<__u32, 8> maps{};
    bpf_prog_info info{};
    info.nr_map_ids = maps.size();
    info.map_ids = reinterpret_cast<__u64>(maps.data());
    __u32 length = sizeof info;
    if (bpf_obj_get_info_by_fd(fd, &info, &length) == 0 &&
        std::string(info.name) == "sbc_media_fwd") {
      for (__u32 i = 0; i < std::min<__u32>(info.nr_map_ids, maps.size()); ++i) {
        const int map = bpf_map_get_fd_by_id(maps[i]);
        if (map < 0) continue;
        std::ifstream fdinfo("/proc/self/fdinfo/" + std::to_string(map));
        for (std::string line; std::getline(fdinfo, line);) {
          if (line.rfind("memlock:", 0) == 0) total += std::stoll(line.substr(8));
        }
        ::close(map);
      }
    }
    ::close(fd);
  }
  return total;
}

// All CPUs' busy time so far, in ns (/proc/stat, USER_HZ ticks).
std::int64_t systemBusyNs() {
  std::ifstream stat("/proc/stat");
  std::string cpu;
  long long user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0;
  stat >> cpu >> user >> nice >> system >> idle >> iowait >> irq >> softirq >> steal;
  const long long ticks = user + nice + system + irq + softirq + steal;
  return ticks * (1000000000LL / ::sysconf(_SC_CLK_TCK));
}

long readKb(const char* file, const char* key) {
  std::ifstream in(file);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(key, 0) == 0) return std::stol(line.substr(std::strlen(key)));
  }
  return -1;
}

struct RunResult {
  double cpuNsPerPacket = 0;
  double generatorNsPerPacket = 0;  // the generator thread's CPU per packet sent
  double systemNsPerPacket = 0;     // all CPUs' busy time per packet sent
  double loss = 0;
  std::uint64_t sent = 0, received = 0, forwarded = 0, rcvbufErrors = 0;
  double achievedPps = 0;
};

// What is measured: the relay's CPU time so far (ns), and packets it forwarded so far
// (empty: count what the sink received).
struct Subject {
  std::function<std::int64_t()> cpuNs;
  std::function<std::uint64_t()> forwarded;
};

RunResult runOnce(const Subject& subject, const std::vector<sockaddr_in>& targets,
                  int generatorFd, int sinkFd, long rate, double seconds) {
  static std::uint8_t runTag = 0;
  ++runTag;  // in every packet: late packets of an earlier run are not counted
  std::atomic<bool> sinking{true};
  std::atomic<std::uint64_t> received{0};
  std::thread sink([&] {
    constexpr unsigned kBatch = 64;
    std::vector<std::array<char, 2048>> buffers(kBatch);
    std::vector<iovec> iov(kBatch);
    std::vector<mmsghdr> messages(kBatch);
    for (unsigned i = 0; i < kBatch; ++i) {
      iov[i] = {buffers[i].data(), buffers[i].size()};
      messages[i].msg_hdr.msg_iov = &iov[i];
      messages[i].msg_hdr.msg_iovlen = 1;
    }
    std::uint64_t count = 0;
    // Drains every millisecond instead of sleeping in poll(): a sink woken per packet would
    // charge each wake-up (an IPI on a VM) to the relay's send path, which a NIC does not.
    while (sinking.load(std::memory_order_relaxed)) {
      int n = 0;
      while ((n = ::recvmmsg(sinkFd, messages.data(), kBatch, MSG_DONTWAIT, nullptr)) > 0) {
        for (int i = 0; i < n; ++i) {
          if (buffers[static_cast<std::size_t>(i)][11] == static_cast<char>(runTag)) ++count;
        }
      }
      std::this_thread::sleep_for(1ms);
    }
    received.store(count);
  });

  std::vector<std::uint8_t> packet(kPacketSize, 0x55);
  packet[0] = 0x80;
  packet[11] = runTag;  // low byte of the SSRC
  std::uint64_t sent = 0;
  const std::uint64_t forwardedBefore = subject.forwarded ? subject.forwarded() : 0;
  const std::uint64_t rcvbufBefore = udpRcvbufErrors();
  const std::int64_t cpuBefore = subject.cpuNs();
  const std::int64_t systemBefore = systemBusyNs();
  rusage generatorBefore{};
  ::getrusage(RUSAGE_THREAD, &generatorBefore);
  const auto start = Clock::now();
  const auto end = start + std::chrono::duration_cast<Clock::duration>(
                               std::chrono::duration<double>(seconds));
  {
    constexpr std::size_t kBatch = 64;
    std::vector<iovec> iov(kBatch);
    std::vector<mmsghdr> messages(kBatch);
    std::size_t next = 0;
    for (auto now = Clock::now(); now < end; now = Clock::now()) {
      const double elapsed = std::chrono::duration<double>(now - start).count();
      const auto due = static_cast<std::uint64_t>(elapsed * static_cast<double>(rate));
      if (due <= sent) {
        std::this_thread::sleep_for(200us);
        continue;
      }
      const std::size_t burst = std::min<std::uint64_t>(due - sent, kBatch);
      for (std::size_t i = 0; i < burst; ++i) {
        iov[i] = {packet.data(), packet.size()};
        messages[i].msg_hdr = {};
        messages[i].msg_hdr.msg_name = const_cast<sockaddr_in*>(&targets[next]);
        messages[i].msg_hdr.msg_namelen = sizeof(sockaddr_in);
        messages[i].msg_hdr.msg_iov = &iov[i];
        messages[i].msg_hdr.msg_iovlen = 1;
        next = next + 1 == targets.size() ? 0 : next + 1;
      }
      const int n = ::sendmmsg(generatorFd, messages.data(), static_cast<unsigned>(burst), 0);
      if (n > 0) sent += static_cast<std::uint64_t>(n);
    }
  }
  const double sendSeconds = std::chrono::duration<double>(Clock::now() - start).count();
  rusage generatorAfter{};
  ::getrusage(RUSAGE_THREAD, &generatorAfter);
  const auto usec = [](const rusage& r) {
    return (r.ru_utime.tv_sec + r.ru_stime.tv_sec) * 1000000.0 + r.ru_utime.tv_usec +
           r.ru_stime.tv_usec;
  };
  std::this_thread::sleep_for(300ms);  // let the relay and the sink drain
  const std::int64_t cpuAfter = subject.cpuNs();
  const std::int64_t systemAfter = systemBusyNs();
  sinking.store(false);
  sink.join();

  RunResult result;
  result.sent = sent;
  result.received = received.load();
  result.forwarded =
      subject.forwarded ? subject.forwarded() - forwardedBefore : result.received;
  result.rcvbufErrors = udpRcvbufErrors() - rcvbufBefore;
  result.cpuNsPerPacket = result.forwarded > 0
                              ? static_cast<double>(cpuAfter - cpuBefore) /
                                    static_cast<double>(result.forwarded)
                              : 0;
  result.loss = sent > 0 ? 1.0 - static_cast<double>(result.received) / static_cast<double>(sent)
                         : 0;
  result.achievedPps = static_cast<double>(sent) / sendSeconds;
  result.systemNsPerPacket =
      sent > 0 ? static_cast<double>(systemAfter - systemBefore) / static_cast<double>(sent) : 0;
  result.generatorNsPerPacket =
      sent > 0 ? (usec(generatorAfter) - usec(generatorBefore)) * 1000.0 / static_cast<double>(sent)
               : 0;
  return result;
}

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

using sbc::dataplane::SocketPorts;

struct Mode {
  SocketPorts ports = SocketPorts::perPort;
  bool kernel = false;  // kernel forwarding
};

std::string name(const Mode& mode) {
  return std::string(mode.ports == SocketPorts::skLookup ? "sk_lookup" : "per_port") +
         (mode.kernel ? "+kernel" : "");
}

std::optional<Mode> parseMode(const std::string& text) {
  for (const SocketPorts ports : {SocketPorts::perPort, SocketPorts::skLookup}) {
    for (const bool kernel : {false, true}) {
      if (name(Mode{ports, kernel}) == text) return Mode{ports, kernel};
    }
  }
  return std::nullopt;
}

RelaySettings relaySettings(std::uint16_t portMin, std::uint16_t portMax, const Mode& mode) {
  RelaySettings settings;
  settings.socketPorts = mode.ports;
  settings.kernelForwarding = mode.kernel;
  settings.realms[0] = {ip(kAccess), portMin, portMax};
  settings.realms[1] = {ip(kCore), portMin, portMax};
  settings.quarantine = 0ms;
  settings.mediaTimeout = 0ms;
  return settings;
}

struct Row {
  double achieved = 0, cpu = 0, loss = 0, generator = 0, system = 0;
  std::uint64_t rcvbuf = 0;
  std::string detail;
};

Row measure(const Subject& subject, const std::vector<sockaddr_in>& targets, int generatorFd,
            int sinkFd, long rate, int runs, double seconds) {
  std::vector<double> cpu, loss, achieved, generator, system;
  std::vector<std::uint64_t> rcvbuf;
  Row row;
  for (int run = 0; run < runs; ++run) {
    const RunResult r = runOnce(subject, targets, generatorFd, sinkFd, rate, seconds);
    cpu.push_back(r.cpuNsPerPacket / 1000.0);
    loss.push_back(r.loss * 100.0);
    achieved.push_back(r.achievedPps);
    generator.push_back(r.generatorNsPerPacket / 1000.0);
    system.push_back(r.systemNsPerPacket / 1000.0);
    rcvbuf.push_back(r.rcvbufErrors);
    char buffer[64];
    std::snprintf(buffer, sizeof buffer, "%s%.2f;%.3f", run ? " " : "", r.cpuNsPerPacket / 1000.0,
                  r.loss * 100.0);
    row.detail += buffer;
  }
  std::sort(rcvbuf.begin(), rcvbuf.end());
  row.achieved = median(achieved);
  row.cpu = median(cpu);
  row.loss = median(loss);
  row.generator = median(generator);
  row.system = median(system);
  row.rcvbuf = rcvbuf[rcvbuf.size() / 2];
  return row;
}

void printRow(const std::string& relay, long sessions, long rate, const Row& row) {
  std::printf("%-20s %-9ld %-9ld %-9.0f %-13.2f %-9.3f %-11.2f %-11.2f %-11llu %s\n",
              relay.c_str(), sessions, rate, row.achieved, row.cpu, row.loss, row.generator,
              row.system,
              static_cast<unsigned long long>(row.rcvbuf), row.detail.c_str());
  std::fflush(stdout);
}

// Debian's rtpengine, userspace forwarding (--table=-1), one worker thread, on 127.0.0.20,
// driven through its ng control protocol (bencode over UDP) with offer/answer per session.
class Rtpengine {
 public:
  static constexpr char kAddress[] = "127.0.0.20";

  explicit Rtpengine(const std::string& binary) {
    ngPort_ = static_cast<std::uint16_t>(23000 + ::getpid() % 1000);
    const std::string ng = "--listen-ng=127.0.0.1:" + std::to_string(ngPort_);
    pid_ = ::fork();
    if (pid_ == 0) {
      const int null = ::open("/dev/null", O_WRONLY);
      ::dup2(null, 1);
      ::dup2(null, 2);
      ::execl(binary.c_str(), binary.c_str(), "--config-file=none", "--foreground",
              "--log-stderr", "-L", "3", "--table=-1", "--interface=127.0.0.20", ng.c_str(),
              "--num-threads=1", "--port-min=50000", "--port-max=59999",
              static_cast<char*>(nullptr));
      ::_exit(127);
    }
    control_ = udpSocket("127.0.0.1", 1 << 20);
    timeval timeout{0, 200000};
    ::setsockopt(control_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    for (int attempt = 0; attempt < 50 && !ok_; ++attempt) {
      ok_ = command("d7:command4:pinge").find("pong") != std::string::npos;
    }
  }
  ~Rtpengine() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      ::waitpid(pid_, nullptr, 0);
    }
    ::close(control_);
  }
  bool ok() const { return ok_; }
  pid_t pid() const { return pid_; }

  // Offer from the generator, answer from the sink: where the generator must send.
  std::optional<MediaAddress> session(int index, const MediaAddress& generator,
                                      const MediaAddress& sink) {
    const std::string callId = "bench-" + std::to_string(index);
    if (!ports(command(dict({{"call-id", callId}, {"command", "offer"}, {"from-tag", "gen"},
                             {"sdp", sdp(generator)}})))) {
      return std::nullopt;
    }
    const auto port = ports(command(dict({{"call-id", callId}, {"command", "answer"},
                                          {"from-tag", "gen"}, {"sdp", sdp(sink)},
                                          {"to-tag", "sink"}})));
    if (!port) return std::nullopt;
    return MediaAddress{ip(kAddress), *port};
  }

  // The state letter of /proc/PID/stat (R, S, Z...), '?' when gone.
  char state() const {
    std::ifstream stat("/proc/" + std::to_string(pid_) + "/stat");
    std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
    const auto close = text.rfind(')');
    return close == std::string::npos || close + 2 >= text.size() ? '?' : text[close + 2];
  }

  // utime + stime of every thread of the daemon, in ns (clock ticks of /proc/PID/stat).
  std::int64_t cpuNs() const {
    std::ifstream stat("/proc/" + std::to_string(pid_) + "/stat");
    std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
    const auto close = text.rfind(')');
    std::stringstream fields(text.substr(close + 2));
    std::string field;
    long utime = 0, stime = 0;
    for (int i = 3; fields >> field; ++i) {
      if (i == 14) utime = std::stol(field);
      if (i == 15) {
        stime = std::stol(field);
        break;
      }
    }
    return (utime + stime) * (1000000000LL / ::sysconf(_SC_CLK_TCK));
  }

 private:
  static std::string sdp(const MediaAddress& media) {
    const std::string address = media.address.toString();
    return "v=0\r\no=- 1 1 IN IP4 " + address + "\r\ns=-\r\nc=IN IP4 " + address +
           "\r\nt=0 0\r\nm=audio " + std::to_string(media.port) + " RTP/AVP 0\r\n";
  }
  static std::string dict(const std::map<std::string, std::string>& entries) {
    std::string out = "d";
    for (const auto& [key, value] : entries) {
      out += std::to_string(key.size()) + ":" + key + std::to_string(value.size()) + ":" + value;
    }
    return out + "e";
  }
  static std::optional<std::uint16_t> ports(const std::string& reply) {
    const auto m = reply.find("m=audio ");
    if (m == std::string::npos) return std::nullopt;
    return static_cast<std::uint16_t>(std::stoi(reply.substr(m + 8)));
  }
  std::string command(const std::string& body) {
    const std::string message = "c" + std::to_string(++cookie_) + " " + body;
    sockaddr_in ng = toSockaddr({ip("127.0.0.1"), ngPort_});
    ::sendto(control_, message.data(), message.size(), 0, reinterpret_cast<sockaddr*>(&ng),
             sizeof ng);
    std::string reply(65536, '\0');
    const ssize_t n = ::recv(control_, reply.data(), reply.size(), 0);
    reply.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
    return reply;
  }

  pid_t pid_ = -1;
  int control_ = -1;
  std::uint16_t ngPort_ = 0;
  unsigned cookie_ = 0;
  bool ok_ = false;
};

void throughput(const std::vector<long>& sessionCounts, const std::vector<long>& rates,
                int runs, double seconds, const std::string& rtpengine,
                const std::vector<Mode>& modes) {
  std::printf("%-20s %-9s %-9s %-9s %-13s %-9s %-11s %-11s %-11s %s\n", "relay", "sessions",
              "offered", "achieved", "cpu/pkt (us)", "loss (%)", "gen us/pkt", "sys us/pkt",
              "rcvbuf-err", "runs (cpu us/pkt;loss %)");
  std::map<std::pair<long, long>, std::map<std::string, Row>> summary;
  std::vector<std::string> columns;
  for (const Mode& mode : modes) columns.push_back("sbc " + name(mode));
  if (!rtpengine.empty()) columns.push_back("rtpengine");
  for (const long sessions : sessionCounts) {
    const int generatorFd = udpSocket(kGenerator, 8 << 20);
    const int sinkFd = udpSocket(kSink, 32 << 20);
    for (const Mode& mode : modes) {
      auto relay = sbc::dataplane::makeSocketRelay(relaySettings(40000, 49999, mode));
      const pid_t worker = workerTid();
      std::vector<sockaddr_in> targets;
      for (long i = 0; i < sessions; ++i) {
        const auto stream = relay->openStream("bench");
        if (!stream) {
          std::fprintf(stderr, "openStream failed at %ld\n", i);
          std::exit(1);
        }
        LegMedia access;
        access.rtp = localAddress(generatorFd);
        access.allowedSources = {*IpPrefix::parse(std::string(kGenerator) + "/32")};
        LegMedia core;
        core.rtp = localAddress(sinkFd);
        core.allowedSources = {*IpPrefix::parse(std::string(kSink) + "/32")};
        relay->updateLeg(stream->id, Realm::access, access);
        relay->updateLeg(stream->id, Realm::core, core);
        targets.push_back(toSockaddr(stream->rtp[0]));
      }
      std::this_thread::sleep_for(100ms);
      const bool kernel = mode.kernel;
      const Subject subject{[worker, kernel] {
                              return threadCpuNs(worker) + (kernel ? kernelProgramNs() : 0);
                            },
                            [&relay] {
                              std::uint64_t total = 0;
                              for (const auto& label : relay->stats().labels) {
                                total += label.packets[0];
                              }
                              return total;
                            }};
      for (const long rate : rates) {
        const Row row = measure(subject, targets, generatorFd, sinkFd, rate, runs, seconds);
        printRow("sbc " + name(mode), sessions, rate, row);
        summary[{sessions, rate}]["sbc " + name(mode)] = row;
      }
    }
    // A fresh daemon per rate: once overloaded, this rtpengine version may stop reading its
    // sockets altogether ("Too many packets in UDP receive queue ... aborting loop"), which
    // would poison every later rate.
    for (const long rate : rtpengine.empty() ? std::vector<long>{} : rates) {
      Rtpengine daemon(rtpengine);
      std::vector<sockaddr_in> targets;
      for (long i = 0; daemon.ok() && i < sessions; ++i) {
        const auto target = daemon.session(static_cast<int>(i), localAddress(generatorFd),
                                           localAddress(sinkFd));
        if (!target) break;
        targets.push_back(toSockaddr(*target));
      }
      if (!daemon.ok() || targets.size() != static_cast<std::size_t>(sessions)) {
        std::printf("rtpengine: could not start or set up %ld sessions (%zu): skipped\n",
                    sessions, targets.size());
        continue;
      }
      std::this_thread::sleep_for(100ms);
      const Subject subject{[&daemon] { return daemon.cpuNs(); }, {}};
      const Row row = measure(subject, targets, generatorFd, sinkFd, rate, runs, seconds);
      printRow("rtpengine", sessions, rate, row);
      summary[{sessions, rate}]["rtpengine"] = row;
    }
    ::close(generatorFd);
    ::close(sinkFd);
  }
  std::printf("\nside by side (medians): relay cpu us/pkt, system us/pkt and loss %%\n");
  std::printf("%-9s %-9s", "sessions", "offered");
  for (const auto& column : columns) std::printf(" %-28s", column.c_str());
  std::printf("\n");
  for (const auto& [key, rows] : summary) {
    std::printf("%-9ld %-9ld", key.first, key.second);
    for (const auto& column : columns) {
      char cell[64] = "-";
      if (const auto it = rows.find(column); it != rows.end()) {
        std::snprintf(cell, sizeof cell, "%.2f us, %.2f us, %.3f %%", it->second.cpu,
                      it->second.system, it->second.loss);
      }
      std::printf(" %-28s", cell);
    }
    std::printf("\n");
  }
}

void memory(long streams, const Mode& mode) {
  std::printf("\nmemory, %s mode:", name(mode).c_str());
  rlimit limit{};
  ::getrlimit(RLIMIT_NOFILE, &limit);
  const rlim_t wanted = static_cast<rlim_t>(streams * 4 + 1024);
  if (mode.ports == SocketPorts::perPort && limit.rlim_cur < wanted) {
    rlimit raised = limit;
    raised.rlim_cur = wanted;
    if (raised.rlim_max < wanted) raised.rlim_max = wanted;
    if (::setrlimit(RLIMIT_NOFILE, &raised) != 0) {
      // No CAP_SYS_RESOURCE (a container): use the hard limit and measure fewer streams.
      limit.rlim_cur = limit.rlim_max;
      ::setrlimit(RLIMIT_NOFILE, &limit);
      const long fit = (static_cast<long>(limit.rlim_cur) - 1024) / 4;
      std::printf("\nRLIMIT_NOFILE cannot be raised to %lu (hard limit %lu): measuring %ld "
                  "streams instead of %ld\n",
                  static_cast<unsigned long>(wanted), static_cast<unsigned long>(limit.rlim_max),
                  fit, streams);
      streams = fit;
    }
  }
  const auto portMax = static_cast<std::uint16_t>(std::min<long>(20000 + streams * 2 + 4000, 65535));
  auto relay = sbc::dataplane::makeSocketRelay(relaySettings(20000, portMax, mode));
  const auto descriptorsBefore = sbc::common::openDescriptors().size();
  std::this_thread::sleep_for(100ms);
  const long rssBefore = readKb("/proc/self/status", "VmRSS:");
  const long slabBefore = readKb("/proc/meminfo", "Slab:");
  const auto start = Clock::now();
  long opened = 0;
  LegMedia leg;
  leg.rtp = MediaAddress{ip(kSink), 9};
  leg.allowedSources = {*IpPrefix::parse("127.0.0.0/8")};
  for (; opened < streams; ++opened) {
    const auto stream = relay->openStream("memory");
    if (!stream) break;
    relay->updateLeg(stream->id, Realm::access, leg);
    relay->updateLeg(stream->id, Realm::core, leg);
  }
  const double openMs = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
  for (int i = 0; i < 500 && relay->stats().flows < static_cast<std::uint64_t>(opened) * 4; ++i) {
    std::this_thread::sleep_for(10ms);
  }
  const auto flows = relay->stats().flows;
  const long rssAfter = readKb("/proc/self/status", "VmRSS:");
  const long slabAfter = readKb("/proc/meminfo", "Slab:");
  std::printf(" %ld streams open (%llu flows, %ld more descriptors) in %.0f ms (%.1f us/stream)\n",
              opened, static_cast<unsigned long long>(flows),
              static_cast<long>(sbc::common::openDescriptors().size()) - static_cast<long>(descriptorsBefore),
              openMs, openMs * 1000.0 / static_cast<double>(std::max(opened, 1L)));
  std::printf("  process RSS  +%ld kB = %.0f bytes/stream\n", rssAfter - rssBefore,
              (rssAfter - rssBefore) * 1024.0 / static_cast<double>(std::max(opened, 1L)));
  std::printf("  kernel slab  +%ld kB = %.0f bytes/stream (system-wide, approximate)\n",
              slabAfter - slabBefore,
              (slabAfter - slabBefore) * 1024.0 / static_cast<double>(std::max(opened, 1L)));
  if (mode.kernel) {
    // Allocated whole when the relay starts, for every port of both ranges.
    const long long maps = kernelMapBytes();
    std::printf("  BPF maps     %lld kB for %ld relay ports = %.0f bytes/port, %.0f bytes/stream\n",
                maps / 1024, 2L * (portMax - 20000 + 1),
                static_cast<double>(maps) / (2.0 * (portMax - 20000 + 1)),
                static_cast<double>(maps) * 4 / (2.0 * (portMax - 20000 + 1)));
  }
}

}  // namespace

int main(int argc, char** argv) {
  double seconds = 3;
  int runs = 3;
  std::vector<long> sessions{100, 1000};
  std::vector<long> rates{50000, 100000, 200000};
  long memoryStreams = 10000;
  std::string rtpengine = "/usr/bin/rtpengine";
  std::vector<Mode> modes{{SocketPorts::perPort, false}, {SocketPorts::skLookup, false},
                          {SocketPorts::perPort, true}, {SocketPorts::skLookup, true}};
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string option = argv[i];
    if (option == "--seconds") seconds = std::atof(argv[i + 1]);
    else if (option == "--runs") runs = std::atoi(argv[i + 1]);
    else if (option == "--sessions") sessions = parseList(argv[i + 1]);
    else if (option == "--rates") rates = parseList(argv[i + 1]);
    else if (option == "--memory-streams") memoryStreams = std::atol(argv[i + 1]);
    else if (option == "--rtpengine") rtpengine = argv[i + 1] == std::string("none") ? "" : argv[i + 1];
    else if (option == "--socket-ports") {
      modes.clear();
      std::stringstream list(argv[i + 1]);
      for (std::string item; std::getline(list, item, ',');) {
        const auto mode = parseMode(item);
        if (!mode) return 2;
        modes.push_back(*mode);
      }
    } else {
      std::fprintf(stderr, "usage: %s [--seconds S] [--runs R] [--sessions a,b] [--rates a,b,c] "
                   "[--memory-streams N] [--rtpengine PATH|none] "
                   "[--socket-ports per_port,sk_lookup,per_port+kernel,sk_lookup+kernel]\n",
                   argv[0]);
      return 2;
    }
  }
  double load[3] = {};
  ::getloadavg(load, 3);
  std::printf("socket relay (batch %s), %zu-byte RTP, %.1f s per run, median of %d runs, "
              "%u CPUs, load average %.2f %.2f %.2f\n",
              argv[0][std::strlen(argv[0]) - 1] == '1' ? "1" : "64", kPacketSize, seconds, runs,
              std::thread::hardware_concurrency(), load[0], load[1], load[2]);
  if (!rtpengine.empty() && ::access(rtpengine.c_str(), X_OK) != 0) {
    std::printf("rtpengine: %s not found (apt-get install rtpengine-daemon): not compared\n",
                rtpengine.c_str());
    rtpengine.clear();
  }
  // The kernel measures BPF programs' run time while this descriptor is open.
  const bool anyKernel = std::any_of(modes.begin(), modes.end(), [](const Mode& m) { return m.kernel; });
  const int bpfStats = anyKernel ? bpf_enable_stats(BPF_STATS_RUN_TIME) : -1;
  if (anyKernel && bpfStats < 0) {
    std::printf("BPF_ENABLE_STATS refused (%s): kernel modes' cpu/pkt lacks the program's time\n",
                std::strerror(errno));
  }
  if (runs > 0) throughput(sessions, rates, runs, seconds, rtpengine, modes);  // 0: memory only
  for (const Mode& mode : memoryStreams > 0 ? modes : std::vector<Mode>{}) {
    memory(memoryStreams, mode);
  }
  if (bpfStats >= 0) ::close(bpfStats);
  return 0;
}
