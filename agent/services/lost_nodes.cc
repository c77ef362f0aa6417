#include "agent/services/lost_nodes.h"

#include "absl/time/clock.h"
#include "common/log.h"
#include "common/model/app.h"
#include "common/model/objects.h"
#include "common/status.h"
#include "common/strings.h"

namespace loom::agent {
namespace {

constexpr char kNodesPrefix[] = "/loom/nodes/";

std::string NodeOfKey(const std::string& key) { return key.substr(sizeof(kNodesPrefix) - 1); }

// Rewrites every pod record under /loom/pods/<node>/ that `change` alters (it returns
// false to leave one alone), each by CAS on its revision, retrying a record that
// changed meanwhile. The number of records written.
template <typename Change>
absl::StatusOr<uint64_t> RewritePods(store::Store* store, const std::string& node, Change change) {
  const std::string prefix = StrCat("/loom/pods/", node, "/");
  uint64_t written = 0;
  for (int round = 0; round < 5; ++round) {
    ASSIGN_OR_RETURN(store::RangeResult range, store->Range(prefix));
    bool conflict = false;
    for (const store::KeyValue& kv : range.kvs) {
      absl::StatusOr<Json> j = ParseJson(kv.value);
      if (!j.ok()) continue;
      absl::StatusOr<model::Pod> pod = model::PodFromJson(*j);
      if (!pod.ok() || !change(*pod)) continue;
      store::Txn txn;
      txn.compare.push_back(store::Compare::ModRevisionIs(kv.key, kv.mod_revision));
      txn.success.push_back(store::Op::Put(kv.key, model::PodToJson(*pod).dump()));
      ASSIGN_OR_RETURN(store::TxnResult r, store->Commit(txn));
      if (r.succeeded) {
        ++written;
      } else {
        conflict = true;
      }
    }
    if (!conflict) return written;
  }
  return absl::AbortedError(StrCat("pod records under ", prefix, " kept changing"));
}

}  // namespace

LostNodes::LostNodes(store::Store* store, std::string self) : store_(store), self_(std::move(self)) {}

LostNodes::~LostNodes() { Stop(); }

uint64_t LostNodes::marked() const {
  std::lock_guard<std::mutex> lock(mu_);
  return marked_;
}

uint64_t LostNodes::reclaimed() const {
  std::lock_guard<std::mutex> lock(mu_);
  return reclaimed_;
}

absl::Status LostNodes::Start() {
  thread_ = std::thread([this] { Loop(); });
  absl::StatusOr<std::unique_ptr<store::Watch>> w =
      store_->WatchPrefix(kNodesPrefix, 0, [this](const store::WatchBatch& b) { OnNodes(b); });
  if (!w.ok()) {
    Stop();
    return Annotate(w.status(), "watch nodes for lost ones");
  }
  watch_ = *std::move(w);
  return absl::OkStatus();
}

void LostNodes::Stop() {
  watch_.reset();
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void LostNodes::OnNodes(const store::WatchBatch& batch) {
  std::lock_guard<std::mutex> lock(mu_);
  if (batch.resync) {
    std::set<std::string> now;
    for (const store::KeyValue& kv : batch.snapshot) now.insert(NodeOfKey(kv.key));
    // Nodes that went away while the watch was catching up (only once there is a
    // previous view: at the start nobody knows which absent node was ever there).
    if (synced_) {
      for (const std::string& n : live_) {
        if (!now.contains(n) && n != self_) lost_.push_back(n);
      }
    }
    live_ = std::move(now);
    synced_ = true;
    reclaim_ = reclaim_ || live_.contains(self_);
  }
  for (const store::Event& e : batch.events) {
    std::string node = NodeOfKey(e.kv.key);
    if (e.type == store::Event::Type::kPut) {
      live_.insert(node);
      if (node == self_) reclaim_ = true;
    } else {
      live_.erase(node);
      if (node != self_) lost_.push_back(node);
    }
  }
  cv_.notify_all();
}

void LostNodes::Loop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    cv_.wait(lock, [this] { return stop_ || reclaim_ || !lost_.empty(); });
    if (stop_) return;
    if (reclaim_) {
      reclaim_ = false;
      lock.unlock();
      absl::Status s = ReclaimOwn();
      lock.lock();
      if (!s.ok()) {
        LOG_WARNING("cannot reclaim this node's pods after its lease was lost", {"error", s});
        reclaim_ = true;
        cv_.wait_for(lock, std::chrono::seconds(1), [this] { return stop_; });
      }
      continue;
    }
    std::string node = lost_.front();
    lost_.pop_front();
    if (live_.contains(node)) continue;  // back already
    lock.unlock();
    absl::Status s = MarkLost(node);
    lock.lock();
    if (!s.ok()) {
      LOG_WARNING("cannot mark the pods of a lost node not ready", {"node", node}, {"error", s});
      lost_.push_back(node);
      cv_.wait_for(lock, std::chrono::seconds(1), [this] { return stop_; });
    }
  }
}

absl::Status LostNodes::MarkLost(const std::string& node) {
  ASSIGN_OR_RETURN(uint64_t n, RewritePods(store_, node, [](model::Pod& pod) {
                     if (!pod.ready || pod.node_lost) return false;
                     pod.ready = false;
                     pod.node_lost = true;
                     return true;
                   }));
  if (n > 0) LOG_WARNING("node lost its lease: its pods are not ready", {"node", node}, {"pods", n});
  std::lock_guard<std::mutex> lock(mu_);
  marked_ += n;
  return absl::OkStatus();
}

absl::Status LostNodes::ReclaimOwn() {
  ASSIGN_OR_RETURN(uint64_t n, RewritePods(store_, self_, [](model::Pod& pod) {
                     if (!pod.node_lost) return false;
                     pod.node_lost = false;
                     // App replicas turn ready again when their probe passes.
                     if (!pod.meta.labels.contains(model::kAppPodLabel)) pod.ready = true;
                     return true;
                   }));
  if (n > 0) LOG_INFO("this node is back: its pods are no longer marked lost", {"pods", n});
  std::lock_guard<std::mutex> lock(mu_);
  reclaimed_ += n;
  return absl::OkStatus();
}

}  // namespace loom::agent
