#pragma once
// Builds the media relay the configuration asks for: `socket` (default) or `dpdk`.

#include <memory>
#include <string>

#include "config/config.h"
#include "dataplane/media_relay.h"
#include "dataplane/relay_settings.h"

namespace sbc::daemon {

dataplane::RelaySettings relaySettings(const config::Config& config);

// Throws std::runtime_error naming what failed (EAL, a port, a socket).
std::shared_ptr<dataplane::MediaRelay> makeMediaRelay(const config::Config& config);

// "media.access=127.0.0.10:10000-32767 media.core=..." for the start-up line.
std::string describeMedia(const config::Config& config);

}  // namespace sbc::daemon
