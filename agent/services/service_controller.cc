#include "agent/services/service_controller.h"

#include <utility>

#include "agent/services/service_registry.h"
#include "common/log.h"
#include "common/model/validation.h"
#include "common/status.h"
#include "common/strings.h"

namespace loom::agent {
namespace {

// Applies a watch batch to a map of decoded objects keyed by `key_of`, telling
// `changed(key, old, now)` about every object added, replaced or removed. An object
// that decodes equal to the one held is kept (the same shared object).
template <typename T, typename Decode, typename KeyOf, typename Changed>
void ApplyBatch(const store::WatchBatch& batch,
                std::map<std::string, std::shared_ptr<const T>>& objects,
                std::map<std::string, std::string>& store_keys, Decode decode, KeyOf key_of,
                Changed changed, uint64_t* errors) {
  auto erase = [&](const std::string& store_key) {
    auto it = store_keys.find(store_key);
    if (it == store_keys.end()) return;
    auto obj = objects.find(it->second);
    if (obj != objects.end()) {
      changed(obj->first, obj->second.get(), nullptr);
      objects.erase(obj);
    }
    store_keys.erase(it);
  };
  auto put = [&](const store::KeyValue& kv) {
    absl::StatusOr<T> obj = decode(kv);
    if (!obj.ok()) {
      ++*errors;
      LOG_WARNING("skipping an object that does not decode", {"key", kv.key},
                  {"error", obj.status().message()});
      erase(kv.key);
      return;
    }
    std::string k = key_of(kv, *obj);
    auto prev_key = store_keys.find(kv.key);
    if (prev_key != store_keys.end() && prev_key->second != k) erase(kv.key);
    store_keys[kv.key] = k;
    auto [it, inserted] = objects.try_emplace(k);
    if (inserted) {
      it->second = std::make_shared<const T>(*std::move(obj));
      changed(k, nullptr, it->second.get());
    } else if (!(*it->second == *obj)) {
      std::shared_ptr<const T> old =
          std::exchange(it->second, std::make_shared<const T>(*std::move(obj)));
      changed(k, old.get(), it->second.get());
    }
  };
  if (batch.resync) {
    // Objects missing from the snapshot are gone; the others are put again (a
    // no-op when unchanged).
    std::set<std::string> present;
    for (const store::KeyValue& kv : batch.snapshot) present.insert(kv.key);
    std::vector<std::string> gone;
    for (const auto& [store_key, k] : store_keys) {
      if (!present.contains(store_key)) gone.push_back(store_key);
    }
    for (const std::string& store_key : gone) erase(store_key);
    for (const store::KeyValue& kv : batch.snapshot) put(kv);
  }
  for (const store::Event& e : batch.events) {
    if (e.type == store::Event::Type::kPut) {
      put(e.kv);
    } else {
      erase(e.kv.key);
    }
  }
}

std::string IndexKey(const std::string& ns, const std::string& label, const std::string& value) {
  return StrCat(ns, "\n", label, "=", value);
}

// Services of these kinds never have derived endpoints.
bool Selects(const model::Service& s) {
  return s.type != model::ServiceType::kExternalName && !s.selector.empty();
}

}  // namespace

ServiceController::ServiceController(store::Store* store, ServiceControllerOptions options)
    : store_(store), options_(options) {}

ServiceController::~ServiceController() { Stop(); }

void ServiceController::Subscribe(ServiceStateCallback callback) {
  subscribers_.push_back(std::move(callback));
}

absl::Status ServiceController::Start() {
  thread_ = std::thread([this] { Loop(); });
  absl::StatusOr<std::unique_ptr<store::Watch>> sw = store_->WatchPrefix(
      kServicesPrefix, 0, [this](const store::WatchBatch& b) { OnServices(b); });
  if (!sw.ok()) {
    Stop();
    return Annotate(sw.status(), "watch services");
  }
  services_watch_ = *std::move(sw);
  absl::StatusOr<std::unique_ptr<store::Watch>> pw =
      store_->WatchPrefix(kPodsPrefix, 0, [this](const store::WatchBatch& b) { OnPods(b); });
  if (!pw.ok()) {
    Stop();
    return Annotate(pw.status(), "watch pods");
  }
  pods_watch_ = *std::move(pw);
  return absl::OkStatus();
}

void ServiceController::Stop() {
  // Watches first: no callback runs once they are gone.
  services_watch_.reset();
  pods_watch_.reset();
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

std::shared_ptr<const ServiceState> ServiceController::Current() const {
  std::lock_guard<std::mutex> lock(mu_);
  return current_;
}

uint64_t ServiceController::decode_errors() const {
  std::lock_guard<std::mutex> lock(mu_);
  return decode_errors_;
}

void ServiceController::OnServices(const store::WatchBatch& batch) {
  std::lock_guard<std::mutex> lock(mu_);
  ApplyBatch(
      batch, services_, service_keys_,
      [](const store::KeyValue& kv) -> absl::StatusOr<model::Service> {
        ASSIGN_OR_RETURN(StoredService s, StoredServiceFromJson(kv.value, kv.mod_revision));
        return s.service;
      },
      [](const store::KeyValue&, const model::Service& s) { return s.meta.Key(); },
      [this](const std::string& key, const model::Service* old, const model::Service* now) {
        ServiceChanged(key, old, now);
      },
      &decode_errors_);
  if (batch.resync) full_ = true;
  services_synced_ = true;
  revision_ = std::max(revision_, batch.revision);
  dirty_ = true;
  cv_.notify_all();
}

void ServiceController::OnPods(const store::WatchBatch& batch) {
  std::lock_guard<std::mutex> lock(mu_);
  ApplyBatch(
      batch, pods_, pod_keys_,
      [](const store::KeyValue& kv) -> absl::StatusOr<model::Pod> {
        ASSIGN_OR_RETURN(Json j, ParseJson(kv.value));
        return model::PodFromJson(j);
      },
      [](const store::KeyValue& kv, const model::Pod&) { return kv.key; },
      [this](const std::string& key, const model::Pod* old, const model::Pod* now) {
        PodChanged(key, old, now);
      },
      &decode_errors_);
  if (batch.resync) full_ = true;
  pods_synced_ = true;
  revision_ = std::max(revision_, batch.revision);
  dirty_ = true;
  cv_.notify_all();
}

void ServiceController::ServiceChanged(const std::string& key, const model::Service* old,
                                       const model::Service* now) {
  // Called with mu_ held.
  if (old != nullptr && Selects(*old)) {
    for (const auto& [label, value] : old->selector) {
      auto it = selector_index_.find(IndexKey(old->meta.ns, label, value));
      if (it == selector_index_.end()) continue;
      it->second.erase(key);
      if (it->second.empty()) selector_index_.erase(it);
    }
  }
  if (now != nullptr && Selects(*now)) {
    for (const auto& [label, value] : now->selector) {
      selector_index_[IndexKey(now->meta.ns, label, value)].insert(key);
    }
  }
  dirty_endpoints_.insert(key);
  changed_.insert(key);
}

void ServiceController::PodChanged(const std::string& store_key, const model::Pod* old,
                                   const model::Pod* now) {
  // Called with mu_ held.
  if (old != nullptr) {
    MarkSelecting(*old);
    for (const auto& [label, value] : old->meta.labels) {
      auto it = pod_label_index_.find(IndexKey(old->meta.ns, label, value));
      if (it == pod_label_index_.end()) continue;
      it->second.erase(store_key);
      if (it->second.empty()) pod_label_index_.erase(it);
    }
  }
  if (now != nullptr) {
    MarkSelecting(*now);
    for (const auto& [label, value] : now->meta.labels) {
      pod_label_index_[IndexKey(now->meta.ns, label, value)].insert(store_key);
    }
  }
}

void ServiceController::MarkSelecting(const model::Pod& pod) {
  // A service selects the pod only if every pair of its selector is one of the
  // pod's labels, so each such service is indexed under one of those labels.
  for (const auto& [label, value] : pod.meta.labels) {
    auto it = selector_index_.find(IndexKey(pod.meta.ns, label, value));
    if (it == selector_index_.end()) continue;
    for (const std::string& key : it->second) {
      auto svc = services_.find(key);
      if (svc != services_.end() &&
          model::SelectorMatches(svc->second->selector, pod.meta.labels)) {
        dirty_endpoints_.insert(key);
      }
    }
  }
}

model::EndpointSet ServiceController::Derive(const model::Service& service) const {
  // Called with mu_ held. The candidates are the pods carrying the selector's
  // rarest pair; DeriveEndpoints checks the others.
  std::vector<const model::Pod*> candidates;
  if (Selects(service)) {
    const std::set<std::string>* rarest = nullptr;
    for (const auto& [label, value] : service.selector) {
      auto it = pod_label_index_.find(IndexKey(service.meta.ns, label, value));
      if (it == pod_label_index_.end()) return model::DeriveEndpoints(service, {});
      if (rarest == nullptr || it->second.size() < rarest->size()) rarest = &it->second;
    }
    for (const std::string& store_key : *rarest) {
      auto pod = pods_.find(store_key);
      if (pod != pods_.end()) candidates.push_back(pod->second.get());
    }
  }
  return model::DeriveEndpoints(service, candidates);
}

std::shared_ptr<const ServiceState> ServiceController::Build() {
  // Called with mu_ held.
  for (const std::string& key : dirty_endpoints_) {
    auto svc = services_.find(key);
    if (svc == services_.end()) {
      if (endpoints_.erase(key) > 0) changed_.insert(key);
      continue;
    }
    model::EndpointSet set = Derive(*svc->second);
    auto [it, inserted] = endpoints_.try_emplace(key);
    if (inserted || !(*it->second == set)) {
      it->second = std::make_shared<const model::EndpointSet>(std::move(set));
      changed_.insert(key);
    }
  }
  dirty_endpoints_.clear();

  // The last published table with the changed entries replaced: the rest is shared.
  std::vector<model::ServiceTable::Change> changes;
  changes.reserve(changed_.size());
  for (const std::string& key : changed_) {  // sorted, as With() wants them
    auto svc = services_.find(key);
    if (svc == services_.end()) {
      changes.push_back({key, {}});
    } else {
      changes.push_back({key, {svc->second, endpoints_.at(key)}});
    }
  }
  auto state = std::make_shared<ServiceState>();
  static const model::ServiceTable kNone;
  state->services = (current_ ? current_->services : kNone).With(changes);
  state->changed.assign(changed_.begin(), changed_.end());
  state->full = full_;
  changed_.clear();
  full_ = false;
  state->pods = pods_.size();
  state->revision = revision_;
  state->generation = ++generation_;
  return state;
}

void ServiceController::Loop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    cv_.wait(lock, [this] { return stop_ || (dirty_ && services_synced_ && pods_synced_); });
    if (stop_) return;
    // Let the rest of a burst arrive, then publish once.
    cv_.wait_for(lock, absl::ToChronoMilliseconds(options_.debounce), [this] { return stop_; });
    if (stop_) return;
    dirty_ = false;
    std::shared_ptr<const ServiceState> state = Build();
    std::shared_ptr<const ServiceState> previous = std::exchange(current_, state);
    lock.unlock();
    for (const ServiceStateCallback& cb : subscribers_) cb(state);
    // Whatever the previous snapshot alone still held is freed here: after the
    // subscribers, and not under the lock the watches wait on.
    previous.reset();
    state.reset();
    lock.lock();
  }
}

}  // namespace loom::agent
