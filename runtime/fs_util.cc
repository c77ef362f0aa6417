#include "runtime/fs_util.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <linux/openat2.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

#include "absl/strings/str_split.h"
#include "common/status.h"
#include "common/strings.h"

namespace loom::runtime {

UniqueFd& UniqueFd::operator=(UniqueFd&& o) noexcept {
  if (this != &o) reset(std::exchange(o.fd_, -1));
  return *this;
}

UniqueFd::~UniqueFd() { reset(); }

void UniqueFd::reset(int fd) {
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
}

absl::StatusOr<std::string> CleanRelativePath(std::string_view path) {
  std::string out;
  for (absl::string_view part : absl::StrSplit(ToAbsl(path), '/')) {
    if (part.empty() || part == ".") continue;
    if (part == "..") {
      return absl::InvalidArgumentError(StrCat("path '", path, "' contains '..'"));
    }
    if (!out.empty()) out += '/';
    out.append(part.data(), part.size());
  }
  return out;
}

absl::StatusOr<UniqueFd> OpenInRoot(int root_fd, std::string_view rel, int flags, mode_t mode) {
  struct open_how how = {};
  how.flags = static_cast<unsigned long long>(flags | O_CLOEXEC);
  how.mode = (flags & O_CREAT) ? mode : 0;
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
  std::string path = rel.empty() ? std::string(".") : std::string(rel);
  for (int attempt = 0; attempt < 16; ++attempt) {
    long fd = ::syscall(SYS_openat2, root_fd, path.c_str(), &how, sizeof(how));
    if (fd >= 0) return UniqueFd(static_cast<int>(fd));
    if (errno != EAGAIN && errno != EINTR) return ErrnoToStatus(errno, StrCat("open ", path));
  }
  return absl::UnavailableError(StrCat("open ", path, ": kept racing with renames"));
}

absl::StatusOr<UniqueFd> MkdirAllInRoot(int root_fd, std::string_view rel) {
  std::string prefix;
  UniqueFd fd;
  ASSIGN_OR_RETURN(fd, OpenInRoot(root_fd, "", O_PATH | O_DIRECTORY));
  for (absl::string_view part : absl::StrSplit(ToAbsl(rel), '/', absl::SkipEmpty())) {
    std::string name(part.data(), part.size());
    if (name == "..") return absl::InvalidArgumentError(StrCat("path '", rel, "' contains '..'"));
    std::string next = prefix.empty() ? name : StrCat(prefix, "/", name);
    absl::StatusOr<UniqueFd> child = OpenInRoot(root_fd, next, O_PATH | O_DIRECTORY);
    if (!child.ok() && absl::IsNotFound(child.status())) {
      if (::mkdirat(fd.get(), name.c_str(), 0755) != 0 && errno != EEXIST) {
        return ErrnoToStatus(errno, StrCat("mkdir ", next));
      }
      child = OpenInRoot(root_fd, next, O_PATH | O_DIRECTORY);
    }
    if (!child.ok()) return child.status();
    fd = std::move(*child);
    prefix = std::move(next);
  }
  return fd;
}

absl::Status RemoveChildrenAt(int dir_fd) {
  int fd = ::openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return ErrnoToStatus(errno, "open directory");
  DIR* dir = ::fdopendir(fd);
  if (dir == nullptr) {
    int err = errno;
    ::close(fd);
    return ErrnoToStatus(err, "fdopendir");
  }
  std::vector<std::string> names;
  while (struct dirent* e = ::readdir(dir)) {
    std::string n = e->d_name;
    if (n != "." && n != "..") names.push_back(std::move(n));
  }
  absl::Status status;
  for (const std::string& n : names) {
    absl::Status s = RemoveAllAt(::dirfd(dir), n);
    if (!s.ok() && status.ok()) status = s;
  }
  ::closedir(dir);
  return status;
}

absl::Status RemoveAllAt(int dir_fd, const std::string& name) {
  if (::unlinkat(dir_fd, name.c_str(), 0) == 0 || errno == ENOENT) return absl::OkStatus();
  if (errno != EISDIR && errno != EPERM) return ErrnoToStatus(errno, StrCat("unlink ", name));
  int fd = ::openat(dir_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return ErrnoToStatus(errno, StrCat("open ", name));
  absl::Status status = RemoveChildrenAt(fd);
  ::close(fd);
  RETURN_IF_ERROR(Annotate(status, name));
  if (::unlinkat(dir_fd, name.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT) {
    return ErrnoToStatus(errno, StrCat("rmdir ", name));
  }
  return absl::OkStatus();
}

absl::Status RemoveTree(const std::string& path) {
  if (path.empty() || path == "/") return absl::InvalidArgumentError("refusing to remove '/'");
  return RemoveAllAt(AT_FDCWD, path);
}

absl::Status WriteFileAtomic(const std::string& path, std::string_view data, mode_t mode) {
  std::string tmp = StrCat(path, ".tmp.", ::getpid());
  UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode));
  if (!fd.valid()) return ErrnoToStatus(errno, StrCat("create ", tmp));
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd.get(), data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      ::unlink(tmp.c_str());
      return ErrnoToStatus(err, StrCat("write ", tmp));
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd.get()) != 0 || ::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    return ErrnoToStatus(err, StrCat("write ", path));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadFileToString(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return ErrnoToStatus(errno, StrCat("open ", path));
  std::string out;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoToStatus(errno, StrCat("read ", path));
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

absl::Status WriteSmallFile(const std::string& path, std::string_view data) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd.valid()) return ErrnoToStatus(errno, StrCat("open ", path));
  if (::write(fd.get(), data.data(), data.size()) != static_cast<ssize_t>(data.size())) {
    return ErrnoToStatus(errno, StrCat("write '", data, "' to ", path));
  }
  return absl::OkStatus();
}

