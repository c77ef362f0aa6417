// `loomd --uninstall`: removes what loomd put in the kernel of this node (its network
// namespace) and on its filesystems, for a node leaving Loom:
//   - the service load balancer: tc_lb filters on every interface (and the clsact
//     qdisc of Loom's pod veths), the cgroup attachments, every pin under --bpffs-dir
//     and the directory, Loom's cgroup2 directory (when empty) and a cgroup2 mount
//     loomd made under --run-dir;
//   - the overlay: the loom.<vni> device (its neighbours and FDB go with it), routes
//     with Loom's protocol (76), the `ip loom` nftables table;
//   - the folders containers' cgroups live in (--cgroup-root, per v1 controller and
//     on cgroup2), when no container is left in them.
// Store state (the node key, subnet lease, pods) is left: it expires with the lease.
// Run it with loomd stopped, with the flags loomd ran with.
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "agent/daemon/config.h"

namespace loom::agent {

// Removes everything listed above; keeps going after an error and returns the first.
// `removed` lists what was removed, for the operator.
absl::Status Uninstall(const LoomdConfig& config, std::vector<std::string>* removed);

}  // namespace loom::agent
