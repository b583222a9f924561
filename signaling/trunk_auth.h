#pragma once
// Digest challenge of trunks (RFC 3261 section 22.3, proxy authentication) with Sofia-SIP's
// auth module: one module per trunk that has `challenge` credentials, holding only that
// trunk's user in memory (no password file). A trunk is recognised by source first; its
// credentials are checked on top, before admission, so a request without valid ones never
// takes a call slot. Signaling thread only.

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "config/config.h"
#include "metrics/metrics.h"
#include "signaling/sofia.h"

namespace sbc::signaling {

class TrunkAuthenticator {
 public:
  // `defaultRealm` is used by trunks whose challenge names no realm; a nonce is good for
  // `nonceExpiresS` seconds after it was issued, then the trunk is challenged again (stale).
  TrunkAuthenticator(su_root_t* root, metrics::Metrics& metrics, std::string defaultRealm,
                     unsigned nonceExpiresS);
  ~TrunkAuthenticator();
  TrunkAuthenticator(const TrunkAuthenticator&) = delete;
  TrunkAuthenticator& operator=(const TrunkAuthenticator&) = delete;

  // The trunk table of start-up or of a reload: requests checked from now on use its
  // credentials. Nonces issued before stay valid (the key that signs them is kept).
  void update(const std::vector<config::Trunk>& trunks);

  // True when the request of `trunk` may go on: the trunk is not challenged, or the request
  // carries valid credentials for it. Otherwise the request has been answered statefully
  // (407 with a fresh challenge, 403 for wrong credentials, 400 for malformed ones), counted
  // in sbc_auth_total and sbc_sip_responses_total, and `msg` is consumed.
  bool admit(const std::string& trunk, nta_agent_t* agent, msg_t* msg, sip_t* sip);

 private:
  struct Module;
  su_root_t* root_;
  metrics::Metrics& metrics_;
  const std::string defaultRealm_;
  const unsigned nonceExpiresS_;
  const std::string masterKey_;  // signs nonces; random per process
  std::map<std::string, std::unique_ptr<Module>, std::less<>> modules_;  // by trunk name
};

}  // namespace sbc::signaling
