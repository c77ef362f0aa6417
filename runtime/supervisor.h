// The Supervisor starts, watches, stops, execs into and removes containers on one node.
// Each container has a bundle folder <state-dir>/<id>/ (config.json, running.json,
// exit.json, the overlay's upper/work dirs, default logs) and a `loom-shim` process that
// is its parent (see shim.h). Containers do not depend on the Supervisor object or its
// process: a new Supervisor over the same state dir adopts every container it finds.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "runtime/cgroups.h"
#include "runtime/container.h"
#include "runtime/fs_util.h"
#include "runtime/image_store.h"

namespace loom::runtime {

struct SupervisorOptions {
  std::string state_dir;    // container bundles
  std::string volumes_dir;  // named volumes
  std::string cgroup_root = "/sys/fs/cgroup";
  std::string cgroup_parent = "loom";
  // A cgroup2 folder every container process (PID 1 and exec'd ones) also joins, as
  // <cgroup2_dir>/<id>, removed with the container: where the load balancer's socket
  // programs are attached. With v2 limits under the same folder it is the limits'
  // cgroup; with v1 limits the processes are in both. Empty: none.
  std::string cgroup2_dir;
  // The loom-shim binary; empty: "loom-shim" beside this executable, else in LOOM_BIN_DIR.
  std::string shim_path;
  absl::Duration start_timeout = absl::Seconds(10);
};

class Supervisor {
 public:
  // Creates the folders and adopts the containers found in the state dir: running ones
  // (their shim alive, checked by pid and start time) and exited ones alike.
  static absl::StatusOr<std::unique_ptr<Supervisor>> Open(SupervisorOptions options,
                                                          ImageStore* images);
  ~Supervisor();

  // Creates and starts a container; returns once its command has been exec'd (or with
  // the reason it could not be: bad spec, unknown image, a failed mount, exec error...).
  // Nothing is left behind on failure.
  absl::StatusOr<ContainerStatus> Run(const ContainerSpec& spec);
  absl::StatusOr<ContainerStatus> Inspect(std::string_view id);
  std::vector<ContainerStatus> List();
  // Waits until the container has exited. DeadlineExceeded if it is still running.
  absl::StatusOr<ContainerStatus> Wait(std::string_view id, absl::Duration timeout);
  // SIGTERM to the container's PID 1, SIGKILL after `grace`; returns the final status.
  // OK (and no signal) if it has already exited.
  absl::StatusOr<ContainerStatus> Stop(std::string_view id, absl::Duration grace);
  // Runs a command inside a running container: its namespaces, cgroups, root, working
  // directory, user and environment. Output is captured; the process is killed after
  // `timeout` (DeadlineExceeded).
  absl::StatusOr<ExecResult> Exec(std::string_view id, const ExecSpec& spec,
                                  absl::Duration timeout = absl::Seconds(30));
  // Removes an exited container: its cgroups, bundle (upper layer, default logs) and
  // record. A running one is FailedPrecondition unless `force`, which kills it first.
  absl::Status Remove(std::string_view id, bool force = false);

  // Named volumes.
  std::vector<std::string> ListVolumes() const;
  // FailedPrecondition while a container that mounts it exists.
  absl::Status RemoveVolume(std::string_view name);

  int cgroup_version() const { return cgroups_.version(); }

  struct Container;  // internal

 private:
  Supervisor(SupervisorOptions options, ImageStore* images, CgroupDriver cgroups)
      : options_(std::move(options)), images_(images), cgroups_(std::move(cgroups)) {}
  absl::Status Adopt(const std::string& id, UniqueFd shim_pidfd = UniqueFd());
  absl::StatusOr<std::shared_ptr<Container>> Find(std::string_view id);
  ContainerStatus StatusOf(Container& c);
  ContainerStatus StatusOfLocked(Container& c);
  absl::Status Cleanup(const std::string& id, const std::string& bundle,
                       const std::vector<std::string>& joined_cgroups);
  // <cgroup2_dir>/<id> when it is not already the container's (v2) limits cgroup, else "".
  std::string Cgroup2DirFor(const std::string& id) const;
  absl::StatusOr<std::string> ShimPath() const;

  SupervisorOptions options_;
  ImageStore* images_;
  CgroupDriver cgroups_;
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::shared_ptr<Container>> containers_ ABSL_GUARDED_BY(mu_);
};

}  // namespace loom::runtime
