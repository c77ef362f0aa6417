// The engine's edge cases, driven directly with explicit times.
#include "agent/store/mvcc_engine.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace loom::store {
namespace {

using ::loom::testing::StatusIs;

const absl::Time kT0 = absl::FromUnixSeconds(1'000'000);

void MustApply(MvccEngine& e, const absl::StatusOr<Mutation>& m, absl::Time now = kT0) {
  ASSERT_OK(m.status());
  e.Apply(*m, now);
}

TEST(MvccEngineTest, TxnRejectsTheSameKeyTwice) {
  MvccEngine e;
  Txn txn;
  txn.success = {Op::Put("/a", "1"), Op::Delete("/a")};
  bool ok = false;
  EXPECT_THAT(e.PlanTxn(txn, kT0, &ok), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(e.PlanPut("", "v", kNoLease, kT0), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(MvccEngineTest, LeasesExpireAtTheirTtlRoundedUpToSeconds) {
  MvccEngine e;
  Mutation grant = e.PlanGrantLease(absl::Milliseconds(1200));
  EXPECT_EQ(grant.granted_ttl_seconds, 2);
  e.Apply(grant, kT0);
  EXPECT_EQ(e.PlanGrantLease(absl::ZeroDuration()).granted_ttl_seconds, 1);
  MustApply(e, e.PlanPut("/k", "v", grant.granted_lease, kT0));
  EXPECT_TRUE(e.ExpiredLeases(kT0 + absl::Milliseconds(1999)).empty());
  EXPECT_THAT(e.ExpiredLeases(kT0 + absl::Seconds(2)), ::testing::ElementsAre(grant.granted_lease));
  // An expired but not yet reaped lease is already dead to writers and keep-alives.
  EXPECT_THAT(e.PlanPut("/k2", "v", grant.granted_lease, kT0 + absl::Seconds(2)),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(e.KeepAlive(grant.granted_lease, kT0 + absl::Seconds(2)),
              StatusIs(absl::StatusCode::kNotFound));
  Mutation end = e.PlanEndLease(grant.granted_lease);
  ASSERT_EQ(end.events.size(), 1u);
  EXPECT_EQ(end.events[0].type, Event::Type::kDelete);
  e.Apply(end, kT0);
  EXPECT_FALSE(e.Get("/k").has_value());
  EXPECT_TRUE(e.leases().empty());
}

TEST(MvccEngineTest, PuttingAKeyOnAnotherLeaseMovesIt) {
  MvccEngine e;
  Mutation a = e.PlanGrantLease(absl::Seconds(5));
  e.Apply(a, kT0);
  Mutation b = e.PlanGrantLease(absl::Seconds(5));
  e.Apply(b, kT0);
  MustApply(e, e.PlanPut("/k", "1", a.granted_lease, kT0));
  MustApply(e, e.PlanPut("/k", "2", b.granted_lease, kT0));
  EXPECT_TRUE(e.PlanEndLease(a.granted_lease).events.empty());
  EXPECT_EQ(e.PlanEndLease(b.granted_lease).events.size(), 1u);
}

TEST(MvccEngineTest, CompactionLimitsWhereWatchesCanStart) {
  MvccEngine e;
  for (int i = 0; i < 5; ++i) MustApply(e, e.PlanPut("/k", "v", kNoLease, kT0));  // revs 1..5
  EXPECT_FALSE(e.WatchFrom("/", 1).resync);
  EXPECT_EQ(e.WatchFrom("/", 1).events.size(), 4u);
  MustApply(e, e.PlanCompact(4));
  EXPECT_EQ(e.history_size(), 2u);  // revisions 4 and 5
  EXPECT_TRUE(e.WatchFrom("/", 2).resync);
  EXPECT_FALSE(e.WatchFrom("/", 3).resync);
  EXPECT_EQ(e.WatchFrom("/", 3).events.size(), 2u);
  EXPECT_TRUE(e.WatchFrom("/", 0).resync);
  EXPECT_THAT(e.PlanCompact(6), StatusIs(absl::StatusCode::kOutOfRange));
  ASSERT_OK_AND_ASSIGN(Mutation again, e.PlanCompact(3));
  EXPECT_TRUE(again.empty());
}

TEST(MvccEngineTest, HistoryIsBoundedByCompactingWholeRevisions) {
  MvccEngine e(/*max_history=*/3);
  for (int i = 0; i < 4; ++i) MustApply(e, e.PlanPut("/k", "v", kNoLease, kT0));  // revs 1..4
  Txn two;
  two.success = {Op::Put("/a", "1"), Op::Put("/b", "2")};
  bool ok = false;
  MustApply(e, e.PlanTxn(two, kT0, &ok));  // rev 5, two events
  EXPECT_EQ(e.history_size(), 3u);         // revisions 4 and 5
  EXPECT_EQ(e.compact_revision(), 4);
  EXPECT_TRUE(e.WatchFrom("/", 2).resync);
  EXPECT_EQ(e.WatchFrom("/", 3).events.size(), 3u);
}

}  // namespace
}  // namespace loom::store
