// sbcctl: sends one command to sbcd's control socket and prints the reply.
// Exit status: 0 when sbcd answered "ok", 1 when it answered an error, 2 when unreachable.

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>

namespace {

constexpr const char* kDefaultSocket = "/run/sbc/sbcd.sock";

int usage() {
  std::fputs(
      "usage: sbcctl [-s SOCKET] COMMAND [ARGS...]\n"
      "  SOCKET defaults to /run/sbc/sbcd.sock; 'sbcctl help' lists the commands\n",
      stderr);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::string socketPath = kDefaultSocket;
  int first = 1;
  if (argc > 2 && std::strcmp(argv[1], "-s") == 0) {
    socketPath = argv[2];
    first = 3;
  }
  if (first >= argc) return usage();

  std::string request;
  for (int i = first; i < argc; ++i) {
    if (!request.empty()) request += ' ';
    request += argv[i];
  }
  request += '\n';

  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (socketPath.size() >= sizeof address.sun_path) {
    std::fprintf(stderr, "sbcctl: socket path too long: %s\n", socketPath.c_str());
    return 2;
  }
  std::memcpy(address.sun_path, socketPath.c_str(), socketPath.size() + 1);

  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    std::fprintf(stderr, "sbcctl: cannot connect to %s: %s\n", socketPath.c_str(),
                 std::strerror(errno));
    if (fd >= 0) ::close(fd);
    return 2;
  }
  if (::write(fd, request.data(), request.size()) != static_cast<ssize_t>(request.size())) {
    std::fprintf(stderr, "sbcctl: cannot send to %s: %s\n", socketPath.c_str(),
                 std::strerror(errno));
    ::close(fd);
    return 2;
  }

  std::string reply;
  char buffer[4096];
  for (ssize_t got; (got = ::read(fd, buffer, sizeof buffer)) > 0;) reply.append(buffer, got);
  ::close(fd);

  std::fputs(reply.c_str(), stdout);
  return reply.rfind("ok\n", 0) == 0 ? 0 : 1;
}
