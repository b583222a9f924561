// A trunk call through sbcd whose socket media driver uses BPF: sk_lookup mode (one socket
// per realm, a BPF program steering the media port ranges to it, a raw socket sending), and
// kernel forwarding (a TC program forwarding the calls' media). The binary moves into a
// network namespace of its own in main(), before any thread, so sbcd and the SIPp peers it
// starts run there: the programs sbcd attaches see only this test's packets (other tests'
// sbcd use the same media ranges on the host's loopback).
// Needs root; under CI=true a test that cannot run fails, elsewhere it is skipped.

#include "tests/integration/trunk_fixture.h"

namespace sbc::test {
namespace {

class SkLookupCalls : public TrunkFixture {};

// Proves: with media.socket_ports = "sk_lookup", a call's media crosses the relay both ways
// from the SBC's address and relay port, a wrong source is dropped and counted, and the
// call ends clean (the same checks as TrunkCalls.MediaIsAnchoredOnTheRelay).
TEST_F(SkLookupCalls, MediaIsAnchoredThroughTheSteeredSockets) {
  extraConfig_ = R"(media = { socket_ports = "sk_lookup"; };)";
  expectAnchoredMediaCall();
  EXPECT_NE(daemon_->process().output().find("media.socket_ports=sk_lookup"), std::string::npos)
      << daemon_->process().output();
}

// Proves: without the capabilities the mode needs (here CAP_BPF, CAP_NET_ADMIN and
// CAP_SYS_ADMIN taken out of the bounding set, so root's sbcd cannot load the program),
// sbcd says which step failed and why, and does not start.
TEST_F(SkLookupCalls, WithoutTheCapabilitiesSbcdSaysWhyAndDoesNotStart) {
  extraConfig_ = R"(media = { socket_ports = "sk_lookup"; };)";
  const std::string config = dir_.write("sbc.cfg", sbcConfig(10, 30));
  ChildProcess sbcd({"/usr/bin/setpriv", "--bounding-set", "-bpf,-net_admin,-sys_admin", "--",
                     builtProgram("SBCD"), "-c", config});
  EXPECT_EQ(sbcd.waitForExit(10s), 1) << sbcd.output();
  EXPECT_NE(sbcd.output().find("not started: media sk_lookup: "), std::string::npos)
      << sbcd.output();
  EXPECT_NE(sbcd.output().find("Operation not permitted"), std::string::npos) << sbcd.output();
}

class KernelForwardingCalls : public TrunkFixture {};

// Proves: with media.kernel_forwarding = true, in either port mode, a call's media crosses
// the relay both ways from the SBC's address and relay port, a wrong source is dropped and
// counted, and the call ends clean.
TEST_F(KernelForwardingCalls, MediaIsAnchoredThroughTheKernel) {
  extraConfig_ = R"(media = { kernel_forwarding = true; };)";
  expectAnchoredMediaCall();
  EXPECT_NE(daemon_->process().output().find("media.kernel_forwarding=true"), std::string::npos)
      << daemon_->process().output();
  // The echoed RTP went through the kernel once the call's streams were described to it
  // (how much of it depends on how soon the worker acknowledged each packet it forwarded
  // itself: the test sends the next one as soon as the echo is back).
  EXPECT_GT(metric("sbc_media_kernel_forwarded_total"), 0) << daemon_->scrape();
}
TEST_F(KernelForwardingCalls, MediaIsAnchoredThroughTheKernelWithSteeredSockets) {
  extraConfig_ = R"(media = { socket_ports = "sk_lookup"; kernel_forwarding = true; };)";
  expectAnchoredMediaCall();
}

// Proves: without CAP_BPF and CAP_NET_ADMIN (and CAP_SYS_ADMIN) sbcd cannot load the program,
// says so, and does not start.
TEST_F(KernelForwardingCalls, WithoutTheCapabilitiesSbcdSaysWhyAndDoesNotStart) {
  extraConfig_ = R"(media = { kernel_forwarding = true; };)";
  const std::string config = dir_.write("sbc.cfg", sbcConfig(10, 30));
  ChildProcess sbcd({"/usr/bin/setpriv", "--bounding-set", "-bpf,-net_admin,-sys_admin", "--",
                     builtProgram("SBCD"), "-c", config});
  EXPECT_EQ(sbcd.waitForExit(10s), 1) << sbcd.output();
  EXPECT_NE(sbcd.output().find("not started: media kernel forwarding: "), std::string::npos)
      << sbcd.output();
  EXPECT_NE(sbcd.output().find("Operation not permitted"), std::string::npos) << sbcd.output();
}

}  // namespace
}  // namespace sbc::test

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  if (const int code = sbc::test::enterOwnNetworkNamespace(); code != 0) return code;
  return RUN_ALL_TESTS();
}
