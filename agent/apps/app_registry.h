// Declared Apps in the store, with their rollout history. Keys:
//   /loom/apps/<ns>/<name>                  {"app": manifest (secrets included),
//                                            "hash", "revision", "createdAt", "updatedAt"}
//   /loom/apphistory/<ns>/<name>/<revision> {"app": manifest, "hash", "createdAt"}: one per
//                                            template, the newest kHistoryLimit kept
// A template change (model::AppTemplateHash) makes a new revision; a change of only
// replicas or strategy does not. `Undo` re-applies an earlier revision's template
// (keeping the current replica count), as `kubectl rollout undo` does. Every write is
// one transaction guarded by CAS on the app key.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "agent/store/store.h"
#include "common/json.h"
#include "common/model/app.h"

namespace loom::agent {

inline constexpr std::string_view kAppsPrefix = "/loom/apps/";
inline constexpr std::string_view kAppHistoryPrefix = "/loom/apphistory/";
inline constexpr int kHistoryLimit = 10;

std::string AppKey(std::string_view ns, std::string_view name);

struct StoredApp {
  model::App app;
  std::string hash;
  int64_t revision = 1;  // bumped on each template change
  std::string created_at;
  std::string updated_at;
  // `show_secrets`: secret file contents in the clear (else "<hidden>").
  Json ToJson(bool show_secrets) const;
};
absl::StatusOr<StoredApp> StoredAppFromJson(std::string_view value, int64_t mod_revision);

struct AppRevision {
  int64_t revision = 0;
  std::string hash;
  std::string created_at;
  model::App app;
};

enum class AppApplyOutcome { kCreated, kConfigured, kUnchanged };
std::string_view AppApplyOutcomeName(AppApplyOutcome outcome);

struct AppApplyResult {
  AppApplyOutcome outcome = AppApplyOutcome::kCreated;
  bool new_revision = false;
  StoredApp stored;
};

class AppRegistry {
 public:
  explicit AppRegistry(store::Store* store, int max_attempts = 16)
      : store_(store), max_attempts_(max_attempts) {}

  // Creates or updates an App from its manifest (errors name the field).
  absl::StatusOr<AppApplyResult> Apply(const Json& manifest);
  absl::StatusOr<StoredApp> Get(std::string_view ns, std::string_view name);
  // Sorted by namespace and name; one namespace when `ns` is set.
  absl::StatusOr<std::vector<StoredApp>> List(std::string_view ns = "");
  // Deletes the app and its history. NotFound when there is none.
  absl::StatusOr<StoredApp> Delete(std::string_view ns, std::string_view name);
  // Sets spec.replicas (0..10000).
  absl::StatusOr<StoredApp> Scale(std::string_view ns, std::string_view name, int replicas);
  // Oldest first.
  absl::StatusOr<std::vector<AppRevision>> History(std::string_view ns, std::string_view name);
  // Rolls back to `revision`'s template (0: the revision before the current one),
  // which becomes a new revision. FailedPrecondition when there is nothing to go
  // back to; NotFound for an unknown revision.
  absl::StatusOr<AppApplyResult> Undo(std::string_view ns, std::string_view name,
                                      int64_t revision = 0);

 private:
  // Writes `next` over whatever is at the key now (CAS), adding a history entry
  // when its template differs.
  absl::StatusOr<AppApplyResult> Write(model::App next);

  store::Store* store_;
  int max_attempts_;
};

}  // namespace loom::agent
