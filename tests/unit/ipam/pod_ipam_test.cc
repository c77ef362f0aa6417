#include "agent/ipam/pod_ipam.h"

#include <set>
#include <thread>

#include "agent/store/embedded_store.h"
#include "common/strings.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace loom::ipam {
namespace {

using ::loom::testing::IsOkAndHolds;
using ::loom::testing::StatusIs;

net::Ipv4Prefix Cidr(const char* text) { return *net::Ipv4Prefix::Parse(text); }
Allocation Req(const std::string& id, const std::string& ifname = "eth0") {
  std::string netns = "/run/netns/", veth = "lm";
  netns.append(id);
  veth.append(id);
  return {{}, id, ifname, netns, veth};
}

class PodIpamTest : public ::testing::Test {
 protected:
  std::unique_ptr<store::Store> store_ = store::NewMemoryStore();
};

TEST_F(PodIpamTest, SameKeySameAddressAndDurableValue) {
  PodIpam ipam(store_.get(), "n1", Cidr("10.244.1.0/24"));
  ASSERT_OK_AND_ASSIGN(Allocation a, ipam.Allocate(Req("c1")));
  EXPECT_EQ(a.ip.ToString(), "10.244.1.1");
  ASSERT_OK_AND_ASSIGN(Allocation again, ipam.Allocate(Req("c1")));
  EXPECT_EQ(again, a);
  ASSERT_OK_AND_ASSIGN(Allocation other_if, ipam.Allocate(Req("c1", "net1")));
  EXPECT_NE(other_if.ip, a.ip);
  ASSERT_OK_AND_ASSIGN(auto kv, store_->Get("/loom/ipam/n1/10.244.1.1"));
  ASSERT_TRUE(kv.has_value());
  EXPECT_EQ(kv->value,
            R"({"containerID":"c1","hostVeth":"lmc1","ifname":"eth0","netns":"/run/netns/c1"})");
  // A second allocator (a restart) finds the same allocation.
  PodIpam restarted(store_.get(), "n1", Cidr("10.244.1.0/24"));
  EXPECT_THAT(restarted.Allocate(Req("c1")), IsOkAndHolds(a));
}

TEST_F(PodIpamTest, RoundRobinSkipsNetworkAndBroadcastAndExhausts) {
  PodIpam ipam(store_.get(), "n1", Cidr("10.244.1.0/30"));  // .1 and .2 usable
  ASSERT_OK_AND_ASSIGN(Allocation a, ipam.Allocate(Req("a")));
  ASSERT_OK_AND_ASSIGN(Allocation b, ipam.Allocate(Req("b")));
  EXPECT_EQ(a.ip.ToString(), "10.244.1.1");
  EXPECT_EQ(b.ip.ToString(), "10.244.1.2");
  EXPECT_THAT(ipam.Allocate(Req("c")), StatusIs(absl::StatusCode::kResourceExhausted,
                                                ::testing::HasSubstr("10.244.1.0/30")));
  ASSERT_OK(ipam.Release({"a", "eth0"}).status());
  ASSERT_OK_AND_ASSIGN(Allocation c, ipam.Allocate(Req("c")));
  EXPECT_EQ(c.ip.ToString(), "10.244.1.1");
}

TEST_F(PodIpamTest, ReleasedAddressIsNotReusedAtOnce) {
  PodIpam ipam(store_.get(), "n1", Cidr("10.244.1.0/24"));
  ASSERT_OK_AND_ASSIGN(Allocation a, ipam.Allocate(Req("a")));
  ASSERT_OK(ipam.Release({"a", "eth0"}).status());
  ASSERT_OK_AND_ASSIGN(Allocation b, ipam.Allocate(Req("b")));
  EXPECT_NE(a.ip, b.ip);
}

TEST_F(PodIpamTest, ReleaseOfUnknownKeyIsOk) {
  PodIpam ipam(store_.get(), "n1", Cidr("10.244.1.0/24"));
  EXPECT_THAT(ipam.Release({"nope", "eth0"}), IsOkAndHolds(std::nullopt));
}

TEST_F(PodIpamTest, ConcurrentAllocatorsNeverShareAnAddress) {
  // Two allocators over one store (two agents by mistake): the CAS keeps them apart.
  PodIpam one(store_.get(), "n1", Cidr("10.244.1.0/24"));
  PodIpam two(store_.get(), "n1", Cidr("10.244.1.0/24"));
  std::vector<std::thread> threads;
  std::vector<std::string> ips(64);
  for (int i = 0; i < 64; ++i) {
    threads.emplace_back([&, i] {
      PodIpam& ipam = i % 2 ? one : two;
      absl::StatusOr<Allocation> a = ipam.Allocate(Req(StrCat("c", i)));
      if (a.ok()) ips[i] = a->ip.ToString();
    });
  }
  for (auto& t : threads) t.join();
  std::set<std::string> distinct(ips.begin(), ips.end());
  EXPECT_EQ(distinct.size(), 64u);
  EXPECT_FALSE(distinct.contains(""));
}

TEST_F(PodIpamTest, ReleaseIfKeepsOnlyWhatIsKept) {
  PodIpam ipam(store_.get(), "n1", Cidr("10.244.1.0/24"));
  ASSERT_OK(ipam.Allocate(Req("a")).status());
  ASSERT_OK(ipam.Allocate(Req("b")).status());
  ASSERT_OK_AND_ASSIGN(std::vector<Allocation> released,
                       ipam.ReleaseIf([](const Allocation& a) { return a.container_id == "a"; }));
  ASSERT_EQ(released.size(), 1u);
  EXPECT_EQ(released[0].container_id, "b");
  ASSERT_OK_AND_ASSIGN(std::vector<Allocation> left, ipam.List());
  ASSERT_EQ(left.size(), 1u);
  EXPECT_EQ(left[0].container_id, "a");
}

}  // namespace
}  // namespace loom::ipam
