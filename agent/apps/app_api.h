// The apps part of loomd's local API (docs/loomd.md):
//   POST   /v1/apply                         kind App goes to ApplyAppManifest
//   GET    /v1/apps[/<ns>[/<name>]]          objects with status; ?secrets=1 shows secret files
//   DELETE /v1/apps/<ns>/<name>
//   POST   /v1/apps/<ns>/<name>/scale        {"replicas": N}
//   GET    /v1/apps/<ns>/<name>/history      {"items": [{revision, templateHash, image, createdAt}]}
//   POST   /v1/apps/<ns>/<name>/undo         {"revision": N} (0 or absent: the previous one)
//   GET    /v1/apps/<ns>/<name>/rollout      {desired, updated, ready, updatedReady, total, complete}
//   GET    /v1/events[?app=<ns>[/<name>]]    {"items": [...]} oldest first
//   GET    /v1/pods[/<ns>]                   every registered pod
//   GET    /v1/nodes                         the live nodes
#pragma once

#include <functional>

#include "agent/apps/app_registry.h"
#include "agent/apps/event_log.h"
#include "agent/store/store.h"
#include "common/http/message.h"
#include "common/http/router.h"
#include "common/model/objects.h"

namespace loom::agent {

struct AppApiDeps {
  // Each null until the store is open.
  std::function<AppRegistry*()> apps;
  std::function<EventLog*()> events;
  std::function<store::Store*()> store;
};

void RegisterAppRoutes(http::Router& router, AppApiDeps deps);
// POST /v1/apply for kind App.
http::Response ApplyAppManifest(AppRegistry* apps, const Json& manifest);

struct AppRolloutStatus {
  int desired = 0;
  int total = 0;          // replicas registered, any template
  int ready = 0;
  int updated = 0;        // of the current template
  int updated_ready = 0;
  bool complete() const { return updated_ready == desired && total == desired; }
};
AppRolloutStatus RolloutStatusOf(const StoredApp& app, const std::vector<model::Pod>& pods);

}  // namespace loom::agent
