#include "signaling/signaling_plane.h"

#include <pthread.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <future>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <thread>

#include "common/log.h"
#include "common/realtime.h"
#include "signaling/call.h"
#include "signaling/dial_plan.h"
#include "signaling/nta_refusals.h"
#include "signaling/overload_guard.h"
#include "signaling/timer_spin_guard.h"
#include "signaling/register_relay.h"
#include "signaling/sip_address.h"
#include "signaling/request_checks.h"
#include "signaling/sofia.h"
#include "signaling/source_limiter.h"
#include "signaling/trunk_auth.h"

namespace sbc::signaling {

// One realm's agent and what its callbacks need.
struct RealmAgent {
  SignalingPlane::Impl* plane = nullptr;
  const char* name = "";  // "access" or "core"
  bool isAccess = false;
  nta_agent_t* agent = nullptr;
  // The message class the agent parses with: it screens the requests nta refuses itself.
  msg_mclass_t* mclass = nullptr;
  // nta's statistics at the last look: what has been added to sbc_sip_malformed_total.
  usize_t countedNotSip = 0;
  usize_t countedBadRequests = 0;
};

namespace {

// Unknown sources get at most this many 403s per second each (burst 20); the rest are
// dropped silently and counted, so a flood cannot turn the SBC into a reflector.
constexpr double kUnknownSourceResponsesPerSecond = 5;
constexpr double kUnknownSourceResponseBurst = 20;

// The largest SIP message read (a stream transport's larger ones get 413): far above any
// real request, far below what a hostile TCP peer could make nta buffer otherwise (2 MB).
constexpr unsigned kMaxSipMessageBytes = 65536;

// Receive queue of each SIP UDP socket. The kernel's default (about 208 KiB, some 300
// INVITEs) overflowed whenever the signaling thread was descheduled for a few milliseconds
// at a few hundred calls/s; every dropped request then came back as a retransmission that
// cost more work. A limit, not an allocation: memory is used only while datagrams queue.
// As root nta sets it with SO_RCVBUFFORCE; otherwise net.core.rmem_max caps it.
constexpr unsigned kSipReceiveBufferBytes = 8u << 20;

// Each SIP message's parsed headers are carved from one block of this size (plus the
// datagram's length for a received one) instead of one malloc per header: measured with
// callgrind, 5.7 % fewer instructions per call (docs/performance.md). Larger blocks gain
// little more and are held by every message nta keeps for 64*T1.
constexpr unsigned kSipMessagePreloadBytes = 2048;

// Header classes whose parse errors make a request malformed: nta's default for a UA
// (everything but the response, proxy, registrar, preference and privacy headers) plus
// the proxy headers, Max-Forwards among them.
constexpr unsigned kRefusedHeaderErrors = ~static_cast<unsigned>(
    sip_mask_response | sip_mask_registrar | sip_mask_pref | sip_mask_privacy);

// How often nta's own counts of the malformed messages it refused are carried into the
// metrics (nta answers or drops those itself, before any callback of ours).
constexpr unsigned kParserStatsIntervalMs = 250;

std::string listenUrl(const config::SipListen& listen) {
  const bool v6 = listen.address.find(':') != std::string::npos;
  const std::string host = v6 ? "[" + listen.address + "]" : listen.address;
  const std::string port = listen.port == 0 ? "*" : std::to_string(listen.port);
  return "sip:" + host + ":" + port + ";transport=" + config::toString(listen.transport);
}

std::string withoutBrackets(const char* host) {
  std::string text(host);
  if (text.size() >= 2 && text.front() == '[' && text.back() == ']') {
    text = text.substr(1, text.size() - 2);
  }
  return text;
}

// The Request-URI's and the From's user parts, where present, are RFC 3261 user parts.
bool hasWellFormedUsers(const sip_t* sip) {
  const url_t* target = sip->sip_request->rq_url;
  if (target != nullptr && target->url_user != nullptr && !isUriUser(target->url_user)) {
    return false;
  }
  const url_t* from = sip->sip_from != nullptr ? sip->sip_from->a_url : nullptr;
  return from == nullptr || from->url_user == nullptr || isUriUser(from->url_user);
}

// Bindings that were not refreshed in time are dropped this often.
constexpr unsigned kRegistrationSweepMs = 1000;

// The address a message came from, without port or transport: what sources are known by.
std::optional<policy::IpAddress> sourceAddressOf(msg_t* msg) {
  const auto source = sourceOf(msg);
  if (!source) return std::nullopt;
  return source->address;
}

}  // namespace

struct SignalingPlane::Impl {
  Impl(const config::Config& config, std::shared_ptr<policy::Policy> policyIn,
       metrics::Metrics& metricsIn, std::shared_ptr<dataplane::MediaRelay> relayIn)
      : settings(config),
        trunks(config.trunks),
        dialPlan(trunks),
        policy(std::move(policyIn)),
        metrics(metricsIn),
        relay(std::move(relayIn)),
        limiter(kUnknownSourceResponsesPerSecond, kUnknownSourceResponseBurst),
        callSeries(metricsIn),
        sipSeries(metricsIn),
        overload(std::size_t{config.sipTimers.overloadQueueKib} * 1024) {
    realms[0].plane = this;
    realms[0].name = "access";
    realms[0].isAccess = true;
    realms[1].plane = this;
    realms[1].name = "core";
    // Next hops given as host names are reached but cannot be recognised by source.
    for (const auto& hop : settings.coreNextHops) {
      if (const auto address = policy::IpAddress::parse(hop.host)) {
        coreAddresses.push_back(*address);
      }
    }
    for (const char* reason : {"no_route", "unknown_trunk"}) {
      metrics.counter(metrics::FamilyId::unroutedCallsTotal).Add({{"reason", reason}});
    }
    for (std::size_t i = 0; i < 2; ++i) {
      overloadRefusals[i] = &metrics.counter(metrics::FamilyId::sipOverloadRefusalsTotal)
                                 .Add({{"realm", realms[i].name}});
    }
    overloadedGauge = &metrics.gauge(metrics::FamilyId::sipOverloaded).Add({});
    callsHeld = &metrics.gauge(metrics::FamilyId::b2buaCalls).Add({});
    wakeFd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (wakeFd < 0) throw std::runtime_error("signaling: eventfd failed");
  }

