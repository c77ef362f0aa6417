#include "agent/services/object_api.h"

#include "absl/strings/str_split.h"
#include "common/log.h"
#include "common/strings.h"

namespace loom::agent {
namespace {

Json ServiceRef(const model::Service& s, std::string_view result) {
  return Json{{"kind", "Service"}, {"namespace", s.meta.ns}, {"name", s.meta.name},
              {"result", std::string(result)}};
}

http::Response HandleApply(const ObjectApiDeps& deps, const http::Request& r) {
  absl::StatusOr<Json> manifest = ParseJson(r.body);
  if (!manifest.ok()) {
    return http::Response::Error(400, StrCat("manifest: ", manifest.status().message()));
  }
  if (!manifest->is_object()) return http::Response::Error(400, "manifest: must be an object");
  auto kind_it = manifest->find("kind");
  if (kind_it == manifest->end() || !kind_it->is_string()) {
    return http::Response::Error(400, "kind: required (Service)");
  }
  std::string kind = kind_it->get<std::string>();
  if (kind == "Service") {
    ServiceRegistry* services = deps.services();
    if (services == nullptr) return http::Response::Error(503, "store not open yet");
    absl::StatusOr<ApplyResult> result = services->Apply(*manifest);
    if (!result.ok()) return ErrorResponse(result.status());
    Json body = ServiceRef(result->stored.service, ApplyOutcomeName(result->outcome));
    body["object"] = result->stored.ToJson();
    if (result->outcome != ApplyOutcome::kUnchanged) {
      LOG_INFO("service applied", {"service", result->stored.service.meta.Key()},
               {"result", ApplyOutcomeName(result->outcome)},
               {"cluster_ip", result->stored.service.cluster_ip});
    }
    return http::Response::JsonBody(200, body);
  }
  if (kind == "App" && deps.apply_app) return deps.apply_app(*manifest);
  if (kind == "Ingress" && deps.apply_ingress) return deps.apply_ingress(*manifest);
  if (kind == "App" || kind == "Ingress") {
    return http::Response::Error(400, StrCat("kind: \"", kind, "\" is not served by this loomd yet"));
  }
  return http::Response::Error(400, StrCat("kind: \"", kind, "\" must be Service, App or Ingress"));
}

http::Response HandleGetServices(const ObjectApiDeps& deps, const http::Request& r) {
  ServiceRegistry* services = deps.services();
  if (services == nullptr) return http::Response::Error(503, "store not open yet");
  absl::StatusOr<std::vector<std::string>> parts = SplitObjectPath(r.path_tail);
  if (!parts.ok()) return ErrorResponse(parts.status());
  if (parts->size() == 2) {
    absl::StatusOr<StoredService> s = services->Get((*parts)[0], (*parts)[1]);
    if (!s.ok()) return ErrorResponse(s.status());
    return http::Response::JsonBody(200, s->ToJson());
  }
  absl::StatusOr<std::vector<StoredService>> list =
      services->List(parts->empty() ? "" : (*parts)[0]);
  if (!list.ok()) return ErrorResponse(list.status());
  Json items = Json::array();
  for (const StoredService& s : *list) items.push_back(s.ToJson());
  return http::Response::JsonBody(200, Json{{"kind", "ServiceList"}, {"items", items}});
}

http::Response HandleDeleteService(const ObjectApiDeps& deps, const http::Request& r) {
  ServiceRegistry* services = deps.services();
  if (services == nullptr) return http::Response::Error(503, "store not open yet");
  absl::StatusOr<std::vector<std::string>> parts = SplitObjectPath(r.path_tail);
  if (!parts.ok()) return ErrorResponse(parts.status());
  if (parts->size() != 2) {
    return http::Response::Error(400, "DELETE /v1/services/<namespace>/<name>");
  }
  absl::StatusOr<StoredService> s = services->Delete((*parts)[0], (*parts)[1]);
  if (!s.ok()) return ErrorResponse(s.status());
  LOG_INFO("service deleted", {"service", s->service.meta.Key()},
           {"released_ip", s->service.cluster_ip});
  return http::Response::JsonBody(200, ServiceRef(s->service, "deleted"));
}

http::Response HandleGetEndpoints(const ObjectApiDeps& deps, const http::Request& r) {
  std::shared_ptr<const ServiceState> state = deps.state();
  if (state == nullptr) return http::Response::Error(503, "service state not synced yet");
  absl::StatusOr<std::vector<std::string>> parts = SplitObjectPath(r.path_tail);
  if (!parts.ok()) return ErrorResponse(parts.status());
  if (parts->size() == 2) {
    const model::ServiceEntry* e = state->services.Find(StrCat((*parts)[0], "/", (*parts)[1]));
    if (e == nullptr) {
      return http::Response::Error(404,
                                   StrCat("service ", (*parts)[0], "/", (*parts)[1], " not found"));
    }
    return http::Response::JsonBody(200, EndpointSetToJson(*e->endpoints, *e->service));
  }
  Json items = Json::array();
  for (const model::ServiceEntry& e : state->services) {
    if (!parts->empty() && e.service->meta.ns != (*parts)[0]) continue;
    items.push_back(EndpointSetToJson(*e.endpoints, *e.service));
  }
  return http::Response::JsonBody(
      200, Json{{"kind", "EndpointsList"}, {"revision", state->revision}, {"items", items}});
}

}  // namespace

absl::StatusOr<std::vector<std::string>> SplitObjectPath(std::string_view tail) {
  std::vector<std::string> parts;
  for (absl::string_view p : absl::StrSplit(ToAbsl(tail), '/', absl::SkipEmpty())) {
    parts.emplace_back(p);
  }
  if (parts.size() > 2) {
    return absl::NotFoundError(StrCat("no object at \"", tail, "\": want <namespace>/<name>"));
  }
  return parts;
}

http::Response ErrorResponse(const absl::Status& status) {
  return http::Response::Error(HttpStatusFor(status), ToStd(status.message()));
}

int HttpStatusFor(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kOk: return 200;
    case absl::StatusCode::kInvalidArgument: return 400;
    case absl::StatusCode::kNotFound: return 404;
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kAborted:
    case absl::StatusCode::kFailedPrecondition: return 409;
    case absl::StatusCode::kResourceExhausted: return 507;
    case absl::StatusCode::kUnavailable: return 503;
    default: return 500;
  }
}

