// The embedded store: the MVCC engine in this process, made durable under a state
// directory by a write-ahead log (fsynced before a write is acknowledged) and
// periodic snapshots. Files, all in the state directory:
//   store.lock   flock()ed for as long as the store is open (one process per dir)
//   store.wal    the log of changes since the snapshot
//   store.snap   the last snapshot
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "agent/store/clock.h"
#include "agent/store/store.h"

namespace loom::store {

inline constexpr char kLockFileName[] = "store.lock";
inline constexpr char kWalFileName[] = "store.wal";
inline constexpr char kSnapshotFileName[] = "store.snap";

struct EmbeddedStoreOptions {
  // Lease expiry time source; null: the real clock. Must outlive the store.
  Clock* clock = nullptr;
  // How often the background thread looks for expired leases.
  absl::Duration expiry_interval = absl::Milliseconds(100);
  // Write a snapshot and truncate the log after this many log records.
  int64_t snapshot_every = 10000;
};

// Opens (creating, mode 0700) the store under `state_dir`, replaying its files.
// Fails with "state dir <dir>: <reason>" when the directory is unusable and
// FailedPrecondition when another process has it open.
absl::StatusOr<std::unique_ptr<Store>> OpenEmbeddedStore(const std::string& state_dir,
                                                          EmbeddedStoreOptions options = {});

// The same store without any files: for tests of code built on the store.
std::unique_ptr<Store> NewMemoryStore(EmbeddedStoreOptions options = {});

}  // namespace loom::store
