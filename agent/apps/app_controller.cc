#include "agent/apps/app_controller.h"

#include "agent/apps/app_registry.h"
#include "agent/store/watch_map.h"
#include "common/log.h"
#include "common/status.h"
#include "common/strings.h"

namespace loom::agent {

AppController::AppController(store::Store* store, ReplicaRuntime* runtime, EventLog* events,
                             AppControllerOptions options)
    : store_(store), events_(events), options_(options), reconciler_(options.reconciler, runtime) {}

AppController::~AppController() { Stop(); }

uint64_t AppController::passes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return passes_;
}

void AppController::Wake() {
  dirty_ = true;
  cv_.notify_all();
}

absl::Status AppController::Start() {
  thread_ = std::thread([this] { Loop(); });
  auto watch = [&](std::string_view prefix, auto on_batch) -> absl::Status {
    absl::StatusOr<std::unique_ptr<store::Watch>> w = store_->WatchPrefix(prefix, 0, on_batch);
    if (!w.ok()) return w.status();
    watches_.push_back(*std::move(w));
    return absl::OkStatus();
  };
  absl::Status s = watch(kAppsPrefix, [this](const store::WatchBatch& b) {
    std::lock_guard<std::mutex> lock(mu_);
    store::ApplyWatchBatch(b, apps_, [](const store::KeyValue& kv) -> std::optional<model::App> {
      absl::StatusOr<StoredApp> s = StoredAppFromJson(kv.value, kv.mod_revision);
      if (!s.ok()) {
        LOG_WARNING("skipping an app that does not decode", {"key", kv.key}, {"error", s.status()});
        return std::nullopt;
      }
      return s->app;
    });
    if (b.resync) ++synced_;
    Wake();
  });
  if (s.ok()) {
    s = watch("/loom/nodes/", [this](const store::WatchBatch& b) {
      std::lock_guard<std::mutex> lock(mu_);
      store::ApplyWatchBatch(b, nodes_, [](const store::KeyValue& kv) -> std::optional<PlacementNode> {
        absl::StatusOr<Json> j = ParseJson(kv.value);
        if (!j.ok() || !j->is_object()) return std::nullopt;
        PlacementNode n;
        n.name = j->value("name", kv.key.substr(kv.key.rfind('/') + 1));
        if (j->contains("capacity") && (*j)["capacity"].is_object()) {
          n.cpus = (*j)["capacity"].value("cpus", 0.0);
          n.memory_bytes = (*j)["capacity"].value("memoryBytes", int64_t{0});
        }
        return n;
      });
      if (b.resync) ++synced_;
      Wake();
    });
  }
  if (s.ok()) {
    s = watch("/loom/pods/", [this](const store::WatchBatch& b) {
      std::lock_guard<std::mutex> lock(mu_);
      store::ApplyWatchBatch(b, pods_, [](const store::KeyValue& kv) -> std::optional<model::Pod> {
        absl::StatusOr<Json> j = ParseJson(kv.value);
        if (!j.ok()) return std::nullopt;
        absl::StatusOr<model::Pod> pod = model::PodFromJson(*j);
        if (!pod.ok() || !pod->meta.labels.contains(kAppLabel)) return std::nullopt;
        return *std::move(pod);
      });
      if (b.resync) ++synced_;
      Wake();
    });
  }
  if (!s.ok()) {
    Stop();
    return Annotate(s, "app controller watches");
  }
  return absl::OkStatus();
}

void AppController::Stop() {
  watches_.clear();
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void AppController::Loop() {
  std::unique_lock<std::mutex> lock(mu_);
  absl::Time next = absl::InfiniteFuture();
  while (true) {
    auto ready = [this] { return stop_ || (dirty_ && synced_ >= 3); };
    if (next == absl::InfiniteFuture()) {
      cv_.wait(lock, ready);
    } else {
      cv_.wait_for(lock, absl::ToChronoMilliseconds(std::max(next - absl::Now(), absl::ZeroDuration())),
                   ready);
    }
    if (stop_) return;
    if (synced_ < 3) continue;
    if (dirty_) {
      // Let the rest of a burst arrive.
      cv_.wait_for(lock, absl::ToChronoMilliseconds(options_.debounce), [this] { return stop_; });
      if (stop_) return;
    }
    dirty_ = false;
    ClusterView view;
    for (const auto& [k, app] : apps_) view.apps.push_back(app);
    for (const auto& [k, node] : nodes_) view.nodes.push_back(node);
    for (const auto& [k, pod] : pods_) view.pods.push_back(pod);
    lock.unlock();
    next = reconciler_.Pass(view, absl::Now());
    std::vector<AppEvent> events = reconciler_.TakeEvents();
    if (events_ != nullptr) {
      if (absl::Status s = events_->Record(events); !s.ok()) {
        LOG_WARNING("cannot record app events", {"error", s});
      }
    }
    lock.lock();
    ++passes_;
  }
}

}  // namespace loom::agent
