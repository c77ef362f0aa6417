#include "runtime/supervisor.h"

#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <linux/close_range.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <optional>

#include "common/log.h"
#include "common/status.h"
#include "common/strings.h"
#include "runtime/fs_util.h"
#include "runtime/shim.h"

extern char** environ;

namespace loom::runtime {

struct Supervisor::Container {
  std::string id;
  std::string bundle;
  ShimConfig config;
  std::optional<RunningRecord> running;
  UniqueFd shim_pidfd;  // valid while the shim may be alive
  UniqueFd pidfd;       // the container's PID 1
  // Set once, when exit.json is first read; guarded because callers may inspect the
  // same container from several threads.
  absl::Mutex mu;
  std::optional<ExitRecord> exit ABSL_GUARDED_BY(mu);
};

namespace {

constexpr size_t kMaxExecOutput = 16 << 20;
constexpr std::string_view kDefaultPath =
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

// A pidfd on `pid`, but only if it is still the process that started at `start`.
UniqueFd OpenPidfd(pid_t pid, unsigned long long start) {
  if (pid <= 0) return UniqueFd();
  UniqueFd fd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  if (!fd.valid()) return fd;
  absl::StatusOr<unsigned long long> now = ProcessStartTime(pid);
  if (!now.ok() || *now != start) return UniqueFd();
  return fd;
}

// True once the process behind `pidfd` has exited (or waiting `timeout` says so).
bool WaitPidfd(const UniqueFd& pidfd, absl::Duration timeout) {
  if (!pidfd.valid()) return true;
  absl::Time deadline = absl::Now() + timeout;
  for (;;) {
    struct pollfd p = {pidfd.get(), POLLIN, 0};
    int ms = static_cast<int>(std::max<int64_t>(0, absl::ToInt64Milliseconds(deadline - absl::Now())));
    int r = ::poll(&p, 1, ms);
    if (r > 0) return true;
    if (r == 0) return false;
    if (errno != EINTR) return true;
  }
}

// Reaps the shim if this process started it (it is then our child).
void ReapShim(const UniqueFd& shim_pidfd) {
  if (!shim_pidfd.valid()) return;
  siginfo_t info;
  ::waitid(static_cast<idtype_t>(P_PIDFD), static_cast<id_t>(shim_pidfd.get()), &info,
           WEXITED | WNOHANG);
}

std::vector<std::string> MergeEnv(const std::vector<std::string>& base,
                                  const std::vector<std::string>& over) {
  std::vector<std::string> out = base;
  for (const std::string& e : over) {
    std::string name = e.substr(0, e.find('='));
    auto it = std::find_if(out.begin(), out.end(), [&](const std::string& o) {
      return o.compare(0, name.size() + 1, StrCat(name, "=")) == 0;
    });
    if (it != out.end()) {
      *it = e;
    } else {
      out.push_back(e);
    }
  }
  return out;
}

absl::StatusOr<Json> ReadJsonFile(const std::string& path) {
  ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  absl::StatusOr<Json> j = ParseJson(text);
  if (!j.ok()) return Annotate(j.status(), path);
  return j;
}

std::vector<std::string> ListDir(const std::string& path) {
  std::vector<std::string> names;
  DIR* dir = ::opendir(path.c_str());
  if (dir == nullptr) return names;
  while (struct dirent* e = ::readdir(dir)) {
    std::string n = e->d_name;
    if (n != "." && n != "..") names.push_back(std::move(n));
  }
  ::closedir(dir);
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Supervisor>> Supervisor::Open(SupervisorOptions options,
                                                             ImageStore* images) {
  for (const std::string* dir : {&options.state_dir, &options.volumes_dir}) {
    if (dir->empty() || (*dir)[0] != '/') {
      return absl::InvalidArgumentError(StrCat("supervisor folder '", *dir, "' must be absolute"));
    }
    RETURN_IF_ERROR(MakeDirs(*dir, true));
  }
  ASSIGN_OR_RETURN(CgroupDriver cgroups,
                   CgroupDriver::Detect(options.cgroup_root, options.cgroup_parent));
  if (!options.cgroup2_dir.empty()) {
    struct statfs fs;
    if (options.cgroup2_dir[0] != '/' || ::statfs(options.cgroup2_dir.c_str(), &fs) != 0 ||
        fs.f_type != CGROUP2_SUPER_MAGIC) {
      return absl::InvalidArgumentError(StrCat("cgroup2 folder '", options.cgroup2_dir,
                                               "' is not an existing folder of a cgroup2 mount"));
    }
    if (cgroups.version() == 2) {
      // Limits and the load balancer share one cgroup: <cgroup2_dir>/<id>.
      ASSIGN_OR_RETURN(cgroups, CgroupDriver::ForV2Folder(cgroups, options.cgroup2_dir));
    }
  }
  std::unique_ptr<Supervisor> s(new Supervisor(std::move(options), images, std::move(cgroups)));
  for (const std::string& id : ListDir(s->options_.state_dir)) {
    absl::Status adopted = s->Adopt(id);
    if (!adopted.ok()) LOG_WARNING("cannot adopt container", {"id", id}, {"error", adopted});
  }
  return s;
}

Supervisor::~Supervisor() = default;

absl::Status Supervisor::Adopt(const std::string& id, UniqueFd shim_pidfd) {
  auto c = std::make_shared<Container>();
  c->id = id;
  c->bundle = StrCat(options_.state_dir, "/", id);
  absl::StatusOr<Json> config = ReadJsonFile(StrCat(c->bundle, "/config.json"));
  if (config.ok()) {
    absl::StatusOr<ShimConfig> parsed = ShimConfigFromJson(*config);
    if (parsed.ok()) c->config = std::move(*parsed);
  }
  c->config.id = id;
  absl::StatusOr<Json> running = ReadJsonFile(StrCat(c->bundle, "/running.json"));
  if (running.ok()) {
    absl::StatusOr<RunningRecord> r = RunningRecordFromJson(*running);
    if (r.ok()) {
      c->running = *r;
      c->shim_pidfd =
          shim_pidfd.valid() ? std::move(shim_pidfd) : OpenPidfd(r->shim_pid, r->shim_start);
      c->pidfd = OpenPidfd(r->pid, r->pid_start);
    }
  }
  absl::MutexLock lock(&mu_);
  containers_[id] = std::move(c);
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<Supervisor::Container>> Supervisor::Find(std::string_view id) {
  absl::MutexLock lock(&mu_);
  auto it = containers_.find(std::string(id));
  if (it == containers_.end()) return absl::NotFoundError(StrCat("no container '", id, "'"));
  return it->second;
}

ContainerStatus Supervisor::StatusOf(Container& c) {
  absl::MutexLock lock(&c.mu);
  return StatusOfLocked(c);
}

ContainerStatus Supervisor::StatusOfLocked(Container& c) {
  if (!c.exit.has_value()) {
    absl::StatusOr<Json> j = ReadJsonFile(StrCat(c.bundle, "/exit.json"));
    if (j.ok()) {
      absl::StatusOr<ExitRecord> r = ExitRecordFromJson(*j);
      if (r.ok()) c.exit = *r;
    }
  }
  ContainerStatus st;
  st.id = c.id;
  st.image_digest = c.config.image_digest;
  st.stdout_log = c.config.stdout_log;
  st.stderr_log = c.config.stderr_log;
  if (c.running.has_value()) st.started_at = c.running->started_at;
  if (c.exit.has_value()) {
    ReapShim(c.shim_pidfd);
    st.state = ContainerState::kExited;
    st.exit_code = c.exit->exit_code;
    st.signal = c.exit->signal;
    st.oom_killed = c.exit->oom_killed;
    st.finished_at = c.exit->finished_at;
    return st;
  }
  if (c.shim_pidfd.valid() && !WaitPidfd(c.shim_pidfd, absl::ZeroDuration())) {
    st.state = ContainerState::kRunning;
    st.pid = c.running ? c.running->pid : 0;
    return st;
  }
  ReapShim(c.shim_pidfd);
  // The shim may have written exit.json just before exiting.
  if (ReadFileToString(StrCat(c.bundle, "/exit.json")).ok()) return StatusOfLocked(c);
  st.state = ContainerState::kLost;
  return st;
}

std::string Supervisor::Cgroup2DirFor(const std::string& id) const {
  if (options_.cgroup2_dir.empty()) return "";
  std::string dir = StrCat(options_.cgroup2_dir, "/", id);
  const std::vector<std::string> own = cgroups_.PathsFor(id).dirs;
  return std::find(own.begin(), own.end(), dir) != own.end() ? "" : dir;
}

absl::StatusOr<std::string> Supervisor::ShimPath() const {
  if (!options_.shim_path.empty()) return options_.shim_path;
  char self[4096];
  ssize_t n = ::readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (n > 0) {
    std::string dir(self, static_cast<size_t>(n));
    std::string beside = StrCat(dir.substr(0, dir.rfind('/')), "/loom-shim");
    if (::access(beside.c_str(), X_OK) == 0) return beside;
  }
  std::string built = StrCat(LOOM_BIN_DIR, "/loom-shim");
  if (::access(built.c_str(), X_OK) == 0) return built;
  return absl::NotFoundError("loom-shim not found beside this executable nor in " LOOM_BIN_DIR);
}

absl::Status Supervisor::Cleanup(const std::string& id, const std::string& bundle,
                                 const std::vector<std::string>& joined_cgroups) {
  ContainerCgroup cg = cgroups_.PathsFor(id);
  // The cgroups the container was started in (they may differ from today's options,
  // such as the cgroup2 folder) and those the options name now.
  for (const std::string& dir : joined_cgroups) {
    if (std::find(cg.dirs.begin(), cg.dirs.end(), dir) == cg.dirs.end()) cg.dirs.push_back(dir);
  }
  if (std::string extra = Cgroup2DirFor(id);
      !extra.empty() && std::find(cg.dirs.begin(), cg.dirs.end(), extra) == cg.dirs.end()) {
    cg.dirs.push_back(extra);
  }
  absl::Status status = cgroups_.Remove(cg);
  absl::Status removed = RemoveTree(bundle);
  if (status.ok()) status = removed;
  return status;
}

absl::StatusOr<ContainerStatus> Supervisor::Run(const ContainerSpec& spec) {
  RETURN_IF_ERROR(ValidateContainerSpec(spec));
  ASSIGN_OR_RETURN(Image image, images_->Get(spec.image));
  ASSIGN_OR_RETURN(std::string shim_path, ShimPath());
  ShimConfig c;
  c.id = spec.id;
  c.image_digest = image.digest;
  c.argv = spec.command;
  if (c.argv.empty()) {
    c.argv = image.config.entrypoint;
    c.argv.insert(c.argv.end(), image.config.cmd.begin(), image.config.cmd.end());
  }
  if (c.argv.empty()) {
    return absl::InvalidArgumentError(StrCat("container ", spec.id, ": no command, and image ",
                                             spec.image, " names none"));
  }
  c.hostname = spec.hostname.empty() ? spec.id.substr(0, 12) : spec.hostname;
  c.uid = spec.uid;
  c.gid = spec.gid;
  c.env = MergeEnv({std::string(kDefaultPath), StrCat("HOSTNAME=", c.hostname),
                    spec.uid == 0 ? "HOME=/root" : "HOME=/"},
                   MergeEnv(image.config.env, spec.env));
  c.cwd = !spec.workdir.empty()                 ? spec.workdir
          : !image.config.working_dir.empty() ? image.config.working_dir
                                                : "/";
  c.read_only_root = spec.read_only_root;
  c.netns_path = spec.netns_path;
  c.lower_dir = image.rootfs;
  if (c.lower_dir.find_first_of(",:") != std::string::npos) {
    return absl::InvalidArgumentError(StrCat("image path ", c.lower_dir, " has ',' or ':'"));
  }
  const std::string bundle = StrCat(options_.state_dir, "/", spec.id);
  c.upper_dir = StrCat(bundle, "/upper");
  c.work_dir = StrCat(bundle, "/work");
  c.rootfs = StrCat(bundle, "/rootfs");
  c.stdout_log = spec.stdout_log.empty() ? StrCat(bundle, "/stdout.log") : spec.stdout_log;
  c.stderr_log = spec.stderr_log.empty() ? c.stdout_log : spec.stderr_log;
  c.log_max_bytes = spec.log_max_bytes;
  for (const MountSpec& m : spec.mounts) {
    ShimMount sm;
    sm.source = m.type == MountSpec::Type::kVolume ? StrCat(options_.volumes_dir, "/", m.source)
                                                   : m.source;
    ASSIGN_OR_RETURN(sm.destination, CleanRelativePath(m.destination));
    sm.read_only = m.read_only;
    c.mounts.push_back(std::move(sm));
  }
  {
    absl::MutexLock lock(&mu_);
    if (containers_.contains(spec.id)) {
      return absl::AlreadyExistsError(StrCat("container '", spec.id, "' exists"));
    }
  }
  // mkdir is the reservation of the id, between threads and processes alike.
  if (::mkdir(bundle.c_str(), 0700) != 0) {
    return errno == EEXIST ? absl::AlreadyExistsError(StrCat("container '", spec.id, "' exists"))
                           : ErrnoToStatus(errno, StrCat("mkdir ", bundle));
  }
  UniqueFd shim_pidfd;
  pid_t shim_pid = -1;
  absl::Status status = [&]() -> absl::Status {
    for (const std::string& d : {c.upper_dir, c.work_dir, c.rootfs}) RETURN_IF_ERROR(MakeDirs(d));
    for (const MountSpec& m : spec.mounts) {
      if (m.type == MountSpec::Type::kVolume) {
        RETURN_IF_ERROR(MakeDirs(StrCat(options_.volumes_dir, "/", m.source)));
      }
    }
    ASSIGN_OR_RETURN(ContainerCgroup cg,
                     cgroups_.Create(spec.id, {spec.cpus, spec.memory_bytes, spec.pids_limit}));
    c.cgroup_dirs = cg.dirs;
    c.oom_file = cg.oom_file;
    if (std::string extra = Cgroup2DirFor(spec.id); !extra.empty()) {
      if (::mkdir(extra.c_str(), 0755) != 0 && errno != EEXIST) {
        return ErrnoToStatus(errno, StrCat("mkdir ", extra));
      }
      c.cgroup_dirs.push_back(extra);
    }
    RETURN_IF_ERROR(WriteFileAtomic(StrCat(bundle, "/config.json"), ShimConfigToJson(c).dump(2), 0600));

    // Everything the child needs is prepared here: after fork it only makes syscalls.
    int report[2];
    if (::pipe2(report, O_CLOEXEC) != 0) return ErrnoToStatus(errno, "pipe");
    UniqueFd report_r(report[0]), report_w(report[1]);
    UniqueFd null_fd(::open("/dev/null", O_RDWR | O_CLOEXEC));
    UniqueFd log_fd(::open(StrCat(bundle, "/shim.log").c_str(),
                           O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600));
    if (!null_fd.valid() || !log_fd.valid()) return ErrnoToStatus(errno, "open shim stdio");
    // Above fd 3, so that the dup2s below cannot clobber each other.
    UniqueFd hi_null(::fcntl(null_fd.get(), F_DUPFD_CLOEXEC, 10));
    UniqueFd hi_log(::fcntl(log_fd.get(), F_DUPFD_CLOEXEC, 10));
    UniqueFd hi_report(::fcntl(report_w.get(), F_DUPFD_CLOEXEC, 10));
    std::vector<char*> argv = {const_cast<char*>(shim_path.c_str()),
                               const_cast<char*>(bundle.c_str()), nullptr};
    pid_t pid = ::fork();
    if (pid < 0) return ErrnoToStatus(errno, "fork");
    if (pid == 0) {
      // Its own session: no signal aimed at the supervisor's process group reaches it.
      ::setsid();
      if (::dup2(hi_null.get(), 0) < 0 || ::dup2(hi_null.get(), 1) < 0 ||
          ::dup2(hi_log.get(), 2) < 0 || ::dup2(hi_report.get(), kShimReportFd) < 0) {
        ::_exit(127);
      }
      // Nothing else of this process (listening sockets, its API socket...) may live on
      // in the shim, which outlives it.
      ::close_range(kShimReportFd + 1, ~0U, 0);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    shim_pid = pid;
    shim_pidfd.reset(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
    report_w.reset();
    hi_report.reset();
    std::string report_msg;
    absl::Time deadline = absl::Now() + options_.start_timeout;
    for (;;) {
      struct pollfd p = {report_r.get(), POLLIN, 0};
      int ms = static_cast<int>(
          std::max<int64_t>(0, absl::ToInt64Milliseconds(deadline - absl::Now())));
      int r = ::poll(&p, 1, ms);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) {
        return absl::DeadlineExceededError(
            StrCat("container ", spec.id, ": the shim did not report within ",
                   absl::FormatDuration(options_.start_timeout)));
      }
      char buf[4096];
      ssize_t n = ::read(report_r.get(), buf, sizeof(buf));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      report_msg.append(buf, static_cast<size_t>(n));
    }
    if (report_msg != "ok") {
      std::string why = report_msg.rfind("error: ", 0) == 0 ? report_msg.substr(7)
                        : report_msg.empty()
                            ? StrCat("the shim exited without a report (see ", bundle, "/shim.log)")
                            : report_msg;
      return absl::FailedPreconditionError(StrCat("start container ", spec.id, ": ", why));
    }
    return absl::OkStatus();
  }();
  if (!status.ok()) {
    if (shim_pid > 0) {
      ::kill(shim_pid, SIGKILL);
      ::waitpid(shim_pid, nullptr, 0);
    }
    (void)Cleanup(spec.id, bundle, c.cgroup_dirs);
    return status;
  }
  // The pidfd of our own child was opened before the shim could exit, so it is kept
  // rather than reopened by pid.
  RETURN_IF_ERROR(Adopt(spec.id, std::move(shim_pidfd)));
  ASSIGN_OR_RETURN(std::shared_ptr<Container> container, Find(spec.id));
  LOG_INFO("container started", {"id", spec.id}, {"image", image.digest},
           {"pid", container->running ? container->running->pid : 0});
  return StatusOf(*container);
}

absl::StatusOr<ContainerStatus> Supervisor::Inspect(std::string_view id) {
  ASSIGN_OR_RETURN(std::shared_ptr<Container> c, Find(id));
  return StatusOf(*c);
}

std::vector<ContainerStatus> Supervisor::List() {
  std::vector<std::shared_ptr<Container>> all;
  {
    absl::MutexLock lock(&mu_);
    for (auto& [id, c] : containers_) all.push_back(c);
  }
  std::vector<ContainerStatus> out;
  for (auto& c : all) out.push_back(StatusOf(*c));
  std::sort(out.begin(), out.end(),
            [](const ContainerStatus& a, const ContainerStatus& b) { return a.id < b.id; });
  return out;
}

absl::StatusOr<ContainerStatus> Supervisor::Wait(std::string_view id, absl::Duration timeout) {
  ASSIGN_OR_RETURN(std::shared_ptr<Container> c, Find(id));
  ContainerStatus st = StatusOf(*c);
  if (st.state != ContainerState::kRunning) return st;
  if (!WaitPidfd(c->shim_pidfd, timeout)) {
    return absl::DeadlineExceededError(StrCat("container ", id, " is still running"));
  }
  return StatusOf(*c);
}

absl::StatusOr<ContainerStatus> Supervisor::Stop(std::string_view id, absl::Duration grace) {
  ASSIGN_OR_RETURN(std::shared_ptr<Container> c, Find(id));
  ContainerStatus st = StatusOf(*c);
  if (st.state != ContainerState::kRunning) return st;
  if (c->pidfd.valid()) ::syscall(SYS_pidfd_send_signal, c->pidfd.get(), SIGTERM, nullptr, 0);
  if (!WaitPidfd(c->shim_pidfd, grace)) {
    if (c->pidfd.valid()) ::syscall(SYS_pidfd_send_signal, c->pidfd.get(), SIGKILL, nullptr, 0);
    if (!WaitPidfd(c->shim_pidfd, absl::Seconds(10))) {
      return absl::DeadlineExceededError(StrCat("container ", id, " survived SIGKILL for 10 s"));
    }
  }
  LOG_INFO("container stopped", {"id", id});
  return StatusOf(*c);
}

absl::Status Supervisor::Remove(std::string_view id, bool force) {
  ASSIGN_OR_RETURN(std::shared_ptr<Container> c, Find(id));
  ContainerStatus st = StatusOf(*c);
  if (st.state == ContainerState::kRunning) {
    if (!force) {
      return absl::FailedPreconditionError(
          StrCat("container ", id, " is running; stop it first or force removal"));
    }
    RETURN_IF_ERROR(Stop(id, absl::ZeroDuration()).status());
  }
  // A lost container's PID 1 may outlive its shim only until the shim's death signal.
  if (c->pidfd.valid()) ::syscall(SYS_pidfd_send_signal, c->pidfd.get(), SIGKILL, nullptr, 0);
  if (!WaitPidfd(c->shim_pidfd, absl::Seconds(5)) && c->shim_pidfd.valid()) {
    ::syscall(SYS_pidfd_send_signal, c->shim_pidfd.get(), SIGKILL, nullptr, 0);
    WaitPidfd(c->shim_pidfd, absl::Seconds(5));
  }
  ReapShim(c->shim_pidfd);
  RETURN_IF_ERROR(Cleanup(c->id, c->bundle, c->config.cgroup_dirs));
  absl::MutexLock lock(&mu_);
  containers_.erase(c->id);
  LOG_INFO("container removed", {"id", id});
  return absl::OkStatus();
}

absl::StatusOr<ExecResult> Supervisor::Exec(std::string_view id, const ExecSpec& spec,
                                            absl::Duration timeout) {
  if (spec.command.empty()) return absl::InvalidArgumentError("exec: empty command");
  ASSIGN_OR_RETURN(std::shared_ptr<Container> c, Find(id));
  ContainerStatus st = StatusOf(*c);
  if (st.state != ContainerState::kRunning || !c->running) {
    return absl::FailedPreconditionError(StrCat("container ", id, " is not running"));
  }
  const pid_t target = c->running->pid;
  std::vector<UniqueFd> ns;
  for (const char* kind : {"ipc", "uts", "net", "pid", "mnt"}) {
    UniqueFd fd(::open(StrCat("/proc/", target, "/ns/", kind).c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid()) return ErrnoToStatus(errno, StrCat("open ", kind, " namespace of ", id));
    ns.push_back(std::move(fd));
  }
  // The namespaces opened above are the container's only if its PID 1 is still the same.
  absl::StatusOr<unsigned long long> start = ProcessStartTime(target);
  if (!start.ok() || *start != c->running->pid_start) {
    return absl::FailedPreconditionError(StrCat("container ", id, " has exited"));
  }
  std::vector<UniqueFd> cgroup_procs;
  for (const std::string& dir : c->config.cgroup_dirs) {
    UniqueFd fd(::open(StrCat(dir, "/cgroup.procs").c_str(), O_WRONLY | O_CLOEXEC));
    if (!fd.valid()) return ErrnoToStatus(errno, StrCat("open ", dir, "/cgroup.procs"));
    cgroup_procs.push_back(std::move(fd));
  }
  std::vector<std::string> env = MergeEnv(c->config.env, spec.env);
  std::vector<char*> argv, envp;
  for (const std::string& a : spec.command) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  for (const std::string& e : env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  const std::string cwd = spec.workdir.empty() ? c->config.cwd : spec.workdir;
  const uid_t uid = spec.uid.value_or(c->config.uid);
  const gid_t gid = spec.gid.value_or(c->config.gid);
  int out[2], err[2];
  if (::pipe2(out, O_CLOEXEC) != 0) return ErrnoToStatus(errno, "pipe");
  if (::pipe2(err, O_CLOEXEC) != 0) {
    ::close(out[0]);
    ::close(out[1]);
    return ErrnoToStatus(errno, "pipe");
  }
  UniqueFd out_r(out[0]), out_w(out[1]), err_r(err[0]), err_w(err[1]);
  UniqueFd null_fd(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  pid_t pid = ::fork();
  if (pid < 0) return ErrnoToStatus(errno, "fork");
  if (pid == 0) {
    // Only syscalls from here on: the parent is multi-threaded.
    auto die = [&](const char* msg) {
      (void)!::write(err_w.get(), msg, strlen(msg));
      ::_exit(126);
    };
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    for (const UniqueFd& fd : cgroup_procs) {
      if (::write(fd.get(), "0", 1) != 1) die("loom exec: cannot join the container's cgroup\n");
    }
    for (const UniqueFd& fd : ns) {
      if (::setns(fd.get(), 0) != 0) die("loom exec: cannot join the container's namespaces\n");
    }
    // Only children enter the PID namespace.
    pid_t child = ::fork();
    if (child < 0) die("loom exec: fork failed\n");
    if (child == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::chdir(cwd.c_str()) != 0) die("loom exec: cannot chdir to the working directory\n");
      if (!DropCapabilities()) die("loom exec: cannot drop capabilities\n");
      if (::setgroups(0, nullptr) != 0 || ::setgid(gid) != 0 || ::setuid(uid) != 0) {
        die("loom exec: cannot set uid/gid\n");
      }
      if (::dup2(null_fd.get(), 0) < 0 || ::dup2(out_w.get(), 1) < 0 || ::dup2(err_w.get(), 2) < 0) {
        die("loom exec: cannot set up stdio\n");
      }
      ::close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
      environ = envp.data();
      ::execvp(argv[0], argv.data());
      const char msg[] = "loom exec: command not found or not executable\n";
      (void)!::write(2, msg, sizeof(msg) - 1);
      ::_exit(127);
    }
    int ws = 0;
    while (::waitpid(child, &ws, 0) < 0) {
      if (errno != EINTR) ::_exit(126);
    }
    ::_exit(WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws));
  }
  out_w.reset();
  err_w.reset();
  ExecResult result;
  absl::Time deadline = absl::Now() + timeout;
  bool timed_out = false;
  UniqueFd* streams[2] = {&out_r, &err_r};
  std::string* sinks[2] = {&result.out, &result.err};
  while (out_r.valid() || err_r.valid()) {
    struct pollfd fds[2];
    int idx[2];
    int n = 0;
    for (int i = 0; i < 2; ++i) {
      if (streams[i]->valid()) {
        idx[n] = i;
        fds[n++] = {streams[i]->get(), POLLIN, 0};
      }
    }
    if (PollUntil(fds, static_cast<size_t>(n), deadline) <= 0) {
      timed_out = true;
      break;
    }
    for (int k = 0; k < n; ++k) {
      if (!(fds[k].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      char buf[65536];
      ssize_t got = ::read(fds[k].fd, buf, sizeof(buf));
      if (got > 0) {
        std::string* sink = sinks[idx[k]];
        sink->append(buf, std::min(static_cast<size_t>(got), kMaxExecOutput - std::min(kMaxExecOutput, sink->size())));
      } else if (got == 0 || errno != EINTR) {
        streams[idx[k]]->reset();
      }
    }
  }
  if (timed_out) ::kill(pid, SIGKILL);
  int ws = 0;
  while (::waitpid(pid, &ws, 0) < 0 && errno == EINTR) {
  }
  if (timed_out) {
    return absl::DeadlineExceededError(StrCat("exec in ", id, " ran over ", absl::FormatDuration(timeout)));
  }
  result.exit_code = WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
  return result;
}

std::vector<std::string> Supervisor::ListVolumes() const { return ListDir(options_.volumes_dir); }

absl::Status Supervisor::RemoveVolume(std::string_view name) {
  RETURN_IF_ERROR(ValidateVolumeName(name));
  const std::string path = StrCat(options_.volumes_dir, "/", name);
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [id, c] : containers_) {
      for (const ShimMount& m : c->config.mounts) {
        if (m.source == path) {
          return absl::FailedPreconditionError(
              StrCat("volume ", name, " is used by container ", id));
        }
      }
    }
  }
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return absl::NotFoundError(StrCat("no volume '", name, "'"));
  return RemoveTree(path);
}

}  // namespace loom::runtime
