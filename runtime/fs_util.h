// Filesystem helpers the runtime shares: owned fds, path resolution that cannot leave a
// root directory (openat2 RESOLVE_IN_ROOT), recursive removal that never follows
// symlinks, atomic file writes and flock-based locks.
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

struct pollfd;

namespace loom::runtime {

// An owned file descriptor, closed on destruction.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept;
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd();

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int release() { return std::exchange(fd_, -1); }
  void reset(int fd = -1);

 private:
  int fd_ = -1;
};

// Splits a relative archive or container path into clean components: leading "/" and
// "./" are dropped, empty and "." components skipped. InvalidArgument for "..".
absl::StatusOr<std::string> CleanRelativePath(std::string_view path);

// Opens `rel` (a clean relative path, "" for the root itself) under `root_fd` as if
// `root_fd` were "/": symlinks (absolute or with "..") cannot leave it.
absl::StatusOr<UniqueFd> OpenInRoot(int root_fd, std::string_view rel, int flags,
                                    mode_t mode = 0);

// Creates every missing directory of `rel` under `root_fd` (mode 0755), resolving
// existing components inside the root, and returns an O_PATH fd on the last one.
absl::StatusOr<UniqueFd> MkdirAllInRoot(int root_fd, std::string_view rel);

// Removes `name` in directory `dir_fd`, recursively if it is a directory, never following
// symlinks. OK if it does not exist.
absl::Status RemoveAllAt(int dir_fd, const std::string& name);
// Removes everything inside directory `dir_fd` (not the directory itself).
absl::Status RemoveChildrenAt(int dir_fd);
// RemoveAllAt for an absolute path. OK if it does not exist.
absl::Status RemoveTree(const std::string& path);

// Writes `data` to `path` through a temporary file, fsync and rename.
absl::Status WriteFileAtomic(const std::string& path, std::string_view data, mode_t mode = 0644);
absl::StatusOr<std::string> ReadFileToString(const std::string& path);
// Writes `data` to an existing file (cgroup and proc files), one write() call.
absl::Status WriteSmallFile(const std::string& path, std::string_view data);

// mkdir -p with mode 0755 (0700 when `private_dir`).
absl::Status MakeDirs(const std::string& path, bool private_dir = false);

// An exclusive flock on a lock file, released on destruction. Works between threads
// (each lock opens its own file description) and processes.
class FileLock {
 public:
  static absl::StatusOr<FileLock> Acquire(const std::string& path);
  FileLock(FileLock&&) = default;
  FileLock& operator=(FileLock&&) = default;

 private:
  explicit FileLock(UniqueFd fd) : fd_(std::move(fd)) {}
  UniqueFd fd_;
};

// poll() until `deadline`, retrying on EINTR: > 0 ready, 0 timed out, < 0 failed.
int PollUntil(struct pollfd* fds, size_t count, absl::Time deadline);

// The start time of a process in clock ticks since boot (field 22 of /proc/PID/stat):
// with the pid it identifies a process across pid reuse. NotFound if it is gone.
absl::StatusOr<unsigned long long> ProcessStartTime(pid_t pid);

}  // namespace loom::runtime
