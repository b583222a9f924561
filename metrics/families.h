#pragma once
// The one list of every metric family sbcd exports: name, type, labels, help.
// docs/metrics.md is checked against it by tests/metrics/families_test.cc.

#include <array>
#include <cstddef>
#include <string_view>

namespace sbc::metrics {

enum class Kind : unsigned char { counter, gauge, histogram };

// Where a family's values live: `stored` in the prometheus-cpp registry (updated as events
// happen), or `sampled` from live state (atomics) by a collector at scrape time.
enum class Source : unsigned char { stored, sampled };

// X(id, name, kind, source, labels, help)
#define SBC_METRIC_FAMILIES(X)                                                               \
  X(buildInfo, "sbc_build_info", gauge, stored, "version",                                   \
    "Always 1; the label carries the sbcd version")                                          \
  X(configReloadsTotal, "sbc_config_reloads_total", counter, stored, "result",               \
    "Configuration reloads (SIGHUP or control socket), by result: success or failure")       \
  X(trunkActiveCalls, "sbc_trunk_active_calls", gauge, sampled, "trunk",                     \
    "Calls in progress on a trunk, including calls of a trunk removed by a reload")          \
  X(trunkCallLimit, "sbc_trunk_call_limit", gauge, sampled, "trunk",                         \
    "Concurrent-call ceiling of a trunk in the running configuration")                       \
  X(admissionTotal, "sbc_admission_total", counter, stored, "trunk,result",                  \
    "Admission decisions for new calls on a trunk, by result: admitted, over_concurrent, "   \
    "over_rate")                                                                             \
  X(authTotal, "sbc_auth_total", counter, stored, "trunk,result",                          \
    "Digest checks of requests from trunks that are challenged, by result: challenged "     \
    "(407), accepted, failed (403 or 400)")                                                  \
  X(callsTotal, "sbc_calls_total", counter, stored, "trunk,direction,result",                \
    "Calls on a trunk, counted once when over, by direction (from_trunk, to_trunk) and "   \
    "result: answered, media_timeout, aborted, cancelled, failed, timeout, refused")       \
  X(callSetupSeconds, "sbc_call_setup_seconds", histogram, stored, "trunk,direction",       \
    "Seconds from a call's initial INVITE received to the final response sent to it")      \
  X(sessionTimerTotal, "sbc_session_timer_total", counter, stored, "trunk,result",           \
    "RFC 4028 session timer events of calls on a trunk, by result: refreshed (the SBC's "   \
    "refresh answered 2xx), expired (a peer did not refresh; call ended), refresh_failed "  \
    "(the SBC's refresh answered 408/481; call ended), unsupported (refresh answered "      \
    "405/501; that leg no longer refreshed)")                                               \
  X(unroutedCallsTotal, "sbc_unrouted_calls_total", counter, stored, "reason",            \
    "Initial INVITEs from the core routed to no trunk (answered 404), by reason: no_route, " \
    "unknown_trunk")                                                                         \
  X(lineActiveCalls, "sbc_line_active_calls", gauge, sampled, "",                           \
    "Calls in progress on subscriber lines (both directions)")                               \
  X(lineRejectedCallsTotal, "sbc_line_rejected_calls_total", counter, stored, "reason",      \
    "Calls from or to subscriber lines refused by the SBC, by reason: not_registered (from " \
    "an address with no binding for the caller: 403; to a Contact with no binding: 480), "   \
    "over_limit (the line's concurrent ceiling: lines.over_limit_status), draining (503), "  \
    "overload (503: signaling overloaded)")                                                 \
  X(registrations, "sbc_registrations", gauge, stored, "",                                   \
    "Subscriber-line bindings the SBC holds (registered terminals, one per instance)")      \
  X(registerTotal, "sbc_register_total", counter, stored, "result",                          \
    "REGISTERs of subscriber lines, by result: relayed (sent to the core), challenged "     \
    "(the core's 401/407 passed back), accepted (the core's 2xx), throttled (a refresh "   \
    "answered by the SBC), rejected (refused by the SBC or the core), rate_limited "        \
    "(dropped: over the per-address REGISTER rate), overload (503: signaling overloaded)")  \
  X(unknownSourceTotal, "sbc_unknown_source_total", counter, stored, "realm",                \
    "SIP requests whose source address is in no trunk's prefixes (and no registered line)")  \
  X(sipRequestsTotal, "sbc_sip_requests_total", counter, stored, "realm,method",             \
    "SIP requests received (new, in a call, ACK and CANCEL), by realm and method")           \
  X(sipResponsesTotal, "sbc_sip_responses_total", counter, stored, "realm,code",             \
    "SIP responses sent by the SBC, by realm and status code")                               \
  X(sipUnansweredTotal, "sbc_sip_unanswered_total", counter, stored, "realm,reason",         \
    "SIP requests dropped without a response, by reason: unknown_source (the source's "     \
    "response budget was spent), register_flood (over a terminal address's REGISTER rate)")   \
  X(sipMalformedTotal, "sbc_sip_malformed_total", counter, stored, "realm,reason",          \
    "SIP messages refused as malformed, by reason: not_sip (no request or status line: "    \
    "dropped), bad_request (refused by the SIP parser or its sanity checks: 400, 413 or "   \
    "505 when a usable Via allows a response, dropped otherwise), bad_user (a Request-URI " \
    "or From user part that is not RFC 3261's: 400)")                                      \
  X(sipOverloadRefusalsTotal, "sbc_sip_overload_refusals_total", counter, stored, "realm",   \
    "New calls (initial INVITEs) refused with 503 because the signaling thread was "        \
    "overloaded (more than sip.overload_queue_kib waiting in the SIP receive queues), by "  \
    "the realm the INVITE came from")                                                        \
  X(b2buaCalls, "sbc_b2bua_calls", gauge, stored, "",                                        \
    "Calls the B2BUA holds state for, from the first INVITE until their last transaction "  \
    "is done")                                                                               \
  X(sipOverloaded, "sbc_sip_overloaded", gauge, stored, "",                                  \
    "1 while new calls are refused for signaling overload (sip.overload_queue_kib), else 0") \
  X(sipBodiesRefusedTotal, "sbc_sip_bodies_refused_total", counter, stored,                  \
    "realm,message,reason",                                                                  \
    "Message bodies inside a call whose type sip.body_types does not list, by the realm "   \
    "they came from, message (request: answered 415; response: relayed without its body) "  \
    "and reason: content_type, multipart")                                                  \
  X(mediaPacketsTotal, "sbc_media_packets_total", counter, sampled, "trunk,direction",        \
    "Media packets (RTP and RTCP) forwarded on a trunk's streams, by direction: "            \
    "access_to_core or core_to_access")                                                      \
  X(mediaBytesTotal, "sbc_media_bytes_total", counter, sampled, "trunk,direction",            \
    "UDP payload bytes of the media packets forwarded on a trunk's streams, by direction")   \
  X(mediaDroppedTotal, "sbc_media_dropped_total", counter, sampled, "reason",                \
    "Media packets dropped by the relay, by reason: no_flow, source_not_allowed, "          \
    "malformed, not_udp, tx_full, wrong_vlan (dpdk driver only: another VLAN than the "    \
    "realm's), unresolved (dpdk driver only: the next hop's MAC is not known yet)")           \
  X(mediaNeighbourTotal, "sbc_media_neighbour_total", counter, sampled, "protocol,event",    \
    "Address resolution by the dpdk media driver on its ports, by protocol (arp, nd) and "  \
    "event: answered, requested, learnt, ignored, invalid (nd only); no samples with the "  \
    "socket driver")                                                                         \
  X(mediaNeighbourEntries, "sbc_media_neighbour_entries", gauge, sampled, "",               \
    "Entries in the dpdk media driver's neighbour table (65,536 slots): next hops of "      \
    "installed flows, static neighbours, gateways and latched destinations in use; no "     \
    "sample with the socket driver")                                                         \
  X(trunkMediaDroppedTotal, "sbc_trunk_media_dropped_total", counter, sampled, "trunk",      \
    "Media packets dropped on a trunk's streams (any reason)")                               \
  X(mediaFlows, "sbc_media_flows", gauge, sampled, "",                                       \
    "Media flows installed in the relay (one per RTP or RTCP port in use)")                  \
  X(mediaKernelForwardedTotal, "sbc_media_kernel_forwarded_total", counter, sampled, "",     \
    "Media packets the socket driver forwarded inside the kernel (media.kernel_forwarding; " \
    "also counted in sbc_media_packets_total); no sample without it")

enum class FamilyId : std::size_t {
#define SBC_METRIC_ID(id, name, kind, source, labels, help) id,
  SBC_METRIC_FAMILIES(SBC_METRIC_ID)
#undef SBC_METRIC_ID
};

struct FamilySpec {
  FamilyId id;
  std::string_view name;
  Kind kind;
  Source source;
  std::string_view labels;  // comma-separated label names
  std::string_view help;
};

inline constexpr std::array kFamilies = {
#define SBC_METRIC_SPEC(id, name, kind, source, labels, help) \
  FamilySpec{FamilyId::id, name, Kind::kind, Source::source, labels, help},
    SBC_METRIC_FAMILIES(SBC_METRIC_SPEC)
#undef SBC_METRIC_SPEC
};

constexpr const FamilySpec& spec(FamilyId id) { return kFamilies[static_cast<std::size_t>(id)]; }

}  // namespace sbc::metrics
