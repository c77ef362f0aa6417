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

// The fraction of slots whose backend (by key) differs between two tables.
double ChangedFraction(const std::vector<uint32_t>& a, const std::vector<MaglevBackend>& a_backends,
                       const std::vector<uint32_t>& b, const std::vector<MaglevBackend>& b_backends) {
  size_t changed = 0;
  for (size_t i = 0; i < a.size(); ++i) changed += a_backends[a[i]].key != b_backends[b[i]].key;
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

struct Disruption {
  double mean = 0, worst = 0, least = 1;
};

// For `sets` different sets of ten backends, the fraction of slots whose backend
// changes when each one in turn leaves (ideal: the 1/10 it held).
Disruption RemoveEachOfTen(int sets, uint32_t table_size) {
  Disruption d;
  int n = 0;
  for (int set = 0; set < sets; ++set) {
    auto before = Backends(10, set * 10);
    auto t0 = BuildMaglevTable(before, table_size);
    EXPECT_TRUE(t0.ok());
    for (int gone = 0; gone < 10; ++gone) {
      auto after = before;
      after.erase(after.begin() + gone);
      auto t1 = BuildMaglevTable(after, table_size);
      EXPECT_TRUE(t1.ok());
      double changed = ChangedFraction(*t0, before, *t1, after);
      d.mean += changed;
      d.worst = std::max(d.worst, changed);
      d.least = std::min(d.least, changed);
      ++n;
    }
  }
  d.mean /= n;
  return d;
}

Disruption AddEleventh(int sets, uint32_t table_size) {
  Disruption d;
  for (int set = 0; set < sets; ++set) {
    auto before = Backends(10, set * 11);
    auto after = Backends(11, set * 11);
    auto t0 = BuildMaglevTable(before, table_size);
    auto t1 = BuildMaglevTable(after, table_size);
    EXPECT_TRUE(t0.ok() && t1.ok());
    double changed = ChangedFraction(*t0, before, *t1, after);
    d.mean += changed / sets;
    d.worst = std::max(d.worst, changed);
    d.least = std::min(d.least, changed);
  }
  return d;
}

// The bound: at most 1 point more disruption than ideal when one backend of
// ten leaves. Maglev meets it on average at M = 16381 (mean +0.5 points), but not in
// every case: its cascades vary, and over 500 random sets the worst was +3 points.
// At M = 65537 (Katran's size) the worst of 500 was +0.8 points.
TEST(MaglevTest, RemovingOneOfTenDisruptsAboutOnePercentAboveIdeal) {
  Disruption d = RemoveEachOfTen(30, kDefaultMaglevTableSize);
  EXPECT_LE(d.mean, 0.1 + 0.01);
  EXPECT_LE(d.worst, 0.1 + 0.04);
  EXPECT_GE(d.least, 0.1 - 0.001);  // the leaver's own slots always move
}

TEST(MaglevTest, RemovingOneOfTenAtKatranSizeStaysWithinOnePercentOfIdeal) {
  Disruption d = RemoveEachOfTen(10, 65537);
  EXPECT_LE(d.worst, 0.1 + 0.01);
  EXPECT_GE(d.least, 0.1 - 0.001);
}

TEST(MaglevTest, AddingAnEleventhDisruptsAboutOnePercentAboveIdeal) {
  Disruption d = AddEleventh(30, kDefaultMaglevTableSize);
  EXPECT_LE(d.mean, 1.0 / 11 + 0.01);
  EXPECT_LE(d.worst, 1.0 / 11 + 0.04);
  EXPECT_GE(d.least, 1.0 / 11 - 0.001);  // the newcomer's share must move to it
}

}  // namespace
}  // namespace loom::lb
