#include "tests/testing/cluster.h"

#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/str_split.h"
#include "common/json.h"
#include "common/log.h"
#include "common/status.h"
#include "common/strings.h"
#include "tests/testing/command.h"
#include "tests/testing/loom_cleanup.h"

namespace loom::testing {
namespace {

constexpr char kUnderlayNet[] = "198.51.100.";
constexpr char kEtcdIp[] = "198.51.100.2";
constexpr int kEtcdPort = 2379;  // inside the etcd namespace, so no clash with anything

std::atomic<int> g_cluster_counter{0};

absl::Status Ip(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {"ip"};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunChecked(argv).status();
}

bool ProcessAlive(pid_t pid) { return kill(pid, 0) == 0 || errno == EPERM; }

}  // namespace

void SweepStaleNamespaces() {
  auto out = RunCommand({"ip", "netns", "list"});
  if (!out.ok()) return;
  for (absl::string_view line : absl::StrSplit(out->out, '\n', absl::SkipEmpty())) {
    std::string name(line.substr(0, line.find(' ')));
    if (name.size() < 4 || name.rfind("lm", 0) != 0) continue;
    size_t dash = name.find('-');
    if (dash == std::string::npos) continue;
    std::string pid_part = name.substr(2, dash - 2);
    size_t x = pid_part.find('x');
    if (x != std::string::npos) pid_part = pid_part.substr(0, x);
    char* end = nullptr;
    long pid = std::strtol(pid_part.c_str(), &end, 10);
    if (end == pid_part.c_str() || *end != '\0') continue;
    if (pid == getpid() || ProcessAlive(static_cast<pid_t>(pid))) continue;
    // Kill whatever still runs inside, then delete the namespace.
    (void)RunCommand({"ip", "netns", "pids", name});
    auto pids = RunCommand({"ip", "netns", "pids", name});
    if (pids.ok()) {
      for (absl::string_view p : absl::StrSplit(pids->out, '\n', absl::SkipEmpty())) {
        kill(static_cast<pid_t>(std::strtol(std::string(p).c_str(), nullptr, 10)), SIGKILL);
      }
    }
    (void)RunCommand({"ip", "netns", "delete", name});
    LOG_WARNING("swept a namespace left by a crashed test run", {"netns", name});
  }
  // Pins and cgroups of crashed runs (named <prefix>-nodeN like the namespaces).
  auto stale = [](const std::string& name) {
    if (name.rfind("lm", 0) != 0 || name.find("-node") == std::string::npos) return false;
    char* end = nullptr;
    long pid = std::strtol(name.c_str() + 2, &end, 10);
    if (end == name.c_str() + 2 || *end != 'x') return false;
    return pid != getpid() && !ProcessAlive(static_cast<pid_t>(pid));
  };
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/sys/fs/cgroup/memory", ec)) {
    std::string name = entry.path().filename().string();
    if (!entry.is_directory() || !stale(name)) continue;
    RemoveV1CgroupTrees(name);
    LOG_WARNING("swept cgroups left by a crashed test run", {"cgroup", name});
  }
  std::string cgroup2 = HostCgroup2Mount();
  for (const std::string& root : {std::string("/sys/fs/bpf"), cgroup2}) {
    if (root.empty()) continue;
    for (const auto& entry : std::filesystem::directory_iterator(root, ec)) {
      std::string name = entry.path().filename().string();
      if (!entry.is_directory() || !stale(name)) continue;
      if (root == cgroup2) {
        RemoveCgroupTree(entry.path().string());
      } else {
        std::filesystem::remove_all(entry.path(), ec);
      }
      LOG_WARNING("swept state left by a crashed test run", {"path", entry.path().string()});
    }
  }
}

Cluster::Cluster(ClusterOptions options) : options_(std::move(options)) {
  prefix_ = StrCat("lm", getpid(), "x", g_cluster_counter.fetch_add(1));
}

Cluster::~Cluster() { TearDown(); }

absl::StatusOr<std::unique_ptr<Cluster>> Cluster::Create(const ClusterOptions& options) {
  if (options.nodes < 1 || options.nodes > 200) {
    return absl::InvalidArgumentError("cluster: nodes must be 1..200");
  }
  SweepStaleNamespaces();
  std::unique_ptr<Cluster> cluster(new Cluster(options));
  absl::Status st = cluster->Build();
  if (!st.ok()) return st;  // the destructor tears down what was built
  return cluster;
}

