// The cluster store: the one interface the agent layer reads and writes cluster
// state through. Two implementations share one contract test suite:
//   embedded  (one node; durable under --state-dir)   OpenStore("embedded", dir)
//   etcd      (the etcd v3 API)                       OpenStore("etcd://h:p[,h:p]", dir)
// Semantics follow etcd v3: one revision counter for the whole store, bumped once
// per write (a transaction is one write); keys carry create/mod revisions and a
// version; leases expire keys bound to them.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace loom::store {

using Revision = int64_t;
using LeaseId = int64_t;  // 0: no lease
inline constexpr LeaseId kNoLease = 0;

struct KeyValue {
  std::string key;
  std::string value;
  Revision create_revision = 0;
  Revision mod_revision = 0;
  int64_t version = 0;  // 1 on create, +1 per put
  LeaseId lease = kNoLease;

  friend bool operator==(const KeyValue&, const KeyValue&) = default;
};

struct Event {
  enum class Type { kPut, kDelete };
  Type type = Type::kPut;
  // For a delete: key, and mod_revision = the revision of the delete.
  KeyValue kv;

  friend bool operator==(const Event&, const Event&) = default;
};

// What a watcher receives, in order, from one thread at a time.
// Normally `events` (every change with mod_revision in (previous revision, revision]).
// When history the watcher needs is gone (compacted, or lost across a reconnect),
// `resync` is set and `snapshot` is the whole prefix at `revision`: the watcher
// replaces everything it knew with it; events continue after `revision`.
struct WatchBatch {
  bool resync = false;
  std::vector<KeyValue> snapshot;
  std::vector<Event> events;
  Revision revision = 0;
};

using WatchCallback = std::function<void(const WatchBatch&)>;

// A live watch. Destroying it cancels the watch; no callback runs once the
// destructor has returned. Do not destroy a watch from inside its own callback.
class Watch {
 public:
  virtual ~Watch() = default;
};

struct RangeResult {
  std::vector<KeyValue> kvs;  // sorted by key
  Revision revision = 0;      // the store revision the range was read at
};

// Equality comparisons of a transaction.
struct Compare {
  enum class Target { kValue, kVersion, kCreateRevision, kModRevision };
  std::string key;
  Target target = Target::kVersion;
  int64_t number = 0;  // version or revision
  std::string value;   // kValue

  // The key does not exist.
  static Compare Absent(std::string_view key) {
    return {std::string(key), Target::kCreateRevision, 0, {}};
  }
  static Compare ModRevisionIs(std::string_view key, Revision rev) {
    return {std::string(key), Target::kModRevision, rev, {}};
  }
  static Compare ValueIs(std::string_view key, std::string_view value) {
    return {std::string(key), Target::kValue, 0, std::string(value)};
  }
};

struct Op {
  enum class Type { kPut, kDelete };
  Type type = Type::kPut;
  std::string key;
  std::string value;
  LeaseId lease = kNoLease;

  static Op Put(std::string_view key, std::string_view value, LeaseId lease = kNoLease) {
    return {Type::kPut, std::string(key), std::string(value), lease};
  }
  static Op Delete(std::string_view key) { return {Type::kDelete, std::string(key), {}, 0}; }
};

// If every comparison holds, `success` is applied, else `failure`; atomically.
struct Txn {
  std::vector<Compare> compare;
  std::vector<Op> success;
  std::vector<Op> failure;
};

struct TxnResult {
  bool succeeded = false;
  Revision revision = 0;  // the store revision after the transaction
};

class Store {
 public:
  virtual ~Store() = default;

  virtual absl::StatusOr<std::optional<KeyValue>> Get(std::string_view key) = 0;
  // Every key starting with `prefix`, sorted.
  virtual absl::StatusOr<RangeResult> Range(std::string_view prefix) = 0;
  // Returns the revision of the write. `lease` must be live (NotFound otherwise).
  virtual absl::StatusOr<Revision> Put(std::string_view key, std::string_view value,
                                       LeaseId lease = kNoLease) = 0;
  // Returns how many keys were deleted (0 or 1).
  virtual absl::StatusOr<int64_t> Delete(std::string_view key) = 0;
  virtual absl::StatusOr<TxnResult> Commit(const Txn& txn) = 0;

  // TTL is rounded up to whole seconds, at least 1 s.
  virtual absl::StatusOr<LeaseId> GrantLease(absl::Duration ttl) = 0;
  // Renews the lease once for its full TTL; NotFound when it expired or never existed.
  virtual absl::Status KeepAlive(LeaseId lease) = 0;
  // Ends the lease now and deletes its keys; OK when it is already gone.
  virtual absl::Status RevokeLease(LeaseId lease) = 0;

  // Forgets history before `revision`; watches that need it resync.
  virtual absl::Status Compact(Revision revision) = 0;

  // Watches every key under `prefix` for changes after `after_revision`.
  // after_revision = 0: the first batch is a resync snapshot of the prefix now.
  // after_revision older than the compacted history: the first batch is a resync.
  virtual absl::StatusOr<std::unique_ptr<Watch>> WatchPrefix(std::string_view prefix,
                                                             Revision after_revision,
                                                             WatchCallback callback) = 0;
};

// Opens the store that `url` names: "embedded" (state under `state_dir`) or
// "etcd://host:port[,host:port...]". Fails with a message naming the problem
// (unwritable state dir, unreachable etcd, malformed URL).
absl::StatusOr<std::unique_ptr<Store>> OpenStore(std::string_view url,
                                                 const std::string& state_dir);

}  // namespace loom::store
