#include "common/model/endpoints.h"

#include <algorithm>

#include "common/model/validation.h"

namespace loom::model {

EndpointSet DeriveEndpoints(const Service& service, const std::vector<const Pod*>& pods) {
  EndpointSet set;
  set.service = service.meta.Key();
  if (service.type == ServiceType::kExternalName || service.selector.empty()) return set;
  for (const Pod* pod : pods) {
    if (pod->meta.ns != service.meta.ns) continue;
    if (!SelectorMatches(service.selector, pod->meta.labels)) continue;
    std::vector<uint16_t> ports;
    ports.reserve(service.ports.size());
    for (const ServicePort& sp : service.ports) {
      uint16_t target = sp.target_port;
      if (!sp.target_port_name.empty()) {
        target = 0;
        for (const ContainerPort& cp : pod->ports) {
          if (cp.name == sp.target_port_name && cp.protocol == sp.protocol) target = cp.port;
        }
      }
      ports.push_back(target);
    }
    for (const std::string& ip : pod->ips) {
      set.endpoints.push_back(
          {ip, pod->meta.Key(), pod->node, pod->hostname, pod->ready, ports});
    }
  }
  std::sort(set.endpoints.begin(), set.endpoints.end(),
            [](const Endpoint& a, const Endpoint& b) { return a.ip < b.ip; });
  return set;
}

}  // namespace loom::model
