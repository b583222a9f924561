#pragma once
// Real-time scheduling for a thread that must answer within milliseconds however busy the
// machine is (sbcd's signaling thread: sip.realtime_priority).

#include <string>

namespace sbc::common {

// Puts the calling thread under SCHED_FIFO at `priority` (1..99); threads it creates after
// this would inherit it (pthread's default), so such a thread creates none. Returns "" when
// done, else why not (for the log: the error and what grants the right).
std::string runCallingThreadRealtime(int priority);

}  // namespace sbc::common
