// The pod's L3 attachment, without a bridge (as Calico and Cilium do):
//   container: <ifname> holds ip/32, a permanent neighbour for the link-local gateway
//              169.254.1.1 -> the host veth's MAC, and a default route via it (onlink);
//   host:      the host veth <HostVethName> is up, with a /32 route to the pod.
// Nothing here keeps state: DEL finds the host veth by name, and deleting it removes
// the container end, the route and the neighbour with it.
#pragma once

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "common/net/ip.h"
#include "common/net/netns.h"

namespace loom::cni {

inline constexpr char kPodGateway[] = "169.254.1.1";

// "lm" + 11 hex digits of a hash of containerID and ifname: 13 characters, stable.
std::string HostVethName(std::string_view container_id, std::string_view ifname);

struct PodLink {
  std::string host_veth;
  std::string host_mac;
  std::string pod_mac;
  int mtu = 0;
};

struct PodLinkSpec {
  std::string host_veth;
  std::string ifname;
  net::Ipv4Address ip;
  int mtu = 1450;
};

// AlreadyExists when `ifname` already exists in the container namespace.
absl::Status EnsureNoInterface(const net::NetnsFd& netns, const std::string& ifname);

// Creates the veth and programs both sides. On failure the veth is deleted again.
absl::StatusOr<PodLink> SetUpPodLink(const net::NetnsFd& netns, const PodLinkSpec& spec);

// Deletes the host veth (with its peer) if it exists.
absl::Status DeleteHostVeth(const std::string& host_veth);

// Verifies what SetUpPodLink made; FailedPrecondition naming the first drift.
absl::Status CheckPodLink(const net::NetnsFd& netns, const PodLinkSpec& spec);

}  // namespace loom::cni
