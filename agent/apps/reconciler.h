// The node's App reconciler: level-triggered and idempotent. Each pass takes the
// cluster view (apps, live nodes, every app pod registered in the store) and this
// node's containers, places every app's replicas (agent/placement), plans this node's
// part (PlanReplicas) and carries it out through the runtime; it runs readiness and
// liveness probes of local replicas, reports readiness on their pod records (a
// replica is registered not ready and turns ready only once its readiness probe
// passes), replaces replicas failing liveness, restarts exited ones with back-off,
// and records events. Nothing is remembered that the next pass cannot rebuild from
// what it observes, except probe state and failure counts (lost on restart: probes
// start over, the replicas keep running; a replica whose pod record says ready stays
// ready until its probe fails).
//
// Readiness is level-triggered against the pod records too: a record that disagrees
// with the probe (another agent marked the pods of a lost node not ready, and the
// node came back) is written again. A replica being removed (scale down, rollout,
// move, app deleted) first drains: its pod turns not ready, so DNS, the load
// balancer and the ingress stop picking it while open connections finish, and only
// after the App's drainSeconds does it get SIGTERM (SIGKILL after
// terminationGracePeriodSeconds). A draining replica no longer counts as one of its
// ordinal's replicas. Exited replicas, and replicas failing liveness, go at once.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "agent/apps/probe.h"
#include "agent/apps/replica_plan.h"
#include "agent/placement/placement.h"
#include "common/model/app.h"
#include "common/model/objects.h"

namespace loom::agent {

// Labels every replica carries (besides the App's own metadata.labels).
inline constexpr const char* kAppLabel = model::kAppPodLabel;
inline constexpr char kNamespaceLabel[] = "loom.io/namespace";
inline constexpr char kHashLabel[] = "loom.io/template-hash";
inline constexpr char kOrdinalLabel[] = "loom.io/ordinal";

// What the runtime is asked to start for one replica.
struct ReplicaStart {
  std::string ns;
  std::string name;  // unique on the node: <app>-<ordinal>-<hash prefix>-<nonce>
  const model::App* app = nullptr;
  int ordinal = 0;
  std::string hash;
  std::map<std::string, std::string> labels;  // app labels + the loom.io ones
};

// One of this node's containers, as the runtime reports it.
struct LocalReplica {
  std::string id;
  std::map<std::string, std::string> labels;
  bool running = false;
  int exit_code = 0;
  bool oom_killed = false;
  absl::Time started;
  std::string ip;  // its pod address, for probes
};

// The runtime seen by the reconciler (loomd: the container manager; tests: a fake).
class ReplicaRuntime {
 public:
  virtual ~ReplicaRuntime() = default;
  // Every container of this node that carries kAppLabel.
  virtual absl::StatusOr<std::vector<LocalReplica>> List() = 0;
  // Starts, attaches (registering the pod not ready) and returns it running.
  virtual absl::StatusOr<LocalReplica> Start(const ReplicaStart& spec) = 0;
  // Stops (SIGTERM, then SIGKILL after `grace`), detaches and removes.
  virtual absl::Status Remove(const std::string& id, absl::Duration grace) = 0;
  virtual absl::StatusOr<int> Exec(const std::string& id, const std::vector<std::string>& command,
                                   absl::Duration timeout) = 0;
  // Sets the ready flag of the replica's pod record.
  virtual absl::Status SetReady(const std::string& id, bool ready) = 0;
};

struct AppEvent {
  absl::Time time;
  std::string node;
  std::string app;  // "ns/name"
  int ordinal = -1;
  std::string type;  // "Normal" or "Warning"
  std::string reason;  // Started, Removed, Ready, NotReady, Unhealthy, Exited, FailedStart
  std::string message;
};

struct ClusterView {
  std::vector<model::App> apps;
  std::vector<PlacementNode> nodes;  // live
  std::vector<model::Pod> pods;      // every pod carrying kAppLabel, on any node
};

struct ReconcilerOptions {
  std::string node;
  // For replicas of a deleted App (whose drainSeconds and grace are gone with it).
  absl::Duration stop_grace = absl::Seconds(10);
  absl::Duration drain = absl::Seconds(2);
  absl::Duration backoff_base = absl::Seconds(1);
  absl::Duration backoff_max = absl::Seconds(30);
  // A replica ready this long clears its ordinal's failure count.
  absl::Duration healthy_reset = absl::Seconds(60);
};

class Reconciler {
 public:
  Reconciler(ReconcilerOptions options, ReplicaRuntime* runtime);

  // One pass over `view` at `now`. Returns when the next pass is due at the latest
  // (a probe or a back-off); callers also pass again on any store change.
  absl::Time Pass(const ClusterView& view, absl::Time now);

  // Events since the last call (the caller stores them).
  std::vector<AppEvent> TakeEvents();

 private:
  struct Tracked {
    std::string app;
    int ordinal = -1;
    std::unique_ptr<ProbeTracker> readiness;
    std::unique_ptr<ProbeTracker> liveness;
    bool ready = false;            // as last reported on the pod record
    bool reported = false;         // whether SetReady ran at least once
    absl::Time ready_since;
    // Draining before removal: out of the endpoints, stopped at drain_until.
    bool draining = false;
    absl::Time drain_until;
    absl::Duration grace;
    std::string remove_reason;
  };
  void Event(const std::string& app, int ordinal, std::string type, std::string reason,
             std::string message, absl::Time now);
  // Probes the replica; true when it must be replaced (liveness failed).
  // `recorded`: the ready flag on the replica's pod record, when the view has it.
  bool Probe(const model::App& app, const LocalReplica& replica, Tracked& t,
             std::optional<bool> recorded, absl::Time now, absl::Time* next);
  // Removes a running replica after draining it (at once when it is not in the
  // endpoints or `drain` is zero); `app` is the App key.
  void BeginRemoval(const std::string& app, const LocalReplica& replica, std::string reason,
                    absl::Duration drain, absl::Duration grace, absl::Time now, absl::Time* next);
  // Stops and removes now, forgetting its state; false (and a FailedRemove event,
  // another pass in 1 s) when the runtime failed. RemoveNow also records Removed.
  bool TryRemove(const std::string& app, int ordinal, const std::string& id, absl::Duration grace,
                 absl::Time now, absl::Time* next);
  bool RemoveNow(const std::string& app, int ordinal, const std::string& id, absl::Duration grace,
                 const std::string& reason, absl::Time now, absl::Time* next);

  ReconcilerOptions options_;
  ReplicaRuntime* runtime_;
  std::map<std::string, Tracked> tracked_;  // by container id
  std::map<std::string, std::map<int, OrdinalFailures>> failures_;  // by app key
  std::vector<AppEvent> events_;
  uint64_t nonce_ = 0;
};

// "ns/name" of the app a set of replica labels belongs to ("" if none).
std::string AppKeyOfLabels(const std::map<std::string, std::string>& labels);

}  // namespace loom::agent
