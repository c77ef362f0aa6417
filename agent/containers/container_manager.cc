#include "agent/containers/container_manager.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <thread>

#include "absl/random/random.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "common/log.h"
#include "common/status.h"
#include "common/strings.h"
#include "runtime/fs_util.h"

namespace loom::containers {
namespace {

using runtime::ContainerState;

constexpr char kIfname[] = "eth0";

std::string NewId() {
  absl::BitGen gen;
  return absl::StrFormat("%012x", absl::Uniform<uint64_t>(gen, 0, uint64_t{1} << 48));
}

absl::Status ValidateName(std::string_view name) {
  absl::Status s = runtime::ValidateContainerId(name);
  if (s.ok()) return s;
  return absl::InvalidArgumentError(
      StrCat("container name '", name, "' must be 1-64 characters of [A-Za-z0-9_.-] starting "
             "with a letter or digit"));
}

Json PortsToJson(const std::vector<PortMapping>& ports) {
  Json out = Json::array();
  for (const PortMapping& p : ports) {
    Json j = {{"hostPort", p.host_port}, {"containerPort", p.container_port},
              {"protocol", p.protocol}};
    if (!p.host_ip.empty()) j["hostIP"] = p.host_ip;
    out.push_back(std::move(j));
  }
  return out;
}

absl::StatusOr<std::vector<PortMapping>> PortsFromJson(const Json& j, std::string_view path) {
  std::vector<PortMapping> out;
  if (j.is_null()) return out;
  if (!j.is_array()) return absl::InvalidArgumentError(StrCat(path, ": must be a list"));
  for (size_t i = 0; i < j.size(); ++i) {
    const Json& p = j[i];
    std::string where = StrCat(path, "[", i, "]");
    if (!p.is_object()) return absl::InvalidArgumentError(StrCat(where, ": must be an object"));
    PortMapping m;
    ASSIGN_OR_RETURN(int64_t host, GetInt(p, "hostPort", where));
    ASSIGN_OR_RETURN(int64_t container, GetInt(p, "containerPort", where));
    ASSIGN_OR_RETURN(m.protocol, GetStringOr(p, "protocol", where, "tcp"));
    ASSIGN_OR_RETURN(m.host_ip, GetStringOr(p, "hostIP", where, ""));
    if (host < 1 || host > 65535 || container < 1 || container > 65535) {
      return absl::InvalidArgumentError(StrCat(where, ": ports must be 1..65535"));
    }
    if (m.protocol != "tcp" && m.protocol != "udp" && m.protocol != "sctp") {
      return absl::InvalidArgumentError(StrCat(where, ": protocol '", m.protocol, "' is not tcp, udp or sctp"));
    }
    m.host_port = static_cast<int>(host);
    m.container_port = static_cast<int>(container);
    out.push_back(std::move(m));
  }
  return out;
}

template <typename T>
absl::Status GetField(const Json& j, const char* key, T* out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return absl::OkStatus();
  try {
    *out = it->get<T>();
  } catch (const std::exception&) {
    return absl::InvalidArgumentError(StrCat("field '", key, "' has the wrong type"));
  }
  return absl::OkStatus();
}

// Bring the new namespace's loopback up, as every runtime does.
bool LoopbackUp() {
  int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  struct ifreq ifr = {};
  std::snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
  bool ok = ::ioctl(fd, SIOCGIFFLAGS, &ifr) == 0;
  ifr.ifr_flags |= IFF_UP;
  ok = ok && ::ioctl(fd, SIOCSIFFLAGS, &ifr) == 0;
  ::close(fd);
  return ok;
}

}  // namespace

absl::StatusOr<PortMapping> ParsePortMapping(std::string_view text) {
  auto bad = [&](std::string_view why) {
    return absl::InvalidArgumentError(
        StrCat("port mapping '", text, "': ", why, " (want [hostIP:]hostPort:containerPort[/tcp|udp|sctp])"));
  };
  PortMapping m;
  std::string_view spec = text;
  if (size_t slash = spec.rfind('/'); slash != std::string_view::npos) {
    m.protocol = std::string(spec.substr(slash + 1));
    spec = spec.substr(0, slash);
    if (m.protocol != "tcp" && m.protocol != "udp" && m.protocol != "sctp") {
      return bad(StrCat("protocol '", m.protocol, "' is not tcp, udp or sctp"));
    }
  }
  std::vector<std::string> parts = absl::StrSplit(ToAbsl(spec), ':');
  if (parts.size() == 3) {
    m.host_ip = parts[0];
    parts.erase(parts.begin());
  }
  if (parts.size() != 2) return bad("expected hostPort:containerPort");
  int host = 0, container = 0;
  if (!absl::SimpleAtoi(parts[0], &host) || host < 1 || host > 65535) return bad("bad host port");
  if (!absl::SimpleAtoi(parts[1], &container) || container < 1 || container > 65535) {
    return bad("bad container port");
  }
  m.host_port = host;
  m.container_port = container;
  return m;
}

absl::StatusOr<RunRequest> RunRequestFromJson(const Json& j) {
  if (!j.is_object()) return absl::InvalidArgumentError("the request must be a JSON object");
  RunRequest r;
  RETURN_IF_ERROR(GetField(j, "name", &r.name));
  RETURN_IF_ERROR(GetField(j, "image", &r.image));
  RETURN_IF_ERROR(GetField(j, "command", &r.command));
  RETURN_IF_ERROR(GetField(j, "env", &r.env));
  RETURN_IF_ERROR(GetField(j, "volumes", &r.volumes));
  RETURN_IF_ERROR(GetField(j, "cpus", &r.cpus));
  RETURN_IF_ERROR(GetField(j, "memoryBytes", &r.memory_bytes));
  RETURN_IF_ERROR(GetField(j, "labels", &r.labels));
  RETURN_IF_ERROR(GetField(j, "hostname", &r.hostname));
  RETURN_IF_ERROR(GetField(j, "network", &r.network));
  RETURN_IF_ERROR(GetField(j, "namespace", &r.pod_namespace));
  RETURN_IF_ERROR(GetField(j, "readyOnAttach", &r.ready_on_attach));
  RETURN_IF_ERROR(GetField(j, "workdir", &r.workdir));
  RETURN_IF_ERROR(GetField(j, "pidsLimit", &r.pids_limit));
  ASSIGN_OR_RETURN(r.ports, PortsFromJson(j.value("ports", Json()), "ports"));
  if (r.image.empty()) return absl::InvalidArgumentError("image is required");
  return r;
}

Json RunRequestToJson(const RunRequest& r) {
  return Json{{"name", r.name},     {"image", r.image},   {"command", r.command},
              {"env", r.env},       {"volumes", r.volumes}, {"cpus", r.cpus},
              {"memoryBytes", r.memory_bytes}, {"ports", PortsToJson(r.ports)},
              {"labels", r.labels}, {"hostname", r.hostname}, {"network", r.network},
              {"namespace", r.pod_namespace}, {"readyOnAttach", r.ready_on_attach},
              {"workdir", r.workdir}, {"pidsLimit", r.pids_limit}};
}

Json ContainerViewToJson(const ContainerView& v) {
  const runtime::ContainerStatus& st = v.status;
  Json j = {{"id", v.id},
            {"name", v.name},
            {"image", v.image},
            {"imageDigest", st.image_digest},
            {"command", v.command},
            {"labels", v.labels},
            {"ports", PortsToJson(v.ports)},
            {"hostname", v.hostname},
            {"createdAt", absl::ToUnixSeconds(v.created)},
            {"state", std::string(runtime::ContainerStateName(st.state))},
            {"network", v.network},
            {"attached", v.attached},
            {"ips", v.ips}};
  if (st.state == ContainerState::kRunning) j["pid"] = st.pid;
  if (st.started_at != absl::InfinitePast()) j["startedAt"] = absl::ToUnixSeconds(st.started_at);
  if (st.state == ContainerState::kExited) {
    j["exitCode"] = st.exit_code;
    j["signal"] = st.signal;
    j["oomKilled"] = st.oom_killed;
    j["finishedAt"] = absl::ToUnixSeconds(st.finished_at);
  }
  return j;
}

absl::StatusOr<std::pair<std::string, std::string>> SplitCgroupRoot(std::string_view root) {
  constexpr std::string_view kMount = "/sys/fs/cgroup/";
  std::string_view rest = root.substr(0, kMount.size()) == kMount ? root.substr(kMount.size()) : "";
  while (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  if (rest.empty() || rest.find("..") != std::string_view::npos) {
    return absl::InvalidArgumentError(
        StrCat("cgroup root '", root, "' must be a folder under /sys/fs/cgroup/, such as /sys/fs/cgroup/loom"));
  }
  return std::make_pair(std::string("/sys/fs/cgroup"), std::string(rest));
}

absl::Status CreatePinnedNetns(const std::string& path) {
  int fd = ::open(path.c_str(), O_CREAT | O_EXCL | O_RDONLY | O_CLOEXEC, 0444);
  if (fd < 0) return ErrnoToStatus(errno, StrCat("create ", path));
  ::close(fd);
  absl::Status status;
  // unshare() moves only this thread; the bind mount keeps the namespace alive after it.
  std::thread([&] {
    if (::unshare(CLONE_NEWNET) != 0) {
      status = ErrnoToStatus(errno, "unshare network namespace");
    } else if (!LoopbackUp()) {
      status = ErrnoToStatus(errno, "bring lo up in the new namespace");
    } else if (::mount("/proc/thread-self/ns/net", path.c_str(), nullptr, MS_BIND, nullptr) != 0) {
      status = ErrnoToStatus(errno, StrCat("pin network namespace on ", path));
    }
  }).join();
  if (!status.ok()) ::unlink(path.c_str());
  return status;
}

bool IsPinnedNetns(const std::string& path) {
  struct statfs fs;
  return ::statfs(path.c_str(), &fs) == 0 && fs.f_type == NSFS_MAGIC;
}

absl::Status RemovePinnedNetns(const std::string& path) {
  if (IsPinnedNetns(path) && ::umount2(path.c_str(), MNT_DETACH) != 0) {
    return ErrnoToStatus(errno, StrCat("unmount ", path));
  }
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) return ErrnoToStatus(errno, StrCat("remove ", path));
  return absl::OkStatus();
}

// ---- the manager --------------------------------------------------------------------------

absl::StatusOr<std::unique_ptr<ContainerManager>> ContainerManager::Open(
    ContainerManagerOptions options) {
  std::unique_ptr<ContainerManager> m(new ContainerManager(std::move(options)));
  RETURN_IF_ERROR(m->Start());
  return m;
}

ContainerManager::~ContainerManager() {
  stop_.Notify();
  if (reaper_.joinable()) reaper_.join();
}

std::string ContainerManager::RecordPath(std::string_view id) const {
  return StrCat(options_.state_dir, "/records/", id, ".json");
}
std::string ContainerManager::EtcDir(std::string_view id) const {
  return StrCat(options_.state_dir, "/etc/", id);
}
std::string ContainerManager::PinPath(std::string_view id) const {
  return StrCat(options_.run_dir, "/netns/", id);
}

absl::Status ContainerManager::SaveRecord(const Record& r) {
  Json j = {{"id", r.id},           {"name", r.name},         {"image", r.image},
            {"hostname", r.hostname}, {"network", r.network}, {"netns", r.netns},
            {"command", r.command}, {"labels", r.labels},     {"ports", PortsToJson(r.ports)},
            {"createdAtMs", absl::ToUnixMillis(r.created)},   {"attached", r.attached},
            {"ips", r.ips},         {"cniArgs", r.cni_args},  {"capabilityArgs", r.capability_args}};
  RETURN_IF_ERROR(runtime::WriteFileAtomic(RecordPath(r.id), j.dump(), 0600));
  absl::MutexLock lock(&mu_);
  records_[r.id] = r;
  return absl::OkStatus();
}

absl::Status ContainerManager::Start() {
  for (const std::string* dir : {&options_.state_dir, &options_.run_dir}) {
    if (dir->empty() || (*dir)[0] != '/') {
      return absl::InvalidArgumentError(StrCat("containers: folder '", *dir, "' must be absolute"));
    }
  }
  for (const std::string& d : {StrCat(options_.state_dir, "/records"), StrCat(options_.state_dir, "/etc"),
                               StrCat(options_.run_dir, "/netns")}) {
    RETURN_IF_ERROR(runtime::MakeDirs(d, true));
  }
  ASSIGN_OR_RETURN(images_, runtime::ImageStore::Open(StrCat(options_.state_dir, "/images")));
  runtime::SupervisorOptions so;
  so.state_dir = StrCat(options_.state_dir, "/bundles");
  so.volumes_dir = StrCat(options_.state_dir, "/volumes");
  so.cgroup_root = options_.cgroup_root;
  so.cgroup_parent = options_.cgroup_parent;
  so.cgroup2_dir = options_.cgroup2_dir;
  so.shim_path = options_.shim_path;
  ASSIGN_OR_RETURN(supervisor_, runtime::Supervisor::Open(so, images_.get()));
  cni_ = std::make_unique<runtime::CniInvoker>(runtime::CniInvokerOptions{
      options_.cni_bin_dirs, StrCat(options_.state_dir, "/cni-cache"), options_.cni_timeout, ""});

  // Records, and what became of their containers while loomd was away.
  DIR* dir = ::opendir(StrCat(options_.state_dir, "/records").c_str());
  std::vector<std::string> files;
  if (dir != nullptr) {
    while (struct dirent* e = ::readdir(dir)) {
      std::string n = e->d_name;
      if (n.size() > 5 && n.substr(n.size() - 5) == ".json") files.push_back(n);
    }
    ::closedir(dir);
  }
  for (const std::string& f : files) {
    absl::StatusOr<std::string> text = runtime::ReadFileToString(StrCat(options_.state_dir, "/records/", f));
    absl::StatusOr<Json> j = text.ok() ? ParseJson(*text) : absl::StatusOr<Json>(text.status());
    if (!j.ok() || !j->is_object()) {
      LOG_WARNING("unreadable container record", {"file", f});
      continue;
    }
    Record r;
    r.id = j->value("id", "");
    r.name = j->value("name", r.id);
    r.image = j->value("image", "");
    r.hostname = j->value("hostname", "");
    r.network = j->value("network", "");
    r.netns = j->value("netns", "");
    (void)GetField(*j, "command", &r.command);
    (void)GetField(*j, "labels", &r.labels);
    (void)GetField(*j, "ips", &r.ips);
    r.ports = PortsFromJson(j->value("ports", Json()), "ports").value_or(std::vector<PortMapping>{});
    r.created = absl::FromUnixMillis(j->value("createdAtMs", int64_t{0}));
    r.attached = j->value("attached", false);
    r.cni_args = j->value("cniArgs", Json::array());
    r.capability_args = j->value("capabilityArgs", Json::object());
    if (r.id.empty()) continue;
    absl::MutexLock lock(&mu_);
    records_[r.id] = std::move(r);
  }
  {
    absl::MutexLock ops(&ops_mu_);
    std::vector<Record> orphans;
    {
      absl::MutexLock lock(&mu_);
      for (auto& [id, r] : records_) {
        if (!supervisor_->Inspect(id).ok()) orphans.push_back(r);
      }
    }
    // A record without a container: a run interrupted before its container started.
    for (Record& r : orphans) {
      absl::Status s = ReleaseNetwork(r);
      if (!s.ok()) LOG_WARNING("cannot release an orphan container's network", {"id", r.id}, {"error", s});
      (void)runtime::RemoveTree(EtcDir(r.id));
      ::unlink(RecordPath(r.id).c_str());
      absl::MutexLock lock(&mu_);
      records_.erase(r.id);
    }
  }
  ReapExited();
  {
    absl::MutexLock ops(&ops_mu_);
    GcNetwork();
    // Pins of containers that have no record any more.
    const std::string pins = StrCat(options_.run_dir, "/netns");
    if (DIR* d = ::opendir(pins.c_str()); d != nullptr) {
      std::vector<std::string> stale;
      while (struct dirent* e = ::readdir(d)) {
        std::string n = e->d_name;
        absl::MutexLock lock(&mu_);
        if (n != "." && n != ".." && !records_.contains(n)) stale.push_back(n);
      }
      ::closedir(d);
      for (const std::string& n : stale) (void)RemovePinnedNetns(StrCat(pins, "/", n));
    }
  }
  reaper_ = std::thread([this] {
    while (!stop_.WaitForNotificationWithTimeout(options_.reap_interval)) ReapExited();
  });
  size_t n = 0;
  {
    absl::MutexLock lock(&mu_);
    n = records_.size();
  }
  LOG_INFO("containers ready", {"adopted", n}, {"cgroup_version", supervisor_->cgroup_version()},
           {"cni_conf_dir", options_.cni_conf_dir});
  return absl::OkStatus();
}

void ContainerManager::GcNetwork() {
  absl::StatusOr<runtime::CniNetwork> net = runtime::LoadDefaultCniNetwork(options_.cni_conf_dir);
  if (!net.ok()) {
    if (!absl::IsNotFound(net.status())) LOG_WARNING("CNI GC skipped", {"error", net.status()});
    return;
  }
  std::vector<std::pair<std::string, std::string>> valid;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [id, r] : records_) {
      if (r.attached && r.network == net->name) valid.emplace_back(id, kIfname);
    }
  }
  absl::Status s = cni_->Gc(*net, valid);
  if (!s.ok()) LOG_WARNING("CNI GC", {"network", net->name}, {"error", s});
}

