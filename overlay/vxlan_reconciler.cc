#include "overlay/vxlan_reconciler.h"

#include <algorithm>
#include <map>
#include <set>

#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "common/log.h"
#include "common/status.h"
#include "common/strings.h"

namespace loom::overlay {
namespace {

bool SameRoute(const net::Route& have, const net::Route& want) {
  return have.dst == want.dst && have.gateway == want.gateway && have.oif.has_value() &&
         have.oif->index == want.oif->index && have.onlink == want.onlink &&
         have.protocol == want.protocol && have.table == want.table;
}

// FDB entries that point a unicast MAC at a remote VTEP; the kernel also lists the
// multicast entries of the device's own addresses, which are not ours.
bool IsPeerFdb(const net::FdbEntry& e) {
  return e.dst.has_value() && !e.mac.IsMulticast() && !e.mac.IsZero();
}

}  // namespace

std::string DeviceName(uint32_t vni) { return StrCat("loom.", vni); }

net::MacAddress VtepMac(std::string_view node_name) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : node_name) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return net::MacAddress::RandomLocal(h);
}

VxlanReconciler::VxlanReconciler(OverlayKernel* kernel, ReconcilerOptions options)
    : kernel_(kernel), options_(options) {}

absl::Status VxlanReconciler::Write(absl::Status status) {
  ++writes_;
  return status;
}

absl::Status VxlanReconciler::EnsureDevice(const DeviceConfig& c) {
  ASSIGN_OR_RETURN(std::optional<net::LinkInfo> underlay, kernel_->FindLink(c.underlay_iface));
  if (!underlay) {
    return absl::NotFoundError(StrCat("underlay interface ", c.underlay_iface, " not found"));
  }
  if (underlay->mtu <= kVxlanOverhead + 68) {
    return absl::FailedPreconditionError(
        StrCat("underlay ", c.underlay_iface, " MTU ", underlay->mtu, " too small for VXLAN"));
  }
  underlay_index_ = underlay->index;
  underlay_subnet_.reset();
  ASSIGN_OR_RETURN(std::vector<net::InterfaceAddress> underlay_addrs,
                   kernel_->ListAddresses(underlay_index_));
  for (const net::InterfaceAddress& a : underlay_addrs) {
    if (a.local.address() == c.underlay_ip) underlay_subnet_ = a.local.network();
  }
  device_ = DeviceName(c.vni);
  mtu_ = underlay->mtu - kVxlanOverhead;

  ASSIGN_OR_RETURN(std::optional<net::LinkInfo> link, kernel_->FindLink(device_));
  if (link) {
    const std::optional<net::VxlanInfo>& v = link->vxlan;
    bool same = link->kind == "vxlan" && v.has_value() && v->vni == c.vni && v->port == c.port &&
                v->local == c.underlay_ip && !v->learning && v->underlay_index == underlay_index_;
    if (!same) {
      LOG_INFO("overlay device drifted; recreating", {"device", device_}, {"kind", link->kind},
               {"vni", v ? v->vni : 0}, {"port", v ? v->port : 0},
               {"local", v && v->local ? v->local->ToString() : ""});
      RETURN_IF_ERROR(Write(kernel_->DeleteLink(device_)));
      link.reset();
    }
  }
  if (!link) {
    net::VxlanSpec spec;
    spec.name = device_;
    spec.vni = c.vni;
    spec.port = c.port;
    spec.local = c.underlay_ip;
    spec.underlay = net::LinkRef(underlay_index_);
    spec.learning = false;
    spec.mtu = mtu_;
    spec.mac = c.mac;
    RETURN_IF_ERROR(Write(kernel_->CreateVxlan(spec)));
    ASSIGN_OR_RETURN(link, kernel_->FindLink(device_));
    if (!link) return absl::InternalError(StrCat(device_, " vanished after creation"));
    LOG_INFO("overlay device created", {"device", device_}, {"vni", c.vni}, {"port", c.port},
             {"local", c.underlay_ip.ToString()}, {"mtu", mtu_});
  }
  device_index_ = link->index;
  if (link->mtu != mtu_) RETURN_IF_ERROR(Write(kernel_->SetMtu(device_index_, mtu_)));
  if (link->mac != c.mac) RETURN_IF_ERROR(Write(kernel_->SetMacAddress(device_index_, c.mac)));

  // Exactly the subnet's .0/32: the address peers' neighbour entries name.
  net::InterfaceAddress want{net::Ipv4Prefix::Host(c.pod_cidr.NetworkAddress()), std::nullopt,
                             net::Scope::kUniverse};
  ASSIGN_OR_RETURN(std::vector<net::InterfaceAddress> addrs,
                   kernel_->ListAddresses(device_index_));
  bool have = false;
  for (const net::InterfaceAddress& a : addrs) {
    if (a.local == want.local) {
      have = true;
    } else {
      RETURN_IF_ERROR(Write(kernel_->DeleteAddress(device_index_, a)));
    }
  }
  if (!have) RETURN_IF_ERROR(Write(kernel_->AddAddress(device_index_, want)));
  if (!link->up) RETURN_IF_ERROR(Write(kernel_->SetLinkUp(device_index_)));
  return absl::OkStatus();
}

