#include "agent/store/embedded_store.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "agent/store/mvcc_engine.h"
#include "agent/store/wal.h"
#include "common/log.h"
#include "common/status.h"
#include "common/strings.h"

namespace loom::store {
namespace {

// One watcher: a queue of batches and the thread that hands them to the callback
// in order, so callbacks never run under the store's lock.
class QueueWatch {
 public:
  QueueWatch(std::string prefix, WatchCallback callback)
      : prefix_(std::move(prefix)), callback_(std::move(callback)) {
    thread_ = std::thread([this] { Run(); });
  }
  ~QueueWatch() { Stop(); }

  const std::string& prefix() const { return prefix_; }

  void Push(WatchBatch batch) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopped_) return;
      queue_.push_back(std::move(batch));
    }
    cv_.notify_one();
  }

  void Stop() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopped_ = true;
    }
    cv_.notify_one();
    if (thread_.joinable()) thread_.join();
  }

 private:
  void Run() {
    while (true) {
      WatchBatch batch;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [this] { return stopped_ || !queue_.empty(); });
        if (stopped_) return;
        batch = std::move(queue_.front());
        queue_.pop_front();
      }
      callback_(batch);
    }
  }

  const std::string prefix_;
  const WatchCallback callback_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<WatchBatch> queue_;
  bool stopped_ = false;
  std::thread thread_;
};

// The live watchers; shared with each Watch handle so a watch may outlive the store.
struct WatchRegistry {
  std::mutex mu;
  std::vector<std::shared_ptr<QueueWatch>> watches;

  void Remove(const QueueWatch* w) {
    std::lock_guard<std::mutex> lock(mu);
    watches.erase(std::remove_if(watches.begin(), watches.end(),
                                 [w](const auto& p) { return p.get() == w; }),
                  watches.end());
  }
};

class WatchHandle : public Watch {
 public:
  WatchHandle(std::shared_ptr<WatchRegistry> registry, std::shared_ptr<QueueWatch> watch)
      : registry_(std::move(registry)), watch_(std::move(watch)) {}
  ~WatchHandle() override {
    registry_->Remove(watch_.get());
    watch_->Stop();
  }

 private:
  std::shared_ptr<WatchRegistry> registry_;
  std::shared_ptr<QueueWatch> watch_;
};

class EmbeddedStore : public Store {
 public:
  EmbeddedStore(EmbeddedStoreOptions options, std::string dir)
      : options_(options), dir_(std::move(dir)) {
    if (options_.clock == nullptr) options_.clock = &real_clock_;
  }

  ~EmbeddedStore() override {
    {
      std::lock_guard<std::mutex> lock(stop_mu_);
      stopping_ = true;
    }
    stop_cv_.notify_all();
    if (expiry_thread_.joinable()) expiry_thread_.join();
    wal_.reset();
    if (lock_fd_ >= 0) ::close(lock_fd_);  // releases the flock
  }

  absl::Status Open() {
    if (!dir_.empty()) RETURN_IF_ERROR(OpenFiles());
    expiry_thread_ = std::thread([this] { ExpiryLoop(); });
    return absl::OkStatus();
  }

  absl::StatusOr<std::optional<KeyValue>> Get(std::string_view key) override {
    std::lock_guard<std::mutex> lock(mu_);
    return engine_.Get(key);
  }

  absl::StatusOr<RangeResult> Range(std::string_view prefix) override {
    std::lock_guard<std::mutex> lock(mu_);
    return engine_.Range(prefix);
  }

  absl::StatusOr<Revision> Put(std::string_view key, std::string_view value,
                               LeaseId lease) override {
    std::lock_guard<std::mutex> lock(mu_);
    ASSIGN_OR_RETURN(Mutation m, engine_.PlanPut(key, value, lease, Now()));
    RETURN_IF_ERROR(CommitLocked(m));
    return m.revision;
  }

  absl::StatusOr<int64_t> Delete(std::string_view key) override {
    std::lock_guard<std::mutex> lock(mu_);
    ASSIGN_OR_RETURN(Mutation m, engine_.PlanDelete(key));
    RETURN_IF_ERROR(CommitLocked(m));
    return static_cast<int64_t>(m.events.size());
  }

  absl::StatusOr<TxnResult> Commit(const Txn& txn) override {
    std::lock_guard<std::mutex> lock(mu_);
    TxnResult result;
    ASSIGN_OR_RETURN(Mutation m, engine_.PlanTxn(txn, Now(), &result.succeeded));
    RETURN_IF_ERROR(CommitLocked(m));
    result.revision = engine_.revision();
    return result;
  }

