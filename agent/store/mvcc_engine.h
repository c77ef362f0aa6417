// The in-memory MVCC state machine behind the embedded store: keys, one revision
// counter, the event history since the last compaction, and leases. It is not
// thread-safe and has no clock of its own (callers pass `now`), so it can be
// driven deterministically from tests and replayed from a write-ahead log.
//
// Every change goes through two steps: Plan*() checks the request against the
// current state and returns a Mutation (nothing changes yet); Apply() makes it
// real. The embedded store logs the Mutation durably in between.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "agent/store/store.h"

namespace loom::store {

// One atomic change of the store, as logged and replayed.
struct Mutation {
  Revision revision = 0;  // the revision of the key changes; 0 when there are none
  std::vector<Event> events;
  // A lease granted by this mutation (id, TTL in whole seconds).
  LeaseId granted_lease = kNoLease;
  int64_t granted_ttl_seconds = 0;
  // Leases ended (revoked or expired); their keys are deleted in `events`.
  std::vector<LeaseId> ended_leases;
  // Forget history before this revision; 0: no compaction.
  Revision compact_revision = 0;

  bool empty() const {
    return events.empty() && granted_lease == kNoLease && ended_leases.empty() &&
           compact_revision == 0;
  }
};

struct LeaseState {
  int64_t ttl_seconds = 0;
  absl::Time expiry;
  std::set<std::string> keys;
};

// What WatchFrom() hands a new watcher: either the history it asked for or,
// when that is gone, a resync snapshot.
struct WatchStart {
  bool resync = false;
  std::vector<KeyValue> snapshot;     // resync: the prefix now
  std::vector<Event> events;          // otherwise: history after the start revision
  Revision revision = 0;              // the store revision now
};

class MvccEngine {
 public:
  // History beyond `max_history` events is compacted away automatically (whole
  // revisions, oldest first), so memory stays bounded without explicit Compact().
  explicit MvccEngine(size_t max_history = 100000) : max_history_(max_history) {}

  std::optional<KeyValue> Get(std::string_view key) const;
  RangeResult Range(std::string_view prefix) const;
  Revision revision() const { return revision_; }
  Revision compact_revision() const { return compact_revision_; }
  LeaseId next_lease_id() const { return next_lease_id_; }

  // Key changes. A lease named in a put must be live at `now` (NotFound otherwise).
  absl::StatusOr<Mutation> PlanPut(std::string_view key, std::string_view value, LeaseId lease,
                                   absl::Time now) const;
  absl::StatusOr<Mutation> PlanDelete(std::string_view key) const;
  // Also sets *succeeded.
  absl::StatusOr<Mutation> PlanTxn(const Txn& txn, absl::Time now, bool* succeeded) const;

  // Leases. TTL rounds up to whole seconds, at least 1.
  Mutation PlanGrantLease(absl::Duration ttl) const;
  // Ends a lease and deletes its keys; an empty mutation when it does not exist.
  Mutation PlanEndLease(LeaseId lease) const;
  // NotFound when the lease is gone or expired at `now`.
  absl::Status KeepAlive(LeaseId lease, absl::Time now);
  // Leases whose expiry is at or before `now`.
  std::vector<LeaseId> ExpiredLeases(absl::Time now) const;

  // Compact(revision): OutOfRange for a future revision; empty when already done.
  absl::StatusOr<Mutation> PlanCompact(Revision revision) const;

  // Applies a planned (or replayed) mutation. Lease expiries are set from `now`.
  void Apply(const Mutation& mutation, absl::Time now);

  // For a watcher of `prefix` wanting every change after `after_revision`.
  WatchStart WatchFrom(std::string_view prefix, Revision after_revision) const;

  // Snapshot support: the whole state, and restoring it into an empty engine.
  const std::map<std::string, KeyValue>& kvs() const { return kvs_; }
  const std::map<LeaseId, LeaseState>& leases() const { return leases_; }
  // Restores state from a snapshot: history starts empty at `revision`, every
  // lease gets a fresh full TTL from `now` (as etcd does after a leader change).
  void Restore(Revision revision, Revision compact_revision, LeaseId next_lease_id,
               std::vector<KeyValue> kvs, const std::vector<std::pair<LeaseId, int64_t>>& leases,
               absl::Time now);
  // After replaying a log: give every lease a fresh full TTL from `now`.
  void RefreshAllLeases(absl::Time now);

  // Number of events kept for watchers.
  size_t history_size() const { return history_.size(); }

 private:
  bool LeaseLive(LeaseId lease, absl::Time now) const;
  // Adds to `m` the events of applying `ops` on top of the state (and of `m` so far).
  absl::Status PlanOps(const std::vector<Op>& ops, absl::Time now, Mutation* m) const;
  bool CompareHolds(const Compare& c, const std::map<std::string, KeyValue>& pending) const;

  std::map<std::string, KeyValue> kvs_;
  Revision revision_ = 0;
  // History before this revision is gone; a watch needs after_revision + 1 >= it.
  Revision compact_revision_ = 0;
  std::deque<Event> history_;  // ordered by mod_revision
  size_t max_history_;
  std::map<LeaseId, LeaseState> leases_;
  LeaseId next_lease_id_ = 1;
};

bool HasPrefix(std::string_view s, std::string_view prefix);

}  // namespace loom::store
