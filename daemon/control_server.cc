#include "daemon/control_server.h"

#include <sys/stat.h>

#include <filesystem>
#include <memory>
#include <sstream>
#include <stdexcept>

#include "common/log.h"

namespace sbc::daemon {
namespace {

constexpr std::size_t kMaxRequestBytes = 4096;

std::vector<std::string> splitWords(const std::string& line) {
  std::istringstream in(line);
  std::vector<std::string> words;
  for (std::string word; in >> word;) words.push_back(word);
  return words;
}

std::string formatReply(const ControlReply& reply) {
  std::string out = reply.ok ? "ok\n" : "error: ";
  out += reply.text;
  if (out.empty() || out.back() != '\n') out += '\n';
  return out;
}

// A leftover socket file from a crashed sbcd is replaced; a live one means another sbcd.
void removeStaleSocket(boost::asio::io_context& io, const std::string& path) {
  std::error_code ignored;
  if (!std::filesystem::exists(path, ignored)) return;
  boost::asio::local::stream_protocol::socket probe(io);
  boost::system::error_code error;
  probe.connect(boost::asio::local::stream_protocol::endpoint(path), error);
  if (!error) throw std::runtime_error("control socket " + path + " is in use by another process");
  std::filesystem::remove(path, ignored);
}

// One connection: read a line (bounded), reply, close.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(boost::asio::local::stream_protocol::socket socket, const ControlServer& server)
      : socket_(std::move(socket)), server_(server) {}

  void start() {
    auto self = shared_from_this();
    boost::asio::async_read_until(
        socket_, boost::asio::dynamic_buffer(request_, kMaxRequestBytes), '\n',
        [self](const boost::system::error_code& error, std::size_t length) {
          if (error && error != boost::asio::error::eof) {
            self->reply(formatReply({false, "request line missing or longer than 4096 bytes"}));
            return;
          }
          const std::string line = self->request_.substr(0, length);
          self->reply(self->server_.handleLine(line));
        });
  }

 private:
  void reply(std::string text) {
    reply_ = std::move(text);
    auto self = shared_from_this();
    boost::asio::async_write(socket_, boost::asio::buffer(reply_),
                             [self](const boost::system::error_code&, std::size_t) {
                               boost::system::error_code ignored;
                               self->socket_.shutdown(
                                   boost::asio::local::stream_protocol::socket::shutdown_both,
                                   ignored);
                             });
  }

  boost::asio::local::stream_protocol::socket socket_;
  const ControlServer& server_;
  std::string request_;
  std::string reply_;
};

}  // namespace

ControlServer::ControlServer(boost::asio::io_context& io, std::string path,
                             std::vector<ControlCommand> commands)
    : path_(std::move(path)), commands_(std::move(commands)), acceptor_(io) {
  commands_.push_back({"help", "help", "list the commands", [this](const auto&) {
                         std::string text;
                         for (const auto& command : commands_) {
                           text += command.syntax + "\t" + command.help + "\n";
                         }
                         return ControlReply{true, text};
                       }});

  const auto directory = std::filesystem::path(path_).parent_path();
  std::error_code dirError;
  if (!directory.empty()) std::filesystem::create_directories(directory, dirError);
  if (dirError) {
    throw std::runtime_error("cannot create control socket directory " + directory.string() +
                             ": " + dirError.message());
  }
  removeStaleSocket(io, path_);

  boost::system::error_code error;
  const boost::asio::local::stream_protocol::endpoint endpoint(path_);
  acceptor_.open(endpoint.protocol(), error);
  if (!error) acceptor_.bind(endpoint, error);
  if (!error) acceptor_.listen(boost::asio::socket_base::max_listen_connections, error);
  if (error) throw std::runtime_error("cannot listen on control socket " + path_ + ": " +
                                      error.message());
  // Owner and group only: the socket can reload and drain the daemon.
  ::chmod(path_.c_str(), 0660);
  acceptNext();
}

ControlServer::~ControlServer() {
  boost::system::error_code ignored;
  acceptor_.close(ignored);
  std::error_code alsoIgnored;
  std::filesystem::remove(path_, alsoIgnored);
}

std::string ControlServer::handleLine(const std::string& line) const {
  const auto words = splitWords(line);
  if (words.empty()) return formatReply({false, "empty request; try 'help'"});
  for (const auto& command : commands_) {
    if (command.name != words.front()) continue;
    try {
      return formatReply(command.handler({words.begin() + 1, words.end()}));
    } catch (const std::exception& e) {
      return formatReply({false, e.what()});
    }
  }
  return formatReply({false, "unknown command '" + words.front() + "'; try 'help'"});
}

void ControlServer::acceptNext() {
  acceptor_.async_accept([this](const boost::system::error_code& error,
                                boost::asio::local::stream_protocol::socket socket) {
    if (error == boost::asio::error::operation_aborted) return;
    if (!error) {
      std::make_shared<Session>(std::move(socket), *this)->start();
    } else {
      log::warning("control", "accept failed: ", error.message());
    }
    acceptNext();
  });
}

}  // namespace sbc::daemon
