// Digest challenge of trunks: a trunk with `challenge` credentials must answer the SBC's
// 407 before its INVITE is admitted; wrong credentials are refused and counted without
// taking a call slot; nonces expire; a reload changes the credentials; trunks without
// credentials are not challenged. SIPp plays the trunk (127.0.0.2) and the core (127.0.0.3).

#include <signal.h>

#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/integration/trunk_fixture.h"

namespace sbc::test {
namespace {

const std::string kChallenge =
    R"(challenge = { username = "alpha-pbx"; password = "s3cret"; realm = "sbc.test"; };)";

class TrunkAuth : public TrunkFixture {
 protected:
  // SIPp as the trunk answering challenges with `user` / `password`. SIPp's digest uri is
  // "sip:ADDRESS:PORT" unless told (-auth_uri): by default it is the Request-URI here.
  CommandResult trunkWithCredentials(const std::string& scenario, const std::string& user,
                                     const std::string& password, std::string digestUri = "") {
    if (digestUri.empty()) digestUri = "service@127.0.0.10:" + std::to_string(accessPort_);
    auto args = trunkArgs(scenario, 1, 1);
    args.insert(args.end() - 1,
                {"-au", user, "-ap", password, "-auth_uri", std::move(digestUri)});
    return runCommand(args, std::chrono::seconds(40));
  }

  double auth(const std::string& result) {
    return metric("sbc_auth_total{result=\"" + result + "\",trunk=\"alpha\"}");
  }
  double admitted() { return metric("sbc_admission_total{result=\"admitted\",trunk=\"alpha\"}"); }
};

// Proves: an INVITE from a challenged trunk without credentials gets 407 and is not
// admitted; the same call with valid credentials is admitted and answered, and nothing of
// the credentials reaches the core.
TEST_F(TrunkAuth, ValidCredentialsGetThrough) {
  trunkExtra_ = kChallenge;
  startSbc(10);
  EXPECT_EQ(auth("challenged"), 0);  // the series exist before the first request
  auto core = startCore("uas_answer_no_credentials.xml", 1);
  const auto trunk = trunkWithCredentials("uac_auth.xml", "alpha-pbx", "s3cret");
  EXPECT_EQ(trunk.status, 0) << trunk.output;
  EXPECT_EQ(core->waitForExit(10s), 0) << core->output();
  EXPECT_EQ(auth("challenged"), 1);
  EXPECT_EQ(auth("accepted"), 1);
  EXPECT_EQ(auth("failed"), 0);
  EXPECT_EQ(admitted(), 1);  // only the authenticated INVITE
  EXPECT_EQ(metric("sbc_sip_responses_total{code=\"407\",realm=\"access\"}"), 1);
  expectNoActiveCalls();
}

// Proves: a wrong password or user name is refused with 403, and credentials computed for
// another URI than the Request-URI with 400; all counted as failed and never admitted: no
// call slot is taken and nothing reaches the core (nothing listens there: a relayed INVITE
// would come back 503, which the scenario does not accept).
TEST_F(TrunkAuth, WrongCredentialsAreRefusedWithoutASlot) {
  trunkExtra_ = kChallenge;
  startSbc(10);
  const auto wrongPassword = trunkWithCredentials("uac_auth_refused.xml", "alpha-pbx", "guess");
  EXPECT_EQ(wrongPassword.status, 0) << wrongPassword.output;
  const auto wrongUser = trunkWithCredentials("uac_auth_refused.xml", "mallory", "s3cret");
  EXPECT_EQ(wrongUser.status, 0) << wrongUser.output;
  const auto otherUri = trunkWithCredentials("uac_auth_refused.xml", "alpha-pbx", "s3cret",
                                             "other@127.0.0.10:" + std::to_string(accessPort_));
  EXPECT_EQ(otherUri.status, 0) << otherUri.output;
  EXPECT_EQ(auth("challenged"), 3);
  EXPECT_EQ(auth("failed"), 3);
  EXPECT_EQ(auth("accepted"), 0);
  EXPECT_EQ(admitted(), 0);
  EXPECT_EQ(metric("sbc_sip_responses_total{code=\"403\",realm=\"access\"}"), 2);
  EXPECT_EQ(metric("sbc_sip_responses_total{code=\"400\",realm=\"access\"}"), 1);
  expectNoActiveCalls();
}

// Proves: a nonce older than sip.nonce_expires_s is not accepted: the trunk is challenged
// again (407, stale) and gets through with the fresh nonce.
TEST_F(TrunkAuth, ExpiredNonceIsChallengedAgain) {
  trunkExtra_ = kChallenge;
  sipExtra_ = "nonce_expires_s = 1;";
  startSbc(10);
  auto core = startCore("uas_answer_no_credentials.xml", 1);
  const auto trunk = trunkWithCredentials("uac_auth_stale.xml", "alpha-pbx", "s3cret");
  EXPECT_EQ(trunk.status, 0) << trunk.output;
  EXPECT_EQ(core->waitForExit(10s), 0) << core->output();
  EXPECT_EQ(auth("challenged"), 2);
  EXPECT_EQ(auth("accepted"), 1);
  EXPECT_EQ(admitted(), 1);
  expectNoActiveCalls();
}

// Proves: a reload replaces the trunk's credentials for new calls: the new password gets
// through and the old one is refused.
TEST_F(TrunkAuth, ReloadChangesTheCredentials) {
  trunkExtra_ = kChallenge;
  startSbc(10);
  auto core = startCore("uas_answer_no_credentials.xml", 2);
  const auto before = trunkWithCredentials("uac_auth.xml", "alpha-pbx", "s3cret");
  EXPECT_EQ(before.status, 0) << before.output;

  trunkExtra_ =
      R"(challenge = { username = "alpha-pbx"; password = "n3w-s3cret"; realm = "sbc.test"; };)";
  dir_.write("sbc.cfg", sbcConfig(10, 30));
  daemon_->process().signal(SIGHUP);
  ASSERT_TRUE(daemon_->waitForMetric("sbc_config_reloads_total{result=\"success\"}", 1));
  const auto newPassword = trunkWithCredentials("uac_auth.xml", "alpha-pbx", "n3w-s3cret");
  EXPECT_EQ(newPassword.status, 0) << newPassword.output;
  const auto oldPassword = trunkWithCredentials("uac_auth_refused.xml", "alpha-pbx", "s3cret");
  EXPECT_EQ(oldPassword.status, 0) << oldPassword.output;
  EXPECT_EQ(core->waitForExit(10s), 0) << core->output();
  EXPECT_EQ(auth("accepted"), 2);
  EXPECT_EQ(auth("failed"), 1);
  EXPECT_EQ(admitted(), 2);
  expectNoActiveCalls();
}

// Proves: a trunk without challenge settings is not challenged: its INVITE is admitted at
// once (the scenario has no answer to a 407) and no sbc_auth_total series exists for it.
TEST_F(TrunkAuth, TrunkWithoutCredentialsIsNotChallenged) {
  startSbc(10);
  callThrough("uas_answer_no_credentials.xml", "uac_hold.xml");
  EXPECT_EQ(admitted(), 1);
  EXPECT_EQ(metric("sbc_sip_responses_total{code=\"407\",realm=\"access\"}"), -1);
  EXPECT_EQ(daemon_->scrape().find("sbc_auth_total{"), std::string::npos);
  expectNoActiveCalls();
}

}  // namespace
}  // namespace sbc::test