runtime::CniRuntimeConf ContainerManager::RuntimeConfOf(const Record& r) const {
  runtime::CniRuntimeConf rt;
  rt.container_id = r.id;
  rt.ifname = kIfname;
  rt.netns = r.netns;
  for (const Json& kv : r.cni_args) {
    if (kv.is_array() && kv.size() == 2) rt.args.emplace_back(kv[0].get<std::string>(), kv[1].get<std::string>());
  }
  rt.capability_args = r.capability_args;
  return rt;
}

absl::StatusOr<runtime::CniNetwork> ContainerManager::NetworkNamed(const std::string& name) const {
  // The config the attachment was made with, as libcni's DEL uses it.
  absl::StatusOr<runtime::CniNetwork> current = runtime::LoadDefaultCniNetwork(options_.cni_conf_dir);
  if (current.ok() && current->name == name) return current;
  return absl::NotFoundError(StrCat("CNI network '", name, "' is no longer in ", options_.cni_conf_dir));
}

absl::Status ContainerManager::ReleaseNetwork(Record& r) {
  if (!r.attached) return absl::OkStatus();
  runtime::CniRuntimeConf rt = RuntimeConfOf(r);
  if (!IsPinnedNetns(r.netns)) {
    // The pin is gone (loomd restarted in another mount namespace): the container's own.
    absl::StatusOr<runtime::ContainerStatus> st = supervisor_->Inspect(r.id);
    rt.netns = st.ok() && st->state == ContainerState::kRunning ? StrCat("/proc/", st->pid, "/ns/net") : "";
  }
  absl::StatusOr<runtime::CniCachedAttachment> cached = cni_->Cached(r.network, r.id, kIfname);
  absl::StatusOr<runtime::CniNetwork> net =
      cached.ok() ? runtime::ParseAnyCniNetwork(cached->config, cached->path) : NetworkNamed(r.network);
  if (!net.ok()) {
    if (cached.ok()) return Annotate(net.status(), "cached CNI config");
    // Never attached (the ADD did not get far enough to cache) and no config to DEL with.
    LOG_WARNING("no CNI config to DEL with; dropping the attachment", {"id", r.id}, {"network", r.network});
  } else {
    RETURN_IF_ERROR(Annotate(cni_->Del(*net, rt), StrCat("release network ", r.network, " of ", r.name)));
  }
  RETURN_IF_ERROR(RemovePinnedNetns(PinPath(r.id)));
  r.attached = false;
  return SaveRecord(r);
}

