// loomd's ingress: Ingress objects in the store (/loom/ingresses/<ns>/<name>), the
// API that applies, lists and deletes them, and the controller that watches them,
// takes services and ready endpoints from the ServiceController, reads the TLS
// secrets, and feeds the proxy (lb/ingress) a new configuration on every change.
//
// TLS secrets: spec.tls[].secretName names a directory under --ingress-cert-dir,
//   <cert-dir>/<namespace>/<secretName>/tls.crt   the certificate chain (PEM, leaf first)
//   <cert-dir>/<namespace>/<secretName>/tls.key   its private key (PEM)
// laid out as a mounted kubernetes.io/tls Secret. Files are re-read when they change
// (checked every 2 s), so a renewed certificate applies without a restart.
#pragma once

#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "agent/services/service_controller.h"
#include "agent/services/service_registry.h"
#include "agent/store/store.h"
#include "common/http/router.h"
#include "common/metrics/metrics.h"
#include "lb/ingress/proxy.h"
#include "lb/ingress/router.h"

namespace loom::agent {

inline constexpr std::string_view kIngressesPrefix = "/loom/ingresses/";
std::string IngressKey(std::string_view ns, std::string_view name);

// A stored Ingress: the object and its JSON as the API serves it.
struct StoredIngress {
  lb::ingress::Ingress ingress;
  std::string created_at;  // RFC 3339, set on create
  Json ToJson() const;
};
absl::StatusOr<StoredIngress> StoredIngressFromJson(std::string_view value, int64_t revision);

struct IngressApplyResult {
  ApplyOutcome outcome = ApplyOutcome::kCreated;
  StoredIngress stored;
};

// Apply (create, update or no-op by CAS), get, list, delete.
class IngressRegistry {
 public:
  explicit IngressRegistry(store::Store* store) : store_(store) {}
  absl::StatusOr<IngressApplyResult> Apply(const Json& manifest);
  absl::StatusOr<StoredIngress> Get(std::string_view ns, std::string_view name);
  absl::StatusOr<std::vector<StoredIngress>> List(std::string_view ns = "");
  absl::StatusOr<StoredIngress> Delete(std::string_view ns, std::string_view name);

 private:
  store::Store* store_;
};

struct IngressControllerOptions {
  lb::ingress::ProxyOptions proxy;
  std::string cert_dir;  // see above
  absl::Duration cert_poll = absl::Seconds(2);
};

class IngressController {
 public:
  IngressController(store::Store* store, IngressControllerOptions options);
  ~IngressController();  // Stop()

  // Binds the proxy's listeners and watches the store.
  absl::Status Start();
  void Stop();

  // From the ServiceController.
  void OnState(std::shared_ptr<const ServiceState> state);

  // What this node serves: ingresses, routes, certificates, conflicts and errors.
  Json StatusJson() const;
  const lb::ingress::IngressProxy& proxy() const { return proxy_; }

 private:
  void OnIngresses(const store::WatchBatch& batch);
  void Rebuild();  // under mu_
  void PollCertificates();

  store::Store* store_;
  IngressControllerOptions options_;
  lb::ingress::IngressProxy proxy_;

  mutable std::mutex mu_;
  std::map<std::string, lb::ingress::Ingress> ingresses_;  // by store key
  std::shared_ptr<const ServiceState> state_;
  bool synced_ = false;
  std::vector<std::string> problems_;  // conflicts, missing secrets, bad backends
  size_t routes_ = 0;
  uint64_t updates_ = 0;
  // The secret files as last read: path -> (mtime ns, size).
  std::map<std::string, std::pair<int64_t, int64_t>> cert_stamps_;

  std::unique_ptr<store::Watch> watch_;
  std::thread poller_;
  std::condition_variable cv_;
  bool stop_ = false;
};

struct IngressApiDeps {
  std::function<IngressRegistry*()> registry;      // null until the store is open
  std::function<IngressController*()> controller;  // null when the ingress is off
};

// GET /v1/ingresses[/<ns>[/<name>]], DELETE /v1/ingresses/<ns>/<name>.
void RegisterIngressRoutes(http::Router& router, IngressApiDeps deps);
// POST /v1/apply for kind Ingress.
http::Response ApplyIngress(IngressRegistry* registry, const Json& manifest);

}  // namespace loom::agent