  ~Impl() {
    if (wakeFd >= 0) ::close(wakeFd);
  }

  // sip.realtime_priority: under SCHED_FIFO this thread runs as soon as a request arrives
  // instead of waiting for its turn behind other work on the machine, which at high call
  // rates is most of the setup delay (docs/performance.md). Refused (no CAP_SYS_NICE):
  // sbcd runs on at the normal priority and says so.
  void applyRealtimePriority() {
    const auto priority = static_cast<int>(settings.sipTimers.realtimePriority);
    if (priority == 0) return;
    const std::string refused = common::runCallingThreadRealtime(priority);
    if (refused.empty()) {
      log::info("sip", "signaling thread runs under SCHED_FIFO at priority ", priority,
                " (sip.realtime_priority)");
    } else {
      log::warning("sip", "sip.realtime_priority = ", priority,
                   ": the signaling thread stays at the normal priority: ", refused);
    }
  }

  // Signaling thread: builds the agents, reports the outcome, then runs until stopped.
  void run(std::promise<void>& started) {
    pthread_setname_np(pthread_self(), kSignalingThreadName);
    applyRealtimePriority();
    su_init();
    root = su_root_create(this);
    std::string failure;
    if (root == nullptr) {
      failure = "signaling: su_root_create failed";
    } else if (su_wait_create(&wakeWait, wakeFd, SU_WAIT_IN) != 0 ||
               su_root_register(root, &wakeWait, &Impl::onWake, this, 0) < 0) {
      failure = "signaling: cannot watch the task queue";
    } else if (su_wait_create(&timeoutWait, relay->timeoutNotifyFd(), SU_WAIT_IN) != 0 ||
               su_root_register(root, &timeoutWait, &Impl::onMediaTimeout, this, 0) < 0) {
      failure = "signaling: cannot watch the media relay's timeout reports";
    } else if (!(spinGuard = TimerSpinGuard::forLoopWatching(wakeFd))) {
      failure = "signaling: su_root's epoll descriptor not found";
    } else if (su_root_add_prepoll(root, &Impl::onPrepoll, this) != 0) {
      failure = "signaling: cannot hook su_root's loop";
    } else {
      setRefusalScreen([this](msg_t* msg, const sip_t* sip, int status) {
        return mayNtaRefuse(msg, sip, status);
      });
      failure = createAgent(realms[0], settings.access);
      if (failure.empty()) failure = createAgent(realms[1], settings.core);
      backlog = ReceiveBacklog(sipUdpSockets);
      if (failure.empty() && overload.enabled() && backlog.empty() && hasUdpListen()) {
        failure = "signaling: cannot find the SIP UDP sockets to watch for overload in "
                  "/proc/self/fd (sip.overload_queue_kib = 0 turns overload control off)";
      }
      sweepTimer = su_timer_create(su_root_task(root), kRegistrationSweepMs);
      if (failure.empty() &&
          (sweepTimer == nullptr ||
           su_timer_set_for_ever(sweepTimer, &Impl::onSweepTimer, this) != 0)) {
        failure = "signaling: cannot start the registration sweep timer";
      }
      parserStatsTimer = su_timer_create(su_root_task(root), kParserStatsIntervalMs);
      if (failure.empty() &&
          (parserStatsTimer == nullptr ||
           su_timer_set_for_ever(parserStatsTimer, &Impl::onParserStatsTimer, this) != 0)) {
        failure = "signaling: cannot start the parser statistics timer";
      }
    }
    if (failure.empty()) {
      // A trunk challenge without a realm of its own uses the SBC's first access address.
      authenticator.emplace(root, metrics, settings.access.sip.front().address,
                            settings.sipTimers.nonceExpiresS);
      authenticator->update(trunks);
      registers.emplace(realms[0].agent, realms[1].agent, settings, metrics, sipSeries);
      registers->overloaded = [this] { return shedForOverload(true); };
      registers->moved = [this](const std::string& aor, const TerminalAddress& from,
                                const TerminalAddress& to) {
        for (auto& [id, call] : calls) {
          call->lineTerminalMoved(aor, from.address, to.address, sipUrl(to));
        }
      };
    }
    if (!failure.empty()) {
      registers.reset();
      authenticator.reset();
      teardown();
      started.set_exception(std::make_exception_ptr(std::runtime_error(failure)));
      return;
    }
    environment.root = root;
    environment.accessAgent = realms[0].agent;
    environment.coreAgent = realms[1].agent;
    environment.settings = &settings;
    environment.metrics = &metrics;
    environment.callSeries = &callSeries;
    environment.sipSeries = &sipSeries;
    environment.relay = relay.get();
    environment.accessMedia = *policy::IpAddress::parse(settings.access.media.address);
    environment.coreMedia = *policy::IpAddress::parse(settings.core.media.address);
    environment.streamOpened = [this](dataplane::StreamId stream, std::uint64_t call) {
      streamOwners[stream] = call;
    };
    environment.streamClosed = [this](dataplane::StreamId stream) {
      streamOwners.erase(stream);
    };
    environment.ended = [this](std::uint64_t id) {
      // Destroyed before su_root's next wait (onPrepoll): never inside the call's own nta
      // callback, and without the task queue's eventfd write, wake-up and read per call.
      endedCalls.push_back(id);
    };
    started.set_value();
    su_root_run(root);
    calls.clear();
    registers.reset();
    authenticator.reset();
    teardown();
  }