bool VxlanReconciler::Direct(const Peer& p) const {
  return options_.direct_routing && underlay_subnet_.has_value() &&
         underlay_subnet_->Contains(p.underlay_ip);
}

net::Route VxlanReconciler::WantedRoute(const Peer& p) const {
  net::Route r;
  r.dst = p.pod_cidr.network();
  r.protocol = kRouteProtocol;
  if (Direct(p)) {
    r.gateway = p.underlay_ip;
    r.oif = net::LinkRef(underlay_index_);
  } else {
    r.gateway = p.pod_cidr.NetworkAddress();
    r.oif = net::LinkRef(device_index_);
    r.onlink = true;
  }
  return r;
}

absl::Status VxlanReconciler::SetPeers(const std::vector<Peer>& peers_in) {
  if (device_index_ == 0) return absl::FailedPreconditionError("overlay device not set up");
  std::vector<Peer> peers = peers_in;
  std::sort(peers.begin(), peers.end(),
            [](const Peer& a, const Peer& b) { return a.node < b.node; });
  std::vector<std::string> errors;
  // Subnets must not overlap each other: one route per subnet.
  {
    std::vector<Peer> kept;
    for (const Peer& p : peers) {
      bool clash = std::any_of(kept.begin(), kept.end(), [&](const Peer& k) {
        return k.pod_cidr.Overlaps(p.pod_cidr);
      });
      if (clash) {
        errors.push_back(StrCat("peer ", p.node, ": subnet ", p.pod_cidr.ToString(),
                                " overlaps another peer's"));
        continue;
      }
      kept.push_back(p);
    }
    peers.swap(kept);
  }

  std::map<net::Ipv4Address, net::MacAddress> want_neigh;
  std::map<net::MacAddress, net::Ipv4Address> want_fdb;
  std::map<net::Ipv4Prefix, net::Route> want_routes;
  for (const Peer& p : peers) {
    if (!Direct(p)) {
      want_neigh[p.pod_cidr.NetworkAddress()] = p.vtep_mac;
      want_fdb[p.vtep_mac] = p.underlay_ip;
    }
    want_routes[p.pod_cidr.network()] = WantedRoute(p);
  }

  ASSIGN_OR_RETURN(std::vector<net::Route> all_routes, kernel_->ListRoutes());
  ASSIGN_OR_RETURN(std::vector<net::FdbEntry> fdb, kernel_->ListFdbEntries(device_index_));
  ASSIGN_OR_RETURN(std::vector<net::Neighbour> neighs, kernel_->ListNeighbours(device_index_));
  std::map<net::Ipv4Prefix, net::Route> have_routes;
  std::map<net::MacAddress, net::Ipv4Address> have_fdb;
  std::map<net::Ipv4Address, net::Neighbour> have_neigh;

  // Removals, in the reverse order of additions: routes, FDB, neighbours.
  for (const net::Route& r : all_routes) {
    if (r.protocol != kRouteProtocol) continue;
    if (want_routes.count(r.dst) && !have_routes.count(r.dst)) {
      have_routes[r.dst] = r;
      continue;
    }
    net::Route del = r;
    if (absl::Status s = Write(kernel_->DeleteRoute(del)); !s.ok() && !absl::IsNotFound(s)) {
      errors.push_back(std::string(s.message()));
    }
  }
  for (const net::FdbEntry& e : fdb) {
    if (!IsPeerFdb(e)) continue;
    auto it = want_fdb.find(e.mac);
    if (it != want_fdb.end() && !have_fdb.count(e.mac)) {
      have_fdb[e.mac] = *e.dst;
      continue;
    }
    if (absl::Status s = Write(kernel_->DeleteFdbEntry(e)); !s.ok() && !absl::IsNotFound(s)) {
      errors.push_back(std::string(s.message()));
    }
  }
  for (const net::Neighbour& n : neighs) {
    if (want_neigh.count(n.ip)) {
      have_neigh[n.ip] = n;
      continue;
    }
    if (absl::Status s = Write(kernel_->DeleteNeighbour(n)); !s.ok() && !absl::IsNotFound(s)) {
      errors.push_back(std::string(s.message()));
    }
  }

  // Additions and repairs, peer by peer: neighbour, FDB, then the route, so that the
  // kernel never has a route it would have to ARP for.
  int programmed = 0;
  for (const Peer& p : peers) {
    absl::Time start = absl::Now();
    bool wrote = false;
    absl::Status st = [&]() -> absl::Status {
      if (!Direct(p)) {
        net::Ipv4Address gw = p.pod_cidr.NetworkAddress();
        auto n = have_neigh.find(gw);
        if (n == have_neigh.end() || n->second.mac != p.vtep_mac || !n->second.permanent) {
          wrote = true;
          RETURN_IF_ERROR(Write(kernel_->ReplaceNeighbour(
              net::Neighbour{gw, p.vtep_mac, net::LinkRef(device_index_), true})));
        }
        auto f = have_fdb.find(p.vtep_mac);
        if (f == have_fdb.end() || f->second != p.underlay_ip) {
          wrote = true;
          net::FdbEntry e;
          e.mac = p.vtep_mac;
          e.dst = p.underlay_ip;
          e.link = net::LinkRef(device_index_);
          RETURN_IF_ERROR(Write(kernel_->ReplaceFdbEntry(e)));
        }
      }
      const net::Route& want = want_routes[p.pod_cidr.network()];
      auto r = have_routes.find(want.dst);
      if (r == have_routes.end() || !SameRoute(r->second, want)) {
        wrote = true;
        RETURN_IF_ERROR(Write(kernel_->ReplaceRoute(want)));
      }
      return absl::OkStatus();
    }();
    if (!st.ok()) {
      // Roll back what this peer has, so no half-programmed peer stays behind.
      (void)Write(kernel_->DeleteRoute(want_routes[p.pod_cidr.network()]));
      if (!Direct(p)) {
        net::FdbEntry e;
        e.mac = p.vtep_mac;
        e.dst = p.underlay_ip;
        e.link = net::LinkRef(device_index_);
        (void)Write(kernel_->DeleteFdbEntry(e));
        (void)Write(kernel_->DeleteNeighbour(net::Neighbour{
            p.pod_cidr.NetworkAddress(), p.vtep_mac, net::LinkRef(device_index_), true}));
      }
      errors.push_back(StrCat("peer ", p.node, ": ", st.message()));
      continue;
    }
    if (wrote) last_peer_time_ = absl::Now() - start;
    ++programmed;
  }
  peers_programmed_ = programmed;
  if (!errors.empty()) {
    return absl::InternalError(StrCat("overlay peers: ", absl::StrJoin(errors, "; ")));
  }
  return absl::OkStatus();
}

absl::Status VxlanReconciler::RemoveAll() {
  if (device_index_ != 0) RETURN_IF_ERROR(SetPeers({}));
  if (!device_.empty()) {
    ASSIGN_OR_RETURN(std::optional<net::LinkInfo> link, kernel_->FindLink(device_));
    if (link) RETURN_IF_ERROR(Write(kernel_->DeleteLink(device_)));
  }
  device_index_ = 0;
  peers_programmed_ = 0;
  return absl::OkStatus();
}

}  // namespace loom::overlay
