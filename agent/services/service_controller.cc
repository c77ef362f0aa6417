#include "agent/services/service_controller.h"

#include "agent/services/service_registry.h"
#include "common/log.h"
#include "common/status.h"
#include "common/strings.h"

namespace loom::agent {
namespace {

// Applies a watch batch to a map of decoded objects keyed by `key_of`.
template <typename T, typename Decode, typename KeyOf>
void ApplyBatch(const store::WatchBatch& batch, std::map<std::string, T>& objects,
                std::map<std::string, std::string>& store_keys, Decode decode, KeyOf key_of,
                uint64_t* errors) {
  auto put = [&](const store::KeyValue& kv) {
    absl::StatusOr<T> obj = decode(kv);
    if (!obj.ok()) {
      ++*errors;
      LOG_WARNING("skipping an object that does not decode", {"key", kv.key},
                  {"error", obj.status().message()});
      return;
    }
    std::string k = key_of(kv, *obj);
    store_keys[kv.key] = k;
    objects[k] = *std::move(obj);
  };
  auto erase = [&](const std::string& store_key) {
    auto it = store_keys.find(store_key);
    if (it == store_keys.end()) return;
    objects.erase(it->second);
    store_keys.erase(it);
  };
  if (batch.resync) {
    objects.clear();
    store_keys.clear();
    for (const store::KeyValue& kv : batch.snapshot) put(kv);
  }
  for (const store::Event& e : batch.events) {
    if (e.type == store::Event::Type::kPut) {
      erase(e.kv.key);
      put(e.kv);
    } else {
      erase(e.kv.key);
    }
  }
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
      &decode_errors_);
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
      [](const store::KeyValue& kv, const model::Pod&) { return kv.key; }, &decode_errors_);
  pods_synced_ = true;
  revision_ = std::max(revision_, batch.revision);
  dirty_ = true;
  cv_.notify_all();
}

std::shared_ptr<const ServiceState> ServiceController::Build() {
  // Called with mu_ held.
  auto state = std::make_shared<ServiceState>();
  // A service selects pods of its own namespace only: group them once.
  absl::flat_hash_map<std::string, std::vector<const model::Pod*>> pods_by_ns;
  for (const auto& [k, p] : pods_) pods_by_ns[p.meta.ns].push_back(&p);
  static const std::vector<const model::Pod*> kNone;
  state->services.reserve(services_.size());
  for (const auto& [k, s] : services_) {
    state->services.push_back(s);
    auto it = pods_by_ns.find(s.meta.ns);
    state->endpoints[k] = model::DeriveEndpoints(s, it == pods_by_ns.end() ? kNone : it->second);
  }
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
    current_ = state;
    lock.unlock();
    for (const ServiceStateCallback& cb : subscribers_) cb(state);
    lock.lock();
  }
}

}  // namespace loom::agent
