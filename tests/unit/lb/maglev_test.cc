#include "lb/maglev.h"

#include <algorithm>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace loom::lb {
namespace {

using ::loom::testing::IsOk;
using ::loom::testing::StatusIs;
using ::testing::HasSubstr;

std::vector<MaglevBackend> Backends(int n, int first = 0) {
  std::vector<MaglevBackend> out;
  for (int i = first; i < first + n; ++i) {
    out.push_back({"10.244." + std::to_string(i / 250) + "." + std::to_string(i % 250 + 2) +
                       ":8080/TCP",
                   1});
  }
  return out;
}

// The table as backend keys, so tables over different backend lists compare.
std::vector<std::string> Keys(const std::vector<uint32_t>& table,
                              const std::vector<MaglevBackend>& backends) {
  std::vector<std::string> out;
  out.reserve(table.size());
  for (uint32_t i : table) out.push_back(backends[i].key);
  return out;
}

double ChangedFraction(const std::vector<std::string>& a, const std::vector<std::string>& b) {
  size_t changed = 0;
  for (size_t i = 0; i < a.size(); ++i) changed += a[i] != b[i];
  return static_cast<double>(changed) / a.size();
}

TEST(SipHash24Test, ReferenceVectors) {
  // From the SipHash paper's reference implementation (vectors.h): key 00..0f,
  // message 00..(n-1).
  const uint64_t k0 = 0x0706050403020100ULL, k1 = 0x0f0e0d0c0b0a0908ULL;
  std::string msg;
  EXPECT_EQ(SipHash24(msg, k0, k1), 0x726fdb47dd0e0e31ULL);
  for (int i = 0; i < 8; ++i) msg.push_back(static_cast<char>(i));
  EXPECT_EQ(SipHash24(msg, k0, k1), 0x93f5f5799a932462ULL);
  for (int i = 8; i < 15; ++i) msg.push_back(static_cast<char>(i));
  EXPECT_EQ(SipHash24(msg, k0, k1), 0xa129ca6149be45e5ULL);
}

TEST(MaglevTest, PrimeCheck) {
  EXPECT_TRUE(IsPrime(2));
  EXPECT_TRUE(IsPrime(16381));
  EXPECT_TRUE(IsPrime(65537));
  EXPECT_FALSE(IsPrime(1));
  EXPECT_FALSE(IsPrime(16383));
  EXPECT_FALSE(IsPrime(65536));
}

TEST(MaglevTest, TableSizeMustBePrime) {
  auto b = Backends(3);
  EXPECT_THAT(BuildMaglevTable(b, 16383),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("must be a prime")));
  EXPECT_THAT(BuildMaglevTable(b, 1), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(BuildMaglevTable(b, 0), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(BuildMaglevTable(b, 16777259), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(BuildMaglevTable(b, 65537), IsOk());
  EXPECT_THAT(BuildMaglevTable(b, 7), IsOk());
}

TEST(MaglevTest, BadBackends) {
  std::vector<MaglevBackend> dup = {{"a", 1}, {"b", 1}, {"a", 2}};
  EXPECT_THAT(BuildMaglevTable(dup), StatusIs(absl::StatusCode::kInvalidArgument,
                                              HasSubstr("\"a\": given twice")));
  std::vector<MaglevBackend> empty_key = {{"a", 1}, {"", 1}};
  EXPECT_THAT(BuildMaglevTable(empty_key),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("empty key")));
  std::vector<MaglevBackend> heavy = {{"a", kMaxMaglevWeight + 1}};
  EXPECT_THAT(BuildMaglevTable(heavy),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("weight")));
  EXPECT_THAT(BuildMaglevTable(Backends(8), 7),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("do not fit")));
}

TEST(MaglevTest, EmptyBackendSetGivesEmptyTable) {
  ASSERT_OK_AND_ASSIGN(auto table, BuildMaglevTable({}));
  EXPECT_TRUE(table.empty());
  std::vector<MaglevBackend> zero = {{"a", 0}, {"b", 0}};
  ASSERT_OK_AND_ASSIGN(table, BuildMaglevTable(zero));
  EXPECT_TRUE(table.empty());
}

