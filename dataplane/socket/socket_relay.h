#pragma once
// The `socket` media driver: kernel UDP sockets on the realms' media addresses, one worker
// thread (epoll, recvmmsg per ready socket, one sendmmsg per received burst). The default
// driver; its behaviour is the one media_relay.h describes, identical to the dpdk driver's.
// RelaySettings::socketPorts chooses a socket per relay port (default) or, in sk_lookup
// mode, one socket per realm that a BPF program steers the whole port range to
// (port_steering.h) and a raw socket to send from any relay port (udp_headers.h).

#include <memory>

#include "dataplane/media_relay.h"
#include "dataplane/relay_settings.h"

namespace sbc::dataplane {

// Choices the interface leaves to the driver:
// - A packet sent after updateLeg() or closeStream() returned is judged by the new state (the
//   worker applies waiting commands before each burst): the grace period is one burst.
// - A closed stream's ports rest in quarantine from the first signaling call after the
//   worker has let go of them (at once while packets flow, else within 50 ms). Their
//   sockets stay bound meanwhile (sk_lookup mode: their datagrams still reach the realm's
//   socket); what reaches them is dropped as no_flow.
// - MediaStats::flows counts ports installed in the worker: 4 per stream.
// - Accepted packets towards a side whose address is unknown (rtp = nullopt) are counted
//   in the stream's and label's `dropped` only, under no DropReason. Any send failure counts
//   as tx_full; a datagram over 2,048 bytes (MSG_TRUNC) or empty counts as malformed.
// - A media timeout is reported once per stream; updateLeg() re-arms it.
// Makes the relay and starts its worker thread. Throws std::system_error when the worker's
// epoll or eventfd descriptors cannot be made, or in sk_lookup mode when a realm's socket,
// raw socket or steering program cannot be set up (the message names the step; EPERM
// without the capabilities port_steering.h lists).
std::unique_ptr<MediaRelay> makeSocketRelay(const RelaySettings& settings);

// The worker thread's name (/proc/self/task/*/comm): benchmarks find it to read its CPU time.
inline constexpr const char* kSocketWorkerThreadName = "sbc-media";

}  // namespace sbc::dataplane
