// A node with Loom's container runtime, for integration tests: a CniNode whose loomd
// has the machine's mounts (the runtime needs /sys/fs/cgroup), its own CNI conf dir
// (the `loom` plugin, the reference bridge + host-local, or none) and cgroup folder,
// and the busybox image (busybox-static packed as an OCI layout) imported as
// "busybox". The destructor removes every container (through loomd, then by force:
// processes in its cgroups, mounts under its dir), the cgroup folders and the conf
// dir, even when the test failed; a mount left behind is a test failure.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "tests/integration/cni_node.h"
#include "tests/testing/command.h"

namespace loom::testing {

class RuntimeNode {
 public:
  // `network`: "loom", "bridge" or "" (no CNI config at all). `lb`: loomd runs the
  // service load balancer, with its own bpffs dir and cgroup2 dir (removed at the end).
  static absl::StatusOr<std::unique_ptr<RuntimeNode>> Create(const std::string& network = "loom",
                                                             std::vector<std::string> loomd_flags = {},
                                                             bool lb = false);
  ~RuntimeNode();

  CniNode& node() { return *node_; }
  const std::string& cgroup_parent() const { return cgroup_parent_; }
  const std::string& conf_dir() const { return conf_dir_; }

  // loomctl against this node's loomd.
  CommandResult Ctl(std::vector<std::string> args, absl::Duration timeout = absl::Seconds(90));
  void WriteConf(const std::string& text);

 private:
  RuntimeNode() = default;
  std::unique_ptr<CniNode> node_;
  std::string cgroup_parent_;
  std::string conf_dir_;
  std::string lb_bpffs_mount_, lb_bpffs_dir_, lb_cgroup2_dir_;  // with `lb`
};

}  // namespace loom::testing
