#pragma once
// Steers every UDP datagram addressed to one local address and port range to one socket,
// through a BPF sk_lookup program attached to the calling thread's network namespace
// (Linux 5.9 or later; loading and attaching need CAP_BPF and CAP_NET_ADMIN, or
// CAP_SYS_ADMIN). The socket driver's `sk_lookup` mode uses it so that 10,000 calls do not
// need 40,000 descriptors: the kernel still finds a socket for each datagram, but the
// program hands it the realm's one socket for the whole media range, and IP_ORIGDSTADDR
// tells which port the datagram was sent to.
//
// The program is detached when the object is destroyed: its BPF link is a descriptor, so
// the kernel also detaches it when the process dies, whatever way it ends.

#include <cstdint>

#include "policy/ip.h"

namespace sbc::dataplane {

class PortSteering {
 public:
  // Steers datagrams for `address`, ports portMin..portMax inclusive, to `socketFd` (a bound,
  // unconnected UDP socket of the same family). Throws std::system_error naming the step
  // that failed (e.g. EPERM without the capabilities).
  PortSteering(const policy::IpAddress& address, std::uint16_t portMin, std::uint16_t portMax,
               int socketFd);
  ~PortSteering();
  PortSteering(const PortSteering&) = delete;
  PortSteering& operator=(const PortSteering&) = delete;

 private:
  int socketMapFd_ = -1;
  int programFd_ = -1;
  int linkFd_ = -1;
};

}  // namespace sbc::dataplane
