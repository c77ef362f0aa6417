// Privileged: every topology lives in namespaces the test creates (see test_netns.h);
// the root namespace is only read.
#include "common/net/netlink.h"

#include <dirent.h>

#include <algorithm>
#include <memory>

#include "common/net/netns.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/privileged.h"
#include "tests/testing/status_matchers.h"
#include "tests/unit/common/net/test_netns.h"

namespace loom::net {
namespace {

using ::loom::net::testing::TestNetns;
using ::loom::testing::IsOk;
using ::loom::testing::StatusIs;
using ::testing::Contains;
using ::testing::Eq;
using ::testing::Field;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::Optional;
using ::testing::SizeIs;

Ipv4Address Ip(std::string_view text) { return Ipv4Address::Parse(text).value(); }
Ipv4Prefix Net(std::string_view text) { return Ipv4Prefix::ParseHost(text).value(); }
MacAddress Mac(std::string_view text) { return MacAddress::Parse(text).value(); }

int CountOpenFds() {
  int count = 0;
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return -1;
  while (dirent* entry = readdir(dir)) {
    if (entry->d_name[0] != '.') ++count;
  }
  closedir(dir);
  return count;
}

class NetlinkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    LOOM_REQUIRE_ROOT();
    ns_ = std::make_unique<TestNetns>("nl");
    ASSERT_OK(ns_->status());
    auto nl = ns_->Connect();
    ASSERT_OK(nl);
    nl_ = std::make_unique<Netlink>(std::move(*nl));
  }

  // The underlay: "under0" (a veth whose peer stays here too, both up, so it has
  // carrier) with 198.51.100.1/24. This kernel family may lack the dummy driver.
  void MakeUnderlay() {
    ASSERT_OK(nl_->CreateVeth("under0", "under0-peer"));
    ASSERT_OK(nl_->SetLinkUp("under0-peer"));
    ASSERT_OK(nl_->AddAddress("under0", {Net("198.51.100.1/24")}));
    ASSERT_OK(nl_->SetLinkUp("under0"));
  }

  void MakeVxlan() {
    MakeUnderlay();
    VxlanSpec spec;
    spec.name = "loom.1";
    spec.vni = 42;
    spec.port = 4789;
    spec.local = Ip("198.51.100.1");
    spec.underlay = LinkRef("under0");
    spec.mtu = 1450;
    spec.mac = Mac("02:00:00:00:00:01");
    ASSERT_OK(nl_->CreateVxlan(spec));
    ASSERT_OK(nl_->SetLinkUp("loom.1"));
  }

  std::unique_ptr<TestNetns> ns_;
  std::unique_ptr<Netlink> nl_;
};

