// The per-container shim, `loom-shim BUNDLE` (run by the Supervisor with the start
// report pipe on fd 3). It is the parent of the container's PID 1 and holds nothing but
// that child and its output pipes:
//   1. clones the container process into new mount, PID, UTS, IPC (and network) namespaces;
//   2. puts it in its cgroups, lets it set itself up (ContainerInit) and exec the command;
//   3. writes BUNDLE/running.json (both pids and their start times) and reports "ok" (or
//      "error: <why>") on fd 3;
//   4. copies stdout and stderr into size-bounded log files;
//   5. when the command exits, writes BUNDLE/exit.json (code, signal, OOM kill) and exits.
// Because all state is in files and the shim outlives its supervisor, a new Supervisor
// adopts a running container by reading running.json and checking the pids.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/json.h"

namespace loom::runtime {

struct ShimMount {
  std::string source;       // host path
  std::string destination;  // clean path relative to the container root
  bool read_only = false;
};

// Everything the shim needs, resolved by the Supervisor; BUNDLE/config.json.
struct ShimConfig {
  std::string id;
  std::string image_digest;
  std::string lower_dir;  // the image rootfs
  std::string upper_dir;
  std::string work_dir;
  std::string rootfs;     // where the overlay is mounted (inside the container's mount ns)
  std::vector<std::string> argv;
  std::vector<std::string> env;
  std::string cwd;
  std::string hostname;
  uid_t uid = 0;
  gid_t gid = 0;
  bool read_only_root = false;
  std::vector<ShimMount> mounts;
  std::string netns_path;
  std::vector<std::string> cgroup_dirs;
  std::string oom_file;
  std::string stdout_log;
  std::string stderr_log;
  int64_t log_max_bytes = 0;
};

Json ShimConfigToJson(const ShimConfig& c);
absl::StatusOr<ShimConfig> ShimConfigFromJson(const Json& j);

// BUNDLE/running.json
struct RunningRecord {
  pid_t shim_pid = 0;
  unsigned long long shim_start = 0;  // ProcessStartTime
  pid_t pid = 0;
  unsigned long long pid_start = 0;
  absl::Time started_at;
};
// BUNDLE/exit.json
struct ExitRecord {
  int exit_code = -1;
  int signal = 0;
  bool oom_killed = false;
  absl::Time finished_at;
};
Json RunningRecordToJson(const RunningRecord& r);
absl::StatusOr<RunningRecord> RunningRecordFromJson(const Json& j);
Json ExitRecordToJson(const ExitRecord& r);
absl::StatusOr<ExitRecord> ExitRecordFromJson(const Json& j);

inline constexpr int kShimReportFd = 3;

// The shim's main: returns the process exit code.
int RunShim(const std::string& bundle, int report_fd);

// Keeps Docker's default capability set (chown, dac_override, fowner, fsetid, kill,
// setgid, setuid, setpcap, setfcap, net_bind_service, net_raw, sys_chroot, audit_write)
// in the bounding set and drops the rest, so that a root command cannot mount, load
// modules, make device nodes or change sysctls. Only syscalls: safe after fork.
bool DropCapabilities();

// Inside the new namespaces, before exec: mounts, pivot_root, /proc, /dev, /sys, user
// mounts, hostname, read-only root, credentials and working directory. Exposed for the
// shim only.
absl::Status ContainerInit(const ShimConfig& c);

}  // namespace loom::runtime