absl::Status ContainerManager::Attach(Record& r, runtime::CniNetwork& net, std::string* resolv,
                                      std::string* hosts) {
  RETURN_IF_ERROR(CreatePinnedNetns(PinPath(r.id)));
  r.netns = PinPath(r.id);
  r.network = net.name;
  r.cni_args = Json::array({Json::array({"IgnoreUnknown", "1"}),
                            Json::array({"K8S_POD_NAMESPACE", r.pod_namespace}),
                            Json::array({"K8S_POD_NAME", r.name})});
  if (!r.ready_on_attach) r.cni_args.push_back(Json::array({"LOOM_READY", "false"}));
  if (!r.labels.empty()) {
    std::string labels;
    for (const auto& [k, v] : r.labels) StrAppend(&labels, labels.empty() ? "" : ",", k, "=", v);
    r.cni_args.push_back(Json::array({"LOOM_LABELS", labels}));
  }
  if (!r.ports.empty()) r.capability_args["portMappings"] = PortsToJson(r.ports);
  // Attached from here on, so that an interrupted ADD is DELeted later.
  r.attached = true;
  RETURN_IF_ERROR(SaveRecord(r));
  absl::StatusOr<cni::Result> result = cni_->Add(net, RuntimeConfOf(r));
  if (!result.ok()) return Annotate(result.status(), StrCat("attach to CNI network ", net.name));
  std::vector<std::string> bare;
  for (const cni::IpConfig& ip : result->ips) {
    r.ips.push_back(ip.address);
    bare.push_back(ip.address.substr(0, ip.address.find('/')));
  }
  *hosts = runtime::FormatHosts(r.hostname, bare);
  if (!result->dns.nameservers.empty()) *resolv = runtime::FormatResolvConf(result->dns);
  return SaveRecord(r);
}

