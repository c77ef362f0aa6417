#include "runtime/shim.h"

#include <fcntl.h>
#include <linux/capability.h>
#include <grp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>

#include "common/status.h"
#include "common/strings.h"
#include "runtime/cgroups.h"
#include "runtime/fs_util.h"

extern char** environ;

namespace loom::runtime {
namespace {

template <typename T>
absl::Status Get(const Json& j, const char* key, T* out) {
  auto it = j.find(key);
  if (it == j.end()) return absl::InvalidArgumentError(StrCat("missing field '", key, "'"));
  try {
    *out = it->get<T>();
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(StrCat("field '", key, "': ", e.what()));
  }
  return absl::OkStatus();
}


// ---- inside the container -------------------------------------------------------------

absl::Status MountAt(const char* source, int target_fd, const char* type, unsigned long flags,
                     const char* data, std::string_view what) {
  std::string target = StrCat("/proc/self/fd/", target_fd);
  if (::mount(source, target.c_str(), type, flags, data) != 0) {
    return ErrnoToStatus(errno, StrCat("mount ", what));
  }
  return absl::OkStatus();
}

absl::Status SetupDev(int root_fd) {
  ASSIGN_OR_RETURN(UniqueFd dev_mp, MkdirAllInRoot(root_fd, "dev"));
  RETURN_IF_ERROR(MountAt("tmpfs", dev_mp.get(), "tmpfs", MS_NOSUID | MS_STRICTATIME,
                          "mode=755,size=65536k", "/dev"));
  ASSIGN_OR_RETURN(UniqueFd dev, OpenInRoot(root_fd, "dev", O_RDONLY | O_DIRECTORY));
  struct Node {
    const char* name;
    unsigned major, minor;
  };
  for (const Node& n : {Node{"null", 1, 3}, Node{"zero", 1, 5}, Node{"full", 1, 7},
                        Node{"random", 1, 8}, Node{"urandom", 1, 9}, Node{"tty", 5, 0}}) {
    if (::mknodat(dev.get(), n.name, S_IFCHR | 0666, makedev(n.major, n.minor)) != 0) {
      return ErrnoToStatus(errno, StrCat("mknod /dev/", n.name));
    }
    ::fchmodat(dev.get(), n.name, 0666, 0);  // umask
  }
  for (const char* d : {"pts", "shm"}) {
    if (::mkdirat(dev.get(), d, 0755) != 0) return ErrnoToStatus(errno, StrCat("mkdir /dev/", d));
  }
  ASSIGN_OR_RETURN(UniqueFd pts, OpenInRoot(root_fd, "dev/pts", O_PATH | O_DIRECTORY));
  RETURN_IF_ERROR(MountAt("devpts", pts.get(), "devpts", MS_NOSUID | MS_NOEXEC,
                          "newinstance,ptmxmode=0666,mode=0620", "/dev/pts"));
  ASSIGN_OR_RETURN(UniqueFd shm, OpenInRoot(root_fd, "dev/shm", O_PATH | O_DIRECTORY));
  RETURN_IF_ERROR(MountAt("shm", shm.get(), "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
                          "mode=1777,size=65536k", "/dev/shm"));
  struct Link {
    const char* target;
    const char* name;
  };
  for (const Link& l : {Link{"pts/ptmx", "ptmx"}, Link{"/proc/self/fd", "fd"},
                        Link{"/proc/self/fd/0", "stdin"}, Link{"/proc/self/fd/1", "stdout"},
                        Link{"/proc/self/fd/2", "stderr"}}) {
    if (::symlinkat(l.target, dev.get(), l.name) != 0) {
      return ErrnoToStatus(errno, StrCat("symlink /dev/", l.name));
    }
  }
  return absl::OkStatus();
}

absl::Status SetupUserMount(int root_fd, const ShimMount& m) {
  struct stat st;
  if (::stat(m.source.c_str(), &st) != 0) {
    return ErrnoToStatus(errno, StrCat("mount source ", m.source));
  }
  if (S_ISDIR(st.st_mode)) {
    RETURN_IF_ERROR(MkdirAllInRoot(root_fd, m.destination).status());
  } else {
    size_t slash = m.destination.rfind('/');
    if (slash != std::string::npos) {
      RETURN_IF_ERROR(MkdirAllInRoot(root_fd, m.destination.substr(0, slash)).status());
    }
    RETURN_IF_ERROR(OpenInRoot(root_fd, m.destination, O_WRONLY | O_CREAT, 0644).status());
  }
  ASSIGN_OR_RETURN(UniqueFd target, OpenInRoot(root_fd, m.destination, O_PATH));
  RETURN_IF_ERROR(MountAt(m.source.c_str(), target.get(), nullptr, MS_BIND | MS_REC, nullptr,
                          StrCat(m.source, " on /", m.destination)));
  if (m.read_only) {
    // A bind mount becomes read-only only through a remount of the new mount itself.
    ASSIGN_OR_RETURN(UniqueFd mounted, OpenInRoot(root_fd, m.destination, O_PATH));
    RETURN_IF_ERROR(MountAt(nullptr, mounted.get(), nullptr,
                            MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV, nullptr,
                            StrCat("/", m.destination, " read-only")));
  }
  return absl::OkStatus();
}

// Makes /proc's dangerous corners read-only or empty, as Docker does: sysctls and
// sysrq through /proc/sys and /proc/sysrq-trigger, kernel memory through /proc/kcore.
absl::Status MaskProc(int root_fd) {
  for (const char* ro : {"proc/sys", "proc/sysrq-trigger", "proc/irq", "proc/bus"}) {
    absl::StatusOr<UniqueFd> fd = OpenInRoot(root_fd, ro, O_PATH);
    if (!fd.ok()) continue;
    RETURN_IF_ERROR(MountAt(StrCat("/proc/self/fd/", fd->get()).c_str(), fd->get(), nullptr,
                            MS_BIND | MS_REC, nullptr, StrCat("/", ro)));
    ASSIGN_OR_RETURN(UniqueFd mounted, OpenInRoot(root_fd, ro, O_PATH));
    RETURN_IF_ERROR(MountAt(nullptr, mounted.get(), nullptr,
                            MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
                            nullptr, StrCat("/", ro, " read-only")));
  }
  for (const char* hidden : {"proc/kcore", "proc/keys", "proc/timer_list", "proc/kallsyms"}) {
    absl::StatusOr<UniqueFd> fd = OpenInRoot(root_fd, hidden, O_PATH);
    if (!fd.ok()) continue;
    RETURN_IF_ERROR(MountAt("/dev/null", fd->get(), nullptr, MS_BIND, nullptr, StrCat("/", hidden)));
  }
  return absl::OkStatus();
}

// ---- the shim ---------------------------------------------------------------------------

// Appends to a log file, rotating it to "<path>.1" when it would exceed max_bytes.
class LogFile {
 public:
  static absl::StatusOr<std::unique_ptr<LogFile>> Open(std::string path, int64_t max_bytes) {
    auto log = std::unique_ptr<LogFile>(new LogFile(std::move(path), max_bytes));
    RETURN_IF_ERROR(log->Reopen(false));
    return log;
  }

