#include "agent/apps/replica_plan.h"

#include <algorithm>
#include <set>

namespace loom::agent {

bool RolloutWindow::Contains(int ordinal) const {
  return std::find(ordinals.begin(), ordinals.end(), ordinal) != ordinals.end();
}

bool RolloutWindow::Surges(int ordinal) const {
  auto it = std::find(ordinals.begin(), ordinals.end(), ordinal);
  return it != ordinals.end() && it - ordinals.begin() < surge;
}

absl::Duration RestartBackoff(int failures, absl::Duration base, absl::Duration max) {
  if (failures <= 0) return absl::ZeroDuration();
  absl::Duration d = base;
  for (int i = 1; i < failures && d < max; ++i) d *= 2;
  return std::min(d, max);
}

RolloutWindow ComputeRolloutWindow(const ReplicaPlanInput& in) {
  const int replicas = in.app->replicas;
  const int surge = in.app->max_surge.Resolve(replicas, true);
  const int unavailable = in.app->max_unavailable.Resolve(replicas, false);
  const int width = std::max(1, surge + unavailable);
  // An ordinal is pending until a replica of the current template is ready: one
  // that is missing, starting, or still running the old template counts against
  // the window, so unavailable ordinals hold the rollout back as they should.
  std::set<int> updated;
  for (const ReplicaObservation& r : in.replicas) {
    if (r.ordinal < 0 || r.ordinal >= replicas) continue;
    if (r.hash == in.hash && r.ready && r.running) updated.insert(r.ordinal);
  }
  RolloutWindow w;
  w.surge = surge;
  for (int o = 0; o < replicas && static_cast<int>(w.ordinals.size()) < width; ++o) {
    if (!updated.contains(o)) w.ordinals.push_back(o);
  }
  return w;
}

std::vector<ReplicaAction> PlanReplicas(const ReplicaPlanInput& in) {
  using Type = ReplicaAction::Type;
  std::vector<ReplicaAction> removals, starts, waits;
  const int replicas = in.app->replicas;
  const RolloutWindow window = ComputeRolloutWindow(in);

  std::map<int, std::vector<const ReplicaObservation*>> mine;
  std::set<int> ready_anywhere;  // ordinals with a ready replica of any template
  for (const ReplicaObservation& r : in.replicas) {
    if (r.node == in.self) mine[r.ordinal].push_back(&r);
    if (r.ready && r.running) ready_anywhere.insert(r.ordinal);
  }
  auto remove = [&](const ReplicaObservation* r, std::string reason) {
    removals.push_back({Type::kRemove, r->ordinal, r->id, std::move(reason), {}});
  };
  // Keeps the best of `list` (ready first, then the oldest) and removes the rest.
  auto keep_one = [&](std::vector<const ReplicaObservation*>& list, const char* reason) {
    std::sort(list.begin(), list.end(), [](const auto* a, const auto* b) {
      if (a->ready != b->ready) return a->ready;
      if (a->started != b->started) return a->started < b->started;
      return a->id < b->id;
    });
    for (size_t i = 1; i < list.size(); ++i) remove(list[i], reason);
    list.resize(std::min<size_t>(list.size(), 1));
  };

  // Replicas that are not (or no longer) this node's to run.
  for (auto& [ordinal, list] : mine) {
    const bool placed_here = ordinal >= 0 && ordinal < replicas &&
                             ordinal < static_cast<int>(in.placement.size()) &&
                             in.placement[ordinal] == in.self;
    if (placed_here) continue;
    for (const ReplicaObservation* r : list) {
      if (ordinal < 0 || ordinal >= replicas) {
        remove(r, "scaled down");
      } else if (!r->running) {
        remove(r, "exited");
      } else {
        // Moved to another node: handed over once it is ready there.
        const std::string& home =
            ordinal < static_cast<int>(in.placement.size()) ? in.placement[ordinal] : "";
        bool ready_there = false;
        for (const ReplicaObservation& other : in.replicas) {
          if (other.ordinal == ordinal && other.node == home && other.ready) ready_there = true;
        }
        if (ready_there) remove(r, "moved to " + home);
      }
    }
  }

  for (int o = 0; o < replicas && o < static_cast<int>(in.placement.size()); ++o) {
    if (in.placement[o] != in.self) continue;
    std::vector<const ReplicaObservation*> current, old;
    bool exited_now = false;
    for (const ReplicaObservation* r : mine[o]) {
      if (!r->running) {
        remove(r, "exited");
        exited_now = true;
      } else if (r->hash == in.hash) {
        current.push_back(r);
      } else {
        old.push_back(r);
      }
    }
    keep_one(current, "duplicate");
    keep_one(old, "duplicate");
    auto start = [&](std::string reason) {
      // The first exit restarts at once; then the back-off doubles per failure.
      OrdinalFailures f;
      if (auto it = in.failures.find(o); it != in.failures.end()) f = it->second;
      if (exited_now && f.count > 0) {
        ++f.count;
        f.last = in.now;
      }
      if (f.count > 0) {
        absl::Time at = f.last + RestartBackoff(f.count, in.backoff_base, in.backoff_max);
        if (at > in.now) {
          waits.push_back({Type::kWait, o, "", "restart back-off", at});
          return;
        }
      }
      if (exited_now || f.count > 0) reason = "restart after failure";
      starts.push_back({Type::kStart, o, "", std::move(reason), {}});
    };
    if (current.empty() && old.empty()) {
      start(ready_anywhere.contains(o) ? "moved here" : "missing");
    } else if (current.empty()) {
      // Only an old template: replaced when the rollout window reaches it.
      if (!window.Contains(o)) continue;
      if (window.Surges(o)) {
        start("rollout (surge)");
      } else {
        // Old out and new in, in one pass: the ordinal is never seen empty.
        remove(old[0], "rollout");
        start("rollout");
      }
    } else if (!old.empty() && current[0]->ready) {
      remove(old[0], "replaced by the new template");
    }
  }
  std::vector<ReplicaAction> out = std::move(removals);
  out.insert(out.end(), starts.begin(), starts.end());
  out.insert(out.end(), waits.begin(), waits.end());
  return out;
}

}  // namespace loom::agent