TEST_F(NetlinkTest, VethPairAcrossNamespaces) {
  TestNetns other("nl-peer");
  ASSERT_OK(other.status());
  ASSERT_OK_AND_ASSIGN(Netlink other_nl, other.Connect());

  // Peer created directly in the other namespace.
  ASSERT_OK(nl_->CreateVeth("veth-a", "veth-b", other.fd().get()));
  ASSERT_OK_AND_ASSIGN(LinkInfo a, nl_->GetLink("veth-a"));
  EXPECT_EQ(a.kind, "veth");
  EXPECT_EQ(a.name, "veth-a");
  EXPECT_GT(a.index, 0);
  EXPECT_TRUE(a.mac.has_value());
  EXPECT_FALSE(a.up);
  EXPECT_THAT(nl_->GetLink("veth-b"), StatusIs(absl::StatusCode::kNotFound));
  ASSERT_OK_AND_ASSIGN(LinkInfo b, other_nl.GetLink("veth-b"));
  EXPECT_EQ(b.kind, "veth");

  // Both ends here, then one moved across.
  VethSpec spec;
  spec.name = "veth-c";
  spec.peer_name = "veth-d";
  spec.mtu = 1400;
  spec.mac = Mac("02:00:00:00:00:0c");
  spec.peer_mac = Mac("02:00:00:00:00:0d");
  ASSERT_OK(nl_->CreateVeth(spec));
  ASSERT_OK_AND_ASSIGN(LinkInfo c, nl_->GetLink("veth-c"));
  EXPECT_EQ(c.mtu, 1400u);
  EXPECT_THAT(c.mac, Optional(Eq(Mac("02:00:00:00:00:0c"))));
  ASSERT_OK_AND_ASSIGN(LinkInfo d, nl_->GetLink("veth-d"));
  EXPECT_EQ(c.link_index, d.index);
  EXPECT_EQ(d.link_index, c.index);
  EXPECT_THAT(d.mac, Optional(Eq(Mac("02:00:00:00:00:0d"))));
  ASSERT_OK(nl_->MoveToNetns("veth-d", other.fd().get()));
  EXPECT_THAT(nl_->GetLink("veth-d"), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(nl_->MoveToNetns("veth-c", 9999), StatusIs(absl::StatusCode::kInvalidArgument));
  ASSERT_OK_AND_ASSIGN(LinkInfo moved, other_nl.GetLink("veth-d"));
  EXPECT_EQ(moved.mtu, 1400u);

  // Duplicates and deletion; deleting one end removes the pair.
  EXPECT_THAT(nl_->CreateVeth("veth-a", "veth-x"),
              StatusIs(absl::StatusCode::kAlreadyExists, HasSubstr("create veth veth-a")));
  ASSERT_OK(nl_->DeleteLink("veth-a"));
  EXPECT_THAT(other_nl.GetLink("veth-b"), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(nl_->DeleteLink("veth-a"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("delete link veth-a")));
  EXPECT_OK(nl_->DeleteLinkIfExists("veth-a"));
  ASSERT_OK(nl_->DeleteLinkIfExists(c.index));
  EXPECT_THAT(other_nl.GetLink("veth-d"), StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(NetlinkTest, LinkAttributes) {
  ASSERT_OK(nl_->CreateBridge("dummy0"));
  ASSERT_OK_AND_ASSIGN(LinkInfo info, nl_->GetLink("dummy0"));
  EXPECT_EQ(info.kind, "bridge");
  EXPECT_FALSE(info.up);
  ASSERT_OK(nl_->SetLinkUp("dummy0"));
  ASSERT_OK(nl_->SetMtu("dummy0", 1300));
  ASSERT_OK(nl_->SetMacAddress(info.index, Mac("02:11:22:33:44:55")));
  ASSERT_OK_AND_ASSIGN(info, nl_->GetLink(info.index));
  EXPECT_TRUE(info.up);
  EXPECT_EQ(info.mtu, 1300u);
  EXPECT_THAT(info.mac, Optional(Eq(Mac("02:11:22:33:44:55"))));
  EXPECT_THAT(nl_->LinkIndex("dummy0"), ::loom::testing::IsOkAndHolds(Eq(info.index)));
  ASSERT_OK(nl_->SetLinkDown("dummy0"));
  ASSERT_OK_AND_ASSIGN(info, nl_->GetLink("dummy0"));
  EXPECT_FALSE(info.up);

  ASSERT_OK_AND_ASSIGN(std::vector<LinkInfo> links, nl_->ListLinks());
  EXPECT_THAT(links, Contains(Field(&LinkInfo::name, "lo")));
  EXPECT_THAT(links, Contains(Field(&LinkInfo::name, "dummy0")));
  EXPECT_THAT(links, SizeIs(2));

  EXPECT_THAT(nl_->CreateBridge("dummy0"), StatusIs(absl::StatusCode::kAlreadyExists));
  EXPECT_THAT(nl_->CreateBridge("name-longer-than-15"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("invalid link name")));
  EXPECT_THAT(nl_->SetLinkUp("nosuch0"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("set link nosuch0 up")));
  EXPECT_THAT(nl_->SetMtu("dummy0", 10), Not(IsOk()));
}

TEST_F(NetlinkTest, DummyLink) {
  absl::Status status = nl_->CreateDummy("dummy1");
  // Some kernels (this VM's among them) are built without CONFIG_DUMMY: then the
  // error must say so plainly, and nothing may be left behind.
  if (absl::IsUnimplemented(status)) {
    EXPECT_THAT(status.message(), HasSubstr("create dummy dummy1"));
    EXPECT_THAT(nl_->GetLink("dummy1"), StatusIs(absl::StatusCode::kNotFound));
    return;
  }
  ASSERT_OK(status);
  ASSERT_OK_AND_ASSIGN(LinkInfo info, nl_->GetLink("dummy1"));
  EXPECT_EQ(info.kind, "dummy");
  EXPECT_THAT(nl_->CreateDummy("dummy1"), StatusIs(absl::StatusCode::kAlreadyExists));
  ASSERT_OK(nl_->DeleteLink("dummy1"));
}

TEST_F(NetlinkTest, VxlanDevice) {
  MakeVxlan();
  ASSERT_OK_AND_ASSIGN(LinkInfo under, nl_->GetLink("under0"));
  ASSERT_OK_AND_ASSIGN(LinkInfo info, nl_->GetLink("loom.1"));
  EXPECT_EQ(info.kind, "vxlan");
  EXPECT_EQ(info.mtu, 1450u);
  EXPECT_TRUE(info.up);
  EXPECT_THAT(info.mac, Optional(Eq(Mac("02:00:00:00:00:01"))));
  ASSERT_TRUE(info.vxlan.has_value());
  EXPECT_EQ(info.vxlan->vni, 42u);
  EXPECT_EQ(info.vxlan->port, 4789);
  EXPECT_THAT(info.vxlan->local, Optional(Eq(Ip("198.51.100.1"))));
  EXPECT_FALSE(info.vxlan->learning);
  EXPECT_EQ(info.vxlan->underlay_index, under.index);
  EXPECT_FALSE(under.vxlan.has_value());

  VxlanSpec dup;
  dup.name = "loom.1";
  dup.vni = 43;
  EXPECT_THAT(nl_->CreateVxlan(dup), StatusIs(absl::StatusCode::kAlreadyExists));
  VxlanSpec bad;
  bad.name = "loom.2";
  bad.vni = 0;
  EXPECT_THAT(nl_->CreateVxlan(bad), StatusIs(absl::StatusCode::kInvalidArgument));
  bad.vni = 1 << 24;
  EXPECT_THAT(nl_->CreateVxlan(bad), StatusIs(absl::StatusCode::kInvalidArgument));
  bad.vni = 7;
  bad.underlay = LinkRef("nosuch0");
  EXPECT_THAT(nl_->CreateVxlan(bad), StatusIs(absl::StatusCode::kNotFound, HasSubstr("nosuch0")));
}

TEST_F(NetlinkTest, BridgeWithPort) {
  ASSERT_OK(nl_->CreateBridge("br0"));
  ASSERT_OK(nl_->CreateVeth("port0", "port0-peer"));
  ASSERT_OK(nl_->SetMaster("port0", "br0"));
  ASSERT_OK_AND_ASSIGN(LinkInfo bridge, nl_->GetLink("br0"));
  EXPECT_EQ(bridge.kind, "bridge");
  ASSERT_OK_AND_ASSIGN(LinkInfo port, nl_->GetLink("port0"));
  EXPECT_EQ(port.master_index, bridge.index);
  EXPECT_THAT(nl_->SetMaster("port0", "nosuch0"), StatusIs(absl::StatusCode::kNotFound));
  ASSERT_OK(nl_->SetNoMaster("port0"));
  ASSERT_OK_AND_ASSIGN(port, nl_->GetLink("port0"));
  EXPECT_EQ(port.master_index, 0);
}

TEST_F(NetlinkTest, Addresses) {
  ASSERT_OK(nl_->CreateBridge("dummy0"));
  InterfaceAddress a{Net("10.244.1.1/24")};
  ASSERT_OK(nl_->AddAddress("dummy0", a));
  InterfaceAddress ptp{Net("169.254.1.1/32"), Ip("169.254.1.2"), Scope::kLink};
  ASSERT_OK(nl_->AddAddress("dummy0", ptp));
  ASSERT_OK_AND_ASSIGN(std::vector<InterfaceAddress> addrs, nl_->ListAddresses("dummy0"));
  EXPECT_THAT(addrs, ::testing::UnorderedElementsAre(a, ptp));

  EXPECT_THAT(nl_->AddAddress("dummy0", a),
              StatusIs(absl::StatusCode::kAlreadyExists,
                       HasSubstr("add address 10.244.1.1/24 dev dummy0")));
  ASSERT_OK(nl_->DeleteAddress("dummy0", a));
  EXPECT_THAT(nl_->DeleteAddress("dummy0", a), StatusIs(absl::StatusCode::kNotFound));
  ASSERT_OK_AND_ASSIGN(addrs, nl_->ListAddresses("dummy0"));
  EXPECT_THAT(addrs, ::testing::ElementsAre(ptp));
  EXPECT_THAT(nl_->AddAddress("nosuch0", a), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(nl_->ListAddresses("nosuch0"), StatusIs(absl::StatusCode::kNotFound));
}

bool HasRoute(const std::vector<Route>& routes, const Ipv4Prefix& dst) {
  return std::any_of(routes.begin(), routes.end(), [&](const Route& r) { return r.dst == dst; });
}

const Route* FindRoute(const std::vector<Route>& routes, const Ipv4Prefix& dst) {
  for (const Route& r : routes) {
    if (r.dst == dst) return &r;
  }
  return nullptr;
}

TEST_F(NetlinkTest, Routes) {
  MakeVxlan();
  ASSERT_OK_AND_ASSIGN(int vxlan_index, nl_->LinkIndex("loom.1"));

  // The flannel-style route to a peer's pod CIDR: onlink through the VXLAN device.
  Route peer;
  peer.dst = Net("10.244.2.0/24");
  peer.gateway = Ip("10.244.2.0");
  peer.oif = LinkRef("loom.1");
  peer.onlink = true;
  peer.protocol = 76;
  ASSERT_OK(nl_->AddRoute(peer));
  EXPECT_THAT(nl_->AddRoute(peer),
              StatusIs(absl::StatusCode::kAlreadyExists,
                       Eq("add route 10.244.2.0/24 via 10.244.2.0 dev loom.1 onlink proto 76: "
                          "File exists")));

  // A /32 to a local pod, link scope, no gateway.
  Route pod;
  pod.dst = Net("10.244.1.5/32");
  pod.oif = LinkRef("under0");
  ASSERT_OK(nl_->AddRoute(pod));

  // Another table.
  Route other;
  other.dst = Net("203.0.113.0/24");
  other.gateway = Ip("198.51.100.2");
  other.table = 100;
  other.metric = 7;
  ASSERT_OK(nl_->AddRoute(other));

  ASSERT_OK_AND_ASSIGN(std::vector<Route> main, nl_->ListRoutes());
  const Route* got = FindRoute(main, peer.dst);
  ASSERT_NE(got, nullptr);
  EXPECT_THAT(got->gateway, Optional(Eq(Ip("10.244.2.0"))));
  ASSERT_TRUE(got->oif.has_value());
  EXPECT_EQ(got->oif->index, vxlan_index);
  EXPECT_EQ(got->oif->name, "loom.1");
  EXPECT_TRUE(got->onlink);
  EXPECT_THAT(got->protocol, Optional(Eq(76)));
  EXPECT_EQ(got->table, kMainTable);
  got = FindRoute(main, pod.dst);
  ASSERT_NE(got, nullptr);
  EXPECT_THAT(got->scope, Optional(Eq(Scope::kLink)));
  EXPECT_THAT(got->protocol, Optional(Eq(kProtoBoot)));
  EXPECT_FALSE(got->gateway.has_value());
  EXPECT_FALSE(HasRoute(main, other.dst));

  ASSERT_OK_AND_ASSIGN(std::vector<Route> t100, nl_->ListRoutes(100));
  ASSERT_THAT(t100, SizeIs(1));
  EXPECT_EQ(t100[0].dst, other.dst);
  EXPECT_EQ(t100[0].metric, 7u);
  EXPECT_EQ(t100[0].table, 100u);
  ASSERT_OK_AND_ASSIGN(std::vector<Route> all, nl_->ListRoutes(kAllTables));
  EXPECT_TRUE(HasRoute(all, other.dst));
  EXPECT_TRUE(HasRoute(all, peer.dst));

  // Replace moves the route; add would refuse.
  Route moved = peer;
  moved.gateway = Ip("10.244.2.1");
  ASSERT_OK(nl_->ReplaceRoute(moved));
  ASSERT_OK_AND_ASSIGN(main, nl_->ListRoutes());
  got = FindRoute(main, peer.dst);
  ASSERT_NE(got, nullptr);
  EXPECT_THAT(got->gateway, Optional(Eq(Ip("10.244.2.1"))));

  // Delete by what was listed, and by a minimal description.
  ASSERT_OK(nl_->DeleteRoute(*got));
  Route minimal;
  minimal.dst = other.dst;
  minimal.table = 100;
  minimal.metric = 7;
  ASSERT_OK(nl_->DeleteRoute(minimal));
  EXPECT_THAT(nl_->DeleteRoute(minimal),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("delete route 203.0.113.0/24")));
  ASSERT_OK_AND_ASSIGN(all, nl_->ListRoutes(kAllTables));
  EXPECT_FALSE(HasRoute(all, peer.dst));
  EXPECT_FALSE(HasRoute(all, other.dst));
  EXPECT_TRUE(HasRoute(all, pod.dst));

  // Errors name the route.
  Route missing_dev;
  missing_dev.dst = Net("10.244.3.0/24");
  missing_dev.oif = LinkRef("nosuch0");
  EXPECT_THAT(nl_->AddRoute(missing_dev), StatusIs(absl::StatusCode::kNotFound,
                                                   HasSubstr("dev nosuch0")));
  Route unreachable;
  unreachable.dst = Net("10.244.4.0/24");
  unreachable.gateway = Ip("10.9.9.9");
  unreachable.oif = LinkRef("loom.1");
  EXPECT_THAT(nl_->AddRoute(unreachable),
              StatusIs(absl::StatusCode::kUnavailable,
                       HasSubstr("add route 10.244.4.0/24 via 10.9.9.9 dev loom.1: ")));
  Route host_bits;
  host_bits.dst = Net("10.244.4.1/24");
  host_bits.oif = LinkRef("loom.1");
  EXPECT_THAT(nl_->AddRoute(host_bits), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(NetlinkTest, Neighbours) {
  MakeVxlan();
  Neighbour n{Ip("10.244.2.0"), Mac("02:00:00:00:00:02"), LinkRef("loom.1")};
  ASSERT_OK(nl_->AddNeighbour(n));
  EXPECT_THAT(nl_->AddNeighbour(n), StatusIs(absl::StatusCode::kAlreadyExists,
                                             HasSubstr("add neighbour 10.244.2.0")));
  ASSERT_OK_AND_ASSIGN(std::vector<Neighbour> list, nl_->ListNeighbours("loom.1"));
  ASSERT_THAT(list, SizeIs(1));
  EXPECT_EQ(list[0].ip, n.ip);
  EXPECT_EQ(list[0].mac, n.mac);
  EXPECT_TRUE(list[0].permanent);
  EXPECT_EQ(list[0].link.name, "loom.1");
  EXPECT_GT(list[0].link.index, 0);

  Neighbour changed = n;
  changed.mac = Mac("02:00:00:00:00:03");
  ASSERT_OK(nl_->ReplaceNeighbour(changed));
  ASSERT_OK_AND_ASSIGN(list, nl_->ListNeighbours("loom.1"));
  ASSERT_THAT(list, SizeIs(1));
  EXPECT_EQ(list[0].mac, changed.mac);

  ASSERT_OK(nl_->DeleteNeighbour(n));
  EXPECT_THAT(nl_->DeleteNeighbour(n),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("delete neighbour 10.244.2.0 dev loom.1")));
  ASSERT_OK_AND_ASSIGN(list, nl_->ListNeighbours("loom.1"));
  EXPECT_THAT(list, IsEmpty());
  EXPECT_THAT(nl_->AddNeighbour({n.ip, n.mac, LinkRef("nosuch0")}),
              StatusIs(absl::StatusCode::kNotFound));
}

std::vector<FdbEntry> EntriesFor(const std::vector<FdbEntry>& all, const MacAddress& mac) {
  std::vector<FdbEntry> out;
  for (const FdbEntry& e : all) {
    if (e.mac == mac) out.push_back(e);
  }
  return out;
}

TEST_F(NetlinkTest, FdbEntries) {
  MakeVxlan();
  // The all-zeros MAC is the flooding list: append gives it several destinations
  // (the kernel only appends for zero and multicast MACs).
  MacAddress flood;
  FdbEntry first{flood, Ip("198.51.100.2"), LinkRef("loom.1")};
  FdbEntry second{flood, Ip("198.51.100.3"), LinkRef("loom.1")};
  ASSERT_OK(nl_->AppendFdbEntry(first));
  ASSERT_OK(nl_->AppendFdbEntry(second));
  ASSERT_OK_AND_ASSIGN(std::vector<FdbEntry> all, nl_->ListFdbEntries("loom.1"));
  std::vector<FdbEntry> mine = EntriesFor(all, flood);
  ASSERT_THAT(mine, SizeIs(2));
  for (const FdbEntry& e : mine) {
    EXPECT_TRUE(e.self);
    EXPECT_TRUE(e.permanent);
    EXPECT_EQ(e.link.name, "loom.1");
  }
  EXPECT_THAT(mine, Contains(Field(&FdbEntry::dst, Optional(Eq(Ip("198.51.100.2"))))));
  EXPECT_THAT(mine, Contains(Field(&FdbEntry::dst, Optional(Eq(Ip("198.51.100.3"))))));
  ASSERT_OK(nl_->DeleteFdbEntry(second));
  ASSERT_OK_AND_ASSIGN(all, nl_->ListFdbEntries("loom.1"));
  mine = EntriesFor(all, flood);
  ASSERT_THAT(mine, SizeIs(1));
  EXPECT_THAT(mine[0].dst, Optional(Eq(Ip("198.51.100.2"))));

  // A peer's VTEP MAC has one destination; replace moves it (flannel's model).
  MacAddress vtep = Mac("02:00:00:00:00:02");
  FdbEntry peer{vtep, Ip("198.51.100.2"), LinkRef("loom.1")};
  ASSERT_OK(nl_->AppendFdbEntry(peer));
  FdbEntry moved{vtep, Ip("198.51.100.4"), LinkRef("loom.1")};
  ASSERT_OK(nl_->ReplaceFdbEntry(moved));
  ASSERT_OK_AND_ASSIGN(all, nl_->ListFdbEntries("loom.1"));
  mine = EntriesFor(all, vtep);
  ASSERT_THAT(mine, SizeIs(1));
  EXPECT_THAT(mine[0].dst, Optional(Eq(Ip("198.51.100.4"))));

  ASSERT_OK(nl_->DeleteFdbEntry(moved));
  EXPECT_THAT(nl_->DeleteFdbEntry(moved),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("delete fdb 02:00:00:00:00:02")));
  ASSERT_OK_AND_ASSIGN(all, nl_->ListFdbEntries("loom.1"));
  EXPECT_THAT(EntriesFor(all, vtep), IsEmpty());
  EXPECT_THAT(nl_->AppendFdbEntry({vtep, Ip("198.51.100.2"), LinkRef("nosuch0")}),
              StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(NetlinkTest, NoFdLeakOverManySockets) {
  int before = CountOpenFds();
  ASSERT_GT(before, 0);
  for (int i = 0; i < 200; ++i) {
    auto nl = Netlink::Create();
    ASSERT_OK(nl);
    // Exercise a request and an error path on each socket.
    ASSERT_OK(nl->GetLink("lo"));
    ASSERT_THAT(nl->GetLink("nosuch0"), StatusIs(absl::StatusCode::kNotFound));
  }
  for (int i = 0; i < 20; ++i) {
    ASSERT_OK(ns_->Connect());
  }
  EXPECT_EQ(CountOpenFds(), before);
}

}  // namespace
}  // namespace loom::net