std::string Cluster::StoreUrl() const {
  if (!etcd_) return "embedded";
  return StrCat("etcd://", kEtcdIp, ":", kEtcdPort);
}

absl::Status Cluster::Build() {
  char tmpl[] = "/tmp/loom-cluster-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) return ErrnoToStatus(errno, "mkdtemp");
  root_dir_ = tmpl;

  // The fabric: a bridge in its own namespace.
  fabric_ns_ = StrCat(prefix_, "-fabric");
  RETURN_IF_ERROR(Ip({"netns", "add", fabric_ns_}));
  namespaces_.push_back(fabric_ns_);
  RETURN_IF_ERROR(Ip({"-n", fabric_ns_, "link", "set", "lo", "up"}));
  RETURN_IF_ERROR(Ip({"-n", fabric_ns_, "link", "add", "br0", "type", "bridge"}));
  RETURN_IF_ERROR(Ip({"-n", fabric_ns_, "link", "set", "br0", "up"}));

  // Plugs namespace `ns` into the bridge with address `ip`/24 on its eth0.
  auto plug = [&](const std::string& ns, const std::string& port, const std::string& ip) {
    RETURN_IF_ERROR(Ip({"netns", "add", ns}));
    namespaces_.push_back(ns);
    RETURN_IF_ERROR(Ip({"-n", fabric_ns_, "link", "add", port, "type", "veth", "peer", "name",
                        "eth0", "netns", ns}));
    RETURN_IF_ERROR(Ip({"-n", fabric_ns_, "link", "set", port, "master", "br0", "up"}));
    RETURN_IF_ERROR(Ip({"-n", ns, "link", "set", "lo", "up"}));
    RETURN_IF_ERROR(Ip({"-n", ns, "addr", "add", StrCat(ip, "/24"), "dev", "eth0"}));
    RETURN_IF_ERROR(Ip({"-n", ns, "link", "set", "eth0", "up"}));
    return absl::OkStatus();
  };

  if (options_.etcd) {
    etcd_ns_ = StrCat(prefix_, "-etcd");
    RETURN_IF_ERROR(plug(etcd_ns_, "etcd", kEtcdIp));
    EtcdOptions eo;
    eo.listen_ip = kEtcdIp;
    eo.netns = etcd_ns_;
    eo.client_port = kEtcdPort;
    eo.data_dir = StrCat(root_dir_, "/etcd");
    auto etcd = EtcdServer::Start(eo);
    if (!etcd.ok()) return Annotate(etcd.status(), "start etcd");
    etcd_ = *std::move(etcd);
  }

  for (int i = 0; i < options_.nodes; ++i) {
    Node n;
    n.name = StrCat("node", i + 1);
    n.netns = StrCat(prefix_, "-", n.name);
    n.underlay_ip = StrCat(kUnderlayNet, 11 + i);
    n.dir = StrCat(root_dir_, "/", n.name);
    n.api_socket = StrCat(n.dir, "/run/loomd.sock");
    n.log_path = StrCat(n.dir, "/loomd.log");
    n.bpffs_dir = StrCat("/sys/fs/bpf/", prefix_, "-", n.name);
    if (options_.lb) {
      // `ip netns exec` mounts a fresh /sys, hiding the host's bpffs and cgroup mounts
      // from loomd: a private bpffs, and the same (single) cgroup2 hierarchy again,
      // are mounted under the test dir.
      if (i == 0) {
        for (auto [type, mounted] : {std::pair{"bpf", &bpffs_mount_}, {"cgroup2", &cgroup2_mount_}}) {
          std::string path = StrCat(root_dir_, "/", type);
          std::filesystem::create_directories(path);
          if (::mount(type, path.c_str(), type, 0, nullptr) != 0) {
            return ErrnoToStatus(errno, StrCat("mount ", type, " on ", path));
          }
          *mounted = path;
        }
      }
      n.bpffs_dir = StrCat(bpffs_mount_, "/", n.name);
      n.cgroup2_dir = StrCat(cgroup2_mount_, "/", prefix_, "-", n.name);
    }
    std::filesystem::create_directories(n.dir);
    if (options_.runtime) {
      n.cgroup_parent = StrCat(prefix_, "-", n.name);
      std::filesystem::create_directories(StrCat(n.dir, "/cni/net.d"));
      std::ofstream(StrCat(n.dir, "/cni/net.d/10-loom.conflist"))
          << R"({"cniVersion":"1.1.0","name":"loom","plugins":[{"type":"loom","socket":")"
          << n.api_socket << R"("}]})";
    }
    RETURN_IF_ERROR(plug(n.netns, StrCat("n", i + 1), n.underlay_ip));
    nodes_.push_back(std::move(n));
  }
  for (int i = 0; i < options_.nodes; ++i) RETURN_IF_ERROR(StartLoomd(i));
  return absl::OkStatus();
}

