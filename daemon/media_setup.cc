#include "daemon/media_setup.h"

#include <stdexcept>

#include "dataplane/dpdk/dpdk_relay.h"
#include "dataplane/socket/socket_relay.h"

namespace sbc::daemon {
namespace {

dataplane::RealmMedia realmMedia(const config::MediaRange& range) {
  const auto address = policy::IpAddress::parse(range.address);
  // config/ validated the address; a failure here is a bug, not an input problem.
  if (!address) throw std::logic_error("media address not validated: " + range.address);
  dataplane::RealmMedia media;
  media.address = *address;
  media.portMin = range.portMin;
  media.portMax = range.portMax;
  if (!range.gateway.empty()) media.gateway = policy::IpAddress::parse(range.gateway);
  for (const auto& text : range.onLink) {
    if (const auto prefix = policy::IpPrefix::parse(text)) media.onLink.push_back(*prefix);
  }
  media.vlan = range.vlan;
  return media;
}

}  // namespace

dataplane::RelaySettings relaySettings(const config::Config& config) {
  dataplane::RelaySettings settings;
  settings.realms[static_cast<std::size_t>(dataplane::Realm::access)] =
      realmMedia(config.access.media);
  settings.realms[static_cast<std::size_t>(dataplane::Realm::core)] =
      realmMedia(config.core.media);
  settings.dscp = config.media.dscp;
  settings.quarantine = std::chrono::milliseconds(config.media.quarantineMs);
  settings.mediaTimeout = std::chrono::seconds(config.media.timeoutS);
  settings.socketPorts = config.media.socketPorts == config::SocketPorts::skLookup
                             ? dataplane::SocketPorts::skLookup
                             : dataplane::SocketPorts::perPort;
  settings.kernelForwarding = config.media.kernelForwarding;
  return settings;
}

std::shared_ptr<dataplane::MediaRelay> makeMediaRelay(const config::Config& config) {
  const auto settings = relaySettings(config);
  if (config.media.driver == config::MediaDriver::socket) {
    return dataplane::makeSocketRelay(settings);
  }
  dataplane::DpdkSettings dpdk;
  dpdk.ealArgs = config.dpdk.ealArgs;
  for (const auto& port : config.dpdk.ports) {
    dpdk.ports.push_back(
        {port.device, port.realm == "core" ? dataplane::Realm::core : dataplane::Realm::access});
  }
  return dataplane::makeDpdkRelay(settings, dpdk);
}

std::string describeMedia(const config::Config& config) {
  const auto range = [](const config::MediaRange& media) {
    return media.address + ":" + std::to_string(media.portMin) + "-" +
           std::to_string(media.portMax);
  };
  std::string driver = config::toString(config.media.driver);
  if (config.media.driver == config::MediaDriver::socket) {
    driver += std::string(" media.socket_ports=") + config::toString(config.media.socketPorts);
    if (config.media.kernelForwarding) driver += " media.kernel_forwarding=true";
  }
  return "media.driver=" + driver + " media.access=" + range(config.access.media) + " media.core=" +
         range(config.core.media);
}

}  // namespace sbc::daemon
