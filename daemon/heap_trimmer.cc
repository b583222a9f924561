#include "daemon/heap_trimmer.h"

#include <malloc.h>
#include <unistd.h>

#include <cstdio>

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
  ::malloc_trim(0);
  const std::int64_t after = residentBytes();
  return HeapTrim{before - after, std::chrono::duration_cast<std::chrono::microseconds>(
                                      std::chrono::steady_clock::now() - started)};
}

}  // namespace sbc::daemon