  absl::StatusOr<LeaseId> GrantLease(absl::Duration ttl) override {
    std::lock_guard<std::mutex> lock(mu_);
    Mutation m = engine_.PlanGrantLease(ttl);
    RETURN_IF_ERROR(CommitLocked(m));
    return m.granted_lease;
  }

  absl::Status KeepAlive(LeaseId lease) override {
    // Not logged: on reopen every lease starts a fresh full TTL anyway.
    std::lock_guard<std::mutex> lock(mu_);
    return engine_.KeepAlive(lease, Now());
  }

  absl::Status RevokeLease(LeaseId lease) override {
    std::lock_guard<std::mutex> lock(mu_);
    return CommitLocked(engine_.PlanEndLease(lease));
  }

  absl::Status Compact(Revision revision) override {
    std::lock_guard<std::mutex> lock(mu_);
    ASSIGN_OR_RETURN(Mutation m, engine_.PlanCompact(revision));
    return CommitLocked(m);
  }

  absl::StatusOr<std::unique_ptr<Watch>> WatchPrefix(std::string_view prefix,
                                                     Revision after_revision,
                                                     WatchCallback callback) override {
    if (!callback) return absl::InvalidArgumentError("watch needs a callback");
    auto watch = std::make_shared<QueueWatch>(std::string(prefix), std::move(callback));
    {
      // Under the store lock, so no write falls between the start and the registration.
      std::lock_guard<std::mutex> lock(mu_);
      WatchStart start = engine_.WatchFrom(prefix, after_revision);
      if (start.resync || !start.events.empty()) {
        WatchBatch batch;
        batch.resync = start.resync;
        batch.snapshot = std::move(start.snapshot);
        batch.events = std::move(start.events);
        batch.revision = start.revision;
        watch->Push(std::move(batch));
      }
      std::lock_guard<std::mutex> rlock(registry_->mu);
      registry_->watches.push_back(watch);
    }
    return std::unique_ptr<Watch>(new WatchHandle(registry_, std::move(watch)));
  }

 private:
  absl::Time Now() { return options_.clock->Now(); }

  absl::Status OpenFiles() {
    const std::string context = StrCat("state dir ", dir_);
    RETURN_IF_ERROR(MakeDirs(dir_, context));
    const std::string lock_path = StrCat(dir_, "/", kLockFileName);
    lock_fd_ = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (lock_fd_ < 0) return ErrnoToStatus(errno, context);
    if (::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
      if (errno == EWOULDBLOCK) {
        return absl::FailedPreconditionError(
            StrCat(context, ": in use by another store (", lock_path, " is locked)"));
      }
      return ErrnoToStatus(errno, StrCat(context, ": lock ", lock_path));
    }

    const absl::Time now = Now();
    snapshot_path_ = StrCat(dir_, "/", kSnapshotFileName);
    absl::StatusOr<SnapshotData> snap = ReadSnapshot(snapshot_path_);
    if (snap.ok()) {
      seq_ = snap->seq;
      engine_.Restore(snap->revision, snap->compact_revision, snap->next_lease_id,
                      std::move(snap->kvs), snap->leases, now);
    } else if (!absl::IsNotFound(snap.status())) {
      return Annotate(snap.status(), context);
    }
    const uint64_t snap_seq = seq_;
    auto wal = WriteAheadLog::Open(StrCat(dir_, "/", kWalFileName),
                                   [&](uint64_t seq, const Mutation& m) {
                                     if (seq <= snap_seq) return;  // the snapshot has it
                                     engine_.Apply(m, now);
                                     seq_ = seq;
                                   });
    if (!wal.ok()) return Annotate(wal.status(), context);
    wal_ = std::move(*wal);
    // Leases restart their full TTL: the time the store was down does not count.
    engine_.RefreshAllLeases(now);
    LOG_INFO("embedded store open", {"dir", dir_}, {"revision", engine_.revision()},
             {"keys", engine_.kvs().size()}, {"leases", engine_.leases().size()});
    return absl::OkStatus();
  }

