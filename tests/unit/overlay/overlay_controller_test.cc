#include "agent/overlay/overlay_controller.h"

#include "absl/time/clock.h"
#include "agent/store/embedded_store.h"
#include "common/json.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/fakes/fake_overlay_kernel.h"
#include "tests/testing/status_matchers.h"

namespace loom::agent {
namespace {

// Records what it was asked to apply.
class FakeFirewall : public overlay::Firewall {
 public:
  explicit FakeFirewall(overlay::FirewallRules* last) : last_(last) {}
  absl::Status Apply(const overlay::FirewallRules& r) override {
    *last_ = r;
    return absl::OkStatus();
  }
  absl::Status Remove() override { return absl::OkStatus(); }
  uint64_t writes() const override { return 0; }

 private:
  overlay::FirewallRules* last_;
};

std::string NodeJson(const std::string& name, const std::string& ip, const std::string& cidr) {
  return Json{{"name", name},
              {"underlayIP", ip},
              {"podCIDR", cidr},
              {"vtepMAC", overlay::VtepMac(name).ToString()}}
      .dump();
}

template <typename F>
bool Eventually(F f) {
  for (int i = 0; i < 200; ++i) {
    if (f()) return true;
    absl::SleepFor(absl::Milliseconds(10));
  }
  return false;
}

TEST(OverlayControllerTest, ProgramsWatchedPeersAndAllowsOnlyNodes) {
  auto store = store::NewMemoryStore();
  auto kernel = std::make_unique<testing::FakeOverlayKernel>();
  kernel->links().clear();
  kernel->AddPhysical("eth0", 1500, net::Ipv4Prefix::ParseHost("198.51.100.11/24").value());
  testing::FakeOverlayKernel* k = kernel.get();
  overlay::FirewallRules rules;
  OverlayControllerOptions o;
  o.node_name = "node1";
  o.cluster_cidr = net::Ipv4Prefix::Parse("10.244.0.0/16").value();
  o.underlay_iface = "eth0";
  o.underlay_ip = net::Ipv4Address(198, 51, 100, 11);
  metrics::Registry registry;
  o.metrics = &registry;
  ASSERT_OK(store->Put("/loom/nodes/node2", NodeJson("node2", "198.51.100.12", "10.244.7.0/24"))
                .status());
  OverlayController c(store.get(), std::move(kernel), std::make_unique<FakeFirewall>(&rules), o);
  ASSERT_OK(c.Setup());
  EXPECT_EQ(c.pod_cidr().length(), 24);
  EXPECT_EQ(c.peers(), 1);
  EXPECT_EQ(rules.nodes.size(), 2u);
  ASSERT_OK(store->Put("/loom/nodes/node1",
                       NodeJson("node1", "198.51.100.11", c.pod_cidr().ToString()))
                .status());
  ASSERT_OK(c.Start());
  ASSERT_OK(store->Put("/loom/nodes/node3", NodeJson("node3", "198.51.100.13", "10.244.9.0/24"))
                .status());
  EXPECT_TRUE(Eventually([&] { return c.peers() == 2; }));
  EXPECT_TRUE(Eventually([&] { return rules.nodes.size() == 3; }));
  ASSERT_OK(store->Delete("/loom/nodes/node2").status());
  EXPECT_TRUE(Eventually([&] { return c.peers() == 1; }));
  c.Stop();
  EXPECT_EQ(k->routes().size(), 1u);
  EXPECT_THAT(registry.Render(), ::testing::HasSubstr("loom_overlay_peers 1"));
  EXPECT_THAT(registry.Render(), ::testing::HasSubstr("loom_overlay_netlink_writes_total"));
}

}  // namespace
}  // namespace loom::agent
