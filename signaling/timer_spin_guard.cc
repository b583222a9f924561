#include "signaling/timer_spin_guard.h"

#include <sys/epoll.h>
#include <unistd.h>

#include <cerrno>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <system_error>

#include "common/socket_address.h"

namespace sbc::signaling {

void TimerSpinGuard::onTurn() {
  auto now = std::chrono::steady_clock::now();
  if (now - lastTurn_ < kSpinGap) {
    epoll_event ready{};
    const timespec wait{0, std::chrono::nanoseconds(kMaxWait).count()};
    if (::epoll_pwait2(epollFd_, &ready, 1, &wait, nullptr) < 0 && errno == ENOSYS) {
      ::epoll_wait(epollFd_, &ready, 1, 1);  // kernels before 5.11: 1 ms
    }
    ++waits_;
    now = std::chrono::steady_clock::now();
  }
  lastTurn_ = now;
}

std::optional<int> TimerSpinGuard::findEpollWatching(int fd) {
  for (const int candidate : common::openDescriptors()) {
    const std::string name = std::to_string(candidate);
    std::error_code linkError;
    const auto target = std::filesystem::read_symlink("/proc/self/fd/" + name, linkError);
    if (linkError || target.native() != "anon_inode:[eventpoll]") continue;
    // fdinfo of an epoll descriptor: one "tfd: N events: ..." line per watched descriptor.
    std::ifstream info("/proc/self/fdinfo/" + name);
    std::string line;
    while (std::getline(info, line)) {
      std::istringstream fields(line);
      std::string key;
      int watched = -1;
      if (fields >> key >> watched && key == "tfd:" && watched == fd) return candidate;
    }
  }
  return std::nullopt;
}

}  // namespace sbc::signaling