  static absl::Status MakeDirs(const std::string& dir, const std::string& context) {
    for (size_t pos = 1; pos <= dir.size(); ++pos) {
      if (pos != dir.size() && dir[pos] != '/') continue;
      std::string part = dir.substr(0, pos);
      if (::mkdir(part.c_str(), 0700) != 0 && errno != EEXIST) {
        return ErrnoToStatus(errno, context);
      }
    }
    struct stat st;
    if (::stat(dir.c_str(), &st) != 0) return ErrnoToStatus(errno, context);
    if (!S_ISDIR(st.st_mode)) return absl::FailedPreconditionError(StrCat(context, ": not a directory"));
    return absl::OkStatus();
  }

  // Logs (fsynced), applies and publishes one change; caller holds mu_.
  absl::Status CommitLocked(const Mutation& m) {
    if (m.empty()) return absl::OkStatus();
    if (wal_ != nullptr) {
      absl::Status status = wal_->Append(seq_ + 1, m);
      if (!status.ok()) {
        LOG_ERROR("store log write failed", {"error", status});
        return status;
      }
      ++seq_;
    }
    engine_.Apply(m, Now());
    Publish(m);
    if (wal_ != nullptr && wal_->records() >= options_.snapshot_every) {
      absl::Status status = SnapshotLocked();
      // The write itself is durable in the log; a failed snapshot only delays truncation.
      if (!status.ok()) LOG_WARNING("store snapshot failed", {"error", status});
    }
    return absl::OkStatus();
  }

  absl::Status SnapshotLocked() {
    SnapshotData snap;
    snap.seq = seq_;
    snap.revision = engine_.revision();
    snap.compact_revision = engine_.compact_revision();
    snap.next_lease_id = engine_.next_lease_id();
    for (const auto& [id, lease] : engine_.leases()) snap.leases.emplace_back(id, lease.ttl_seconds);
    snap.kvs.reserve(engine_.kvs().size());
    for (const auto& [key, kv] : engine_.kvs()) snap.kvs.push_back(kv);
    RETURN_IF_ERROR(WriteSnapshot(snapshot_path_, snap));
    return wal_->Reset();
  }

  void Publish(const Mutation& m) {
    if (m.events.empty()) return;
    std::lock_guard<std::mutex> lock(registry_->mu);
    for (const auto& watch : registry_->watches) {
      WatchBatch batch;
      batch.revision = m.revision;
      for (const Event& e : m.events) {
        if (HasPrefix(e.kv.key, watch->prefix())) batch.events.push_back(e);
      }
      if (!batch.events.empty()) watch->Push(std::move(batch));
    }
  }

  void ExpiryLoop() {
    while (true) {
      {
        std::unique_lock<std::mutex> lock(stop_mu_);
        stop_cv_.wait_for(lock, absl::ToChronoMilliseconds(options_.expiry_interval),
                          [this] { return stopping_; });
        if (stopping_) return;
      }
      std::lock_guard<std::mutex> lock(mu_);
      for (LeaseId id : engine_.ExpiredLeases(Now())) {
        absl::Status status = CommitLocked(engine_.PlanEndLease(id));
        if (!status.ok()) {
          LOG_WARNING("lease expiry failed", {"lease", id}, {"error", status});
        } else {
          LOG_DEBUG("lease expired", {"lease", id});
        }
      }
    }
  }

  EmbeddedStoreOptions options_;
  RealClock real_clock_;
  const std::string dir_;  // empty: memory only
  std::string snapshot_path_;
  int lock_fd_ = -1;

  std::mutex mu_;  // guards everything below
  MvccEngine engine_;
  std::unique_ptr<WriteAheadLog> wal_;
  uint64_t seq_ = 0;  // sequence number of the last log record
  std::shared_ptr<WatchRegistry> registry_ = std::make_shared<WatchRegistry>();

  std::mutex stop_mu_;
  std::condition_variable stop_cv_;
  bool stopping_ = false;
  std::thread expiry_thread_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Store>> OpenEmbeddedStore(const std::string& state_dir,
                                                          EmbeddedStoreOptions options) {
  if (state_dir.empty()) return absl::InvalidArgumentError("the embedded store needs a state dir");
  std::string dir = state_dir;
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  auto store = std::make_unique<EmbeddedStore>(options, dir);
  RETURN_IF_ERROR(store->Open());
  return std::unique_ptr<Store>(std::move(store));
}

std::unique_ptr<Store> NewMemoryStore(EmbeddedStoreOptions options) {
  auto store = std::make_unique<EmbeddedStore>(options, "");
  (void)store->Open();  // nothing to open without files
  return store;
}

}  // namespace loom::store
