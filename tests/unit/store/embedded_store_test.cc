// The embedded store's own promises: durability across kill -9 and torn writes,
// snapshots, one process per state dir, lease TTLs across a reopen, clear errors.
#include "agent/store/embedded_store.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/time/clock.h"
#include "common/strings.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/fakes/fake_clock.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/subprocess.h"
#include "tests/unit/store/store_test_util.h"

namespace loom::store {
namespace {

using ::loom::testing::FakeClock;
using ::loom::testing::IsOkAndHolds;
using ::loom::testing::StatusIs;
using ::loom::testing::Subprocess;
using ::testing::Eq;
using ::testing::Field;
using ::testing::HasSubstr;
using ::testing::Optional;

class EmbeddedStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/loom-embedded-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    root_ = tmpl;
    dir_ = root_ + "/state";
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::permissions(root_, std::filesystem::perms::owner_all, ec);
    std::filesystem::remove_all(root_, ec);
  }

  std::unique_ptr<Store> MustOpen(EmbeddedStoreOptions options = {}) {
    auto store = OpenEmbeddedStore(dir_, options);
    EXPECT_OK(store.status());
    return store.ok() ? std::move(*store) : nullptr;
  }

  std::string WalPath() const { return StrCat(dir_, "/", kWalFileName); }

  std::string root_;
  std::string dir_;
};

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST_F(EmbeddedStoreTest, KillNineKeepsEveryAcknowledgedWrite) {
  const std::string log = root_ + "/writer.log";
  ASSERT_OK_AND_ASSIGN(auto writer,
                       Subprocess::Start({StrCat(LOOM_BIN_DIR, "/store_writer"), dir_, "100000"},
                                         {.log_path = log}));
  // Let it acknowledge a good number of writes, then kill it mid-stream.
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (absl::Now() < deadline) {
    if (ReadFile(log).find("acked k300 ") != std::string::npos) break;
    ASSERT_TRUE(writer->running()) << ReadFile(log);
    absl::SleepFor(absl::Milliseconds(5));
  }
  ASSERT_OK(writer->Signal(SIGKILL));
  EXPECT_THAT(writer->Wait(absl::Seconds(5)), IsOkAndHolds(128 + SIGKILL));

  // Every line that made it out names a write that must have survived.
  std::istringstream lines(ReadFile(log));
  std::string line;
  int acked = 0;
  std::map<std::string, Revision> acks;
  while (std::getline(lines, line)) {
    if (!line.starts_with("acked ")) continue;  // the store's own log lines
    std::istringstream fields(line);
    std::string word, key, rev_word;
    Revision rev = 0;
    ASSERT_TRUE(fields >> word >> key >> rev_word >> rev) << line;
    acks["/" + key] = rev;
    ++acked;
  }
  ASSERT_GE(acked, 300);

  auto store = MustOpen();
  ASSERT_NE(store, nullptr);
  for (const auto& [k, r] : acks) {
    ASSERT_OK_AND_ASSIGN(std::optional<KeyValue> kv, store->Get(k));
    ASSERT_TRUE(kv.has_value()) << k << " was acknowledged but is gone";
    EXPECT_EQ(kv->value, StrCat("value-", k.substr(2)));
    EXPECT_EQ(kv->mod_revision, r);
  }
  // Consistent: keys are exactly k0..k(n-1) with revisions 1..n; the one write
  // in flight at the kill may or may not have made it.
  ASSERT_OK_AND_ASSIGN(RangeResult all, store->Range("/k"));
  EXPECT_GE(all.kvs.size(), acks.size());
  EXPECT_LE(all.kvs.size(), acks.size() + 1);
  EXPECT_EQ(all.revision, static_cast<Revision>(all.kvs.size()));
  // And it takes new writes.
  ASSERT_OK_AND_ASSIGN(Revision next, store->Put("/after", "crash"));
  EXPECT_EQ(next, all.revision + 1);
}

