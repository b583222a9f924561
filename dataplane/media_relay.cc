#include "dataplane/media_relay.h"

namespace sbc::dataplane {

const char* toString(Realm realm) noexcept {
  return realm == Realm::access ? "access" : "core";
}

const char* toString(DropReason reason) noexcept {
  switch (reason) {
    case DropReason::noFlow: return "no_flow";
    case DropReason::sourceNotAllowed: return "source_not_allowed";
    case DropReason::malformed: return "malformed";
    case DropReason::notUdp: return "not_udp";
    case DropReason::txFull: return "tx_full";
    case DropReason::wrongVlan: return "wrong_vlan";
    case DropReason::count: break;
  }
  return "unknown";
}

}  // namespace sbc::dataplane
