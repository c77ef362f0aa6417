#include "cni/plugin/plumbing.h"

#include <cstdio>

#include "common/net/netlink.h"
#include "common/status.h"
#include "common/strings.h"

namespace loom::cni {
namespace {

const net::Ipv4Address kGateway(169, 254, 1, 1);

uint64_t Fnv1a(std::string_view a, std::string_view b) {
  uint64_t h = 1469598103934665603ull;
  auto mix = [&](std::string_view s) {
    for (unsigned char c : s) {
      h ^= c;
      h *= 1099511628211ull;
    }
  };
  mix(a);
  mix("/");
  mix(b);
  return h;
}

absl::Status Drift(std::string_view what) {
  return absl::FailedPreconditionError(StrCat("CHECK: ", what));
}

}  // namespace

std::string HostVethName(std::string_view container_id, std::string_view ifname) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "lm%011llx",
                static_cast<unsigned long long>(Fnv1a(container_id, ifname) & 0xfffffffffffull));
  return buf;
}

absl::Status EnsureNoInterface(const net::NetnsFd& netns, const std::string& ifname) {
  return net::RunInNetns(netns, [&]() -> absl::Status {
    ASSIGN_OR_RETURN(net::Netlink nl, net::Netlink::Create());
    if (nl.LinkIndex(ifname).ok()) {
      return absl::AlreadyExistsError(
          StrCat("interface ", ifname, " already exists in ", netns.path()));
    }
    return absl::OkStatus();
  });
}

absl::StatusOr<PodLink> SetUpPodLink(const net::NetnsFd& netns, const PodLinkSpec& spec) {
  ASSIGN_OR_RETURN(net::Netlink host, net::Netlink::Create());
  // A host veth of the same name is a leftover of an earlier, interrupted ADD of
  // this very attachment (the name is derived from it).
  RETURN_IF_ERROR(host.DeleteLinkIfExists(spec.host_veth));
  net::VethSpec veth;
  veth.name = spec.host_veth;
  veth.peer_name = spec.ifname;
  veth.peer_netns_fd = netns.get();
  veth.mtu = spec.mtu;
  RETURN_IF_ERROR(host.CreateVeth(veth));
  PodLink link;
  link.host_veth = spec.host_veth;
  link.mtu = spec.mtu;
  absl::Status status = [&]() -> absl::Status {
    ASSIGN_OR_RETURN(net::LinkInfo host_info, host.GetLink(spec.host_veth));
    if (!host_info.mac) return absl::InternalError("host veth has no MAC");
    link.host_mac = host_info.mac->ToString();
    RETURN_IF_ERROR(net::RunInNetns(netns, [&]() -> absl::Status {
      ASSIGN_OR_RETURN(net::Netlink pod, net::Netlink::Create());
      RETURN_IF_ERROR(pod.AddAddress(spec.ifname, {net::Ipv4Prefix::Host(spec.ip)}));
      RETURN_IF_ERROR(pod.SetLinkUp(spec.ifname));
      RETURN_IF_ERROR(pod.ReplaceNeighbour({kGateway, *host_info.mac, spec.ifname, true}));
      net::Route def;
      def.dst = net::Ipv4Prefix();
      def.gateway = kGateway;
      def.oif = spec.ifname;
      def.onlink = true;
      RETURN_IF_ERROR(pod.AddRoute(def));
      ASSIGN_OR_RETURN(net::LinkInfo pod_info, pod.GetLink(spec.ifname));
      if (pod_info.mac) link.pod_mac = pod_info.mac->ToString();
      return absl::OkStatus();
    }));
    RETURN_IF_ERROR(host.SetLinkUp(spec.host_veth));
    net::Route to_pod;
    to_pod.dst = net::Ipv4Prefix::Host(spec.ip);
    to_pod.oif = spec.host_veth;
    to_pod.scope = net::Scope::kLink;
    return host.ReplaceRoute(to_pod);
  }();
  if (!status.ok()) {
    host.DeleteLinkIfExists(spec.host_veth).IgnoreError();
    return status;
  }
  return link;
}

absl::Status DeleteHostVeth(const std::string& host_veth) {
  ASSIGN_OR_RETURN(net::Netlink host, net::Netlink::Create());
  return host.DeleteLinkIfExists(host_veth);
}

absl::Status CheckPodLink(const net::NetnsFd& netns, const PodLinkSpec& spec) {
  ASSIGN_OR_RETURN(net::Netlink host, net::Netlink::Create());
  absl::StatusOr<net::LinkInfo> hv = host.GetLink(spec.host_veth);
  if (!hv.ok()) return Drift(StrCat("host veth ", spec.host_veth, " is missing"));
  if (!hv->up) return Drift(StrCat("host veth ", spec.host_veth, " is down"));
  ASSIGN_OR_RETURN(std::vector<net::Route> host_routes, host.ListRoutes());
  bool routed = false;
  for (const net::Route& r : host_routes) {
    if (r.dst == net::Ipv4Prefix::Host(spec.ip) && r.oif && r.oif->index == hv->index) routed = true;
  }
  if (!routed) {
    return Drift(StrCat("host route ", spec.ip.ToString(), "/32 dev ", spec.host_veth, " is missing"));
  }
  return net::RunInNetns(netns, [&]() -> absl::Status {
    ASSIGN_OR_RETURN(net::Netlink pod, net::Netlink::Create());
    absl::StatusOr<net::LinkInfo> link = pod.GetLink(spec.ifname);
    if (!link.ok()) return Drift(StrCat("interface ", spec.ifname, " is missing in ", netns.path()));
    if (link->kind != "veth") return Drift(StrCat(spec.ifname, " is a ", link->kind, ", not a veth"));
    if (!link->up) return Drift(StrCat(spec.ifname, " is down"));
    ASSIGN_OR_RETURN(std::vector<net::InterfaceAddress> addrs, pod.ListAddresses(spec.ifname));
    bool has = false;
    for (const net::InterfaceAddress& a : addrs) has |= a.local == net::Ipv4Prefix::Host(spec.ip);
    if (!has) return Drift(StrCat(spec.ifname, " lacks address ", spec.ip.ToString(), "/32"));
    ASSIGN_OR_RETURN(std::vector<net::Route> routes, pod.ListRoutes());
    bool def = false;
    for (const net::Route& r : routes) {
      def |= r.dst.length() == 0 && r.gateway == kGateway && r.oif && r.oif->index == link->index;
    }
    if (!def) return Drift(StrCat("default route via ", kPodGateway, " dev ", spec.ifname, " is missing"));
    return absl::OkStatus();
  });
}

}  // namespace loom::cni
