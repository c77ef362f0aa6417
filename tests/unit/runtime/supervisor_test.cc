// Containers for real: busybox images, namespaces, cgroups, the shim, adoption by a new
// Supervisor, and cleanup that leaves no process, mount, cgroup or file behind.
#include "runtime/supervisor.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <set>

#include "absl/strings/str_split.h"
#include "common/net/netns.h"
#include "common/strings.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "runtime/fs_util.h"
#include "tests/testing/privileged.h"
#include "tests/testing/status_matchers.h"
#include "tests/unit/runtime/busybox_image.h"

namespace loom::runtime {
namespace {

using ::loom::testing::StatusIs;
using ::testing::HasSubstr;

bool Exists(const std::string& p) {
  struct stat st;
  return ::lstat(p.c_str(), &st) == 0;
}

bool ProcessExists(pid_t pid) { return pid > 0 && (::kill(pid, 0) == 0 || errno != ESRCH); }

class SupervisorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    LOOM_REQUIRE_ROOT();
    LOOM_REQUIRE(::access(testing::kHostBusybox, X_OK) == 0, "/bin/busybox (busybox-static)");
    static std::atomic<int> n{0};
    const std::string unique = StrCat(::getpid(), "-", n++);
    base_ = StrCat("/tmp/loom-rt-test-", unique);
    cgroup_parent_ = StrCat("loom-test-", unique);
    ASSERT_OK(MakeDirs(base_));
    ASSERT_OK_AND_ASSIGN(images_, ImageStore::Open(StrCat(base_, "/images")));
    const std::string rootfs = StrCat(base_, "/busybox-rootfs");
    ASSERT_OK(testing::MakeBusyboxRootfs(rootfs));
    ASSERT_OK(images_->Import(rootfs, {.name = "busybox"}).status());
    ASSERT_OK(OpenSupervisor());
  }

  absl::Status OpenSupervisor(std::string cgroup2_dir = "") {
    SupervisorOptions o;
    o.cgroup2_dir = std::move(cgroup2_dir);
    o.state_dir = StrCat(base_, "/state");
    o.volumes_dir = StrCat(base_, "/volumes");
    o.cgroup_parent = cgroup_parent_;
    o.shim_path = StrCat(LOOM_BIN_DIR, "/loom-shim");
    absl::StatusOr<std::unique_ptr<Supervisor>> s = Supervisor::Open(o, images_.get());
    if (!s.ok()) return s.status();
    sup_ = std::move(*s);
    return absl::OkStatus();
  }

  void TearDown() override {
    if (sup_ != nullptr) {
      for (const ContainerStatus& c : sup_->List()) EXPECT_OK(sup_->Remove(c.id, /*force=*/true));
      // The per-test parent cgroup folders.
      CgroupDriver cg = *CgroupDriver::Detect("/sys/fs/cgroup", cgroup_parent_);
      for (const std::string& dir : cg.PathsFor("x").dirs) {
        EXPECT_EQ(::rmdir(dir.substr(0, dir.rfind('/')).c_str()), 0) << dir;
      }
    }
    sup_.reset();
    images_.reset();
    if (!cgroup2_test_dir_.empty()) {
      EXPECT_EQ(::rmdir(cgroup2_test_dir_.c_str()), 0) << cgroup2_test_dir_;
    }
    if (!base_.empty()) {
      EXPECT_FALSE(MountinfoMentions(base_)) << "a mount is left under " << base_;
      EXPECT_OK(RemoveTree(base_));
    }
  }

  static bool MountinfoMentions(const std::string& path) {
    absl::StatusOr<std::string> mi = ReadFileToString("/proc/self/mountinfo");
    return mi.ok() && mi->find(path) != std::string::npos;
  }

  ContainerSpec Spec(std::string id, std::vector<std::string> command) {
    ContainerSpec s;
    s.id = std::move(id);
    s.image = "busybox";
    s.command = std::move(command);
    return s;
  }

  std::string Log(const ContainerStatus& st) {
    absl::StatusOr<std::string> log = ReadFileToString(st.stdout_log);
    return log.ok() ? *log : "";
  }

