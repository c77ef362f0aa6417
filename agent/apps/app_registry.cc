#include "agent/apps/app_registry.h"

#include <algorithm>
#include <cstdio>

#include "absl/time/clock.h"
#include "common/status.h"
#include "common/strings.h"

namespace loom::agent {
namespace {

std::string Now() { return absl::FormatTime(absl::RFC3339_sec, absl::Now(), absl::UTCTimeZone()); }

std::string HistoryPrefix(std::string_view ns, std::string_view name) {
  return StrCat(kAppHistoryPrefix, ns, "/", name, "/");
}

std::string HistoryKey(std::string_view ns, std::string_view name, int64_t revision) {
  char rev[24];
  std::snprintf(rev, sizeof rev, "%010lld", static_cast<long long>(revision));
  return StrCat(HistoryPrefix(ns, name), rev);
}

std::string AppName(std::string_view ns, std::string_view name) {
  return StrCat("app \"", ns, "/", name, "\"");
}

}  // namespace

std::string AppKey(std::string_view ns, std::string_view name) {
  return StrCat(kAppsPrefix, ns, "/", name);
}

std::string_view AppApplyOutcomeName(AppApplyOutcome outcome) {
  switch (outcome) {
    case AppApplyOutcome::kCreated: return "created";
    case AppApplyOutcome::kConfigured: return "configured";
    case AppApplyOutcome::kUnchanged: return "unchanged";
  }
  return "unchanged";
}

Json StoredApp::ToJson(bool show_secrets) const {
  Json j = model::AppToManifest(app, show_secrets);
  j["metadata"]["revision"] = app.meta.revision;
  j["status"] = {{"templateHash", hash},
                 {"revision", revision},
                 {"createdAt", created_at},
                 {"updatedAt", updated_at}};
  return j;
}

absl::StatusOr<StoredApp> StoredAppFromJson(std::string_view value, int64_t mod_revision) {
  ASSIGN_OR_RETURN(Json j, ParseJson(value));
  if (!j.is_object() || !j.contains("app")) return absl::DataLossError("stored app: no \"app\"");
  StoredApp s;
  ASSIGN_OR_RETURN(s.app, model::AppFromManifest(j["app"]));
  s.app.meta.revision = mod_revision;
  s.hash = j.value("hash", "");
  s.revision = j.value("revision", int64_t{1});
  s.created_at = j.value("createdAt", "");
  s.updated_at = j.value("updatedAt", "");
  return s;
}

absl::StatusOr<AppApplyResult> AppRegistry::Apply(const Json& manifest) {
  ASSIGN_OR_RETURN(model::App app, model::AppFromManifest(manifest));
  app.meta.revision = 0;
  return Write(std::move(app));
}

absl::StatusOr<AppApplyResult> AppRegistry::Write(model::App next) {
  const std::string key = AppKey(next.meta.ns, next.meta.name);
  const std::string hash = model::AppTemplateHash(next);
  for (int attempt = 0; attempt < max_attempts_; ++attempt) {
    ASSIGN_OR_RETURN(std::optional<store::KeyValue> kv, store_->Get(key));
    std::optional<StoredApp> existing;
    if (kv) {
      ASSIGN_OR_RETURN(existing, StoredAppFromJson(kv->value, kv->mod_revision));
      model::App same = next;
      same.meta.revision = existing->app.meta.revision;
      if (existing->app == same) {
        return AppApplyResult{AppApplyOutcome::kUnchanged, false, *existing};
      }
    }
    AppApplyResult result;
    result.outcome = existing ? AppApplyOutcome::kConfigured : AppApplyOutcome::kCreated;
    result.new_revision = !existing || existing->hash != hash;
    StoredApp& s = result.stored;
    s.app = next;
    s.hash = hash;
    s.revision = existing ? existing->revision + (result.new_revision ? 1 : 0) : 1;
    s.created_at = existing ? existing->created_at : Now();
    s.updated_at = Now();
    Json value = {{"app", model::AppToManifest(next, true)},
                  {"hash", hash},
                  {"revision", s.revision},
                  {"createdAt", s.created_at},
                  {"updatedAt", s.updated_at}};
    store::Txn txn;
    txn.compare.push_back(kv ? store::Compare::ModRevisionIs(key, kv->mod_revision)
                             : store::Compare::Absent(key));
    txn.success.push_back(store::Op::Put(key, value.dump()));
    if (result.new_revision) {
      Json entry = {{"app", model::AppToManifest(next, true)}, {"hash", hash}, {"createdAt", s.updated_at}};
      txn.success.push_back(
          store::Op::Put(HistoryKey(next.meta.ns, next.meta.name, s.revision), entry.dump()));
      if (s.revision > kHistoryLimit) {
        txn.success.push_back(store::Op::Delete(
            HistoryKey(next.meta.ns, next.meta.name, s.revision - kHistoryLimit)));
      }
    }
    ASSIGN_OR_RETURN(store::TxnResult committed, store_->Commit(txn));
    if (committed.succeeded) {
      s.app.meta.revision = committed.revision;
      return result;
    }
  }
  return absl::AbortedError(StrCat(AppName(next.meta.ns, next.meta.name), ": the store kept changing under ",
                                   max_attempts_, " attempts; try again"));
}

absl::StatusOr<StoredApp> AppRegistry::Get(std::string_view ns, std::string_view name) {
  ASSIGN_OR_RETURN(std::optional<store::KeyValue> kv, store_->Get(AppKey(ns, name)));
  if (!kv) return absl::NotFoundError(StrCat(AppName(ns, name), " not found"));
  return StoredAppFromJson(kv->value, kv->mod_revision);
}

absl::StatusOr<std::vector<StoredApp>> AppRegistry::List(std::string_view ns) {
  std::string prefix = ns.empty() ? std::string(kAppsPrefix) : StrCat(kAppsPrefix, ns, "/");
  ASSIGN_OR_RETURN(store::RangeResult range, store_->Range(prefix));
  std::vector<StoredApp> out;
  for (const store::KeyValue& kv : range.kvs) {
    absl::StatusOr<StoredApp> s = StoredAppFromJson(kv.value, kv.mod_revision);
    if (s.ok()) out.push_back(*std::move(s));
  }
  std::sort(out.begin(), out.end(), [](const StoredApp& a, const StoredApp& b) {
    return a.app.meta.Key() < b.app.meta.Key();
  });
  return out;
}

absl::StatusOr<StoredApp> AppRegistry::Delete(std::string_view ns, std::string_view name) {
  const std::string key = AppKey(ns, name);
  for (int attempt = 0; attempt < max_attempts_; ++attempt) {
    ASSIGN_OR_RETURN(std::optional<store::KeyValue> kv, store_->Get(key));
    if (!kv) return absl::NotFoundError(StrCat(AppName(ns, name), " not found"));
    ASSIGN_OR_RETURN(StoredApp s, StoredAppFromJson(kv->value, kv->mod_revision));
    ASSIGN_OR_RETURN(store::RangeResult history, store_->Range(HistoryPrefix(ns, name)));
    store::Txn txn;
    txn.compare.push_back(store::Compare::ModRevisionIs(key, kv->mod_revision));
    txn.success.push_back(store::Op::Delete(key));
    for (const store::KeyValue& h : history.kvs) txn.success.push_back(store::Op::Delete(h.key));
    ASSIGN_OR_RETURN(store::TxnResult committed, store_->Commit(txn));
    if (committed.succeeded) return s;
  }
  return absl::AbortedError(StrCat(AppName(ns, name), ": the store kept changing; try again"));
}

absl::StatusOr<StoredApp> AppRegistry::Scale(std::string_view ns, std::string_view name,
                                             int replicas) {
  if (replicas < 0 || replicas > 10000) {
    return absl::InvalidArgumentError(StrCat("spec.replicas: ", replicas, " must be 0..10000"));
  }
  ASSIGN_OR_RETURN(StoredApp current, Get(ns, name));
  model::App next = current.app;
  next.replicas = replicas;
  ASSIGN_OR_RETURN(AppApplyResult result, Write(std::move(next)));
  return result.stored;
}

absl::StatusOr<std::vector<AppRevision>> AppRegistry::History(std::string_view ns,
                                                              std::string_view name) {
  ASSIGN_OR_RETURN(store::RangeResult range, store_->Range(HistoryPrefix(ns, name)));
  std::vector<AppRevision> out;
  for (const store::KeyValue& kv : range.kvs) {
    absl::StatusOr<Json> j = ParseJson(kv.value);
    if (!j.ok() || !j->is_object() || !j->contains("app")) continue;
    absl::StatusOr<model::App> app = model::AppFromManifest((*j)["app"]);
    if (!app.ok()) continue;
    AppRevision r;
    r.revision = std::strtoll(kv.key.substr(kv.key.rfind('/') + 1).c_str(), nullptr, 10);
    r.hash = j->value("hash", "");
    r.created_at = j->value("createdAt", "");
    r.app = *std::move(app);
    out.push_back(std::move(r));
  }
  std::sort(out.begin(), out.end(),
            [](const AppRevision& a, const AppRevision& b) { return a.revision < b.revision; });
  return out;
}

absl::StatusOr<AppApplyResult> AppRegistry::Undo(std::string_view ns, std::string_view name,
                                                 int64_t revision) {
  ASSIGN_OR_RETURN(StoredApp current, Get(ns, name));
  ASSIGN_OR_RETURN(std::vector<AppRevision> history, History(ns, name));
  const AppRevision* target = nullptr;
  for (const AppRevision& r : history) {
    if (revision == 0 ? r.revision < current.revision : r.revision == revision) target = &r;
  }
  if (target == nullptr) {
    if (revision != 0) {
      return absl::NotFoundError(StrCat(AppName(ns, name), " has no revision ", revision));
    }
    return absl::FailedPreconditionError(
        StrCat(AppName(ns, name), " has no earlier revision to go back to"));
  }
  model::App next = target->app;
  next.meta.revision = 0;
  next.replicas = current.app.replicas;
  next.max_surge = current.app.max_surge;
  next.max_unavailable = current.app.max_unavailable;
  return Write(std::move(next));
}

}  // namespace loom::agent