Json EndpointSetToJson(const model::EndpointSet& set, const model::Service& service) {
  Json eps = Json::array();
  for (const model::Endpoint& e : set.endpoints) {
    Json j = {{"ip", e.ip}, {"pod", e.pod}, {"node", e.node}, {"ready", e.ready},
              {"ports", e.ports}};
    if (!e.hostname.empty()) j["hostname"] = e.hostname;
    eps.push_back(std::move(j));
  }
  Json ports = Json::array();
  for (const model::ServicePort& p : service.ports) {
    ports.push_back({{"name", p.name}, {"port", p.port}, {"protocol", model::ProtocolName(p.protocol)}});
  }
  return Json{{"kind", "Endpoints"},
              {"namespace", service.meta.ns},
              {"name", service.meta.name},
              {"ports", ports},
              {"endpoints", eps}};
}

void RegisterObjectRoutes(http::Router& router, ObjectApiDeps deps) {
  auto d = std::make_shared<ObjectApiDeps>(std::move(deps));
  router.Handle("POST", "/v1/apply", [d](const http::Request& r) { return HandleApply(*d, r); });
  auto get_services = [d](const http::Request& r) { return HandleGetServices(*d, r); };
  router.Handle("GET", "/v1/services", get_services);
  router.HandlePrefix("GET", "/v1/services/", get_services);
  router.HandlePrefix("DELETE", "/v1/services/",
                      [d](const http::Request& r) { return HandleDeleteService(*d, r); });
  auto get_endpoints = [d](const http::Request& r) { return HandleGetEndpoints(*d, r); };
  router.Handle("GET", "/v1/endpoints", get_endpoints);
  router.HandlePrefix("GET", "/v1/endpoints/", get_endpoints);
}

}  // namespace loom::agent
