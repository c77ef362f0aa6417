#include "agent/daemon/node_health.h"

#include "absl/time/clock.h"
#include "agent/daemon/node_registrar.h"
#include "common/log.h"
#include "common/status.h"
#include "common/strings.h"

namespace loom::agent {

Json ComponentHealth(const std::string& state, const std::string& detail) {
  Json j = {{"state", state}};
  if (!detail.empty()) j["detail"] = detail;
  return j;
}

NodeHealthPublisher::NodeHealthPublisher(store::Store* store, std::string node,
                                         std::function<Json()> collect,
                                         std::function<store::LeaseId()> lease, absl::Duration period)
    : store_(store),
      key_(StrCat(kNodeStatusPrefix, node)),
      collect_(std::move(collect)),
      lease_(std::move(lease)),
      period_(period) {}

NodeHealthPublisher::~NodeHealthPublisher() { Stop(); }

absl::Status NodeHealthPublisher::PublishOnce() {
  Json components = collect_();
  store::LeaseId lease = lease_();
  if (lease == store::kNoLease) return absl::UnavailableError("the node has no lease yet");
  if (components == last_ && lease == last_lease_) return absl::OkStatus();
  Json j = {{"node", key_.substr(sizeof(kNodeStatusPrefix) - 1)},
            {"components", components},
            {"since", FormatRfc3339(absl::Now())}};
  RETURN_IF_ERROR(store_->Put(key_, j.dump(), lease).status());
  last_ = std::move(components);
  last_lease_ = lease;
  return absl::OkStatus();
}

void NodeHealthPublisher::Start() {
  thread_ = std::thread([this] {
    std::unique_lock<std::mutex> lock(mu_);
    while (!stop_) {
      lock.unlock();
      if (absl::Status s = PublishOnce(); !s.ok()) {
        LOG_DEBUG("cannot publish this node's health", {"error", s});
      }
      lock.lock();
      cv_.wait_for(lock, absl::ToChronoMilliseconds(period_), [this] { return stop_; });
    }
  });
}

void NodeHealthPublisher::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

absl::StatusOr<Json> ClusterHealth(store::Store* store) {
  ASSIGN_OR_RETURN(store::RangeResult nodes, store->Range(kNodesPrefix));
  ASSIGN_OR_RETURN(store::RangeResult health, store->Range(kNodeStatusPrefix));
  std::map<std::string, Json> by_node;
  for (const store::KeyValue& kv : nodes.kvs) {
    std::string name = kv.key.substr(kNodesPrefix.size());
    by_node[name] = {{"node", name}, {"components", Json::object()}};
  }
  for (const store::KeyValue& kv : health.kvs) {
    std::string name = kv.key.substr(sizeof(kNodeStatusPrefix) - 1);
    auto it = by_node.find(name);
    absl::StatusOr<Json> j = ParseJson(kv.value);
    if (it == by_node.end() || !j.ok() || !j->is_object()) continue;
    it->second["components"] = j->value("components", Json::object());
    it->second["since"] = j->value("since", "");
  }
  Json out = Json::array();
  for (auto& [name, j] : by_node) out.push_back(std::move(j));
  return out;
}

}  // namespace loom::agent
