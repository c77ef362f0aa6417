#include "agent/placement/placement.h"

#include <algorithm>

namespace loom::agent {
namespace {

uint64_t Mix(uint64_t x) {  // splitmix64's finalizer
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  x ^= x >> 31;
  return x;
}

uint64_t Fnv(uint64_t h, const std::string& s) {
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  h ^= 0xff;  // a separator no name contains
  h *= 1099511628211ull;
  return h;
}

}  // namespace

uint64_t PlacementScore(const std::string& app, int ordinal, const std::string& node) {
  uint64_t h = Fnv(14695981039346656037ull, app);
  h = Fnv(h, std::to_string(ordinal));
  h = Fnv(h, node);
  return Mix(h);
}

std::vector<int> Placement::OrdinalsOn(const std::string& app, const std::string& node) const {
  std::vector<int> out;
  auto it = nodes.find(app);
  if (it == nodes.end()) return out;
  for (size_t i = 0; i < it->second.size(); ++i) {
    if (it->second[i] == node) out.push_back(static_cast<int>(i));
  }
  return out;
}

int Placement::Unplaced() const {
  int n = 0;
  for (const auto& [app, ordinals] : nodes) {
    n += static_cast<int>(std::count(ordinals.begin(), ordinals.end(), std::string()));
  }
  return n;
}

Placement Place(std::vector<PlacementNode> nodes, std::vector<PlacementApp> apps) {
  std::sort(nodes.begin(), nodes.end(),
            [](const PlacementNode& a, const PlacementNode& b) { return a.name < b.name; });
  std::sort(apps.begin(), apps.end(),
            [](const PlacementApp& a, const PlacementApp& b) { return a.key < b.key; });
  struct Room {
    double cpus;
    int64_t memory;
  };
  std::vector<Room> room;
  for (const PlacementNode& n : nodes) room.push_back({n.cpus, n.memory_bytes});
  auto fits = [&](size_t n, const PlacementApp& app) {
    return (nodes[n].cpus <= 0 || room[n].cpus + 1e-9 >= app.cpus) &&
           (nodes[n].memory_bytes <= 0 || room[n].memory >= app.memory_bytes);
  };

  Placement out;
  for (const PlacementApp& app : apps) {
    std::vector<std::string>& placed = out.nodes[app.key];
    placed.assign(std::max(app.replicas, 0), "");
    if (nodes.empty()) continue;
    const int cap = (app.replicas + static_cast<int>(nodes.size()) - 1) / static_cast<int>(nodes.size());
    std::vector<int> count(nodes.size(), 0);
    for (int i = 0; i < app.replicas; ++i) {
      // The best-scoring node under the cap; failing that (capacity elsewhere ran
      // out), the best-scoring node with room, fewest of this app first.
      int best = -1;
      uint64_t best_score = 0;
      for (int relaxed = 0; relaxed < 2 && best < 0; ++relaxed) {
        for (size_t n = 0; n < nodes.size(); ++n) {
          if (!fits(n, app) || (!relaxed && count[n] >= cap)) continue;
          uint64_t score = PlacementScore(app.key, i, nodes[n].name);
          bool better;
          if (best < 0) {
            better = true;
          } else if (relaxed && count[n] != count[best]) {
            better = count[n] < count[best];
          } else {
            better = score > best_score;
          }
          if (!better) continue;
          best = static_cast<int>(n);
          best_score = score;
        }
      }
      if (best < 0) continue;
      placed[i] = nodes[best].name;
      ++count[best];
      room[best].cpus -= app.cpus;
      room[best].memory -= app.memory_bytes;
    }
  }
  return out;
}

}  // namespace loom::agent
