// Turns the service state (services x endpoints) into the load balancer's map updates:
// one backend set per service (lb::BuildBackendSet), NodePort services also on the
// node's address, diffed against what was applied last, as ordered plans
// (lb::PlanServiceUpdate) handed to the writer in one batch.
//
// After a restart the reconciler starts from what the pinned maps hold (ProgrammedMaps):
// each service claims its recovered frontends, so unchanged services write nothing;
// frontends no service claims are removed, and backends nothing refers to are deleted,
// after the first snapshot.
#pragma once

#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "agent/services/service_controller.h"
#include "common/net/ip.h"
#include "lb/backend_set.h"

namespace loom::agent {

struct FrontendOptionsUpdate {
  lb::ServiceFrontend frontend;
  bool client_ip_affinity = false;
  uint32_t affinity_timeout_s = 0;
  friend bool operator==(const FrontendOptionsUpdate&, const FrontendOptionsUpdate&) = default;
};

// The kernel side as the reconciler sees it (lb::BpfLoadBalancer in loomd; a fake in tests).
class ServiceLbWriter {
 public:
  virtual ~ServiceLbWriter() = default;
  virtual absl::Status SetFrontendOptions(const FrontendOptionsUpdate& options) = 0;
  virtual absl::Status ApplyAll(std::span<const lb::UpdatePlan> plans) = 0;
};

struct LbReconcileStats {
  size_t services_changed = 0;
  size_t services_removed = 0;
  size_t ops = 0;
  size_t errors = 0;  // services skipped (bad state) or plans that failed
};

class LbReconciler {
 public:
  // `node_ip`: where NodePort services are also served (nullopt: not at all).
  LbReconciler(lb::ProgrammedMaps recovered, std::optional<net::Ipv4Address> node_ip);

  // Brings the writer from the last applied state to `state`, looking only at the
  // services whose entries differ from that state's (ServiceTable::Diff), so a state
  // with a few changes costs a few services' work whatever the number of services.
  // A service whose backend set cannot be built keeps what it had (counted in
  // errors, logged, once per change of the service).
  absl::StatusOr<LbReconcileStats> Reconcile(const ServiceState& state, ServiceLbWriter& writer);

  size_t services() const { return applied_.size(); }
  size_t backends() const { return ids_.size(); }

  // The backend set a service is given (NodePort frontends added); exposed for tests.
  static absl::StatusOr<lb::ServiceBackendSet> DesiredSet(
      const model::Service& service, const model::EndpointSet& endpoints,
      std::optional<net::Ipv4Address> node_ip);

 private:
  struct Applied {
    lb::ServiceBackendSet set;
    lb::ProgrammedService programmed;
    bool affinity = false;
    uint32_t affinity_timeout_s = 0;
  };

  std::optional<net::Ipv4Address> node_ip_;
  lb::BackendIdAllocator ids_;
  absl::flat_hash_map<std::string, Applied> applied_;  // by "ns/name"
  // The services of the state applied last: the next state is diffed against it.
  model::ServiceTable applied_table_;
  // Services whose plan failed (no backend id left): planned again with the next state.
  absl::flat_hash_set<std::string> unplanned_;
  // Recovered frontends not yet claimed by a service (until the first Reconcile).
  std::vector<lb::ProgrammedService::Frontend> unclaimed_;
  bool restored_ = false;
};

}  // namespace loom::agent
