#include "daemon/heap_trimmer.h"

#include <malloc.h>
#include <unistd.h>

#include <cstdio>
#include <string>

#if SBC_JEMALLOC
#include <jemalloc/jemalloc.h>
#endif

#include "common/log.h"

namespace sbc::daemon {

HeapTrimmer::HeapTrimmer(boost::asio::io_context& io, std::chrono::milliseconds interval)
    : timer_(io), interval_(interval) {}

void HeapTrimmer::start() { schedule(); }

void HeapTrimmer::schedule() {
  timer_.expires_after(interval_);
  timer_.async_wait([this](const boost::system::error_code& error) {
    if (error) return;
    const HeapTrim trim = trimNow();
    // A large release follows a load peak: worth an operator's eye (and its cost is
    // seen). Small ones are routine.
    constexpr std::int64_t kMiB = 1024 * 1024;
    if (trim.releasedBytes >= 16 * kMiB) {
      log::info("sbcd", "heap trim returned ", trim.releasedBytes / kMiB,
                " MiB of freed memory to the kernel in ", trim.took.count(), " us");
    } else if (trim.releasedBytes >= kMiB) {
      log::debug("sbcd", "heap trim returned ", trim.releasedBytes / kMiB,
                 " MiB of freed memory to the kernel in ", trim.took.count(), " us");
    }
    schedule();
  });
}

std::int64_t HeapTrimmer::residentBytes() {
  // statm's second field: resident pages. One small read, no parsing of status text.
  std::FILE* statm = std::fopen("/proc/self/statm", "r");
  if (statm == nullptr) return 0;
  long long size = 0, resident = 0;
  const bool read = std::fscanf(statm, "%lld %lld", &size, &resident) == 2;
  std::fclose(statm);
  return read ? resident * ::sysconf(_SC_PAGESIZE) : 0;
}

HeapTrim HeapTrimmer::trimNow() {
  const auto started = std::chrono::steady_clock::now();
  const std::int64_t before = residentBytes();
#if SBC_JEMALLOC
  // jemalloc gives freed pages back by itself only as allocations go on (after
  // dirty_decay_ms); a daemon idle after a load peak would keep them: purge every arena.
  static const std::string purgeAll = "arena." + std::to_string(MALLCTL_ARENAS_ALL) + ".purge";
  ::mallctl(purgeAll.c_str(), nullptr, nullptr, nullptr, 0);
#else
  ::malloc_trim(0);
#endif
  const std::int64_t after = residentBytes();
  return HeapTrim{before - after, std::chrono::duration_cast<std::chrono::microseconds>(
                                      std::chrono::steady_clock::now() - started)};
}

}  // namespace sbc::daemon
