#include "agent/lb/cgroup2.h"

#include <linux/magic.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/log.h"
#include "common/status.h"
#include "common/strings.h"

namespace loom::agent {
namespace {

// /proc/mounts writes space, tab, newline and backslash as \ooo.
std::string Unescape(std::string_view field) {
  std::string out;
  out.reserve(field.size());
  size_t i = 0;
  while (i < field.size()) {
    char c = field[i];
    if (c == '\\' && field.size() - i > 3 && field[i + 1] >= '0' && field[i + 1] <= '3') {
      c = static_cast<char>((field[i + 1] - '0') * 64 + (field[i + 2] - '0') * 8 +
                            (field[i + 3] - '0'));
      i += 4;
    } else {
      ++i;
    }
    out += c;
  }
  return out;
}

bool IsCgroup2(const std::string& path) {
  struct statfs fs;
  return statfs(path.c_str(), &fs) == 0 && fs.f_type == CGROUP2_SUPER_MAGIC;
}

absl::Status MakeDir(const std::string& path) {
  if (mkdir(path.c_str(), 0755) != 0 && errno != EEXIST) {
    return ErrnoToStatus(errno, StrCat("mkdir ", path));
  }
  return absl::OkStatus();
}

}  // namespace

std::string FindCgroup2Mount(std::string_view proc_mounts) {
  std::istringstream in{std::string(proc_mounts)};
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string source, target, type;
    if (!(fields >> source >> target >> type)) continue;
    if (type == "cgroup2") return Unescape(target);
  }
  return "";
}

absl::StatusOr<Cgroup2Dir> ResolveLoomCgroup2(const std::string& flag, const std::string& run_dir,
                                              const std::string& proc_mounts_path) {
  Cgroup2Dir out;
  if (!flag.empty()) {
    if (flag[0] != '/') {
      return absl::InvalidArgumentError(
          StrCat("--cgroup2-dir \"", flag, "\" must be an absolute path"));
    }
    std::string parent = std::filesystem::path(flag).parent_path().string();
    if (!IsCgroup2(parent)) {
      return absl::FailedPreconditionError(
          StrCat("--cgroup2-dir \"", flag, "\": ", parent, " is not in a cgroup2 hierarchy"));
    }
    RETURN_IF_ERROR(MakeDir(flag));
    out.dir = flag;
    return out;
  }
  std::ifstream f(proc_mounts_path);
  if (!f) return absl::FailedPreconditionError(StrCat("cannot read ", proc_mounts_path));
  std::stringstream text;
  text << f.rdbuf();
  std::string mount = FindCgroup2Mount(text.str());
  if (mount.empty()) {
    mount = StrCat(run_dir, "/cgroup2");
    RETURN_IF_ERROR(MakeDir(mount));
    if (!IsCgroup2(mount)) {
      if (::mount("cgroup2", mount.c_str(), "cgroup2", 0, nullptr) != 0) {
        return ErrnoToStatus(errno, StrCat("mount cgroup2 on ", mount));
      }
      LOG_INFO("lb: the host has no cgroup2 hierarchy; mounted one", {"path", mount});
    }
    out.mounted = mount;
  } else if (mount == StrCat(run_dir, "/cgroup2")) {
    out.mounted = mount;  // ours, from an earlier start
  }
  out.dir = StrCat(mount, "/loom");
  RETURN_IF_ERROR(MakeDir(out.dir));
  return out;
}

absl::Status RemoveLoomCgroup2(const Cgroup2Dir& cgroup) {
  if (!cgroup.dir.empty() && rmdir(cgroup.dir.c_str()) != 0 && errno != ENOENT) {
    return ErrnoToStatus(errno, StrCat("rmdir ", cgroup.dir,
                                       " (containers still in it? move or stop them first)"));
  }
  if (!cgroup.mounted.empty() && IsCgroup2(cgroup.mounted)) {
    if (umount2(cgroup.mounted.c_str(), MNT_DETACH) != 0) {
      return ErrnoToStatus(errno, StrCat("umount ", cgroup.mounted));
    }
    rmdir(cgroup.mounted.c_str());
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<net::NetnsFd>> NetnsOfCgroupTree(const std::string& dir) {
  std::vector<std::string> dirs = {dir};
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(dir, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_directory(ec)) dirs.push_back(it->path().string());
  }
  if (ec) return ErrnoToStatus(ec.value(), StrCat("list cgroup ", dir));
  std::vector<net::NetnsFd> out;
  std::vector<ino_t> seen;
  for (const std::string& d : dirs) {
    std::ifstream procs(StrCat(d, "/cgroup.procs"));
    pid_t pid;
    while (procs >> pid) {
      absl::StatusOr<net::NetnsFd> ns = net::NetnsFd::OpenPid(pid);
      if (!ns.ok()) continue;  // gone meanwhile
      absl::StatusOr<ino_t> inode = ns->Inode();
      if (!inode.ok() || std::find(seen.begin(), seen.end(), *inode) != seen.end()) continue;
      seen.push_back(*inode);
      out.push_back(*std::move(ns));
    }
  }
  return out;
}

}  // namespace loom::agent
