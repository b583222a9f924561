// The DPDK test binary's main: one EAL per process (it cannot initialise twice), with a
// runtime prefix unique to the process; the runtime directory is removed right after
// start-up (ensureEal does so with --no-shconf) and again at exit, also after a failure.
#include <gtest/gtest.h>
#include <rte_mbuf.h>
#include <sched.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <string>

#include "dataplane/dpdk/eal.h"

// Which lcores the binary's EAL gets: "0" (workers on plain threads) unless the build
// says otherwise (dpdk_lcore_test: "0,1", a worker on lcore 1).
#ifndef SBC_DPDK_TEST_LCORES
#define SBC_DPDK_TEST_LCORES "0"
#endif
#include "tests/dataplane/dpdk_test_util.h"
#include "tests/support/test_env.h"

namespace sbc::dataplane::dpdk::testing {
namespace {
rte_mempool* pool = nullptr;
std::string prefix;
void removeRuntimeDir() {
  std::error_code ignored;
  std::filesystem::remove_all("/var/run/dpdk/" + prefix, ignored);
  std::filesystem::remove_all("/tmp/dpdk/" + prefix, ignored);
}
}  // namespace

rte_mempool* testPool() { return pool; }

}  // namespace sbc::dataplane::dpdk::testing

int main(int argc, char** argv) {
  namespace t = sbc::dataplane::dpdk::testing;
  ::testing::InitGoogleTest(&argc, argv);
  t::prefix = "sbc-test-" + std::to_string(getpid());
#ifdef SBC_DPDK_TEST_OWN_NETNS
  // The whole binary runs in a network namespace of its own, made before any thread: the
  // veths and addresses its tests create vanish with the process, even after a crash.
  // Under CI=true a test that cannot run fails; elsewhere it is skipped (meson: exit 77).
  if (const int code = sbc::test::enterOwnNetworkNamespace(); code != 0) return code;
#endif
  std::atexit(t::removeRuntimeDir);
  std::string error;
  if (!sbc::dataplane::dpdk::ensureEal({"--no-huge", "-m", "256", "--no-pci", "--no-shconf",
                                        "--no-telemetry", "--file-prefix=" + t::prefix, "-l",
                                        SBC_DPDK_TEST_LCORES, "--log-level=lib.eal:error"},
                                       &error)) {
    std::cerr << error << "\n";
    return 1;
  }
  t::removeRuntimeDir();
  t::pool = rte_pktmbuf_pool_create("sbc_test_pool", 8191, 256, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
                                    SOCKET_ID_ANY);
  if (t::pool == nullptr) {
    std::cerr << "no mbuf pool\n";
    return 1;
  }
  return RUN_ALL_TESTS();
}
