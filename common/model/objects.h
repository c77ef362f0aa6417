// The declared and registered objects of DESIGN.md, as typed values with their
// manifest (JSON/YAML) form: Service and Pod for now. Parsing validates every field
// and errors name it ("spec.ports[1].port: must be 1..65535").
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/json.h"

namespace loom::model {

using Labels = std::map<std::string, std::string>;

struct ObjectMeta {
  std::string name;
  std::string ns = "default";
  Labels labels;
  int64_t revision = 0;  // the store's mod revision; 0 before it is stored

  std::string Key() const { return ns + "/" + name; }
  friend bool operator==(const ObjectMeta&, const ObjectMeta&) = default;
};

enum class Protocol { kTcp, kUdp, kSctp };
std::string ProtocolName(Protocol p);
absl::StatusOr<Protocol> ParseProtocol(std::string_view text, std::string_view field);

struct ServicePort {
  std::string name;
  uint16_t port = 0;
  // targetPort: a number, or the name of a container port; unset means `port`.
  uint16_t target_port = 0;
  std::string target_port_name;
  Protocol protocol = Protocol::kTcp;
  uint16_t node_port = 0;  // NodePort services; 0 until allocated

  friend bool operator==(const ServicePort&, const ServicePort&) = default;
};

enum class ServiceType { kClusterIP, kHeadless, kExternalName, kNodePort };
std::string ServiceTypeName(ServiceType t);

struct Service {
  ObjectMeta meta;
  ServiceType type = ServiceType::kClusterIP;
  Labels selector;
  std::vector<ServicePort> ports;
  std::string external_name;  // ExternalName
  std::string cluster_ip;     // allocated from the service CIDR; empty for Headless/ExternalName
  bool client_ip_affinity = false;
  uint32_t affinity_timeout_seconds = 10800;

  friend bool operator==(const Service&, const Service&) = default;
};

// From a manifest (kind Service). Fields the parser does not know are errors, so
// a typo is not silently ignored.
absl::StatusOr<Service> ServiceFromManifest(const Json& manifest);
Json ServiceToManifest(const Service& service);

struct ContainerPort {
  std::string name;
  uint16_t port = 0;
  Protocol protocol = Protocol::kTcp;

  friend bool operator==(const ContainerPort&, const ContainerPort&) = default;
};

// An attached container, registered by the CNI plugin or the runtime under
// /loom/pods/<node>/<id>.
struct Pod {
  ObjectMeta meta;
  std::string id;        // container ID
  std::string ifname;    // the interface inside the container
  std::string node;
  std::vector<std::string> ips;
  std::vector<ContainerPort> ports;
  std::string hostname;  // DNS hostname under a headless service; default: none
  bool ready = false;
  // Set (with ready = false) by the other agents when the pod's node lost its lease;
  // cleared by the node's own agent when it is back (agent/services/lost_nodes.h).
  bool node_lost = false;

  friend bool operator==(const Pod&, const Pod&) = default;
};

absl::StatusOr<Pod> PodFromJson(const Json& json);
Json PodToJson(const Pod& pod);

}  // namespace loom::model
