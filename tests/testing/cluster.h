// A cluster in one machine, as DESIGN.md describes it: a fabric namespace with a
// bridge as the underlay (198.51.100.0/24), one namespace per node with a veth on it,
// an etcd in its own namespace, and a loomd per node with its own paths.
// Everything is named with a per-run prefix and torn down by the destructor, even
// when the test fails; namespaces left by a crashed earlier run are swept at start.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "tests/testing/command.h"
#include "tests/testing/etcd_server.h"
#include "tests/testing/subprocess.h"

namespace loom::testing {

struct ClusterOptions {
  int nodes = 3;
  bool etcd = true;  // false: each node runs the embedded store
  absl::Duration node_lease_ttl = absl::Seconds(3);
  std::vector<std::string> extra_loomd_flags;
  // Service load balancing: each node's loomd gets its own cgroup2 directory
  // (<test dir>/cgroup2/<prefix>-<node>, removed with its children and processes at
  // teardown). Off by default: those tests need no BPF.
  bool lb = false;
  // Loom's container runtime on every node (Apps, `loomctl run`): loomd runs in the
  // machine's mount namespace (`nsenter --net`: the runtime needs /sys/fs/cgroup, and
  // container mounts outlive loomd), its containers under the cgroup
  // /sys/fs/cgroup/<controller>/<prefix>-<node>, attached by the `loom` CNI plugin
  // (conf in <node dir>/cni/net.d). Teardown deletes the Apps and every container
  // through loomd, then kills what is left in those cgroups, removes them and
  // unmounts whatever is left under the test dir.
  bool runtime = false;
};

class Cluster {
 public:
  struct Node {
    std::string name;         // node1, node2, ...
    std::string netns;        // <prefix>-node1
    std::string underlay_ip;  // 198.51.100.11, ...
    std::string dir;          // per-node state, run dir, logs
    std::string api_socket;
    std::string log_path;
    std::string cgroup2_dir;  // with ClusterOptions::lb
    std::string bpffs_dir;    // --bpffs-dir
    std::string cgroup_parent;  // with ClusterOptions::runtime: <prefix>-<node>
    std::unique_ptr<Subprocess> loomd;
  };

  // Builds the namespaces and links, starts etcd and every node's loomd, and waits
  // until each loomd reports ready.
  static absl::StatusOr<std::unique_ptr<Cluster>> Create(const ClusterOptions& options);
  ~Cluster();

  Cluster(const Cluster&) = delete;
  Cluster& operator=(const Cluster&) = delete;

  int size() const { return static_cast<int>(nodes_.size()); }
  const Node& node(int i) const { return nodes_[i]; }
  const std::string& prefix() const { return prefix_; }
  std::string StoreUrl() const;
  // The etcd process (-1 with ClusterOptions::etcd false), e.g. to pin it.
  pid_t etcd_pid() const { return etcd_ ? etcd_->pid() : -1; }

  // Starts node i's loomd (again) and waits for its API to answer.
  absl::Status StartLoomd(int i);
  // Sends `signal` to node i's loomd and reaps it.
  absl::Status StopLoomd(int i, int signal);

  // loomctl against node i's loomd (never fails: exit_code -1 and err when it could not run).
  CommandResult Ctl(int i, std::vector<std::string> args, absl::Duration timeout = absl::Seconds(90));

  // Runs a command inside node i's namespace.
  absl::StatusOr<std::string> ExecInNode(int i, const std::vector<std::string>& argv);
  // Keys under `prefix` in the cluster's etcd (read with etcdctl inside its namespace).
  absl::StatusOr<std::vector<std::string>> StoreKeys(const std::string& prefix);
  // One key's value ("" when missing), and writes or deletes one key (etcdctl).
  absl::StatusOr<std::string> StoreGet(const std::string& key);
  absl::Status StorePut(const std::string& key, const std::string& value);
  absl::Status StoreDelete(const std::string& key);
  // The argv of node i's loomd (without `ip netns exec`), e.g. to run --uninstall.
  std::vector<std::string> LoomdFlags(int i) const;

  // The tail of node i's loomd log, for failure messages.
  std::string LogTail(int i) const;

 private:
  explicit Cluster(ClusterOptions options);
  absl::Status Build();
  void TearDown();
  void RemoveAppsAndContainers();
  std::vector<std::string> LoomdArgv(int i) const;

  ClusterOptions options_;
  std::string prefix_;
  std::string root_dir_;
  std::string fabric_ns_;
  std::string etcd_ns_;
  std::vector<std::string> namespaces_;  // created, deleted in reverse
  std::unique_ptr<EtcdServer> etcd_;
  std::vector<Node> nodes_;
  std::string cgroup2_mount_;  // with ClusterOptions::lb: under root_dir_
  std::string bpffs_mount_;
};

// Deletes namespaces that an earlier, crashed run of this harness left behind
// (named lm<pid>-..., where <pid> no longer runs).
void SweepStaleNamespaces();

// The host's cgroup2 mount point ("" when none).
std::string HostCgroup2Mount();
// Kills every process in the cgroup directory `dir` and its children, then removes them.
void RemoveCgroupTree(const std::string& dir);
// The mount points under `prefix` (a path prefix), in mount order.
std::vector<std::string> MountsUnder(const std::string& prefix);
// Detaches `mounts`, last first (so nested ones go before their parents).
void DetachMounts(const std::vector<std::string>& mounts);
// The same for the cgroup `parent` (a path relative to each hierarchy) in every cgroup
// v1 controller hierarchy under /sys/fs/cgroup.
void RemoveV1CgroupTrees(const std::string& parent);

}  // namespace loom::testing
