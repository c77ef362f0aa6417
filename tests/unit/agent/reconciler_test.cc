// The reconciler on two nodes with fake runtimes sharing one cluster view: starting,
// readiness gating, exits with back-off, liveness replacement, rolling updates,
// deletion and a lost node.
#include "agent/apps/reconciler.h"

#include <map>

#include "common/strings.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace loom::agent {
namespace {

class FakeRuntime : public ReplicaRuntime {
 public:
  explicit FakeRuntime(std::string node, absl::Time* clock) : node_(std::move(node)), clock_(clock) {}

  absl::StatusOr<std::vector<LocalReplica>> List() override {
    std::vector<LocalReplica> out;
    for (const auto& [id, r] : replicas) out.push_back(r);
    return out;
  }
  absl::StatusOr<LocalReplica> Start(const ReplicaStart& spec) override {
    if (fail_starts) return absl::InternalError("image not found");
    LocalReplica r;
    r.id = StrCat(node_, "-c", ++next_);
    r.labels = spec.labels;
    r.running = true;
    r.started = *clock_;
    r.ip = StrCat("10.244.0.", next_);
    replicas[r.id] = r;
    ready[r.id] = false;  // registered not ready
    images[r.id] = spec.app->image;
    ++starts;
    return r;
  }
  absl::Status Remove(const std::string& id, absl::Duration grace) override {
    removed_ready[id] = ready[id];
    graces[id] = grace;
    replicas.erase(id);
    ready.erase(id);
    ++removes;
    return absl::OkStatus();
  }
  absl::StatusOr<int> Exec(const std::string& id, const std::vector<std::string>&,
                           absl::Duration) override {
    return images[id] == "bad" || unhealthy.contains(id) ? 1 : 0;
  }
  absl::Status SetReady(const std::string& id, bool r) override {
    if (!replicas.contains(id)) return absl::NotFoundError("no pod");
    ready[id] = r;
    return absl::OkStatus();
  }

  std::map<std::string, LocalReplica> replicas;
  std::map<std::string, bool> ready;
  std::map<std::string, std::string> images;
  std::set<std::string> unhealthy;
  std::map<std::string, bool> removed_ready;  // the pod's ready flag when it was removed
  std::map<std::string, absl::Duration> graces;
  bool fail_starts = false;
  int starts = 0, removes = 0;

 private:
  std::string node_;
  absl::Time* clock_;
  int next_ = 0;
};

class ReconcilerTest : public ::testing::Test {
 protected:
  ReconcilerTest() {
    for (std::string n : {"n1", "n2"}) {
      runtimes_[n] = std::make_unique<FakeRuntime>(n, &now_);
      ReconcilerOptions o;
      o.node = n;
      reconcilers_[n] = std::make_unique<Reconciler>(o, runtimes_[n].get());
    }
    nodes_ = {{"n1", 0, 0}, {"n2", 0, 0}};
  }

  model::App App(int replicas, std::string image) {
    model::App app;
    app.meta.name = "web";
    app.meta.labels = {{"app", "web"}};
    app.replicas = replicas;
    app.image = std::move(image);
    app.max_surge = {1, false};
    app.max_unavailable = {0, false};
    model::Probe p;
    p.kind = model::Probe::Kind::kExec;
    p.command = {"true"};
    p.period_seconds = 1;
    p.success_threshold = 1;
    p.failure_threshold = 2;
    app.readiness = p;
    return app;
  }

  ClusterView View() {
    ClusterView v;
    v.apps = apps_;
    v.nodes = nodes_;
    for (const auto& [node, rt] : runtimes_) {
      for (const auto& [id, r] : rt->replicas) {
        model::Pod pod;
        pod.id = id;
        pod.node = node;
        pod.meta.labels = r.labels;
        pod.ready = rt->ready[id];
        v.pods.push_back(pod);
      }
    }
    return v;
  }

  // One pass on every live node, then the clock moves on.
  void Round(absl::Duration step = absl::Seconds(1)) {
    for (const PlacementNode& n : nodes_) reconcilers_[n.name]->Pass(View(), now_);
    now_ += step;
  }

  int Count(const std::string& node, const std::string& image = "", bool only_ready = false) {
    int n = 0;
    for (const auto& [id, r] : runtimes_[node]->replicas) {
      if (!image.empty() && runtimes_[node]->images[id] != image) continue;
      if (only_ready && !runtimes_[node]->ready[id]) continue;
      ++n;
    }
    return n;
  }
  int Total(const std::string& image = "", bool only_ready = false) {
    return Count("n1", image, only_ready) + Count("n2", image, only_ready);
  }

