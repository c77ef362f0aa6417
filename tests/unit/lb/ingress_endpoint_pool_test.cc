#include "lb/ingress/endpoint_pool.h"

#include <map>

#include "gtest/gtest.h"

namespace loom::lb::ingress {
namespace {

constexpr int64_t kSecond = 1'000'000'000;

class EndpointPoolTest : public ::testing::Test {
 protected:
  EndpointPool Pool(int n) {
    std::vector<std::shared_ptr<EndpointState>> eps;
    for (int i = 0; i < n; ++i) eps.push_back(registry_.Get("10.0.0." + std::to_string(i + 1), 80));
    return EndpointPool(std::move(eps));
  }
  EndpointRegistry registry_;
  EjectionPolicy policy_;
};

TEST_F(EndpointPoolTest, RoundRobinVisitsEveryEndpointInTurn) {
  EndpointPool pool = Pool(3);
  std::map<std::string, int> seen;
  for (int i = 0; i < 300; ++i) seen[pool.Pick(Balance::kRoundRobin, 0, i)->label]++;
  EXPECT_EQ(seen.size(), 3u);
  for (const auto& [label, n] : seen) EXPECT_EQ(n, 100) << label;
}

TEST_F(EndpointPoolTest, EjectedEndpointIsSkippedUntilItsBackoffEnds) {
  EndpointPool pool = Pool(2);
  EndpointState* bad = pool.endpoints()[0].get();
  ReportConnectFailure(*bad, 0, policy_);
  for (int i = 0; i < 10; ++i) EXPECT_NE(pool.Pick(Balance::kRoundRobin, kSecond / 2, i), bad);
  for (int i = 0; i < 10; ++i) EXPECT_NE(pool.Pick(Balance::kLeastRequest, kSecond / 2, i * 7919), bad);
  // After 1 s it is tried again; a second failure doubles the back-off.
  bool tried = false;
  for (int i = 0; i < 4; ++i) tried = tried || pool.Pick(Balance::kRoundRobin, kSecond, i) == bad;
  EXPECT_TRUE(tried);
  ReportConnectFailure(*bad, kSecond, policy_);
  EXPECT_EQ(bad->ejected_until.load(), 3 * kSecond);
  for (int i = 0; i < 6; ++i) ReportConnectFailure(*bad, kSecond, policy_);
  EXPECT_EQ(bad->ejected_until.load(), kSecond + policy_.max_ns);  // capped at 30 s
  ReportConnectSuccess(*bad);
  EXPECT_EQ(bad->failures.load(), 0u);
  EXPECT_EQ(bad->ejected_until.load(), 0);
}

TEST_F(EndpointPoolTest, AllEjectedPicksTheOneWhoseBackoffEndsFirst) {
  EndpointPool pool = Pool(3);
  ReportConnectFailure(*pool.endpoints()[0], 0, policy_);
  ReportConnectFailure(*pool.endpoints()[0], 0, policy_);
  ReportConnectFailure(*pool.endpoints()[1], 0, policy_);
  ReportConnectFailure(*pool.endpoints()[2], 0, policy_);
  ReportConnectFailure(*pool.endpoints()[2], 0, policy_);
  EXPECT_EQ(pool.Pick(Balance::kRoundRobin, 1, 0), pool.endpoints()[1].get());
  EXPECT_EQ(pool.Pick(Balance::kLeastRequest, 1, 12345), pool.endpoints()[1].get());
}

TEST_F(EndpointPoolTest, LeastRequestAvoidsBusyEndpoints) {
  EndpointPool pool = Pool(2);
  pool.endpoints()[0]->active = 10;
  for (uint64_t r = 0; r < 50; ++r) {
    EXPECT_EQ(pool.Pick(Balance::kLeastRequest, 0, r * 0x9E3779B97F4A7C15ull), pool.endpoints()[1].get());
  }
}

TEST_F(EndpointPoolTest, StateIsSharedAcrossPoolsAndDroppedWhenUnused) {
  auto a = registry_.Get("10.0.0.1", 80);
  a->active = 3;
  EXPECT_EQ(registry_.Get("10.0.0.1", 80)->active.load(), 3u);
  EXPECT_NE(registry_.Get("10.0.0.1", 81).get(), a.get());
  a.reset();
  registry_.Sweep();
  EXPECT_EQ(registry_.Get("10.0.0.1", 80)->active.load(), 0u);
  EXPECT_TRUE(Pool(0).empty());
  EXPECT_EQ(Pool(0).Pick(Balance::kRoundRobin, 0, 0), nullptr);
}

}  // namespace
}  // namespace loom::lb::ingress
