#pragma once
// The `socket` media driver: kernel UDP sockets on the realms' media addresses, one worker
// thread (epoll, recvmmsg per ready socket, one sendmmsg per received burst). The default
// driver; its behaviour is the one media_relay.h describes, identical to the dpdk driver's.

#include <memory>

#include "dataplane/media_relay.h"
#include "dataplane/relay_settings.h"

namespace sbc::dataplane {

// Makes the relay and starts its worker thread. Throws std::system_error when the worker's
// epoll or eventfd descriptors cannot be made (control plane only).
std::unique_ptr<MediaRelay> makeSocketRelay(const RelaySettings& settings);

// The worker thread's name (/proc/self/task/*/comm): benchmarks find it to read its CPU time.
inline constexpr const char* kSocketWorkerThreadName = "sbc-media";

}  // namespace sbc::dataplane