absl::StatusOr<ContainerView> ContainerManager::Run(const RunRequest& req) {
  absl::MutexLock ops(&ops_mu_);
  if (!req.name.empty()) RETURN_IF_ERROR(ValidateName(req.name));
  if (req.cpus < 0) return absl::InvalidArgumentError("cpus must not be negative");
  if (!req.ports.empty() && !req.network) {
    return absl::InvalidArgumentError("port mappings need a network (not --network none)");
  }
  for (const auto& [k, v] : req.labels) {
    if (k.empty() || k.find_first_of(",=;") != std::string::npos || v.find_first_of(",;") != std::string::npos) {
      return absl::InvalidArgumentError(StrCat("label '", k, "=", v, "' has ',', ';' or '=' where it cannot"));
    }
  }
  ASSIGN_OR_RETURN(runtime::Image image, images_->Get(req.image));
  runtime::ContainerSpec spec;
  for (const std::string& v : req.volumes) {
    ASSIGN_OR_RETURN(runtime::MountSpec m, runtime::ParseMountSpec(v));
    spec.mounts.push_back(std::move(m));
  }
  Record r;
  r.id = NewId();
  r.name = req.name.empty() ? r.id : req.name;
  r.image = req.image;
  r.command = req.command.empty() ? image.config.entrypoint : req.command;
  if (req.command.empty()) r.command.insert(r.command.end(), image.config.cmd.begin(), image.config.cmd.end());
  r.labels = req.labels;
  r.ports = req.ports;
  r.pod_namespace = req.pod_namespace.empty() ? "default" : req.pod_namespace;
  r.ready_on_attach = req.ready_on_attach;
  r.hostname = req.hostname.empty() ? r.name.substr(0, 63) : req.hostname;
  r.created = absl::Now();
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [id, other] : records_) {
      if (other.name == r.name) {
        return absl::AlreadyExistsError(StrCat("a container named '", r.name, "' exists (", id, ")"));
      }
    }
  }
  std::optional<runtime::CniNetwork> net;
  if (req.network) {
    absl::StatusOr<runtime::CniNetwork> loaded = runtime::LoadDefaultCniNetwork(options_.cni_conf_dir);
    if (loaded.ok()) {
      net = *std::move(loaded);
    } else if (!absl::IsNotFound(loaded.status()) || !req.ports.empty()) {
      return loaded.status();
    }
  }
  RETURN_IF_ERROR(SaveRecord(r));
  auto undo = [&](const absl::Status& why) {
    absl::Status released = ReleaseNetwork(r);
    if (!released.ok()) LOG_WARNING("cleanup after a failed run", {"id", r.id}, {"error", released});
    (void)RemovePinnedNetns(PinPath(r.id));
    (void)runtime::RemoveTree(EtcDir(r.id));
    if (released.ok()) {
      ::unlink(RecordPath(r.id).c_str());
      absl::MutexLock lock(&mu_);
      records_.erase(r.id);
    }
    return why;
  };
  const std::string& d = options_.cluster_domain;
  std::string resolv =
      options_.dns_nameserver.empty()
          ? ""
          : StrCat("nameserver ", options_.dns_nameserver, "\nsearch default.svc.", d, " svc.", d, " ", d,
                   "\noptions ndots:5\n");
  std::string hosts = runtime::FormatHosts(r.hostname, {});
  if (net) {
    if (absl::Status s = Attach(r, *net, &resolv, &hosts); !s.ok()) return undo(s);
  }
  const std::string etc = EtcDir(r.id);
  absl::Status files = runtime::MakeDirs(etc, true);
  if (files.ok()) files = runtime::WriteFileAtomic(StrCat(etc, "/resolv.conf"), resolv);
  if (files.ok()) files = runtime::WriteFileAtomic(StrCat(etc, "/hosts"), hosts);
  if (files.ok()) files = runtime::WriteFileAtomic(StrCat(etc, "/hostname"), StrCat(r.hostname, "\n"));
  if (!files.ok()) return undo(files);
  for (const char* f : {"resolv.conf", "hosts", "hostname"}) {
    spec.mounts.push_back({runtime::MountSpec::Type::kBind, StrCat(etc, "/", f), StrCat("/etc/", f), false});
  }
  spec.id = r.id;
  spec.image = req.image;
  spec.command = req.command;
  spec.env = req.env;
  spec.hostname = r.hostname;
  spec.cpus = req.cpus;
  spec.memory_bytes = req.memory_bytes;
  spec.workdir = req.workdir;
  spec.pids_limit = req.pids_limit;
  spec.netns_path = net ? r.netns : "";
  absl::StatusOr<runtime::ContainerStatus> st = supervisor_->Run(spec);
  if (!st.ok()) return undo(st.status());
  LOG_INFO("container running", {"id", r.id}, {"name", r.name}, {"image", r.image},
           {"network", r.network}, {"ips", r.ips.empty() ? "" : r.ips[0]});
  return ViewOf(r, *st);
}

