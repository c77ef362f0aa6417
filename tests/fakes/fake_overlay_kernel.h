// An in-memory OverlayKernel: links, addresses, neighbours, FDB entries and main-table
// routes, with the kernel's behaviours the overlay relies on (deleting a link removes
// its entries and routes), a write counter and injectable failures.
#pragma once

#include <algorithm>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "common/strings.h"
#include "overlay/overlay_kernel.h"

namespace loom::testing {

class FakeOverlayKernel : public overlay::OverlayKernel {
 public:
  FakeOverlayKernel() { AddPhysical("eth0", 1500); }

  // A plain link (the underlay), with an address.
  int AddPhysical(const std::string& name, uint32_t mtu,
                  std::optional<net::Ipv4Prefix> address = std::nullopt) {
    net::LinkInfo l;
    l.index = next_index_++;
    l.name = name;
    l.mtu = mtu;
    l.up = true;
    links_[l.index] = l;
    if (address) addrs_[l.index].push_back({*address, std::nullopt, net::Scope::kUniverse});
    return l.index;
  }

  absl::StatusOr<std::optional<net::LinkInfo>> FindLink(std::string_view name) override {
    for (auto& [i, l] : links_) {
      if (l.name == name) return std::optional<net::LinkInfo>(l);
    }
    return std::optional<net::LinkInfo>();
  }
  absl::Status CreateVxlan(const net::VxlanSpec& s) override {
    RETURN_IF_ERROR(Fail("create"));
    ++writes;
    for (auto& [i, l] : links_) {
      if (l.name == s.name) return absl::AlreadyExistsError(StrCat("link ", s.name, " exists"));
    }
    net::LinkInfo l;
    l.index = next_index_++;
    l.name = s.name;
    l.kind = "vxlan";
    l.mtu = s.mtu.value_or(1450);
    l.mac = s.mac;
    net::VxlanInfo v;
    v.vni = s.vni;
    v.port = s.port;
    v.local = s.local;
    v.learning = s.learning;
    v.underlay_index = s.underlay ? s.underlay->index : 0;
    l.vxlan = v;
    links_[l.index] = l;
    return absl::OkStatus();
  }
  absl::Status DeleteLink(const net::LinkRef& ref) override {
    ++writes;
    ASSIGN_OR_RETURN(int i, Index(ref));
    links_.erase(i);
    addrs_.erase(i);
    neighs_.erase(i);
    fdb_.erase(i);
    std::erase_if(routes_, [&](const net::Route& r) { return r.oif && r.oif->index == i; });
    return absl::OkStatus();
  }
  absl::Status SetLinkUp(const net::LinkRef& ref) override {
    ++writes;
    ASSIGN_OR_RETURN(int i, Index(ref));
    links_[i].up = true;
    return absl::OkStatus();
  }
  absl::Status SetMtu(const net::LinkRef& ref, uint32_t mtu) override {
    ++writes;
    ASSIGN_OR_RETURN(int i, Index(ref));
    links_[i].mtu = mtu;
    return absl::OkStatus();
  }
  absl::Status SetMacAddress(const net::LinkRef& ref, const net::MacAddress& mac) override {
    ++writes;
    ASSIGN_OR_RETURN(int i, Index(ref));
    links_[i].mac = mac;
    return absl::OkStatus();
  }
  absl::StatusOr<std::vector<net::InterfaceAddress>> ListAddresses(
      const net::LinkRef& ref) override {
    ASSIGN_OR_RETURN(int i, Index(ref));
    return addrs_[i];
  }
  absl::Status AddAddress(const net::LinkRef& ref, const net::InterfaceAddress& a) override {
    ++writes;
    ASSIGN_OR_RETURN(int i, Index(ref));
    addrs_[i].push_back(a);
    return absl::OkStatus();
  }
  absl::Status DeleteAddress(const net::LinkRef& ref, const net::InterfaceAddress& a) override {
    ++writes;
    ASSIGN_OR_RETURN(int i, Index(ref));
    std::erase_if(addrs_[i], [&](const net::InterfaceAddress& x) { return x.local == a.local; });
    return absl::OkStatus();
  }
  absl::StatusOr<std::vector<net::Neighbour>> ListNeighbours(const net::LinkRef& ref) override {
    ASSIGN_OR_RETURN(int i, Index(ref));
    std::vector<net::Neighbour> out;
    for (auto& [ip, n] : neighs_[i]) out.push_back(n);
    return out;
  }
  absl::Status ReplaceNeighbour(const net::Neighbour& n) override {
    RETURN_IF_ERROR(Fail("neighbour"));
    ++writes;
    ASSIGN_OR_RETURN(int i, Index(n.link));
    net::Neighbour copy = n;
    copy.link = net::LinkRef(i);
    neighs_[i][n.ip] = copy;
    return absl::OkStatus();
  }
  absl::Status DeleteNeighbour(const net::Neighbour& n) override {
    ++writes;
    ASSIGN_OR_RETURN(int i, Index(n.link));
    if (neighs_[i].erase(n.ip) == 0) return absl::NotFoundError("no such neighbour");
    return absl::OkStatus();
  }
  absl::StatusOr<std::vector<net::FdbEntry>> ListFdbEntries(const net::LinkRef& ref) override {
    ASSIGN_OR_RETURN(int i, Index(ref));
    std::vector<net::FdbEntry> out;
    // What the kernel lists for the device's own multicast addresses.
    net::FdbEntry mc;
    mc.mac = net::MacAddress({0x33, 0x33, 0, 0, 0, 1});
    mc.link = net::LinkRef(i);
    out.push_back(mc);
    for (auto& [mac, e] : fdb_[i]) out.push_back(e);
    return out;
  }
  absl::Status ReplaceFdbEntry(const net::FdbEntry& e) override {
    RETURN_IF_ERROR(Fail("fdb"));
    ++writes;
    ASSIGN_OR_RETURN(int i, Index(e.link));
    net::FdbEntry copy = e;
    copy.link = net::LinkRef(i);
    fdb_[i][e.mac] = copy;
    return absl::OkStatus();
  }
  absl::Status DeleteFdbEntry(const net::FdbEntry& e) override {
    ++writes;
    ASSIGN_OR_RETURN(int i, Index(e.link));
    if (fdb_[i].erase(e.mac) == 0) return absl::NotFoundError("no such fdb entry");
    return absl::OkStatus();
  }
  absl::StatusOr<std::vector<net::Route>> ListRoutes() override { return routes_; }
  absl::Status ReplaceRoute(const net::Route& r) override {
    RETURN_IF_ERROR(Fail("route"));
    ++writes;
    net::Route copy = r;
    if (copy.oif) {
      ASSIGN_OR_RETURN(int i, Index(*copy.oif));
      copy.oif = net::LinkRef(i);
      copy.oif->name = links_[i].name;
    }
    std::erase_if(routes_, [&](const net::Route& x) { return x.dst == r.dst; });
    routes_.push_back(copy);
    return absl::OkStatus();
  }
  absl::Status DeleteRoute(const net::Route& r) override {
    ++writes;
    size_t n = std::erase_if(routes_, [&](const net::Route& x) {
      return x.dst == r.dst && (!r.protocol || x.protocol == r.protocol);
    });
    if (n == 0) return absl::NotFoundError(StrCat("no route ", r.dst.ToString()));
    return absl::OkStatus();
  }

