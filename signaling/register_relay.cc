#include "signaling/register_relay.h"

#include <sofia-sip/su_md5.h>
#include <sofia-sip/su_tagarg.h>

#include <algorithm>
#include <chrono>
#include <cctype>
#include <cstdarg>
#include <random>

#include "common/log.h"
#include "signaling/header_allow_list.h"
#include "signaling/sip_address.h"

namespace sbc::signaling {
namespace {

// A source address may send lines.register_rate_per_source REGISTERs per second, and this
// many seconds' worth at once, before the rest are dropped unanswered and counted: a
// terminal refreshes once a minute or so; a flood would otherwise reach the core registrar
// through the SBC.
constexpr double kRegisterBurstSeconds = 4;

SourceLimiter floodLimiterFor(const config::Lines& lines) {
  const double perSecond = lines.registerRatePerSource;
  return SourceLimiter(perSecond, perSecond * kRegisterBurstSeconds);
}

// RFC 3261 10.2.1.1: the expiry when a REGISTER names none.
constexpr std::uint32_t kDefaultExpiresS = 3600;

// Sweep of expired bindings (the terminal did not refresh in time).
constexpr auto kExpiryGrace = std::chrono::seconds(5);

std::string hexMd5(const std::string& secret, std::initializer_list<std::string_view> parts) {
  su_md5_t md5;
  su_md5_init(&md5);
  su_md5_update(&md5, secret.data(), secret.size());
  for (const auto part : parts) {
    su_md5_update(&md5, "\n", 1);
    su_md5_update(&md5, part.data(), part.size());
  }
  char hex[SU_MD5_DIGEST_SIZE * 2 + 1];
  su_md5_hexdigest(&md5, hex);
  return hex;
}

std::string randomSecret() {
  std::random_device device;
  std::string secret;
  for (int i = 0; i < 4; ++i) secret += std::to_string(device());
  return secret;
}

// The expiry a contact asks for: its expires parameter, else the Expires header, else the
// default. Values above a day are read as a day (RFC 3261 lets a registrar shorten them).
std::uint32_t requestedExpiry(const sip_contact_t* contact, const sip_t* sip) {
  std::uint64_t value = kDefaultExpiresS;
  const char* param = contact != nullptr ? msg_params_find(contact->m_params, "expires=") : nullptr;
  if (param != nullptr) {
    value = std::strtoull(param, nullptr, 10);
  } else if (sip->sip_expires != nullptr) {
    value = sip->sip_expires->ex_delta;
  }
  return static_cast<std::uint32_t>(std::min<std::uint64_t>(value, 86400));
}

// The contact's parameters other than expires, as ";a=b;c" (kept for the terminal's 200).
std::string paramsWithoutExpiry(const sip_contact_t* contact) {
  std::string params;
  if (contact->m_params == nullptr) return params;
  for (const msg_param_t* p = contact->m_params; *p != nullptr; ++p) {
    if (::strncasecmp(*p, "expires=", 8) == 0 || ::strcasecmp(*p, "expires") == 0) continue;
    params += ";";
    params += *p;
  }
  return params;
}

std::string uriText(const url_t* url) {
  auto* home = static_cast<su_home_t*>(su_home_new(sizeof(su_home_t)));
  char* text = url_as_string(home, url);
  std::string result = text != nullptr ? text : "";
  su_home_unref(home);
  return result;
}

bool carriesCredentials(const sip_t* sip) {
  return sip->sip_authorization != nullptr || sip->sip_proxy_authorization != nullptr;
}

}  // namespace

// One REGISTER of a terminal on its way to the core and back.
struct RegisterRelay::Pending {
  RegisterRelay* relay = nullptr;
  std::uint64_t id = 0;
  nta_incoming_t* incoming = nullptr;
  nta_outgoing_t* outgoing = nullptr;
  std::size_t hop = 0;
  TerminalAddress terminal;
  std::string aor;
  std::string instance;       // empty: no Contact (a query) or "*"
  std::string contactUri;     // the terminal's
  std::string contactParams;  // its parameters but expires
  std::string callId;         // the terminal's
  std::uint32_t expires = 0;  // asked of the core
  bool removeAll = false;     // Contact: *
  bool withCredentials = false;
  // Set while nta_outgoing_mcreate() runs: a final status nta reports from inside it (the
  // request could not be sent) is kept here, not acted on in the middle of forward().
  bool forwarding = false;
  int failedAtSend = 0;
};

RegisterRelay::RegisterRelay(nta_agent_t* access, nta_agent_t* core,
                             const config::Config& settings, metrics::Metrics& metrics,
                             metrics::SipMessageSeries& sipSeries)
    : access_(access),
      core_(core),
      settings_(settings),
      lines_(settings.lines),
      metrics_(metrics),
      sipSeries_(sipSeries),
      registrations_(settings.lines.maxBindings),
      floodLimiter_(floodLimiterFor(settings.lines)),
      secret_(randomSecret()) {
  for (const char* result :
       {"relayed", "challenged", "accepted", "throttled", "rejected", "rate_limited", "overload"}) {
    metrics_.counter(metrics::FamilyId::registerTotal).Add({{"result", result}});
  }
  publishSize();
}

RegisterRelay::~RegisterRelay() {
  for (auto& [id, pending] : pending_) {
    if (pending->outgoing != nullptr) nta_outgoing_destroy(pending->outgoing);
    if (pending->incoming != nullptr) nta_incoming_destroy(pending->incoming);
  }
}

void RegisterRelay::update(const config::Lines& lines) {
  if (lines.registerRatePerSource != lines_.registerRatePerSource) {
    floodLimiter_ = floodLimiterFor(lines);  // every source starts again with a full burst
  }
  lines_ = lines;
  registrations_.setMaxBindings(lines.maxBindings);
}

void RegisterRelay::count(const char* result) {
  metrics_.counter(metrics::FamilyId::registerTotal).Add({{"result", result}}).Increment();
}

void RegisterRelay::publishSize() {
  metrics_.gauge(metrics::FamilyId::registrations).Add({}).Set(
      static_cast<double>(registrations_.size()));
}

namespace {
constexpr std::size_t kTokenHexDigits = 24;
}

bool RegisterRelay::isToken(std::string_view user) {
  return user.size() == kTokenHexDigits + 1 && user.front() == 'l' &&
         std::all_of(user.begin() + 1, user.end(),
                     [](char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; });
}

// A letter first: a core request to the token never matches a trunk's dial prefix (digits).
std::string RegisterRelay::tokenOf(const std::string& aor, const std::string& instance) const {
  std::string token(1, 'l');  // appended: GCC 12 -O3 warns falsely on "l" + string
  token += hexMd5(secret_, {"binding", aor, instance}).substr(0, kTokenHexDigits);
  return token;
}

std::string RegisterRelay::coreCallIdOf(const char* terminalCallId) const {
  return hexMd5(secret_, {"call-id", terminalCallId != nullptr ? terminalCallId : ""});
}

void RegisterRelay::reply(nta_incoming_t* request, int status, const char* phrase,
                          tag_type_t tag, tag_value_t value, ...) {
  ta_list ta;
  ta_start(ta, tag, value);
  sipSeries_.countResponse("access", status);
  nta_incoming_treply(request, status, phrase, ta_tags(ta));
  ta_end(ta);
}

void RegisterRelay::replyStateless(msg_t* msg, int status, const char* phrase, tag_type_t tag,
                                   tag_value_t value, ...) {
  ta_list ta;
  ta_start(ta, tag, value);
  sipSeries_.countResponse("access", status);
  nta_msg_treply(access_, msg, status, phrase, ta_tags(ta));
  ta_end(ta);
}

void RegisterRelay::onRegister(msg_t* msg, sip_t* sip, const TerminalAddress& terminal) {
  if (!floodLimiter_.allow(terminal.address)) {
    count("rate_limited");
    metrics_.counter(metrics::FamilyId::sipUnansweredTotal)
        .Add({{"realm", "access"}, {"reason", "register_flood"}})
        .Increment();
    nta_msg_discard(access_, msg);
    return;
  }
  // Refused and throttled REGISTERs are answered statelessly (a retransmission is simply
  // answered again); only one going to the core gets a server transaction.
  const auto refuse = [&](int status, const char* phrase, const char* why) {
    log::info("register", "REGISTER from ", terminal.toString(), " refused: ", why);
    count("rejected");
    replyStateless(msg, status, phrase, TAG_END());
  };
  const url_t* to = sip->sip_to != nullptr ? sip->sip_to->a_url : nullptr;
  if (to == nullptr || to->url_host == nullptr || sip->sip_from == nullptr ||
      sip->sip_call_id == nullptr || sip->sip_cseq == nullptr) {
    refuse(400, "Bad Request", "no To, From, Call-ID or CSeq");
    return;
  }
  const unsigned hopsLeft = sip->sip_max_forwards != nullptr ? sip->sip_max_forwards->mf_count : 70;
  if (hopsLeft == 0) {
    refuse(483, "Too Many Hops", "Max-Forwards 0");
    return;
  }
  auto pending = std::make_unique<Pending>();
  pending->relay = this;
  pending->terminal = terminal;
  pending->aor = Registrations::aorOf(to->url_user != nullptr ? to->url_user : "", to->url_host);
  pending->callId = sip->sip_call_id->i_id;
  pending->withCredentials = carriesCredentials(sip);
  const sip_contact_t* contact = sip->sip_contact;
  if (contact != nullptr && contact->m_next != nullptr) {
    refuse(400, "One Contact Per REGISTER", "more than one Contact");
    return;
  }
  if (contact != nullptr && contact->m_url->url_type == url_any) {
    if (requestedExpiry(nullptr, sip) != 0) {
      refuse(400, "Bad Request", "Contact * without Expires: 0");  // RFC 3261 10.3 step 6
      return;
    }
    pending->removeAll = true;
  } else if (contact != nullptr) {
    if (contact->m_url->url_host == nullptr) {
      refuse(400, "Bad Contact", "a Contact without a host");
      return;
    }
    pending->contactUri = uriText(contact->m_url);
    pending->contactParams = paramsWithoutExpiry(contact);
    const char* instance = msg_params_find(contact->m_params, "+sip.instance=");
    pending->instance = instance != nullptr ? instance : pending->contactUri;
    pending->expires = requestedExpiry(contact, sip);
  }
  const bool binds = !pending->instance.empty() && pending->expires > 0;
  const Binding* known =
      pending->instance.empty() ? nullptr : registrations_.find(pending->aor, pending->instance);
  if (binds && known == nullptr && registrations_.full()) {
    refuse(503, "Service Unavailable", "lines.max_bindings reached");
    return;
  }
  const auto now = RegistrationClock::now();
  const std::uint32_t granted = std::min(pending->expires, lines_.registerExpiresS);
  if (binds && known != nullptr && lines_.throttleRegistrations && known->coreAuthenticated &&
      known->terminal == terminal && known->contact == pending->contactUri &&
      known->callId == pending->callId &&
      known->coreExpires - now >= std::chrono::seconds(2 * std::uint64_t{granted})) {
    // A refresh the core needs not see: the same terminal, from the same address, which
    // the core authenticated last time, well within the core's expiry.
    Binding refreshed = *known;
    refreshed.expires = now + std::chrono::seconds(granted) + kExpiryGrace;
    refreshed.granted = granted;
    registrations_.store(std::move(refreshed));
    count("throttled");
    const std::string contacts = contactsOf(pending->aor);
    replyStateless(msg, 200, "OK", TAG_IF(!contacts.empty(), SIPTAG_CONTACT_STR(contacts.c_str())),
                   TAG_END());
    return;
  }
  if (overloaded && overloaded()) {
    // Only what would cost a transaction each way: refreshes answered here (above) cost
    // no more than a refusal and keep the terminal's binding and NAT mapping alive.
    count("overload");
    const std::uint32_t retryAfterS = settings_.refusals.retryAfterS;
    const std::string retryAfter = std::to_string(retryAfterS);
    replyStateless(msg, 503, "Service Unavailable",
                   TAG_IF(retryAfterS > 0, SIPTAG_RETRY_AFTER_STR(retryAfter.c_str())), TAG_END());
    return;
  }
  pending->incoming = nta_incoming_create(access_, nullptr, msg, sip, TAG_END());
  if (pending->incoming == nullptr) return;  // nta destroyed the message
  if (binds && lines_.throttleRegistrations) pending->expires = lines_.coreRegisterExpiresS;
  pending->id = nextPending_++;
  Pending& entry = *pending;
  pending_.emplace(entry.id, std::move(pending));
  if (!forward(entry)) {
    count("rejected");
    reply(entry.incoming, 503, "Service Unavailable", TAG_END());
    finish(entry.id);
  }
}

bool RegisterRelay::forward(Pending& pending) {
  const auto& hop = settings_.coreNextHops[pending.hop];
  msg_t* original = nta_incoming_getrequest(pending.incoming);
  const sip_t* request = sip_object(original);
  if (request == nullptr) {
    if (original != nullptr) msg_destroy(original);
    return false;
  }
  msg_t* msg = nta_msg_create(core_, 0);
  sip_t* out = sip_object(msg);
  su_home_t* home = msg_home(msg);
  // The SBC's own Contact in the core realm: the binding's token at the core's address.
  std::string contact;
  if (pending.removeAll) {
    contact = "*";
  } else if (!pending.instance.empty()) {
    const sip_contact_t* ours = nta_agent_contact(core_);
    std::string uri = uriText(ours->m_url);
    uri.insert(uri.find(':') + 1, tokenOf(pending.aor, pending.instance) + "@");
    contact = "<" + uri + ">";
  }
  const std::string expires = std::to_string(pending.expires);
  const std::string callId = coreCallIdOf(pending.callId.c_str());
  const std::string maxForwards = std::to_string(
      (request->sip_max_forwards != nullptr ? request->sip_max_forwards->mf_count : 70) - 1);
  const std::string headers = allowedHeaderLines(request, settings_.headerAllowList);
  const std::string target = sipUrl(hop.host, hop.port, config::toString(hop.transport));
  sip_request_t* line = sip_request_create(
      home, SIP_METHOD_REGISTER, reinterpret_cast<const url_string_t*>(request->sip_request->rq_url),
      nullptr);
  sip_cseq_t* cseq = sip_cseq_create(home, request->sip_cseq->cs_seq, SIP_METHOD_REGISTER);
  const bool built =
      line != nullptr && cseq != nullptr &&
      sip_add_tl(msg, out, SIPTAG_REQUEST(line), SIPTAG_TO(request->sip_to),
                 SIPTAG_FROM(request->sip_from), SIPTAG_CALL_ID_STR(callId.c_str()),
                 SIPTAG_CSEQ(cseq), SIPTAG_MAX_FORWARDS_STR(maxForwards.c_str()),
                 TAG_IF(!contact.empty(), SIPTAG_CONTACT_STR(contact.c_str())),
                 TAG_IF(!contact.empty(), SIPTAG_EXPIRES_STR(expires.c_str())),
                 SIPTAG_AUTHORIZATION(request->sip_authorization),
                 SIPTAG_PROXY_AUTHORIZATION(request->sip_proxy_authorization),
                 TAG_IF(!headers.empty(), SIPTAG_HEADER_STR(headers.c_str())),
                 TAG_END()) >= 0;
  msg_destroy(original);
  if (!built) {
    msg_destroy(msg);
    return false;
  }
  pending.forwarding = true;
  pending.failedAtSend = 0;
  pending.outgoing = nta_outgoing_mcreate(core_, &RegisterRelay::onCoreResponse, &pending,
                                          URL_STRING_MAKE(target.c_str()), msg, TAG_END());
  pending.forwarding = false;
  if (pending.outgoing == nullptr) return false;  // nta destroyed msg
  if (pending.failedAtSend != 0) {
    log::warning("register", "the REGISTER of ", pending.aor, " could not be sent to ",
                 hop.host, ":", hop.port, " (", pending.failedAtSend, ")");
    nta_outgoing_destroy(pending.outgoing);
    pending.outgoing = nullptr;
    return false;
  }
  count("relayed");
  return true;
}

int RegisterRelay::onCoreResponse(void* magic, nta_outgoing_t* request, const sip_t* sip) {
  Pending& pending = *static_cast<Pending*>(magic);
  RegisterRelay& self = *pending.relay;
  const int status = sip != nullptr ? sip->sip_status->st_status : nta_outgoing_status(request);
  if (status < 200) return 0;
  if (pending.forwarding) {
    pending.failedAtSend = status;
    return 0;
  }
  if ((status == 408 || status == 503) && pending.hop + 1 < self.settings_.coreNextHops.size()) {
    // This registrar did not answer (Timer F) or is overloaded: the next one in order.
    nta_outgoing_destroy(pending.outgoing);
    pending.outgoing = nullptr;
    ++pending.hop;
    if (self.forward(pending)) return 0;
  }
  self.completed(pending, status, sip);
  return 0;
}

void RegisterRelay::completed(Pending& pending, int status, const sip_t* response) {
  if (response != nullptr && status >= 200 && status < 300) {
    accepted(pending, response);
  } else if (response != nullptr && (status == 401 || status == 407)) {
    // The core's challenge passes to the terminal untouched: it answers with its own
    // credentials in its next REGISTER, which the core checks.
    count("challenged");
    reply(pending.incoming, status, response->sip_status->st_phrase,
          SIPTAG_WWW_AUTHENTICATE(response->sip_www_authenticate),
          SIPTAG_PROXY_AUTHENTICATE(response->sip_proxy_authenticate), TAG_END());
  } else {
    count("rejected");
    if (response == nullptr || status == 408) {
      log::warning("register", "no registrar answered the REGISTER of ", pending.aor);
      reply(pending.incoming, 504, "Server Time-out", TAG_END());
    } else {
      // 423 carries the registrar's Min-Expires; a 503 its Retry-After.
      reply(pending.incoming, status, response->sip_status->st_phrase,
            SIPTAG_MIN_EXPIRES(response->sip_min_expires),
            SIPTAG_RETRY_AFTER(response->sip_retry_after), TAG_END());
    }
  }
  finish(pending.id);
}

void RegisterRelay::accepted(Pending& pending, const sip_t* response) {
  count("accepted");
  const auto now = RegistrationClock::now();
  if (pending.removeAll) {
    registrations_.removeAor(pending.aor);
  } else if (!pending.instance.empty() && pending.expires == 0) {
    registrations_.remove(pending.aor, pending.instance);
  } else if (!pending.instance.empty()) {
    // What the core granted our Contact: its expires parameter in the 2xx, else Expires.
    const std::string token = tokenOf(pending.aor, pending.instance);
    std::uint32_t coreGranted = pending.expires;
    for (const sip_contact_t* c = response->sip_contact; c != nullptr; c = c->m_next) {
      if (c->m_url->url_user != nullptr && token == c->m_url->url_user) {
        coreGranted = requestedExpiry(c, response);
        break;
      }
    }
    if (response->sip_contact == nullptr && response->sip_expires != nullptr) {
      coreGranted = static_cast<std::uint32_t>(response->sip_expires->ex_delta);
    }
    Binding binding;
    binding.aor = pending.aor;
    binding.instance = pending.instance;
    binding.token = token;
    binding.contact = pending.contactUri;
    binding.contactParams = pending.contactParams;
    binding.callId = pending.callId;
    binding.terminal = pending.terminal;
    const std::uint32_t granted = std::min(coreGranted, lines_.registerExpiresS);
    binding.expires = now + std::chrono::seconds(granted) + kExpiryGrace;
    binding.coreExpires = now + std::chrono::seconds(coreGranted);
    binding.coreAuthenticated = pending.withCredentials;
    binding.granted = granted;
    const Binding* before = registrations_.find(pending.aor, pending.instance);
    if (before != nullptr && !(before->terminal == pending.terminal)) {
      log::info("register", pending.aor, " moved from ", before->terminal.toString(), " to ",
                pending.terminal.toString());
      if (moved) moved(pending.aor, before->terminal, pending.terminal);
    }
    if (coreGranted == 0) {
      registrations_.remove(pending.aor, pending.instance);
    } else if (!registrations_.store(std::move(binding))) {
      // Filled up by others while this one was at the core.
      log::warning("register", "lines.max_bindings reached; ", pending.aor, " not kept");
      count("rejected");
      reply(pending.incoming, 503, "Service Unavailable", TAG_END());
      publishSize();
      return;
    }
  }
  publishSize();
  replyBindings(pending.incoming, pending.aor);
}

void RegisterRelay::replyBindings(nta_incoming_t* request, const std::string& aor) {
  const std::string contacts = contactsOf(aor);
  reply(request, 200, "OK", TAG_IF(!contacts.empty(), SIPTAG_CONTACT_STR(contacts.c_str())),
        TAG_END());
}

std::string RegisterRelay::contactsOf(const std::string& aor) const {
  // Each with what is left of its expiry: nothing of the core's (our own Contacts at the
  // core) reaches the terminal.
  const auto now = RegistrationClock::now();
  std::string contacts;
  for (const Binding* binding : registrations_.ofAor(aor)) {
    const auto left = std::chrono::duration_cast<std::chrono::seconds>(binding->expires - now -
                                                                       kExpiryGrace);
    if (!contacts.empty()) contacts += ", ";
    contacts += '<';
    contacts += binding->contact;
    contacts += '>';
    contacts += binding->contactParams;
    contacts += ";expires=";
    contacts += std::to_string(std::max<std::int64_t>(0, left.count()));
  }
  return contacts;
}

void RegisterRelay::finish(std::uint64_t id) {
  const auto it = pending_.find(id);
  if (it == pending_.end()) return;
  if (it->second->outgoing != nullptr) nta_outgoing_destroy(it->second->outgoing);
  if (it->second->incoming != nullptr) nta_incoming_destroy(it->second->incoming);
  pending_.erase(it);
}

std::string RegisterRelay::describe(const std::string& aor) const {
  const auto now = RegistrationClock::now();
  const auto secondsUntil = [&](RegistrationClock::time_point when) {
    return std::to_string(std::max<std::int64_t>(
        0, std::chrono::duration_cast<std::chrono::seconds>(when - now).count()));
  };
  std::string text;
  registrations_.forEach([&](const Binding& binding) {
    if (!aor.empty() && binding.aor != aor) return;
    // Appended piece by piece: GCC 12 at -O3 warns falsely (-Wrestrict) on "x" + string.
    const std::string terminal = binding.terminal.toString();
    const std::string expiresIn = secondsUntil(binding.expires - kExpiryGrace);
    const std::string coreExpiresIn = secondsUntil(binding.coreExpires);
    for (const std::string_view piece :
         {binding.aor, std::string_view(" "), std::string_view(terminal),
          std::string_view(" expires_in="), std::string_view(expiresIn),
          std::string_view("s core_expires_in="), std::string_view(coreExpiresIn),
          std::string_view("s contact="), binding.contact, std::string_view("\n")}) {
      text += piece;
    }
  });
  return text;
}

void RegisterRelay::expire(RegistrationClock::time_point now) {
  const std::size_t removed = registrations_.expire(now);
  if (removed > 0) {
    log::info("register", removed, " binding(s) expired without a refresh");
    publishSize();
  }
}

}  // namespace sbc::signaling