std::vector<std::string> Cluster::LoomdArgv(int i) const {
  std::vector<std::string> argv = {"ip", "netns", "exec", nodes_[i].netns};
  if (options_.runtime) argv = {"nsenter", StrCat("--net=/run/netns/", nodes_[i].netns)};
  std::vector<std::string> flags = LoomdFlags(i);
  argv.insert(argv.end(), flags.begin(), flags.end());
  return argv;
}

std::vector<std::string> Cluster::LoomdFlags(int i) const {
  const Node& n = nodes_[i];
  std::vector<std::string> argv = {
      StrCat(LOOM_BIN_DIR, "/loomd"),
      StrCat("--node-name=", n.name),
      StrCat("--store=", StoreUrl()),
      StrCat("--state-dir=", n.dir, "/state"),
      StrCat("--run-dir=", n.dir, "/run"),
      StrCat("--api-socket=", n.api_socket),
      "--metrics-addr=127.0.0.1:9464",  // each node namespace has its own loopback
      "--underlay-iface=eth0",
      StrCat("--bpffs-dir=", n.bpffs_dir),
      StrCat("--cni-conf-dir=", n.dir, "/cni/net.d"),
      StrCat("--node-lease-ttl=", absl::ToInt64Seconds(options_.node_lease_ttl), "s"),
      // DNS serves the node-local address inside the node's namespace; never forward
      // to the machine's resolver (a test that wants forwarding names its own).
      "--dns-upstream=none",
  };
  if (options_.runtime) {
    argv.push_back(StrCat("--cgroup-root=/sys/fs/cgroup/", n.cgroup_parent));
    argv.push_back(StrCat("--cni-bin-dir=", LOOM_BIN_DIR));
  }
  if (options_.lb) {
    argv.push_back(StrCat("--cgroup2-dir=", n.cgroup2_dir));
  } else {
    argv.push_back("--lb=false");
  }
  argv.insert(argv.end(), options_.extra_loomd_flags.begin(), options_.extra_loomd_flags.end());
  return argv;
}

absl::Status Cluster::StartLoomd(int i) {
  Node& n = nodes_[i];
  if (n.loomd) return absl::FailedPreconditionError(StrCat(n.name, ": loomd already running"));
  SubprocessOptions so;
  so.log_path = n.log_path;
  auto proc = Subprocess::Start(LoomdArgv(i), so);
  if (!proc.ok()) return Annotate(proc.status(), StrCat("start loomd on ", n.name));
  n.loomd = *std::move(proc);
  // Ready once the API answers /v1/status with ready=true.
  absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (absl::Now() < deadline) {
    auto out = RunCommand({StrCat(LOOM_BIN_DIR, "/loomctl"), StrCat("--socket=", n.api_socket),
                           "status", "-o", "json"},
                          absl::Seconds(5));
    if (out.ok() && out->exit_code == 0 && out->out.find("\"ready\": true") != std::string::npos) {
      return absl::OkStatus();
    }
    auto exited = n.loomd->Wait(absl::Milliseconds(100));
    if (exited.ok()) {
      n.loomd.reset();
      return absl::InternalError(
          StrCat(n.name, ": loomd exited with ", *exited, " before ready: ", LogTail(i)));
    }
  }
  return absl::DeadlineExceededError(StrCat(n.name, ": loomd not ready in 20s: ", LogTail(i)));
}

absl::Status Cluster::StopLoomd(int i, int signal) {
  Node& n = nodes_[i];
  if (!n.loomd) return absl::OkStatus();
  RETURN_IF_ERROR(n.loomd->Signal(signal));
  auto code = n.loomd->Wait(absl::Seconds(15));
  n.loomd.reset();
  return code.status();
}