  // Test access.
  std::map<int, net::LinkInfo>& links() { return links_; }
  std::vector<net::Route>& routes() { return routes_; }
  std::map<net::Ipv4Address, net::Neighbour>& neighbours(int link) { return neighs_[link]; }
  std::map<net::MacAddress, net::FdbEntry>& fdb(int link) { return fdb_[link]; }
  std::vector<net::InterfaceAddress>& addresses(int link) { return addrs_[link]; }
  // The next write of this kind ("create", "neighbour", "fdb", "route") fails.
  void FailNext(const std::string& what) { fail_next_ = what; }

  uint64_t writes = 0;

 private:
  absl::Status Fail(const std::string& what) {
    if (fail_next_ != what) return absl::OkStatus();
    fail_next_.clear();
    return absl::InternalError(StrCat("injected ", what, " failure"));
  }
  absl::StatusOr<int> Index(const net::LinkRef& ref) {
    if (ref.index > 0) {
      if (!links_.count(ref.index)) return absl::NotFoundError(StrCat("no link ", ref.index));
      return ref.index;
    }
    for (auto& [i, l] : links_) {
      if (l.name == ref.name) return i;
    }
    return absl::NotFoundError(StrCat("no link ", ref.name));
  }

  int next_index_ = 1;
  std::map<int, net::LinkInfo> links_;
  std::map<int, std::vector<net::InterfaceAddress>> addrs_;
  std::map<int, std::map<net::Ipv4Address, net::Neighbour>> neighs_;
  std::map<int, std::map<net::MacAddress, net::FdbEntry>> fdb_;
  std::vector<net::Route> routes_;
  std::string fail_next_;
};

}  // namespace loom::testing
