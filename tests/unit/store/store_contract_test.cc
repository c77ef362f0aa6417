// The store contract: one suite, run against the embedded store and against a
// real etcd-server. Whatever the agent relies on is pinned here.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "agent/store/embedded_store.h"
#include "agent/store/store.h"
#include "common/strings.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/etcd_server.h"
#include "tests/testing/privileged.h"
#include "tests/testing/status_matchers.h"
#include "tests/unit/store/store_test_util.h"

namespace loom::store {
namespace {

using ::loom::testing::EtcdServer;
using ::loom::testing::IsOk;
using ::loom::testing::IsOkAndHolds;
using ::loom::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::Eq;
using ::testing::Field;
using ::testing::IsEmpty;
using ::testing::Optional;

class StoreContractTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (etcd()) {
      LOOM_REQUIRE(::access(loom::testing::kEtcdBinary, X_OK) == 0,
                   "etcd-server (/usr/bin/etcd)");
      LOOM_REQUIRE(::access(loom::testing::kEtcdctlBinary, X_OK) == 0,
                   "etcd-client (/usr/bin/etcdctl)");
      auto server = EtcdServer::Start();
      ASSERT_OK(server.status());
      etcd_ = std::move(*server);
    } else {
      char tmpl[] = "/tmp/loom-store-test-XXXXXX";
      ASSERT_NE(::mkdtemp(tmpl), nullptr);
      dir_ = tmpl;
    }
    Reopen();
  }

  void TearDown() override {
    store_.reset();
    etcd_.reset();
    if (!dir_.empty()) std::system(StrCat("rm -rf ", dir_).c_str());
  }

  bool etcd() const { return GetParam() == "etcd"; }

  void Reopen() {
    store_.reset();
    auto store = etcd() ? OpenStore(etcd_->StoreUrl(), "") : OpenStore("embedded", dir_);
    ASSERT_OK(store.status());
    store_ = std::move(*store);
  }

  Revision CurrentRevision() {
    auto r = store_->Range("/none/");
    EXPECT_OK(r.status());
    return r.ok() ? r->revision : -1;
  }

  std::unique_ptr<Watch> MustWatch(std::string_view prefix, Revision after,
                                   WatchRecorder* recorder) {
    auto w = store_->WatchPrefix(prefix, after, recorder->Callback());
    EXPECT_OK(w.status());
    return w.ok() ? std::move(*w) : nullptr;
  }

  std::string dir_;
  std::unique_ptr<EtcdServer> etcd_;
  std::unique_ptr<Store> store_;
};

TEST_P(StoreContractTest, PutGetTrackRevisionsAndVersions) {
  EXPECT_THAT(store_->Get("/k"), IsOkAndHolds(Eq(std::nullopt)));
  ASSERT_OK_AND_ASSIGN(Revision r1, store_->Put("/k", "v1"));
  ASSERT_OK_AND_ASSIGN(std::optional<KeyValue> kv, store_->Get("/k"));
  ASSERT_TRUE(kv.has_value());
  EXPECT_EQ(kv->key, "/k");
  EXPECT_EQ(kv->value, "v1");
  EXPECT_EQ(kv->create_revision, r1);
  EXPECT_EQ(kv->mod_revision, r1);
  EXPECT_EQ(kv->version, 1);
  EXPECT_EQ(kv->lease, kNoLease);

  ASSERT_OK_AND_ASSIGN(Revision r2, store_->Put("/k", std::string("v\0\xff", 3)));
  EXPECT_EQ(r2, r1 + 1);
  ASSERT_OK_AND_ASSIGN(kv, store_->Get("/k"));
  ASSERT_TRUE(kv.has_value());
  EXPECT_EQ(kv->value, std::string("v\0\xff", 3));
  EXPECT_EQ(kv->create_revision, r1);
  EXPECT_EQ(kv->mod_revision, r2);
  EXPECT_EQ(kv->version, 2);

  ASSERT_OK_AND_ASSIGN(Revision r3, store_->Put("/empty", ""));
  EXPECT_THAT(store_->Get("/empty"), IsOkAndHolds(Optional(Field(&KeyValue::value, ""))));
  EXPECT_EQ(CurrentRevision(), r3);
}

