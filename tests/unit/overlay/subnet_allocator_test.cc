#include "agent/overlay/subnet_allocator.h"

#include <set>

#include "agent/store/embedded_store.h"
#include "common/strings.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace loom::agent {
namespace {

using ::testing::HasSubstr;

net::Ipv4Prefix Cidr(const std::string& s) { return net::Ipv4Prefix::Parse(s).value(); }

// A store whose transactions first let a rival claim the same key, `conflicts` times.
class RacingStore : public store::Store {
 public:
  RacingStore(store::Store* inner, int conflicts) : inner_(inner), conflicts_(conflicts) {}
  absl::StatusOr<std::optional<store::KeyValue>> Get(std::string_view k) override {
    return inner_->Get(k);
  }
  absl::StatusOr<store::RangeResult> Range(std::string_view p) override { return inner_->Range(p); }
  absl::StatusOr<store::Revision> Put(std::string_view k, std::string_view v,
                                      store::LeaseId l) override {
    return inner_->Put(k, v, l);
  }
  absl::StatusOr<int64_t> Delete(std::string_view k) override { return inner_->Delete(k); }
  absl::StatusOr<store::TxnResult> Commit(const store::Txn& txn) override {
    if (conflicts_ > 0) {
      --conflicts_;
      (void)inner_->Put(txn.compare[0].key, R"({"node":"rival"})");
    }
    return inner_->Commit(txn);
  }
  absl::StatusOr<store::LeaseId> GrantLease(absl::Duration ttl) override {
    return inner_->GrantLease(ttl);
  }
  absl::Status KeepAlive(store::LeaseId l) override { return inner_->KeepAlive(l); }
  absl::Status RevokeLease(store::LeaseId l) override { return inner_->RevokeLease(l); }
  absl::Status Compact(store::Revision r) override { return inner_->Compact(r); }
  absl::StatusOr<std::unique_ptr<store::Watch>> WatchPrefix(std::string_view p, store::Revision r,
                                                            store::WatchCallback cb) override {
    return inner_->WatchPrefix(p, r, std::move(cb));
  }