  std::string createAgent(RealmAgent& realm, const config::Realm& listens) {
    const std::string first = listenUrl(listens.sip.front());
    realm.mclass = makeRefusalScreeningClass();
    if (realm.mclass == nullptr) return "cannot make the SIP message class";
    realm.agent = nta_agent_create(
        root, URL_STRING_MAKE(first.c_str()), &Impl::onMessage, &realm, NTATAG_UA(1),
        NTATAG_SIP_T1(settings.sipTimers.t1Ms), NTATAG_SIP_T1X64(settings.sipTimers.t1x64Ms),
        NTATAG_SERVER_RPORT(1), NTATAG_MAXSIZE(kMaxSipMessageBytes),
        TPTAG_UDP_RMEM(kSipReceiveBufferBytes),
        // RFC 5626 keep-alive of terminals on TCP: a CRLF CRLF ping gets its CRLF pong.
        TPTAG_PONG2PING(1),
        NTATAG_PRELOAD(kSipMessagePreloadBytes),
        // A request with a header Sofia could not parse comes to the front door, which
        // answers by its source (nta would answer 400 to anyone, unknown sources too). Only
        // the header errors are masked: nta still answers a bad version (505), missing or
        // unparseable mandatory headers (400) and an unusable Via (dropped) itself.
        NTATAG_BAD_REQ_MASK(0),
        // Those refusals of nta's own are put to the front door while parsing
        // (mayNtaRefuse): nta answers them to anyone otherwise.
        NTATAG_MCLASS(realm.mclass), TAG_END());
    if (realm.agent == nullptr) {
      return std::string("cannot listen for SIP on ") + realm.name + " " + first + ": " +
             std::strerror(errno);
    }
    for (std::size_t i = 1; i < listens.sip.size(); ++i) {
      const std::string url = listenUrl(listens.sip[i]);
      if (nta_agent_add_tport(realm.agent, URL_STRING_MAKE(url.c_str()),
                              TPTAG_UDP_RMEM(kSipReceiveBufferBytes), TAG_END()) != 0) {
        return std::string("cannot listen for SIP on ") + realm.name + " " + url + ": " +
               std::strerror(errno);
      }
    }
    for (tport_t* tp = tport_primaries(nta_agent_tports(realm.agent)); tp != nullptr;
         tp = tport_next(tp)) {
      const tp_name_t* name = tport_name(tp);
      bound.push_back(std::string(realm.name) + "=" + name->tpn_proto + ":" + name->tpn_host +
                      ":" + name->tpn_port);
      ownSentBy.push_back({withoutBrackets(name->tpn_host), name->tpn_port});
      if (tport_is_udp(tp)) {
        for (const int fd : ReceiveBacklog::udpSocketsBoundTo(
                 withoutBrackets(name->tpn_host),
                 static_cast<unsigned>(std::strtoul(name->tpn_port, nullptr, 10)))) {
          sipUdpSockets.push_back(fd);
        }
      }
    }
    return {};
  }

  void teardown() {
    if (parserStatsTimer != nullptr) su_timer_destroy(parserStatsTimer);
    parserStatsTimer = nullptr;
    if (sweepTimer != nullptr) su_timer_destroy(sweepTimer);
    sweepTimer = nullptr;
    for (auto& realm : realms) {
      if (realm.agent != nullptr) nta_agent_destroy(realm.agent);
      realm.agent = nullptr;
      if (realm.mclass != nullptr) freeRefusalScreeningClass(realm.mclass);
      realm.mclass = nullptr;
    }
    setRefusalScreen({});
    if (root != nullptr) {
      su_root_remove_prepoll(root);
      su_root_unregister(root, &wakeWait, &Impl::onWake, this);
      su_root_unregister(root, &timeoutWait, &Impl::onMediaTimeout, this);
      su_root_destroy(root);
    }
    root = nullptr;
    su_deinit();
  }

  static int onWake(void* magic, su_wait_t*, void*) {
    Impl& self = *static_cast<Impl*>(magic);
    eventfd_t ignored;
    ::eventfd_read(self.wakeFd, &ignored);
    std::deque<std::function<void()>> tasks;
    {
      std::lock_guard lock(self.tasksMutex);
      tasks.swap(self.tasks);
    }
    for (auto& task : tasks) task();
    return 0;
  }

  void holdCall(std::uint64_t id, std::unique_ptr<Call> call) {
    calls.emplace(id, std::move(call));
    callsHeld->Set(static_cast<double>(calls.size()));
  }

  // su_root calls this at the top of each turn of its loop, outside every callback.
  static void onPrepoll(void* magic, su_root_t*) {
    Impl& self = *static_cast<Impl*>(magic);
    self.spinGuard->onTurn();
    if (self.endedCalls.empty()) return;
    std::vector<std::uint64_t> ended;
    ended.swap(self.endedCalls);  // a call's destruction may end another: next turn
    for (const std::uint64_t id : ended) self.calls.erase(id);
    self.callsHeld->Set(static_cast<double>(self.calls.size()));
  }

  static void onSweepTimer(void* magic, su_timer_t*, su_timer_arg_t*) {
    Impl& self = *static_cast<Impl*>(magic);
    if (self.registers) self.registers->expire();
  }

  // Malformed messages nta refused by itself since the last look, per realm: messages with
  // neither a request nor a status line (received, but neither request nor response), and
  // requests its parser or sanity checks refused.
  static void onParserStatsTimer(void* magic, su_timer_t*, su_timer_arg_t*) {
    Impl& self = *static_cast<Impl*>(magic);
    // The overload state also ends while no new call comes to ask.
    if (self.overload.overloaded()) self.overloadedNow();
    for (auto& realm : self.realms) {
      if (realm.agent == nullptr) continue;
      usize_t received = 0, requests = 0, responses = 0, badRequests = 0;
      nta_agent_get_stats(realm.agent, NTATAG_S_RECV_MSG_REF(received),
                          NTATAG_S_RECV_REQUEST_REF(requests),
                          NTATAG_S_RECV_RESPONSE_REF(responses),
                          NTATAG_S_BAD_REQUEST_REF(badRequests), TAG_END());
      const usize_t notSip = received - requests - responses;
      const auto add = [&](const char* reason, usize_t now, usize_t& counted) {
        if (now <= counted) return;
        self.metrics.counter(metrics::FamilyId::sipMalformedTotal)
            .Add({{"realm", realm.name}, {"reason", reason}})
            .Increment(static_cast<double>(now - counted));
        counted = now;
      };
      add("not_sip", notSip, realm.countedNotSip);
      add("bad_request", badRequests, realm.countedBadRequests);
    }
  }

