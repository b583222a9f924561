// The socket media driver: the shared behaviour suite, plus what only kernel sockets show
// (ports held by other processes, datagrams larger than the receive buffer, thread affinity).

#include "dataplane/socket/socket_relay.h"

#include <pthread.h>
#include <sched.h>
#include <sys/sysinfo.h>

#include <filesystem>
#include <fstream>

#include "tests/dataplane/relay_behaviour.h"

namespace sbc::dataplane::testing {
namespace {

INSTANTIATE_TEST_SUITE_P(Socket, RelayBehaviour,
                         ::testing::Values(RelayTarget{"socket", makeSocketRelay}),
                         relayTargetName);

class SocketRelay : public RelayBehaviour {};
const RelayTarget kSocket{"socket", makeSocketRelay};
INSTANTIATE_TEST_SUITE_P(Socket, SocketRelay, ::testing::Values(kSocket), relayTargetName);

// Proves: a port another socket holds (EADDRINUSE on RTP or RTCP) is skipped, not fatal.
TEST_P(SocketRelay, SkipsPortsHeldByOtherSockets) {
  const auto relaySettings = settings(0ms, 0ms, 3);
  const std::uint16_t first = relaySettings.realms[0].portMin;
  UdpPeer squatter(target().accessMedia, static_cast<std::uint16_t>(first + 1));  // RTCP of 1st
  auto relay = make(relaySettings);
  const auto stream = relay->openStream("");
  ASSERT_TRUE(stream);
  EXPECT_EQ(stream->rtp[0].port, first + 2);
  EXPECT_EQ(stream->rtp[1].port, first);
  EXPECT_TRUE(relay->openStream(""));
  EXPECT_FALSE(relay->openStream("")) << "the held pair must not count as free";
}

// Proves: a datagram larger than the worker's buffer is dropped as malformed, not
// forwarded truncated.
TEST_P(SocketRelay, DropsOversizedDatagramsAsMalformed) {
  auto relay = make(settings());
  UdpPeer trunk(target().trunk), core(target().core);
  const auto stream = relay->openStream("t");
  ASSERT_TRUE(stream);
  ASSERT_TRUE(relay->updateLeg(stream->id, Realm::access, legFor(trunk, target().trunk + "/32")));
  ASSERT_TRUE(relay->updateLeg(stream->id, Realm::core, legFor(core, target().core + "/32")));
  trunk.sendTo(stream->rtp[0], rtpPacket(1, 0, 9000));
  ASSERT_TRUE(eventually([&] {
    return totalDropped(relay->stats(), DropReason::malformed) == 1;
  }));
  EXPECT_TRUE(core.silentFor(100ms));
  EXPECT_EQ(relay->streamCounters(stream->id)->dropped[0], 1u);
  expectForwarded(trunk, stream->rtp[0], core, stream->rtp[1], 2, 5, 1400);
}

// Proves: the worker may run on every CPU even when its creator was pinned to one (as DPDK
// pins the main thread).
TEST_P(SocketRelay, WorkerSetsItsOwnAffinity) {
  if (get_nprocs_conf() < 2) GTEST_SKIP() << "one CPU";
  cpu_set_t saved, one;
  ASSERT_EQ(pthread_getaffinity_np(pthread_self(), sizeof saved, &saved), 0);
  CPU_ZERO(&one);
  CPU_SET(0, &one);
  ASSERT_EQ(pthread_setaffinity_np(pthread_self(), sizeof one, &one), 0);
  auto relay = make(settings());
  pthread_setaffinity_np(pthread_self(), sizeof saved, &saved);
  std::string allowed;
  ASSERT_TRUE(eventually([&] {
    for (const auto& task : std::filesystem::directory_iterator("/proc/self/task")) {
      std::ifstream comm(task.path() / "comm");
      std::string name;
      std::getline(comm, name);
      if (name != kSocketWorkerThreadName) continue;
      std::ifstream status(task.path() / "status");
      for (std::string line; std::getline(status, line);) {
        if (line.rfind("Cpus_allowed_list:", 0) == 0) allowed = line.substr(18);
      }
    }
    return !allowed.empty() && allowed.find_first_not_of(" \t0") != std::string::npos;
  })) << "worker affinity: '" << allowed << "'";
}

// Proves: destroying the relay with open streams and unprocessed commands frees everything
// (checked by the sanitizer build) and does not hang.
TEST_P(SocketRelay, DestroysWithOpenStreamsAndPendingCommands) {
  auto relay = make(settings());
  UdpPeer trunk(target().trunk);
  for (int i = 0; i < 50; ++i) {
    const auto stream = relay->openStream("x");
    ASSERT_TRUE(stream);
    relay->updateLeg(stream->id, Realm::access, legFor(trunk, target().trunk + "/32"));
    trunk.sendTo(stream->rtp[0], rtpPacket(1, 0));
    if (i % 3 == 0) relay->closeStream(stream->id);
  }
  relay.reset();
  SUCCEED();
}

}  // namespace
}  // namespace sbc::dataplane::testing
