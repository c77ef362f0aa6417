#include "agent/apps/app_api.h"

#include <map>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "agent/apps/reconciler.h"
#include "agent/services/object_api.h"
#include "common/log.h"
#include "common/status.h"
#include "common/strings.h"

namespace loom::agent {
namespace {

std::vector<std::string> Parts(std::string_view tail) {
  std::vector<std::string> out;
  for (absl::string_view p : absl::StrSplit(ToAbsl(tail), '/', absl::SkipEmpty())) out.emplace_back(p);
  return out;
}

// The value of `key` in an undecoded query string ("" if absent).
std::string QueryValue(const std::string& query, std::string_view key) {
  for (absl::string_view kv : absl::StrSplit(ToAbsl(query), '&', absl::SkipEmpty())) {
    std::pair<absl::string_view, absl::string_view> p = absl::StrSplit(kv, absl::MaxSplits('=', 1));
    if (ToStd(p.first) == key) return std::string(p.second);
  }
  return "";
}

absl::StatusOr<std::vector<model::Pod>> Pods(store::Store* store, std::string_view ns = "") {
  ASSIGN_OR_RETURN(store::RangeResult range, store->Range("/loom/pods/"));
  std::vector<model::Pod> out;
  for (const store::KeyValue& kv : range.kvs) {
    absl::StatusOr<Json> j = ParseJson(kv.value);
    if (!j.ok()) continue;
    absl::StatusOr<model::Pod> pod = model::PodFromJson(*j);
    if (!pod.ok() || (!ns.empty() && pod->meta.ns != ns)) continue;
    out.push_back(*std::move(pod));
  }
  return out;
}

Json WithStatus(const StoredApp& app, const std::vector<model::Pod>& pods, bool secrets) {
  Json j = app.ToJson(secrets);
  AppRolloutStatus st = RolloutStatusOf(app, pods);
  j["status"]["replicas"] = st.total;
  j["status"]["readyReplicas"] = st.ready;
  j["status"]["updatedReplicas"] = st.updated;
  j["status"]["updatedReadyReplicas"] = st.updated_ready;
  return j;
}

http::Response AppRef(const StoredApp& s, std::string_view result) {
  return http::Response::JsonBody(200, Json{{"kind", "App"},
                                            {"namespace", s.app.meta.ns},
                                            {"name", s.app.meta.name},
                                            {"result", std::string(result)},
                                            {"revision", s.revision},
                                            {"object", s.ToJson(false)}});
}

http::Response GetApps(const AppApiDeps& d, const http::Request& r) {
  AppRegistry* apps = d.apps();
  store::Store* store = d.store();
  if (apps == nullptr || store == nullptr) return http::Response::Error(503, "store not open yet");
  std::vector<std::string> p = Parts(r.path_tail);
  bool secrets = QueryValue(r.query, "secrets") == "1";
  absl::StatusOr<std::vector<model::Pod>> pods = Pods(store);
  if (!pods.ok()) return ErrorResponse(pods.status());
  if (p.size() <= 1) {
    absl::StatusOr<std::vector<StoredApp>> list = apps->List(p.empty() ? "" : p[0]);
    if (!list.ok()) return ErrorResponse(list.status());
    Json items = Json::array();
    for (const StoredApp& s : *list) items.push_back(WithStatus(s, *pods, secrets));
    return http::Response::JsonBody(200, Json{{"kind", "AppList"}, {"items", items}});
  }
  if (p.size() == 2) {
    absl::StatusOr<StoredApp> s = apps->Get(p[0], p[1]);
    if (!s.ok()) return ErrorResponse(s.status());
    return http::Response::JsonBody(200, WithStatus(*s, *pods, secrets));
  }
  if (p.size() == 3 && p[2] == "history") {
    absl::StatusOr<StoredApp> current = apps->Get(p[0], p[1]);
    if (!current.ok()) return ErrorResponse(current.status());
    absl::StatusOr<std::vector<AppRevision>> h = apps->History(p[0], p[1]);
    if (!h.ok()) return ErrorResponse(h.status());
    Json items = Json::array();
    for (const AppRevision& rev : *h) {
      items.push_back({{"revision", rev.revision},
                       {"templateHash", rev.hash},
                       {"image", rev.app.image},
                       {"createdAt", rev.created_at},
                       {"current", rev.revision == current->revision}});
    }
    return http::Response::JsonBody(200, Json{{"kind", "AppHistory"}, {"items", items}});
  }
  if (p.size() == 3 && p[2] == "rollout") {
    absl::StatusOr<StoredApp> s = apps->Get(p[0], p[1]);
    if (!s.ok()) return ErrorResponse(s.status());
    AppRolloutStatus st = RolloutStatusOf(*s, *pods);
    return http::Response::JsonBody(200, Json{{"revision", s->revision},
                                              {"templateHash", s->hash},
                                              {"desired", st.desired},
                                              {"total", st.total},
                                              {"ready", st.ready},
                                              {"updated", st.updated},
                                              {"updatedReady", st.updated_ready},
                                              {"complete", st.complete()}});
  }
  return http::Response::Error(404, StrCat("no such app resource: ", r.path));
}

http::Response PostApps(const AppApiDeps& d, const http::Request& r) {
  AppRegistry* apps = d.apps();
  if (apps == nullptr) return http::Response::Error(503, "store not open yet");
  std::vector<std::string> p = Parts(r.path_tail);
  if (p.size() != 3) return http::Response::Error(404, StrCat("no such app resource: ", r.path));
  absl::StatusOr<Json> body = r.body.empty() ? absl::StatusOr<Json>(Json::object()) : ParseJson(r.body);
  if (!body.ok() || !body->is_object()) return http::Response::Error(400, "body: must be a JSON object");
  if (p[2] == "scale") {
    if (!body->contains("replicas") || !(*body)["replicas"].is_number_integer()) {
      return http::Response::Error(400, "replicas: required, a whole number");
    }
    absl::StatusOr<StoredApp> s = apps->Scale(p[0], p[1], (*body)["replicas"].get<int>());
    if (!s.ok()) return ErrorResponse(s.status());
    LOG_INFO("app scaled", {"app", s->app.meta.Key()}, {"replicas", s->app.replicas});
    return AppRef(*s, "scaled");
  }
  if (p[2] == "undo") {
    int64_t revision = body->value("revision", int64_t{0});
    absl::StatusOr<AppApplyResult> res = apps->Undo(p[0], p[1], revision);
    if (!res.ok()) return ErrorResponse(res.status());
    LOG_INFO("app rolled back", {"app", res->stored.app.meta.Key()}, {"revision", res->stored.revision});
    return AppRef(res->stored, "rolled back");
  }
  return http::Response::Error(404, StrCat("no such app action: ", p[2]));
}

http::Response DeleteApp(const AppApiDeps& d, const http::Request& r) {
  AppRegistry* apps = d.apps();
  if (apps == nullptr) return http::Response::Error(503, "store not open yet");
  std::vector<std::string> p = Parts(r.path_tail);
  if (p.size() != 2) return http::Response::Error(400, "DELETE /v1/apps/<namespace>/<name>");
  absl::StatusOr<StoredApp> s = apps->Delete(p[0], p[1]);
  if (!s.ok()) return ErrorResponse(s.status());
  LOG_INFO("app deleted", {"app", s->app.meta.Key()});
  return AppRef(*s, "deleted");
}

}  // namespace

AppRolloutStatus RolloutStatusOf(const StoredApp& app, const std::vector<model::Pod>& pods) {
  AppRolloutStatus st;
  st.desired = app.app.replicas;
  for (const model::Pod& pod : pods) {
    if (AppKeyOfLabels(pod.meta.labels) != app.app.meta.Key()) continue;
    auto hash = pod.meta.labels.find(kHashLabel);
    bool updated = hash != pod.meta.labels.end() && hash->second == app.hash;
    ++st.total;
    st.ready += pod.ready ? 1 : 0;
    st.updated += updated ? 1 : 0;
    st.updated_ready += updated && pod.ready ? 1 : 0;
  }
  return st;
}

http::Response ApplyAppManifest(AppRegistry* apps, const Json& manifest) {
  if (apps == nullptr) return http::Response::Error(503, "store not open yet");
  absl::StatusOr<AppApplyResult> res = apps->Apply(manifest);
  if (!res.ok()) return ErrorResponse(res.status());
  if (res->outcome != AppApplyOutcome::kUnchanged) {
    LOG_INFO("app applied", {"app", res->stored.app.meta.Key()},
             {"result", AppApplyOutcomeName(res->outcome)}, {"revision", res->stored.revision},
             {"replicas", res->stored.app.replicas});
  }
  return AppRef(res->stored, AppApplyOutcomeName(res->outcome));
}

void RegisterAppRoutes(http::Router& router, AppApiDeps deps) {
  auto d = std::make_shared<AppApiDeps>(std::move(deps));
  auto get = [d](const http::Request& r) { return GetApps(*d, r); };
  router.Handle("GET", "/v1/apps", get);
  router.HandlePrefix("GET", "/v1/apps/", get);
  router.HandlePrefix("POST", "/v1/apps/", [d](const http::Request& r) { return PostApps(*d, r); });
  router.HandlePrefix("DELETE", "/v1/apps/", [d](const http::Request& r) { return DeleteApp(*d, r); });
  router.Handle("GET", "/v1/events", [d](const http::Request& r) {
    EventLog* events = d->events();
    if (events == nullptr) return http::Response::Error(503, "store not open yet");
    absl::StatusOr<std::vector<Json>> list = events->List(QueryValue(r.query, "app"));
    if (!list.ok()) return ErrorResponse(list.status());
    return http::Response::JsonBody(200, Json{{"kind", "EventList"}, {"items", *list}});
  });
  auto pods = [d](const http::Request& r) {
    store::Store* store = d->store();
    if (store == nullptr) return http::Response::Error(503, "store not open yet");
    std::vector<std::string> p = Parts(r.path_tail);
    absl::StatusOr<std::vector<model::Pod>> list = Pods(store, p.empty() ? "" : p[0]);
    if (!list.ok()) return ErrorResponse(list.status());
    Json items = Json::array();
    for (const model::Pod& pod : *list) items.push_back(model::PodToJson(pod));
    return http::Response::JsonBody(200, Json{{"kind", "PodList"}, {"items", items}});
  };
  router.Handle("GET", "/v1/pods", pods);
  router.HandlePrefix("GET", "/v1/pods/", pods);
  router.Handle("GET", "/v1/nodes", [d](const http::Request&) {
    store::Store* store = d->store();
    if (store == nullptr) return http::Response::Error(503, "store not open yet");
    absl::StatusOr<store::RangeResult> range = store->Range("/loom/nodes/");
    if (!range.ok()) return ErrorResponse(range.status());
    Json items = Json::array();
    for (const store::KeyValue& kv : range->kvs) {
      absl::StatusOr<Json> j = ParseJson(kv.value);
      if (j.ok()) items.push_back(*j);
    }
    return http::Response::JsonBody(200, Json{{"kind", "NodeList"}, {"items", items}});
  });
}

}  // namespace loom::agent