  // A request nta is about to refuse by itself (400, 413, 505; see nta_refusals.h), while it
  // is parsed: the front door's rule for its source decides whether nta's response may go.
  // A known source (a trunk, a core next hop) is answered; an unknown one as the 403 would
  // be (never under refusals.unknown_source = "drop", else within its response budget).
  bool mayNtaRefuse(msg_t* msg, const sip_t*, int status) {
    RealmAgent* realm = nullptr;
    for (auto& candidate : realms) {
      if (candidate.mclass != nullptr && candidate.mclass == msg_mclass(msg)) realm = &candidate;
    }
    if (realm == nullptr) return true;
    const auto source = sourceAddressOf(msg);
    if ((!source || !isKnownSource(*realm, *source)) && !mayAnswerUnknownSource(*realm, source)) {
      return false;
    }
    countResponse(*realm, status);
    return true;
  }

  // A request from a source in no trunk's prefixes (access realm) or no next hop (core), of
  // any method but ACK, counted: whether it may be answered at all (never under
  // refusals.unknown_source = "drop", else within the source's response budget; a scanner
  // learns nothing, not even that a SIP server listens here). What may not be is counted
  // unanswered.
  bool mayAnswerUnknownSource(const RealmAgent& realm,
                              const std::optional<policy::IpAddress>& source) {
    countUnknownSource(realm);
    if (source && settings.refusals.unknownSource != config::UnknownSourceAction::drop &&
        limiter.allow(*source)) {
      return true;
    }
    metrics.counter(metrics::FamilyId::sipUnansweredTotal)
        .Add({{"realm", realm.name}, {"reason", "unknown_source"}})
        .Increment();
    return false;
  }

  void countUnknownSource(const RealmAgent& realm) {
    metrics.counter(metrics::FamilyId::unknownSourceTotal).Add({{"realm", realm.name}}).Increment();
  }

  // The relay reports streams whose media went silent: their calls are ended.
  static int onMediaTimeout(void* magic, su_wait_t*, void*) {
    Impl& self = *static_cast<Impl*>(magic);
    for (const auto stream : self.relay->takeTimedOut()) {
      const auto owner = self.streamOwners.find(stream);
      if (owner == self.streamOwners.end()) continue;
      const auto call = self.calls.find(owner->second);
      if (call == self.calls.end()) continue;
      log::info("call", "call ", owner->second, ": media timeout; ending it");
      call->second->terminate(metrics::CallResult::mediaTimeout, "media_timeout");
    }
    return 0;
  }

  // Every request that matches no transaction arrives here first, before any state is
  // made for it: unknown sources are answered (or not) statelessly.
  static int onMessage(void* magic, nta_agent_t* agent, msg_t* msg, sip_t* sip) {
    RealmAgent* realm = static_cast<RealmAgent*>(magic);
    Impl& self = *realm->plane;
    if (sip == nullptr || sip->sip_request == nullptr) {
      // A stray response: no transaction of ours wants it. A 2xx retransmitted after its
      // INVITE transaction is gone still gets its ACK if it belongs to a call's dialog.
      if (sip != nullptr) Call::acknowledgeStrayAnswer(agent, sip);
      nta_msg_discard(agent, msg);
      return 0;
    }
    const char* method = sip->sip_request->rq_method_name;
    self.sipSeries.countRequest(realm->name, method);

    const auto source = sourceAddressOf(msg);
    // A header Sofia's parser refused (nta leaves it to us, NTATAG_BAD_REQ_MASK): it is left
    // out of `sip`, so nothing else would notice. Refused are the headers nta itself refuses
    // by default and Max-Forwards (the SBC counts hops); one of no concern to a B2BUA (a
    // registrar's, a preference or privacy header, an unknown one) is ignored, as nta did.
    const bool badHeader = (msg_extract_errors(msg) & kRefusedHeaderErrors) != 0;
    if (badHeader) {
      self.metrics.counter(metrics::FamilyId::sipMalformedTotal)
          .Add({{"realm", realm->name}, {"reason", "bad_header"}})
          .Increment();
    }
    if (realm->isAccess && source && !self.isKnownSource(*realm, *source) &&
        self.lineRequest(*realm, agent, msg, sip, *source, badHeader)) {
      return 0;
    }
    if (!source || !self.isKnownSource(*realm, *source)) {
      if (sip->sip_request->rq_method == sip_method_ack) {
        self.countUnknownSource(*realm);
        nta_msg_discard(agent, msg);  // never answered, so never "unanswered"
        return 0;
      }
      if (!self.mayAnswerUnknownSource(*realm, source)) {
        nta_msg_discard(agent, msg);
        return 0;
      }
      self.countResponse(*realm, 403);
      nta_msg_treply(agent, msg, 403, "Forbidden", TAG_END());
      return 0;
    }

    if (sip->sip_request->rq_method == sip_method_ack) {
      nta_msg_discard(agent, msg);  // an ACK outside any dialog of ours
      return 0;
    }
    if (badHeader) {
      // A fixed phrase: the header's name is the sender's text.
      self.countResponse(*realm, 400);
      nta_msg_treply(agent, msg, 400, "Bad Header", TAG_END());
      return 0;
    }
    if (self.passedThroughUs(sip)) {
      // Sent out by this SBC and come back (a routing loop between it and a peer): going
      // round again would only multiply the request.
      log::warning("sip", realm->name, " ", method, " from ", source->toString(),
                   " carries one of our own Via sent-by addresses: 482 Loop Detected");
      self.countResponse(*realm, 482);
      nta_msg_treply(agent, msg, 482, "Loop Detected", TAG_END());
      return 0;
    }
    const bool initialInvite = sip->sip_request->rq_method == sip_method_invite &&
                               sip->sip_to != nullptr && sip->sip_to->a_tag == nullptr;
    if (initialInvite && !hasWellFormedUsers(sip)) {
      // The dialled and calling users are copied onto the other leg: garbage stays here.
      self.metrics.counter(metrics::FamilyId::sipMalformedTotal)
          .Add({{"realm", realm->name}, {"reason", "bad_user"}})
          .Increment();
      self.countResponse(*realm, 400);
      nta_msg_treply(agent, msg, 400, "Bad User Part", TAG_END());
      return 0;
    }
    if (realm->isAccess && sip->sip_request->rq_method == sip_method_invite &&
        sip->sip_to != nullptr && sip->sip_to->a_tag == nullptr) {
      self.startTrunkCall(agent, *source, msg, sip);
      return 0;
    }
    if (!realm->isAccess && sip->sip_request->rq_method == sip_method_invite &&
        sip->sip_to != nullptr && sip->sip_to->a_tag == nullptr) {
      self.startCoreCall(agent, msg, sip);
      return 0;
    }
    nta_incoming_t* request = nta_incoming_create(agent, nullptr, msg, sip, TAG_END());
    if (request == nullptr) {
      nta_msg_discard(agent, msg);
      return 0;
    }
    if (sip->sip_request->rq_method == sip_method_options && sip->sip_to != nullptr &&
        sip->sip_to->a_tag == nullptr) {
      self.countResponse(*realm, 200);
      nta_incoming_treply(request, 200, "OK",
                          SIPTAG_ALLOW_STR("INVITE, ACK, BYE, CANCEL, OPTIONS, PRACK, UPDATE, "
                                           "INFO, NOTIFY, REGISTER"),
                          TAG_END());
    } else {
      self.countResponse(*realm, 501);
      nta_incoming_treply(request, 501, "Not Implemented", TAG_END());
    }
    nta_incoming_destroy(request);
    return 0;
  }

