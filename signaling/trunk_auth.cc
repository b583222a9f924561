#include "signaling/trunk_auth.h"

#include <sys/random.h>

#include <array>
#include <cstdio>
#include <stdexcept>

#include "common/log.h"

// After sofia.h (via trunk_auth.h): the auth module's own headers.
#include <sofia-sip/auth_module.h>
#include <sofia-sip/auth_plugin.h>

namespace sbc::signaling {
namespace {

// Sofia's default master key is a constant ("fish"): anyone could forge nonces. Ours is
// random per process, so nonces are only good against this sbcd.
std::string randomKey() {
  std::array<unsigned char, 16> bytes{};
  std::size_t filled = 0;
  while (filled < bytes.size()) {
    const ssize_t got = ::getrandom(bytes.data() + filled, bytes.size() - filled, 0);
    if (got <= 0) throw std::runtime_error("signaling: getrandom failed");
    filled += static_cast<std::size_t>(got);
  }
  std::string hex;
  for (const unsigned char byte : bytes) {
    char two[3];
    std::snprintf(two, sizeof two, "%02x", byte);
    hex += two;
  }
  return hex;
}

// Proxy authentication (RFC 3261 section 22.3): 407 and Proxy-Authenticate.
auth_challenger_t proxyChallenger() {
  return {407, "Proxy Authentication Required", sip_proxy_authenticate_class,
          sip_proxy_authentication_info_class};
}

// The digest's uri must be the request's own Request-URI (RFC 2617 section 3.2.2.5), so a
// response computed for one request cannot be replayed against another target.
bool uriMatches(su_home_t* home, const msg_auth_t* credentials, const url_t* requestUri) {
  if (credentials == nullptr || requestUri == nullptr) return false;
  const char* quoted = msg_params_find(credentials->au_params, "uri=");
  if (quoted == nullptr) return false;
  char* text = msg_unquote_dup(home, quoted);
  if (text == nullptr) return false;
  url_t* uri = url_make(home, text);
  return uri != nullptr && url_cmp_all(uri, requestUri) == 0;
}

}  // namespace

struct TrunkAuthenticator::Module {
  explicit Module(auth_mod_t* module) : module(module) {}
  ~Module() { auth_mod_unref(module); }
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;
  auth_mod_t* module;
};

TrunkAuthenticator::TrunkAuthenticator(su_root_t* root, metrics::Metrics& metrics,
                                       std::string defaultRealm, unsigned nonceExpiresS)
    : root_(root),
      metrics_(metrics),
      defaultRealm_(std::move(defaultRealm)),
      nonceExpiresS_(nonceExpiresS),
      masterKey_(randomKey()) {}

TrunkAuthenticator::~TrunkAuthenticator() = default;

void TrunkAuthenticator::update(const std::vector<config::Trunk>& trunks) {
  decltype(modules_) fresh;
  auto& counted = metrics_.counter(metrics::FamilyId::authTotal);
  for (const auto& trunk : trunks) {
    if (!trunk.challenge) continue;
    const config::Credentials& credentials = *trunk.challenge;
    const std::string& realm = credentials.realm.empty() ? defaultRealm_ : credentials.realm;
    auth_mod_t* module = auth_mod_create(
        root_, AUTHTAG_METHOD("Digest"), AUTHTAG_REALM(realm.c_str()), AUTHTAG_QOP("auth"),
        AUTHTAG_EXPIRES(nonceExpiresS_),
        // No nextnonce: every new call is challenged afresh, with a nonce that expires.
        AUTHTAG_NEXT_EXPIRES(0),
        // Wrong credentials get 403 rather than an endless loop of 407s.
        AUTHTAG_FORBIDDEN(1), AUTHTAG_MASTER_KEY(masterKey_.c_str()), TAG_END());
    auth_passwd_t* user =
        module == nullptr ? nullptr
                          : auth_mod_addpass(module, credentials.username.c_str(), realm.c_str());
    if (user == nullptr) {
      // Out of memory only. Failing open would let the trunk in unauthenticated; the module
      // stays absent from `fresh`, so admit() refuses the trunk's calls instead.
      log::error("auth", "trunk ", trunk.name, ": cannot set up its digest challenge");
      if (module != nullptr) auth_mod_unref(module);
      fresh.emplace(trunk.name, nullptr);
      continue;
    }
    user->apw_pass = su_strdup(module->am_home, credentials.password.c_str());
    fresh.emplace(trunk.name, std::make_unique<Module>(module));
    for (const char* result : {"challenged", "accepted", "failed"}) {
      counted.Add({{"trunk", trunk.name}, {"result", result}});
    }
  }
  modules_.swap(fresh);
}

bool TrunkAuthenticator::admit(const std::string& trunk, nta_agent_t* agent, msg_t* msg,
                               sip_t* sip) {
  const auto found = modules_.find(trunk);
  if (found == modules_.end()) return true;  // not challenged

  auth_status_t status[1];
  auth_status_init(status, sizeof status);
  const char* result = "failed";
  if (found->second == nullptr) {
    status->as_status = 500;
    status->as_phrase = "Internal Server Error";
  } else {
    status->as_method = sip->sip_request->rq_method_name;
    if (sip->sip_payload != nullptr) {
      status->as_body = sip->sip_payload->pl_data;
      status->as_bodylen = sip->sip_payload->pl_len;
    }
    const auth_challenger_t challenger = proxyChallenger();
    auth_mod_verify(found->second->module, status, sip->sip_proxy_authorization, &challenger);
    if (status->as_status == 0 &&
        !uriMatches(status->as_home, reinterpret_cast<msg_auth_t*>(status->as_match),
                    sip->sip_request->rq_url)) {
      status->as_status = 400;
      status->as_phrase = "Authorization URI Mismatch";
    }
    if (status->as_status == 0) {
      result = "accepted";
    } else if (status->as_status == 407) {
      result = "challenged";  // no credentials for this realm, or a stale or forged nonce
    }
  }
  metrics_.counter(metrics::FamilyId::authTotal)
      .Add({{"trunk", trunk}, {"result", result}})
      .Increment();
  if (status->as_status == 0) {
    su_home_deinit(status->as_home);
    return true;
  }
  log::debug("auth", "trunk ", trunk, ": ", sip->sip_request->rq_method_name, " answered ",
             status->as_status, " ", status->as_phrase != nullptr ? status->as_phrase : "");
  // Stateful, so retransmissions get the same answer and the ACK of a 407 is absorbed.
  // (nta_incoming_create destroys the message itself when it fails.)
  nta_incoming_t* request = nta_incoming_create(agent, nullptr, msg, sip, TAG_END());
  if (request != nullptr) {
    metrics_.counter(metrics::FamilyId::sipResponsesTotal)
        .Add({{"realm", "access"}, {"code", std::to_string(status->as_status)}})
        .Increment();
    nta_incoming_treply(request, status->as_status, status->as_phrase,
                        TAG_IF(status->as_response != nullptr,
                               SIPTAG_HEADER(reinterpret_cast<sip_header_t*>(status->as_response))),
                        TAG_END());
    nta_incoming_destroy(request);
  }
  su_home_deinit(status->as_home);
  return false;
}

}  // namespace sbc::signaling
