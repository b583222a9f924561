#pragma once
// Hands the allocator's free heap memory back to the kernel at intervals.
//
// Why: SIP transactions are many, short-lived and small (nta keeps each message for 64*T1).
// Under load they spread over tens of MiB of heap; once the load passes, glibc returns
// only the free memory at the top of a heap, so a daemon that once took a registration
// storm would stay that large for good. malloc_trim(0) also releases the free pages inside
// the heaps (long-lived data that would pin them, the line bindings, lives in a pool of its
// own: signaling/registrations.h). With jemalloc (meson option `allocator`, the default) a
// trim purges every arena: jemalloc returns freed pages on its own only while allocations
// go on.

#include <chrono>
#include <cstdint>

#include "daemon/asio.h"

namespace sbc::daemon {

struct HeapTrim {
  std::int64_t releasedBytes = 0;  // resident size before minus after (may be negative)
  std::chrono::microseconds took{0};
};

class HeapTrimmer {
 public:
  HeapTrimmer(boost::asio::io_context& io, std::chrono::milliseconds interval);
  void start();

  // One trim, now, on the calling thread.
  static HeapTrim trimNow();
  // The process's resident size (VmRSS), 0 if /proc cannot tell.
  static std::int64_t residentBytes();

 private:
  void schedule();

  boost::asio::steady_timer timer_;
  std::chrono::milliseconds interval_;
};

}  // namespace sbc::daemon
