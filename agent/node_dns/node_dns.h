// loomd's DNS: the node-local address, the DNS server and the forwarder, fed with
// cluster zones built from the service controller's state (store -> agent ->
// module: dns/ never sees the store).
//
// The node-local address (--dns-addr) must be a local address of loomd's network
// namespace. When it is not, NodeDns adds it as a /32 on `lo` (a dummy device, as
// NodeLocal DNSCache uses, needs the dummy driver, which not every kernel has) and
// removes it on Stop(). It records what it added in `address_file`, so that after
// a crash the next loomd still knows the address is its own to remove.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "agent/services/service_controller.h"
#include "common/json.h"
#include "common/metrics/metrics.h"
#include "dns/cluster_zone.h"
#include "dns/forwarder.h"
#include "dns/server.h"

namespace loom::agent {

struct NodeDnsOptions {
  std::string ip = "169.254.20.10";
  uint16_t port = 53;
  std::string domain = "cluster.local";
  uint32_t ttl = 5;
  int workers = 1;
  absl::Duration udp_coalesce = absl::ZeroDuration();  // dns::ServerOptions::udp_coalesce
  uint16_t max_udp_size = 1232;
  std::vector<std::string> upstreams;  // "ip:port"; empty: names outside the zone are REFUSED
  bool manage_address = true;          // add the address to lo when it is not local
  std::string address_file;            // records an address loomd added; "" for none
};

class NodeDns {
 public:
  NodeDns(NodeDnsOptions options, metrics::Registry* metrics);
  ~NodeDns();  // Stop()

  // Makes the address local, starts the forwarder and the server (with an empty
  // zone until the first state arrives). On failure, undoes what it did.
  absl::Status Start();
  void Stop();

  // From the service controller: builds and publishes a new zone.
  void OnState(std::shared_ptr<const ServiceState> state);

  // Serving, and a zone built from the store's state.
  bool Ready(std::string* reason) const;
  Json StatusJson() const;
  // Brings the registry's DNS counters up to date (call before rendering).
  void UpdateMetrics();
  // The latency histogram in the text exposition format.
  std::string RenderLatency() const;
  uint16_t port() const;
  uint64_t zone_updates() const { return zone_updates_.load(); }

 private:
  absl::Status EnsureAddress();
  void ReleaseAddress();

  NodeDnsOptions options_;
  metrics::Registry* metrics_;
  dns::ZoneHolder zones_;
  // The zone built from the last state (OnState runs on the controller's thread
  // only), the base of the next incremental update; null after a failed build.
  std::shared_ptr<const dns::ClusterZone> last_zone_;
  std::unique_ptr<dns::Forwarder> forwarder_;
  std::unique_ptr<dns::DnsServer> server_;
  bool address_added_ = false;
  std::atomic<bool> serving_{false};
  std::atomic<uint64_t> zone_updates_{0};
  std::atomic<uint64_t> zone_errors_{0};
  mutable std::mutex mu_;
  std::string last_zone_error_;
  uint64_t state_generation_ = 0;
  size_t zone_services_ = 0;
  size_t zone_names_ = 0;
  uint32_t zone_serial_ = 0;
};

}  // namespace loom::agent