  void Write(const char* data, size_t len) {
    while (len > 0) {
      if (size_ >= max_) {
        ::rename(path_.c_str(), StrCat(path_, ".1").c_str());
        if (!Reopen(true).ok()) return;
      }
      size_t room = static_cast<size_t>(max_ - size_);
      size_t n = std::min(len, room);
      ssize_t w = ::write(fd_.get(), data, n);
      if (w <= 0) return;  // disk full: drop rather than block the container
      size_ += w;
      data += w;
      len -= static_cast<size_t>(w);
    }
  }

 private:
  LogFile(std::string path, int64_t max_bytes)
      : path_(std::move(path)), max_(max_bytes > 0 ? max_bytes : (10 << 20)) {}
  absl::Status Reopen(bool truncate) {
    fd_.reset(::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | (truncate ? O_TRUNC : 0),
                     0640));
    if (!fd_.valid()) return ErrnoToStatus(errno, StrCat("open log ", path_));
    struct stat st;
    size_ = ::fstat(fd_.get(), &st) == 0 ? st.st_size : 0;
    return absl::OkStatus();
  }
  std::string path_;
  int64_t max_;
  int64_t size_ = 0;
  UniqueFd fd_;
};

void Report(int fd, std::string_view msg) {
  if (fd < 0) return;
  (void)!::write(fd, msg.data(), msg.size());
}

// The container process (PID 1 of its namespace), between clone and exec.
[[noreturn]] void ContainerChild(const ShimConfig& c, int go_fd, int err_fd, int out_fd,
                                 int errout_fd) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  char go;
  if (::read(go_fd, &go, 1) != 1) ::_exit(126);  // the shim died
  ::close(go_fd);
  absl::Status s = ContainerInit(c);
  std::vector<char*> argv, envp;
  for (const std::string& a : c.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  for (const std::string& e : c.env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  if (s.ok()) {
    int null_fd = ::open("/dev/null", O_RDONLY);
    if (null_fd < 0 || ::dup2(null_fd, 0) < 0 || ::dup2(out_fd, 1) < 0 || ::dup2(errout_fd, 2) < 0) {
      s = ErrnoToStatus(errno, "set up stdio");
    }
  }
  if (s.ok()) {
    ::close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
    sigset_t all;
    sigemptyset(&all);
    ::sigprocmask(SIG_SETMASK, &all, nullptr);
    environ = envp.data();
    ::execvp(argv[0], argv.data());
    s = ErrnoToStatus(errno, StrCat("exec ", c.argv[0]));
  }
  std::string msg(s.message());
  (void)!::write(err_fd, msg.data(), msg.size());
  ::_exit(127);
}

absl::StatusOr<ShimConfig> LoadConfig(const std::string& bundle) {
  ASSIGN_OR_RETURN(std::string text, ReadFileToString(StrCat(bundle, "/config.json")));
  ASSIGN_OR_RETURN(Json j, ParseJson(text));
  return ShimConfigFromJson(j);
}

}  // namespace

bool DropCapabilities() {
  static constexpr int kKept[] = {CAP_CHOWN,       CAP_DAC_OVERRIDE, CAP_FOWNER,
                                  CAP_FSETID,      CAP_KILL,         CAP_SETGID,
                                  CAP_SETUID,      CAP_SETPCAP,      CAP_SETFCAP,
                                  CAP_NET_BIND_SERVICE, CAP_NET_RAW, CAP_SYS_CHROOT,
                                  CAP_AUDIT_WRITE};
  for (int cap = 0; cap < 64; ++cap) {
    bool keep = false;
    for (int k : kKept) keep = keep || k == cap;
    if (keep) continue;
    if (::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0) {
      if (errno == EINVAL) break;  // past the kernel's last capability
      return false;
    }
  }
  return true;
}

Json ShimConfigToJson(const ShimConfig& c) {
  Json mounts = Json::array();
  for (const ShimMount& m : c.mounts) {
    mounts.push_back({{"source", m.source}, {"destination", m.destination}, {"read_only", m.read_only}});
  }
  return Json{{"id", c.id}, {"image_digest", c.image_digest}, {"lower_dir", c.lower_dir},
              {"upper_dir", c.upper_dir}, {"work_dir", c.work_dir}, {"rootfs", c.rootfs},
              {"argv", c.argv}, {"env", c.env}, {"cwd", c.cwd}, {"hostname", c.hostname},
              {"uid", c.uid}, {"gid", c.gid}, {"read_only_root", c.read_only_root},
              {"mounts", mounts}, {"netns_path", c.netns_path}, {"cgroup_dirs", c.cgroup_dirs},
              {"oom_file", c.oom_file}, {"stdout_log", c.stdout_log},
              {"stderr_log", c.stderr_log}, {"log_max_bytes", c.log_max_bytes}};
}

absl::StatusOr<ShimConfig> ShimConfigFromJson(const Json& j) {
  ShimConfig c;
  RETURN_IF_ERROR(Get(j, "id", &c.id));
  RETURN_IF_ERROR(Get(j, "image_digest", &c.image_digest));
  RETURN_IF_ERROR(Get(j, "lower_dir", &c.lower_dir));
  RETURN_IF_ERROR(Get(j, "upper_dir", &c.upper_dir));
  RETURN_IF_ERROR(Get(j, "work_dir", &c.work_dir));
  RETURN_IF_ERROR(Get(j, "rootfs", &c.rootfs));
  RETURN_IF_ERROR(Get(j, "argv", &c.argv));
  RETURN_IF_ERROR(Get(j, "env", &c.env));
  RETURN_IF_ERROR(Get(j, "cwd", &c.cwd));
  RETURN_IF_ERROR(Get(j, "hostname", &c.hostname));
  RETURN_IF_ERROR(Get(j, "uid", &c.uid));
  RETURN_IF_ERROR(Get(j, "gid", &c.gid));
  RETURN_IF_ERROR(Get(j, "read_only_root", &c.read_only_root));
  RETURN_IF_ERROR(Get(j, "netns_path", &c.netns_path));
  RETURN_IF_ERROR(Get(j, "cgroup_dirs", &c.cgroup_dirs));
  RETURN_IF_ERROR(Get(j, "oom_file", &c.oom_file));
  RETURN_IF_ERROR(Get(j, "stdout_log", &c.stdout_log));
  RETURN_IF_ERROR(Get(j, "stderr_log", &c.stderr_log));
  RETURN_IF_ERROR(Get(j, "log_max_bytes", &c.log_max_bytes));
  Json mounts;
  RETURN_IF_ERROR(Get(j, "mounts", &mounts));
  for (const Json& m : mounts) {
    ShimMount sm;
    RETURN_IF_ERROR(Get(m, "source", &sm.source));
    RETURN_IF_ERROR(Get(m, "destination", &sm.destination));
    RETURN_IF_ERROR(Get(m, "read_only", &sm.read_only));
    c.mounts.push_back(std::move(sm));
  }
  if (c.argv.empty()) return absl::InvalidArgumentError("argv is empty");
  return c;
}

Json RunningRecordToJson(const RunningRecord& r) {
  return Json{{"shim_pid", r.shim_pid}, {"shim_start", r.shim_start}, {"pid", r.pid},
              {"pid_start", r.pid_start}, {"started_at_ms", absl::ToUnixMillis(r.started_at)}};
}

absl::StatusOr<RunningRecord> RunningRecordFromJson(const Json& j) {
  RunningRecord r;
  int64_t ms = 0;
  RETURN_IF_ERROR(Get(j, "shim_pid", &r.shim_pid));
  RETURN_IF_ERROR(Get(j, "shim_start", &r.shim_start));
  RETURN_IF_ERROR(Get(j, "pid", &r.pid));
  RETURN_IF_ERROR(Get(j, "pid_start", &r.pid_start));
  RETURN_IF_ERROR(Get(j, "started_at_ms", &ms));
  r.started_at = absl::FromUnixMillis(ms);
  return r;
}

Json ExitRecordToJson(const ExitRecord& r) {
  return Json{{"exit_code", r.exit_code}, {"signal", r.signal}, {"oom_killed", r.oom_killed},
              {"finished_at_ms", absl::ToUnixMillis(r.finished_at)}};
}

absl::StatusOr<ExitRecord> ExitRecordFromJson(const Json& j) {
  ExitRecord r;
  int64_t ms = 0;
  RETURN_IF_ERROR(Get(j, "exit_code", &r.exit_code));
  RETURN_IF_ERROR(Get(j, "signal", &r.signal));
  RETURN_IF_ERROR(Get(j, "oom_killed", &r.oom_killed));
  RETURN_IF_ERROR(Get(j, "finished_at_ms", &ms));
  r.finished_at = absl::FromUnixMillis(ms);
  return r;
}

absl::Status ContainerInit(const ShimConfig& c) {
  if (!c.netns_path.empty()) {
    UniqueFd ns(::open(c.netns_path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!ns.valid()) return ErrnoToStatus(errno, StrCat("open netns ", c.netns_path));
    if (::setns(ns.get(), CLONE_NEWNET) != 0) {
      return ErrnoToStatus(errno, StrCat("join netns ", c.netns_path));
    }
  }
  if (::sethostname(c.hostname.data(), c.hostname.size()) != 0) {
    return ErrnoToStatus(errno, "sethostname");
  }
  // Nothing mounted from here on may propagate back to the host.
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
    return ErrnoToStatus(errno, "make mounts private");
  }
  std::string overlay =
      StrCat("lowerdir=", c.lower_dir, ",upperdir=", c.upper_dir, ",workdir=", c.work_dir);
  // nodev: device nodes shipped in an image are inert; only our /dev has live ones.
  if (::mount("overlay", c.rootfs.c_str(), "overlay", MS_NODEV, overlay.c_str()) != 0) {
    return ErrnoToStatus(errno, StrCat("mount overlay on ", c.rootfs));
  }
  UniqueFd root(::open(c.rootfs.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!root.valid()) return ErrnoToStatus(errno, StrCat("open ", c.rootfs));

  ASSIGN_OR_RETURN(UniqueFd proc, MkdirAllInRoot(root.get(), "proc"));
  RETURN_IF_ERROR(MountAt("proc", proc.get(), "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr, "/proc"));
  RETURN_IF_ERROR(MaskProc(root.get()));
  ASSIGN_OR_RETURN(UniqueFd sys, MkdirAllInRoot(root.get(), "sys"));
  if (!MountAt("sysfs", sys.get(), "sysfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr,
               "/sys").ok()) {
    // A joined network namespace whose sysfs we may not mount: the host's, read-only.
    RETURN_IF_ERROR(MountAt("/sys", sys.get(), nullptr, MS_BIND | MS_REC, nullptr, "/sys"));
    ASSIGN_OR_RETURN(UniqueFd mounted, OpenInRoot(root.get(), "sys", O_PATH));
    RETURN_IF_ERROR(MountAt(nullptr, mounted.get(), nullptr,
                            MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
                            nullptr, "/sys read-only"));
  }
  RETURN_IF_ERROR(SetupDev(root.get()));
  for (const ShimMount& m : c.mounts) RETURN_IF_ERROR(SetupUserMount(root.get(), m));
  ASSIGN_OR_RETURN(std::string cwd, CleanRelativePath(c.cwd));
  RETURN_IF_ERROR(MkdirAllInRoot(root.get(), cwd).status());

  if (::fchdir(root.get()) != 0) return ErrnoToStatus(errno, "chdir rootfs");
  if (::syscall(SYS_pivot_root, ".", ".") != 0) return ErrnoToStatus(errno, "pivot_root");
  // The old root is now stacked under the new one; detach it.
  if (::umount2(".", MNT_DETACH) != 0) return ErrnoToStatus(errno, "detach old root");
  if (::chdir("/") != 0) return ErrnoToStatus(errno, "chdir /");
  if (c.read_only_root &&
      ::mount(nullptr, "/", nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY, nullptr) != 0) {
    return ErrnoToStatus(errno, "remount / read-only");
  }
  if (!DropCapabilities()) return ErrnoToStatus(errno, "drop capabilities");
  if (::setgroups(0, nullptr) != 0 || ::setgid(c.gid) != 0 || ::setuid(c.uid) != 0) {
    return ErrnoToStatus(errno, StrCat("set uid ", c.uid, " gid ", c.gid));
  }
  if (::chdir(c.cwd.c_str()) != 0) return ErrnoToStatus(errno, StrCat("chdir ", c.cwd));
  return absl::OkStatus();
}

int RunShim(const std::string& bundle, int report_fd) {
  ::signal(SIGPIPE, SIG_IGN);
  ::signal(SIGHUP, SIG_IGN);
  ::signal(SIGINT, SIG_IGN);
  auto fail = [&](const absl::Status& s) {
    Report(report_fd, StrCat("error: ", s.message()));
    return 1;
  };
  absl::StatusOr<ShimConfig> config = LoadConfig(bundle);
  if (!config.ok()) return fail(config.status());
  const ShimConfig& c = *config;

  absl::StatusOr<std::unique_ptr<LogFile>> out_log = LogFile::Open(c.stdout_log, c.log_max_bytes);
  if (!out_log.ok()) return fail(out_log.status());
  std::unique_ptr<LogFile> err_log_owned;
  LogFile* err_log = out_log->get();
  if (c.stderr_log != c.stdout_log) {
    absl::StatusOr<std::unique_ptr<LogFile>> l = LogFile::Open(c.stderr_log, c.log_max_bytes);
    if (!l.ok()) return fail(l.status());
    err_log_owned = std::move(*l);
    err_log = err_log_owned.get();
  }
  int go[2], err[2], out[2], errout[2];
  if (::pipe2(go, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0 ||
      ::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(errout, O_CLOEXEC) != 0) {
    return fail(ErrnoToStatus(errno, "pipe"));
  }
  unsigned long flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWIPC | SIGCHLD;
  if (c.netns_path.empty()) flags |= CLONE_NEWNET;
  // The shim is single-threaded, so the child may run ordinary code until exec.
  long child = ::syscall(SYS_clone, flags, nullptr, nullptr, nullptr, nullptr);
  if (child < 0) return fail(ErrnoToStatus(errno, "clone"));
  if (child == 0) {
    ::close(go[1]);
    ::close(err[0]);
    ::close(out[0]);
    ::close(errout[0]);
    if (report_fd >= 0) ::close(report_fd);
    ContainerChild(c, go[0], err[1], out[1], errout[1]);
  }
  const pid_t pid = static_cast<pid_t>(child);
  ::close(go[0]);
  ::close(err[1]);
  ::close(out[1]);
  ::close(errout[1]);
  absl::Status joined;
  for (const std::string& dir : c.cgroup_dirs) {
    joined = WriteSmallFile(StrCat(dir, "/cgroup.procs"), StrCat(pid));
    if (!joined.ok()) break;
  }
  auto abort_child = [&](const absl::Status& s) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    return fail(s);
  };
  if (!joined.ok()) return abort_child(joined);
  if (::write(go[1], "g", 1) != 1) return abort_child(ErrnoToStatus(errno, "start container"));
  ::close(go[1]);
  // EOF without a message: exec succeeded.
  std::string init_error;
  char buf[1 << 16];
  for (;;) {
    ssize_t n = ::read(err[0], buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    init_error.append(buf, static_cast<size_t>(n));
  }
  ::close(err[0]);
  if (!init_error.empty()) return abort_child(absl::FailedPreconditionError(init_error));

  RunningRecord running;
  running.shim_pid = ::getpid();
  running.pid = pid;
  running.started_at = absl::Now();
  absl::StatusOr<unsigned long long> shim_start = ProcessStartTime(running.shim_pid);
  absl::StatusOr<unsigned long long> pid_start = ProcessStartTime(pid);
  running.shim_start = shim_start.ok() ? *shim_start : 0;
  running.pid_start = pid_start.ok() ? *pid_start : 0;
  absl::Status written =
      WriteFileAtomic(StrCat(bundle, "/running.json"), RunningRecordToJson(running).dump());
  if (!written.ok()) return abort_child(written);
  Report(report_fd, "ok");
  if (report_fd >= 0) ::close(report_fd);

  UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  struct Stream {
    int fd;
    LogFile* log;
  };
  Stream streams[2] = {{out[0], out_log->get()}, {errout[0], err_log}};
  bool exited = false;
  int wstatus = 0;
  // After PID 1 exits the kernel kills the rest of its namespace, so the pipes reach EOF
  // soon; 2 s bounds the wait for a writer that escaped into another namespace.
  absl::Time drain_deadline = absl::InfiniteFuture();
  for (;;) {
    struct pollfd fds[3];
    int nfds = 0;
    int stream_index[2];
    for (int i = 0; i < 2; ++i) {
      if (streams[i].fd >= 0) {
        stream_index[nfds] = i;
        fds[nfds++] = {streams[i].fd, POLLIN, 0};
      }
    }
    if (!exited) fds[nfds++] = {pidfd.valid() ? pidfd.get() : -1, POLLIN, 0};
    if (nfds == 0) break;
    int timeout = exited ? 100 : (pidfd.valid() ? -1 : 200);
    int r = ::poll(fds, static_cast<nfds_t>(nfds), timeout);
    if (r < 0 && errno != EINTR) break;
    for (int k = 0; k < nfds; ++k) {
      if (k < nfds - (exited ? 0 : 1) && (fds[k].revents & (POLLIN | POLLHUP | POLLERR))) {
        Stream& s = streams[stream_index[k]];
        ssize_t n = ::read(s.fd, buf, sizeof(buf));
        if (n > 0) {
          s.log->Write(buf, static_cast<size_t>(n));
        } else if (n == 0 || errno != EINTR) {
          ::close(s.fd);
          s.fd = -1;
        }
      }
    }
    if (!exited && ::waitpid(pid, &wstatus, WNOHANG) == pid) {
      exited = true;
      drain_deadline = absl::Now() + absl::Seconds(2);
    }
    if (exited && absl::Now() > drain_deadline) break;
  }
  if (!exited) ::waitpid(pid, &wstatus, 0);
  ExitRecord rec;
  if (WIFEXITED(wstatus)) {
    rec.exit_code = WEXITSTATUS(wstatus);
  } else if (WIFSIGNALED(wstatus)) {
    rec.signal = WTERMSIG(wstatus);
    rec.exit_code = 128 + rec.signal;
  }
  rec.oom_killed = ReadOomKillCount(c.oom_file) > 0;
  rec.finished_at = absl::Now();
  return WriteFileAtomic(StrCat(bundle, "/exit.json"), ExitRecordToJson(rec).dump()).ok() ? 0 : 1;
}

}  // namespace loom::runtime
