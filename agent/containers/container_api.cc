#include "agent/containers/container_api.h"

#include <atomic>
#include <memory>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "agent/services/object_api.h"
#include "common/strings.h"

namespace loom::containers {
namespace {

constexpr int kMaxBlockingCalls = 2;
constexpr size_t kLogChunk = 1 << 20;

http::Response FromStatus(const absl::Status& s) {
  int code = s.code() == absl::StatusCode::kDeadlineExceeded ? 504 : agent::HttpStatusFor(s);
  return http::Response::Error(code, ToStd(s.message()));
}

std::string QueryValue(const http::Request& r, std::string_view key) {
  for (absl::string_view kv : absl::StrSplit(r.query, '&', absl::SkipEmpty())) {
    std::pair<std::string, std::string> p = absl::StrSplit(kv, absl::MaxSplits('=', 1));
    if (p.first == key) return p.second;
  }
  return "";
}

bool QueryFlag(const http::Request& r, std::string_view key) {
  std::string v = QueryValue(r, key);
  return v == "1" || v == "true";
}

absl::StatusOr<Json> Body(const http::Request& r) {
  if (r.body.empty()) return Json::object();
  absl::StatusOr<Json> j = ParseJson(r.body);
  if (!j.ok()) return absl::InvalidArgumentError(StrCat("request body: ", j.status().message()));
  if (!j->is_object()) return absl::InvalidArgumentError("request body must be a JSON object");
  return j;
}

Json ImageToJson(const runtime::Image& i) {
  return Json{{"digest", i.digest},
              {"names", i.names},
              {"entrypoint", i.config.entrypoint},
              {"cmd", i.config.cmd}};
}

// Counts blocking calls; beyond the limit the request is refused rather than queued.
class Gate {
 public:
  bool Enter() {
    if (inside_.fetch_add(1) >= kMaxBlockingCalls) {
      inside_.fetch_sub(1);
      return false;
    }
    return true;
  }
  void Leave() { inside_.fetch_sub(1); }

 private:
  std::atomic<int> inside_{0};
};

struct Routes {
  std::function<ContainerManager*()> manager;
  std::function<std::string()> unavailable;
  Gate gate;

  // Runs `fn` with the manager, as a blocking call when `blocking`.
  http::Response With(bool blocking, const std::function<http::Response(ContainerManager&)>& fn) {
    ContainerManager* m = manager();
    if (m == nullptr) {
      std::string why = unavailable();
      return http::Response::Error(503, why.empty() ? "containers are not started yet"
                                                    : StrCat("containers unavailable: ", why));
    }
    if (!blocking) return fn(*m);
    if (!gate.Enter()) {
      return http::Response::Error(
          503, StrCat("loomd is busy with ", kMaxBlockingCalls, " container operations; retry"));
    }
    http::Response r = fn(*m);
    gate.Leave();
    return r;
  }

  http::Response ContainerGet(const http::Request& req) {
    std::vector<std::string> parts = absl::StrSplit(req.path_tail, '/');
    if (parts.size() == 1) {
      return With(false, [&](ContainerManager& m) {
        absl::StatusOr<ContainerView> v = m.Inspect(parts[0]);
        return v.ok() ? http::Response::JsonBody(200, ContainerViewToJson(*v)) : FromStatus(v.status());
      });
    }
    if (parts.size() == 2 && parts[1] == "logs") {
      int64_t offset = 0;
      std::string o = QueryValue(req, "offset");
      if (!o.empty() && !absl::SimpleAtoi(o, &offset)) {
        return http::Response::Error(400, StrCat("offset '", o, "' is not a number"));
      }
      return With(false, [&](ContainerManager& m) {
        absl::StatusOr<LogChunk> c = m.Logs(parts[0], offset, kLogChunk);
        if (!c.ok()) return FromStatus(c.status());
        return http::Response::JsonBody(200, Json{{"data", absl::Base64Escape(c->data)},
                                                  {"next", c->next_offset},
                                                  {"running", c->running}});
      });
    }
    return http::Response::Error(404, StrCat("no such path ", req.path));
  }