TEST_P(StoreContractTest, DeleteCountsAndBumpsRevisionOnlyWhenSomethingGoes) {
  ASSERT_OK_AND_ASSIGN(Revision r1, store_->Put("/k", "v"));
  EXPECT_THAT(store_->Delete("/missing"), IsOkAndHolds(0));
  EXPECT_EQ(CurrentRevision(), r1);
  EXPECT_THAT(store_->Delete("/k"), IsOkAndHolds(1));
  EXPECT_EQ(CurrentRevision(), r1 + 1);
  EXPECT_THAT(store_->Get("/k"), IsOkAndHolds(Eq(std::nullopt)));
  // A re-created key starts over.
  ASSERT_OK_AND_ASSIGN(Revision r3, store_->Put("/k", "again"));
  ASSERT_OK_AND_ASSIGN(std::optional<KeyValue> kv, store_->Get("/k"));
  EXPECT_EQ(kv->create_revision, r3);
  EXPECT_EQ(kv->version, 1);
}

TEST_P(StoreContractTest, RangeReturnsThePrefixSorted) {
  for (const char* k : {"/a/2", "/b", "/a/1", "/ab", "/a/3"}) ASSERT_OK(store_->Put(k, k).status());
  ASSERT_OK_AND_ASSIGN(RangeResult r, store_->Range("/a/"));
  std::vector<std::string> keys;
  for (const KeyValue& kv : r.kvs) keys.push_back(kv.key);
  EXPECT_THAT(keys, ElementsAre("/a/1", "/a/2", "/a/3"));
  EXPECT_EQ(r.revision, CurrentRevision());
  ASSERT_OK_AND_ASSIGN(RangeResult all, store_->Range(""));
  EXPECT_EQ(all.kvs.size(), 5u);
  ASSERT_OK_AND_ASSIGN(RangeResult none, store_->Range("/c"));
  EXPECT_THAT(none.kvs, IsEmpty());
  // A prefix ending in 0xff still bounds the range correctly.
  ASSERT_OK(store_->Put("/x\xff" "1", "1").status());
  ASSERT_OK(store_->Put("/y", "1").status());
  ASSERT_OK_AND_ASSIGN(RangeResult ff, store_->Range("/x\xff"));
  ASSERT_EQ(ff.kvs.size(), 1u);
  EXPECT_EQ(ff.kvs[0].key, "/x\xff" "1");
}

TEST_P(StoreContractTest, TxnAbsentClaimsOnce) {
  Txn claim;
  claim.compare = {Compare::Absent("/subnets/10.244.1.0")};
  claim.success = {Op::Put("/subnets/10.244.1.0", "node-a")};
  claim.failure = {Op::Put("/conflicts/a", "lost")};
  ASSERT_OK_AND_ASSIGN(TxnResult first, store_->Commit(claim));
  EXPECT_TRUE(first.succeeded);
  EXPECT_EQ(first.revision, CurrentRevision());

  claim.success = {Op::Put("/subnets/10.244.1.0", "node-b")};
  ASSERT_OK_AND_ASSIGN(TxnResult second, store_->Commit(claim));
  EXPECT_FALSE(second.succeeded);
  EXPECT_EQ(second.revision, first.revision + 1);  // the failure branch wrote
  EXPECT_THAT(store_->Get("/subnets/10.244.1.0"),
              IsOkAndHolds(Optional(Field(&KeyValue::value, "node-a"))));
  EXPECT_THAT(store_->Get("/conflicts/a"), IsOkAndHolds(Optional(Field(&KeyValue::value, "lost"))));
}

