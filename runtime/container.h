// What a container is: the spec a caller asks for, and the status the supervisor reports.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/json.h"

namespace loom::runtime {

struct MountSpec {
  enum class Type { kBind, kVolume };
  Type type = Type::kBind;
  // kBind: an absolute host path; kVolume: a volume name ([A-Za-z0-9][A-Za-z0-9_.-]*),
  // a folder under the supervisor's volumes dir, created on first use, kept after the
  // container is removed.
  std::string source;
  std::string destination;  // absolute path inside the container
  bool read_only = false;
};

// Docker's -v syntax: "/host/path:/path[:ro|:rw]" (bind) or "name:/path[:ro|:rw]" (volume).
absl::StatusOr<MountSpec> ParseMountSpec(std::string_view text);

struct ContainerSpec {
  std::string id;     // [A-Za-z0-9][A-Za-z0-9_.-]{0,63}, unique on the node
  std::string image;  // a name or digest known to the ImageStore
  // argv; empty: the image's Entrypoint + Cmd. argv[0] is looked up in the container's PATH.
  std::vector<std::string> command;
  std::vector<std::string> env;  // NAME=value, over the image's Env
  std::string workdir;           // empty: the image's WorkingDir, else "/"; created if missing
  std::string hostname;          // empty: the id's first 12 characters
  uid_t uid = 0;
  gid_t gid = 0;
  bool read_only_root = false;
  std::vector<MountSpec> mounts;
  double cpus = 0;            // CFS quota in cores; 0: unlimited
  int64_t memory_bytes = 0;   // 0: unlimited
  int64_t pids_limit = 0;     // 0: unlimited
  // An existing network namespace to join (how a CNI plugin's namespace is used); empty:
  // a new, empty one (loopback down).
  std::string netns_path;
  // stdout and stderr go to these files (empty: <state-dir>/<id>/stdout.log, and stderr to
  // the stdout file). Each file is rotated when it reaches log_max_bytes: the old content
  // moves to "<path>.1" (replacing it), so a log takes at most 2 x log_max_bytes.
  std::string stdout_log;
  std::string stderr_log;
  int64_t log_max_bytes = 10 << 20;
};

// InvalidArgument naming the first bad field.
absl::Status ValidateContainerSpec(const ContainerSpec& spec);
absl::Status ValidateContainerId(std::string_view id);
absl::Status ValidateVolumeName(std::string_view name);

enum class ContainerState {
  kRunning,
  kExited,
  // The shim died without recording an exit (killed from outside): the container's
  // processes are gone with it or are killed on removal.
  kLost,
};
std::string_view ContainerStateName(ContainerState state);

struct ContainerStatus {
  std::string id;
  std::string image_digest;
  ContainerState state = ContainerState::kRunning;
  pid_t pid = 0;          // the container's PID 1 as the host sees it (while running)
  int exit_code = -1;     // once exited: the exit code, or 128 + the signal number
  int signal = 0;         // the signal that ended it, if any
  bool oom_killed = false;
  absl::Time started_at = absl::InfinitePast();
  absl::Time finished_at = absl::InfinitePast();
  std::string stdout_log;
  std::string stderr_log;
};

struct ExecSpec {
  std::vector<std::string> command;
  std::vector<std::string> env;  // NAME=value, over the container's environment
  std::string workdir;           // empty: the container's
  std::optional<uid_t> uid;      // unset: the container's
  std::optional<gid_t> gid;
};

struct ExecResult {
  int exit_code = -1;  // or 128 + signal number
  std::string out;     // stdout, at most 16 MiB kept
  std::string err;     // stderr, at most 16 MiB kept
};

}  // namespace loom::runtime
