// loomd's containers: a runtime::Supervisor (the processes), the ImageStore, and CNI
// attachment through the conf dir exactly as libcni does it (runtime::CniInvoker), so a
// container started with `loomctl run` is a pod like any other runtime's.
//
// Per container:
//   - a record <state>/records/<id>.json (name, image, labels, ports, network);
//   - a network namespace pinned at <run>/netns/<id> (a bind mount), set up by the CNI
//     chain (CNI_ARGS IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=<name>;
//     LOOM_LABELS=k=v,...; runtimeConfig.portMappings from -p) before the command starts;
//   - /etc/resolv.conf, /etc/hosts and /etc/hostname written from the CNI result (its
//     dns; loomd's node-local DNS when the result has none) and bind-mounted in.
// The network is released (DEL in reverse, with the cached result; the pin removed) when
// the container stops or exits (a reaper notices exits) and at the latest on removal.
// At start, records whose container is gone are released, and the network is garbage
// collected (stale cached attachments DELeted, then the CNI 1.1 GC verb).
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "common/json.h"
#include "runtime/cni_invoker.h"
#include "runtime/image_store.h"
#include "runtime/supervisor.h"

namespace loom::containers {

struct ContainerManagerOptions {
  std::string state_dir;  // records, bundles, volumes, images, the CNI result cache
  std::string run_dir;    // netns pins
  std::string cni_conf_dir;
  std::vector<std::string> cni_bin_dirs;
  absl::Duration cni_timeout = absl::Seconds(60);
  std::string cgroup_root = "/sys/fs/cgroup";
  std::string cgroup_parent = "loom";
  std::string cgroup2_dir;  // see runtime::SupervisorOptions
  std::string shim_path;    // empty: beside this executable
  // The resolv.conf of containers whose CNI result names no DNS: loomd's node-local DNS.
  std::string dns_nameserver;
  std::string cluster_domain = "cluster.local";
  absl::Duration reap_interval = absl::Seconds(1);
};

struct PortMapping {
  int host_port = 0;
  int container_port = 0;
  std::string protocol = "tcp";
  std::string host_ip;  // optional
};
// Docker's -p: [hostIP:]hostPort:containerPort[/tcp|udp|sctp].
absl::StatusOr<PortMapping> ParsePortMapping(std::string_view text);

struct RunRequest {
  std::string name;  // empty: the id
  std::string image;
  std::vector<std::string> command;
  std::vector<std::string> env;
  std::vector<std::string> volumes;  // -v syntax
  double cpus = 0;
  int64_t memory_bytes = 0;
  std::vector<PortMapping> ports;
  std::map<std::string, std::string> labels;
  std::string hostname;  // empty: the name
  bool network = true;   // false: only a loopback
  // The pod it registers as (K8S_POD_NAMESPACE), and whether it is ready once
  // attached (false: LOOM_READY=false, for replicas gated on a readiness probe).
  std::string pod_namespace = "default";
  bool ready_on_attach = true;
  std::string workdir;     // empty: the image's
  int64_t pids_limit = 0;  // 0: unlimited
};
absl::StatusOr<RunRequest> RunRequestFromJson(const Json& j);
Json RunRequestToJson(const RunRequest& r);

struct ContainerView {
  std::string id;
  std::string name;
  std::string image;
  std::vector<std::string> command;
  std::map<std::string, std::string> labels;
  std::vector<PortMapping> ports;
  std::string hostname;
  absl::Time created;
  std::string network;           // the CNI network it was attached to, if any
  bool attached = false;         // still attached
  std::vector<std::string> ips;  // CIDRs from the CNI result
  runtime::ContainerStatus status;
};
Json ContainerViewToJson(const ContainerView& v);

struct LogChunk {
  std::string data;
  int64_t next_offset = 0;
  bool running = false;
};

class ContainerManager {
 public:
  static absl::StatusOr<std::unique_ptr<ContainerManager>> Open(ContainerManagerOptions options);
  ~ContainerManager();  // stops the reaper; containers keep running