  // A request on the access realm from no trunk's address: subscriber-line traffic. A
  // REGISTER goes through to the core registrar; a registered terminal's keep-alive
  // OPTIONS is answered. False: not a line's request (the unknown-source rule applies).
  bool lineRequest(RealmAgent& realm, nta_agent_t* agent, msg_t* msg, sip_t* sip,
                   const policy::IpAddress& source, bool badHeader) {
    const auto method = sip->sip_request->rq_method;
    const bool outOfDialog = sip->sip_to != nullptr && sip->sip_to->a_tag == nullptr;
    if (method == sip_method_options && outOfDialog &&
        registers->registrations().hasTerminalAt(source)) {
      nta_incoming_t* request = nta_incoming_create(agent, nullptr, msg, sip, TAG_END());
      if (request == nullptr) return true;
      countResponse(realm, 200);
      nta_incoming_treply(request, 200, "OK", TAG_END());
      nta_incoming_destroy(request);
      return true;
    }
    if (method == sip_method_invite && outOfDialog &&
        !registers->registrations().hasTerminalAt(source)) {
      // No terminal registered from here: an unknown source, answered as one (403 within
      // its budget, or nothing), never with anything that tells it more.
      countLineRejected("not_registered");
      return false;
    }
    const bool lineInvite = method == sip_method_invite && outOfDialog;
    if (method != sip_method_register && !lineInvite) return false;
    if (badHeader) {
      countResponse(realm, 400);
      nta_msg_treply(agent, msg, 400, "Bad Header", TAG_END());
      return true;
    }
    if (passedThroughUs(sip)) {
      countResponse(realm, 482);
      nta_msg_treply(agent, msg, 482, "Loop Detected", TAG_END());
      return true;
    }
    if (lineInvite) {
      if (!hasWellFormedUsers(sip)) {
        metrics.counter(metrics::FamilyId::sipMalformedTotal)
            .Add({{"realm", realm.name}, {"reason", "bad_user"}})
            .Increment();
        countResponse(realm, 400);
        nta_msg_treply(agent, msg, 400, "Bad User Part", TAG_END());
        return true;
      }
      startLineCall(realm, agent, msg, sip, *sourceOf(msg));
      return true;
    }
    registers->onRegister(msg, sip, *sourceOf(msg));
    return true;
  }

  void countLineRejected(const char* reason) {
    metrics.counter(metrics::FamilyId::lineRejectedCallsTotal)
        .Add({{"reason", reason}})
        .Increment();
  }

  bool hasUdpListen() const {
    for (const auto* listens : {&settings.access.sip, &settings.core.sip}) {
      for (const auto& listen : *listens) {
        if (listen.transport == config::Transport::udp) return true;
      }
    }
    return false;
  }

  // Whether new calls are refused now for overload (signaling/overload_guard.h); each
  // change is logged and published.
  bool overloadedNow() {
    if (!overload.enabled()) return false;
    const std::size_t queued = backlog.bytes();
    const bool before = overload.overloaded();
    const bool now = overload.refuse(queued);
    if (now == before) return now;
    overloadedGauge->Set(now ? 1 : 0);
    if (now) {
      refusedForOverload = 0;
      log::warning("sip", "overloaded: ", queued / 1024,
                   " KiB wait in the SIP receive queues (sip.overload_queue_kib = ",
                   overload.threshold() / 1024,
                   "); new calls and REGISTERs for the core get 503 until half of that");
    } else {
      log::warning("sip", "no longer overloaded: ", queued / 1024,
                   " KiB wait in the SIP receive queues; new requests are taken again (",
                   refusedForOverload, " refused with 503 meanwhile)");
    }
    return now;
  }

  // A new call while the signaling thread is overloaded: 503 with Retry-After, from a
  // transaction so that the INVITE's retransmissions are absorbed, not taken as new calls
  // once the overload is over. True when refused (the caller counts the call).
  bool refuseForOverload(RealmAgent& realm, nta_agent_t* agent, msg_t* msg, sip_t* sip) {
    if (!shedForOverload(realm.isAccess)) return false;
    refuseInvite(realm, agent, msg, sip, 503);
    return true;
  }

  // Whether a new request (call, or REGISTER for the core) is to be refused for overload;
  // counted as one refusal when it is. The caller answers it.
  bool shedForOverload(bool access) {
    if (!overloadedNow()) return false;
    ++refusedForOverload;
    overloadRefusals[access ? 0 : 1]->Increment();
    return true;
  }

  // Answers a new INVITE statelessly-created as a transaction with `status`.
  void refuseInvite(RealmAgent& realm, nta_agent_t* agent, msg_t* msg, sip_t* sip, int status) {
    nta_incoming_t* request = nta_incoming_create(agent, nullptr, msg, sip, TAG_END());
    if (request == nullptr) return;
    countResponse(realm, status);
    const std::string retryAfter = std::to_string(settings.refusals.retryAfterS);
    nta_incoming_treply(request, status, sip_status_phrase(status),
                        TAG_IF(status == 503 && settings.refusals.retryAfterS > 0,
                               SIPTAG_RETRY_AFTER_STR(retryAfter.c_str())),
                        TAG_END());
    nta_incoming_destroy(request);
  }