ContainerView ContainerManager::ViewOf(const Record& r,
                                       const std::optional<runtime::ContainerStatus>& st) const {
  ContainerView v;
  v.id = r.id;
  v.name = r.name;
  v.image = r.image;
  v.command = r.command;
  v.labels = r.labels;
  v.ports = r.ports;
  v.hostname = r.hostname;
  v.created = r.created;
  v.network = r.network;
  v.attached = r.attached;
  v.ips = r.ips;
  if (st) {
    v.status = *st;
  } else {
    v.status.id = r.id;
    v.status.state = ContainerState::kLost;
  }
  return v;
}

absl::StatusOr<ContainerManager::Record> ContainerManager::Resolve(std::string_view ref) {
  absl::MutexLock lock(&mu_);
  for (const auto& [id, r] : records_) {
    if (r.name == ref) return r;
  }
  if (auto it = records_.find(std::string(ref)); it != records_.end()) return it->second;
  const Record* found = nullptr;
  if (ref.size() >= 3) {
    for (const auto& [id, r] : records_) {
      if (id.rfind(ref, 0) == 0) {
        if (found != nullptr) return absl::InvalidArgumentError(StrCat("'", ref, "' matches several containers"));
        found = &r;
      }
    }
  }
  if (found == nullptr) return absl::NotFoundError(StrCat("no container '", ref, "'"));
  return *found;
}

