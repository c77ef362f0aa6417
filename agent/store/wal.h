// On-disk formats of the embedded store: the write-ahead log of Mutations and
// the snapshot that lets the log be truncated.
//
// Log record: [u32 payload length][u32 CRC-32 of the payload][payload], little
// endian; the payload is a sequence number and one encoded Mutation. A record
// that is cut short or fails its checksum ends the log: it is the torn tail of a
// write that was never acknowledged, and opening the log truncates it away.
//
// Snapshot: written to a temporary file, fsynced and renamed over the old one,
// so it is always whole; the log records it already covers (by sequence number)
// are skipped on replay, so a crash between snapshot and log truncation is safe.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "agent/store/mvcc_engine.h"

namespace loom::store {

uint32_t Crc32(const void* data, size_t size);

std::string EncodeMutation(uint64_t seq, const Mutation& m);
// DataLoss when the payload is malformed.
absl::Status DecodeMutation(const std::string& payload, uint64_t* seq, Mutation* m);

class WriteAheadLog {
 public:
  using ReplayFn = std::function<void(uint64_t seq, const Mutation& m)>;

  // Opens (creating) the log at `path`, calls `replay` for every whole record in
  // order and truncates a torn tail.
  static absl::StatusOr<std::unique_ptr<WriteAheadLog>> Open(const std::string& path,
                                                            const ReplayFn& replay);
  ~WriteAheadLog();

  // Appends one record and fsyncs it; on failure the log is cut back to where it was.
  absl::Status Append(uint64_t seq, const Mutation& m);
  // Empties the log (after a snapshot covers it).
  absl::Status Reset();
  int64_t records() const { return records_; }
  int64_t size_bytes() const { return size_; }

 private:
  WriteAheadLog(std::string path, int fd, int64_t size, int64_t records)
      : path_(std::move(path)), fd_(fd), size_(size), records_(records) {}

  std::string path_;
  int fd_;
  int64_t size_;
  int64_t records_;
};

struct SnapshotData {
  uint64_t seq = 0;  // the last log record the snapshot includes
  Revision revision = 0;
  Revision compact_revision = 0;
  LeaseId next_lease_id = 1;
  std::vector<std::pair<LeaseId, int64_t>> leases;  // id, TTL seconds
  std::vector<KeyValue> kvs;
};

// Writes atomically (temp file, fsync, rename, fsync of the directory).
absl::Status WriteSnapshot(const std::string& path, const SnapshotData& snap);
// NotFound when there is no snapshot; DataLoss when it is corrupt.
absl::StatusOr<SnapshotData> ReadSnapshot(const std::string& path);

// fsync of the directory holding `path`, so a created or renamed file survives.
absl::Status SyncParentDir(const std::string& path);

}  // namespace loom::store
