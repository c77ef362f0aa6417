// Loom's cgroup2 directory: the cgroup on which the socket load-balancing programs are
// attached, and under which the runtime places each container (<dir>/<id>), so that
// every container's sockets see service VIPs translated at connect().
//
// The host's cgroup2 hierarchy is found in /proc/mounts (on a hybrid host, the
// controller-less one beside the v1 controllers, e.g. /sys/fs/cgroup/unified); when
// the host has none, loomd mounts one under its run dir.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "common/net/netns.h"

namespace loom::agent {

// The mount point of the first cgroup2 filesystem in `proc_mounts` (the text of
// /proc/mounts, octal escapes such as \040 decoded), or "" when there is none.
std::string FindCgroup2Mount(std::string_view proc_mounts);

struct Cgroup2Dir {
  std::string dir;      // Loom's cgroup: <mount>/loom, or the --cgroup2-dir given
  std::string mounted;  // the cgroup2 mount point loomd made ("" when the host had one)
};

// The directory from `flag` when given (it must be inside a cgroup2 mount; created if
// missing), else <host cgroup2 mount>/loom, mounting cgroup2 at <run_dir>/cgroup2 when
// the host has none. `proc_mounts_path` is /proc/mounts outside tests.
absl::StatusOr<Cgroup2Dir> ResolveLoomCgroup2(const std::string& flag, const std::string& run_dir,
                                              const std::string& proc_mounts_path = "/proc/mounts");

// Removes Loom's cgroup directory when it holds no process and no child, and unmounts
// <run_dir>/cgroup2 when loomd had mounted it. A busy cgroup is an error naming it.
absl::Status RemoveLoomCgroup2(const Cgroup2Dir& cgroup);

// The network namespaces of the processes in cgroup `dir` and below, one handle each
// (where the socket programs' sockets live: every pod has its own). Processes that
// exit while it reads are skipped.
absl::StatusOr<std::vector<net::NetnsFd>> NetnsOfCgroupTree(const std::string& dir);

}  // namespace loom::agent
