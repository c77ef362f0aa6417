// The pod record another node's agent would write for a container: for tests and
// benchmarks that put pods straight into the store (key /loom/pods/<node>/c-<name>).
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "common/model/objects.h"

namespace loom::testing {

inline model::Pod TestPod(const std::string& name, const std::string& app, std::vector<std::string> ips,
                          bool ready, const std::string& node = "node1") {
  model::Pod pod;
  pod.meta.name = name;
  pod.meta.labels = {{"app", app}};
  pod.id = "c-" + name;
  pod.node = node;
  pod.ips = std::move(ips);
  pod.ready = ready;
  return pod;
}

inline std::string TestPodKey(const model::Pod& pod) { return "/loom/pods/" + pod.node + "/" + pod.id; }

}  // namespace loom::testing