TEST(MaglevTest, EveryBackendGetsItsShare) {
  for (int n : {1, 2, 3, 10, 100}) {
    auto backends = Backends(n);
    ASSERT_OK_AND_ASSIGN(auto table, BuildMaglevTable(backends));
    ASSERT_EQ(table.size(), kDefaultMaglevTableSize);
    std::vector<int> counts(n);
    for (uint32_t i : table) {
      ASSERT_LT(i, static_cast<uint32_t>(n));
      ++counts[i];
    }
    double ideal = static_cast<double>(kDefaultMaglevTableSize) / n;
    for (int c : counts) {
      // Equal weights claim one slot per turn each: shares differ by at most one.
      EXPECT_NEAR(c, ideal, 1.0) << "n=" << n;
    }
  }
}

TEST(MaglevTest, WeightsShareSlotsProportionally) {
  std::vector<MaglevBackend> backends = {{"a", 1}, {"b", 2}, {"c", 7}, {"d", 0}};
  ASSERT_OK_AND_ASSIGN(auto table, BuildMaglevTable(backends));
  std::vector<double> counts(4);
  for (uint32_t i : table) ++counts[i];
  const double m = kDefaultMaglevTableSize;
  EXPECT_NEAR(counts[0] / m, 0.1, 0.001);
  EXPECT_NEAR(counts[1] / m, 0.2, 0.001);
  EXPECT_NEAR(counts[2] / m, 0.7, 0.001);
  EXPECT_EQ(counts[3], 0);
}

TEST(MaglevTest, DeterministicAndIndependentOfOrder) {
  auto backends = Backends(10);
  ASSERT_OK_AND_ASSIGN(auto a, BuildMaglevTable(backends));
  ASSERT_OK_AND_ASSIGN(auto b, BuildMaglevTable(backends));
  EXPECT_EQ(a, b);
  auto reversed = backends;
  std::reverse(reversed.begin(), reversed.end());
  ASSERT_OK_AND_ASSIGN(auto c, BuildMaglevTable(reversed));
  EXPECT_EQ(Keys(a, backends), Keys(c, reversed));
}

TEST(MaglevTest, FixedHashesGiveAFixedTable) {
  // Pinned values: a change here reshuffles every node's tables on upgrade, and
  // nodes on different versions would disagree. Do not update them lightly.
  EXPECT_EQ(MaglevOffsetHash("10.244.0.2:8080/TCP"), MaglevOffsetHash("10.244.0.2:8080/TCP"));
  auto backends = Backends(3);
  ASSERT_OK_AND_ASSIGN(auto table, BuildMaglevTable(backends, 13));
  std::string pinned;
  for (uint32_t i : table) pinned += static_cast<char>('0' + i);
  EXPECT_EQ(pinned, "2210101002102");
}

// When one of ten backends leaves, its slots must move, and little else may.
TEST(MaglevTest, RemovingOneOfTenDisruptsAtMostOnePercentAboveIdeal) {
  for (int first : {0, 100, 200}) {
    auto before = Backends(10, first);
    ASSERT_OK_AND_ASSIGN(auto t0, BuildMaglevTable(before));
    for (int gone = 0; gone < 10; ++gone) {
      auto after = before;
      after.erase(after.begin() + gone);
      ASSERT_OK_AND_ASSIGN(auto t1, BuildMaglevTable(after));
      double changed = ChangedFraction(Keys(t0, before), Keys(t1, after));
      EXPECT_LE(changed, 0.1 + 0.01) << "first=" << first << " gone=" << gone;
      EXPECT_GE(changed, 0.1 - 0.001);
    }
  }
}

TEST(MaglevTest, AddingAnEleventhDisruptsAtMostOnePercentAboveIdeal) {
  for (int first : {0, 100, 200}) {
    auto before = Backends(10, first);
    auto after = Backends(11, first);
    ASSERT_OK_AND_ASSIGN(auto t0, BuildMaglevTable(before));
    ASSERT_OK_AND_ASSIGN(auto t1, BuildMaglevTable(after));
    double changed = ChangedFraction(Keys(t0, before), Keys(t1, after));
    EXPECT_LE(changed, 1.0 / 11 + 0.01) << "first=" << first;
  }
}

}  // namespace
}  // namespace loom::lb
