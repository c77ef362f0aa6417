// Network namespace helpers: named namespaces as `ip netns` makes them, an RAII handle,
// and running code inside a namespace without moving the caller's thread.
#pragma once

#include <sys/types.h>

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace loom::net {

// Where named namespaces live (iproute2's NETNS_RUN_DIR).
inline constexpr std::string_view kNetnsRunDir = "/run/netns";

// Like `ip netns add NAME`: makes /run/netns a shared mount point (as iproute2 does, so
// that mounts propagate to other mount namespaces), creates a new network namespace in a
// dedicated thread (unshare) and bind-mounts it on /run/netns/NAME, which keeps it alive
// after the thread ends. AlreadyExists if the name is taken; InvalidArgument for a name
// that is empty, ".", ".." or contains '/'.
absl::Status CreateNamedNetns(std::string_view name);

// Like `ip netns delete NAME`: lazily unmounts /run/netns/NAME and removes the file.
// The namespace itself goes away once no process, fd or mount holds it. NotFound if
// there is no such name (callers cleaning up may ignore that).
absl::Status DeleteNamedNetns(std::string_view name);

// The path of a named namespace: "/run/netns/NAME".
std::string NamedNetnsPath(std::string_view name);

// An open file descriptor on a network namespace (O_CLOEXEC), closed on destruction.
class NetnsFd {
 public:
  // A named namespace: /run/netns/NAME.
  static absl::StatusOr<NetnsFd> OpenNamed(std::string_view name);
  // Any nsfs path: /proc/<pid>/ns/net, /run/netns/x, a bind mount elsewhere. Fails with
  // InvalidArgument when the file is not a network namespace.
  static absl::StatusOr<NetnsFd> OpenPath(std::string_view path);
  // The network namespace of a process.
  static absl::StatusOr<NetnsFd> OpenPid(pid_t pid);
  // The calling thread's network namespace.
  static absl::StatusOr<NetnsFd> OpenCurrent();

  NetnsFd() = default;
  NetnsFd(NetnsFd&& other) noexcept
      : fd_(std::exchange(other.fd_, -1)), path_(std::move(other.path_)) {}
  NetnsFd& operator=(NetnsFd&& other) noexcept;
  NetnsFd(const NetnsFd&) = delete;
  NetnsFd& operator=(const NetnsFd&) = delete;
  ~NetnsFd();

  bool valid() const { return fd_ >= 0; }
  int get() const { return fd_; }
  // The path it was opened from, for messages.
  const std::string& path() const { return path_; }
  // The namespace's inode number (what `ls -l /proc/self/ns/net` shows); two handles
  // refer to the same namespace when their inodes are equal.
  absl::StatusOr<ino_t> Inode() const;

 private:
  NetnsFd(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  int fd_ = -1;
  std::string path_;
};

// Runs `fn` on a fresh thread that first setns()es into `ns`, waits for it and returns
// its status. The caller's thread never changes namespace, so this is safe in a
// multi-threaded process. Sockets (including a Netlink) created inside `fn` belong to
// `ns` and keep working after `fn` returns. Note that /proc/self/net shows the
// process's main thread's namespace; inside `fn` use /proc/thread-self/net.
absl::Status RunInNetns(const NetnsFd& ns, const std::function<absl::Status()>& fn);

// As above for a function returning a value: RunInNetns<int>(ns, [&] { ... }).
template <typename T>
absl::StatusOr<T> RunInNetns(const NetnsFd& ns,
                             const std::function<absl::StatusOr<T>()>& fn) {
  std::optional<absl::StatusOr<T>> result;
  absl::Status status = RunInNetns(ns, [&]() -> absl::Status {
    result.emplace(fn());
    return result->status();
  });
  if (!status.ok()) return status;
  return std::move(*result);
}

}  // namespace loom::net
