// TimerSpinGuard on a real epoll set: it finds the epoll descriptor that watches a given
// descriptor, blocks when loop turns come too close together with nothing ready, and never
// holds up a turn when something is ready.

#include "signaling/timer_spin_guard.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include <gtest/gtest.h>

namespace sbc::signaling {
namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

// An epoll set watching one eventfd, both closed at the end.
struct Loop {
  Loop() {
    epoll_event event{};
    event.events = EPOLLIN;
    ::epoll_ctl(epollFd, EPOLL_CTL_ADD, eventFd, &event);
  }
  ~Loop() {
    ::close(eventFd);
    ::close(epollFd);
  }
  int epollFd = ::epoll_create1(EPOLL_CLOEXEC);
  int eventFd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
};

// Proves: the epoll descriptor found is the one whose interest list holds the descriptor
// asked for, not another epoll set; a descriptor no epoll set watches finds none.
TEST(TimerSpinGuard, FindsTheEpollSetWatchingADescriptor) {
  Loop other;
  Loop loop;
  ASSERT_GE(loop.epollFd, 0);
  EXPECT_EQ(TimerSpinGuard::findEpollWatching(loop.eventFd), loop.epollFd);
  EXPECT_EQ(TimerSpinGuard::findEpollWatching(other.eventFd), other.epollFd);
  const int unwatched = ::eventfd(0, EFD_CLOEXEC);
  EXPECT_FALSE(TimerSpinGuard::findEpollWatching(unwatched).has_value());
  ::close(unwatched);
  EXPECT_TRUE(TimerSpinGuard::forLoopWatching(loop.eventFd).has_value());
}

// Proves: turns that follow each other at once, with nothing ready, each wait up to
// kMaxWait in the epoll set instead of spinning.
TEST(TimerSpinGuard, QuickTurnsWithNothingReadyWait) {
  Loop loop;
  TimerSpinGuard guard(loop.epollFd);
  constexpr int kTurns = 20;
  const auto start = Clock::now();
  for (int i = 0; i < kTurns; ++i) guard.onTurn();
  const auto elapsed = Clock::now() - start;
  // Most turns wait; one the scheduler delays past kSpinGap (a loaded VM, ASan) need not:
  // CI once saw 18 of 19.
  EXPECT_GE(guard.waits(), static_cast<std::uint64_t>(kTurns / 2));
  EXPECT_GE(elapsed, static_cast<int>(guard.waits()) * TimerSpinGuard::kMaxWait * 9 / 10);
}

// Proves: when something is ready the wait returns at once (a thousand quick turns take a
// small part of what a thousand waits would), and su_root still finds the event (the
// guard's wait does not consume it).
TEST(TimerSpinGuard, ReadyEventsAreNotHeldUp) {
  Loop loop;
  const std::uint64_t one = 1;
  ASSERT_EQ(::write(loop.eventFd, &one, sizeof one), static_cast<ssize_t>(sizeof one));
  TimerSpinGuard guard(loop.epollFd);
  constexpr int kTurns = 1000;
  const auto start = Clock::now();
  for (int i = 0; i < kTurns; ++i) guard.onTurn();
  const auto elapsed = Clock::now() - start;
  EXPECT_LT(elapsed, kTurns * TimerSpinGuard::kMaxWait / 2);
  epoll_event ready{};
  EXPECT_EQ(::epoll_wait(loop.epollFd, &ready, 1, 0), 1);
}

// Proves: turns spaced further apart than kSpinGap (a loop doing work) never wait.
TEST(TimerSpinGuard, SpacedTurnsDoNotWait) {
  Loop loop;
  TimerSpinGuard guard(loop.epollFd);
  for (int i = 0; i < 10; ++i) {
    guard.onTurn();
    std::this_thread::sleep_for(200us);
  }
  EXPECT_EQ(guard.waits(), 0u);
}

}  // namespace
}  // namespace sbc::signaling
