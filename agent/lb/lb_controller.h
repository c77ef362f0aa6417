// loomd's service load balancer: owns the BPF maps and programs (lb::BpfLoadBalancer,
// pinned under --bpffs-dir), attaches the socket programs to Loom's cgroup2 directory
// and the tc program to the host side of every pod veth, and applies each service
// state snapshot (ServiceController) on its own thread, the latest one winning.
//
//   ASSIGN_OR_RETURN(auto lb, LbController::Start(options));
//   services.Subscribe([&](auto s) { lb->OnState(std::move(s)); });
//   cni hooks: lb->PodAttached(host_veth) / lb->PodReleased(host_veth)
//   lb->Stop();   // the maps, programs and attachments stay for the next start
#pragma once

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "agent/lb/cgroup2.h"
#include "agent/lb/lb_reconciler.h"
#include "common/json.h"
#include "common/metrics/metrics.h"
#include "lb/bpf_lb.h"
#include "lb/udp_socket_terminator.h"

namespace loom::agent {

struct LbControllerOptions {
  std::string bpffs_dir;
  std::string cgroup2_dir;  // --cgroup2-dir ("" = <host cgroup2>/loom)
  std::string run_dir;      // where cgroup2 is mounted when the host has none
  std::optional<net::Ipv4Address> node_ip;  // NodePort frontends
  // NodePort from outside the node: the underlay interface (its tc ingress), the
  // overlay device (replies from backends on other nodes) and this node's overlay
  // address (the source backends see). Empty / unset: NodePorts serve pods only.
  std::string underlay_iface;
  std::string overlay_device;
  std::optional<net::Ipv4Address> snat_ip;
  metrics::Registry* metrics = nullptr;     // must outlive the controller when set
};

class LbController {
 public:
  // How often expired tc connection entries are deleted (BpfLoadBalancer::ExpireFlows).
  static constexpr std::chrono::seconds kFlowSweepInterval{15};

  static absl::StatusOr<std::unique_ptr<LbController>> Start(const LbControllerOptions& options);
  ~LbController();  // Stop()

  // Any thread; applied on the controller's thread (only the newest pending one).
  void OnState(std::shared_ptr<const ServiceState> state);
  // The CNI API's hooks: the pod's host veth exists now / is gone.
  void PodAttached(const std::string& host_veth);
  void PodReleased(const std::string& host_veth);
  void Stop();

  // Loom's cgroup2 directory: the runtime puts containers in <dir>/<id>.
  const std::string& cgroup2_dir() const { return cgroup_.dir; }
  // The generation of the last snapshot applied (0 before the first).
  uint64_t applied_generation() const;
  Json StatusJson() const;

 private:
  LbController(std::unique_ptr<lb::BpfLoadBalancer> lb, Cgroup2Dir cgroup,
               std::optional<net::Ipv4Address> node_ip);
  void Loop();
  void ApplyState(const ServiceState& state);
  void EndUdpSockets(std::span<const lb::UdpSocketTerminator::Target> targets);
  void SweepFlows();
  absl::Status AttachExistingPods();

  class Writer;
  std::unique_ptr<lb::BpfLoadBalancer> lb_;
  std::unique_ptr<Writer> writer_;
  std::unique_ptr<lb::UdpSocketTerminator> terminator_;  // null: the kernel cannot
  Cgroup2Dir cgroup_;
  LbReconciler reconciler_;  // the worker's only
  metrics::Counter* applies_ = nullptr;
  metrics::Counter* errors_ = nullptr;
  metrics::Gauge* apply_seconds_ = nullptr;
  metrics::Gauge* services_gauge_ = nullptr;
  metrics::Counter* flows_expired_ = nullptr;
  metrics::Counter* udp_sockets_ended_ = nullptr;

  std::mutex tc_mu_;  // AttachTc / DetachTc (the CNI API's threads)

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::shared_ptr<const ServiceState> pending_;
  uint64_t applied_generation_ = 0;
  size_t services_ = 0, backends_ = 0, tc_attached_ = 0;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace loom::agent
