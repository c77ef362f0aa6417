#include "agent/daemon/config.h"

#include <arpa/inet.h>
#include <net/if.h>
#include <sys/un.h>

#include <charconv>
#include <optional>

#include "absl/strings/str_split.h"
#include "common/status.h"
#include "common/strings.h"

namespace loom::agent {
namespace {

absl::Status FlagError(std::string_view flag, std::string_view value, std::string_view why) {
  return absl::InvalidArgumentError(StrCat("invalid --", flag, " \"", value, "\": ", why));
}

std::optional<int> ParseInt(std::string_view text) {
  int value = 0;
  if (text.empty()) return std::nullopt;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || ptr != text.data() + text.size()) return std::nullopt;
  return value;
}

// A DNS name: dot-separated labels of [a-z0-9-], not starting or ending with '-'.
bool ValidDnsName(std::string_view name, bool allow_upper) {
  if (name.empty() || name.size() > 253) return false;
  for (absl::string_view label : absl::StrSplit(ToAbsl(name), '.')) {
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') {
      return false;
    }
    for (char c : label) {
      bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
                (allow_upper && c >= 'A' && c <= 'Z');
      if (!ok) return false;
    }
  }
  return true;
}

// Wraps a parse error in the flag's name and value.
template <typename T>
absl::StatusOr<T> ForFlag(std::string_view flag, std::string_view value, absl::StatusOr<T> r) {
  if (!r.ok()) return FlagError(flag, value, ToStd(r.status().message()));
  return r;
}

absl::Status CheckPath(std::string_view flag, std::string_view value) {
  if (value.empty()) return FlagError(flag, value, "must not be empty");
  if (value.find('\0') != std::string_view::npos) return FlagError(flag, value, "contains NUL");
  return absl::OkStatus();
}

}  // namespace

std::string Ipv4Cidr::ToString() const {
  in_addr a{htonl(address)};
  char buf[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &a, buf, sizeof buf);
  return StrCat(buf, "/", prefix_len);
}

std::string HostPort::ToString() const {
  if (host.find(':') != std::string::npos) return StrCat("[", host, "]:", port);
  return StrCat(host, ":", port);
}

absl::StatusOr<Ipv4Cidr> ParseIpv4Cidr(std::string_view text) {
  size_t slash = text.find('/');
  if (slash == std::string_view::npos) {
    return absl::InvalidArgumentError("want an IPv4 CIDR such as 10.244.0.0/16");
  }
  std::string ip(text.substr(0, slash));
  in_addr addr;
  if (inet_pton(AF_INET, ip.c_str(), &addr) != 1) {
    return absl::InvalidArgumentError(StrCat("\"", ip, "\" is not an IPv4 address"));
  }
  std::optional<int> len = ParseInt(text.substr(slash + 1));
  if (!len || *len < 0 || *len > 32) {
    return absl::InvalidArgumentError("prefix length must be 0..32");
  }
  Ipv4Cidr cidr{ntohl(addr.s_addr), *len};
  uint32_t mask = *len == 0 ? 0 : ~uint32_t{0} << (32 - *len);
  if ((cidr.address & ~mask) != 0) {
    Ipv4Cidr network{cidr.address & mask, *len};
    return absl::InvalidArgumentError(
        StrCat("host bits are set (did you mean ", network.ToString(), "?)"));
  }
  return cidr;
}

absl::StatusOr<HostPort> ParseHostPort(std::string_view text, bool allow_zero_port) {
  HostPort out;
  std::string_view port_text;
  if (!text.empty() && text.front() == '[') {
    size_t close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return absl::InvalidArgumentError("want [ipv6]:port");
    }
    out.host = std::string(text.substr(1, close - 1));
    port_text = text.substr(close + 2);
    in6_addr a6;
    if (inet_pton(AF_INET6, out.host.c_str(), &a6) != 1) {
      return absl::InvalidArgumentError(StrCat("\"", out.host, "\" is not an IPv6 address"));
    }
  } else {
    size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) return absl::InvalidArgumentError("want ip:port");
    out.host = std::string(text.substr(0, colon));
    port_text = text.substr(colon + 1);
    in_addr a4;
    if (inet_pton(AF_INET, out.host.c_str(), &a4) != 1) {
      return absl::InvalidArgumentError(
          StrCat("\"", out.host, "\" is not an IPv4 address (IPv6 goes in brackets)"));
    }
  }
  std::optional<int> port = ParseInt(port_text);
  int min_port = allow_zero_port ? 0 : 1;
  if (!port || *port < min_port || *port > 65535) {
    return absl::InvalidArgumentError(StrCat("port must be ", min_port, "..65535"));
  }
  out.port = static_cast<uint16_t>(*port);
  return out;
}