TEST_F(EmbeddedStoreTest, TornLogTailIsTruncatedAndTheLogStaysUsable) {
  {
    auto store = MustOpen();
    for (int i = 0; i < 3; ++i) ASSERT_OK(store->Put(StrCat("/k", i), "v").status());
  }
  // Cut the last record in half, as a crash mid-write would.
  const auto size = std::filesystem::file_size(WalPath());
  std::filesystem::resize_file(WalPath(), size - 5);
  {
    auto store = MustOpen();
    EXPECT_THAT(store->Get("/k1"), IsOkAndHolds(Optional(Field(&KeyValue::mod_revision, 2))));
    EXPECT_THAT(store->Get("/k2"), IsOkAndHolds(Eq(std::nullopt)));
    EXPECT_THAT(store->Put("/k3", "v"), IsOkAndHolds(3));
  }
  // Garbage after the last record is also a torn tail.
  {
    std::ofstream out(WalPath(), std::ios::app | std::ios::binary);
    out << "\x10\x00\x00\x00garbage";
  }
  auto store = MustOpen();
  EXPECT_THAT(store->Get("/k3"), IsOkAndHolds(Optional(Field(&KeyValue::mod_revision, 3))));
  EXPECT_THAT(store->Put("/k4", "v"), IsOkAndHolds(4));
}

TEST_F(EmbeddedStoreTest, AStateDirIsUsedByOneStoreAtATime) {
  auto first = MustOpen();
  EXPECT_THAT(OpenEmbeddedStore(dir_),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("in use")));
  // Another process is refused too.
  ASSERT_OK_AND_ASSIGN(auto writer,
                       Subprocess::Start({StrCat(LOOM_BIN_DIR, "/store_writer"), dir_, "1"},
                                         {.log_path = root_ + "/writer.log"}));
  EXPECT_THAT(writer->Wait(absl::Seconds(10)), IsOkAndHolds(1));
  EXPECT_THAT(ReadFile(root_ + "/writer.log"), HasSubstr(StrCat("state dir ", dir_, ": in use")));
  first.reset();
  EXPECT_OK(OpenEmbeddedStore(dir_).status());
}

