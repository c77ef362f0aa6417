// Placement: deterministic, spread, capacity-bound, and what a lost node changes.
#include "agent/placement/placement.h"

#include <map>
#include <random>

#include "common/strings.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace loom::agent {
namespace {

std::vector<PlacementNode> Nodes(int n, double cpus = 0) {
  std::vector<PlacementNode> out;
  for (int i = 1; i <= n; ++i) out.push_back({StrCat("node", i), cpus, 0});
  return out;
}

std::map<std::string, int> PerNode(const std::vector<std::string>& placed) {
  std::map<std::string, int> out;
  for (const std::string& n : placed) ++out[n];
  return out;
}

TEST(PlacementTest, SameAnswerWhateverTheInputOrder) {
  std::vector<PlacementNode> nodes = Nodes(5, 4);
  std::vector<PlacementApp> apps = {{"default/web", 6, 1, 0}, {"default/api", 4, 2, 0},
                                    {"other/db", 3, 1, 0}};
  Placement a = Place(nodes, apps);
  std::reverse(nodes.begin(), nodes.end());
  std::reverse(apps.begin(), apps.end());
  Placement b = Place(nodes, apps);
  EXPECT_EQ(a.nodes, b.nodes);
  EXPECT_EQ(a.Unplaced(), 0);
}

TEST(PlacementTest, ReplicasSpreadEvenly) {
  for (int replicas : {1, 3, 6, 7, 30}) {
    Placement p = Place(Nodes(3), {{"default/web", replicas, 0, 0}});
    std::map<std::string, int> per = PerNode(p.nodes["default/web"]);
    int cap = (replicas + 2) / 3;
    for (const auto& [node, count] : per) {
      EXPECT_NE(node, "");
      EXPECT_LE(count, cap) << replicas << " replicas, " << node;
    }
    if (replicas >= 3) {
      EXPECT_EQ(per.size(), 3u) << replicas;
    }
  }
}

TEST(PlacementTest, DifferentAppsStartOnDifferentNodes) {
  // One replica each: rendezvous spreads the apps themselves over the nodes.
  std::vector<PlacementApp> apps;
  for (int i = 0; i < 300; ++i) apps.push_back({StrCat("default/app", i), 1, 0, 0});
  Placement p = Place(Nodes(3), apps);
  std::map<std::string, int> per;
  for (const auto& [app, placed] : p.nodes) ++per[placed[0]];
  ASSERT_EQ(per.size(), 3u);
  for (const auto& [node, count] : per) EXPECT_NEAR(count, 100, 30) << node;
}

TEST(PlacementTest, CapacityIsRespectedAndWhatDoesNotFitIsUnplaced) {
  // 3 nodes x 2 CPUs; 5 replicas of 1 CPU, then an app of 2 CPUs per replica.
  Placement p = Place(Nodes(3, 2), {{"a/small", 5, 1, 0}, {"b/big", 2, 2, 0}});
  std::map<std::string, double> used;
  for (const std::string& n : p.nodes["a/small"]) used[n] += 1;
  for (const std::string& n : p.nodes["b/big"]) {
    if (!n.empty()) used[n] += 2;
  }
  for (const auto& [node, cpus] : used) EXPECT_LE(cpus, 2) << node;
  EXPECT_EQ(PerNode(p.nodes["a/small"]).count(""), 0u);
  // 6 CPUs in all, 5 taken: one big replica cannot fit anywhere.
  EXPECT_EQ(p.Unplaced(), 2);
  // Memory works the same way.
  std::vector<PlacementNode> nodes = {{"n1", 0, 100}, {"n2", 0, 100}};
  Placement m = Place(nodes, {{"a/mem", 3, 0, 60}});
  EXPECT_EQ(m.Unplaced(), 1);
}

TEST(PlacementTest, ALostNodesReplicasMoveToTheOthers) {
  std::mt19937 rng(3);
  int moved_from_survivors = 0, total_survivor_replicas = 0;
  for (int trial = 0; trial < 50; ++trial) {
    std::string app = StrCat("default/app", rng());
    Placement before = Place(Nodes(4), {{app, 8, 0, 0}});
    std::string lost = StrCat("node", 1 + rng() % 4);
    std::vector<PlacementNode> rest;
    for (const PlacementNode& n : Nodes(4)) {
      if (n.name != lost) rest.push_back(n);
    }
    Placement after = Place(rest, {{app, 8, 0, 0}});
    EXPECT_EQ(after.Unplaced(), 0);
    for (int i = 0; i < 8; ++i) {
      EXPECT_NE(after.nodes[app][i], lost);
      if (before.nodes[app][i] == lost) continue;
      ++total_survivor_replicas;
      if (after.nodes[app][i] != before.nodes[app][i]) ++moved_from_survivors;
    }
    for (const auto& [node, count] : PerNode(after.nodes[app])) EXPECT_LE(count, 3);
  }
  // Most replicas on surviving nodes stay where they are.
  EXPECT_LT(moved_from_survivors, total_survivor_replicas / 4)
      << moved_from_survivors << " of " << total_survivor_replicas << " moved";
}

TEST(PlacementTest, NoNodesNothingPlaced) {
  Placement p = Place({}, {{"default/web", 2, 0, 0}});
  EXPECT_EQ(p.Unplaced(), 2);
  EXPECT_TRUE(p.OrdinalsOn("default/web", "node1").empty());
}

}  // namespace
}  // namespace loom::agent