  absl::StatusOr<ContainerView> Run(const RunRequest& request);
  // `ref`: a name, an id, or a unique id prefix.
  absl::StatusOr<ContainerView> Inspect(std::string_view ref);
  std::vector<ContainerView> List(bool all);
  absl::StatusOr<ContainerView> Stop(std::string_view ref, absl::Duration grace);
  absl::Status Remove(std::string_view ref, bool force);
  absl::StatusOr<runtime::ExecResult> Exec(std::string_view ref, const runtime::ExecSpec& spec,
                                           absl::Duration timeout);
  // CNI CHECK of a running container's attachment.
  absl::Status CheckNetwork(std::string_view ref);
  // The combined log from `offset` (the rotated part first when offset is 0 and `all`).
  absl::StatusOr<LogChunk> Logs(std::string_view ref, int64_t offset, size_t max_bytes);

  absl::StatusOr<runtime::Image> ImportImage(const std::string& source, const std::string& name);
  absl::StatusOr<std::vector<runtime::Image>> ListImages();
  absl::Status RemoveImage(std::string_view name);
  std::vector<std::string> ListVolumes();
  absl::Status RemoveVolume(std::string_view name);

  // Releases the networks of containers that are no longer running (the reaper's pass).
  void ReapExited();

 private:
  struct Record {
    std::string id, name, image, hostname, network, netns;
    std::vector<std::string> command;
    std::map<std::string, std::string> labels;
    std::vector<PortMapping> ports;
    absl::Time created;
    bool attached = false;
    std::vector<std::string> ips;
    Json cni_args = Json::array();
    Json capability_args = Json::object();
    std::string pod_namespace = "default";
    bool ready_on_attach = true;
  };
  explicit ContainerManager(ContainerManagerOptions options) : options_(std::move(options)) {}
  absl::Status Start();
  absl::StatusOr<Record> Resolve(std::string_view ref);
  absl::Status SaveRecord(const Record& r);
  ContainerView ViewOf(const Record& r, const std::optional<runtime::ContainerStatus>& st) const;
  // DEL with the cached result, remove the pin; the record says it is detached.
  absl::Status ReleaseNetwork(Record& r) ABSL_EXCLUSIVE_LOCKS_REQUIRED(ops_mu_);
  runtime::CniRuntimeConf RuntimeConfOf(const Record& r) const;
  absl::StatusOr<runtime::CniNetwork> NetworkNamed(const std::string& name) const;
  absl::Status Attach(Record& r, runtime::CniNetwork& net, std::string* resolv,
                      std::string* hosts);
  void GcNetwork() ABSL_EXCLUSIVE_LOCKS_REQUIRED(ops_mu_);
  std::string RecordPath(std::string_view id) const;
  std::string EtcDir(std::string_view id) const;
  std::string PinPath(std::string_view id) const;

  ContainerManagerOptions options_;
  std::unique_ptr<runtime::ImageStore> images_;
  std::unique_ptr<runtime::Supervisor> supervisor_;
  std::unique_ptr<runtime::CniInvoker> cni_;
  // Lifecycle operations (run, stop, remove, reaping) one at a time; reads do not wait.
  absl::Mutex ops_mu_;
  mutable absl::Mutex mu_;
  std::map<std::string, Record> records_ ABSL_GUARDED_BY(mu_);
  absl::Notification stop_;
  std::thread reaper_;
};

// loomd's --cgroup-root ("/sys/fs/cgroup/loom") as the cgroup mount root and the folder
// containers live in ("/sys/fs/cgroup", "loom"). InvalidArgument outside /sys/fs/cgroup.
absl::StatusOr<std::pair<std::string, std::string>> SplitCgroupRoot(std::string_view root);

// A network namespace pinned at `path` (a bind mount of a new namespace, loopback up).
absl::Status CreatePinnedNetns(const std::string& path);
// Unmounts and removes a pin. OK when it is not there.
absl::Status RemovePinnedNetns(const std::string& path);
// Whether `path` is a mounted network namespace.
bool IsPinnedNetns(const std::string& path);

}  // namespace loom::containers