TEST_P(StoreContractTest, TxnModRevisionDetectsAConcurrentWrite) {
  ASSERT_OK_AND_ASSIGN(Revision r1, store_->Put("/k", "1"));
  ASSERT_OK_AND_ASSIGN(Revision r2, store_->Put("/k", "2"));  // someone else's write
  Txn cas;
  cas.compare = {Compare::ModRevisionIs("/k", r1)};
  cas.success = {Op::Put("/k", "mine")};
  ASSERT_OK_AND_ASSIGN(TxnResult lost, store_->Commit(cas));
  EXPECT_FALSE(lost.succeeded);
  EXPECT_EQ(lost.revision, r2);  // nothing written
  cas.compare = {Compare::ModRevisionIs("/k", r2)};
  ASSERT_OK_AND_ASSIGN(TxnResult won, store_->Commit(cas));
  EXPECT_TRUE(won.succeeded);
  EXPECT_EQ(won.revision, r2 + 1);
  EXPECT_THAT(store_->Get("/k"), IsOkAndHolds(Optional(Field(&KeyValue::value, "mine"))));
}

TEST_P(StoreContractTest, TxnValueIsAndMultipleOpsShareOneRevision) {
  ASSERT_OK(store_->Put("/k", "old").status());
  ASSERT_OK(store_->Put("/gone", "x").status());
  Txn txn;
  txn.compare = {Compare::ValueIs("/k", "other")};
  txn.success = {Op::Put("/k", "new")};
  ASSERT_OK_AND_ASSIGN(TxnResult r, store_->Commit(txn));
  EXPECT_FALSE(r.succeeded);
  // A value comparison against a missing key fails.
  txn.compare = {Compare::ValueIs("/missing", "")};
  ASSERT_OK_AND_ASSIGN(r, store_->Commit(txn));
  EXPECT_FALSE(r.succeeded);

  Revision before = CurrentRevision();
  txn.compare = {Compare::ValueIs("/k", "old")};
  txn.success = {Op::Put("/k", "new"), Op::Put("/k2", "v"), Op::Delete("/gone")};
  ASSERT_OK_AND_ASSIGN(r, store_->Commit(txn));
  EXPECT_TRUE(r.succeeded);
  EXPECT_EQ(r.revision, before + 1);
  ASSERT_OK_AND_ASSIGN(std::optional<KeyValue> k, store_->Get("/k"));
  ASSERT_OK_AND_ASSIGN(std::optional<KeyValue> k2, store_->Get("/k2"));
  EXPECT_EQ(k->mod_revision, before + 1);
  EXPECT_EQ(k2->mod_revision, before + 1);
  EXPECT_THAT(store_->Get("/gone"), IsOkAndHolds(Eq(std::nullopt)));

  // A transaction that changes nothing does not bump the revision.
  Txn noop;
  noop.compare = {Compare::Absent("/k")};
  ASSERT_OK_AND_ASSIGN(r, store_->Commit(noop));
  EXPECT_FALSE(r.succeeded);
  EXPECT_EQ(r.revision, before + 1);
}

