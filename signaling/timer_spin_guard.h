#pragma once
// Sofia-SIP's su_root turns the time to its next timer into an epoll timeout in whole
// milliseconds, truncated: while that timer is less than 1 ms away it polls with timeout
// 0, turn after turn, until the timer is due. With nta's transaction timers that is most
// of the signaling thread's loop turns (about 470 turns per call at 1,000 calls/s, 99 % of
// them within 5 microseconds of the one before; docs/performance.md). Called at the top of
// every turn (su_root's prepoll hook), the guard notices a turn that follows the previous
// one too closely to have done any work, and then blocks in su_root's own epoll set for at
// most kMaxWait: any event wakes it at once (level-triggered, so su_root still sees it),
// and a timer fires at most kMaxWait late. Signaling thread only.

#include <chrono>
#include <cstdint>
#include <optional>

namespace sbc::signaling {

class TimerSpinGuard {
 public:
  static constexpr std::chrono::microseconds kSpinGap{5};
  static constexpr std::chrono::microseconds kMaxWait{500};

  // epollFd: su_root's epoll descriptor (findEpollWatching).
  explicit TimerSpinGuard(int epollFd) : epollFd_(epollFd) {}

  // The top of one loop turn.
  void onTurn();

  // Turns that blocked instead of spinning, since the start.
  std::uint64_t waits() const { return waits_; }

  // A guard for the loop whose epoll set holds `fd` (a descriptor registered with that
  // su_root); nullopt when there is none.
  static std::optional<TimerSpinGuard> forLoopWatching(int fd) {
    const auto epollFd = findEpollWatching(fd);
    if (!epollFd) return std::nullopt;
    return TimerSpinGuard(*epollFd);
  }

  // The epoll descriptor of this process whose interest list holds `fd` (Sofia-SIP hands
  // out none of its descriptors: su_root's is found by a descriptor registered with it).
  static std::optional<int> findEpollWatching(int fd);

 private:
  int epollFd_;
  std::chrono::steady_clock::time_point lastTurn_{};
  std::uint64_t waits_ = 0;
};

}  // namespace sbc::signaling
