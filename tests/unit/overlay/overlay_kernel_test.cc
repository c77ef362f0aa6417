// The reconciler over the real kernel (netlink), inside a test namespace with a dummy
// underlay: device creation and drift, peers programmed and removed, 200 peers with
// nothing leaked, and a second reconciler (a restart) writing nothing.
#include <memory>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "overlay/overlay_kernel_netlink.h"
#include "overlay/vxlan_reconciler.h"
#include "tests/testing/privileged.h"
#include "tests/testing/status_matchers.h"
#include "tests/unit/common/net/test_netns.h"

namespace loom::overlay {
namespace {

net::Ipv4Address Ip(const std::string& s) { return net::Ipv4Address::Parse(s).value(); }
net::Ipv4Prefix Cidr(const std::string& s) { return net::Ipv4Prefix::Parse(s).value(); }

Peer MakePeer(int i) {
  // Subnets 10.100.<i>.0/24; underlay addresses spread over 203.0.113.0/24 and
  // 198.51.100.0/24 (FDB destinations need not answer).
  return Peer{StrCat("peer", i), Cidr(StrCat("10.100.", i, ".0/24")),
              Ip(StrCat(i < 100 ? "198.51.100." : "203.0.113.", 20 + i % 100)),
              VtepMac(StrCat("peer", i))};
}

class OverlayKernelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    LOOM_REQUIRE_ROOT();
    ns_ = std::make_unique<net::testing::TestNetns>("ovl");
    ASSERT_OK(ns_->status());
    ASSERT_OK_AND_ASSIGN(nl_, ns_->Connect());
    // No dummy module on every kernel: a veth pair stands in for the underlay.
    ASSERT_OK(nl_->CreateVeth("eth0", "eth0peer"));
    ASSERT_OK(nl_->SetLinkUp("eth0peer"));
    ASSERT_OK(nl_->SetMtu("eth0", 1500));
    ASSERT_OK(nl_->AddAddress("eth0", {net::Ipv4Prefix::ParseHost("198.51.100.11/24").value(),
                                       std::nullopt, net::Scope::kUniverse}));
    ASSERT_OK(nl_->SetLinkUp("eth0"));
    ASSERT_OK_AND_ASSIGN(kernel_, NewKernel());
    config_.underlay_iface = "eth0";
    config_.underlay_ip = Ip("198.51.100.11");
    config_.mac = VtepMac("node1");
    config_.pod_cidr = Cidr("10.244.1.0/24");
  }
  absl::StatusOr<std::unique_ptr<OverlayKernel>> NewKernel() {
    return net::RunInNetns<std::unique_ptr<OverlayKernel>>(
        ns_->fd(), [] { return NewNetlinkOverlayKernel(); });
  }
  // Entries loomd could own: neighbours and peer FDB entries on the device, routes
  // with its protocol.
  void ExpectNoPeerEntries() {
    auto neigh = nl_->ListNeighbours("loom.1");
    ASSERT_OK(neigh.status());
    EXPECT_TRUE(neigh->empty());
    auto fdb = nl_->ListFdbEntries("loom.1");
    ASSERT_OK(fdb.status());
    for (const auto& e : *fdb) EXPECT_FALSE(e.dst.has_value()) << e.ToString();
    auto routes = nl_->ListRoutes();
    ASSERT_OK(routes.status());
    for (const auto& r : *routes) EXPECT_NE(r.protocol, kRouteProtocol) << r.ToString();
  }

  std::unique_ptr<net::testing::TestNetns> ns_;
  std::optional<net::Netlink> nl_;
  std::unique_ptr<OverlayKernel> kernel_;
  DeviceConfig config_;
};

