#include "tests/integration/runtime_node.h"

#include <signal.h>
#include <sys/mount.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>

#include "common/json.h"
#include "common/status.h"
#include "common/strings.h"
#include "gtest/gtest.h"
#include "tests/unit/runtime/busybox_image.h"
#include "tests/testing/cluster.h"
#include "tests/testing/loom_cleanup.h"

namespace loom::testing {
namespace fs = std::filesystem;

absl::StatusOr<std::unique_ptr<RuntimeNode>> RuntimeNode::Create(const std::string& network,
                                                                  std::vector<std::string> loomd_flags,
                                                                  bool lb) {
  std::unique_ptr<RuntimeNode> rt(new RuntimeNode());
  static std::atomic<int> n{0};
  rt->cgroup_parent_ = StrCat("loom-it-", ::getpid(), "-", n++);
  rt->conf_dir_ = StrCat("/tmp/loom-rt-it-conf-", rt->cgroup_parent_);
  fs::create_directories(rt->conf_dir_);
  std::string bin_dir = LOOM_BIN_DIR;
  loomd_flags.push_back(StrCat("--cni-conf-dir=", rt->conf_dir_));
  loomd_flags.push_back(StrCat("--cni-bin-dir=", network == "bridge" ? "/usr/lib/cni" : bin_dir));
  loomd_flags.push_back(StrCat("--cgroup-root=/sys/fs/cgroup/", rt->cgroup_parent_));
  if (lb) {  // after CniNode's --lb=false, so these win
    std::string cgroup2 = HostCgroup2Mount();
    if (cgroup2.empty()) return absl::FailedPreconditionError("the host has no cgroup2");
    // A private bpffs: the host's /sys/fs/bpf may not be mounted, and loomd would mount it.
    rt->lb_bpffs_mount_ = StrCat("/tmp/loom-rt-it-bpf-", rt->cgroup_parent_);
    fs::create_directories(rt->lb_bpffs_mount_);
    if (::mount("bpffs", rt->lb_bpffs_mount_.c_str(), "bpf", 0, nullptr) != 0) {
      return ErrnoToStatus(errno, StrCat("mount bpffs on ", rt->lb_bpffs_mount_));
    }
    rt->lb_bpffs_dir_ = StrCat(rt->lb_bpffs_mount_, "/loom");
    rt->lb_cgroup2_dir_ = StrCat(cgroup2, "/", rt->cgroup_parent_);
    loomd_flags.push_back("--lb=true");
    loomd_flags.push_back(StrCat("--bpffs-dir=", rt->lb_bpffs_dir_));
    loomd_flags.push_back(StrCat("--cgroup2-dir=", rt->lb_cgroup2_dir_));
  }
  ASSIGN_OR_RETURN(rt->node_, CniNode::Create(loomd_flags, /*host_mounts=*/true));
  if (network == "loom") {
    rt->WriteConf(StrCat(R"({"cniVersion":"1.1.0","name":"loom","plugins":[{"type":"loom","socket":")",
                         rt->node_->socket(), R"("}]})"));
  } else if (network == "bridge") {
    rt->WriteConf(StrCat(R"({"cniVersion":"1.0.0","name":"br","plugins":[{"type":"bridge","bridge":"lmbr0",)"
                         R"("isGateway":true,"ipam":{"type":"host-local","dataDir":")",
                         rt->node_->dir(), R"(/host-local","ranges":[[{"subnet":"10.99.0.0/24"}]],)"
                         R"("routes":[{"dst":"0.0.0.0/0"}]}}]})"));
  }
  const std::string rootfs = StrCat(rt->node_->dir(), "/busybox-rootfs");
  RETURN_IF_ERROR(runtime::testing::MakeBusyboxRootfs(rootfs));
  RETURN_IF_ERROR(runtime::testing::MakeOciLayout(rootfs, StrCat(rt->node_->dir(), "/busybox-oci"), "busybox:test"));
  CommandResult r = rt->Ctl({"image", "import", StrCat(rt->node_->dir(), "/busybox-oci"), "busybox"});
  if (r.exit_code != 0) return absl::InternalError(StrCat("image import: ", r.err));
  return rt;
}

void RuntimeNode::WriteConf(const std::string& text) {
  std::ofstream(StrCat(conf_dir_, "/10-test.conflist")) << text;
}

CommandResult RuntimeNode::Ctl(std::vector<std::string> args, absl::Duration timeout) {
  args.insert(args.begin(), {StrCat(LOOM_BIN_DIR, "/loomctl"), StrCat("--socket=", node_->socket())});
  absl::StatusOr<CommandResult> r = RunCommand(args, timeout);
  if (!r.ok()) return {-1, "", std::string(r.status().message())};
  return *r;
}

RuntimeNode::~RuntimeNode() {
  if (node_) {
    // Whatever a test left running, through loomd (started again if need be); Apps
    // first, or their reconciler starts the replicas again.
    Loomctl ctl = [this](std::vector<std::string> args) { return Ctl(std::move(args)); };
    std::optional<std::vector<Json>> containers = ListContainers(ctl);
    if (!containers && node_->StartLoomd().ok()) containers = ListContainers(ctl);
    DeleteAllApps(ctl);
    RemoveContainers(ctl, containers.value_or(std::vector<Json>{}));
    (void)node_->StopLoomd(SIGKILL);
    // Then by force: processes in the test's cgroups, mounts under its folder.
    RemoveV1CgroupTrees(cgroup_parent_);
    std::vector<std::string> left = MountsUnder(node_->dir());
    for (const std::string& m : left) ADD_FAILURE() << "mount left: " << m;
    DetachMounts(left);
    node_.reset();
  }
  if (!lb_cgroup2_dir_.empty()) RemoveCgroupTree(lb_cgroup2_dir_);
  if (!lb_bpffs_mount_.empty()) {
    std::error_code ec;
    fs::remove_all(lb_bpffs_dir_, ec);  // unpinned links detach: nothing holds them now
    ::umount2(lb_bpffs_mount_.c_str(), MNT_DETACH);
    ::rmdir(lb_bpffs_mount_.c_str());
  }
  std::error_code ec;
  fs::remove_all(conf_dir_, ec);
}

}  // namespace loom::testing
