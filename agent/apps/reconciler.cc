#include "agent/apps/reconciler.h"

#include <algorithm>
#include <cstdio>
#include <set>

#include "absl/strings/numbers.h"
#include "common/log.h"
#include "common/strings.h"

namespace loom::agent {
namespace {

int OrdinalOf(const std::map<std::string, std::string>& labels) {
  auto it = labels.find(kOrdinalLabel);
  int v = -1;
  if (it == labels.end() || !absl::SimpleAtoi(ToAbsl(it->second), &v)) return -1;
  return v;
}

std::string LabelOr(const std::map<std::string, std::string>& labels, const char* key) {
  auto it = labels.find(key);
  return it == labels.end() ? "" : it->second;
}

}  // namespace

std::string AppKeyOfLabels(const std::map<std::string, std::string>& labels) {
  std::string app = LabelOr(labels, kAppLabel);
  if (app.empty()) return "";
  std::string ns = LabelOr(labels, kNamespaceLabel);
  return StrCat(ns.empty() ? "default" : ns, "/", app);
}

Reconciler::Reconciler(ReconcilerOptions options, ReplicaRuntime* runtime)
    : options_(std::move(options)), runtime_(runtime) {}

std::vector<AppEvent> Reconciler::TakeEvents() { return std::exchange(events_, {}); }

void Reconciler::Event(const std::string& app, int ordinal, std::string type, std::string reason,
                       std::string message, absl::Time now) {
  LOG_INFO("app event", {"app", app}, {"ordinal", ordinal}, {"reason", reason},
           {"message", message});
  events_.push_back({now, options_.node, app, ordinal, std::move(type), std::move(reason),
                     std::move(message)});
}

bool Reconciler::Probe(const model::App& app, const LocalReplica& replica, Tracked& t,
                       std::optional<bool> recorded, absl::Time now, absl::Time* next) {
  ExecInReplica exec = [this, &replica](const std::vector<std::string>& command,
                                        absl::Duration timeout) {
    return runtime_->Exec(replica.id, command, timeout);
  };
  bool ready = true;
  if (t.readiness) {
    if (t.readiness->Due(now)) {
      absl::Status s = RunProbe(t.readiness->probe(), replica.ip, exec);
      t.readiness->Record(s.ok(), now, std::string(s.message()));
    }
    *next = std::min(*next, t.readiness->next());
    ready = t.readiness->passing();
  }
  const bool changed = ready != t.ready || !t.reported;
  if (changed || (recorded.has_value() && *recorded != ready)) {
    absl::Status s = runtime_->SetReady(replica.id, ready);
    if (s.ok()) {
      if (changed && (t.reported || ready)) {
        Event(app.meta.Key(), t.ordinal, ready ? "Normal" : "Warning", ready ? "Ready" : "NotReady",
              ready ? StrCat("replica ", replica.id.substr(0, 12), " is ready")
                    : StrCat("readiness probe failed: ", t.readiness ? t.readiness->last_error() : ""),
              now);
      }
      if (changed && ready) t.ready_since = now;
      t.ready = ready;
      t.reported = true;
    } else {
      *next = std::min(*next, now + absl::Seconds(1));
    }
  }
  if (t.liveness) {
    if (t.liveness->Due(now)) {
      absl::Status s = RunProbe(t.liveness->probe(), replica.ip, exec);
      t.liveness->Record(s.ok(), now, std::string(s.message()));
      if (t.liveness->failed()) {
        Event(app.meta.Key(), t.ordinal, "Warning", "Unhealthy",
              StrCat("liveness probe failed ", t.liveness->probe().failure_threshold,
                     " times: ", t.liveness->last_error(), "; replacing ", replica.id.substr(0, 12)),
              now);
        return true;
      }
    }
    *next = std::min(*next, t.liveness->next());
  }
  return false;
}

bool Reconciler::TryRemove(const std::string& app, int ordinal, const std::string& id,
                           absl::Duration grace, absl::Time now, absl::Time* next) {
  absl::Status s = runtime_->Remove(id, grace);
  if (!s.ok()) {
    Event(app, ordinal, "Warning", "FailedRemove", std::string(s.message()), now);
    *next = std::min(*next, now + absl::Seconds(1));
    return false;
  }
  tracked_.erase(id);
  return true;
}

bool Reconciler::RemoveNow(const std::string& app, int ordinal, const std::string& id,
                           absl::Duration grace, const std::string& reason, absl::Time now,
                           absl::Time* next) {
  if (!TryRemove(app, ordinal, id, grace, now, next)) return false;
  Event(app, ordinal, "Normal", "Removed", StrCat("replica ", id.substr(0, 12), ": ", reason), now);
  return true;
}

void Reconciler::BeginRemoval(const std::string& app, const LocalReplica& replica,
                              std::string reason, absl::Duration drain, absl::Duration grace,
                              absl::Time now, absl::Time* next) {
  auto it = tracked_.find(replica.id);
  const bool in_endpoints = it == tracked_.end() || it->second.ready || !it->second.reported;
  if (!replica.running || drain <= absl::ZeroDuration() || !in_endpoints) {
    RemoveNow(app, it == tracked_.end() ? -1 : it->second.ordinal, replica.id, grace, reason, now,
              next);
    return;
  }
  if (absl::Status s = runtime_->SetReady(replica.id, false); !s.ok() && !absl::IsNotFound(s)) {
    LOG_WARNING("cannot take a replica out of the endpoints before removing it",
                {"id", replica.id}, {"error", s.message()});
    *next = std::min(*next, now + absl::Seconds(1));
    return;
  }
  Tracked& t = tracked_[replica.id];
  if (t.app.empty()) {
    t.app = app;
    t.ordinal = OrdinalOf(replica.labels);
  }
  t.ready = false;
  t.reported = true;
  t.draining = true;
  t.drain_until = now + drain;
  t.grace = grace;
  t.remove_reason = std::move(reason);
  *next = std::min(*next, t.drain_until);
}

absl::Time Reconciler::Pass(const ClusterView& view, absl::Time now) {
  absl::Time next = now + absl::Seconds(10);
  absl::StatusOr<std::vector<LocalReplica>> local = runtime_->List();
  if (!local.ok()) {
    LOG_WARNING("cannot list local replicas", {"error", local.status().message()});
    return now + absl::Seconds(1);
  }

  std::map<std::string, const model::App*> apps;
  std::map<std::string, std::string> hashes;
  std::vector<PlacementApp> wanted;
  for (const model::App& app : view.apps) {
    apps[app.meta.Key()] = &app;
    hashes[app.meta.Key()] = model::AppTemplateHash(app);
    wanted.push_back({app.meta.Key(), app.replicas, app.cpus, app.memory_bytes});
  }
  const Placement placement = Place(view.nodes, wanted);
  std::set<std::string> live;
  for (const PlacementNode& n : view.nodes) live.insert(n.name);

  // The ready flag on this node's pod records, by container ID.
  std::map<std::string, bool> recorded;
  for (const model::Pod& pod : view.pods) {
    if (pod.node == options_.node) recorded[pod.id] = pod.ready;
  }
  auto recorded_of = [&](const std::string& id) -> std::optional<bool> {
    auto it = recorded.find(id);
    if (it == recorded.end()) return std::nullopt;
    return it->second;
  };

  std::map<std::string, std::vector<ReplicaObservation>> observed;
  std::map<std::string, const LocalReplica*> by_id;
  std::set<std::string> present;
  for (const LocalReplica& r : *local) {
    present.insert(r.id);
    by_id[r.id] = &r;
    std::string key = AppKeyOfLabels(r.labels);
    if (key.empty()) continue;
    if (auto d = tracked_.find(r.id); d != tracked_.end() && d->second.draining) {
      if (now >= d->second.drain_until || !r.running) {
        Tracked& t = d->second;
        RemoveNow(key, t.ordinal, r.id, t.grace, StrCat(t.remove_reason, " (drained)"), now, &next);
      } else {
        next = std::min(next, d->second.drain_until);
      }
      continue;
    }
    auto app = apps.find(key);
    if (app == apps.end()) {
      BeginRemoval(key, r, "the app was deleted", options_.drain, options_.stop_grace, now, &next);
      continue;
    }
    const model::App& spec = *app->second;
    auto [it, inserted] = tracked_.try_emplace(r.id);
    Tracked& t = it->second;
    if (inserted) {
      t.app = key;
      t.ordinal = OrdinalOf(r.labels);
      if (spec.readiness) t.readiness = std::make_unique<ProbeTracker>(*spec.readiness, r.started);
      if (spec.liveness) t.liveness = std::make_unique<ProbeTracker>(*spec.liveness, r.started);
      // Found ready on its record (loomd restarted): it stays ready until a probe fails.
      if (r.running && recorded_of(r.id).value_or(false)) {
        if (t.readiness) t.readiness->SeedPassing();
        t.ready = true;
        t.reported = true;
        t.ready_since = now;
      }
    }
    if (r.running && Probe(spec, r, t, recorded_of(r.id), now, &next)) {
      if (RemoveNow(key, t.ordinal, r.id, absl::Seconds(spec.termination_grace_seconds),
                    "failed liveness", now, &next)) {
        OrdinalFailures& f = failures_[key][t.ordinal];
        ++f.count;
        f.last = now;
        next = now;  // start the replacement right away (subject to back-off)
      }
      continue;
    }
    observed[key].push_back({r.id, options_.node, t.ordinal, LabelOr(r.labels, kHashLabel),
                             r.running, r.running && t.ready, r.started});
  }
  for (const model::Pod& pod : view.pods) {
    if (pod.node == options_.node || !live.contains(pod.node)) continue;
    std::string key = AppKeyOfLabels(pod.meta.labels);
    if (key.empty() || !apps.contains(key)) continue;
    observed[key].push_back({pod.id, pod.node, OrdinalOf(pod.meta.labels),
                             LabelOr(pod.meta.labels, kHashLabel), true, pod.ready, absl::Time()});
  }

  for (const auto& [key, app] : apps) {
    ReplicaPlanInput in;
    in.app = app;
    in.hash = hashes[key];
    in.self = options_.node;
    in.placement = placement.nodes.at(key);
    in.replicas = observed[key];
    in.failures = failures_[key];
    in.now = now;
    in.backoff_base = options_.backoff_base;
    in.backoff_max = options_.backoff_max;
    for (const ReplicaAction& a : PlanReplicas(in)) {
      switch (a.type) {
        case ReplicaAction::Type::kRemove: {
          const LocalReplica* r = by_id.count(a.id) ? by_id[a.id] : nullptr;
          const absl::Duration grace = absl::Seconds(app->termination_grace_seconds);
          if (a.reason != "exited") {
            if (r != nullptr) {
              BeginRemoval(key, *r, a.reason, absl::Seconds(app->drain_seconds), grace, now, &next);
            } else {
              RemoveNow(key, a.ordinal, a.id, grace, a.reason, now, &next);
            }
            break;
          }
          if (!TryRemove(key, a.ordinal, a.id, grace, now, &next)) break;
          OrdinalFailures& f = failures_[key][a.ordinal];
          ++f.count;
          f.last = now;
          Event(key, a.ordinal, "Warning", "Exited",
                StrCat("replica ", a.id.substr(0, 12), " exited with code ", r ? r->exit_code : -1,
                       r && r->oom_killed ? " (OOM killed)" : ""),
                now);
          next = now;
          break;
        }
        case ReplicaAction::Type::kStart: {
          ReplicaStart spec;
          spec.ns = app->meta.ns;
          char nonce[9];
          std::snprintf(nonce, sizeof nonce, "%08llx",
                        static_cast<unsigned long long>(absl::ToUnixNanos(now) ^ (++nonce_ << 40)) &
                            0xffffffffull);
          spec.name = StrCat(app->meta.name, "-", a.ordinal, "-", in.hash.substr(0, 6), "-", nonce);
          spec.app = app;
          spec.ordinal = a.ordinal;
          spec.hash = in.hash;
          spec.labels = app->meta.labels;
          spec.labels[kAppLabel] = app->meta.name;
          spec.labels[kNamespaceLabel] = app->meta.ns;
          spec.labels[kHashLabel] = in.hash;
          spec.labels[kOrdinalLabel] = std::to_string(a.ordinal);
          absl::StatusOr<LocalReplica> started = runtime_->Start(spec);
          if (!started.ok()) {
            OrdinalFailures& f = failures_[key][a.ordinal];
            ++f.count;
            f.last = now;
            Event(key, a.ordinal, "Warning", "FailedStart", std::string(started.status().message()), now);
            next = std::min(next, now + RestartBackoff(f.count, options_.backoff_base, options_.backoff_max));
            break;
          }
          Event(key, a.ordinal, "Normal", "Started",
                StrCat("replica ", started->id.substr(0, 12), " (", a.reason, ")"), now);
          next = std::min(next, now + absl::Milliseconds(100));  // probe it soon
          break;
        }
        case ReplicaAction::Type::kWait:
          next = std::min(next, a.until);
          break;
      }
    }
  }

  // Failure counts clear once a replica of the ordinal has been ready a while; state
  // of containers that are gone is dropped.
  for (auto it = tracked_.begin(); it != tracked_.end();) {
    if (!present.contains(it->first)) {
      it = tracked_.erase(it);
      continue;
    }
    const Tracked& t = it->second;
    if (t.ready && now - t.ready_since >= options_.healthy_reset) {
      auto f = failures_.find(t.app);
      if (f != failures_.end()) f->second.erase(t.ordinal);
    }
    ++it;
  }
  for (auto it = failures_.begin(); it != failures_.end();) {
    it = apps.contains(it->first) ? std::next(it) : failures_.erase(it);
  }
  return std::max(next, now);
}

}  // namespace loom::agent
