// Every node's component health in the store, for `loomctl status` on any node: each
// loomd publishes /loom/nodestatus/<node> = {"components": {store, overlay, dns, lb,
// ingress, runtime: {"state": ok|degraded|down|off, "detail": "..."}}, "since": time of
// the last change}, on its node lease (a lost node's entry goes with its lease). It is
// written only when something changed (checked every `period`), so nothing watches a
// stream of heartbeats.
#pragma once

#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "agent/store/store.h"
#include "common/json.h"

namespace loom::agent {

inline constexpr char kNodeStatusPrefix[] = "/loom/nodestatus/";

// {"state": state, "detail": detail}
Json ComponentHealth(const std::string& state, const std::string& detail = "");

class NodeHealthPublisher {
 public:
  // `collect` returns the components object; `lease` the node's current lease.
  NodeHealthPublisher(store::Store* store, std::string node, std::function<Json()> collect,
                      std::function<store::LeaseId()> lease, absl::Duration period = absl::Seconds(2));
  ~NodeHealthPublisher();

  void Start();
  void Stop();
  // One check (and write when changed); for tests.
  absl::Status PublishOnce();

 private:
  store::Store* const store_;
  const std::string key_;
  const std::function<Json()> collect_;
  const std::function<store::LeaseId()> lease_;
  const absl::Duration period_;
  Json last_;
  store::LeaseId last_lease_ = store::kNoLease;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

// Every live node's published health: [{"node", "components", "since"}], by name.
absl::StatusOr<Json> ClusterHealth(store::Store* store);

}  // namespace loom::agent
