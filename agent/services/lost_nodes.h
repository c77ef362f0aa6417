// What happens to the pods of a node whose lease expired (its loomd and maybe its
// containers are gone): every agent watches /loom/nodes/, and when a node's key goes
// away it marks that node's ready pods not ready with nodeLost set (CAS on each
// record; all agents may race, the result is the same), so DNS, the load balancer
// and the ingress of every node stop sending to them, as Kubernetes does with the
// pods of a NotReady node. Pods already not ready are left alone.
//
// The node's own agent undoes it when its key is back (or at its start): it clears
// nodeLost on its pods, and turns the non-App ones (CNI pods, ready on attach) ready
// again; App replicas are turned ready by the reconciler once their probe passes.
// Pod records stay: the node's own agent removes them with its containers.
#pragma once

#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "agent/store/store.h"

namespace loom::agent {

class LostNodes {
 public:
  LostNodes(store::Store* store, std::string self);
  ~LostNodes();

  absl::Status Start();
  void Stop();

  // Pod records marked lost, and own records reclaimed, so far (tests, metrics).
  uint64_t marked() const;
  uint64_t reclaimed() const;

 private:
  void OnNodes(const store::WatchBatch& batch);
  void Loop();
  absl::Status MarkLost(const std::string& node);
  absl::Status ReclaimOwn();

  store::Store* store_;
  const std::string self_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::set<std::string> live_;
  bool synced_ = false;
  std::deque<std::string> lost_;  // nodes whose pods to mark
  bool reclaim_ = false;
  bool stop_ = false;
  uint64_t marked_ = 0, reclaimed_ = 0;
  std::thread thread_;
  std::unique_ptr<store::Watch> watch_;
};

}  // namespace loom::agent