  absl::Time now_ = absl::FromUnixSeconds(1000);
  std::map<std::string, std::unique_ptr<FakeRuntime>> runtimes_;
  std::map<std::string, std::unique_ptr<Reconciler>> reconcilers_;
  std::vector<PlacementNode> nodes_;
  std::vector<model::App> apps_;
};

TEST_F(ReconcilerTest, StartsSpreadAndTurnsReadyOnlyAfterTheProbe) {
  apps_ = {App(4, "web:1")};
  Round(absl::Milliseconds(10));
  EXPECT_EQ(Count("n1"), 2);
  EXPECT_EQ(Count("n2"), 2);
  EXPECT_EQ(Total("", true), 0);  // registered not ready
  for (const auto& [id, r] : runtimes_["n1"]->replicas) {
    EXPECT_EQ(r.labels.at(kAppLabel), "web");
    EXPECT_EQ(r.labels.at("app"), "web");
    EXPECT_EQ(r.labels.at(kHashLabel), model::AppTemplateHash(apps_[0]));
  }
  Round();
  EXPECT_EQ(Total("", true), 4);
  // Level-triggered: more passes change nothing.
  int starts = runtimes_["n1"]->starts + runtimes_["n2"]->starts;
  Round();
  Round();
  EXPECT_EQ(runtimes_["n1"]->starts + runtimes_["n2"]->starts, starts);
  bool saw_ready = false;
  for (const AppEvent& e : reconcilers_["n1"]->TakeEvents()) saw_ready |= e.reason == "Ready";
  EXPECT_TRUE(saw_ready);
}

TEST_F(ReconcilerTest, ExitedReplicasRestartWithGrowingBackoff) {
  apps_ = {App(1, "web:1")};
  Round();
  ASSERT_EQ(Total(), 1);
  std::string node = Count("n1") == 1 ? "n1" : "n2";
  // The first exit restarts at once (within the 2 s the acceptance asks for).
  runtimes_[node]->replicas.begin()->second.running = false;
  runtimes_[node]->replicas.begin()->second.exit_code = 3;
  reconcilers_[node]->Pass(View(), now_);
  EXPECT_EQ(Total(), 1);
  for (int crash = 2; crash <= 4; ++crash) {
    auto& r = runtimes_[node]->replicas.begin()->second;
    r.running = false;
    r.exit_code = 3;
    reconcilers_[node]->Pass(View(), now_);  // removed; restart waits for the back-off
    EXPECT_EQ(Total(), 0) << crash;
    absl::Duration backoff = RestartBackoff(crash, absl::Seconds(1), absl::Seconds(30));
    EXPECT_EQ(backoff, absl::Seconds(1 << (crash - 1)));
    reconcilers_[node]->Pass(View(), now_ + backoff - absl::Milliseconds(1));
    EXPECT_EQ(Total(), 0) << crash;
    now_ += backoff;
    reconcilers_[node]->Pass(View(), now_);
    EXPECT_EQ(Total(), 1) << crash;
  }
  bool exited = false;
  for (const AppEvent& e : reconcilers_[node]->TakeEvents()) {
    if (e.reason == "Exited") {
      exited = true;
      EXPECT_THAT(e.message, ::testing::HasSubstr("exited with code 3"));
    }
  }
  EXPECT_TRUE(exited);
}

TEST_F(ReconcilerTest, FailingLivenessIsReplaced) {
  model::App app = App(1, "web:1");
  model::Probe live = *app.readiness;
  live.failure_threshold = 2;
  app.liveness = live;
  apps_ = {app};
  Round();
  Round();
  std::string node = Count("n1") == 1 ? "n1" : "n2";
  std::string id = runtimes_[node]->replicas.begin()->first;
  runtimes_[node]->unhealthy.insert(id);
  Round();
  EXPECT_TRUE(runtimes_[node]->replicas.contains(id));  // one failure
  Round();  // the second: replaced
  EXPECT_FALSE(runtimes_[node]->replicas.contains(id));
  Round(absl::Seconds(2));
  Round();
  EXPECT_EQ(Total("web:1", true), 1);
}

TEST_F(ReconcilerTest, RollingUpdateKeepsEveryReplicaServingAndABadImageStops) {
  apps_ = {App(4, "web:1")};
  Round();
  Round();
  ASSERT_EQ(Total("web:1", true), 4);
  apps_ = {App(4, "web:2")};
  for (int i = 0; i < 30 && Total("web:2", true) < 4; ++i) {
    Round();
    EXPECT_GE(Total("", true), 4) << "round " << i;  // maxUnavailable 0
    EXPECT_LE(Total("", true), 5) << "round " << i;  // maxSurge 1
  }
  Round(absl::Seconds(3));  // the last old replica drains
  Round();
  EXPECT_EQ(Total("web:2", true), 4);
  EXPECT_EQ(Total(), 4);

  // A bad image: one surge replica never turns ready, the rest stay on web:2.
  apps_ = {App(4, "bad")};
  for (int i = 0; i < 10; ++i) Round();
  EXPECT_EQ(Total("web:2", true), 4);
  EXPECT_EQ(Total("bad"), 1);
  EXPECT_EQ(Total("bad", true), 0);
  // Undo (the old template again): the bad replica goes, nothing else moves.
  apps_ = {App(4, "web:2")};
  Round();
  Round();
  EXPECT_EQ(Total("bad"), 0);
  EXPECT_EQ(Total("web:2", true), 4);
}

TEST_F(ReconcilerTest, DeletedAppsAreRemovedAndALostNodesReplicasMove) {
  apps_ = {App(4, "web:1")};
  Round();
  Round();
  ASSERT_EQ(Count("n2"), 2);
  // n2 is gone (its lease expired): n1 runs all four.
  nodes_ = {{"n1", 0, 0}};
  Round();
  Round();
  EXPECT_EQ(Count("n1", "", true), 4);
  apps_.clear();
  Round();
  EXPECT_EQ(Count("n1", "", true), 0);  // out of the endpoints at once...
  EXPECT_EQ(Count("n1"), 4);            // ...and draining
  Round(absl::Seconds(2));
  Round();
  EXPECT_EQ(Count("n1"), 0);
}

TEST_F(ReconcilerTest, RemovedReplicasDrainOutOfTheEndpointsBeforeTheyStop) {
  model::App app = App(4, "web:1");
  app.drain_seconds = 5;
  app.termination_grace_seconds = 7;
  apps_ = {app};
  Round();
  Round();
  ASSERT_EQ(Total("", true), 4);
  app.replicas = 2;
  apps_ = {app};
  Round(absl::Seconds(1));
  EXPECT_EQ(Total("", true), 2);  // the two surplus ones left the endpoints...
  EXPECT_GE(Total(), 4);          // ...but keep running while connections drain
  for (int i = 0; i < 4; ++i) {
    Round();
    EXPECT_GE(Total(), 4);
    EXPECT_GE(Total("", true), 2);
  }
  // 5 s after: stopped, with the App's grace period (a replica that moved to the
  // other node meanwhile drains 5 s after its replacement turned ready).
  for (int i = 0; i < 6; ++i) Round();
  EXPECT_EQ(Total(), 2);
  for (const auto& [node, rt] : runtimes_) {
    for (const auto& [id, was_ready] : rt->removed_ready) {
      EXPECT_FALSE(was_ready) << id << " was removed while still in the endpoints";
      EXPECT_EQ(rt->graces[id], absl::Seconds(7));
    }
  }
  // Not restarted or re-probed ready meanwhile.
  EXPECT_EQ(Total("", true), 2);
  bool drained = false;
  for (const AppEvent& e : reconcilers_["n1"]->TakeEvents()) {
    drained |= e.reason == "Removed" && e.message.find("scaled down (drained)") != std::string::npos;
  }
  for (const AppEvent& e : reconcilers_["n2"]->TakeEvents()) {
    drained |= e.reason == "Removed" && e.message.find("scaled down (drained)") != std::string::npos;
  }
  EXPECT_TRUE(drained);
}

TEST_F(ReconcilerTest, ReadinessIsReassertedOnThePodRecordAndSurvivesARestart) {
  apps_ = {App(2, "web:1")};
  Round();
  Round();
  ASSERT_EQ(Total("", true), 2);
  // Another agent marked the pods not ready (their node's lease had expired); the
  // node is back: the next pass writes the records again.
  for (auto& [node, rt] : runtimes_) {
    for (auto& [id, ready] : rt->ready) ready = false;
  }
  Round();
  EXPECT_EQ(Total("", true), 2);
  // loomd restarts (a new reconciler): replicas found ready stay ready from the
  // first pass, before any probe ran, and nothing is restarted.
  int starts = runtimes_["n1"]->starts + runtimes_["n2"]->starts;
  for (std::string n : {"n1", "n2"}) {
    ReconcilerOptions o;
    o.node = n;
    reconcilers_[n] = std::make_unique<Reconciler>(o, runtimes_[n].get());
  }
  runtimes_["n1"]->unhealthy.clear();
  for (const PlacementNode& n : nodes_) {
    reconcilers_[n.name]->Pass(View(), now_);
    EXPECT_EQ(Total("", true), 2);
  }
  EXPECT_EQ(runtimes_["n1"]->starts + runtimes_["n2"]->starts, starts);
}

TEST_F(ReconcilerTest, FailedStartsAreRetriedWithBackoff) {
  runtimes_["n1"]->fail_starts = true;
  runtimes_["n2"]->fail_starts = true;
  apps_ = {App(2, "web:1")};
  Round(absl::Milliseconds(100));
  EXPECT_EQ(Total(), 0);
  bool failed = false;
  for (const AppEvent& e : reconcilers_["n1"]->TakeEvents()) failed |= e.reason == "FailedStart";
  EXPECT_TRUE(failed);
  runtimes_["n1"]->fail_starts = false;
  runtimes_["n2"]->fail_starts = false;
  Round(absl::Milliseconds(100));
  EXPECT_EQ(Total(), 0);  // still backing off (1 s)
  Round(absl::Seconds(1));
  Round();
  EXPECT_EQ(Total(), 2);
}

}  // namespace
}  // namespace loom::agent