CommandResult Cluster::Ctl(int i, std::vector<std::string> args, absl::Duration timeout) {
  args.insert(args.begin(), {StrCat(LOOM_BIN_DIR, "/loomctl"), StrCat("--socket=", nodes_[i].api_socket)});
  absl::StatusOr<CommandResult> r = RunCommand(args, timeout);
  if (!r.ok()) return {-1, "", std::string(r.status().message())};
  return *r;
}

absl::StatusOr<std::string> Cluster::ExecInNode(int i, const std::vector<std::string>& argv) {
  std::vector<std::string> full = {"ip", "netns", "exec", nodes_[i].netns};
  full.insert(full.end(), argv.begin(), argv.end());
  return RunChecked(full);
}

absl::StatusOr<std::vector<std::string>> Cluster::StoreKeys(const std::string& prefix) {
  if (!etcd_) return absl::FailedPreconditionError("cluster has no etcd");
  ASSIGN_OR_RETURN(std::string out,
                   RunChecked({"ip", "netns", "exec", etcd_ns_, "env", "ETCDCTL_API=3", "etcdctl",
                               StrCat("--endpoints=", etcd_->ClientUrl()), "get", "--prefix",
                               "--keys-only", prefix}));
  std::vector<std::string> keys;
  for (absl::string_view line : absl::StrSplit(out, '\n', absl::SkipEmpty())) {
    keys.emplace_back(line);
  }
  return keys;
}

absl::StatusOr<std::string> Cluster::StoreGet(const std::string& key) {
  if (!etcd_) return absl::FailedPreconditionError("cluster has no etcd");
  ASSIGN_OR_RETURN(std::string out,
                   RunChecked({"ip", "netns", "exec", etcd_ns_, "env", "ETCDCTL_API=3", "etcdctl",
                               StrCat("--endpoints=", etcd_->ClientUrl()), "get",
                               "--print-value-only", key}));
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

absl::Status Cluster::StorePut(const std::string& key, const std::string& value) {
  if (!etcd_) return absl::FailedPreconditionError("cluster has no etcd");
  return RunChecked({"ip", "netns", "exec", etcd_ns_, "env", "ETCDCTL_API=3", "etcdctl",
                     StrCat("--endpoints=", etcd_->ClientUrl()), "put", key, "--", value})
      .status();
}

absl::Status Cluster::StoreDelete(const std::string& key) {
  if (!etcd_) return absl::FailedPreconditionError("cluster has no etcd");
  return RunChecked({"ip", "netns", "exec", etcd_ns_, "env", "ETCDCTL_API=3", "etcdctl",
                     StrCat("--endpoints=", etcd_->ClientUrl()), "del", key})
      .status();
}

std::string HostCgroup2Mount() {
  std::ifstream in("/proc/mounts");
  std::string source, target, type, rest;
  while (in >> source >> target >> type && std::getline(in, rest)) {
    if (type == "cgroup2") return target;
  }
  return "";
}

void RemoveCgroupTree(const std::string& dir) {
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) return;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    if (entry.is_directory()) RemoveCgroupTree(entry.path().string());
  }
  for (int attempt = 0; attempt < 50; ++attempt) {
    std::ifstream procs(dir + "/cgroup.procs");
    bool any = false;
    for (pid_t pid; procs >> pid;) {
      kill(pid, SIGKILL);
      any = true;
    }
    if (rmdir(dir.c_str()) == 0 || errno == ENOENT) return;
    if (!any && errno != EBUSY) return;
    absl::SleepFor(absl::Milliseconds(20));
  }
  LOG_WARNING("could not remove test cgroup", {"path", dir});
}

std::vector<std::string> MountsUnder(const std::string& prefix) {
  std::vector<std::string> out;
  if (prefix.empty()) return out;
  std::ifstream in("/proc/self/mountinfo");
  for (std::string line; std::getline(in, line);) {
    std::vector<std::string> f = absl::StrSplit(line, ' ');
    if (f.size() > 4 && f[4].rfind(prefix, 0) == 0) out.push_back(f[4]);
  }
  return out;
}

void DetachMounts(const std::vector<std::string>& mounts) {
  for (auto it = mounts.rbegin(); it != mounts.rend(); ++it) umount2(it->c_str(), MNT_DETACH);
}

