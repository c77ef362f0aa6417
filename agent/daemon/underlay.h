// The node's underlay address: the first IPv4 address of --underlay-iface, by default
// the interface of the default route.
#pragma once

#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace loom::agent {

// The interface of the IPv4 default route in /proc/net/route text (the lowest metric
// wins). NotFound when there is none.
absl::StatusOr<std::string> DefaultRouteInterface(std::string_view proc_net_route);

// The first IPv4 address of `iface` (getifaddrs).
absl::StatusOr<std::string> FirstIpv4Address(std::string_view iface);

// `iface`, or the default route's interface when empty (read from `proc_net_route_path`),
// and its first IPv4 address. Errors ask for --underlay-iface when guessing fails.
struct Underlay {
  std::string iface;
  std::string ip;
};
absl::StatusOr<Underlay> ResolveUnderlay(std::string_view iface,
                                         const std::string& proc_net_route_path =
                                             "/proc/net/route");

}  // namespace loom::agent
