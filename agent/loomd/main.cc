// loomd: the node agent. Parses and validates flags, then hands over to Daemon.
// Exit codes: 0 after a clean stop, 1 when start-up fails, 2 for a bad flag.
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <string>

#include "agent/daemon/config.h"
#include "agent/daemon/daemon.h"
#include "agent/daemon/uninstall.h"
#include "common/log.h"
#include "common/strings.h"
#include "common/version.h"
#include "gflags/gflags.h"

DEFINE_string(node_name, "", "This node's name (default: the host name).");
DEFINE_string(store, "embedded", "The cluster store: embedded, or etcd://host:port[,host:port].");
DEFINE_string(state_dir, "/var/lib/loom", "Durable state (the embedded store, the node lease).");
DEFINE_string(run_dir, "/run/loom", "Runtime files (created 0755).");
DEFINE_string(api_socket, "", "The local API unix socket (default: <run-dir>/loomd.sock).");
DEFINE_string(metrics_addr, "127.0.0.1:9464", "Where /healthz, /readyz and /metrics are served.");
DEFINE_string(underlay_iface, "",
              "The underlay interface (default: the default route's interface).");
DEFINE_string(cluster_cidr, "10.244.0.0/16", "The pod address range of the cluster.");
DEFINE_int32(node_cidr_size, 24, "The prefix length of each node's pod subnet.");
DEFINE_string(service_cidr, "10.96.0.0/12", "The service virtual IP range.");
DEFINE_string(cluster_domain, "cluster.local", "The cluster DNS domain.");
DEFINE_string(dns_addr, "169.254.20.10:53", "The node-local DNS address.");
DEFINE_string(dns_upstream, "",
              "Upstream DNS servers, ip[:port],... (default: the host's resolv.conf; "
              "none: no forwarding).");
DEFINE_string(dns_ttl, "5s", "The TTL of cluster DNS answers (whole seconds).");
DEFINE_int32(dns_workers, 1, "DNS UDP worker threads (SO_REUSEPORT sockets).");
DEFINE_string(dns_udp_coalesce, "50us",
              "Under load, how long a DNS UDP worker waits to read the next batch "
              "instead of sleeping on its socket (0s..1ms; 0s: off).");
DEFINE_int32(dns_max_udp_size, 1232, "The largest DNS answer sent over UDP; above it, TC.");
DEFINE_int32(vxlan_vni, 1, "The overlay VXLAN network identifier.");
DEFINE_int32(vxlan_port, 4789, "The overlay VXLAN UDP port.");
DEFINE_string(bpffs_dir, "/sys/fs/bpf/loom", "Where BPF maps and programs are pinned.");
DEFINE_string(cgroup_root, "/sys/fs/cgroup/loom", "The cgroup under which containers run.");
DEFINE_string(cni_conf_dir, "/etc/cni/net.d", "The CNI configuration directory.");
DEFINE_string(cni_bin_dir, "/opt/cni/bin", "The CNI plugin directory.");
DEFINE_string(ingress_addr, "0.0.0.0:80", "The ingress HTTP listen address.");
DEFINE_string(ingress_tls_addr, "0.0.0.0:443", "The ingress HTTPS listen address.");
DEFINE_bool(ingress, true, "Run the ingress proxy on --ingress-addr and --ingress-tls-addr.");
DEFINE_int32(ingress_workers, 1, "Ingress proxy threads (an event loop each, SO_REUSEPORT).");
DEFINE_string(ingress_cert_dir, "",
              "Ingress TLS secrets: <dir>/<namespace>/<secretName>/tls.crt and tls.key "
              "(default: <state-dir>/ingress-certs).");
DEFINE_string(ingress_access_log, "", "The ingress access log: a file, - for stderr; empty: none.");
DEFINE_string(log_level, "info", "debug, info, warning or error.");
DEFINE_string(node_lease_ttl, "10s", "The TTL of the node's lease in the store.");
DEFINE_bool(overlay, true,
            "Run the VXLAN overlay: claim a pod subnet, create loom.<vni>, program peers, "
            "nftables allow-list and egress masquerade (needs CAP_NET_ADMIN).");
DEFINE_bool(direct_routing, false,
            "Route to peers on the underlay's own subnet directly, without VXLAN.");
DEFINE_string(subnet_grace, "10m",
              "How long a departed node's pod subnet stays reserved after its node key is gone.");
DEFINE_string(pod_cidr, "",
              "This node's pod subnet (default: the first --node-cidr-size subnet of "
              "--cluster-cidr).");
DEFINE_string(cni_del_queue_dir, "",
              "Where the loom CNI plugin queues DELs while loomd is down; replayed at start "
              "(default: <state-dir>/cni-del-queue).");
