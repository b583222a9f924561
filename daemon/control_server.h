#pragma once
// The unix control socket sbcctl talks to: one request line, one reply, then close.
// Commands come from one table (name, syntax, help, handler) with one error reply path.

#include <functional>
#include <string>
#include <vector>

#include "daemon/asio.h"

namespace sbc::daemon {

struct ControlReply {
  bool ok = true;
  std::string text;
};

struct ControlCommand {
  std::string name;
  std::string syntax;  // one line: "reload" or "trunk NAME"
  std::string help;
  std::function<ControlReply(const std::vector<std::string>& args)> handler;
};

class ControlServer {
 public:
  // Creates the socket's directory if missing and replaces a stale socket file.
  // Throws std::runtime_error naming the path when it cannot listen.
  ControlServer(boost::asio::io_context& io, std::string path,
                std::vector<ControlCommand> commands);
  ~ControlServer();

  const std::string& path() const { return path_; }

  // Parses and runs one request line; what a connection gets back. Public for tests.
  std::string handleLine(const std::string& line) const;

 private:
  void acceptNext();

  std::string path_;
  std::vector<ControlCommand> commands_;
  boost::asio::local::stream_protocol::acceptor acceptor_;
};

}  // namespace sbc::daemon