  http::Response ContainerPost(const http::Request& req) {
    std::vector<std::string> parts = absl::StrSplit(req.path_tail, '/');
    if (parts.size() != 2) return http::Response::Error(404, StrCat("no such path ", req.path));
    absl::StatusOr<Json> body = Body(req);
    if (!body.ok()) return FromStatus(body.status());
    const std::string& ref = parts[0];
    if (parts[1] == "stop") {
      absl::StatusOr<int64_t> grace = GetIntOr(*body, "graceSeconds", "", 10);
      if (!grace.ok() || *grace < 0) return http::Response::Error(400, "graceSeconds must be a whole number >= 0");
      return With(true, [&](ContainerManager& m) {
        absl::StatusOr<ContainerView> v = m.Stop(ref, absl::Seconds(*grace));
        return v.ok() ? http::Response::JsonBody(200, ContainerViewToJson(*v)) : FromStatus(v.status());
      });
    }
    if (parts[1] == "exec") {
      runtime::ExecSpec spec;
      int64_t timeout = 30;
      try {
        spec.command = body->value("command", std::vector<std::string>{});
        spec.env = body->value("env", std::vector<std::string>{});
        timeout = body->value("timeoutSeconds", int64_t{30});
      } catch (const std::exception&) {
        return http::Response::Error(400, "command and env must be lists of strings, timeoutSeconds a number");
      }
      if (spec.command.empty()) return http::Response::Error(400, "exec: command is required");
      if (timeout < 1 || timeout > 3600) return http::Response::Error(400, "timeoutSeconds must be 1..3600");
      return With(true, [&](ContainerManager& m) {
        absl::StatusOr<runtime::ExecResult> r = m.Exec(ref, spec, absl::Seconds(timeout));
        if (!r.ok()) return FromStatus(r.status());
        return http::Response::JsonBody(200, Json{{"exitCode", r->exit_code},
                                                  {"stdout", absl::Base64Escape(r->out)},
                                                  {"stderr", absl::Base64Escape(r->err)}});
      });
    }
    if (parts[1] == "check") {
      return With(true, [&](ContainerManager& m) {
        absl::Status s = m.CheckNetwork(ref);
        return s.ok() ? http::Response::JsonBody(200, Json{{"ok", true}}) : FromStatus(s);
      });
    }
    return http::Response::Error(404, StrCat("no such path ", req.path));
  }
};

}  // namespace

void RegisterContainerRoutes(http::Router& router, std::function<ContainerManager*()> manager,
                             std::function<std::string()> unavailable) {
  auto routes = std::make_shared<Routes>();
  routes->manager = std::move(manager);
  routes->unavailable = std::move(unavailable);
  router.Handle("POST", "/v1/containers", [routes](const http::Request& req) {
    absl::StatusOr<Json> body = Body(req);
    if (!body.ok()) return FromStatus(body.status());
    absl::StatusOr<RunRequest> run = RunRequestFromJson(*body);
    if (!run.ok()) return FromStatus(run.status());
    return routes->With(true, [&](ContainerManager& m) {
      absl::StatusOr<ContainerView> v = m.Run(*run);
      return v.ok() ? http::Response::JsonBody(201, ContainerViewToJson(*v)) : FromStatus(v.status());
    });
  });
  router.Handle("GET", "/v1/containers", [routes](const http::Request& req) {
    return routes->With(false, [&](ContainerManager& m) {
      Json items = Json::array();
      for (const ContainerView& v : m.List(QueryFlag(req, "all"))) items.push_back(ContainerViewToJson(v));
      return http::Response::JsonBody(200, Json{{"items", items}});
    });
  });
  router.HandlePrefix("GET", "/v1/containers/",
                      [routes](const http::Request& req) { return routes->ContainerGet(req); });
  router.HandlePrefix("POST", "/v1/containers/",
                      [routes](const http::Request& req) { return routes->ContainerPost(req); });
  router.HandlePrefix("DELETE", "/v1/containers/", [routes](const http::Request& req) {
    return routes->With(true, [&](ContainerManager& m) {
      absl::Status s = m.Remove(req.path_tail, QueryFlag(req, "force"));
      return s.ok() ? http::Response::JsonBody(200, Json{{"removed", req.path_tail}}) : FromStatus(s);
    });
  });
  router.Handle("GET", "/v1/volumes", [routes](const http::Request&) {
    return routes->With(false, [&](ContainerManager& m) {
      return http::Response::JsonBody(200, Json{{"items", m.ListVolumes()}});
    });
  });
  router.HandlePrefix("DELETE", "/v1/volumes/", [routes](const http::Request& req) {
    return routes->With(false, [&](ContainerManager& m) {
      absl::Status s = m.RemoveVolume(req.path_tail);
      return s.ok() ? http::Response::JsonBody(200, Json{{"removed", req.path_tail}}) : FromStatus(s);
    });
  });
  router.Handle("GET", "/v1/images", [routes](const http::Request&) {
    return routes->With(false, [&](ContainerManager& m) {
      absl::StatusOr<std::vector<runtime::Image>> images = m.ListImages();
      if (!images.ok()) return FromStatus(images.status());
      Json items = Json::array();
      for (const runtime::Image& i : *images) items.push_back(ImageToJson(i));
      return http::Response::JsonBody(200, Json{{"items", items}});
    });
  });
  router.Handle("POST", "/v1/images", [routes](const http::Request& req) {
    absl::StatusOr<Json> body = Body(req);
    if (!body.ok()) return FromStatus(body.status());
    absl::StatusOr<std::string> source = GetString(*body, "source", "");
    absl::StatusOr<std::string> name = GetString(*body, "name", "");
    if (!source.ok()) return FromStatus(source.status());
    if (!name.ok()) return FromStatus(name.status());
    return routes->With(true, [&](ContainerManager& m) {
      absl::StatusOr<runtime::Image> i = m.ImportImage(*source, *name);
      return i.ok() ? http::Response::JsonBody(201, ImageToJson(*i)) : FromStatus(i.status());
    });
  });
  router.HandlePrefix("DELETE", "/v1/images/", [routes](const http::Request& req) {
    return routes->With(false, [&](ContainerManager& m) {
      absl::Status s = m.RemoveImage(req.path_tail);
      return s.ok() ? http::Response::JsonBody(200, Json{{"removed", req.path_tail}}) : FromStatus(s);
    });
  });
}

}  // namespace loom::containers
