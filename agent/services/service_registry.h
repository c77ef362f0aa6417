// Declared Services in the store: apply (create, update, no-op), get, list, delete,
// with ClusterIP allocation from the service CIDR. Keys:
//   /loom/services/<ns>/<name>  the Service manifest (model::ServiceToManifest) plus
//                               status.createdAt
//   /loom/serviceips/<ip>       {"service": "<ns>/<name>"}: the claim on a ClusterIP
//   /loom/nodeports/<proto>/<port>  {"service": ...}: the claim on a NodePort's port
// A service and its IP claim are written in one transaction, guarded by CAS on
// both keys, so two agents never hand out one IP and a service never loses its IP
// to a concurrent writer. The IP is stable for the service's life: a re-apply keeps
// it, a delete releases it in the same transaction.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "agent/store/store.h"
#include "common/json.h"
#include "common/model/objects.h"

namespace loom::agent {

inline constexpr std::string_view kServicesPrefix = "/loom/services/";
inline constexpr std::string_view kServiceIpsPrefix = "/loom/serviceips/";
inline constexpr std::string_view kNodePortsPrefix = "/loom/nodeports/";

std::string ServiceKey(std::string_view ns, std::string_view name);
std::string ServiceIpKey(std::string_view ip);
std::string NodePortKey(model::Protocol protocol, uint16_t port);  // ".../tcp/30080"

// A stored Service: the typed object and its JSON as served by the API.
struct StoredService {
  model::Service service;
  std::string created_at;  // RFC 3339, set on create
  Json ToJson() const;
};
// Decodes a value under kServicesPrefix (the revision comes from the store).
absl::StatusOr<StoredService> StoredServiceFromJson(std::string_view value, int64_t revision);

enum class ApplyOutcome { kCreated, kConfigured, kUnchanged };
std::string_view ApplyOutcomeName(ApplyOutcome outcome);

struct ApplyResult {
  ApplyOutcome outcome = ApplyOutcome::kCreated;
  StoredService stored;
};

struct ServiceCidr {
  uint32_t network = 0;  // host byte order
  int prefix_len = 12;
};

struct ServiceRegistryOptions {
  ServiceCidr cidr{0x0A600000, 12};  // 10.96.0.0/12
  // Never handed out (the node-local DNS address, if it falls inside the CIDR).
  std::vector<uint32_t> reserved;
  // Where a search for a free address starts (tests fix it; default random).
  std::optional<uint32_t> start_offset;
  int max_attempts = 16;
  // NodePort services: ports given must lie in this range; missing ones are allocated
  // from it (Kubernetes' default range), claimed by CAS like ClusterIPs.
  uint16_t node_port_min = 30000;
  uint16_t node_port_max = 32767;
};

class ServiceRegistry {
 public:
  ServiceRegistry(store::Store* store, ServiceRegistryOptions options);

  // Creates or updates the service. InvalidArgument (naming the field) for a bad
  // manifest, an IP or node port that cannot be used; AlreadyExists when a requested
  // spec.clusterIP or nodePort belongs to another service; Aborted when CAS kept failing.
  // A NodePort service's ports keep their node port across re-applies (matched by
  // name and protocol) unless the manifest names another.
  absl::StatusOr<ApplyResult> Apply(const Json& manifest);
  absl::StatusOr<StoredService> Get(std::string_view ns, std::string_view name);
  // Every service, or those of one namespace; sorted by namespace and name.
  absl::StatusOr<std::vector<StoredService>> List(std::string_view ns = "");
  // Deletes the service and releases its IP. NotFound when there is no such service.
  absl::StatusOr<StoredService> Delete(std::string_view ns, std::string_view name);

 private:
  absl::StatusOr<std::string> CheckRequestedIp(const std::string& ip) const;
  absl::StatusOr<std::string> PickFreeIp();
  bool Usable(uint32_t ip) const;
  // Fills every port's node_port of a NodePort service (kept from `existing`, or
  // allocated); returns the claim keys that are new, and sets `release` to the old
  // claims no longer used.
  absl::StatusOr<std::vector<std::string>> PlanNodePorts(model::Service& next,
                                                         const model::Service* existing,
                                                         std::vector<std::string>* release);

  store::Store* store_;
  ServiceRegistryOptions options_;
};

}  // namespace loom::agent
