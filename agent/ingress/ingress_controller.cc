#include "agent/ingress/ingress_controller.h"

#include <sys/stat.h>

#include <fstream>
#include <set>
#include <sstream>

#include "absl/time/clock.h"
#include "agent/services/object_api.h"
#include "agent/store/watch_map.h"
#include "common/log.h"
#include "common/status.h"
#include "common/strings.h"

namespace loom::agent {

using lb::ingress::BackendAddress;
using lb::ingress::Ingress;
using lb::ingress::Route;
using lb::ingress::Router;
using lb::ingress::WeightedBackend;

std::string IngressKey(std::string_view ns, std::string_view name) {
  return StrCat(kIngressesPrefix, ns, "/", name);
}

Json StoredIngress::ToJson() const {
  Json j = lb::ingress::IngressToManifest(ingress);
  j["status"] = Json::object();
  if (!created_at.empty()) j["status"]["createdAt"] = created_at;
  return j;
}

absl::StatusOr<StoredIngress> StoredIngressFromJson(std::string_view value, int64_t revision) {
  ASSIGN_OR_RETURN(Json j, ParseJson(value));
  StoredIngress out;
  if (j.is_object()) {
    if (j.contains("status") && j["status"].is_object()) out.created_at = j["status"].value("createdAt", "");
    j.erase("status");
  }
  ASSIGN_OR_RETURN(out.ingress, lb::ingress::IngressFromManifest(j));
  out.ingress.meta.revision = revision;
  return out;
}

// ---- the registry ----

absl::StatusOr<IngressApplyResult> IngressRegistry::Apply(const Json& manifest) {
  Json m = manifest;
  if (m.is_object()) m.erase("status");  // what `get -o yaml` printed applies again
  ASSIGN_OR_RETURN(Ingress ing, lb::ingress::IngressFromManifest(m));
  const std::string key = IngressKey(ing.meta.ns, ing.meta.name);
  for (int attempt = 0; attempt < 16; ++attempt) {
    ASSIGN_OR_RETURN(std::optional<store::KeyValue> kv, store_->Get(key));
    IngressApplyResult result;
    result.stored.ingress = ing;
    if (kv) {
      ASSIGN_OR_RETURN(StoredIngress existing, StoredIngressFromJson(kv->value, kv->mod_revision));
      result.stored.created_at = existing.created_at;
      Ingress old = existing.ingress;
      old.meta.revision = 0;
      if (old == ing) {
        result.outcome = ApplyOutcome::kUnchanged;
        result.stored.ingress.meta.revision = kv->mod_revision;
        return result;
      }
      result.outcome = ApplyOutcome::kConfigured;
    } else {
      result.stored.created_at = absl::FormatTime(absl::RFC3339_sec, absl::Now(), absl::UTCTimeZone());
    }
    store::Txn txn;
    txn.compare.push_back(kv ? store::Compare::ModRevisionIs(key, kv->mod_revision) : store::Compare::Absent(key));
    txn.success.push_back(store::Op::Put(key, result.stored.ToJson().dump()));
    ASSIGN_OR_RETURN(store::TxnResult r, store_->Commit(txn));
    if (r.succeeded) {
      result.stored.ingress.meta.revision = r.revision;
      return result;
    }
  }
  return absl::AbortedError(StrCat("ingress ", ing.meta.Key(), ": the store kept changing; try again"));
}

absl::StatusOr<StoredIngress> IngressRegistry::Get(std::string_view ns, std::string_view name) {
  ASSIGN_OR_RETURN(std::optional<store::KeyValue> kv, store_->Get(IngressKey(ns, name)));
  if (!kv) return absl::NotFoundError(StrCat("ingress ", ns, "/", name, " not found"));
  return StoredIngressFromJson(kv->value, kv->mod_revision);
}

absl::StatusOr<std::vector<StoredIngress>> IngressRegistry::List(std::string_view ns) {
  std::string prefix = ns.empty() ? std::string(kIngressesPrefix) : StrCat(kIngressesPrefix, ns, "/");
  ASSIGN_OR_RETURN(store::RangeResult range, store_->Range(prefix));
  std::vector<StoredIngress> out;
  for (const store::KeyValue& kv : range.kvs) {
    absl::StatusOr<StoredIngress> s = StoredIngressFromJson(kv.value, kv.mod_revision);
    if (s.ok()) out.push_back(*std::move(s));
  }
  return out;
}

absl::StatusOr<StoredIngress> IngressRegistry::Delete(std::string_view ns, std::string_view name) {
  const std::string key = IngressKey(ns, name);
  for (int attempt = 0; attempt < 16; ++attempt) {
    ASSIGN_OR_RETURN(std::optional<store::KeyValue> kv, store_->Get(key));
    if (!kv) return absl::NotFoundError(StrCat("ingress ", ns, "/", name, " not found"));
    ASSIGN_OR_RETURN(StoredIngress stored, StoredIngressFromJson(kv->value, kv->mod_revision));
    store::Txn txn;
    txn.compare.push_back(store::Compare::ModRevisionIs(key, kv->mod_revision));
    txn.success.push_back(store::Op::Delete(key));
    ASSIGN_OR_RETURN(store::TxnResult r, store_->Commit(txn));
    if (r.succeeded) return stored;
  }
  return absl::AbortedError(StrCat("ingress ", ns, "/", name, ": the store kept changing; try again"));
}

// ---- the controller ----

namespace {

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(StrCat(path, ": cannot be read"));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::pair<int64_t, int64_t> Stamp(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return {-1, -1};
  return {int64_t{st.st_mtim.tv_sec} * 1'000'000'000 + st.st_mtim.tv_nsec, st.st_size};
}

// The ready endpoints of a service port, as the proxy dials them (pod IP and the
// target port resolved for that pod).
absl::StatusOr<std::vector<BackendAddress>> ResolveBackend(const model::ServiceTable& services,
                                                           std::string_view ns, const WeightedBackend& b) {
  std::string svc_key = StrCat(ns, "/", b.service);
  const model::ServiceEntry* entry = services.Find(svc_key);
  if (entry == nullptr) return absl::NotFoundError(StrCat("service ", svc_key, " does not exist"));
  const model::Service& svc = *entry->service;
  if (svc.type == model::ServiceType::kExternalName) {
    return absl::InvalidArgumentError(StrCat("service ", svc_key, " is an ExternalName service"));
  }
  size_t index = svc.ports.size();
  for (size_t i = 0; i < svc.ports.size(); ++i) {
    if (b.port.name.empty() ? svc.ports[i].port == b.port.number : svc.ports[i].name == b.port.name) index = i;
  }
  if (index == svc.ports.size()) {
    return absl::NotFoundError(StrCat("service ", svc_key, " has no port ",
                                      b.port.name.empty() ? std::to_string(b.port.number) : b.port.name));
  }
  std::vector<BackendAddress> out;
  for (const model::Endpoint& e : entry->endpoints->endpoints) {
    if (!e.ready || index >= e.ports.size() || e.ports[index] == 0) continue;
    out.push_back({e.ip, e.ports[index]});
  }
  return out;
}

}  // namespace

IngressController::IngressController(store::Store* store, IngressControllerOptions options)
    : store_(store), options_(std::move(options)), proxy_(options_.proxy) {}

IngressController::~IngressController() { Stop(); }

absl::Status IngressController::Start() {
  RETURN_IF_ERROR(Annotate(proxy_.Start(), "ingress"));
  absl::StatusOr<std::unique_ptr<store::Watch>> w = store_->WatchPrefix(
      kIngressesPrefix, 0, [this](const store::WatchBatch& b) { OnIngresses(b); });
  if (!w.ok()) {
    proxy_.Stop();
    return Annotate(w.status(), "watch ingresses");
  }
  watch_ = *std::move(w);
  poller_ = std::thread([this] { PollCertificates(); });
  LOG_INFO("ingress listening", {"http", StrCat(options_.proxy.http_host, ":", proxy_.http_port())},
           {"https", options_.proxy.https ? StrCat(options_.proxy.https_host, ":", proxy_.https_port()) : "off"},
           {"workers", options_.proxy.workers}, {"cert_dir", options_.cert_dir});
  return absl::OkStatus();
}

void IngressController::Stop() {
  watch_.reset();
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (poller_.joinable()) poller_.join();
  proxy_.Stop();
}

void IngressController::OnState(std::shared_ptr<const ServiceState> state) {
  std::lock_guard<std::mutex> lock(mu_);
  state_ = std::move(state);
  Rebuild();
}

void IngressController::OnIngresses(const store::WatchBatch& batch) {
  std::lock_guard<std::mutex> lock(mu_);
  store::ApplyWatchBatch(batch, ingresses_, [](const store::KeyValue& kv) -> std::optional<Ingress> {
    absl::StatusOr<StoredIngress> s = StoredIngressFromJson(kv.value, kv.mod_revision);
    if (!s.ok()) {
      LOG_WARNING("ingress in the store does not decode; skipped", {"key", kv.key},
                  {"error", s.status().message()});
      return std::nullopt;
    }
    return std::move(s->ingress);
  });
  synced_ = true;
  Rebuild();
}

void IngressController::Rebuild() {
  if (!synced_) return;
  std::vector<Ingress> list;
  for (const auto& [key, ing] : ingresses_) list.push_back(ing);
  lb::ingress::ProxyConfig config;
  auto router = std::make_shared<Router>(Router::Build(list));
  std::vector<std::string> problems = router->conflicts();

  std::set<std::string> reported;
  for (const Route& route : router->routes()) {
    for (const WeightedBackend& b : route.backends) {
      std::string key = lb::ingress::BackendKey(route.ns, b);
      if (config.backends.contains(key)) continue;
      absl::StatusOr<std::vector<BackendAddress>> eps =
          state_ ? ResolveBackend(state_->services, route.ns, b)
                 : absl::StatusOr<std::vector<BackendAddress>>(std::vector<BackendAddress>{});
      if (!eps.ok()) {
        if (reported.insert(key).second) problems.push_back(StrCat("ingress ", route.ingress, ": ", eps.status().message()));
        eps = std::vector<BackendAddress>{};
      }
      config.backends[key] = *std::move(eps);
    }
  }
  cert_stamps_.clear();
  for (const Ingress& ing : list) {
    for (const lb::ingress::IngressTls& tls : ing.tls) {
      std::string name = StrCat(ing.meta.ns, "/", tls.secret_name);
      if (config.certificates.contains(name)) continue;
      std::string dir = StrCat(options_.cert_dir, "/", ing.meta.ns, "/", tls.secret_name);
      std::string crt_path = dir + "/tls.crt", key_path = dir + "/tls.key";
      cert_stamps_[crt_path] = Stamp(crt_path);
      cert_stamps_[key_path] = Stamp(key_path);
      absl::StatusOr<std::string> crt = ReadFile(crt_path);
      absl::StatusOr<std::string> key = ReadFile(key_path);
      if (!crt.ok() || !key.ok()) {
        problems.push_back(StrCat("ingress ", ing.meta.Key(), ": secret ", name, ": ",
                                  (!crt.ok() ? crt.status() : key.status()).message()));
        continue;
      }
      config.certificates[name] = {*std::move(crt), *std::move(key)};
    }
  }
  config.router = router;
  for (std::string& e : proxy_.Update(config)) problems.push_back(std::move(e));
  ++updates_;
  routes_ = router->route_count();
  if (problems != problems_) {
    for (const std::string& p : problems) LOG_WARNING("ingress problem", {"detail", p});
    problems_ = std::move(problems);
  }
}

void IngressController::PollCertificates() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    cv_.wait_for(lock, absl::ToChronoMilliseconds(options_.cert_poll));
    if (stop_) break;
    bool changed = false;
    for (const auto& [path, stamp] : cert_stamps_) changed = changed || Stamp(path) != stamp;
    if (changed) {
      LOG_INFO("ingress certificates changed on disk; reloading");
      Rebuild();
    }
  }
}

