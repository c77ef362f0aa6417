#include "overlay/vxlan_reconciler.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/fakes/fake_overlay_kernel.h"
#include "tests/testing/status_matchers.h"

namespace loom::overlay {
namespace {

using ::testing::HasSubstr;
using ::testing::SizeIs;

net::Ipv4Address Ip(const char* s) { return net::Ipv4Address::Parse(s).value(); }
net::Ipv4Prefix Cidr(const char* s) { return net::Ipv4Prefix::Parse(s).value(); }

Peer MakePeer(int i, const char* underlay_net = "198.51.100.") {
  return Peer{StrCat("node", i), Cidr(StrCat("10.244.", i, ".0/24").c_str()),
              Ip(StrCat(underlay_net, 10 + i).c_str()), VtepMac(StrCat("node", i))};
}

class ReconcilerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    kernel_.links().clear();
    eth0_ = kernel_.AddPhysical("eth0", 1500, net::Ipv4Prefix::ParseHost("198.51.100.11/24").value());
    config_.vni = 1;
    config_.port = 4789;
    config_.underlay_iface = "eth0";
    config_.underlay_ip = Ip("198.51.100.11");
    config_.mac = VtepMac("node1");
    config_.pod_cidr = Cidr("10.244.1.0/24");
  }
  int Device() { return kernel_.FindLink("loom.1").value()->index; }

  testing::FakeOverlayKernel kernel_;
  int eth0_ = 0;
  DeviceConfig config_;
};

TEST_F(ReconcilerTest, CreatesDeviceOnceWithMtuAddressAndMac) {
  VxlanReconciler r(&kernel_);
  ASSERT_OK(r.EnsureDevice(config_));
  auto link = kernel_.FindLink("loom.1").value();
  ASSERT_TRUE(link.has_value());
  EXPECT_EQ(link->mtu, 1450u);
  EXPECT_EQ(link->mac, VtepMac("node1"));
  EXPECT_TRUE(link->up);
  EXPECT_EQ(link->vxlan->vni, 1u);
  EXPECT_FALSE(link->vxlan->learning);
  EXPECT_EQ(link->vxlan->underlay_index, eth0_);
  ASSERT_THAT(kernel_.addresses(link->index), SizeIs(1));
  EXPECT_EQ(kernel_.addresses(link->index)[0].local.ToString(), "10.244.1.0/32");
  uint64_t before = kernel_.writes;
  VxlanReconciler again(&kernel_);
  ASSERT_OK(again.EnsureDevice(config_));
  EXPECT_EQ(kernel_.writes, before);
  EXPECT_EQ(again.writes(), 0u);
}

TEST_F(ReconcilerTest, RecreatesDeviceWhenVniPortOrLocalDrift) {
  VxlanReconciler r(&kernel_);
  ASSERT_OK(r.EnsureDevice(config_));
  int old = Device();
  kernel_.links()[old].vxlan->port = 8472;
  ASSERT_OK(r.EnsureDevice(config_));
  EXPECT_NE(Device(), old);
  EXPECT_EQ(kernel_.FindLink("loom.1").value()->vxlan->port, 4789);
  old = Device();
  kernel_.links()[old].vxlan->local = Ip("198.51.100.99");
  ASSERT_OK(r.EnsureDevice(config_));
  EXPECT_NE(Device(), old);
  old = Device();
  kernel_.links()[old].mtu = 9000;  // only the MTU: fixed in place
  ASSERT_OK(r.EnsureDevice(config_));
  EXPECT_EQ(Device(), old);
  EXPECT_EQ(kernel_.FindLink("loom.1").value()->mtu, 1450u);
}

TEST_F(ReconcilerTest, ProgramsPeersInFlannelOrderAndRemovesThem) {
  VxlanReconciler r(&kernel_);
  ASSERT_OK(r.EnsureDevice(config_));
  ASSERT_OK(r.SetPeers({MakePeer(2), MakePeer(3)}));
  int dev = Device();
  EXPECT_EQ(r.peers_programmed(), 2);
  ASSERT_EQ(kernel_.neighbours(dev).count(Ip("10.244.2.0")), 1u);
  EXPECT_EQ(kernel_.neighbours(dev)[Ip("10.244.2.0")].mac, VtepMac("node2"));
  ASSERT_EQ(kernel_.fdb(dev).count(VtepMac("node3")), 1u);
  EXPECT_EQ(*kernel_.fdb(dev)[VtepMac("node3")].dst, Ip("198.51.100.13"));
  ASSERT_EQ(kernel_.routes().size(), 2u);
  const net::Route& route = kernel_.routes()[0];
  EXPECT_EQ(route.dst, Cidr("10.244.2.0/24"));
  EXPECT_EQ(*route.gateway, Ip("10.244.2.0"));
  EXPECT_TRUE(route.onlink);
  EXPECT_EQ(route.oif->index, dev);
  EXPECT_EQ(route.protocol, kRouteProtocol);

  ASSERT_OK(r.SetPeers({MakePeer(3)}));
  EXPECT_EQ(kernel_.neighbours(dev).count(Ip("10.244.2.0")), 0u);
  EXPECT_EQ(kernel_.fdb(dev).count(VtepMac("node2")), 0u);
  ASSERT_EQ(kernel_.routes().size(), 1u);
  ASSERT_OK(r.SetPeers({}));
  EXPECT_TRUE(kernel_.neighbours(dev).empty());
  EXPECT_TRUE(kernel_.fdb(dev).empty());
  EXPECT_TRUE(kernel_.routes().empty());
}

