#include "common/realtime.h"

#include <pthread.h>
#include <sched.h>

#include <cerrno>
#include <cstring>

namespace sbc::common {

std::string runCallingThreadRealtime(int priority) {
  sched_param param{};
  param.sched_priority = priority;
  const int error = pthread_setschedparam(pthread_self(), SCHED_FIFO, &param);
  if (error == 0) return "";
  std::string why = std::strerror(error);
  if (error == EPERM) {
    why += " (needs CAP_SYS_NICE, or RLIMIT_RTPRIO of at least " + std::to_string(priority) +
           ": LimitRTPRIO= in a systemd unit)";
  }
  return why;
}

}  // namespace sbc::common