  // After removal: no process, no mount, no cgroup folder, no bundle.
  void ExpectGone(const std::string& id, pid_t pid) {
    EXPECT_FALSE(ProcessExists(pid)) << "pid " << pid << " of " << id << " is still there";
    EXPECT_FALSE(MountinfoMentions(StrCat(base_, "/state/", id)));
    CgroupDriver cg = *CgroupDriver::Detect("/sys/fs/cgroup", cgroup_parent_);
    for (const std::string& dir : cg.PathsFor(id).dirs) EXPECT_FALSE(Exists(dir)) << dir;
    EXPECT_FALSE(Exists(StrCat(base_, "/state/", id)));
  }

  // The first cgroup2 mount in /proc/mounts, or "".
  static std::string Cgroup2Mount() {
    absl::StatusOr<std::string> mounts = ReadFileToString("/proc/mounts");
    if (!mounts.ok()) return "";
    for (absl::string_view line : absl::StrSplit(*mounts, '\n')) {
      std::vector<std::string> f = absl::StrSplit(line, ' ');
      if (f.size() > 2 && f[2] == "cgroup2") return f[1];
    }
    return "";
  }

  std::string base_;
  std::string cgroup_parent_;
  std::string cgroup2_test_dir_;  // removed by TearDown
  std::unique_ptr<ImageStore> images_;
  std::unique_ptr<Supervisor> sup_;
};