 private:
  store::Store* inner_;
  int conflicts_;
};

SubnetAllocatorOptions Options(const std::string& cidr, int size) {
  SubnetAllocatorOptions o;
  o.cluster_cidr = Cidr(cidr);
  o.node_cidr_size = size;
  return o;
}

TEST(SubnetAllocatorTest, DistinctSubnetsAndReuseAfterRestart) {
  auto store = store::NewMemoryStore();
  SubnetAllocator a(store.get(), Options("10.244.0.0/16", 24));
  std::set<net::Ipv4Prefix> seen;
  for (int i = 0; i < 20; ++i) {
    ASSERT_OK_AND_ASSIGN(net::Ipv4Prefix s, a.Acquire(StrCat("node", i), "198.51.100.1"));
    EXPECT_EQ(s.length(), 24);
    EXPECT_TRUE(Cidr("10.244.0.0/16").Contains(s));
    EXPECT_TRUE(seen.insert(s).second) << s;
  }
  ASSERT_OK_AND_ASSIGN(net::Ipv4Prefix first, a.Acquire("node0", "198.51.100.1"));
  SubnetAllocator restarted(store.get(), Options("10.244.0.0/16", 24));
  ASSERT_OK_AND_ASSIGN(net::Ipv4Prefix again, restarted.Acquire("node0", "198.51.100.1"));
  EXPECT_EQ(first, again);
  ASSERT_OK_AND_ASSIGN(auto kv, store->Get(SubnetKey(first)));
  ASSERT_TRUE(kv.has_value());
  EXPECT_THAT(kv->value, HasSubstr("\"node\":\"node0\""));
}

TEST(SubnetAllocatorTest, RetriesOnCasConflicts) {
  auto inner = store::NewMemoryStore();
  RacingStore racing(inner.get(), 3);
  SubnetAllocator a(&racing, Options("10.244.0.0/16", 24));
  ASSERT_OK_AND_ASSIGN(net::Ipv4Prefix s, a.Acquire("node1", "198.51.100.11"));
  ASSERT_OK_AND_ASSIGN(auto all, inner->Range(kSubnetsPrefix));
  EXPECT_EQ(all.kvs.size(), 4u);  // three rivals and ours
  ASSERT_OK_AND_ASSIGN(auto kv, inner->Get(SubnetKey(s)));
  EXPECT_THAT(kv->value, HasSubstr("node1"));

  RacingStore always(inner.get(), 1000);
  SubnetAllocatorOptions o = Options("10.244.0.0/16", 24);
  o.max_attempts = 3;
  SubnetAllocator loser(&always, o);
  EXPECT_THAT(loser.Acquire("node2", "198.51.100.12"),
              testing::StatusIs(absl::StatusCode::kAborted, HasSubstr("10.244.0.0/16")));
}

TEST(SubnetAllocatorTest, ExhaustionNamesTheClusterCidr) {
  auto store = store::NewMemoryStore();
  SubnetAllocator a(store.get(), Options("10.244.0.0/23", 24));
  ASSERT_OK(a.Acquire("a", "198.51.100.1").status());
  ASSERT_OK(a.Acquire("b", "198.51.100.2").status());
  EXPECT_THAT(a.Acquire("c", "198.51.100.3"),
              testing::StatusIs(absl::StatusCode::kResourceExhausted,
                                HasSubstr("cluster CIDR 10.244.0.0/23")));
}

TEST(SubnetAllocatorTest, ClaimsOfAnotherSizeBlockOverlappingSubnets) {
  auto store = store::NewMemoryStore();
  ASSERT_OK(store->Put(SubnetKey(Cidr("10.244.0.0/23")), R"({"node":"old"})").status());
  SubnetAllocator a(store.get(), Options("10.244.0.0/22", 24));
  ASSERT_OK_AND_ASSIGN(net::Ipv4Prefix x, a.Acquire("x", "198.51.100.1"));
  ASSERT_OK_AND_ASSIGN(net::Ipv4Prefix y, a.Acquire("y", "198.51.100.2"));
  EXPECT_TRUE(Cidr("10.244.2.0/23").Contains(x));
  EXPECT_TRUE(Cidr("10.244.2.0/23").Contains(y));
  EXPECT_THAT(a.Acquire("z", "198.51.100.3"),
              testing::StatusIs(absl::StatusCode::kResourceExhausted));
}

TEST(SubnetAllocatorTest, EnsureClaimRestoresAFreedClaimAndReportsATakenOne) {
  auto store = store::NewMemoryStore();
  SubnetAllocator a(store.get(), Options("10.244.0.0/16", 24));
  ASSERT_OK_AND_ASSIGN(net::Ipv4Prefix s, a.Acquire("node1", "198.51.100.11"));
  ASSERT_OK(a.EnsureClaim("node1", "198.51.100.11", s));
  ASSERT_OK(store->Delete(SubnetKey(s)).status());
  ASSERT_OK(a.EnsureClaim("node1", "198.51.100.11", s));
  EXPECT_THAT(store->Get(SubnetKey(s)).value()->value, HasSubstr("node1"));
  ASSERT_OK(store->Put(SubnetKey(s), R"({"node":"node9"})").status());
  EXPECT_THAT(a.EnsureClaim("node1", "198.51.100.11", s),
              testing::StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("node9")));
}

TEST(SubnetSweeperTest, FreesSubnetOnlyAfterGraceWithNodeGone) {
  auto store = store::NewMemoryStore();
  SubnetAllocator a(store.get(), Options("10.244.0.0/16", 24));
  ASSERT_OK_AND_ASSIGN(net::Ipv4Prefix s1, a.Acquire("node1", "198.51.100.11"));
  ASSERT_OK_AND_ASSIGN(net::Ipv4Prefix s2, a.Acquire("node2", "198.51.100.12"));
  ASSERT_OK(store->Put("/loom/nodes/node1", "{}").status());
  SubnetSweeper sweeper(store.get(), absl::Minutes(10));
  absl::Time t0 = absl::FromUnixSeconds(1'800'000'000);
  EXPECT_THAT(sweeper.SweepOnce(t0), testing::IsOkAndHolds(0));
  EXPECT_THAT(sweeper.SweepOnce(t0 + absl::Minutes(9)), testing::IsOkAndHolds(0));
  EXPECT_THAT(sweeper.SweepOnce(t0 + absl::Minutes(10)), testing::IsOkAndHolds(1));
  EXPECT_FALSE(store->Get(SubnetKey(s2)).value().has_value());
  EXPECT_TRUE(store->Get(SubnetKey(s1)).value().has_value());

  // A node that comes back within the grace keeps its subnet.
  ASSERT_OK(store->Delete("/loom/nodes/node1").status());
  EXPECT_THAT(sweeper.SweepOnce(t0 + absl::Minutes(11)), testing::IsOkAndHolds(0));
  ASSERT_OK(store->Put("/loom/nodes/node1", "{}").status());
  EXPECT_THAT(sweeper.SweepOnce(t0 + absl::Minutes(30)), testing::IsOkAndHolds(0));
  ASSERT_OK_AND_ASSIGN(net::Ipv4Prefix again, a.Acquire("node1", "198.51.100.11"));
  EXPECT_EQ(again, s1);
}

}  // namespace
}  // namespace loom::agent
