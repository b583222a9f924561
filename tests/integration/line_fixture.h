#pragma once
// Subscriber lines against SIPp: a terminal on 127.0.0.4 (127.0.0.5 once it has moved)
// registers through sbcd (access 127.0.0.10, core 127.0.0.11) to a SIPp core registrar on
// 127.0.0.3 that challenges it with 401 (alice/secret); helpers for the terminal's and the
// core's SIPp and for sbcctl.

#include <chrono>
#include <fstream>
#include <iterator>
#include <regex>
#include <string>
#include <vector>

#include "tests/integration/trunk_fixture.h"

namespace sbc::test {

using namespace std::chrono_literals;

class LineFixture : public TrunkFixture {
 protected:
  // The terminal's SIPp: `scenario` once from `address`, answering challenges as
  // alice/secret. With `traceFile`, its messages are written there. `extra` goes before
  // the remote address (e.g. -cid_str).
  CommandResult terminal(const std::string& scenario, const char* address = "127.0.0.4",
                         const std::string& traceFile = "",
                         std::vector<std::string> extra = {}) {
    std::vector<std::string> args{"/usr/bin/sipp", "-sf", kSippDir + "/" + scenario, "-i",
                                  address, "-bind_local", "-m", "1", "-au", "alice", "-ap",
                                  "secret", "-timeout", "20s", "-timeout_error", "-nostdin"};
    if (!traceFile.empty()) args.insert(args.end(), {"-trace_msg", "-message_file", traceFile});
    args.insert(args.end(), extra.begin(), extra.end());
    args.push_back("127.0.0.10:" + std::to_string(accessPort_));
    return runCommand(args, 40s);
  }

  std::unique_ptr<ChildProcess> registrar(const std::string& scenario, int registrations = 1,
                                          const std::string& traceFile = "") {
    return startUas(scenario, "127.0.0.3", corePort_, registrations, "udp", traceFile);
  }

  // `sbcctl registrations [aor]`.
  std::string listed(const std::string& aor = "") {
    std::vector<std::string> args{builtProgram("SBCCTL"), "-s", dir_.file("sbcd.sock"),
                                  "registrations"};
    if (!aor.empty()) args.push_back(aor);
    const auto result = runCommand(args, 10s);
    EXPECT_EQ(result.status, 0) << result.output;
    return result.output;
  }

  static std::string readFile(const std::string& path) {
    std::ifstream in(path);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  }

  // alice registers from `address` (SIPp's own port unless `extra` has -p), challenged
  // and accepted by the core registrar; the token of the SBC's Contact at the core is
  // returned ("" if the core did not see one).
  std::string registerAlice(const char* address = "127.0.0.4", std::vector<std::string> extra = {}) {
    const std::string trace = dir_.file("registrar-" + std::to_string(++registrations_) + ".trace");
    const auto core = registrar("core_registrar.xml", 1, trace);
    const auto line = terminal("line_register.xml", address, "", std::move(extra));
    EXPECT_EQ(line.status, 0) << line.output;
    EXPECT_EQ(core->waitForExit(10s), 0) << core->output();
    static const std::regex token("sip:(l[0-9a-f]{24})@127\\.0\\.0\\.11:");
    std::smatch match;
    const std::string seen = receivedMessages(trace);
    return std::regex_search(seen, match, token) ? match[1].str() : std::string();
  }

  // The terminal's calls: `scenario` `calls` times (`simultaneous` at once, each held
  // `holdMs` once answered) from `address`, to sip:bob@example.test, answering challenges
  // as alice/secret.
  CommandResult lineCalls(const std::string& scenario, int calls, int simultaneous,
                          const char* address = "127.0.0.4", int holdMs = 500,
                          const std::string& traceFile = "") {
    std::vector<std::string> args{"/usr/bin/sipp", "-sf", kSippDir + "/" + scenario, "-i",
                                  address, "-bind_local", "-m", std::to_string(calls), "-l",
                                  std::to_string(simultaneous), "-r", "20", "-d",
                                  std::to_string(holdMs), "-s", "bob", "-au", "alice", "-ap",
                                  "secret", "-timeout", "20s", "-timeout_error", "-nostdin"};
    if (!traceFile.empty()) args.insert(args.end(), {"-trace_msg", "-message_file", traceFile});
    args.push_back("127.0.0.10:" + std::to_string(accessPort_));
    return runCommand(args, 40s);
  }

  // The core calls `user` at the SBC's core address with `scenario`.
  CommandResult coreCalls(const std::string& scenario, const std::string& user) {
    return runCommand({"/usr/bin/sipp", "-sf", kSippDir + "/" + scenario, "-i", "127.0.0.3",
                       "-bind_local", "-p", std::to_string(corePort_), "-m", "1", "-s", user,
                       "-timeout", "20s", "-timeout_error", "-nostdin",
                       "127.0.0.11:" + std::to_string(sbcCorePort_)},
                      40s);
  }

  static std::string lineCallsSeries(const char* direction, const char* result) {
    return std::string("sbc_calls_total{direction=\"") + direction + "\",result=\"" + result +
           "\",trunk=\"\"}";
  }

  int registrations_ = 0;
};


}  // namespace sbc::test