void RemoveV1CgroupTrees(const std::string& parent) {
  std::error_code ec;
  for (const auto& hierarchy : std::filesystem::directory_iterator("/sys/fs/cgroup", ec)) {
    if (hierarchy.is_symlink() || !hierarchy.is_directory()) continue;
    const std::string dir = StrCat(hierarchy.path().string(), "/", parent);
    if (std::filesystem::exists(StrCat(hierarchy.path().string(), "/cgroup.controllers"))) continue;
    RemoveCgroupTree(dir);
  }
}

std::string Cluster::LogTail(int i) const {
  std::ifstream in(nodes_[i].log_path);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string all = ss.str();
  return all.size() > 2000 ? all.substr(all.size() - 2000) : all;
}

// Apps first (or their reconcilers start the replicas again), then every container,
// through the loomds still running.
void Cluster::RemoveAppsAndContainers() {
  auto ctl = [this](int i) -> Loomctl {
    return [this, i](std::vector<std::string> args) { return Ctl(i, std::move(args), absl::Seconds(30)); };
  };
  for (int i = 0; i < size(); ++i) {
    if (!nodes_[i].loomd) continue;
    DeleteAllApps(ctl(i));
    break;
  }
  // The reconcilers drain and remove the replicas (one starting meanwhile included).
  auto replicas_left = [&] {
    for (int i = 0; i < size(); ++i) {
      if (!nodes_[i].loomd) continue;
      std::optional<std::vector<Json>> list = ListContainers(ctl(i));
      if (!list) {
        LOG_WARNING("teardown: cannot list a node's containers", {"node", nodes_[i].name});
        continue;
      }
      for (const Json& c : *list) {
        if (IsAppReplica(c)) return true;
      }
    }
    return false;
  };
  absl::Time end = absl::Now() + absl::Seconds(20);
  while (replicas_left()) {
    if (absl::Now() >= end) {
      LOG_WARNING("teardown: replicas still there 20 s after their App was deleted");
      break;
    }
    absl::SleepFor(absl::Milliseconds(200));
  }
  for (int i = 0; i < size(); ++i) {
    if (!nodes_[i].loomd) continue;
    RemoveContainers(ctl(i), ListContainers(ctl(i)).value_or(std::vector<Json>{}));
  }
}

void Cluster::TearDown() {
  if (options_.runtime) RemoveAppsAndContainers();
  for (Node& n : nodes_) {
    if (n.loomd) {
      (void)n.loomd->Signal(SIGKILL);
      (void)n.loomd->Wait(absl::Seconds(5));
      n.loomd.reset();
    }
  }
  etcd_.reset();
  for (auto it = namespaces_.rbegin(); it != namespaces_.rend(); ++it) {
    // Anything still running inside (a container, a stray server) goes first.
    auto pids = RunCommand({"ip", "netns", "pids", *it});
    if (pids.ok()) {
      for (absl::string_view p : absl::StrSplit(pids->out, '\n', absl::SkipEmpty())) {
        kill(static_cast<pid_t>(std::strtol(std::string(p).c_str(), nullptr, 10)), SIGKILL);
      }
    }
    auto r = RunCommand({"ip", "netns", "delete", *it});
    if (!r.ok() || r->exit_code != 0) {
      LOG_WARNING("could not delete test namespace", {"netns", *it});
    }
  }
  namespaces_.clear();
  for (const Node& n : nodes_) {
    std::error_code ec;
    std::filesystem::remove_all(n.bpffs_dir, ec);
    if (!n.cgroup2_dir.empty()) RemoveCgroupTree(n.cgroup2_dir);
    if (!n.cgroup_parent.empty()) RemoveV1CgroupTrees(n.cgroup_parent);
  }
  if (options_.runtime && !root_dir_.empty()) {
    // Container mounts (rootfs, volumes, pinned namespaces) whose containers were
    // killed above, innermost first; not the bpffs and cgroup2 mounts (below).
    std::vector<std::string> left = MountsUnder(root_dir_ + "/node");
    for (const std::string& m : left) {
      LOG_WARNING("unmounting a mount left by a test container", {"path", m});
    }
    DetachMounts(left);
  }
  for (std::string* m : {&cgroup2_mount_, &bpffs_mount_}) {
    if (m->empty()) continue;
    umount2(m->c_str(), MNT_DETACH);
    m->clear();
  }
  nodes_.clear();
  if (!root_dir_.empty() && std::getenv("LOOM_KEEP_TEST_DIRS") == nullptr) {
    std::error_code ec;
    std::filesystem::remove_all(root_dir_, ec);
  }
}

}  // namespace loom::testing
