// Placement of App replicas on nodes, agreed by every agent without a scheduler: each
// computes the same answer from the same inputs (the live nodes and the apps from the
// store), so a node starts exactly the replicas placed on it.
//
// Replica `i` of an app goes to the node with the highest rendezvous score
// hash(app, i, node) among the nodes that have room for it and hold fewer than
// ceil(replicas / nodes) of the app's replicas, so replicas spread evenly and a node
// that leaves takes with it only what it ran (plus the few that rebalancing moves when
// the per-node cap grows). Apps are placed in key order, each consuming capacity, so
// capacity decisions are the same everywhere too.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace loom::agent {

struct PlacementNode {
  std::string name;
  double cpus = 0;           // capacity; 0: unlimited
  int64_t memory_bytes = 0;  // capacity; 0: unlimited
};

struct PlacementApp {
  std::string key;  // "ns/name"
  int replicas = 0;
  double cpus = 0;           // per replica
  int64_t memory_bytes = 0;  // per replica
};

struct Placement {
  // app key -> node of each replica ordinal; "" where no node has room.
  std::map<std::string, std::vector<std::string>> nodes;
  // The ordinals of `app` placed on `node`.
  std::vector<int> OrdinalsOn(const std::string& app, const std::string& node) const;
  int Unplaced() const;
};

Placement Place(std::vector<PlacementNode> nodes, std::vector<PlacementApp> apps);

// The rendezvous score (exposed for tests).
uint64_t PlacementScore(const std::string& app, int ordinal, const std::string& node);

}  // namespace loom::agent
