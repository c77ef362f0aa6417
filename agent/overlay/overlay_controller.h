// Feeds the overlay from the store: claims this node's subnet, sets up the VXLAN device
// and the firewall, then watches /loom/nodes/ (with resync) and makes the kernel hold
// exactly one set of entries per remote node that has published a pod CIDR, an
// underlay address and a VTEP MAC. Also sweeps the subnets of departed nodes.
//
//   OverlayController overlay(store, std::move(kernel), std::move(firewall), options);
//   RETURN_IF_ERROR(overlay.Setup());       // subnet + device; publish pod_cidr(), vtep_mac()
//   ... register the node ...
//   RETURN_IF_ERROR(overlay.Start());       // watch, program peers, sweep
//   overlay.Stop();                         // kernel state is kept for the next start
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "agent/overlay/subnet_allocator.h"
#include "agent/store/store.h"
#include "common/metrics/metrics.h"
#include "overlay/firewall.h"
#include "overlay/overlay_kernel.h"
#include "overlay/vxlan_reconciler.h"

namespace loom::agent {

struct OverlayControllerOptions {
  std::string node_name;
  net::Ipv4Prefix cluster_cidr;
  int node_cidr_size = 24;
  uint32_t vni = 1;
  uint16_t port = 4789;
  std::string underlay_iface;
  net::Ipv4Address underlay_ip;
  bool direct_routing = false;
  bool masquerade = true;
  // The node-local DNS address and port: exempt from connection tracking.
  std::optional<net::Ipv4Address> dns_ip;
  uint16_t dns_port = 53;
  absl::Duration subnet_grace = absl::Minutes(10);
  // A full reconcile this often even without store events (repairs outside changes).
  absl::Duration resync_period = absl::Seconds(30);
  // Must outlive the controller when set.
  metrics::Registry* metrics = nullptr;
};

class OverlayController {
 public:
  OverlayController(store::Store* store, std::unique_ptr<overlay::OverlayKernel> kernel,
                    std::unique_ptr<overlay::Firewall> firewall, OverlayControllerOptions options);
  ~OverlayController();  // Stop()
  OverlayController(const OverlayController&) = delete;
  OverlayController& operator=(const OverlayController&) = delete;

  // Claims (or finds) the subnet, sets up the device, applies the firewall with the
  // nodes the store knows now, and programs the peers already registered.
  absl::Status Setup();
  // Starts the watch on /loom/nodes/ and the worker thread.
  absl::Status Start();
  void Stop();

  const net::Ipv4Prefix& pod_cidr() const { return pod_cidr_; }
  net::MacAddress vtep_mac() const { return overlay::VtepMac(options_.node_name); }
  const std::string& device() const { return reconciler_.device(); }
  uint32_t mtu() const { return reconciler_.mtu(); }
  // Kernel writes so far; peers programmed by the last reconcile.
  uint64_t netlink_writes() const;
  int peers() const;

 private:
  // Builds peers from the node map and applies them; the kernel's entries follow.
  absl::Status Reconcile(const std::map<std::string, std::string>& nodes);
  void Run();

  store::Store* const store_;
  std::unique_ptr<overlay::OverlayKernel> kernel_;
  std::unique_ptr<overlay::Firewall> firewall_;
  const OverlayControllerOptions options_;
  overlay::VxlanReconciler reconciler_;  // used by one thread at a time (worker_mu_)
  SubnetAllocator allocator_;
  SubnetSweeper sweeper_;
  net::Ipv4Prefix pod_cidr_;
  std::unique_ptr<store::Watch> watch_;
  std::thread worker_;

  metrics::Gauge* peers_gauge_ = nullptr;
  metrics::Counter* writes_counter_ = nullptr;
  metrics::Gauge* peer_time_gauge_ = nullptr;
  metrics::Counter* reconcile_errors_ = nullptr;
  metrics::Counter* firewall_writes_ = nullptr;

  mutable absl::Mutex worker_mu_;  // serialises reconciles
  uint64_t reported_writes_ ABSL_GUARDED_BY(worker_mu_) = 0;
  uint64_t reported_firewall_writes_ ABSL_GUARDED_BY(worker_mu_) = 0;

  mutable absl::Mutex mu_;
  std::map<std::string, std::string> nodes_ ABSL_GUARDED_BY(mu_);  // name -> JSON
  bool dirty_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace loom::agent
