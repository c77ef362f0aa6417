// The node's side of the VXLAN overlay (the flannel model): one `loom.<vni>` device
// (nolearning, local = the underlay address, MTU = underlay - 50) holding the .0/32 of
// the node's pod subnet, and for each remote node, in this order:
//   1. a permanent neighbour: its subnet's .0 -> its VTEP MAC,
//   2. an FDB entry (self, permanent): its VTEP MAC -> its underlay address,
//   3. an onlink route: its subnet via .0 dev loom.<vni>, protocol kRouteProtocol;
// or, with direct routing and a peer on the underlay's own subnet, a plain route to its
// subnet via its underlay address.
//
// Each call diffs the wanted state against what the kernel lists and writes only the
// difference, so a restart with nothing changed writes nothing, and whatever loomd owns
// but no longer wants (entries on its device, routes with its protocol) is removed.
// Not thread-safe: one caller at a time.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "common/net/ip.h"
#include "overlay/overlay_kernel.h"

namespace loom::overlay {

// The rtm_protocol that marks routes loomd's overlay owns (not in iproute2's rt_protos;
// `ip route show proto 76`).
inline constexpr uint8_t kRouteProtocol = 76;
// VXLAN over IPv4: outer IPv4 (20) + UDP (8) + VXLAN (8) + inner Ethernet (14).
inline constexpr uint32_t kVxlanOverhead = 50;

// "loom.<vni>".
std::string DeviceName(uint32_t vni);
// A stable, locally administered unicast MAC for a node's VTEP (FNV-1a of the name).
net::MacAddress VtepMac(std::string_view node_name);

struct DeviceConfig {
  uint32_t vni = 1;
  uint16_t port = 4789;
  std::string underlay_iface;
  net::Ipv4Address underlay_ip;
  net::MacAddress mac;
  net::Ipv4Prefix pod_cidr;  // this node's subnet
};

struct Peer {
  std::string node;
  net::Ipv4Prefix pod_cidr;
  net::Ipv4Address underlay_ip;
  net::MacAddress vtep_mac;
  friend bool operator==(const Peer&, const Peer&) = default;
};

struct ReconcilerOptions {
  // A plain route via the peer's underlay address when it is on our underlay subnet.
  bool direct_routing = false;
};

class VxlanReconciler {
 public:
  VxlanReconciler(OverlayKernel* kernel, ReconcilerOptions options = {});

  // Creates the device (or recreates it when VNI, port, local address, underlay link or
  // learning drifted), sets MTU, MAC and up, and leaves exactly the .0/32 of the pod
  // subnet on it. Must succeed before SetPeers.
  absl::Status EnsureDevice(const DeviceConfig& config);
  // Makes the kernel hold exactly the entries for `peers` (the local node excluded by
  // the caller). Removals first (route, FDB, neighbour), then additions in order.
  // A peer that fails is skipped (its partial entries rolled back) and reported in the
  // returned status; the others are still programmed.
  absl::Status SetPeers(const std::vector<Peer>& peers);
  // Removes every peer entry and the device (for an uninstall).
  absl::Status RemoveAll();

  // Kernel writes (creates, replaces, deletes) since construction.
  uint64_t writes() const { return writes_; }
  // Peers whose entries are in place after the last SetPeers.
  int peers_programmed() const { return peers_programmed_; }
  // Wall time spent writing the last newly added peer's entries (zero when none).
  absl::Duration last_peer_program_time() const { return last_peer_time_; }
  const std::string& device() const { return device_; }
  uint32_t mtu() const { return mtu_; }

 private:
  absl::Status Write(absl::Status status);
  bool Direct(const Peer& peer) const;
  net::Route WantedRoute(const Peer& peer) const;

  OverlayKernel* const kernel_;
  const ReconcilerOptions options_;
  std::string device_;
  int device_index_ = 0;
  int underlay_index_ = 0;
  std::optional<net::Ipv4Prefix> underlay_subnet_;
  uint32_t mtu_ = 0;
  uint64_t writes_ = 0;
  int peers_programmed_ = 0;
  absl::Duration last_peer_time_;
};

}  // namespace loom::overlay