absl::StatusOr<ContainerView> ContainerManager::Inspect(std::string_view ref) {
  ASSIGN_OR_RETURN(Record r, Resolve(ref));
  absl::StatusOr<runtime::ContainerStatus> st = supervisor_->Inspect(r.id);
  return ViewOf(r, st.ok() ? std::optional(*st) : std::nullopt);
}

std::vector<ContainerView> ContainerManager::List(bool all) {
  std::vector<Record> records;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [id, r] : records_) records.push_back(r);
  }
  std::vector<ContainerView> out;
  for (const Record& r : records) {
    absl::StatusOr<runtime::ContainerStatus> st = supervisor_->Inspect(r.id);
    ContainerView v = ViewOf(r, st.ok() ? std::optional(*st) : std::nullopt);
    if (all || v.status.state == ContainerState::kRunning) out.push_back(std::move(v));
  }
  std::sort(out.begin(), out.end(),
            [](const ContainerView& a, const ContainerView& b) { return a.created > b.created; });
  return out;
}

absl::StatusOr<ContainerView> ContainerManager::Stop(std::string_view ref, absl::Duration grace) {
  absl::MutexLock ops(&ops_mu_);
  ASSIGN_OR_RETURN(Record r, Resolve(ref));
  ASSIGN_OR_RETURN(runtime::ContainerStatus st, supervisor_->Stop(r.id, grace));
  RETURN_IF_ERROR(Annotate(ReleaseNetwork(r), "container stopped, but"));
  return ViewOf(r, st);
}