TEST_F(EmbeddedStoreTest, CreatesItsStateDirPrivateAndNamesBadOnes) {
  auto store = MustOpen();
  struct stat st;
  ASSERT_EQ(::stat(dir_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);

  const std::string file = root_ + "/file";
  std::ofstream(file) << "x";
  EXPECT_THAT(OpenEmbeddedStore(file + "/state"),
              StatusIs(absl::StatusCode::kInternal,
                       Eq(StrCat("state dir ", file, "/state: Not a directory"))));
  EXPECT_THAT(OpenStore("embedded", ""), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(OpenStore("zookeeper://x", dir_),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("zookeeper://x")));
  if (::geteuid() != 0) {  // root ignores file modes
    const std::string locked = root_ + "/locked";
    ASSERT_EQ(::mkdir(locked.c_str(), 0500), 0);
    EXPECT_THAT(OpenEmbeddedStore(locked + "/state"),
                StatusIs(absl::StatusCode::kPermissionDenied,
                         Eq(StrCat("state dir ", locked, "/state: Permission denied"))));
  }
}

TEST_F(EmbeddedStoreTest, SnapshotsTruncateTheLogAndReopenRestoresEverything) {
  EmbeddedStoreOptions options;
  options.snapshot_every = 5;
  RangeResult before;
  LeaseId lease;
  {
    auto store = MustOpen(options);
    ASSERT_OK_AND_ASSIGN(lease, store->GrantLease(absl::Seconds(60)));
    for (int i = 0; i < 23; ++i) {
      ASSERT_OK(store->Put(StrCat("/k", i % 7), StrCat(i), i % 3 == 0 ? lease : kNoLease).status());
    }
    ASSERT_OK(store->Delete("/k6").status());
    ASSERT_OK_AND_ASSIGN(before, store->Range(""));
  }
  EXPECT_TRUE(std::filesystem::exists(StrCat(dir_, "/", kSnapshotFileName)));
  EXPECT_LT(std::filesystem::file_size(WalPath()), 1000u);
  auto store = MustOpen(options);
  ASSERT_OK_AND_ASSIGN(RangeResult after, store->Range(""));
  EXPECT_EQ(after.revision, before.revision);
  EXPECT_EQ(after.kvs, before.kvs);
  EXPECT_OK(store->KeepAlive(lease));
  ASSERT_OK_AND_ASSIGN(LeaseId next, store->GrantLease(absl::Seconds(1)));
  EXPECT_NE(next, lease);
  // History from before the snapshot is gone: such a watcher resyncs.
  WatchRecorder rec;
  ASSERT_OK_AND_ASSIGN(auto watch, store->WatchPrefix("/k", 2, rec.Callback()));
  WatchBatch first = rec.WaitForFirstBatch();
  EXPECT_TRUE(first.resync);
  EXPECT_EQ(first.snapshot, before.kvs);
}

TEST_F(EmbeddedStoreTest, LeasesSurviveAReopenWithAFreshTtl) {
  FakeClock clock;
  EmbeddedStoreOptions options;
  options.clock = &clock;
  options.expiry_interval = absl::Milliseconds(10);
  LeaseId lease;
  {
    auto store = MustOpen(options);
    ASSERT_OK_AND_ASSIGN(lease, store->GrantLease(absl::Seconds(10)));
    ASSERT_OK(store->Put("/nodes/n1", "up", lease).status());
    clock.Advance(absl::Seconds(8));
  }
  auto store = MustOpen(options);
  clock.Advance(absl::Seconds(5));  // 13 s after the grant, 5 s after the reopen
  absl::SleepFor(absl::Milliseconds(100));
  EXPECT_THAT(store->Get("/nodes/n1"), IsOkAndHolds(Optional(Field(&KeyValue::lease, lease))));
  clock.Advance(absl::Seconds(6));
  const absl::Time deadline = absl::Now() + absl::Seconds(5);
  while (absl::Now() < deadline && store->Get("/nodes/n1")->has_value()) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_THAT(store->Get("/nodes/n1"), IsOkAndHolds(Eq(std::nullopt)));
  EXPECT_THAT(store->KeepAlive(lease), StatusIs(absl::StatusCode::kNotFound));
  // The expiry itself was logged: it stays expired after another reopen.
  store.reset();
  store = MustOpen(options);
  EXPECT_THAT(store->Get("/nodes/n1"), IsOkAndHolds(Eq(std::nullopt)));
}

TEST_F(EmbeddedStoreTest, KeepAliveFollowsTheInjectedClock) {
  FakeClock clock;
  EmbeddedStoreOptions options;
  options.clock = &clock;
  options.expiry_interval = absl::Milliseconds(10);
  auto store = MustOpen(options);
  ASSERT_OK_AND_ASSIGN(LeaseId lease, store->GrantLease(absl::Milliseconds(1500)));  // 2 s
  ASSERT_OK(store->Put("/k", "v", lease).status());
  for (int i = 0; i < 5; ++i) {
    clock.Advance(absl::Milliseconds(1900));
    ASSERT_OK(store->KeepAlive(lease));
  }
  absl::SleepFor(absl::Milliseconds(50));
  EXPECT_THAT(store->Get("/k"), IsOkAndHolds(Optional(Field(&KeyValue::value, "v"))));
  clock.Advance(absl::Seconds(2));
  EXPECT_THAT(store->KeepAlive(lease), StatusIs(absl::StatusCode::kNotFound));
}

TEST(MemoryStoreTest, WorksWithoutFiles) {
  auto store = NewMemoryStore();
  EXPECT_THAT(store->Put("/a", "1"), IsOkAndHolds(1));
  EXPECT_THAT(store->Get("/a"), IsOkAndHolds(Optional(Field(&KeyValue::value, "1"))));
}

}  // namespace
}  // namespace loom::store
