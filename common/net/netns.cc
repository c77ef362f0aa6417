#include "common/net/netns.h"

#include <fcntl.h>
#include <linux/nsfs.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <exception>
#include <system_error>
#include <thread>

#include "common/status.h"
#include "common/strings.h"

namespace loom::net {
namespace {

absl::Status ValidateName(std::string_view name) {
  if (name.empty() || name == "." || name == ".." ||
      name.find('/') != std::string_view::npos || name.find('\0') != std::string_view::npos ||
      name.size() > NAME_MAX) {
    return absl::InvalidArgumentError(StrCat("invalid network namespace name \"", name,
                                             "\": must be a file name (no '/', not . or ..)"));
  }
  return absl::OkStatus();
}

// As iproute2 does: make the run dir a shared mount point (bind-mounting it on itself
// first if it is not a mount point yet), so that a namespace mounted later shows up in
// every mount namespace that shares it.
absl::Status PrepareRunDir() {
  const std::string dir(kNetnsRunDir);
  if (mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) {
    return ErrnoToStatus(errno, StrCat("mkdir ", dir));
  }
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (mount("", dir.c_str(), "none", MS_SHARED | MS_REC, nullptr) == 0) {
      return absl::OkStatus();
    }
    if (errno != EINVAL || attempt > 0) {
      return ErrnoToStatus(errno, StrCat("make ", dir, " a shared mount"));
    }
    if (mount(dir.c_str(), dir.c_str(), "none", MS_BIND | MS_REC, nullptr) != 0) {
      return ErrnoToStatus(errno, StrCat("bind-mount ", dir, " on itself"));
    }
  }
  return absl::OkStatus();
}

// Runs fn on a new thread and waits for it. std::thread reports failure to start by
// exception; that is turned into a status here, at the edge.
absl::Status RunOnFreshThread(const std::function<absl::Status()>& fn, std::string_view what) {
  absl::Status status;
  try {
    std::thread thread([&] {
      try {
        status = fn();
      } catch (const std::exception& e) {
        status = absl::InternalError(StrCat(what, ": ", e.what()));
      }
    });
    thread.join();
  } catch (const std::system_error& e) {
    return absl::ResourceExhaustedError(StrCat(what, ": cannot start a thread: ", e.what()));
  }
  return status;
}

}  // namespace

std::string NamedNetnsPath(std::string_view name) { return StrCat(kNetnsRunDir, "/", name); }

absl::Status CreateNamedNetns(std::string_view name) {
  RETURN_IF_ERROR(ValidateName(name));
  RETURN_IF_ERROR(PrepareRunDir());
  const std::string path = NamedNetnsPath(name);
  int fd = open(path.c_str(), O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0);
  if (fd < 0) {
    if (errno == EEXIST) {
      return absl::AlreadyExistsError(StrCat("create network namespace ", name, ": ", path,
                                             " already exists"));
    }
    return ErrnoToStatus(errno, StrCat("create ", path));
  }
  close(fd);
  // unshare() moves only the calling thread, so a throwaway thread does it; the bind
  // mount keeps the namespace alive once the thread is gone.
  absl::Status status = RunOnFreshThread(
      [&]() -> absl::Status {
        if (unshare(CLONE_NEWNET) != 0) {
          return ErrnoToStatus(errno, StrCat("create network namespace ", name, ": unshare"));
        }
        if (mount("/proc/thread-self/ns/net", path.c_str(), "none", MS_BIND, nullptr) != 0) {
          return ErrnoToStatus(errno, StrCat("create network namespace ", name,
                                             ": bind-mount on ", path));
        }
        return absl::OkStatus();
      },
      StrCat("create network namespace ", name));
  if (!status.ok()) unlink(path.c_str());
  return status;
}

absl::Status DeleteNamedNetns(std::string_view name) {
  RETURN_IF_ERROR(ValidateName(name));
  const std::string path = NamedNetnsPath(name);
  struct stat st;
  if (lstat(path.c_str(), &st) != 0) {
    return ErrnoToStatus(errno, StrCat("delete network namespace ", name, ": ", path));
  }
  // EINVAL: not a mount point (a half-created namespace); removing the file still helps.
  if (umount2(path.c_str(), MNT_DETACH) != 0 && errno != EINVAL) {
    return ErrnoToStatus(errno, StrCat("delete network namespace ", name, ": umount ", path));
  }
  if (unlink(path.c_str()) != 0) {
    return ErrnoToStatus(errno, StrCat("delete network namespace ", name, ": unlink ", path));
  }
  return absl::OkStatus();
}

absl::StatusOr<NetnsFd> NetnsFd::OpenNamed(std::string_view name) {
  RETURN_IF_ERROR(ValidateName(name));
  return OpenPath(NamedNetnsPath(name));
}

absl::StatusOr<NetnsFd> NetnsFd::OpenPath(std::string_view path) {
  std::string p(path);
  int fd = open(p.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoToStatus(errno, StrCat("open network namespace ", p));
  NetnsFd ns(fd, p);
  int type = ioctl(fd, NS_GET_NSTYPE);
  if (type != CLONE_NEWNET) {
    return absl::InvalidArgumentError(StrCat(p, " is not a network namespace"));
  }
  return ns;
}

absl::StatusOr<NetnsFd> NetnsFd::OpenPid(pid_t pid) {
  return OpenPath(StrCat("/proc/", pid, "/ns/net"));
}

absl::StatusOr<NetnsFd> NetnsFd::OpenCurrent() { return OpenPath("/proc/thread-self/ns/net"); }

NetnsFd& NetnsFd::operator=(NetnsFd&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) close(fd_);
    fd_ = std::exchange(other.fd_, -1);
    path_ = std::move(other.path_);
  }
  return *this;
}

NetnsFd::~NetnsFd() {
  if (fd_ >= 0) close(fd_);
}

absl::StatusOr<ino_t> NetnsFd::Inode() const {
  struct stat st;
  if (fstat(fd_, &st) != 0) return ErrnoToStatus(errno, StrCat("stat ", path_));
  return st.st_ino;
}

absl::Status RunInNetns(const NetnsFd& ns, const std::function<absl::Status()>& fn) {
  if (!ns.valid()) return absl::InvalidArgumentError("run in network namespace: no namespace");
  return RunOnFreshThread(
      [&]() -> absl::Status {
        if (setns(ns.get(), CLONE_NEWNET) != 0) {
          return ErrnoToStatus(errno, StrCat("enter network namespace ", ns.path()));
        }
        return fn();
      },
      StrCat("run in network namespace ", ns.path()));
}

}  // namespace loom::net