absl::Status ContainerManager::Remove(std::string_view ref, bool force) {
  absl::MutexLock ops(&ops_mu_);
  ASSIGN_OR_RETURN(Record r, Resolve(ref));
  absl::Status removed = supervisor_->Remove(r.id, force);
  if (!removed.ok() && !absl::IsNotFound(removed)) return removed;
  absl::Status released = ReleaseNetwork(r);
  if (!released.ok()) {
    if (!force) return Annotate(released, "container removed, but its record is kept until");
    LOG_WARNING("forced removal: network not released (GC at the next start retries)",
                {"id", r.id}, {"error", released});
    (void)RemovePinnedNetns(PinPath(r.id));
  }
  RETURN_IF_ERROR(runtime::RemoveTree(EtcDir(r.id)));
  if (::unlink(RecordPath(r.id).c_str()) != 0 && errno != ENOENT) {
    return ErrnoToStatus(errno, RecordPath(r.id));
  }
  absl::MutexLock lock(&mu_);
  records_.erase(r.id);
  LOG_INFO("container removed", {"id", r.id}, {"name", r.name});
  return absl::OkStatus();
}

void ContainerManager::ReapExited() {
  std::vector<std::string> attached;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [id, r] : records_) {
      if (r.attached) attached.push_back(id);
    }
  }
  for (const std::string& id : attached) {
    absl::StatusOr<runtime::ContainerStatus> st = supervisor_->Inspect(id);
    if (st.ok() && st->state == ContainerState::kRunning) continue;
    // A run in progress holds ops_mu_; look again once it is done.
    if (!ops_mu_.TryLock()) return;
    Record r;
    bool found = false;
    {
      absl::MutexLock lock(&mu_);
      if (auto it = records_.find(id); it != records_.end() && it->second.attached) {
        r = it->second;
        found = true;
      }
    }
    st = supervisor_->Inspect(id);
    if (found && !(st.ok() && st->state == ContainerState::kRunning)) {
      absl::Status s = ReleaseNetwork(r);
      if (s.ok()) {
        LOG_INFO("container exited; network released", {"id", id}, {"name", r.name});
      } else {
        LOG_WARNING("container exited; releasing its network failed", {"id", id}, {"error", s});
      }
    }
    ops_mu_.Unlock();
  }
}

