// Calls through sbcd over TCP: the trunk side (access listen and trunk target on TCP), the
// core side (core listen and next hop on TCP), each alone and both together, in both call
// directions. SIPp plays each side over one TCP connection (-t t1); a SIPp peer on TCP
// does not read UDP, so a message the SBC sent on the wrong transport fails its scenario.

#include <chrono>
#include <string>

#include <gtest/gtest.h>

#include "tests/integration/trunk_fixture.h"
#include "tests/support/test_env.h"

namespace sbc::test {
namespace {

class Transports : public TrunkFixture {
 protected:
  void expectAnswered(const char* direction, double calls) {
    EXPECT_TRUE(daemon_->waitForMetric(std::string("sbc_calls_total{direction=\"") +
                                           direction + "\",result=\"answered\",trunk=\"alpha\"}",
                                       calls))
        << daemon_->scrape();
    expectNoActiveCalls();
  }
};

// Proves: a trunk on TCP calls the core (on UDP): INVITE, 200, ACK and BYE from the trunk
// travel on the trunk's connection, for several calls on one connection.
TEST_F(Transports, TrunkOnTcp) {
  accessTransport_ = "tcp";
  startSbc(10);
  callThrough("uas_answer.xml", "uac_hold.xml", 2);
  expectAnswered("from_trunk", 2);
}

// Proves: the core next hop on TCP (the SBC connects to it) takes the trunk's calls, and
// the SBC's ACK and the core's BYE cross that connection.
TEST_F(Transports, CoreOnTcp) {
  coreTransport_ = "tcp";
  startSbc(10);
  callThrough("uas_bye.xml", "uac_wait_bye.xml");
  expectAnswered("from_trunk", 1);
}

// Proves: with both sides on TCP, a BYE from the core reaches the trunk over TCP (the
// trunk's Contact says transport=tcp).
TEST_F(Transports, BothOnTcpByeFromTheCore) {
  accessTransport_ = "tcp";
  coreTransport_ = "tcp";
  startSbc(10);
  callThrough("uas_bye.xml", "uac_wait_bye.xml");
  expectAnswered("from_trunk", 1);
}

// Proves: a core → trunk call with the core on TCP reaches a trunk whose target is TCP
// (the SBC connects to the trunk), is answered and ends with the core's BYE.
TEST_F(Transports, CoreCallsTrunkOverTcp) {
  accessTransport_ = "tcp";
  coreTransport_ = "tcp";
  startSbc(10);
  callFromCore();
  expectAnswered("to_trunk", 1);
}

// Proves: a trunk target on TCP works with the core on UDP (the transports of the two
// legs are independent).
TEST_F(Transports, CoreOnUdpCallsTrunkOnTcp) {
  accessTransport_ = "tcp";
  startSbc(10);
  callFromCore();
  expectAnswered("to_trunk", 1);
}

}  // namespace
}  // namespace sbc::test