  // Admission against the line's ceiling; a refusal is answered and counted (nullopt).
  std::optional<policy::CallSlot> admitLine(RealmAgent& realm, nta_agent_t* agent, msg_t* msg,
                                            sip_t* sip, const std::string& aor) {
    policy::Admission admission = policy->admitLineCall(aor);
    if (admission.result == policy::AdmissionResult::admitted) return std::move(admission.slot);
    const bool draining = admission.result == policy::AdmissionResult::draining;
    countLineRejected(draining ? "draining" : "over_limit");
    refuseInvite(realm, agent, msg, sip, draining ? 503 : lines.overLimitStatus);
    return std::nullopt;
  }

  // An initial INVITE on the access realm from no trunk's address: a call from a line, if
  // a terminal of the caller's line (From) registered from this address; else 403, as to
  // any unknown source.
  void startLineCall(RealmAgent& realm, nta_agent_t* agent, msg_t* msg, sip_t* sip,
                     const TerminalAddress& terminal) {
    const Registrations& bindings = registers->registrations();
    const Binding* binding = bindings.byTerminal(terminal);
    if (binding == nullptr && sip->sip_from != nullptr && sip->sip_from->a_url->url_host != nullptr) {
      // Some terminals call from another socket than the one they registered from.
      const url_t* from = sip->sip_from->a_url;
      for (const Binding* candidate : bindings.ofAor(Registrations::aorOf(
               from->url_user != nullptr ? from->url_user : "", from->url_host))) {
        if (candidate->terminal.address == terminal.address) binding = candidate;
      }
    }
    if (binding == nullptr) {
      countLineRejected("not_registered");
      if (!mayAnswerUnknownSource(realm, terminal.address)) {
        nta_msg_discard(agent, msg);
        return;
      }
      countResponse(realm, 403);
      nta_msg_treply(agent, msg, 403, "Forbidden", TAG_END());
      return;
    }
    if (refuseForOverload(realm, agent, msg, sip)) {
      countLineRejected("overload");
      return;
    }
    if (refuseShortSession(realm, agent, msg, sip)) return;
    auto slot = admitLine(realm, agent, msg, sip, std::string(binding->aor));
    if (!slot) return;
    const std::uint64_t id = nextCallId++;
    CallRoute route{settings.coreNextHops, settings.coreFailoverTimeoutMs, std::nullopt,
                    CallRoute::Line{std::string(binding->aor), terminal.address, sipUrl(terminal), ""}};
    holdCall(id, std::make_unique<Call>(environment, id, std::string(),
                                        std::vector<policy::IpPrefix>{}, std::move(*slot), msg,
                                        sip, dataplane::Realm::access, std::move(route), false));
  }

  // An initial INVITE from the core to the Contact the SBC registered for a line: to the
  // terminal's current address; 480 when the binding is gone.
  void startCallToLine(nta_agent_t* agent, msg_t* msg, sip_t* sip, const std::string& token) {
    const Binding* binding = registers->registrations().byToken(token);
    if (binding == nullptr) {
      countLineRejected("not_registered");
      refuseInvite(realms[1], agent, msg, sip, 480);
      return;
    }
    if (refuseForOverload(realms[1], agent, msg, sip)) {
      countLineRejected("overload");
      return;
    }
    if (refuseShortSession(realms[1], agent, msg, sip)) return;
    auto slot = admitLine(realms[1], agent, msg, sip, std::string(binding->aor));
    if (!slot) return;
    const std::uint64_t id = nextCallId++;
    const config::HostPort target{binding->terminal.address.toString(), binding->terminal.port,
                                  binding->terminal.transport};
    CallRoute route{{target}, 0, std::nullopt,
                    CallRoute::Line{std::string(binding->aor), binding->terminal.address,
                                    sipUrl(binding->terminal), std::string(binding->contact)}};
    holdCall(id, std::make_unique<Call>(environment, id, std::string(),
                                        std::vector<policy::IpPrefix>{}, std::move(*slot), msg,
                                        sip, dataplane::Realm::core, std::move(route), false));
  }

  // An initial INVITE from a trunk: its credentials if the trunk is challenged, admission,
  // then a Call owns it.
  void startTrunkCall(nta_agent_t* agent, const policy::IpAddress& source, msg_t* msg,
                      sip_t* sip) {
    const auto received = std::chrono::steady_clock::now();
    const auto snapshot = policy->current();
    const auto trunkIndex = snapshot->findTrunkBySource(source);
    const std::string& trunk = snapshot->trunk(*trunkIndex).name;
    if (refuseForOverload(realms[0], agent, msg, sip)) {
      countRefusedCall(trunk, metrics::CallDirection::fromTrunk, received);
      return;
    }
    // Before admission: a request without valid credentials never takes a slot or a token
    // of the trunk's call rate.
    if (!authenticator->admit(trunk, agent, msg, sip)) return;
    if (refuseShortSession(realms[0], agent, msg, sip)) {
      countRefusedCall(trunk, metrics::CallDirection::fromTrunk, received);
      return;
    }
    policy::Admission admission = policy->admitTrunkCall(*snapshot, *trunkIndex);
    metrics.counter(metrics::FamilyId::admissionTotal)
        .Add({{"trunk", trunk}, {"result", policy::toString(admission.result)}})
        .Increment();
    if (admission.result != policy::AdmissionResult::admitted) {
      countRefusedCall(trunk, metrics::CallDirection::fromTrunk, received);
      nta_incoming_t* request = nta_incoming_create(agent, nullptr, msg, sip, TAG_END());
      if (request == nullptr) return;
      const auto& refusal = settings.refusals;
      countResponse(realms[0], refusal.overLimitStatus);
      const std::string retryAfter = std::to_string(refusal.retryAfterS);
      nta_incoming_treply(request, refusal.overLimitStatus,
                          sip_status_phrase(refusal.overLimitStatus),
                          TAG_IF(refusal.retryAfterS > 0,
                                 SIPTAG_RETRY_AFTER_STR(retryAfter.c_str())),
                          TAG_END());
      nta_incoming_destroy(request);
      return;
    }
    const std::uint64_t id = nextCallId++;
    auto call = std::make_unique<Call>(environment, id, trunk,
                                       snapshot->trunk(*trunkIndex).sourcePrefixes,
                                       std::move(admission.slot), msg, sip,
                                       dataplane::Realm::access,
                                       CallRoute{settings.coreNextHops,
                                                 settings.coreFailoverTimeoutMs, std::nullopt,
                                                 std::nullopt},
                                       trustedTrunk(trunk));
    // A call that failed at once has asked for its own removal already; keep it until then.
    holdCall(id, std::move(call));
  }

