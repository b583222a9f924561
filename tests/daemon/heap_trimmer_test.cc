// The heap trimmer gives freed memory inside the heap back to the kernel: glibc alone
// keeps it while a live allocation sits above it, jemalloc until allocations go on.

#include "daemon/heap_trimmer.h"

#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <thread>
#include <vector>

namespace sbc::daemon {
namespace {

constexpr std::size_t kBlock = 512;  // small: from the heap, never mapped on its own
constexpr std::size_t kBlocks = 128 * 1024;  // 64 MiB

// Fills a heap with small blocks (touched, so resident), frees all but the last one, which
// pins the heap's top, and reports what the trimmer then releases. On a thread of its own:
// a fresh arena, not the test framework's.
HeapTrim fillFreeAndTrim(std::int64_t& keptAfterFree) {
  HeapTrim trim;
  std::thread([&] {
    std::vector<std::unique_ptr<char[]>> blocks;
    blocks.reserve(kBlocks);
    for (std::size_t i = 0; i < kBlocks; ++i) {
      blocks.emplace_back(new char[kBlock]);
      std::memset(blocks.back().get(), 0x5a, kBlock);
    }
    const std::int64_t filled = HeapTrimmer::residentBytes();
    for (std::size_t i = 0; i + 1 < kBlocks; ++i) blocks[i].reset();
    keptAfterFree = HeapTrimmer::residentBytes() - (filled - static_cast<std::int64_t>(kBlock * kBlocks));
    trim = HeapTrimmer::trimNow();
  }).join();
  return trim;
}

TEST(HeapTrimmer, ReleasesFreedMemoryPinnedBelowALiveBlock) {
  ASSERT_GT(HeapTrimmer::residentBytes(), 0);
  std::int64_t keptAfterFree = 0;
  const HeapTrim trim = fillFreeAndTrim(keptAfterFree);
  // Without the trim, freeing kept (nearly) all of it resident: the premise of the test.
  EXPECT_GT(keptAfterFree, static_cast<std::int64_t>(kBlock * kBlocks) / 2);
  // The trim gave at least half of it back.
  EXPECT_GT(trim.releasedBytes, static_cast<std::int64_t>(kBlock * kBlocks) / 2)
      << "released " << trim.releasedBytes << " bytes in " << trim.took.count() << " us";
  std::printf("trim of a %zu MiB free heap: %lld MiB released in %lld us\n",
              kBlock * kBlocks / (1024 * 1024),
              static_cast<long long>(trim.releasedBytes / (1024 * 1024)),
              static_cast<long long>(trim.took.count()));
}

}  // namespace
}  // namespace sbc::daemon
