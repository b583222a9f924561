#pragma once
// EAL initialises once per process (a second rte_eal_init fails, even after cleanup).
// Control thread only.

#include <string>
#include <vector>

namespace sbc::dataplane::dpdk {

// Initialises the EAL with `args` (argv[0] is added) the first time; later calls return
// whether that first one succeeded, whatever their args. rte_eal_init pins the calling
// thread to the main lcore: its previous CPU affinity is restored afterwards, so threads
// created later do not inherit one CPU by accident. With --no-shconf the runtime directory
// (/var/run/dpdk/<prefix> or /tmp/dpdk/<prefix>) is not used after start-up and is removed.
bool ensureEal(const std::vector<std::string>& args, std::string* error = nullptr);

}  // namespace sbc::dataplane::dpdk