absl::Status ValidateStoreUrl(std::string_view url) {
  if (url == "embedded") return absl::OkStatus();
  constexpr std::string_view kEtcd = "etcd://";
  if (url.substr(0, kEtcd.size()) != kEtcd) {
    return absl::InvalidArgumentError("want \"embedded\" or \"etcd://host:port[,host:port]\"");
  }
  std::string_view rest = url.substr(kEtcd.size());
  if (rest.empty()) return absl::InvalidArgumentError("no etcd endpoint after etcd://");
  for (absl::string_view endpoint : absl::StrSplit(ToAbsl(rest), ',')) {
    std::string_view ep = ToStd(endpoint);
    size_t colon = ep.rfind(':');
    if (colon == std::string_view::npos || colon == 0) {
      return absl::InvalidArgumentError(StrCat("etcd endpoint \"", ep, "\": want host:port"));
    }
    std::optional<int> port = ParseInt(ep.substr(colon + 1));
    if (!port || *port < 1 || *port > 65535) {
      return absl::InvalidArgumentError(
          StrCat("etcd endpoint \"", ep, "\": port must be 1..65535"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<LoomdConfig> BuildConfig(const RawFlags& f, std::string_view hostname) {
  LoomdConfig c;
  c.node_name = f.node_name.empty() ? std::string(hostname) : f.node_name;
  if (!ValidDnsName(c.node_name, /*allow_upper=*/true)) {
    return FlagError("node-name", c.node_name,
                     "must be a DNS name (letters, digits, '-', '.'; at most 253 bytes)");
  }
  if (absl::Status s = ValidateStoreUrl(f.store); !s.ok()) {
    return FlagError("store", f.store, ToStd(s.message()));
  }
  c.store_url = f.store;
  RETURN_IF_ERROR(CheckPath("state-dir", f.state_dir));
  RETURN_IF_ERROR(CheckPath("run-dir", f.run_dir));
  c.state_dir = f.state_dir;
  c.cni_del_queue_dir = f.cni_del_queue_dir.empty() ? StrCat(f.state_dir, "/cni-del-queue")
                                                    : f.cni_del_queue_dir;
  c.run_dir = f.run_dir;
  c.api_socket = f.api_socket.empty() ? StrCat(f.run_dir, "/loomd.sock") : f.api_socket;
  RETURN_IF_ERROR(CheckPath("api-socket", c.api_socket));
  // The server binds a temporary name "<path>.<pid>.tmp" first; keep room for it.
  if (c.api_socket.size() + 16 >= sizeof(sockaddr_un::sun_path)) {
    return FlagError("api-socket", c.api_socket,
                     StrCat("unix socket path too long (at most ",
                            sizeof(sockaddr_un::sun_path) - 17, " bytes)"));
  }
  ASSIGN_OR_RETURN(c.metrics_addr,
                   ForFlag("metrics-addr", f.metrics_addr, ParseHostPort(f.metrics_addr)));
  if (!f.underlay_iface.empty() &&
      (f.underlay_iface.size() >= IFNAMSIZ || f.underlay_iface.find('/') != std::string::npos ||
       f.underlay_iface.find(' ') != std::string::npos)) {
    return FlagError("underlay-iface", f.underlay_iface, "not a valid interface name");
  }
  c.underlay_iface = f.underlay_iface;
  ASSIGN_OR_RETURN(c.cluster_cidr,
                   ForFlag("cluster-cidr", f.cluster_cidr, ParseIpv4Cidr(f.cluster_cidr)));
  if (f.node_cidr_size < c.cluster_cidr.prefix_len || f.node_cidr_size > 30) {
    return FlagError("node-cidr-size", std::to_string(f.node_cidr_size),
                     StrCat("must be between the cluster CIDR's prefix length (",
                            c.cluster_cidr.prefix_len, ") and 30"));
  }
  c.node_cidr_size = f.node_cidr_size;
  if (f.pod_cidr.empty()) {
    c.pod_cidr = {c.cluster_cidr.address, c.node_cidr_size};
  } else {
    ASSIGN_OR_RETURN(c.pod_cidr, ForFlag("pod-cidr", f.pod_cidr, ParseIpv4Cidr(f.pod_cidr)));
    uint32_t mask =
        c.cluster_cidr.prefix_len == 0 ? 0 : ~uint32_t{0} << (32 - c.cluster_cidr.prefix_len);
    if (c.pod_cidr.prefix_len < c.cluster_cidr.prefix_len ||
        (c.pod_cidr.address & mask) != c.cluster_cidr.address) {
      return FlagError("pod-cidr", f.pod_cidr,
                       StrCat("not inside --cluster-cidr ", c.cluster_cidr.ToString()));
    }
    if (c.pod_cidr.prefix_len > 30) {
      return FlagError("pod-cidr", f.pod_cidr, "prefix length must be at most 30");
    }
  }
  ASSIGN_OR_RETURN(c.service_cidr,
                   ForFlag("service-cidr", f.service_cidr, ParseIpv4Cidr(f.service_cidr)));
  {
    int shorter = std::min(c.cluster_cidr.prefix_len, c.service_cidr.prefix_len);
    uint32_t mask = shorter == 0 ? 0 : ~uint32_t{0} << (32 - shorter);
    if ((c.cluster_cidr.address & mask) == (c.service_cidr.address & mask)) {
      return FlagError("service-cidr", f.service_cidr,
                       StrCat("overlaps --cluster-cidr ", c.cluster_cidr.ToString()));
    }
  }
  if (!ValidDnsName(f.cluster_domain, /*allow_upper=*/false)) {
    return FlagError("cluster-domain", f.cluster_domain, "must be a lower-case DNS name");
  }
  c.cluster_domain = f.cluster_domain;
  ASSIGN_OR_RETURN(c.dns_addr, ForFlag("dns-addr", f.dns_addr, ParseHostPort(f.dns_addr)));
  if (f.dns_upstream == "none") {
    c.dns_forwarding = false;
  } else if (!f.dns_upstream.empty()) {
    for (absl::string_view part : absl::StrSplit(ToAbsl(f.dns_upstream), ',')) {
      std::string one(part);
      // A bare address means port 53.
      if (one.find(':') == std::string::npos || (one.front() == '[' && one.back() == ']')) {
        one += ":53";
      }
      ASSIGN_OR_RETURN(HostPort hp, ForFlag("dns-upstream", f.dns_upstream, ParseHostPort(one)));
      c.dns_upstream.push_back(hp);
    }
  }
  absl::Duration dns_ttl;
  if (!absl::ParseDuration(f.dns_ttl, &dns_ttl) || dns_ttl < absl::ZeroDuration() ||
      dns_ttl != absl::Seconds(absl::ToInt64Seconds(dns_ttl)) || dns_ttl > absl::Hours(24)) {
    return FlagError("dns-ttl", f.dns_ttl, "want whole seconds between 0s and 24h, such as 5s");
  }
  c.resolv_conf = f.resolv_conf;
  c.dns_ttl_seconds = static_cast<uint32_t>(absl::ToInt64Seconds(dns_ttl));
  if (f.dns_workers < 1 || f.dns_workers > 64) {
    return FlagError("dns-workers", std::to_string(f.dns_workers), "must be 1..64");
  }
  c.dns_workers = f.dns_workers;
  if (!absl::ParseDuration(f.dns_udp_coalesce, &c.dns_udp_coalesce) ||
      c.dns_udp_coalesce < absl::ZeroDuration() || c.dns_udp_coalesce > absl::Milliseconds(1)) {
    return FlagError("dns-udp-coalesce", f.dns_udp_coalesce,
                     "want a duration between 0s and 1ms, such as 20us");
  }
  if (f.dns_max_udp_size < 512 || f.dns_max_udp_size > 4096) {
    return FlagError("dns-max-udp-size", std::to_string(f.dns_max_udp_size), "must be 512..4096");
  }
  c.dns_max_udp_size = static_cast<uint16_t>(f.dns_max_udp_size);
  if (f.vxlan_vni < 1 || f.vxlan_vni > 16777215) {
    return FlagError("vxlan-vni", std::to_string(f.vxlan_vni), "must be 1..16777215");
  }
  c.vxlan_vni = static_cast<uint32_t>(f.vxlan_vni);
  if (f.vxlan_port < 1 || f.vxlan_port > 65535) {
    return FlagError("vxlan-port", std::to_string(f.vxlan_port), "must be 1..65535");
  }
  c.vxlan_port = static_cast<uint16_t>(f.vxlan_port);
  RETURN_IF_ERROR(CheckPath("bpffs-dir", f.bpffs_dir));
  RETURN_IF_ERROR(CheckPath("cgroup-root", f.cgroup_root));
  if (!f.cgroup2_dir.empty()) RETURN_IF_ERROR(CheckPath("cgroup2-dir", f.cgroup2_dir));
  RETURN_IF_ERROR(CheckPath("cni-conf-dir", f.cni_conf_dir));
  RETURN_IF_ERROR(CheckPath("cni-bin-dir", f.cni_bin_dir));
  c.bpffs_dir = f.bpffs_dir;
  c.cgroup_root = f.cgroup_root;
  c.lb = f.lb;
  c.cgroup2_dir = f.cgroup2_dir;
  c.cni_conf_dir = f.cni_conf_dir;
  c.cni_bin_dir = f.cni_bin_dir;
  ASSIGN_OR_RETURN(c.ingress_addr,
                   ForFlag("ingress-addr", f.ingress_addr, ParseHostPort(f.ingress_addr)));
  ASSIGN_OR_RETURN(c.ingress_tls_addr, ForFlag("ingress-tls-addr", f.ingress_tls_addr,
                                               ParseHostPort(f.ingress_tls_addr)));
  c.ingress = f.ingress;
  if (f.ingress_workers < 1 || f.ingress_workers > 64) {
    return FlagError("ingress-workers", std::to_string(f.ingress_workers), "must be 1..64");
  }
  c.ingress_workers = f.ingress_workers;
  if (!f.ingress_cert_dir.empty()) RETURN_IF_ERROR(CheckPath("ingress-cert-dir", f.ingress_cert_dir));
  c.ingress_cert_dir = f.ingress_cert_dir.empty() ? c.state_dir + "/ingress-certs" : f.ingress_cert_dir;
  if (!f.ingress_access_log.empty() && f.ingress_access_log != "-") {
    RETURN_IF_ERROR(CheckPath("ingress-access-log", f.ingress_access_log));
  }
  c.ingress_access_log = f.ingress_access_log;
  if (!ParseLogLevel(f.log_level, &c.log_level)) {
    return FlagError("log-level", f.log_level, "want debug, info, warning or error");
  }
  absl::Duration ttl;
  if (!absl::ParseDuration(f.node_lease_ttl, &ttl)) {
    return FlagError("node-lease-ttl", f.node_lease_ttl, "want a duration such as 10s");
  }
  if (ttl < absl::Seconds(1) || ttl > absl::Hours(1)) {
    return FlagError("node-lease-ttl", f.node_lease_ttl, "must be between 1s and 1h");
  }
  c.node_lease_ttl = ttl;
  c.overlay = f.overlay;
  c.direct_routing = f.direct_routing;
  absl::Duration grace;
  if (!absl::ParseDuration(f.subnet_grace, &grace) || grace < absl::ZeroDuration()) {
    return FlagError("subnet-grace", f.subnet_grace, "want a duration such as 10m");
  }
  c.subnet_grace = grace;
  return c;
}

}  // namespace loom::agent
