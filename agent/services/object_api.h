// The objects part of loomd's local API:
//   POST   /v1/apply                      one manifest (JSON); kind Service, App (agent/apps) or Ingress (agent/ingress)
//          -> {"kind", "namespace", "name", "result": created|configured|unchanged, "object"}
//   GET    /v1/services[/<ns>[/<name>]]   {"items": [...]} or one object
//   DELETE /v1/services/<ns>/<name>       {"kind", "namespace", "name", "result": "deleted"}
//   GET    /v1/endpoints[/<ns>[/<name>]]  derived endpoints, from the service controller
// Errors are {"error": message}: 400 for a bad manifest (the message names the
// field), 404 for a missing object, 409 for a conflict, 503 before the store is open.
#pragma once

#include <functional>
#include <memory>

#include "agent/services/service_controller.h"
#include "agent/services/service_registry.h"
#include "common/http/router.h"

namespace loom::agent {

struct ObjectApiDeps {
  // Null until the store is open.
  std::function<ServiceRegistry*()> services;
  // Null until the controller published its first snapshot.
  std::function<std::shared_ptr<const ServiceState>()> state;
  // POST /v1/apply for kind App (agent/apps); unset: not served.
  std::function<http::Response(const Json&)> apply_app;
  // Applies a kind Ingress manifest (agent/ingress); unset: Ingress is not served.
  std::function<http::Response(const Json&)> apply_ingress;
};

void RegisterObjectRoutes(http::Router& router, ObjectApiDeps deps);

// "" -> {}, "ns" -> {ns}, "ns/name" -> {ns, name}; more parts is NotFound.
absl::StatusOr<std::vector<std::string>> SplitObjectPath(std::string_view tail);

// An HTTP status for a Status code (InvalidArgument 400, NotFound 404, ...).
int HttpStatusFor(const absl::Status& status);
// {"error": message} with the status HttpStatusFor gives.
http::Response ErrorResponse(const absl::Status& status);

Json EndpointSetToJson(const model::EndpointSet& set, const model::Service& service);

}  // namespace loom::agent