TEST_F(ReconcilerTest, RestartWithNothingChangedWritesNothing) {
  {
    VxlanReconciler r(&kernel_);
    ASSERT_OK(r.EnsureDevice(config_));
    ASSERT_OK(r.SetPeers({MakePeer(2), MakePeer(3), MakePeer(4)}));
  }
  uint64_t before = kernel_.writes;
  VxlanReconciler restarted(&kernel_);
  ASSERT_OK(restarted.EnsureDevice(config_));
  ASSERT_OK(restarted.SetPeers({MakePeer(4), MakePeer(2), MakePeer(3)}));
  EXPECT_EQ(restarted.writes(), 0u);
  EXPECT_EQ(kernel_.writes, before);
  EXPECT_EQ(restarted.peers_programmed(), 3);
}

TEST_F(ReconcilerTest, RestartRemovesStaleEntriesAndKeepsForeignRoutes) {
  {
    VxlanReconciler r(&kernel_);
    ASSERT_OK(r.EnsureDevice(config_));
    ASSERT_OK(r.SetPeers({MakePeer(2), MakePeer(3)}));
  }
  net::Route foreign;
  foreign.dst = Cidr("192.0.2.0/24");
  foreign.oif = net::LinkRef(eth0_);
  foreign.protocol = net::kProtoBoot;
  ASSERT_OK(kernel_.ReplaceRoute(foreign));
  // node3 left while loomd was down; node2's VTEP moved.
  Peer moved = MakePeer(2);
  moved.underlay_ip = Ip("198.51.100.50");
  VxlanReconciler restarted(&kernel_);
  ASSERT_OK(restarted.EnsureDevice(config_));
  ASSERT_OK(restarted.SetPeers({moved}));
  int dev = Device();
  EXPECT_EQ(kernel_.neighbours(dev).size(), 1u);
  EXPECT_EQ(kernel_.fdb(dev).size(), 1u);
  EXPECT_EQ(*kernel_.fdb(dev)[VtepMac("node2")].dst, Ip("198.51.100.50"));
  ASSERT_EQ(kernel_.routes().size(), 2u);  // node2's and the foreign one
  EXPECT_EQ(restarted.writes(), 4u);  // route node3, fdb node3, neighbour node3, fdb node2
}

TEST_F(ReconcilerTest, FailedPeerIsRolledBackOthersProgrammed) {
  VxlanReconciler r(&kernel_);
  ASSERT_OK(r.EnsureDevice(config_));
  kernel_.FailNext("route");
  EXPECT_THAT(r.SetPeers({MakePeer(2), MakePeer(3)}),
              testing::StatusIs(absl::StatusCode::kInternal, HasSubstr("peer node2")));
  int dev = Device();
  EXPECT_EQ(kernel_.neighbours(dev).count(Ip("10.244.2.0")), 0u);
  EXPECT_EQ(kernel_.fdb(dev).count(VtepMac("node2")), 0u);
  EXPECT_EQ(r.peers_programmed(), 1);
  ASSERT_OK(r.SetPeers({MakePeer(2), MakePeer(3)}));
  EXPECT_EQ(r.peers_programmed(), 2);
}

TEST_F(ReconcilerTest, DirectRoutingOnSharedSegmentOnly) {
  VxlanReconciler r(&kernel_, ReconcilerOptions{.direct_routing = true});
  ASSERT_OK(r.EnsureDevice(config_));
  ASSERT_OK(r.SetPeers({MakePeer(2), MakePeer(3, "203.0.113.")}));
  int dev = Device();
  ASSERT_EQ(kernel_.routes().size(), 2u);
  for (const net::Route& route : kernel_.routes()) {
    if (route.dst == Cidr("10.244.2.0/24")) {
      EXPECT_EQ(*route.gateway, Ip("198.51.100.12"));
      EXPECT_EQ(route.oif->index, eth0_);
    } else {
      EXPECT_EQ(route.oif->index, dev);
    }
  }
  EXPECT_EQ(kernel_.neighbours(dev).size(), 1u);  // only the encapsulated peer
}

TEST_F(ReconcilerTest, OverlappingPeerSubnetsAreRejected) {
  VxlanReconciler r(&kernel_);
  ASSERT_OK(r.EnsureDevice(config_));
  Peer clash = MakePeer(3);
  clash.node = "node9";
  clash.pod_cidr = Cidr("10.244.2.0/24");
  EXPECT_THAT(r.SetPeers({MakePeer(2), clash}),
              testing::StatusIs(absl::StatusCode::kInternal, HasSubstr("node9")));
  EXPECT_EQ(r.peers_programmed(), 1);
}

TEST_F(ReconcilerTest, RemoveAllLeavesNothing) {
  VxlanReconciler r(&kernel_);
  ASSERT_OK(r.EnsureDevice(config_));
  ASSERT_OK(r.SetPeers({MakePeer(2)}));
  ASSERT_OK(r.RemoveAll());
  EXPECT_FALSE(kernel_.FindLink("loom.1").value().has_value());
  EXPECT_TRUE(kernel_.routes().empty());
}

TEST(VtepMacTest, StableLocalUnicastPerName) {
  EXPECT_EQ(VtepMac("node1"), VtepMac("node1"));
  EXPECT_NE(VtepMac("node1"), VtepMac("node2"));
  EXPECT_TRUE(VtepMac("node1").IsLocallyAdministered());
  EXPECT_FALSE(VtepMac("node1").IsMulticast());
  EXPECT_EQ(DeviceName(42), "loom.42");
}

}  // namespace
}  // namespace loom::overlay
