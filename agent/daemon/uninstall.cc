#include "agent/daemon/uninstall.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "agent/containers/container_manager.h"
#include "agent/lb/cgroup2.h"
#include "common/log.h"
#include "common/status.h"
#include "common/strings.h"
#include "lb/bpf_lb.h"
#include "overlay/nft_firewall.h"
#include "overlay/overlay_kernel_netlink.h"
#include "overlay/vxlan_reconciler.h"

namespace loom::agent {
namespace {

absl::Status UninstallLb(const LoomdConfig& config, std::vector<std::string>* removed) {
  absl::Status first;
  struct stat st;
  if (stat(config.bpffs_dir.c_str(), &st) == 0) {
    // Opening loads the programs once more; Uninstall then unpins and detaches all.
    absl::StatusOr<std::unique_ptr<lb::BpfLoadBalancer>> lb =
        lb::BpfLoadBalancer::Open(config.bpffs_dir);
    if (lb.ok()) {
      first.Update((*lb)->Uninstall());
      removed->push_back(StrCat("bpf pins and cgroup links under ", config.bpffs_dir));
    } else {
      first.Update(Annotate(lb.status(), StrCat("--bpffs-dir ", config.bpffs_dir)));
    }
  }
  absl::StatusOr<int> filters = lb::BpfLoadBalancer::DetachTcEverywhere();
  if (filters.ok()) {
    if (*filters > 0) removed->push_back(StrCat(*filters, " tc filters"));
  } else {
    first.Update(filters.status());
  }
  absl::StatusOr<Cgroup2Dir> cgroup = ResolveLoomCgroup2(config.cgroup2_dir, config.run_dir);
  if (cgroup.ok()) {
    absl::Status s = RemoveLoomCgroup2(*cgroup);
    if (s.ok()) removed->push_back(StrCat("cgroup ", cgroup->dir));
    first.Update(s);
  } else {
    first.Update(cgroup.status());
  }
  return first;
}

absl::Status UninstallOverlay(const LoomdConfig& config, std::vector<std::string>* removed) {
  absl::Status first;
  absl::StatusOr<std::unique_ptr<overlay::OverlayKernel>> kernel =
      overlay::NewNetlinkOverlayKernel();
  if (!kernel.ok()) return kernel.status();
  absl::StatusOr<std::vector<net::Route>> routes = (*kernel)->ListRoutes();
  if (routes.ok()) {
    for (const net::Route& r : *routes) {
      if (r.protocol != overlay::kRouteProtocol) continue;
      absl::Status s = (*kernel)->DeleteRoute(r);
      if (s.ok()) removed->push_back(StrCat("route ", r.dst.ToString()));
      first.Update(s);
    }
  } else {
    first.Update(routes.status());
  }
  std::string device = overlay::DeviceName(config.vxlan_vni);
  absl::StatusOr<std::optional<net::LinkInfo>> link = (*kernel)->FindLink(device);
  if (link.ok() && link->has_value()) {
    absl::Status s = (*kernel)->DeleteLink(device);
    if (s.ok()) removed->push_back(StrCat("device ", device));
    first.Update(s);
  } else if (!link.ok()) {
    first.Update(link.status());
  }
  absl::Status s = overlay::NewNftFirewall()->Remove();
  if (s.ok()) removed->push_back(StrCat("nftables table ip ", overlay::kNftTable));
  first.Update(s);
  return first;
}

// The folders containers' cgroups live in (--cgroup-root), once no container is left.
absl::Status UninstallContainerCgroups(const LoomdConfig& config, std::vector<std::string>* removed) {
  absl::StatusOr<std::pair<std::string, std::string>> split = containers::SplitCgroupRoot(config.cgroup_root);
  if (!split.ok()) return split.status();
  const auto& [root, parent] = *split;
  absl::Status first;
  for (const char* controller : {"memory", "cpu", "pids", "unified", ""}) {
    std::string dir = *controller ? StrCat(root, "/", controller, "/", parent) : StrCat(root, "/", parent);
    if (::rmdir(dir.c_str()) == 0) {
      removed->push_back(StrCat("cgroup ", dir));
    } else if (errno != ENOENT && errno != ENOTDIR) {
      first.Update(ErrnoToStatus(errno, StrCat("rmdir ", dir, " (containers still in it? remove them first)")));
    }
  }
  return first;
}

}  // namespace

absl::Status Uninstall(const LoomdConfig& config, std::vector<std::string>* removed) {
  absl::Status first = UninstallLb(config, removed);
  first.Update(UninstallOverlay(config, removed));
  first.Update(UninstallContainerCgroups(config, removed));
  return first;
}

}  // namespace loom::agent