  // An initial INVITE from a core next hop: routed to the trunk its Request-URI names with
  // a `trunk=NAME` parameter, or else to the trunk with the longest dial prefix of the
  // Request-URI user (404 when neither finds a configured trunk), admitted against that
  // trunk's ceilings, sent to the trunk's target.
  void startCoreCall(nta_agent_t* agent, msg_t* msg, sip_t* sip) {
    const auto received = std::chrono::steady_clock::now();
    const auto refuse = [&](int status, const char* phrase, bool retry) {
      nta_incoming_t* request = nta_incoming_create(agent, nullptr, msg, sip, TAG_END());
      if (request == nullptr) return;
      countResponse(realms[1], status);
      const std::string retryAfter = std::to_string(settings.refusals.retryAfterS);
      nta_incoming_treply(request, status, phrase,
                          TAG_IF(retry && settings.refusals.retryAfterS > 0,
                                 SIPTAG_RETRY_AFTER_STR(retryAfter.c_str())),
                          TAG_END());
      nta_incoming_destroy(request);
    };
    const auto unrouted = [&](const char* reason) {
      metrics.counter(metrics::FamilyId::unroutedCallsTotal).Add({{"reason", reason}}).Increment();
      refuse(404, "Not Found", false);
    };
    // The Contact the SBC registered for a line: a call to that line.
    const url_t* uri = sip->sip_request->rq_url;
    if (uri != nullptr && uri->url_user != nullptr && RegisterRelay::isToken(uri->url_user)) {
      startCallToLine(agent, msg, sip, uri->url_user);
      return;
    }
    // An explicit `;trunk=NAME` decides; otherwise the longest dial prefix of the user.
    char name[128] = "";
    const bool named = uri != nullptr && uri->url_params != nullptr &&
                       url_param(uri->url_params, "trunk", name, sizeof name) != 0;
    std::vector<config::Trunk>::const_iterator configured = trunks.end();
    if (named) {
      configured = std::find_if(trunks.begin(), trunks.end(),
                                [&](const config::Trunk& trunk) { return trunk.name == name; });
      if (configured == trunks.end()) {
        unrouted("unknown_trunk");
        return;
      }
    } else {
      const char* user = uri != nullptr ? uri->url_user : nullptr;
      const auto index = dialPlan.route(user != nullptr ? user : "");
      if (!index) {
        unrouted("no_route");
        return;
      }
      configured = trunks.begin() + static_cast<std::ptrdiff_t>(*index);
    }
    const auto snapshot = policy->current();
    const auto trunkIndex = snapshot->findTrunkByName(configured->name);
    if (!trunkIndex) {
      unrouted("unknown_trunk");  // not in the policy yet: a reload is half-way through
      return;
    }
    if (refuseForOverload(realms[1], agent, msg, sip) ||
        refuseShortSession(realms[1], agent, msg, sip)) {
      countRefusedCall(configured->name, metrics::CallDirection::toTrunk, received);
      return;
    }
    policy::Admission admission = policy->admitTrunkCall(*snapshot, *trunkIndex);
    metrics.counter(metrics::FamilyId::admissionTotal)
        .Add({{"trunk", configured->name}, {"result", policy::toString(admission.result)}})
        .Increment();
    if (admission.result != policy::AdmissionResult::admitted) {
      countRefusedCall(configured->name, metrics::CallDirection::toTrunk, received);
      refuse(settings.refusals.overLimitStatus,
             sip_status_phrase(settings.refusals.overLimitStatus), true);
      return;
    }
    const std::uint64_t id = nextCallId++;
    auto call = std::make_unique<Call>(environment, id, configured->name,
                                       snapshot->trunk(*trunkIndex).sourcePrefixes,
                                       std::move(admission.slot), msg, sip,
                                       dataplane::Realm::core,
                                       CallRoute{{configured->target}, 0, configured->answer,
                                                 std::nullopt},
                                       configured->trusted);
    holdCall(id, std::move(call));
  }

  // trunks.trusted of the running configuration's trunk `name`.
  bool trustedTrunk(const std::string& name) const {
    const auto configured =
        std::find_if(trunks.begin(), trunks.end(),
                     [&](const config::Trunk& trunk) { return trunk.name == name; });
    return configured != trunks.end() && configured->trusted;
  }

  // A call refused before it became a Call is counted like one: once, with its setup time.
  void countRefusedCall(const std::string& trunk, metrics::CallDirection direction,
                        std::chrono::steady_clock::time_point received) {
    const auto& series = callSeries.of(trunk, direction);
    series.count(metrics::CallResult::refused);
    const std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - received;
    series.setupSeconds->Observe(elapsed.count());
  }

  // RFC 4028: an INVITE asking for a session interval below the SBC's Min-SE gets 422
  // with the Min-SE, before admission.
  bool refuseShortSession(const RealmAgent& realm, nta_agent_t* agent, msg_t* msg,
                          sip_t* sip) {
    const SessionTimerSettings sessionTimers{settings.sipTimers.sessionExpiresS,
                                             settings.sipTimers.minSeS,
                                             settings.sipTimers.maxSessionExpiresS};
    const std::uint32_t minSe = sessionIntervalTooSmall(sessionTimers, sip);
    if (minSe == 0) return false;
    nta_incoming_t* request = nta_incoming_create(agent, nullptr, msg, sip, TAG_END());
    if (request == nullptr) return true;  // nta destroyed the message
    countResponse(realm, 422);
    const std::string value = std::to_string(minSe);
    nta_incoming_treply(request, 422, "Session Interval Too Small",
                        SIPTAG_MIN_SE_STR(value.c_str()), TAG_END());
    nta_incoming_destroy(request);
    return true;
  }

