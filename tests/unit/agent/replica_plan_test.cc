// Replica plans: starting, scaling, restarts with back-off, moves between nodes, and
// rolling updates that honour maxSurge/maxUnavailable when every node decides on the
// same cluster view at once.
#include "agent/apps/replica_plan.h"

#include <map>

#include "common/strings.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace loom::agent {
namespace {

using Type = ReplicaAction::Type;

model::App MakeApp(int replicas, model::IntOrPercent surge, model::IntOrPercent unavailable) {
  model::App app;
  app.meta.name = "web";
  app.replicas = replicas;
  app.image = "web:1";
  app.max_surge = surge;
  app.max_unavailable = unavailable;
  return app;
}

ReplicaObservation Rep(std::string id, std::string node, int ordinal, std::string hash,
                       bool ready, bool running = true) {
  ReplicaObservation r;
  r.id = std::move(id);
  r.node = std::move(node);
  r.ordinal = ordinal;
  r.hash = std::move(hash);
  r.ready = ready;
  r.running = running;
  return r;
}

std::vector<std::pair<Type, int>> Summary(const std::vector<ReplicaAction>& actions) {
  std::vector<std::pair<Type, int>> out;
  for (const ReplicaAction& a : actions) out.push_back({a.type, a.ordinal});
  return out;
}

class PlanTest : public ::testing::Test {
 protected:
  ReplicaPlanInput Input(const model::App& app, std::vector<std::string> placement,
                         std::vector<ReplicaObservation> replicas, std::string self = "n1") {
    ReplicaPlanInput in;
    in.app = &app;
    in.hash = "new";
    in.self = std::move(self);
    in.placement = std::move(placement);
    in.replicas = std::move(replicas);
    in.now = absl::FromUnixSeconds(1000);
    return in;
  }
};

TEST_F(PlanTest, StartsTheOrdinalsPlacedHere) {
  model::App app = MakeApp(3, {1, false}, {0, false});
  auto actions = PlanReplicas(Input(app, {"n1", "n2", "n1"}, {}));
  EXPECT_THAT(Summary(actions),
              ::testing::ElementsAre(std::pair{Type::kStart, 0}, std::pair{Type::kStart, 2}));
  // Starting missing replicas is not held back by the rollout window (width 1 here).
}

TEST_F(PlanTest, ScaledDownReplicasGoAndDuplicatesToo) {
  model::App app = MakeApp(1, {1, false}, {0, false});
  auto actions = PlanReplicas(Input(app, {"n1"},
                                    {Rep("a", "n1", 0, "new", true), Rep("b", "n1", 0, "new", false),
                                     Rep("c", "n1", 1, "new", true)}));
  ASSERT_EQ(actions.size(), 2u);
  EXPECT_EQ(actions[0].id, "c");
  EXPECT_EQ(actions[0].reason, "scaled down");
  EXPECT_EQ(actions[1].id, "b");  // the ready one stays
  EXPECT_EQ(actions[1].reason, "duplicate");
}

TEST_F(PlanTest, ExitedReplicasRestartWithBackoff) {
  model::App app = MakeApp(1, {1, false}, {0, false});
  ReplicaPlanInput in = Input(app, {"n1"}, {Rep("a", "n1", 0, "new", false, /*running=*/false)});
  EXPECT_THAT(Summary(PlanReplicas(in)),
              ::testing::ElementsAre(std::pair{Type::kRemove, 0}, std::pair{Type::kStart, 0}));
  in.replicas.clear();
  in.failures[0] = {3, in.now - absl::Seconds(1)};  // back-off 4 s
  auto actions = PlanReplicas(in);
  ASSERT_EQ(actions.size(), 1u);
  EXPECT_EQ(actions[0].type, Type::kWait);
  EXPECT_EQ(actions[0].until, in.now + absl::Seconds(3));
  in.now += absl::Seconds(3);
  actions = PlanReplicas(in);
  ASSERT_EQ(actions.size(), 1u);
  EXPECT_EQ(actions[0].type, Type::kStart);
  EXPECT_EQ(actions[0].reason, "restart after failure");
  EXPECT_EQ(RestartBackoff(1, absl::Seconds(1), absl::Seconds(30)), absl::Seconds(1));
  EXPECT_EQ(RestartBackoff(10, absl::Seconds(1), absl::Seconds(30)), absl::Seconds(30));
}

TEST_F(PlanTest, AMovedReplicaIsHandedOverOnceReadyOnItsNewNode) {
  model::App app = MakeApp(2, {1, false}, {0, false});
  // Ordinal 1 now belongs to n2; n1 keeps it until n2's is ready.
  std::vector<ReplicaObservation> reps = {Rep("a", "n1", 0, "new", true),
                                          Rep("b", "n1", 1, "new", true)};
  EXPECT_TRUE(PlanReplicas(Input(app, {"n1", "n2"}, reps)).empty());
  auto on_n2 = PlanReplicas(Input(app, {"n1", "n2"}, reps, "n2"));
  EXPECT_THAT(Summary(on_n2), ::testing::ElementsAre(std::pair{Type::kStart, 1}));
  EXPECT_EQ(on_n2[0].reason, "moved here");
  reps.push_back(Rep("c", "n2", 1, "new", true));
  auto handed = PlanReplicas(Input(app, {"n1", "n2"}, reps));
  ASSERT_EQ(handed.size(), 1u);
  EXPECT_EQ(handed[0].id, "b");
}

TEST_F(PlanTest, ABadTemplateStopsTheRolloutByItself) {
  model::App app = MakeApp(4, {1, false}, {0, false});
  std::vector<ReplicaObservation> reps;
  for (int o = 0; o < 4; ++o) reps.push_back(Rep(StrCat("old", o), "n1", o, "old", true));
  EXPECT_THAT(Summary(PlanReplicas(Input(app, {"n1", "n1", "n1", "n1"}, reps))),
              ::testing::ElementsAre(std::pair{Type::kStart, 0}));
  // The new replica of ordinal 0 never turns ready: nothing else moves, the old
  // replicas keep serving.
  reps.push_back(Rep("new0", "n1", 0, "new", false));
  EXPECT_TRUE(PlanReplicas(Input(app, {"n1", "n1", "n1", "n1"}, reps)).empty());
  RolloutWindow w = ComputeRolloutWindow(Input(app, {"n1", "n1", "n1", "n1"}, reps));
  EXPECT_THAT(w.ordinals, ::testing::ElementsAre(0));
}

// Every node plans on the same snapshot and all actions are applied at once (the
// worst case of agents acting together); replicas started in one round are ready in
// the next. Throughout: at least replicas - maxUnavailable ready, at most
// replicas + maxSurge running; at the end only the new template, all ready.
void SimulateRollout(int replicas, model::IntOrPercent surge, model::IntOrPercent unavailable) {
  SCOPED_TRACE(StrCat(replicas, " replicas, surge ", surge.value, surge.percent ? "%" : "",
                      ", unavailable ", unavailable.value, unavailable.percent ? "%" : ""));
  model::App app = MakeApp(replicas, surge, unavailable);
  const std::vector<std::string> nodes = {"n1", "n2", "n3"};
  std::vector<std::string> placement;
  for (int o = 0; o < replicas; ++o) placement.push_back(nodes[o % 3]);
  std::vector<ReplicaObservation> reps;
  for (int o = 0; o < replicas; ++o) reps.push_back(Rep(StrCat("old", o), placement[o], o, "old", true));
  const int max_unavailable = unavailable.Resolve(replicas, false);
  const int max_surge = surge.Resolve(replicas, true);
  int next_id = 0;
  for (int round = 0; round < 200; ++round) {
    for (ReplicaObservation& r : reps) r.ready = r.running;  // last round's starts are ready
    std::vector<ReplicaAction> all;
    for (const std::string& node : nodes) {
      ReplicaPlanInput in;
      in.app = &app;
      in.hash = "new";
      in.self = node;
      in.placement = placement;
      in.replicas = reps;
      in.now = absl::FromUnixSeconds(1000 + round);
      for (ReplicaAction& a : PlanReplicas(in)) all.push_back(std::move(a));
    }
    if (all.empty()) break;
    for (const ReplicaAction& a : all) {
      if (a.type == Type::kRemove) {
        std::erase_if(reps, [&](const ReplicaObservation& r) { return r.id == a.id; });
      } else if (a.type == Type::kStart) {
        reps.push_back(Rep(StrCat("new", next_id++), placement[a.ordinal], a.ordinal, "new", false));
      }
    }
    int ready = 0;
    for (const ReplicaObservation& r : reps) ready += r.ready ? 1 : 0;
    ASSERT_GE(ready, replicas - max_unavailable) << "round " << round;
    ASSERT_LE(static_cast<int>(reps.size()), replicas + max_surge) << "round " << round;
  }
  ASSERT_EQ(static_cast<int>(reps.size()), replicas);
  for (const ReplicaObservation& r : reps) EXPECT_EQ(r.hash, "new");
}

TEST(RolloutSimulation, HonoursSurgeAndUnavailableAcrossNodes) {
  SimulateRollout(6, {1, false}, {0, false});
  SimulateRollout(6, {0, false}, {1, false});
  SimulateRollout(6, {2, false}, {1, false});
  SimulateRollout(10, {25, true}, {25, true});
  SimulateRollout(1, {1, false}, {0, false});
  SimulateRollout(7, {0, false}, {3, false});
}

}  // namespace
}  // namespace loom::agent