absl::StatusOr<runtime::ExecResult> ContainerManager::Exec(std::string_view ref,
                                                           const runtime::ExecSpec& spec,
                                                           absl::Duration timeout) {
  ASSIGN_OR_RETURN(Record r, Resolve(ref));
  return supervisor_->Exec(r.id, spec, timeout);
}

absl::Status ContainerManager::CheckNetwork(std::string_view ref) {
  ASSIGN_OR_RETURN(Record r, Resolve(ref));
  if (!r.attached) return absl::FailedPreconditionError(StrCat("container ", r.name, " is not attached"));
  ASSIGN_OR_RETURN(runtime::CniCachedAttachment cached, cni_->Cached(r.network, r.id, kIfname));
  ASSIGN_OR_RETURN(runtime::CniNetwork net, runtime::ParseAnyCniNetwork(cached.config, cached.path));
  runtime::CniRuntimeConf rt = RuntimeConfOf(r);
  if (!IsPinnedNetns(rt.netns)) {
    ASSIGN_OR_RETURN(runtime::ContainerStatus st, supervisor_->Inspect(r.id));
    rt.netns = StrCat("/proc/", st.pid, "/ns/net");
  }
  return cni_->Check(net, rt);
}

absl::StatusOr<LogChunk> ContainerManager::Logs(std::string_view ref, int64_t offset, size_t max_bytes) {
  ASSIGN_OR_RETURN(Record r, Resolve(ref));
  ASSIGN_OR_RETURN(runtime::ContainerStatus st, supervisor_->Inspect(r.id));
  LogChunk chunk;
  chunk.running = st.state == ContainerState::kRunning;
  // Running state first: output written before the exit is then in the file read below.
  runtime::UniqueFd fd(::open(st.stdout_log.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) {
    if (errno == ENOENT) return chunk;
    return ErrnoToStatus(errno, StrCat("open ", st.stdout_log));
  }
  struct stat sb;
  if (::fstat(fd.get(), &sb) != 0) return ErrnoToStatus(errno, "stat log");
  // Past the end: the log was rotated since; its new file starts at 0.
  if (offset < 0 || offset > sb.st_size) offset = 0;
  if (offset == 0) {
    absl::StatusOr<std::string> rotated = runtime::ReadFileToString(StrCat(st.stdout_log, ".1"));
    if (rotated.ok()) chunk.data = rotated->substr(0, max_bytes);
  }
  size_t want = std::min<size_t>(max_bytes - std::min(max_bytes, chunk.data.size()),
                                 static_cast<size_t>(sb.st_size - offset));
  std::string buf(want, '\0');
  ssize_t n = want == 0 ? 0 : ::pread(fd.get(), buf.data(), want, offset);
  if (n < 0) return ErrnoToStatus(errno, "read log");
  buf.resize(static_cast<size_t>(n));
  chunk.data += buf;
  chunk.next_offset = offset + n;
  return chunk;
}

absl::StatusOr<runtime::Image> ContainerManager::ImportImage(const std::string& source,
                                                             const std::string& name) {
  if (source.empty() || source[0] != '/') {
    return absl::InvalidArgumentError(StrCat("image source '", source, "' must be an absolute path"));
  }
  return images_->Import(source, {.name = name});
}

absl::StatusOr<std::vector<runtime::Image>> ContainerManager::ListImages() { return images_->List(); }

absl::Status ContainerManager::RemoveImage(std::string_view name) {
  ASSIGN_OR_RETURN(runtime::Image image, images_->Get(name));
  for (const ContainerView& v : List(/*all=*/true)) {
    if (v.status.image_digest == image.digest &&
        (name.rfind("sha256:", 0) == 0 || image.names.size() <= 1 || v.image == name)) {
      return absl::FailedPreconditionError(
          StrCat("image ", name, " is used by container ", v.name, " (remove it first)"));
    }
  }
  return images_->Remove(name);
}

std::vector<std::string> ContainerManager::ListVolumes() { return supervisor_->ListVolumes(); }
absl::Status ContainerManager::RemoveVolume(std::string_view name) { return supervisor_->RemoveVolume(name); }

}  // namespace loom::containers
