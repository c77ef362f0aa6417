// The service state controller: watches /loom/services/ and /loom/pods/, derives
// every service's endpoints (selector x pods, model::DeriveEndpoints) and hands
// the whole typed state to the modules that subscribed (DNS now; the load
// balancer and the ingress later). Modules never touch the store.
//
// Bursts of store events are coalesced: the first event of a burst arms a short
// debounce (default 5 ms) and one snapshot is published when it fires, so a
// change reaches subscribers within a few milliseconds of the store write.
#pragma once

#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "agent/store/store.h"
#include "common/model/endpoints.h"
#include "common/model/objects.h"

namespace loom::agent {

inline constexpr std::string_view kPodsPrefix = "/loom/pods/";

// One immutable snapshot of the cluster's services and endpoints.
struct ServiceState {
  std::vector<model::Service> services;  // sorted by namespace/name
  // By service key ("ns/name"); every service has an entry (maybe empty).
  absl::flat_hash_map<std::string, model::EndpointSet> endpoints;
  size_t pods = 0;
  store::Revision revision = 0;  // the newer of the two watches' revisions
  uint64_t generation = 0;       // 1 for the first published snapshot
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
  void MarkDirty();
  void Loop();
  std::shared_ptr<const ServiceState> Build();

  store::Store* store_;
  ServiceControllerOptions options_;
  std::vector<ServiceStateCallback> subscribers_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, model::Service> services_;  // by key ("ns/name")
  std::map<std::string, model::Pod> pods_;          // by store key
  // Store key -> key in the maps above.
  std::map<std::string, std::string> service_keys_;
  std::map<std::string, std::string> pod_keys_;
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
