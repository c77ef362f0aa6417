// Registers this node under /loom/nodes/<node> on a lease and keeps the lease alive.
//
// The key is written when the node registers (and again only when the lease was lost),
// not on every renewal: the lease is the liveness signal, and rewriting the key every
// few seconds would wake every watcher of /loom/nodes/ on every node. So "heartbeat"
// is the time of the last registration.
//
// The lease id is kept in a file (<state-dir>/node-lease) so that a restarted loomd
// renews its still-live lease instead of granting a new one: the node key never
// disappears across a restart. The file holds "<lease id> <store name> <node name>".
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <thread>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "agent/store/store.h"
#include "common/json.h"
#include "common/metrics/metrics.h"

namespace loom::agent {

inline constexpr std::string_view kNodesPrefix = "/loom/nodes/";

struct NodeInfo {
  std::string name;
  std::string underlay_ip;
  std::string vtep_mac;  // empty until the overlay exists
  std::string pod_cidr;  // empty until a subnet is claimed
  int64_t cpus = 0;
  int64_t memory_bytes = 0;
  std::string version;
};

std::string NodeKey(std::string_view node_name);
// {name, underlayIP, vtepMAC, podCIDR, capacity {cpus, memoryBytes}, heartbeat, version}
Json NodeToJson(const NodeInfo& node, absl::Time heartbeat);
// RFC 3339 in UTC with seconds: "2026-11-29T04:40:00Z".
std::string FormatRfc3339(absl::Time t);

struct RegistrarOptions {
  absl::Duration ttl = absl::Seconds(10);
  // Where the lease id is kept across restarts; "" keeps it in memory only.
  std::string lease_file;
  // Which store the lease belongs to (its URL): a lease file written for another store
  // is not reused, since a lease id only means something in the store that granted it.
  std::string store_name;
  // The heartbeat's clock.
  std::function<absl::Time()> now = [] { return absl::Now(); };
  // Counts registrations and renewals when set; must outlive the registrar.
  metrics::Registry* metrics = nullptr;
};

class NodeRegistrar {
 public:
  NodeRegistrar(store::Store* store, NodeInfo node, RegistrarOptions options);
  ~NodeRegistrar();  // Stop()
  NodeRegistrar(const NodeRegistrar&) = delete;
  NodeRegistrar& operator=(const NodeRegistrar&) = delete;

  // Reuses the live lease named in the lease file, else grants a new one (and records
  // it), then puts the node key bound to it.
  absl::Status Register();
  // One keep-alive. When the lease is gone (NotFound) registers again with a new
  // lease. Other errors (store unavailable) are returned and retried on the next tick.
  absl::Status RenewOnce();

  // Calls RenewOnce every ttl/3 on a thread of its own until Stop().
  void Start();
  // Stops renewing. The lease is kept, so a restart within the TTL reuses it.
  void Stop();

  // Whether the last registration or renewal succeeded, and why not otherwise.
  bool healthy() const;
  std::string last_error() const;
  store::LeaseId lease() const;
  const std::string& key() const { return key_; }

 private:
  absl::StatusOr<store::LeaseId> ReadLeaseFile() const;
  absl::Status WriteLeaseFile(store::LeaseId lease) const;
  // "<store name> <node name>", the owner recorded next to the lease id.
  std::string LeaseOwner() const;
  void SetResult(const absl::Status& status);

  store::Store* const store_;
  const NodeInfo node_;
  const RegistrarOptions options_;
  const std::string key_;
  metrics::Counter* renewals_ = nullptr;
  metrics::Counter* renewal_failures_ = nullptr;
  metrics::Counter* registrations_ = nullptr;

  mutable absl::Mutex mu_;
  store::LeaseId lease_ ABSL_GUARDED_BY(mu_) = store::kNoLease;
  bool healthy_ ABSL_GUARDED_BY(mu_) = false;
  std::string last_error_ ABSL_GUARDED_BY(mu_) = "not registered yet";
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread keeper_;
};

}  // namespace loom::agent
