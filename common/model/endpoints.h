// Endpoint derivation, done by every agent from its own watches (as each Cilium
// agent does): a service's endpoints are the pods in its namespace whose labels
// carry its selector, one per pod address.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/model/objects.h"

namespace loom::model {

struct Endpoint {
  std::string ip;
  std::string pod;       // "<namespace>/<name>"
  std::string node;
  std::string hostname;  // the pod's hostname, for headless DNS records
  bool ready = false;
  // The target port for each of the service's ports, in order: 0 when the pod has
  // no container port of a named targetPort (that port then has no backend here).
  std::vector<uint16_t> ports;

  friend bool operator==(const Endpoint&, const Endpoint&) = default;
};

struct EndpointSet {
  std::string service;  // "<namespace>/<name>"
  std::vector<Endpoint> endpoints;  // ready and not ready, sorted by address

  friend bool operator==(const EndpointSet&, const EndpointSet&) = default;
};

// ExternalName services and services without a selector have no derived endpoints.
EndpointSet DeriveEndpoints(const Service& service, const std::vector<const Pod*>& pods);

}  // namespace loom::model
