#include "runtime/cgroups.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "common/status.h"
#include "common/strings.h"
#include "runtime/fs_util.h"

namespace loom::runtime {
namespace {

constexpr const char* kV1Controllers[] = {"memory", "cpu", "pids"};
constexpr int64_t kCfsPeriodUs = 100000;

bool HasMemoryController(const std::string& cgroup2_dir) {
  absl::StatusOr<std::string> c = ReadFileToString(StrCat(cgroup2_dir, "/cgroup.controllers"));
  if (!c.ok()) return false;
  for (absl::string_view w : absl::StrSplit(*c, absl::ByAnyChar(" \n"), absl::SkipEmpty())) {
    if (w == "memory") return true;
  }
  return false;
}

bool IsDir(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

std::vector<pid_t> ReadProcs(const std::string& dir) {
  std::vector<pid_t> pids;
  absl::StatusOr<std::string> procs = ReadFileToString(StrCat(dir, "/cgroup.procs"));
  if (!procs.ok()) return pids;
  for (absl::string_view line : absl::StrSplit(*procs, '\n', absl::SkipEmpty())) {
    int pid;
    if (absl::SimpleAtoi(line, &pid) && pid > 0) pids.push_back(pid);
  }
  return pids;
}

}  // namespace

int64_t ReadOomKillCount(const std::string& oom_file) {
  absl::StatusOr<std::string> text = ReadFileToString(oom_file);
  if (!text.ok()) return 0;
  for (absl::string_view line : absl::StrSplit(*text, '\n')) {
    std::vector<absl::string_view> kv = absl::StrSplit(line, ' ');
    int64_t n;
    if (kv.size() == 2 && kv[0] == "oom_kill" && absl::SimpleAtoi(kv[1], &n)) return n;
  }
  return 0;
}

absl::StatusOr<CgroupDriver> CgroupDriver::Detect(std::string root, std::string parent) {
  if (root.empty() || root[0] != '/') {
    return absl::InvalidArgumentError(StrCat("cgroup root '", root, "' must be absolute"));
  }
  if (parent.empty() || parent.find("..") != std::string::npos) {
    return absl::InvalidArgumentError(StrCat("cgroup parent '", parent, "' is not a folder name"));
  }
  if (HasMemoryController(root)) return CgroupDriver(2, root, parent);
  if (HasMemoryController(StrCat(root, "/unified"))) {
    return CgroupDriver(2, StrCat(root, "/unified"), parent);
  }
  for (const char* c : kV1Controllers) {
    if (!IsDir(StrCat(root, "/", c))) {
      return absl::FailedPreconditionError(
          StrCat("no cgroup2 with the memory controller and no v1 '", c, "' controller under ",
                 root));
    }
  }
  return CgroupDriver(1, root, parent);
}

absl::StatusOr<CgroupDriver> CgroupDriver::ForV2Folder(const CgroupDriver& v2,
                                                       const std::string& folder) {
  if (v2.version_ != 2 || folder.rfind(StrCat(v2.base_, "/"), 0) != 0 ||
      folder.find("..") != std::string::npos) {
    return absl::InvalidArgumentError(
        StrCat("cgroup2 folder '", folder, "' is not inside the cgroup2 mount ", v2.base_));
  }
  return CgroupDriver(2, v2.base_, folder.substr(v2.base_.size() + 1));
}

ContainerCgroup CgroupDriver::PathsFor(const std::string& id) const {
  ContainerCgroup cg;
  cg.version = version_;
  if (version_ == 2) {
    cg.dirs.push_back(StrCat(base_, "/", parent_, "/", id));
    cg.oom_file = StrCat(cg.dirs[0], "/memory.events");
  } else {
    for (const char* c : kV1Controllers) cg.dirs.push_back(StrCat(base_, "/", c, "/", parent_, "/", id));
    cg.oom_file = StrCat(cg.dirs[0], "/memory.oom_control");
  }
  return cg;
}

absl::StatusOr<ContainerCgroup> CgroupDriver::Create(const std::string& id,
                                                     const CgroupLimits& limits) const {
  ContainerCgroup cg = PathsFor(id);
  if (version_ == 2) {
    // Controllers must be enabled on every level above the container's cgroup.
    RETURN_IF_ERROR(MakeDirs(StrCat(base_, "/", parent_)));
    std::string dir = base_;
    for (absl::string_view part : absl::StrSplit(parent_, '/', absl::SkipEmpty())) {
      for (const char* c : {"+memory", "+pids", "+cpu"}) {
        (void)WriteSmallFile(StrCat(dir, "/cgroup.subtree_control"), c);
      }
      StrAppend(&dir, "/", part);
    }
    for (const char* c : {"+memory", "+pids", "+cpu"}) {
      (void)WriteSmallFile(StrCat(dir, "/cgroup.subtree_control"), c);
    }
  }
  std::vector<std::string> made;
  auto fail = [&](absl::Status s) {
    for (const std::string& d : made) ::rmdir(d.c_str());
    return s;
  };
  for (const std::string& dir : cg.dirs) {
    size_t slash = dir.rfind('/');
    if (absl::Status s = MakeDirs(dir.substr(0, slash)); !s.ok()) return fail(s);
    if (::mkdir(dir.c_str(), 0755) != 0) {
      return fail(errno == EEXIST ? absl::AlreadyExistsError(StrCat("cgroup ", dir, " exists"))
                                  : ErrnoToStatus(errno, StrCat("mkdir ", dir)));
    }
    made.push_back(dir);
  }
  absl::Status s;
  const int64_t quota =
      limits.cpus > 0 ? std::max<int64_t>(1000, std::llround(limits.cpus * kCfsPeriodUs)) : 0;
  if (version_ == 2) {
    const std::string& d = cg.dirs[0];
    if (s.ok() && limits.memory_bytes > 0) {
      s = WriteSmallFile(StrCat(d, "/memory.max"), StrCat(limits.memory_bytes));
      if (s.ok()) (void)WriteSmallFile(StrCat(d, "/memory.swap.max"), "0");
    }
    if (s.ok() && quota > 0) s = WriteSmallFile(StrCat(d, "/cpu.max"), StrCat(quota, " ", kCfsPeriodUs));
    if (s.ok() && limits.pids > 0) s = WriteSmallFile(StrCat(d, "/pids.max"), StrCat(limits.pids));
  } else {
    if (s.ok() && limits.memory_bytes > 0) {
      s = WriteSmallFile(StrCat(cg.dirs[0], "/memory.limit_in_bytes"), StrCat(limits.memory_bytes));
      // With swap accounting, also cap memory+swap so the limit cannot be dodged.
      if (s.ok()) {
        (void)WriteSmallFile(StrCat(cg.dirs[0], "/memory.memsw.limit_in_bytes"),
                             StrCat(limits.memory_bytes));
      }
    }
    if (s.ok() && quota > 0) {
      s = WriteSmallFile(StrCat(cg.dirs[1], "/cpu.cfs_period_us"), StrCat(kCfsPeriodUs));
      if (s.ok()) s = WriteSmallFile(StrCat(cg.dirs[1], "/cpu.cfs_quota_us"), StrCat(quota));
    }
    if (s.ok() && limits.pids > 0) s = WriteSmallFile(StrCat(cg.dirs[2], "/pids.max"), StrCat(limits.pids));
  }
  if (!s.ok()) return fail(s);
  return cg;
}

absl::Status CgroupDriver::Remove(const ContainerCgroup& cgroup) const {
  absl::Status status;
  for (const std::string& dir : cgroup.dirs) {
    if (!IsDir(dir)) continue;
    // Bounded: 5 s for the kernel to tear killed processes down.
    for (int i = 0; i < 500; ++i) {
      std::vector<pid_t> pids = ReadProcs(dir);
      if (pids.empty()) break;
      for (pid_t p : pids) ::kill(p, SIGKILL);
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    if (::rmdir(dir.c_str()) != 0 && errno != ENOENT && status.ok()) {
      status = ErrnoToStatus(errno, StrCat("rmdir ", dir));
    }
  }
  return status;
}

}  // namespace loom::runtime