absl::Status MakeDirs(const std::string& path, bool private_dir) {
  std::string cur;
  for (absl::string_view part : absl::StrSplit(ToAbsl(path), '/', absl::SkipEmpty())) {
    StrAppend(&cur, "/", part);
    if (::mkdir(cur.c_str(), private_dir ? 0700 : 0755) != 0 && errno != EEXIST) {
      return ErrnoToStatus(errno, StrCat("mkdir ", cur));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<FileLock> FileLock::Acquire(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!fd.valid()) return ErrnoToStatus(errno, StrCat("open lock ", path));
  while (::flock(fd.get(), LOCK_EX) != 0) {
    if (errno != EINTR) return ErrnoToStatus(errno, StrCat("flock ", path));
  }
  return FileLock(std::move(fd));
}

absl::StatusOr<unsigned long long> ProcessStartTime(pid_t pid) {
  absl::StatusOr<std::string> stat = ReadFileToString(StrCat("/proc/", pid, "/stat"));
  if (!stat.ok()) return absl::NotFoundError(StrCat("process ", pid, " is gone"));
  // The command name may hold spaces and parentheses: fields start after the last ')'.
  size_t close = stat->rfind(')');
  if (close == std::string::npos) return absl::InternalError("malformed /proc/PID/stat");
  std::vector<std::string> fields = absl::StrSplit(stat->substr(close + 2), ' ');
  // Field 3 (state) is fields[0]; field 22 (starttime) is fields[19].
  if (fields.size() < 20) return absl::InternalError("short /proc/PID/stat");
  if (fields[0] == "Z" || fields[0] == "X") {
    return absl::NotFoundError(StrCat("process ", pid, " has exited"));
  }
  return std::stoull(fields[19]);
}

int PollUntil(struct pollfd* fds, size_t count, absl::Time deadline) {
  for (;;) {
    int ms = static_cast<int>(
        std::max<int64_t>(0, absl::ToInt64Milliseconds(deadline - absl::Now())));
    int r = ::poll(fds, static_cast<nfds_t>(count), ms);
    if (r >= 0 || errno != EINTR) return r;
  }
}

}  // namespace loom::runtime
