// PortAllocator: even ports only, FIFO reuse, quarantine, exhaustion, double release.

#include "dataplane/port_allocator.h"

#include <set>

#include <gtest/gtest.h>

namespace sbc::dataplane {
namespace {

using namespace std::chrono_literals;
const auto t0 = PortAllocator::Clock::time_point{} + 1h;

// Proves: ports are even, inside the range with room for RTCP, each handed out once.
TEST(PortAllocator, HandsOutEachEvenPortOnce) {
  PortAllocator ports(10001, 10010, 2000ms);  // 10002..10010: pairs 10002/3 .. 10008/9
  EXPECT_EQ(ports.capacity(), 4u);
  std::set<std::uint16_t> seen;
  for (int i = 0; i < 4; ++i) {
    const auto port = ports.allocate(t0);
    ASSERT_TRUE(port.has_value());
    EXPECT_EQ(*port % 2, 0);
    EXPECT_GE(*port, 10002);
    EXPECT_LE(*port + 1, 10010);
    EXPECT_TRUE(seen.insert(*port).second);
  }
  EXPECT_FALSE(ports.allocate(t0).has_value());
  EXPECT_EQ(ports.inUse(), 4u);
}

// Proves: a released port is not reused before its quarantine ends, and is after.
TEST(PortAllocator, QuarantinesReleasedPorts) {
  PortAllocator ports(20000, 20003, 2000ms);  // two pairs
  const auto a = *ports.allocate(t0);
  const auto b = *ports.allocate(t0);
  ports.release(a, t0);
  EXPECT_FALSE(ports.allocate(t0 + 1999ms).has_value());
  EXPECT_EQ(ports.allocate(t0 + 2000ms), a);
  ports.release(b, t0 + 2000ms);
  EXPECT_EQ(ports.inUse(), 1u);
}

// Proves: reuse is least-recently-released first, spreading ports over the range.
TEST(PortAllocator, ReusesOldestFirst) {
  PortAllocator ports(30000, 30007, 0ms);
  const auto a = *ports.allocate(t0);
  const auto b = *ports.allocate(t0);
  ports.release(b, t0);
  ports.release(a, t0);
  EXPECT_EQ(ports.allocate(t0), 30004);  // never-used ports come first
  EXPECT_EQ(ports.allocate(t0), 30006);
  EXPECT_EQ(ports.allocate(t0), b);
  EXPECT_EQ(ports.allocate(t0), a);
}

// Proves: releasing a port twice, or one never handed out, changes nothing.
TEST(PortAllocator, IgnoresDoubleAndForeignRelease) {
  PortAllocator ports(40000, 40003, 0ms);
  const auto a = *ports.allocate(t0);
  ports.release(a, t0);
  ports.release(a, t0);
  ports.release(40001, t0);
  ports.release(50000, t0);
  EXPECT_EQ(ports.inUse(), 0u);
  EXPECT_TRUE(ports.allocate(t0).has_value());
  EXPECT_TRUE(ports.allocate(t0).has_value());
  EXPECT_FALSE(ports.allocate(t0).has_value());
}

}  // namespace
}  // namespace sbc::dataplane
