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
// Then memory: RSS and kernel slab growth for N concurrent streams (4 sockets each).
//
// Usage: bench_socket_relay [--seconds S] [--runs R] [--sessions 100,1000]
//                           [--rates 50000,100000,200000] [--memory-streams 10000]

#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

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
  double loss = 0;
  std::uint64_t sent = 0, received = 0, forwarded = 0, rcvbufErrors = 0;
  double achievedPps = 0;
};

RunResult runOnce(MediaRelay& relay, pid_t worker, const std::vector<sockaddr_in>& targets,
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
    while (sinking.load(std::memory_order_relaxed)) {
      pollfd waiting{sinkFd, POLLIN, 0};
      if (::poll(&waiting, 1, 20) <= 0) continue;
      const int n = ::recvmmsg(sinkFd, messages.data(), kBatch, MSG_DONTWAIT, nullptr);
      for (int i = 0; i < n; ++i) {
        if (buffers[static_cast<std::size_t>(i)][11] == static_cast<char>(runTag)) ++count;
      }
    }
    received.store(count);
  });

  std::vector<std::uint8_t> packet(kPacketSize, 0x55);
  packet[0] = 0x80;
  packet[11] = runTag;  // low byte of the SSRC
  std::uint64_t sent = 0;
  const auto before = relay.stats();
  const std::uint64_t rcvbufBefore = udpRcvbufErrors();
  const std::int64_t cpuBefore = threadCpuNs(worker);
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
  const std::int64_t cpuAfter = threadCpuNs(worker);
  sinking.store(false);
  sink.join();
  const auto after = relay.stats();

  RunResult result;
  result.sent = sent;
  result.received = received.load();
  for (std::size_t i = 0; i < after.labels.size(); ++i) {
    result.forwarded += after.labels[i].packets[0] - (i < before.labels.size() ? before.labels[i].packets[0] : 0);
  }
  result.rcvbufErrors = udpRcvbufErrors() - rcvbufBefore;
  result.cpuNsPerPacket = result.forwarded > 0
                              ? static_cast<double>(cpuAfter - cpuBefore) /
                                    static_cast<double>(result.forwarded)
                              : 0;
  result.loss = sent > 0 ? 1.0 - static_cast<double>(result.received) / static_cast<double>(sent)
                         : 0;
  result.achievedPps = static_cast<double>(sent) / sendSeconds;
  result.generatorNsPerPacket =
      sent > 0 ? (usec(generatorAfter) - usec(generatorBefore)) * 1000.0 / static_cast<double>(sent)
               : 0;
  return result;
}

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

RelaySettings relaySettings(std::uint16_t portMin, std::uint16_t portMax) {
  RelaySettings settings;
  settings.realms[0] = {ip(kAccess), portMin, portMax};
  settings.realms[1] = {ip(kCore), portMin, portMax};
  settings.quarantine = 0ms;
  settings.mediaTimeout = 0ms;
  return settings;
}

void throughput(const std::vector<long>& sessionCounts, const std::vector<long>& rates,
                int runs, double seconds) {
  std::printf("%-9s %-10s %-12s %-14s %-10s %-11s %-12s %s\n", "sessions", "offered", "achieved",
              "cpu/pkt (us)", "loss (%)", "gen us/pkt", "rcvbuf-err", "runs (cpu us/pkt; loss %)");
  for (const long sessions : sessionCounts) {
    auto relay = sbc::dataplane::makeSocketRelay(relaySettings(40000, 49999));
    const pid_t worker = workerTid();
    const int generatorFd = udpSocket(kGenerator, 8 << 20);
    const int sinkFd = udpSocket(kSink, 32 << 20);
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
    for (const long rate : rates) {
      std::vector<double> cpu, loss, achieved, generator;
      std::vector<std::uint64_t> rcvbuf;
      std::string detail;
      for (int run = 0; run < runs; ++run) {
        const RunResult r = runOnce(*relay, worker, targets, generatorFd, sinkFd, rate, seconds);
        cpu.push_back(r.cpuNsPerPacket / 1000.0);
        loss.push_back(r.loss * 100.0);
        achieved.push_back(r.achievedPps);
        generator.push_back(r.generatorNsPerPacket / 1000.0);
        rcvbuf.push_back(r.rcvbufErrors);
        char buffer[64];
        std::snprintf(buffer, sizeof buffer, "%s%.2f;%.3f", run ? " " : "", r.cpuNsPerPacket / 1000.0,
                      r.loss * 100.0);
        detail += buffer;
      }
      std::sort(rcvbuf.begin(), rcvbuf.end());
      std::printf("%-9ld %-10ld %-12.0f %-14.2f %-10.3f %-11.2f %-12llu %s\n", sessions, rate,
                  median(achieved), median(cpu), median(loss), median(generator),
                  static_cast<unsigned long long>(rcvbuf[rcvbuf.size() / 2]), detail.c_str());
      std::fflush(stdout);
    }
    relay.reset();
    ::close(generatorFd);
    ::close(sinkFd);
  }
}