TEST_F(OverlayKernelTest, DeviceCreatedIdempotentlyAndRecreatedOnDrift) {
  VxlanReconciler r(kernel_.get());
  ASSERT_OK(r.EnsureDevice(config_));
  ASSERT_OK_AND_ASSIGN(net::LinkInfo link, nl_->GetLink("loom.1"));
  EXPECT_EQ(link.kind, "vxlan");
  EXPECT_EQ(link.mtu, 1450u);
  EXPECT_EQ(link.mac, VtepMac("node1"));
  ASSERT_TRUE(link.vxlan.has_value());
  EXPECT_EQ(link.vxlan->vni, 1u);
  EXPECT_EQ(link.vxlan->port, 4789);
  EXPECT_EQ(link.vxlan->local, Ip("198.51.100.11"));
  EXPECT_FALSE(link.vxlan->learning);
  ASSERT_OK_AND_ASSIGN(auto addrs, nl_->ListAddresses("loom.1"));
  ASSERT_EQ(addrs.size(), 1u);
  EXPECT_EQ(addrs[0].local.ToString(), "10.244.1.0/32");

  VxlanReconciler again(kernel_.get());
  ASSERT_OK(again.EnsureDevice(config_));
  EXPECT_EQ(again.writes(), 0u);

  config_.port = 8472;  // drift: recreated with the new port
  ASSERT_OK(again.EnsureDevice(config_));
  ASSERT_OK_AND_ASSIGN(net::LinkInfo moved, nl_->GetLink("loom.1"));
  EXPECT_EQ(moved.vxlan->port, 8472);
  EXPECT_NE(moved.index, link.index);
}

TEST_F(OverlayKernelTest, PeersProgrammedThenRemoved) {
  VxlanReconciler r(kernel_.get());
  ASSERT_OK(r.EnsureDevice(config_));
  Peer p{"node2", Cidr("10.244.2.0/24"), Ip("198.51.100.12"), VtepMac("node2")};
  ASSERT_OK(r.SetPeers({p}));
  ASSERT_OK_AND_ASSIGN(auto neigh, nl_->ListNeighbours("loom.1"));
  ASSERT_EQ(neigh.size(), 1u);
  EXPECT_EQ(neigh[0].ip, Ip("10.244.2.0"));
  EXPECT_EQ(neigh[0].mac, VtepMac("node2"));
  EXPECT_TRUE(neigh[0].permanent);
  ASSERT_OK_AND_ASSIGN(auto fdb, nl_->ListFdbEntries("loom.1"));
  int with_dst = 0;
  for (const auto& e : fdb) {
    if (!e.dst) continue;
    ++with_dst;
    EXPECT_EQ(e.mac, VtepMac("node2"));
    EXPECT_EQ(*e.dst, Ip("198.51.100.12"));
  }
  EXPECT_EQ(with_dst, 1);
  ASSERT_OK_AND_ASSIGN(auto routes, nl_->ListRoutes());
  int ours = 0;
  for (const auto& route : routes) {
    if (route.protocol != kRouteProtocol) continue;
    ++ours;
    EXPECT_EQ(route.ToString().find("10.244.2.0/24 via 10.244.2.0 dev loom.1 onlink"), 0u)
        << route.ToString();
  }
  EXPECT_EQ(ours, 1);

  VxlanReconciler restarted(kernel_.get());
  ASSERT_OK(restarted.EnsureDevice(config_));
  ASSERT_OK(restarted.SetPeers({p}));
  EXPECT_EQ(restarted.writes(), 0u);

  ASSERT_OK(restarted.SetPeers({}));
  ExpectNoPeerEntries();
}

TEST_F(OverlayKernelTest, TwoHundredPeersAddedThenRemovedLeaveNothing) {
  VxlanReconciler r(kernel_.get());
  ASSERT_OK(r.EnsureDevice(config_));
  std::vector<Peer> peers;
  for (int i = 0; i < 200; ++i) peers.push_back(MakePeer(i));
  absl::Time start = absl::Now();
  ASSERT_OK(r.SetPeers(peers));
  absl::Duration took = absl::Now() - start;
  EXPECT_EQ(r.peers_programmed(), 200);
  ASSERT_OK_AND_ASSIGN(auto neigh, nl_->ListNeighbours("loom.1"));
  EXPECT_EQ(neigh.size(), 200u);
  ASSERT_OK_AND_ASSIGN(auto routes, nl_->ListRoutes());
  int ours = 0;
  for (const auto& route : routes) ours += route.protocol == kRouteProtocol;
  EXPECT_EQ(ours, 200);
  std::printf("200 peers programmed in %s (%s per peer)\n", absl::FormatDuration(took).c_str(),
              absl::FormatDuration(took / 200).c_str());
  ASSERT_OK(r.SetPeers({}));
  ExpectNoPeerEntries();
}

}  // namespace
}  // namespace loom::overlay
