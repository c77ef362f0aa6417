// loomd's configuration: the flags as given (RawFlags, filled by main from gflags),
// validated into typed values (LoomdConfig). Every error names the flag and the value:
//   invalid --cluster-cidr "10.244.0.0/33": prefix length must be 0..32
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/log.h"

namespace loom::agent {

struct Ipv4Cidr {
  uint32_t address = 0;  // host byte order
  int prefix_len = 0;
  std::string ToString() const;
  friend bool operator==(const Ipv4Cidr&, const Ipv4Cidr&) = default;
};

struct HostPort {
  std::string host;  // an IP literal, without brackets
  uint16_t port = 0;
  std::string ToString() const;  // "127.0.0.1:9464", "[::1]:9464"
  friend bool operator==(const HostPort&, const HostPort&) = default;
};

// "10.244.0.0/16"; host bits must be zero.
absl::StatusOr<Ipv4Cidr> ParseIpv4Cidr(std::string_view text);
// "ip:port" or "[ipv6]:port" with port 1..65535 (or 0..65535 with allow_zero_port).
absl::StatusOr<HostPort> ParseHostPort(std::string_view text, bool allow_zero_port = false);
// "embedded" or "etcd://host:port[,host:port]".
absl::Status ValidateStoreUrl(std::string_view url);

// The flags exactly as given; defaults are main's gflags defaults.
struct RawFlags {
  std::string node_name;
  std::string store = "embedded";
  std::string state_dir = "/var/lib/loom";
  std::string run_dir = "/run/loom";
  std::string api_socket;  // "": <run_dir>/loomd.sock
  std::string metrics_addr = "127.0.0.1:9464";
  std::string underlay_iface;  // "": the default route's interface
  std::string cluster_cidr = "10.244.0.0/16";
  int32_t node_cidr_size = 24;
  std::string service_cidr = "10.96.0.0/12";
  std::string cluster_domain = "cluster.local";
  std::string dns_addr = "169.254.20.10:53";
  std::string dns_upstream;  // "": the host's resolv.conf; "none": no forwarding
  std::string dns_ttl = "5s";
  int32_t dns_workers = 1;
  std::string dns_udp_coalesce = "50us";
  int32_t dns_max_udp_size = 1232;
  std::string resolv_conf = "/etc/resolv.conf";  // where the default upstreams come from
  int32_t vxlan_vni = 1;
  int32_t vxlan_port = 4789;
  std::string bpffs_dir = "/sys/fs/bpf/loom";
  std::string cgroup_root = "/sys/fs/cgroup/loom";
  std::string cni_conf_dir = "/etc/cni/net.d";
  std::string cni_bin_dir = "/opt/cni/bin";
  std::string ingress_addr = "0.0.0.0:80";
  std::string ingress_tls_addr = "0.0.0.0:443";
  bool ingress = true;  // the ingress proxy (agent/ingress, lb/ingress)
  int32_t ingress_workers = 1;
  std::string ingress_cert_dir;    // "": <state-dir>/ingress-certs
  std::string ingress_access_log;  // "": none, "-": stderr, else a file
  std::string log_level = "info";
  std::string node_lease_ttl = "10s";
  // The VXLAN overlay (overlay/, agent/overlay/).
  bool overlay = false;
  bool direct_routing = false;
  std::string subnet_grace = "10m";
  std::string pod_cidr;           // "": the first --node-cidr-size subnet of --cluster-cidr
  std::string cni_del_queue_dir;  // "": <state-dir>/cni-del-queue
  // Service load balancing in eBPF (agent/lb/).
  bool lb = true;
  std::string cgroup2_dir;  // "": <the host's cgroup2 mount>/loom
};

struct LoomdConfig {
  std::string node_name;
  std::string store_url;
  std::string state_dir;
  std::string run_dir;
  std::string api_socket;
  HostPort metrics_addr;
  std::string underlay_iface;
  Ipv4Cidr cluster_cidr;
  int node_cidr_size = 24;
  Ipv4Cidr service_cidr;
  std::string cluster_domain;
  HostPort dns_addr;
  std::vector<HostPort> dns_upstream;  // empty: the nameservers of `resolv_conf`
  bool dns_forwarding = true;          // false: --dns-upstream=none
  std::string resolv_conf = "/etc/resolv.conf";
  uint32_t dns_ttl_seconds = 5;
  int dns_workers = 1;
  absl::Duration dns_udp_coalesce = absl::Microseconds(50);
  uint16_t dns_max_udp_size = 1232;
  uint32_t vxlan_vni = 1;
  uint16_t vxlan_port = 4789;
  std::string bpffs_dir;
  std::string cgroup_root;
  std::string cni_conf_dir;
  std::string cni_bin_dir;
  HostPort ingress_addr;
  HostPort ingress_tls_addr;
  bool ingress = true;
  int ingress_workers = 1;
  std::string ingress_cert_dir;
  std::string ingress_access_log;
  LogLevel log_level = LogLevel::kInfo;
  absl::Duration node_lease_ttl = absl::Seconds(10);
  bool overlay = false;
  bool direct_routing = false;
  absl::Duration subnet_grace = absl::Minutes(10);
  Ipv4Cidr pod_cidr;              // this node's pod addresses (IPAM); inside cluster_cidr
  std::string cni_del_queue_dir;  // DELs the plugin queued while loomd was down
  bool lb = true;
  std::string cgroup2_dir;  // "": resolved at start (agent/lb/cgroup2.h)
};

// Validates every flag; the first error is returned (InvalidArgument).
// `hostname` is the default node name.
absl::StatusOr<LoomdConfig> BuildConfig(const RawFlags& flags, std::string_view hostname);

}  // namespace loom::agent
