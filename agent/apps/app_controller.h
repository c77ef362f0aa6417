// Runs the node's Reconciler from the store: watches /loom/apps/, /loom/nodes/ (the
// live nodes: their keys live on their leases) and /loom/pods/, and passes again on
// every change (after a short debounce) and whenever the reconciler asks (probes,
// back-offs). Events go to the EventLog.
#pragma once

#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <thread>

#include "absl/status/status.h"
#include "agent/apps/event_log.h"
#include "agent/apps/reconciler.h"
#include "agent/store/store.h"

namespace loom::agent {

struct AppControllerOptions {
  ReconcilerOptions reconciler;
  absl::Duration debounce = absl::Milliseconds(20);
};

class AppController {
 public:
  AppController(store::Store* store, ReplicaRuntime* runtime, EventLog* events,
                AppControllerOptions options);
  ~AppController();  // Stop()

  absl::Status Start();
  void Stop();
  uint64_t passes() const;

 private:
  void Loop();
  void Wake();

  store::Store* store_;
  EventLog* events_;
  AppControllerOptions options_;
  Reconciler reconciler_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, model::App> apps_;           // by store key
  std::map<std::string, PlacementNode> nodes_;       // by store key
  std::map<std::string, model::Pod> pods_;           // by store key, app pods only
  int synced_ = 0;                                   // watches that delivered a snapshot
  bool dirty_ = false;
  bool stop_ = false;
  uint64_t passes_ = 0;
  std::vector<std::unique_ptr<store::Watch>> watches_;
  std::thread thread_;
};

}  // namespace loom::agent