Json IngressController::StatusJson() const {
  std::lock_guard<std::mutex> lock(mu_);
  lb::ingress::ProxyStats st = proxy_.stats();
  return Json{{"ingresses", ingresses_.size()},
              {"routes", routes_},
              {"updates", updates_},
              {"problems", problems_},
              {"httpPort", proxy_.http_port()},
              {"httpsPort", proxy_.https_port()},
              {"openConnections", st.open_connections},
              {"requests", st.requests}};
}

// ---- the API ----

namespace {

Json IngressRef(const Ingress& ing, std::string_view result) {
  return Json{{"kind", "Ingress"}, {"namespace", ing.meta.ns}, {"name", ing.meta.name},
              {"result", std::string(result)}};
}

}  // namespace

http::Response ApplyIngress(IngressRegistry* registry, const Json& manifest) {
  if (registry == nullptr) return http::Response::Error(503, "store not open yet");
  absl::StatusOr<IngressApplyResult> r = registry->Apply(manifest);
  if (!r.ok()) return ErrorResponse(r.status());
  Json body = IngressRef(r->stored.ingress, ApplyOutcomeName(r->outcome));
  body["object"] = r->stored.ToJson();
  if (r->outcome != ApplyOutcome::kUnchanged) {
    LOG_INFO("ingress applied", {"ingress", r->stored.ingress.meta.Key()},
             {"result", ApplyOutcomeName(r->outcome)});
  }
  return http::Response::JsonBody(200, body);
}

