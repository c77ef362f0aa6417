// The service state controller: watches /loom/services/ and /loom/pods/, derives
// every service's endpoints (selector x pods, model::DeriveEndpoints) and hands
// the whole typed state to the modules that subscribed (DNS now; the load
// balancer and the ingress later). Modules never touch the store.
//
// Bursts of store events are coalesced: the first event of a burst arms a short
// debounce (default 5 ms) and one snapshot is published when it fires, so a
// change reaches subscribers within a few milliseconds of the store write.
//
// Endpoints are derived incrementally: services are indexed by the label pairs of
// their selectors and pods by their labels, so a pod event recomputes only the
// services that selected it before or select it now, and a service event only that
// service; each snapshot names the services that changed (`changed`).
//
// Snapshots share what did not change: the controller holds every service and
// endpoint set as a shared immutable object, and each snapshot's table
// (model::ServiceTable) is the previous one with the changed entries replaced, so
// publishing costs in proportion to the changes, not to the number of services.
// The previous snapshot is released after the subscribers ran, outside the lock.
#pragma once

#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "agent/store/store.h"
#include "common/model/endpoints.h"
#include "common/model/objects.h"
#include "common/model/service_table.h"

namespace loom::agent {

inline constexpr std::string_view kPodsPrefix = "/loom/pods/";

// One immutable snapshot of the cluster's services and endpoints.
struct ServiceState {
  // Every service with its endpoint set (maybe empty), sorted by key ("ns/name"). An
  // entry that did not change is the same objects as in the previous snapshot.
  model::ServiceTable services;
  size_t pods = 0;
  store::Revision revision = 0;  // the newer of the two watches' revisions
  uint64_t generation = 0;       // 1 for the first published snapshot
  // The keys of the services that were added, updated or removed, or whose
  // endpoints changed, since the previous snapshot (sorted). When `full` is set
  // (the first snapshot, and after a watch resync) consumers must treat every
  // service as changed.
  std::vector<std::string> changed;
  bool full = true;
};

using ServiceStateCallback = std::function<void(std::shared_ptr<const ServiceState>)>;

struct ServiceControllerOptions {
  absl::Duration debounce = absl::Milliseconds(5);
};

class ServiceController {
 public:
  ServiceController(store::Store* store, ServiceControllerOptions options = {});
  ~ServiceController();  // Stop()

  // Subscribe before Start(); callbacks run on the controller's thread, in order.
  void Subscribe(ServiceStateCallback callback);
  absl::Status Start();
  void Stop();

  // The last published snapshot (null before the first: both watches synced).
  std::shared_ptr<const ServiceState> Current() const;
  // Objects in the store that failed to decode (skipped, logged once each).
  uint64_t decode_errors() const;

 private:
  void OnServices(const store::WatchBatch& batch);
  void OnPods(const store::WatchBatch& batch);
  void Loop();
  std::shared_ptr<const ServiceState> Build();
  // Index maintenance; `old`/`now` may be null (added/removed).
  void ServiceChanged(const std::string& key, const model::Service* old, const model::Service* now);
  void PodChanged(const std::string& store_key, const model::Pod* old, const model::Pod* now);
  // Marks the services whose selector matches `pod` for recomputation.
  void MarkSelecting(const model::Pod& pod);
  model::EndpointSet Derive(const model::Service& service) const;

  store::Store* store_;
  ServiceControllerOptions options_;
  std::vector<ServiceStateCallback> subscribers_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  // Decoded objects, shared with the snapshots.
  std::map<std::string, std::shared_ptr<const model::Service>> services_;  // by key ("ns/name")
  std::map<std::string, std::shared_ptr<const model::Pod>> pods_;          // by store key
  // Store key -> key in the maps above.
  std::map<std::string, std::string> service_keys_;
  std::map<std::string, std::string> pod_keys_;
  // Derived endpoints by service key, and what the next Build() must recompute.
  std::map<std::string, std::shared_ptr<const model::EndpointSet>> endpoints_;
  std::set<std::string> dirty_endpoints_;
  std::set<std::string> changed_;
  bool full_ = true;
  // "<ns>\n<label>=<value>" -> service keys whose selector has that pair.
  absl::flat_hash_map<std::string, std::set<std::string>> selector_index_;
  // "<ns>\n<label>=<value>" -> store keys of the pods carrying that label.
  absl::flat_hash_map<std::string, std::set<std::string>> pod_label_index_;
  bool services_synced_ = false;
  bool pods_synced_ = false;
  bool dirty_ = false;
  bool stop_ = false;
  store::Revision revision_ = 0;
  uint64_t generation_ = 0;
  uint64_t decode_errors_ = 0;
  std::shared_ptr<const ServiceState> current_;

  std::thread thread_;
  std::unique_ptr<store::Watch> services_watch_;
  std::unique_ptr<store::Watch> pods_watch_;
};

}  // namespace loom::agent
