// loomd's CNI API (docs/cni.md has the exact shapes), served on the local API socket:
//   POST /v1/cni/add        allocate (idempotent per containerID+ifname); mtu, gateway, dns
//   POST /v1/cni/attached   register the pod under /loom/pods/<node>/<containerID>
//   POST /v1/cni/del        release and deregister; 200 when already gone
//   GET  /v1/cni/attachments/<containerID>/<ifname>   the allocation (CHECK); 404
//   GET  /v1/cni/status     200 ready, 503 not
//   POST /v1/cni/gc         release every attachment not in validAttachments
// Handlers answer 503 until Start() has the store.
#pragma once

#include <atomic>
#include <functional>
#include <optional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "agent/ipam/pod_ipam.h"
#include "agent/store/store.h"
#include "common/http/router.h"
#include "common/net/ip.h"

namespace loom::cniapi {

inline constexpr char kGateway[] = "169.254.1.1";  // the pods' link-local gateway
inline constexpr int kVxlanOverhead = 50;

struct CniApiOptions {
  std::string node;
  net::Ipv4Prefix pod_cidr;
  std::string underlay_iface;  // its MTU - 50 is the pod MTU
  std::string dns_nameserver;  // the node-local DNS address (the IP of --dns-addr)
  std::string cluster_domain = "cluster.local";
  std::string del_queue_dir;   // the plugin's DEL queue, replayed by Start()
  // Whether a link exists in loomd's namespace and a netns path exists (injectable).
  std::function<bool(const std::string&)> link_exists;
  std::function<bool(const std::string&)> netns_exists;
  // Readiness of loomd as a whole (store, node registration).
  std::function<bool(std::string*)> ready;
  // Told the pod's host veth once the pod is attached, and again when it is released
  // (the service load balancer's tc programs); optional.
  std::function<void(const std::string& host_veth)> on_pod_attached;
  std::function<void(const std::string& host_veth)> on_pod_released;
};

class CniApi {
 public:
  explicit CniApi(CniApiOptions options);
  ~CniApi();

  void Register(http::Router& router);
  // With the store open: reads the pod MTU, releases allocations whose host veth or
  // netns is gone, replays queued DELs. Then the handlers serve.
  // `pod_cidr`, when given, replaces the options' (loomd --overlay: the leased subnet).
  absl::Status Start(store::Store* store,
                     std::optional<net::Ipv4Prefix> pod_cidr = std::nullopt);
  void Stop();

  int mtu() const { return mtu_; }

  // Releases and deregisters (containerID, ifname): what DEL, GC and the replay do.
  absl::StatusOr<std::optional<ipam::Allocation>> Release(const ipam::AttachmentKey& key);
  // Replays the DEL queue directory; returns how many entries it replayed.
  absl::StatusOr<int> ReplayDelQueue();

 private:
  http::Response Add(const http::Request& request);
  http::Response Attached(const http::Request& request);
  http::Response Del(const http::Request& request);
  http::Response Get(const http::Request& request);
  http::Response Status();
  http::Response Gc(const http::Request& request);
  std::string PodKey(std::string_view container_id) const;
  absl::Status Deregister(const ipam::AttachmentKey& key);
  Json DnsJson(std::string_view pod_namespace) const;

  CniApiOptions options_;
  int mtu_ = 1450;
  store::Store* store_ = nullptr;
  std::unique_ptr<ipam::PodIpam> ipam_;
  std::atomic<bool> started_{false};
};

// Real probes for CniApiOptions.
bool LinkExists(const std::string& name);
bool PathExists(const std::string& path);
// The MTU of a link in the calling thread's namespace.
absl::StatusOr<int> LinkMtu(const std::string& name);
// net.ipv4.ip_forward=1 in the calling thread's namespace.
absl::Status EnableIpForwarding();

}  // namespace loom::cniapi
