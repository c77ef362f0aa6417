// Per-container cgroups: cgroup v2 when a cgroup2 hierarchy with controllers is mounted
// (at <root> or <root>/unified), else the v1 controllers memory, cpu and pids under
// <root>/<controller>. A container's cgroups are <...>/<parent>/<id>.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace loom::runtime {

struct CgroupLimits {
  double cpus = 0;           // 0: unlimited
  int64_t memory_bytes = 0;  // 0: unlimited
  int64_t pids = 0;          // 0: unlimited
};

struct ContainerCgroup {
  int version = 1;
  std::vector<std::string> dirs;  // one per v1 controller, or the single v2 directory
  // The file whose "oom_kill N" line counts OOM kills (v1 memory.oom_control, v2 memory.events).
  std::string oom_file;
};

class CgroupDriver {
 public:
  // Detects the cgroup version under `root` (e.g. /sys/fs/cgroup). `parent` is the folder
  // name every container cgroup lives in (e.g. "loom").
  static absl::StatusOr<CgroupDriver> Detect(std::string root, std::string parent);

  // A v2 driver whose container cgroups are <folder>/<id>; `folder` must be inside
  // `v2`'s cgroup2 mount (InvalidArgument otherwise).
  static absl::StatusOr<CgroupDriver> ForV2Folder(const CgroupDriver& v2, const std::string& folder);

  // Where container `id`'s cgroups are (whether or not they exist).
  ContainerCgroup PathsFor(const std::string& id) const;
  // Creates them and writes the limits. AlreadyExists if a directory is already there.
  absl::StatusOr<ContainerCgroup> Create(const std::string& id, const CgroupLimits& limits) const;
  // SIGKILLs whatever is still inside, waits (bounded) for it to go and removes the
  // directories. OK when they do not exist.
  absl::Status Remove(const ContainerCgroup& cgroup) const;

  int version() const { return version_; }

 private:
  CgroupDriver(int version, std::string base, std::string parent)
      : version_(version), base_(std::move(base)), parent_(std::move(parent)) {}
  int version_;
  std::string base_;  // v2: the cgroup2 mount; v1: the folder holding the controllers
  std::string parent_;
};

// How many OOM kills the "oom_kill N" line of `oom_file` reports (0 if it has none).
int64_t ReadOomKillCount(const std::string& oom_file);

}  // namespace loom::runtime
