// DELs that could not reach loomd, kept on disk until loomd replays them at start
// (as Cilium's plugin does): one file <dir>/<containerID>.<ifname>.json holding
// {"containerID", "ifname"}, written under flock(<dir>/lock), at most 256 entries.
#pragma once

#include <string>

#include "absl/status/status.h"

namespace loom::cni {

inline constexpr char kDefaultDelQueueDir[] = "/var/lib/loom/cni-del-queue";
inline constexpr int kDelQueueLimit = 256;

// ResourceExhausted when the queue already holds kDelQueueLimit entries.
absl::Status QueueDel(const std::string& dir, const std::string& container_id,
                      const std::string& ifname);

}  // namespace loom::cni