void memory(long streams) {
  rlimit limit{};
  ::getrlimit(RLIMIT_NOFILE, &limit);
  const rlim_t wanted = static_cast<rlim_t>(streams * 4 + 1024);
  if (limit.rlim_cur < wanted) {
    limit.rlim_cur = wanted;
    if (limit.rlim_max < wanted) limit.rlim_max = wanted;
    if (::setrlimit(RLIMIT_NOFILE, &limit) != 0) {
      std::fprintf(stderr, "cannot raise RLIMIT_NOFILE to %lu: skipping the memory run\n",
                   static_cast<unsigned long>(wanted));
      return;
    }
  }
  const auto portMax = static_cast<std::uint16_t>(std::min<long>(20000 + streams * 2 + 4000, 65535));
  auto relay = sbc::dataplane::makeSocketRelay(relaySettings(20000, portMax));
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
  std::printf("\nmemory: %ld streams open (%llu flows, %ld sockets) in %.0f ms (%.1f us/stream)\n",
              opened, static_cast<unsigned long long>(flows), opened * 4, openMs,
              openMs * 1000.0 / static_cast<double>(std::max(opened, 1L)));
  std::printf("  process RSS  +%ld kB = %.0f bytes/stream\n", rssAfter - rssBefore,
              (rssAfter - rssBefore) * 1024.0 / static_cast<double>(std::max(opened, 1L)));
  std::printf("  kernel slab  +%ld kB = %.0f bytes/stream (system-wide, approximate)\n",
              slabAfter - slabBefore,
              (slabAfter - slabBefore) * 1024.0 / static_cast<double>(std::max(opened, 1L)));
}

}  // namespace

int main(int argc, char** argv) {
  double seconds = 3;
  int runs = 3;
  std::vector<long> sessions{100, 1000};
  std::vector<long> rates{50000, 100000, 200000};
  long memoryStreams = 10000;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string option = argv[i];
    if (option == "--seconds") seconds = std::atof(argv[i + 1]);
    else if (option == "--runs") runs = std::atoi(argv[i + 1]);
    else if (option == "--sessions") sessions = parseList(argv[i + 1]);
    else if (option == "--rates") rates = parseList(argv[i + 1]);
    else if (option == "--memory-streams") memoryStreams = std::atol(argv[i + 1]);
    else {
      std::fprintf(stderr, "usage: %s [--seconds S] [--runs R] [--sessions a,b] [--rates a,b,c] "
                   "[--memory-streams N]\n", argv[0]);
      return 2;
    }
  }
  double load[3] = {};
  ::getloadavg(load, 3);
  std::printf("socket relay (batch %s), %zu-byte RTP, %.1f s per run, median of %d runs, "
              "%u CPUs, load average %.2f %.2f %.2f\n",
              argv[0][std::strlen(argv[0]) - 1] == '1' ? "1" : "64", kPacketSize, seconds, runs,
              std::thread::hardware_concurrency(), load[0], load[1], load[2]);
  throughput(sessions, rates, runs, seconds);
  if (memoryStreams > 0) memory(memoryStreams);
  return 0;
}
