// Node pod subnets, leased in the store as flannel does:
//   /loom/subnets/<cidr>  ->  {"node": ..., "underlayIP": ..., "claimed": RFC 3339}
// A node first looks for its own claim (same name, same subnet across restarts), else
// claims a random free subnet of the cluster CIDR with a compare-and-swap (the key
// must be absent), retrying on conflicts.
//
// Subnet keys carry no lease of their own: they belong to the node whose name they
// hold, and a SubnetSweeper (run by every loomd) deletes a claim once its node's key
// (/loom/nodes/<node>, bound to the node's lease) has been gone for longer than the
// grace period, with a transaction that checks the node key is still absent. So a
// node that restarts within the grace keeps its subnet; a dead node's subnet is freed.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "agent/store/store.h"
#include "common/net/ip.h"

namespace loom::agent {

inline constexpr std::string_view kSubnetsPrefix = "/loom/subnets/";
inline constexpr std::string_view kOverlayNodesPrefix = "/loom/nodes/";

// "/loom/subnets/10.244.1.0/24".
std::string SubnetKey(const net::Ipv4Prefix& subnet);

struct SubnetAllocatorOptions {
  net::Ipv4Prefix cluster_cidr;
  int node_cidr_size = 24;
  int max_attempts = 10;
  // Returns a number in [0, n); default: a seeded std::mt19937_64.
  std::function<uint64_t(uint64_t n)> random;
  std::function<absl::Time()> now = [] { return absl::Now(); };
};

class SubnetAllocator {
 public:
  SubnetAllocator(store::Store* store, SubnetAllocatorOptions options);

  // The node's subnet: its existing claim, else a newly claimed free one.
  // ResourceExhausted naming the cluster CIDR when none is free; Aborted after
  // max_attempts lost races.
  absl::StatusOr<net::Ipv4Prefix> Acquire(std::string_view node, std::string_view underlay_ip);
  // Re-asserts a claim this node holds: OK when the key names the node; writes it back
  // (compare-and-swap on absence) when a sweeper freed it while this node was cut off;
  // FailedPrecondition naming the new owner when another node took it meanwhile.
  absl::Status EnsureClaim(std::string_view node, std::string_view underlay_ip,
                           const net::Ipv4Prefix& subnet);

 private:
  std::string ClaimValue(std::string_view node, std::string_view underlay_ip) const;

  store::Store* const store_;
  SubnetAllocatorOptions options_;
};

// Frees the subnets of nodes gone longer than `grace`.
class SubnetSweeper {
 public:
  SubnetSweeper(store::Store* store, absl::Duration grace) : store_(store), grace_(grace) {}
  // One pass at time `now`: notes claims whose node key is missing, deletes those
  // missing since at least `grace`. Returns how many subnets it freed.
  absl::StatusOr<int> SweepOnce(absl::Time now);

 private:
  store::Store* const store_;
  const absl::Duration grace_;
  std::map<std::string, absl::Time> missing_since_;  // subnet key -> first seen orphaned
};

}  // namespace loom::agent
