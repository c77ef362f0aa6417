// What one node's reconciler does next for one App: a pure function of the App,
// where its replicas are placed, and every replica the cluster reports (this node's
// containers and the other nodes' pods), so every decision is unit-tested and
// re-deciding after any change (level-triggered) is always safe.
//
// Replica ordinals 0..replicas-1 are placed on nodes (agent/placement). A node keeps,
// for each ordinal placed on it, one running replica of the App's current template
// (its hash, model::AppTemplateHash). A template change rolls out ordinal by ordinal:
// the rollout window is the first W ordinals (in order) that have no ready replica of
// the current template yet (missing, starting, or still old), W = maxSurge + maxUnavailable (at least 1), computed from
// the cluster-wide view so every node agrees on it. In the window, the first maxSurge
// ordinals start the new replica beside the old one and stop the old once the new is
// ready (no capacity lost); the others replace the old replica at once. Starting a
// missing replica is never held back by the window. A new replica that
// never turns ready keeps its ordinal in the window, so a bad template stops the
// rollout by itself after at most W ordinals, with the old replicas still serving.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "common/model/app.h"

namespace loom::agent {

// One replica as observed: a local container, or another node's registered pod.
struct ReplicaObservation {
  std::string id;    // container ID
  std::string node;
  int ordinal = -1;
  std::string hash;  // the template hash it was started from
  bool running = true;  // for local replicas: the container's process is alive
  bool ready = false;
  absl::Time started;   // local replicas: when it started
};

// How often in a row an ordinal's replica on this node failed (exited, or was
// replaced for failing liveness), and when last: the restart back-off.
struct OrdinalFailures {
  int count = 0;
  absl::Time last;
};

struct ReplicaAction {
  enum class Type {
    kStart,   // start a replica of `ordinal` with the current template
    kRemove,  // stop (grace period) and remove container `id`
    kWait,    // nothing now; `until` is when to look again (back-off)
  };
  Type type = Type::kWait;
  int ordinal = -1;
  std::string id;
  std::string reason;  // for events: "scaled down", "rollout (surge)", "crashed", ...
  absl::Time until;

  friend bool operator==(const ReplicaAction&, const ReplicaAction&) = default;
};

struct ReplicaPlanInput {
  const model::App* app = nullptr;
  std::string hash;  // AppTemplateHash(*app)
  std::string self;  // this node
  // The node of each ordinal (placement); "" where none.
  std::vector<std::string> placement;
  // Every replica of the app on every node; this node's from its runtime.
  std::vector<ReplicaObservation> replicas;
  std::map<int, OrdinalFailures> failures;  // by ordinal, this node's
  absl::Time now;
  absl::Duration backoff_base = absl::Seconds(1);
  absl::Duration backoff_max = absl::Seconds(30);
};

// The rollout window (ordinals) and how many of its first slots surge.
struct RolloutWindow {
  std::vector<int> ordinals;
  int surge = 0;
  bool Contains(int ordinal) const;
  bool Surges(int ordinal) const;  // in the window, among the first `surge`
};
RolloutWindow ComputeRolloutWindow(const ReplicaPlanInput& in);

// This node's actions, in order (removals of what must go first).
std::vector<ReplicaAction> PlanReplicas(const ReplicaPlanInput& in);

// The back-off before restarting an ordinal that failed `failures` times in a row
// (base, 2 x base, 4 x base, ... up to max). A replica's first exit restarts at once.
absl::Duration RestartBackoff(int failures, absl::Duration base, absl::Duration max);

}  // namespace loom::agent