  void postLocal(std::function<void()> task) {
    {
      std::lock_guard lock(tasksMutex);
      tasks.push_back(std::move(task));
    }
    ::eventfd_write(wakeFd, 1);
  }

  // True when a Via of the request names one of the SBC's own listen addresses (host and
  // port, in either realm).
  bool passedThroughUs(const sip_t* sip) const {
    for (const sip_via_t* via = sip->sip_via; via != nullptr; via = via->v_next) {
      if (via->v_host == nullptr) continue;
      const std::string host = withoutBrackets(via->v_host);
      const bool tls =
          via->v_protocol != nullptr && ::strcasecmp(via->v_protocol, "SIP/2.0/TLS") == 0;
      const std::string port = via->v_port != nullptr ? via->v_port : tls ? "5061" : "5060";
      for (const auto& own : ownSentBy) {
        if (own.port == port && ::strcasecmp(own.host.c_str(), host.c_str()) == 0) return true;
      }
    }
    return false;
  }

  bool isKnownSource(const RealmAgent& realm, const policy::IpAddress& source) const {
    if (realm.isAccess) return policy->current()->findTrunkBySource(source).has_value();
    return std::find(coreAddresses.begin(), coreAddresses.end(), source) !=
           coreAddresses.end();
  }

  void countResponse(const RealmAgent& realm, int code) {
    sipSeries.countResponse(realm.name, code);
  }

  const config::Config settings;  // as at start-up; reloads change only `trunks` below
  std::vector<config::Trunk> trunks;  // the latest reload's, signaling thread only
  DialPlan dialPlan;                  // routes core calls to `trunks`; rebuilt with them
  std::optional<TrunkAuthenticator> authenticator;  // made on the signaling thread
  std::optional<RegisterRelay> registers;           // made on the signaling thread
  config::Lines lines = settings.lines;              // the latest reload's
  std::shared_ptr<policy::Policy> policy;
  metrics::Metrics& metrics;
  std::shared_ptr<dataplane::MediaRelay> relay;
  std::vector<policy::IpAddress> coreAddresses;  // the next hops, as request sources
  SourceLimiter limiter;
  metrics::CallSeriesCache callSeries;  // signaling thread only
  metrics::SipMessageSeries sipSeries;  // signaling thread only
  RealmAgent realms[2];
  su_root_t* root = nullptr;
  su_timer_t* parserStatsTimer = nullptr;
  su_timer_t* sweepTimer = nullptr;
  su_wait_t wakeWait{};
  su_wait_t timeoutWait{};
  int wakeFd = -1;
  std::mutex tasksMutex;  // guards `tasks`; held only to push or swap, never while running
  std::deque<std::function<void()>> tasks;
  std::vector<std::string> bound;
  struct SentBy {
    std::string host;  // without IPv6 brackets
    std::string port;
  };
  std::vector<SentBy> ownSentBy;  // every bound listen address, both realms
  std::vector<int> sipUdpSockets;  // nta's UDP sockets (both realms), watched for overload
  ReceiveBacklog backlog;
  OverloadGuard overload;
  std::uint64_t refusedForOverload = 0;  // calls and REGISTERs since the overload began
  prometheus::Counter* overloadRefusals[2] = {nullptr, nullptr};  // by realm, as `realms`
  prometheus::Gauge* overloadedGauge = nullptr;
  prometheus::Gauge* callsHeld = nullptr;  // calls.size()
  CallEnvironment environment;
  std::map<std::uint64_t, std::unique_ptr<Call>> calls;
  std::vector<std::uint64_t> endedCalls;  // ended, destroyed at the loop's next turn
  std::optional<TimerSpinGuard> spinGuard;  // made with the root, before its loop runs
  std::map<dataplane::StreamId, std::uint64_t> streamOwners;
  std::uint64_t nextCallId = 1;
  std::thread thread;
};

SignalingPlane::SignalingPlane(const config::Config& config,
                               std::shared_ptr<policy::Policy> policy, metrics::Metrics& metrics,
                               std::shared_ptr<dataplane::MediaRelay> relay)
    : impl_(std::make_unique<Impl>(config, std::move(policy), metrics, std::move(relay))) {
  std::promise<void> started;
  auto ready = started.get_future();
  impl_->thread = std::thread([this, &started] { impl_->run(started); });
  try {
    ready.get();
  } catch (...) {
    impl_->thread.join();
    throw;
  }
  log::info("sip", "signaling thread running");
}

SignalingPlane::~SignalingPlane() {
  post([impl = impl_.get()] { su_root_break(impl->root); });
  impl_->thread.join();
}

const std::vector<std::string>& SignalingPlane::boundAddresses() const { return impl_->bound; }

void SignalingPlane::post(std::function<void()> task) { impl_->postLocal(std::move(task)); }

void SignalingPlane::updateTrunks(std::vector<config::Trunk> trunks) {
  post([impl = impl_.get(), trunks = std::move(trunks)]() mutable {
    impl->trunks = std::move(trunks);
    impl->dialPlan = DialPlan(impl->trunks);
    impl->authenticator->update(impl->trunks);
  });
}

void SignalingPlane::updateLines(const config::Lines& lines) {
  post([impl = impl_.get(), lines] {
    impl->lines = lines;
    if (impl->registers) impl->registers->update(lines);
  });
}

std::string SignalingPlane::describeRegistrations(const std::string& aor,
                                                  std::chrono::milliseconds timeout) {
  auto answer = std::make_shared<std::promise<std::string>>();
  auto ready = answer->get_future();
  post([impl = impl_.get(), aor, answer] {
    std::string text;
    if (impl->registers) text = impl->registers->describe(aor);
    answer->set_value(std::move(text));
  });
  if (ready.wait_for(timeout) != std::future_status::ready) return {};
  return ready.get();
}

void SignalingPlane::endAllCalls(const char* reason) {
  post([impl = impl_.get(), reason] {
    for (auto& [id, call] : impl->calls) call->terminate(metrics::CallResult::aborted, reason);
  });
}

}  // namespace sbc::signaling