TEST_F(SupervisorTest, CommandIsPidOneInItsOwnNamespaces) {
  ContainerSpec spec = Spec("iso", {"sleep", "1000"});
  spec.hostname = "box-one";
  ASSERT_OK_AND_ASSIGN(ContainerStatus st, sup_->Run(spec));
  ASSERT_EQ(st.state, ContainerState::kRunning);
  ASSERT_GT(st.pid, 0);

  ASSERT_OK_AND_ASSIGN(ExecResult cmdline, sup_->Exec("iso", {.command = {"cat", "/proc/1/cmdline"}}));
  EXPECT_EQ(cmdline.exit_code, 0) << cmdline.err;
  EXPECT_EQ(cmdline.out, std::string("sleep\0" "1000\0", 11));

  ASSERT_OK_AND_ASSIGN(ExecResult host, sup_->Exec("iso", {.command = {"hostname"}}));
  EXPECT_EQ(host.out, "box-one\n");

  // Only PID 1 and the exec'd `ls` itself.
  ASSERT_OK_AND_ASSIGN(ExecResult ps, sup_->Exec("iso", {.command = {"ls", "/proc"}}));
  std::set<int> pids;
  for (absl::string_view name : absl::StrSplit(ps.out, absl::ByAnyChar(" \n"), absl::SkipEmpty())) {
    int pid;
    if (absl::SimpleAtoi(name, &pid)) pids.insert(pid);
  }
  EXPECT_TRUE(pids.contains(1));
  EXPECT_LE(pids.size(), 2u) << ps.out;

  // Its mount table is its own: /, /proc (and its masks), /sys, /dev and below.
  ASSERT_OK_AND_ASSIGN(ExecResult mi, sup_->Exec("iso", {.command = {"cat", "/proc/self/mountinfo"}}));
  const std::set<std::string> allowed = {
      "/",         "/proc",          "/sys",          "/dev",          "/dev/pts",
      "/dev/shm",  "/proc/sys",      "/proc/sysrq-trigger", "/proc/irq", "/proc/bus",
      "/proc/kcore", "/proc/keys",   "/proc/timer_list", "/proc/kallsyms"};
  for (absl::string_view line : absl::StrSplit(mi.out, '\n', absl::SkipEmpty())) {
    std::vector<std::string> f = absl::StrSplit(line, ' ');
    ASSERT_GT(f.size(), 4u);
    EXPECT_TRUE(allowed.contains(f[4])) << "host mount visible: " << line;
  }

  // Exec sees the container's environment and working directory, and reports exit codes.
  ASSERT_OK_AND_ASSIGN(ExecResult env, sup_->Exec("iso", {.command = {"sh", "-c", "echo $HOSTNAME $X; pwd; exit 3"},
                                                          .env = {"X=y"}, .workdir = "/tmp"}));
  EXPECT_EQ(env.out, "box-one y\n/tmp\n");
  EXPECT_EQ(env.exit_code, 3);
  ASSERT_OK_AND_ASSIGN(ExecResult missing, sup_->Exec("iso", {.command = {"no-such-command"}}));
  EXPECT_EQ(missing.exit_code, 127);

  // A new network namespace: only loopback.
  ASSERT_OK_AND_ASSIGN(ExecResult links, sup_->Exec("iso", {.command = {"ls", "/sys/class/net"}}));
  EXPECT_EQ(links.out, "lo\n");

  const pid_t pid = st.pid;
  ASSERT_OK_AND_ASSIGN(ContainerStatus stopped, sup_->Stop("iso", absl::Milliseconds(200)));
  EXPECT_EQ(stopped.state, ContainerState::kExited);
  EXPECT_EQ(stopped.signal, SIGKILL);  // PID 1 without a TERM handler ignores SIGTERM
  ASSERT_OK(sup_->Remove("iso"));
  ExpectGone("iso", pid);
  EXPECT_THAT(sup_->Inspect("iso"), StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(SupervisorTest, RootInsideIsConfined) {
  const std::string probe =
      "mknod /tmp/sda b 8 0 2>/dev/null || echo no-mknod; "
      "mount -t tmpfs t /tmp 2>/dev/null || echo no-mount; "
      "(echo x > /proc/sys/kernel/hostname) 2>/dev/null || echo no-sysctl; "
      "[ -s /proc/kcore ] || echo no-kcore; "
      "sethostname() { hostname evil; }; sethostname 2>/dev/null || echo no-hostname";
  const std::string expected = "no-mknod\nno-mount\nno-sysctl\nno-kcore\nno-hostname\n";
  ASSERT_OK(sup_->Run(Spec("confined", {"sh", "-c", StrCat(probe, "; sleep 1000")})).status());
  // The container's own command and a command exec'd into it are confined alike.
  ASSERT_OK_AND_ASSIGN(ExecResult e, sup_->Exec("confined", {.command = {"sh", "-c", probe}}));
  EXPECT_EQ(e.out, expected);
  // The container's own probe runs concurrently with the exec: under load it may not
  // have written everything yet, so wait (bounded) before stopping it.
  ASSERT_OK_AND_ASSIGN(ContainerStatus running, sup_->Inspect("confined"));
  absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (Log(running) != expected && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(20));
  ASSERT_OK_AND_ASSIGN(ContainerStatus st, sup_->Stop("confined", absl::ZeroDuration()));
  EXPECT_EQ(Log(st), expected);
}

// How a CNI plugin's namespace is used: the container joins it instead of a new one.
TEST_F(SupervisorTest, JoinsAGivenNetworkNamespace) {
  static std::atomic<int> n{0};
  const std::string name = StrCat("loom-rt-", ::getpid(), "-", n++);
  ASSERT_OK(net::CreateNamedNetns(name));
  struct Deleter {
    std::string name;
    ~Deleter() { (void)net::DeleteNamedNetns(name); }
  } deleter{name};
  ASSERT_OK_AND_ASSIGN(net::NetnsFd ns, net::NetnsFd::OpenNamed(name));
  ASSERT_OK_AND_ASSIGN(ino_t inode, ns.Inode());
  ContainerSpec spec = Spec("joined", {"sleep", "1000"});
  spec.netns_path = net::NamedNetnsPath(name);
  ASSERT_OK(sup_->Run(spec).status());
  ASSERT_OK_AND_ASSIGN(ExecResult link, sup_->Exec("joined", {.command = {"readlink", "/proc/1/ns/net"}}));
  EXPECT_EQ(link.out, StrCat("net:[", inode, "]\n"));
  ASSERT_OK_AND_ASSIGN(ExecResult mine, sup_->Exec("joined", {.command = {"readlink", "/proc/self/ns/net"}}));
  EXPECT_EQ(mine.out, link.out);
  ASSERT_OK(sup_->Remove("joined", /*force=*/true));
  ContainerSpec missing = Spec("nonet", {"true"});
  missing.netns_path = StrCat(net::NamedNetnsPath(name), "-missing");
  EXPECT_THAT(sup_->Run(missing), StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("netns")));
}

TEST_F(SupervisorTest, OutputGoesToTheLogAndExitCodeIsReported) {
  ASSERT_OK_AND_ASSIGN(ContainerStatus st,
                       sup_->Run(Spec("logs", {"sh", "-c", "echo to-stdout; echo to-stderr >&2; exit 5"})));
  ASSERT_OK_AND_ASSIGN(ContainerStatus done, sup_->Wait("logs", absl::Seconds(10)));
  EXPECT_EQ(done.state, ContainerState::kExited);
  EXPECT_EQ(done.exit_code, 5);
  EXPECT_FALSE(done.oom_killed);
  EXPECT_EQ(Log(done), "to-stdout\nto-stderr\n");
  ASSERT_OK(sup_->Remove("logs"));
  ExpectGone("logs", st.pid);
}

TEST_F(SupervisorTest, LogsAreRotatedAtTheirLimit) {
  ContainerSpec spec = Spec("rot", {"sh", "-c", "i=0; while [ $i -lt 2000 ]; do echo line-$i; i=$((i+1)); done"});
  spec.log_max_bytes = 4096;
  spec.stdout_log = StrCat(base_, "/rot.log");
  ASSERT_OK(sup_->Run(spec).status());
  ASSERT_OK_AND_ASSIGN(ContainerStatus done, sup_->Wait("rot", absl::Seconds(20)));
  EXPECT_EQ(done.exit_code, 0);
  struct stat cur, old;
  ASSERT_EQ(::stat(spec.stdout_log.c_str(), &cur), 0);
  ASSERT_EQ(::stat(StrCat(spec.stdout_log, ".1").c_str(), &old), 0);
  EXPECT_LE(cur.st_size, 4096);
  EXPECT_LE(old.st_size, 4096);
  EXPECT_THAT(Log(done), HasSubstr("line-1999\n"));
  ASSERT_OK(sup_->Remove("rot"));
}

TEST_F(SupervisorTest, MemoryLimitOomKillIsReported) {
  ContainerSpec spec = Spec("oom", {"tail", "/dev/zero"});
  spec.memory_bytes = 16 << 20;
  ASSERT_OK_AND_ASSIGN(ContainerStatus st, sup_->Run(spec));
  ASSERT_OK_AND_ASSIGN(ContainerStatus done, sup_->Wait("oom", absl::Seconds(30)));
  EXPECT_EQ(done.state, ContainerState::kExited);
  EXPECT_TRUE(done.oom_killed);
  EXPECT_EQ(done.signal, SIGKILL);
  EXPECT_EQ(done.exit_code, 137);
  ASSERT_OK(sup_->Remove("oom"));
  ExpectGone("oom", st.pid);
}

TEST_F(SupervisorTest, CgroupLimitsAreWritten) {
  ContainerSpec spec = Spec("limits", {"sleep", "1000"});
  spec.memory_bytes = 64 << 20;
  spec.cpus = 0.5;
  spec.pids_limit = 20;
  ASSERT_OK(sup_->Run(spec).status());
  CgroupDriver cg = *CgroupDriver::Detect("/sys/fs/cgroup", cgroup_parent_);
  ContainerCgroup paths = cg.PathsFor("limits");
  if (cg.version() == 1) {
    EXPECT_THAT(ReadFileToString(StrCat(paths.dirs[0], "/memory.limit_in_bytes")),
                ::loom::testing::IsOkAndHolds(StrCat(64 << 20, "\n")));
    EXPECT_THAT(ReadFileToString(StrCat(paths.dirs[1], "/cpu.cfs_quota_us")),
                ::loom::testing::IsOkAndHolds("50000\n"));
    EXPECT_THAT(ReadFileToString(StrCat(paths.dirs[2], "/pids.max")),
                ::loom::testing::IsOkAndHolds("20\n"));
  } else {
    EXPECT_THAT(ReadFileToString(StrCat(paths.dirs[0], "/cpu.max")),
                ::loom::testing::IsOkAndHolds("50000 100000\n"));
  }
  // The pids limit holds inside: 30 more processes cannot all start.
  ASSERT_OK_AND_ASSIGN(ExecResult forks, sup_->Exec("limits", {.command = {"sh", "-c",
      "i=0; while [ $i -lt 30 ]; do sleep 2 >/dev/null 2>&1 & i=$((i+1)); done; echo started"}}));
  EXPECT_THAT(forks.err, HasSubstr("can't fork"));
  ASSERT_OK(sup_->Remove("limits", /*force=*/true));
}

// The load balancer's contract: every process of a container, PID 1 and exec'd ones,
// is in <cgroup2_dir>/<id> (besides the v1 limit cgroups here), removed with it.
TEST_F(SupervisorTest, ProcessesJoinTheCgroup2Folder) {
  const std::string mount = Cgroup2Mount();
  LOOM_REQUIRE(!mount.empty(), "a cgroup2 mount");
  cgroup2_test_dir_ = StrCat(mount, "/", cgroup_parent_, "-lb");
  ASSERT_EQ(::mkdir(cgroup2_test_dir_.c_str(), 0755), 0) << cgroup2_test_dir_;
  sup_.reset();
  EXPECT_THAT(OpenSupervisor(StrCat(base_, "/not-a-cgroup")),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not an existing folder of a cgroup2 mount")));
  ASSERT_OK(OpenSupervisor(cgroup2_test_dir_));
  ASSERT_OK_AND_ASSIGN(ContainerStatus st, sup_->Run(Spec("lb", {"sleep", "1000"})));
  const std::string dir = StrCat(cgroup2_test_dir_, "/lb");
  const std::string rel = dir.substr(mount.size());
  EXPECT_THAT(ReadFileToString(StrCat(dir, "/cgroup.procs")),
              ::loom::testing::IsOkAndHolds(StrCat(st.pid, "\n")));
  // An exec'd process is there too (the container shares the host's cgroup namespace).
  ASSERT_OK_AND_ASSIGN(ExecResult self, sup_->Exec("lb", {.command = {"cat", "/proc/self/cgroup"}}));
  EXPECT_THAT(self.out, HasSubstr(StrCat("0::", rel, "\n")));
  if (sup_->cgroup_version() == 1) {
    CgroupDriver cg = *CgroupDriver::Detect("/sys/fs/cgroup", cgroup_parent_);
    EXPECT_THAT(ReadFileToString(StrCat(cg.PathsFor("lb").dirs[0], "/cgroup.procs")),
                ::loom::testing::IsOkAndHolds(StrCat(st.pid, "\n")));
    EXPECT_THAT(self.out, HasSubstr(StrCat(":memory:/", cgroup_parent_, "/lb\n")));
  }
  // Adopted by a new supervisor, then removed: the folder goes.
  sup_.reset();
  ASSERT_OK(OpenSupervisor(cgroup2_test_dir_));
  ASSERT_OK(sup_->Remove("lb", /*force=*/true));
  EXPECT_FALSE(Exists(dir));
  ExpectGone("lb", st.pid);
}

TEST_F(SupervisorTest, StopSendsTermThenReportsTheExitCode) {
  ASSERT_OK_AND_ASSIGN(ContainerStatus st, sup_->Run(Spec("term", {"sh", "-c",
      "trap 'exit 7' TERM; echo ready; while true; do sleep 0.1; done"})));
  // A PID 1 ignores SIGTERM until its handler is installed: wait for that first.
  absl::Time ready_by = absl::Now() + absl::Seconds(10);
  while (Log(st).find("ready") == std::string::npos && absl::Now() < ready_by) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  absl::Time start = absl::Now();
  ASSERT_OK_AND_ASSIGN(ContainerStatus done, sup_->Stop("term", absl::Seconds(5)));
  EXPECT_LT(absl::Now() - start, absl::Seconds(3));
  EXPECT_EQ(done.exit_code, 7);
  EXPECT_EQ(done.signal, 0);
  // A container that ignores SIGTERM is killed once the grace period is over.
  ASSERT_OK(sup_->Run(Spec("stubborn", {"sleep", "1000"})).status());
  start = absl::Now();
  ASSERT_OK_AND_ASSIGN(ContainerStatus killed, sup_->Stop("stubborn", absl::Milliseconds(500)));
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(500));
  EXPECT_LT(absl::Now() - start, absl::Seconds(4));
  EXPECT_EQ(killed.exit_code, 137);
  EXPECT_THAT(sup_->Remove("term"), ::loom::testing::IsOk());
  EXPECT_THAT(sup_->Remove("stubborn"), ::loom::testing::IsOk());
}

TEST_F(SupervisorTest, ReadOnlyRootRefusesWrites) {
  ContainerSpec ro = Spec("ro", {"sh", "-c", "touch /file-in-root && echo wrote"});
  ro.read_only_root = true;
  ASSERT_OK(sup_->Run(ro).status());
  ASSERT_OK_AND_ASSIGN(ContainerStatus done, sup_->Wait("ro", absl::Seconds(10)));
  EXPECT_NE(done.exit_code, 0);
  EXPECT_THAT(Log(done), HasSubstr("Read-only file system"));
  // The same command on a writable root succeeds, and the image itself is untouched.
  ASSERT_OK(sup_->Run(Spec("rw", {"sh", "-c", "touch /file-in-root && echo wrote"})).status());
  ASSERT_OK_AND_ASSIGN(ContainerStatus rw, sup_->Wait("rw", absl::Seconds(10)));
  EXPECT_EQ(rw.exit_code, 0);
  EXPECT_EQ(Log(rw), "wrote\n");
  ASSERT_OK_AND_ASSIGN(Image image, images_->Get("busybox"));
  EXPECT_FALSE(Exists(StrCat(image.rootfs, "/file-in-root")));
}

TEST_F(SupervisorTest, BindMountsAndNamedVolumes) {
  const std::string host_dir = StrCat(base_, "/host-data");
  ASSERT_OK(MakeDirs(host_dir));
  ASSERT_OK(WriteFileAtomic(StrCat(host_dir, "/greeting"), "hello from the host\n"));
  ContainerSpec bind = Spec("bind", {"sh", "-c", "cat /data/greeting; touch /data/new || echo refused"});
  ASSERT_OK_AND_ASSIGN(MountSpec m, ParseMountSpec(StrCat(host_dir, ":/data:ro")));
  bind.mounts = {m};
  ASSERT_OK(sup_->Run(bind).status());
  ASSERT_OK_AND_ASSIGN(ContainerStatus b, sup_->Wait("bind", absl::Seconds(10)));
  EXPECT_THAT(Log(b), HasSubstr("hello from the host\n"));
  EXPECT_THAT(Log(b), HasSubstr("Read-only file system"));
  EXPECT_THAT(Log(b), HasSubstr("refused"));
  EXPECT_FALSE(Exists(StrCat(host_dir, "/new")));

  ContainerSpec writer = Spec("writer", {"sh", "-c", "echo persisted > /vol/note"});
  ASSERT_OK_AND_ASSIGN(MountSpec vol, ParseMountSpec("shared-vol:/vol"));
  writer.mounts = {vol};
  ASSERT_OK(sup_->Run(writer).status());
  ASSERT_OK_AND_ASSIGN(ContainerStatus w, sup_->Wait("writer", absl::Seconds(10)));
  EXPECT_EQ(w.exit_code, 0);
  ASSERT_OK(sup_->Remove("writer"));
  EXPECT_THAT(sup_->ListVolumes(), ::testing::ElementsAre("shared-vol"));

  ContainerSpec reader = Spec("reader", {"cat", "/mnt/v/note"});
  ASSERT_OK_AND_ASSIGN(MountSpec vol2, ParseMountSpec("shared-vol:/mnt/v:ro"));
  reader.mounts = {vol2};
  ASSERT_OK(sup_->Run(reader).status());
  ASSERT_OK_AND_ASSIGN(ContainerStatus r, sup_->Wait("reader", absl::Seconds(10)));
  EXPECT_EQ(Log(r), "persisted\n");
  EXPECT_THAT(sup_->RemoveVolume("shared-vol"), StatusIs(absl::StatusCode::kFailedPrecondition));
  ASSERT_OK(sup_->Remove("reader"));
  ASSERT_OK(sup_->RemoveVolume("shared-vol"));
  EXPECT_TRUE(sup_->ListVolumes().empty());
}

TEST_F(SupervisorTest, ANewSupervisorAdoptsRunningContainers) {
  ASSERT_OK_AND_ASSIGN(ContainerStatus st, sup_->Run(Spec("adopted", {"sh", "-c", "trap 'exit 9' TERM; echo up; while true; do sleep 0.1; done"})));
  const pid_t pid = st.pid;
  // Restart: the old Supervisor goes away, the container does not.
  sup_.reset();
  ASSERT_TRUE(ProcessExists(pid));
  ASSERT_OK(OpenSupervisor());
  ASSERT_OK_AND_ASSIGN(ContainerStatus again, sup_->Inspect("adopted"));
  EXPECT_EQ(again.state, ContainerState::kRunning);
  EXPECT_EQ(again.pid, pid);
  ASSERT_OK_AND_ASSIGN(ExecResult e, sup_->Exec("adopted", {.command = {"cat", "/proc/1/cmdline"}}));
  EXPECT_THAT(e.out, HasSubstr("trap"));
  ASSERT_OK_AND_ASSIGN(ContainerStatus done, sup_->Stop("adopted", absl::Seconds(5)));
  EXPECT_EQ(done.exit_code, 9);
  EXPECT_EQ(Log(done), "up\n");
  // And a third one sees the recorded exit.
  sup_.reset();
  ASSERT_OK(OpenSupervisor());
  ASSERT_OK_AND_ASSIGN(ContainerStatus later, sup_->Inspect("adopted"));
  EXPECT_EQ(later.state, ContainerState::kExited);
  EXPECT_EQ(later.exit_code, 9);
  ASSERT_OK(sup_->Remove("adopted"));
  ExpectGone("adopted", pid);
}

TEST_F(SupervisorTest, FailedStartsLeaveNothingBehind) {
  EXPECT_THAT(sup_->Run(Spec("noexec", {"/no/such/binary"})),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("exec /no/such/binary")));
  ExpectGone("noexec", 0);
  ContainerSpec bad_mount = Spec("badmount", {"true"});
  bad_mount.mounts = {{MountSpec::Type::kBind, StrCat(base_, "/missing"), "/m", false}};
  EXPECT_THAT(sup_->Run(bad_mount), StatusIs(absl::StatusCode::kFailedPrecondition,
                                             HasSubstr("missing")));
  ExpectGone("badmount", 0);
  EXPECT_THAT(sup_->Run(Spec("dup", {"true"})).status(), ::loom::testing::IsOk());
  ContainerSpec unknown = Spec("unknown", {"true"});
  unknown.image = "not-imported";
  EXPECT_THAT(sup_->Run(unknown), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(sup_->Run(Spec("dup", {"true"})), StatusIs(absl::StatusCode::kAlreadyExists));
  ASSERT_OK(sup_->Wait("dup", absl::Seconds(10)).status());
  EXPECT_THAT(sup_->Remove("dup"), ::loom::testing::IsOk());
  EXPECT_TRUE(sup_->List().empty());
}

TEST_F(SupervisorTest, RunsAnOciImageWithItsConfig) {
  const std::string layout = StrCat(base_, "/oci");
  ASSERT_OK(testing::MakeOciLayout(StrCat(base_, "/busybox-rootfs"), layout, "bb:oci"));
  ASSERT_OK(images_->Import(layout, {.name = "bb-oci"}).status());
  ContainerSpec spec = Spec("oci", {});
  spec.image = "bb-oci";
  ASSERT_OK(sup_->Run(spec).status());
  ASSERT_OK_AND_ASSIGN(ContainerStatus done, sup_->Wait("oci", absl::Seconds(10)));
  EXPECT_EQ(Log(done), "from-image-cmd\n");
  ContainerSpec env = Spec("oci-env", {"sh", "-c", "echo $FROM_IMAGE $PWD; ls /etc/removed-by-layer2"});
  env.image = "bb-oci";
  ASSERT_OK(sup_->Run(env).status());
  ASSERT_OK_AND_ASSIGN(ContainerStatus e, sup_->Wait("oci-env", absl::Seconds(10)));
  EXPECT_THAT(Log(e), HasSubstr("oci /tmp\n"));
  EXPECT_NE(e.exit_code, 0);  // the whiteout hid it
}

}  // namespace
}  // namespace loom::runtime
