#include "lb/ingress/endpoint_pool.h"

#include <algorithm>
#include <limits>

#include "common/strings.h"

namespace loom::lb::ingress {

void ReportConnectFailure(EndpointState& e, int64_t now_ns, const EjectionPolicy& policy) {
  uint32_t failures = e.failures.fetch_add(1, std::memory_order_relaxed) + 1;
  int64_t backoff = policy.base_ns;
  for (uint32_t i = 1; i < failures && backoff < policy.max_ns; ++i) backoff *= 2;
  e.ejected_until.store(now_ns + std::min(backoff, policy.max_ns), std::memory_order_relaxed);
}

void ReportConnectSuccess(EndpointState& e) {
  if (e.failures.load(std::memory_order_relaxed) != 0) e.failures.store(0, std::memory_order_relaxed);
  if (e.ejected_until.load(std::memory_order_relaxed) != 0) {
    e.ejected_until.store(0, std::memory_order_relaxed);
  }
}

EndpointState* EndpointPool::Pick(Balance balance, int64_t now_ns, uint64_t random) {
  const size_t n = endpoints_.size();
  if (n == 0) return nullptr;
  auto healthy = [now_ns](const EndpointState& e) {
    return e.ejected_until.load(std::memory_order_relaxed) <= now_ns;
  };
  if (n == 1) return endpoints_[0].get();
  if (balance == Balance::kLeastRequest) {
    // Two random choices (as Envoy's least_request): the one with fewer requests in
    // flight; a healthy one beats an ejected one.
    EndpointState* a = endpoints_[random % n].get();
    EndpointState* b = endpoints_[(random >> 32) % n].get();
    if (a == b) b = endpoints_[((random >> 32) + 1) % n].get();
    bool ha = healthy(*a), hb = healthy(*b);
    if (ha && hb) {
      return a->active.load(std::memory_order_relaxed) <= b->active.load(std::memory_order_relaxed) ? a : b;
    }
    if (ha) return a;
    if (hb) return b;
    // Both ejected: fall through to a scan for any healthy one.
  }
  uint32_t start = next_.fetch_add(1, std::memory_order_relaxed);
  for (size_t i = 0; i < n; ++i) {
    EndpointState* e = endpoints_[(start + i) % n].get();
    if (healthy(*e)) return e;
  }
  EndpointState* soonest = endpoints_[0].get();
  for (const auto& e : endpoints_) {
    if (e->ejected_until.load(std::memory_order_relaxed) <
        soonest->ejected_until.load(std::memory_order_relaxed)) {
      soonest = e.get();
    }
  }
  return soonest;
}

std::shared_ptr<EndpointState> EndpointRegistry::Get(const std::string& ip, uint16_t port) {
  std::string key = StrCat(ip, ":", port);
  std::lock_guard<std::mutex> lock(mu_);
  std::weak_ptr<EndpointState>& slot = states_[key];
  if (auto live = slot.lock()) return live;
  auto state = std::make_shared<EndpointState>(ip, port);
  slot = state;
  return state;
}

void EndpointRegistry::Sweep() {
  std::lock_guard<std::mutex> lock(mu_);
  absl::erase_if(states_, [](const auto& kv) { return kv.second.expired(); });
}

}  // namespace loom::lb::ingress
