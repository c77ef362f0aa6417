// The overlay's packet filter and NAT, as one nftables table (`table ip loom`) that is
// replaced atomically whenever it changes:
//   - only known nodes may send VXLAN: UDP to the VXLAN port from an address not in
//     the `nodes` set is dropped (input hook, before the socket sees it);
//   - egress masquerade: packets from the cluster CIDR to anything outside it leave
//     with the node's address (postrouting); pod-to-pod traffic is never NATed.
// The table stays when loomd stops or restarts (traffic keeps flowing); Remove() is
// for an uninstall.
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>

#include "absl/status/status.h"
#include "common/net/ip.h"

namespace loom::overlay {

inline constexpr char kNftTable[] = "loom";

struct FirewallRules {
  uint16_t vxlan_port = 4789;
  std::set<net::Ipv4Address> nodes;  // every node's underlay address, ours included
  net::Ipv4Prefix cluster_cidr;
  bool masquerade = true;
  // The node-local DNS address: its queries and answers skip connection tracking (as
  // NodeLocal DNSCache does), so no conntrack entry per query and no conntrack races.
  std::optional<net::Ipv4Address> dns_ip;
  uint16_t dns_port = 53;
  friend bool operator==(const FirewallRules&, const FirewallRules&) = default;
};

// The `nft -f` script that replaces the table with `rules` in one transaction. The
// table carries the comment `loom <RulesetTag>`, so that a restarted loomd can tell the
// kernel already holds these rules and leave them alone.
std::string RenderNftScript(const FirewallRules& rules);
// A digest of the rules (16 hex digits).
std::string RulesetTag(const FirewallRules& rules);

class Firewall {
 public:
  virtual ~Firewall() = default;
  // Makes the kernel's rules equal `rules`; no-op when they are already applied (by
  // this process or, as the table's tag shows, by an earlier one).
  virtual absl::Status Apply(const FirewallRules& rules) = 0;
  virtual absl::Status Remove() = 0;
  // Rule sets written to the kernel so far (zero after a restart with no change).
  virtual uint64_t writes() const = 0;
};

}  // namespace loom::overlay
