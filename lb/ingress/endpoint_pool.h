// Endpoint choice for the ingress proxy: the ready endpoints of one service port,
// picked round-robin or least-request, with passive health (an endpoint that
// fails to connect is ejected for a back-off and tried again after it).
// Thread-safe: the state is atomics shared by every worker.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "lb/ingress/router.h"

namespace loom::lb::ingress {

// One endpoint (ip:port), kept across configuration updates while any snapshot
// names it, so its health and in-flight count survive an update.
struct EndpointState : std::enable_shared_from_this<EndpointState> {
  EndpointState(std::string ip, uint16_t port) : ip(std::move(ip)), port(port) {
    label = this->ip + ":" + std::to_string(port);
  }
  const std::string ip;
  const uint16_t port;
  std::string label;  // "ip:port"
  std::atomic<uint32_t> active{0};        // requests in flight (least-request)
  std::atomic<uint32_t> failures{0};      // consecutive connect failures
  std::atomic<int64_t> ejected_until{0};  // monotonic ns; 0: healthy
};

struct EjectionPolicy {
  int64_t base_ns = 1'000'000'000;   // the first ejection
  int64_t max_ns = 30'000'000'000;   // doubling up to this
};

// Connect outcomes, reported by the proxy.
void ReportConnectFailure(EndpointState& endpoint, int64_t now_ns, const EjectionPolicy& policy);
void ReportConnectSuccess(EndpointState& endpoint);

class EndpointPool {
 public:
  explicit EndpointPool(std::vector<std::shared_ptr<EndpointState>> endpoints)
      : endpoints_(std::move(endpoints)) {}

  // An endpoint not ejected at `now_ns`, by `balance`; when every endpoint is
  // ejected, the one whose ejection ends first (a request then tests it rather than
  // failing outright). nullptr when the pool is empty. `random` drives least-request's
  // two choices.
  EndpointState* Pick(Balance balance, int64_t now_ns, uint64_t random);
  bool empty() const { return endpoints_.empty(); }
  const std::vector<std::shared_ptr<EndpointState>>& endpoints() const { return endpoints_; }

 private:
  std::vector<std::shared_ptr<EndpointState>> endpoints_;
  std::atomic<uint32_t> next_{0};
};

// The EndpointStates by "ip:port": Get returns the live state or a new one; states
// no snapshot holds any more are dropped by Sweep().
class EndpointRegistry {
 public:
  std::shared_ptr<EndpointState> Get(const std::string& ip, uint16_t port);
  void Sweep();

 private:
  std::mutex mu_;
  absl::flat_hash_map<std::string, std::weak_ptr<EndpointState>> states_;
};

}  // namespace loom::lb::ingress