TEST_P(StoreContractTest, ExpiredLeaseDeletesItsKeysWithAnEvent) {
  ASSERT_OK_AND_ASSIGN(LeaseId lease, store_->GrantLease(absl::Seconds(1)));
  ASSERT_OK_AND_ASSIGN(Revision r, store_->Put("/nodes/n1", "up", lease));
  ASSERT_OK(store_->Put("/nodes/n2", "static").status());
  EXPECT_THAT(store_->Get("/nodes/n1"), IsOkAndHolds(Optional(Field(&KeyValue::lease, lease))));
  WatchRecorder rec;
  auto watch = MustWatch("/nodes/", r, &rec);
  ASSERT_TRUE(rec.WaitFor(
      [](const std::vector<WatchBatch>& batches) {
        for (const WatchBatch& b : batches) {
          for (const Event& e : b.events) {
            if (e.type == Event::Type::kDelete && e.kv.key == "/nodes/n1") return true;
          }
        }
        return false;
      },
      absl::Seconds(8)));
  EXPECT_THAT(store_->Get("/nodes/n1"), IsOkAndHolds(Eq(std::nullopt)));
  EXPECT_THAT(store_->Get("/nodes/n2"), IsOkAndHolds(Optional(Field(&KeyValue::value, "static"))));
  EXPECT_THAT(store_->KeepAlive(lease), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(store_->Put("/nodes/n1", "again", lease), StatusIs(absl::StatusCode::kNotFound));
}

TEST_P(StoreContractTest, KeepAliveExtendsALease) {
  ASSERT_OK_AND_ASSIGN(LeaseId lease, store_->GrantLease(absl::Milliseconds(300)));  // 1 s
  ASSERT_OK(store_->Put("/k", "v", lease).status());
  const absl::Time end = absl::Now() + absl::Milliseconds(2500);
  while (absl::Now() < end) {
    ASSERT_OK(store_->KeepAlive(lease));
    absl::SleepFor(absl::Milliseconds(250));
  }
  EXPECT_THAT(store_->Get("/k"), IsOkAndHolds(Optional(Field(&KeyValue::value, "v"))));
  // Without renewals it goes.
  const absl::Time deadline = absl::Now() + absl::Seconds(8);
  while (absl::Now() < deadline) {
    ASSERT_OK_AND_ASSIGN(auto kv, store_->Get("/k"));
    if (!kv.has_value()) break;
    absl::SleepFor(absl::Milliseconds(100));
  }
  EXPECT_THAT(store_->Get("/k"), IsOkAndHolds(Eq(std::nullopt)));
}

TEST_P(StoreContractTest, RevokeDeletesKeysAndDeadLeasesAreNotFound) {
  ASSERT_OK_AND_ASSIGN(LeaseId lease, store_->GrantLease(absl::Seconds(30)));
  ASSERT_OK(store_->Put("/a", "1", lease).status());
  ASSERT_OK(store_->Put("/b", "2", lease).status());
  Revision before = CurrentRevision();
  ASSERT_OK(store_->RevokeLease(lease));
  EXPECT_EQ(CurrentRevision(), before + 1);  // both deletes are one write
  EXPECT_THAT(store_->Get("/a"), IsOkAndHolds(Eq(std::nullopt)));
  EXPECT_THAT(store_->Get("/b"), IsOkAndHolds(Eq(std::nullopt)));
  EXPECT_OK(store_->RevokeLease(lease));  // already gone: OK
  EXPECT_THAT(store_->KeepAlive(lease), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(store_->Put("/c", "3", lease), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(store_->Put("/c", "3", 987654321), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(store_->KeepAlive(987654321), StatusIs(absl::StatusCode::kNotFound));
  Txn txn;
  txn.success = {Op::Put("/c", "3", lease)};
  EXPECT_THAT(store_->Commit(txn), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(store_->Get("/c"), IsOkAndHolds(Eq(std::nullopt)));
}

TEST_P(StoreContractTest, WatchDeliversEveryChangeInOrderExactlyOnce) {
  ASSERT_OK(store_->Put("/start", "").status());  // so the watch starts after revision > 0
  WatchRecorder rec;
  auto watch = MustWatch("/w/", CurrentRevision(), &rec);
  constexpr int kWriters = 4;
  constexpr int kPerWriter = 40;
  std::vector<std::vector<Revision>> revisions(kWriters);
  std::atomic<int64_t> deletes{0};
  std::vector<std::thread> writers;
  for (int w = 0; w < kWriters; ++w) {
    writers.emplace_back([&, w] {
      for (int i = 0; i < kPerWriter; ++i) {
        std::string key = StrCat("/w/", w, "/", i % 5);
        if (i % 7 == 6) {
          auto n = store_->Delete(key);
          ASSERT_OK(n.status());
          deletes += *n;
          continue;
        }
        auto rev = store_->Put(key, StrCat(i));
        ASSERT_OK(rev.status());
        revisions[w].push_back(*rev);
        ASSERT_OK(store_->Put(StrCat("/other/", w), "noise").status());
      }
    });
  }
  for (std::thread& t : writers) t.join();
  std::set<Revision> puts;
  for (const auto& rs : revisions) puts.insert(rs.begin(), rs.end());
  const Revision end = CurrentRevision();
  const size_t expected = puts.size() + static_cast<size_t>(deletes.load());
  ASSERT_TRUE(rec.WaitForEvents(expected)) << rec.event_count() << " of " << expected
                                           << " events by revision " << end;
  absl::SleepFor(absl::Milliseconds(100));  // anything extra would show up now

  Revision last = 0;
  std::set<Revision> seen_puts;
  int64_t seen_deletes = 0;
  for (const WatchBatch& b : rec.batches()) {
    EXPECT_FALSE(b.resync);
    for (const Event& e : b.events) {
      EXPECT_TRUE(e.kv.key.starts_with("/w/")) << e.kv.key;
      EXPECT_GT(e.kv.mod_revision, last) << "out of order or repeated";
      EXPECT_LE(e.kv.mod_revision, b.revision);
      last = e.kv.mod_revision;
      if (e.type == Event::Type::kPut) seen_puts.insert(e.kv.mod_revision);
      if (e.type == Event::Type::kDelete) ++seen_deletes;
    }
  }
  EXPECT_EQ(seen_puts, puts);
  EXPECT_EQ(seen_deletes, deletes.load());
}

TEST_P(StoreContractTest, WatchFromAPastRevisionReplaysHistory) {
  ASSERT_OK_AND_ASSIGN(Revision r1, store_->Put("/h/a", "1"));
  ASSERT_OK_AND_ASSIGN(Revision r2, store_->Put("/h/b", "2"));
  ASSERT_OK(store_->Put("/x", "elsewhere").status());
  ASSERT_OK(store_->Delete("/h/a").status());
  ASSERT_OK_AND_ASSIGN(Revision r5, store_->Put("/h/b", "3"));
  WatchRecorder rec;
  auto watch = MustWatch("/h/", r1, &rec);
  ASSERT_TRUE(rec.WaitForEvents(3));
  std::vector<Event> events = rec.events();
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0].type, Event::Type::kPut);
  EXPECT_EQ(events[0].kv.key, "/h/b");
  EXPECT_EQ(events[0].kv.mod_revision, r2);
  EXPECT_EQ(events[1].type, Event::Type::kDelete);
  EXPECT_EQ(events[1].kv.key, "/h/a");
  EXPECT_EQ(events[2].kv.value, "3");
  EXPECT_EQ(events[2].kv.version, 2);
  EXPECT_EQ(events[2].kv.mod_revision, r5);
  EXPECT_FALSE(rec.batches()[0].resync);
  // Live changes follow.
  ASSERT_OK(store_->Put("/h/c", "4").status());
  ASSERT_TRUE(rec.WaitForEvents(4));
  EXPECT_EQ(rec.events()[3].kv.key, "/h/c");
}

TEST_P(StoreContractTest, WatchFromZeroStartsWithAResyncSnapshot) {
  ASSERT_OK(store_->Put("/s/a", "1").status());
  ASSERT_OK(store_->Put("/s/b", "2").status());
  ASSERT_OK(store_->Put("/t", "no").status());
  Revision now = CurrentRevision();
  WatchRecorder rec;
  auto watch = MustWatch("/s/", 0, &rec);
  WatchBatch first = rec.WaitForFirstBatch();
  EXPECT_TRUE(first.resync);
  EXPECT_EQ(first.revision, now);
  ASSERT_EQ(first.snapshot.size(), 2u);
  EXPECT_EQ(first.snapshot[0].key, "/s/a");
  EXPECT_EQ(first.snapshot[1].value, "2");
  EXPECT_THAT(first.events, IsEmpty());
  ASSERT_OK_AND_ASSIGN(Revision r, store_->Put("/s/c", "3"));
  ASSERT_TRUE(rec.WaitForEvents(1));
  EXPECT_EQ(rec.events()[0].kv.mod_revision, r);
}

TEST_P(StoreContractTest, WatchFromACompactedRevisionResyncsThenContinues) {
  ASSERT_OK_AND_ASSIGN(Revision r1, store_->Put("/c/a", "1"));
  ASSERT_OK(store_->Put("/c/b", "2").status());
  ASSERT_OK(store_->Delete("/c/a").status());
  ASSERT_OK_AND_ASSIGN(Revision r4, store_->Put("/c/b", "3"));
  ASSERT_OK(store_->Compact(r4));
  EXPECT_OK(store_->Compact(r4));  // already compacted: fine
  EXPECT_THAT(store_->Compact(r4 + 100), StatusIs(absl::StatusCode::kOutOfRange));
  WatchRecorder rec;
  auto watch = MustWatch("/c/", r1, &rec);
  WatchBatch first = rec.WaitForFirstBatch();
  EXPECT_TRUE(first.resync);
  EXPECT_GE(first.revision, r4);
  ASSERT_EQ(first.snapshot.size(), 1u);
  EXPECT_EQ(first.snapshot[0].key, "/c/b");
  EXPECT_EQ(first.snapshot[0].value, "3");
  ASSERT_OK_AND_ASSIGN(Revision r5, store_->Put("/c/d", "4"));
  ASSERT_TRUE(rec.WaitForEvents(1));
  std::vector<Event> events = rec.events();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].kv.mod_revision, r5);
}

TEST_P(StoreContractTest, WatchContinuesExactlyOnceAcrossAReconnect) {
  ASSERT_OK(store_->Put("/start", "").status());  // so the watch starts after revision > 0
  WatchRecorder rec;
  Revision start = CurrentRevision();
  auto watch = MustWatch("/r/", start, &rec);
  std::vector<Revision> written;
  for (int i = 0; i < 5; ++i) {
    ASSERT_OK_AND_ASSIGN(Revision r, store_->Put(StrCat("/r/", i), "before"));
    written.push_back(r);
  }
  ASSERT_TRUE(rec.WaitForEvents(5));
  if (etcd()) {
    // The server goes away under the live watch and comes back.
    ASSERT_OK(etcd_->Restart());
  } else {
    // The process restarts: reopen the store and resume from the last revision seen.
    Revision last_seen = rec.batches().back().revision;
    watch.reset();
    Reopen();
    watch = MustWatch("/r/", last_seen, &rec);
  }
  for (int i = 0; i < 5; ++i) {
    absl::StatusOr<Revision> r;
    // The client may need a moment to find the restarted server.
    for (int attempt = 0; attempt < 50; ++attempt) {
      r = store_->Put(StrCat("/r/", i), "after");
      if (r.ok()) break;
      absl::SleepFor(absl::Milliseconds(100));
    }
    ASSERT_OK(r.status());
    written.push_back(*r);
  }
  ASSERT_TRUE(rec.WaitForEvents(10));
  absl::SleepFor(absl::Milliseconds(200));
  std::vector<Revision> seen;
  for (const WatchBatch& b : rec.batches()) {
    EXPECT_FALSE(b.resync);
    for (const Event& e : b.events) seen.push_back(e.kv.mod_revision);
  }
  EXPECT_EQ(seen, written);
}

TEST_P(StoreContractTest, DestroyingAWatchStopsCallbacks) {
  ASSERT_OK(store_->Put("/start", "").status());
  std::atomic<int> calls{0};
  auto watch = store_->WatchPrefix("/d/", CurrentRevision(), [&](const WatchBatch&) {
    absl::SleepFor(absl::Milliseconds(20));
    ++calls;
  });
  ASSERT_OK(watch.status());
  for (int i = 0; i < 5; ++i) ASSERT_OK(store_->Put("/d/k", StrCat(i)).status());
  watch->reset();
  int after_destroy = calls.load();
  ASSERT_OK(store_->Put("/d/k", "late").status());
  absl::SleepFor(absl::Milliseconds(200));
  EXPECT_EQ(calls.load(), after_destroy);
}

TEST_P(StoreContractTest, CallbacksMayCallBackIntoTheStore) {
  ASSERT_OK(store_->Put("/start", "").status());
  std::atomic<int> done{0};
  auto watch = store_->WatchPrefix("/cb/", CurrentRevision(), [&](const WatchBatch& b) {
    for (const Event& e : b.events) {
      if (e.kv.value == "ping") {
        EXPECT_OK(store_->Get(e.kv.key).status());
        EXPECT_OK(store_->Put("/cb/reply", "pong").status());
      } else if (e.kv.value == "pong") {
        ++done;
      }
    }
  });
  ASSERT_OK(watch.status());
  ASSERT_OK(store_->Put("/cb/k", "ping").status());
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (done.load() == 0 && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(10));
  EXPECT_EQ(done.load(), 1);
}

INSTANTIATE_TEST_SUITE_P(Stores, StoreContractTest, ::testing::Values("embedded", "etcd"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace loom::store