void RegisterIngressRoutes(http::Router& router, IngressApiDeps deps) {
  auto d = std::make_shared<IngressApiDeps>(std::move(deps));
  auto get = [d](const http::Request& r) -> http::Response {
    IngressRegistry* reg = d->registry();
    if (reg == nullptr) return http::Response::Error(503, "store not open yet");
    absl::StatusOr<std::vector<std::string>> parts = SplitObjectPath(r.path_tail);
    if (!parts.ok()) return ErrorResponse(parts.status());
    if (parts->size() == 2) {
      absl::StatusOr<StoredIngress> s = reg->Get((*parts)[0], (*parts)[1]);
      if (!s.ok()) return ErrorResponse(s.status());
      return http::Response::JsonBody(200, s->ToJson());
    }
    absl::StatusOr<std::vector<StoredIngress>> list = reg->List(parts->empty() ? "" : (*parts)[0]);
    if (!list.ok()) return ErrorResponse(list.status());
    Json items = Json::array();
    for (const StoredIngress& s : *list) items.push_back(s.ToJson());
    Json body{{"kind", "IngressList"}, {"items", items}};
    if (IngressController* c = d->controller ? d->controller() : nullptr) body["node"] = c->StatusJson();
    return http::Response::JsonBody(200, body);
  };
  router.Handle("GET", "/v1/ingresses", get);
  router.HandlePrefix("GET", "/v1/ingresses/", get);
  router.HandlePrefix("DELETE", "/v1/ingresses/", [d](const http::Request& r) -> http::Response {
    IngressRegistry* reg = d->registry();
    if (reg == nullptr) return http::Response::Error(503, "store not open yet");
    absl::StatusOr<std::vector<std::string>> parts = SplitObjectPath(r.path_tail);
    if (!parts.ok()) return ErrorResponse(parts.status());
    if (parts->size() != 2) return http::Response::Error(400, "DELETE /v1/ingresses/<namespace>/<name>");
    absl::StatusOr<StoredIngress> s = reg->Delete((*parts)[0], (*parts)[1]);
    if (!s.ok()) return ErrorResponse(s.status());
    LOG_INFO("ingress deleted", {"ingress", s->ingress.meta.Key()});
    return http::Response::JsonBody(200, IngressRef(s->ingress, "deleted"));
  });
}

}  // namespace loom::agent