DEFINE_bool(lb, true,
            "Load-balance service virtual IPs in eBPF: socket programs on Loom's cgroup2 "
            "directory, tc on every pod veth, maps pinned under --bpffs-dir.");
DEFINE_string(cgroup2_dir, "",
              "Loom's cgroup2 directory, where the socket load balancer attaches and "
              "containers are placed (default: <the host's cgroup2 mount>/loom, mounting "
              "cgroup2 at <run-dir>/cgroup2 when the host has none).");
DEFINE_bool(uninstall, false,
            "Remove everything loomd attached on this node (BPF programs, pins, tc filters, "
            "cgroup attachments, the overlay device, routes and nftables table), then exit.");

namespace {

loom::agent::RawFlags FlagsAsGiven() {
  loom::agent::RawFlags f;
  f.node_name = FLAGS_node_name;
  f.store = FLAGS_store;
  f.state_dir = FLAGS_state_dir;
  f.run_dir = FLAGS_run_dir;
  f.api_socket = FLAGS_api_socket;
  f.metrics_addr = FLAGS_metrics_addr;
  f.underlay_iface = FLAGS_underlay_iface;
  f.cluster_cidr = FLAGS_cluster_cidr;
  f.node_cidr_size = FLAGS_node_cidr_size;
  f.service_cidr = FLAGS_service_cidr;
  f.cluster_domain = FLAGS_cluster_domain;
  f.dns_addr = FLAGS_dns_addr;
  f.dns_upstream = FLAGS_dns_upstream;
  f.dns_ttl = FLAGS_dns_ttl;
  f.dns_workers = FLAGS_dns_workers;
  f.dns_udp_coalesce = FLAGS_dns_udp_coalesce;
  f.dns_max_udp_size = FLAGS_dns_max_udp_size;
  f.vxlan_vni = FLAGS_vxlan_vni;
  f.vxlan_port = FLAGS_vxlan_port;
  f.bpffs_dir = FLAGS_bpffs_dir;
  f.cgroup_root = FLAGS_cgroup_root;
  f.cni_conf_dir = FLAGS_cni_conf_dir;
  f.cni_bin_dir = FLAGS_cni_bin_dir;
  f.ingress_addr = FLAGS_ingress_addr;
  f.ingress_tls_addr = FLAGS_ingress_tls_addr;
  f.ingress = FLAGS_ingress;
  f.ingress_workers = FLAGS_ingress_workers;
  f.ingress_cert_dir = FLAGS_ingress_cert_dir;
  f.ingress_access_log = FLAGS_ingress_access_log;
  f.log_level = FLAGS_log_level;
  f.node_lease_ttl = FLAGS_node_lease_ttl;
  f.overlay = FLAGS_overlay;
  f.direct_routing = FLAGS_direct_routing;
  f.subnet_grace = FLAGS_subnet_grace;
  f.pod_cidr = FLAGS_pod_cidr;
  f.cni_del_queue_dir = FLAGS_cni_del_queue_dir;
  f.lb = FLAGS_lb;
  f.cgroup2_dir = FLAGS_cgroup2_dir;
  return f;
}

std::string HostName() {
  char buf[256] = {};
  if (gethostname(buf, sizeof buf - 1) != 0) return "";
  return buf;
}

}  // namespace

int main(int argc, char** argv) {
  gflags::SetUsageMessage("loomd [flags]: the Loom node agent");
  gflags::SetVersionString(std::string(loom::kVersion));
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  if (argc > 1) {
    std::fprintf(stderr, "loomd: unexpected argument \"%s\" (loomd takes only flags)\n", argv[1]);
    return 2;
  }
  absl::StatusOr<loom::agent::LoomdConfig> config =
      loom::agent::BuildConfig(FlagsAsGiven(), HostName());
  if (!config.ok()) {
    std::fprintf(stderr, "loomd: %s\n", std::string(config.status().message()).c_str());
    return 2;
  }
  loom::SetLogLevel(config->log_level);
  if (FLAGS_uninstall) {
    std::vector<std::string> removed;
    absl::Status s = loom::agent::Uninstall(*config, &removed);
    for (const std::string& r : removed) std::printf("removed %s\n", r.c_str());
    if (!s.ok()) {
      std::fprintf(stderr, "loomd: uninstall: %s\n", std::string(s.message()).c_str());
      return 1;
    }
    return 0;
  }

  // Block the stop signals before any thread starts, so that only sigwait sees them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  loom::agent::Daemon daemon(*config);
  if (absl::Status s = daemon.Start(); !s.ok()) {
    LOG_ERROR("loomd failed to start", {"error", s.message()});
    return 1;
  }
  int sig = 0;
  sigwait(&stop_signals, &sig);
  LOG_INFO("stopping", {"signal", sig == SIGTERM ? "SIGTERM" : "SIGINT"});
  daemon.Stop();
  return 0;
}
