// loomd's wiring: resolves the underlay, binds the metrics address and the API socket,
// opens the store, registers the node and keeps its lease alive.
//
//   Daemon daemon(config);
//   RETURN_IF_ERROR(daemon.Start());  // on error, everything it created is undone
//   ... wait for SIGTERM ...
//   daemon.Stop();                    // servers stopped, socket removed, lease kept
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "agent/daemon/config.h"
#include "agent/apps/app_api.h"
#include "agent/apps/app_controller.h"
#include "agent/apps/app_registry.h"
#include "agent/apps/container_replicas.h"
#include "agent/apps/event_log.h"
#include "agent/cni_api/cni_api.h"
#include "agent/containers/container_manager.h"
#include "agent/daemon/node_health.h"
#include "agent/daemon/node_registrar.h"
#include "agent/daemon/underlay.h"
#include "agent/lb/lb_controller.h"
#include "agent/ingress/ingress_controller.h"
#include "agent/overlay/overlay_controller.h"
#include "agent/node_dns/node_dns.h"
#include "agent/services/lost_nodes.h"
#include "agent/services/service_controller.h"
#include "agent/services/service_registry.h"
#include "agent/store/store.h"
#include "common/http/server.h"
#include "common/metrics/metrics.h"

namespace loom::agent {

// The JSON of GET /v1/status.
struct AgentStatus {
  std::string node;
  std::string version;
  std::string store_kind;  // "embedded" or "etcd"
  bool store_healthy = false;
  std::string store_error;  // why not, when not healthy
  store::Revision revision = 0;
  int64_t uptime_seconds = 0;
  bool ready = false;
  Json dns;  // NodeDns::StatusJson(); null before DNS starts
  Json lb;   // LbController::StatusJson(); null without --lb
  Json ingress;     // IngressController::StatusJson(); null without the ingress
  Json components;  // this node's component health (node_health.h)
  Json nodes;       // every live node's published health (ClusterHealth)
};
Json AgentStatusToJson(const AgentStatus& status);

class Daemon {
 public:
  explicit Daemon(LoomdConfig config);
  ~Daemon();  // Stop()

  // Brings loomd up. On failure, what was created (servers, the socket file, the run
  // dir if it made it, the store) is removed again and the error names the problem.
  absl::Status Start();
  // Stops renewing and serving, removes the API socket, closes the store. The node
  // lease is kept, so a restart within its TTL finds the node key still there.
  void Stop();

  // Whether the store is open and the node registered; otherwise why not.
  bool Ready(std::string* reason) const;
  AgentStatus Status() const;
  // store, overlay, dns, lb, ingress, runtime: {"state": ok|degraded|down|off, "detail"}.
  Json ComponentsHealth() const;
  // The overlay (with --overlay, once started): this node's pod subnet, device, MTU.
  const OverlayController* overlay() const { return overlay_.get(); }
  // Loom's cgroup2 directory (with --lb, once started; else ""): the runtime places
  // each container in <dir>/<id> so that the socket load balancer sees its sockets.
  std::string cgroup2_dir() const;

 private:
  // Status() without the components' health and the other nodes'.
  AgentStatus LocalStatus() const;
  // The components' health from what LocalStatus() read.
  Json HealthOf(const AgentStatus& local) const;
  void Undo();
  // Claims the subnet and sets up the device; fills the node's podCIDR and vtepMAC.
  absl::Status StartOverlay(const Underlay& underlay, NodeInfo* node);
  absl::Status StartServicesAndDns();
  void StopServicesAndDns();
  // The container runtime (agent/containers/): images, containers, CNI attachment.
  absl::Status StartContainers();
  // Destroys every component, in dependency order (after they were stopped).
  void ReleaseComponents();
  http::Response HandleStatus() const;
  http::Response HandleReadyz() const;
  http::Response HandleMetrics() const;

  const LoomdConfig config_;
  const absl::Time start_time_;
  metrics::Registry metrics_;
  metrics::Gauge* ready_gauge_ = nullptr;
  std::unique_ptr<http::HttpServer> metrics_server_;
  std::unique_ptr<http::HttpServer> api_server_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<NodeRegistrar> registrar_;
  std::unique_ptr<OverlayController> overlay_;
  std::unique_ptr<cniapi::CniApi> cni_api_;  // the CNI plugin's API (docs/cni.md)
  // Read by the HTTP handlers while Start() runs.
  std::atomic<store::Store*> open_store_{nullptr};
  std::atomic<NodeRegistrar*> live_registrar_{nullptr};
  // Services and DNS (issue 5): the registry behind /v1/apply and /v1/services, the
  // controller that turns the store into typed state, and the node's DNS.
  std::unique_ptr<ServiceRegistry> service_registry_;
  std::unique_ptr<ServiceController> service_controller_;
  std::unique_ptr<LostNodes> lost_nodes_;  // marks the pods of lost nodes not ready
  std::unique_ptr<NodeHealthPublisher> health_;
  std::unique_ptr<NodeDns> node_dns_;
  std::atomic<ServiceRegistry*> live_services_{nullptr};
  std::atomic<ServiceController*> live_controller_{nullptr};
  std::atomic<NodeDns*> live_dns_{nullptr};
  std::unique_ptr<containers::ContainerManager> containers_;
  // Declared Apps (issue 9): the registry behind /v1/apply and /v1/apps, the event
  // log, and the reconciler running this node's replicas as containers.
  std::unique_ptr<AppRegistry> app_registry_;
  std::unique_ptr<EventLog> event_log_;
  std::unique_ptr<ContainerReplicas> replicas_;
  std::unique_ptr<AppController> app_controller_;
  std::atomic<AppRegistry*> live_apps_{nullptr};
  std::atomic<EventLog*> live_events_{nullptr};
  std::atomic<containers::ContainerManager*> live_containers_{nullptr};
  mutable absl::Mutex containers_error_mu_;
  std::string containers_error_ ABSL_GUARDED_BY(containers_error_mu_);
  // Service load balancing (issue 6), fed by the service controller.
  std::unique_ptr<LbController> lb_;
  std::atomic<LbController*> live_lb_{nullptr};
  std::string underlay_ip_;
  std::string underlay_iface_;
  // The ingress (issue 7): Ingress objects and the proxy (--ingress).
  std::unique_ptr<IngressRegistry> ingress_registry_;
  std::unique_ptr<IngressController> ingress_;
  std::atomic<IngressRegistry*> live_ingresses_{nullptr};
  std::atomic<IngressController*> live_ingress_{nullptr};
  std::vector<std::string> created_dirs_;
  bool running_ = false;
};

}  // namespace loom::agent
