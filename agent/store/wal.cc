#include "agent/store/wal.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>

#include "common/log.h"
#include "common/status.h"
#include "common/strings.h"

namespace loom::store {
namespace {

constexpr uint32_t kSnapshotMagic = 0x4c4d534e;  // "LMSN"
constexpr uint32_t kSnapshotVersion = 1;
constexpr uint32_t kMaxRecordBytes = 1u << 30;

std::array<uint32_t, 256> MakeCrcTable() {
  std::array<uint32_t, 256> table{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    table[i] = c;
  }
  return table;
}

class Encoder {
 public:
  void U32(uint32_t v) {
    for (int i = 0; i < 4; ++i) out_.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  }
  void Varint(uint64_t v) {
    while (v >= 0x80) {
      out_.push_back(static_cast<char>((v & 0x7f) | 0x80));
      v >>= 7;
    }
    out_.push_back(static_cast<char>(v));
  }
  void Int(int64_t v) { Varint(static_cast<uint64_t>(v)); }
  void Bytes(std::string_view s) {
    Varint(s.size());
    out_.append(s);
  }
  void Kv(const KeyValue& kv) {
    Bytes(kv.key);
    Bytes(kv.value);
    Int(kv.create_revision);
    Int(kv.mod_revision);
    Int(kv.version);
    Int(kv.lease);
  }
  std::string& out() { return out_; }

 private:
  std::string out_;
};

class Decoder {
 public:
  explicit Decoder(std::string_view in) : in_(in) {}
  bool U32(uint32_t* v) {
    if (in_.size() < 4) return false;
    *v = 0;
    for (int i = 0; i < 4; ++i) *v |= static_cast<uint32_t>(static_cast<uint8_t>(in_[i])) << (8 * i);
    in_.remove_prefix(4);
    return true;
  }
  bool Varint(uint64_t* v) {
    *v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (in_.empty()) return false;
      uint8_t b = static_cast<uint8_t>(in_[0]);
      in_.remove_prefix(1);
      *v |= static_cast<uint64_t>(b & 0x7f) << shift;
      if (!(b & 0x80)) return true;
    }
    return false;
  }
  bool Int(int64_t* v) {
    uint64_t u;
    if (!Varint(&u)) return false;
    *v = static_cast<int64_t>(u);
    return true;
  }
  bool Bytes(std::string* s) {
    uint64_t n;
    if (!Varint(&n) || n > in_.size()) return false;
    s->assign(in_.substr(0, n));
    in_.remove_prefix(n);
    return true;
  }
  bool Kv(KeyValue* kv) {
    return Bytes(&kv->key) && Bytes(&kv->value) && Int(&kv->create_revision) &&
           Int(&kv->mod_revision) && Int(&kv->version) && Int(&kv->lease);
  }
  bool done() const { return in_.empty(); }

 private:
  std::string_view in_;
};

absl::Status WriteAll(int fd, std::string_view data, const std::string& path) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoToStatus(errno, StrCat("write ", path));
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadAll(int fd, const std::string& path) {
  std::string out;
  char buf[65536];
  while (true) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoToStatus(errno, StrCat("read ", path));
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

}  // namespace

uint32_t Crc32(const void* data, size_t size) {
  static const std::array<uint32_t, 256> table = MakeCrcTable();
  uint32_t c = 0xFFFFFFFFu;
  const auto* p = static_cast<const uint8_t*>(data);
  for (size_t i = 0; i < size; ++i) c = table[(c ^ p[i]) & 0xff] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

std::string EncodeMutation(uint64_t seq, const Mutation& m) {
  Encoder e;
  e.Varint(seq);
  e.Int(m.revision);
  e.Varint(m.events.size());
  for (const Event& ev : m.events) {
    e.Varint(ev.type == Event::Type::kPut ? 0 : 1);
    e.Kv(ev.kv);
  }
  e.Int(m.granted_lease);
  e.Int(m.granted_ttl_seconds);
  e.Varint(m.ended_leases.size());
  for (LeaseId id : m.ended_leases) e.Int(id);
  e.Int(m.compact_revision);
  return std::move(e.out());
}

absl::Status DecodeMutation(const std::string& payload, uint64_t* seq, Mutation* m) {
  Decoder d(payload);
  uint64_t n = 0;
  bool ok = d.Varint(seq) && d.Int(&m->revision) && d.Varint(&n);
  for (uint64_t i = 0; ok && i < n; ++i) {
    uint64_t type = 0;
    Event ev;
    ok = d.Varint(&type) && d.Kv(&ev.kv);
    ev.type = type == 0 ? Event::Type::kPut : Event::Type::kDelete;
    m->events.push_back(std::move(ev));
  }
  ok = ok && d.Int(&m->granted_lease) && d.Int(&m->granted_ttl_seconds) && d.Varint(&n);
  for (uint64_t i = 0; ok && i < n; ++i) {
    LeaseId id = 0;
    ok = d.Int(&id);
    m->ended_leases.push_back(id);
  }
  ok = ok && d.Int(&m->compact_revision) && d.done();
  if (!ok) return absl::DataLossError("malformed log record");
  return absl::OkStatus();
}

absl::Status SyncParentDir(const std::string& path) {
  size_t slash = path.find_last_of('/');
  const std::string dir = slash == std::string::npos ? std::string(".") : path.substr(0, slash + 1);
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return ErrnoToStatus(errno, StrCat("open ", dir));
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  if (rc != 0) return ErrnoToStatus(err, StrCat("fsync ", dir));
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<WriteAheadLog>> WriteAheadLog::Open(const std::string& path,
                                                                   const ReplayFn& replay) {
  bool existed = ::access(path.c_str(), F_OK) == 0;
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return ErrnoToStatus(errno, StrCat("open ", path));
  std::unique_ptr<WriteAheadLog> wal(new WriteAheadLog(path, fd, 0, 0));
  ASSIGN_OR_RETURN(std::string data, ReadAll(fd, path));

  size_t pos = 0;
  while (pos < data.size()) {
    Decoder header(std::string_view(data).substr(pos));
    uint32_t len = 0, crc = 0;
    if (!header.U32(&len) || !header.U32(&crc) || len > kMaxRecordBytes ||
        data.size() - pos - 8 < len) {
      break;
    }
    std::string payload = data.substr(pos + 8, len);
    if (Crc32(payload.data(), payload.size()) != crc) break;
    uint64_t seq = 0;
    Mutation m;
    if (!DecodeMutation(payload, &seq, &m).ok()) break;
    replay(seq, m);
    pos += 8 + len;
    ++wal->records_;
  }
  if (pos < data.size()) {
    // A torn or corrupt tail: the write it held was never acknowledged.
    LOG_WARNING("store log has a torn tail; truncating it", {"path", path},
                {"offset", pos}, {"bytes", data.size() - pos});
    if (::ftruncate(fd, static_cast<off_t>(pos)) != 0 || ::fsync(fd) != 0) {
      return ErrnoToStatus(errno, StrCat("truncate ", path));
    }
  }
  if (::lseek(fd, static_cast<off_t>(pos), SEEK_SET) < 0) {
    return ErrnoToStatus(errno, StrCat("seek ", path));
  }
  wal->size_ = static_cast<int64_t>(pos);
  if (!existed) RETURN_IF_ERROR(SyncParentDir(path));
  return wal;
}

WriteAheadLog::~WriteAheadLog() { ::close(fd_); }

absl::Status WriteAheadLog::Append(uint64_t seq, const Mutation& m) {
  std::string payload = EncodeMutation(seq, m);
  Encoder frame;
  frame.U32(static_cast<uint32_t>(payload.size()));
  frame.U32(Crc32(payload.data(), payload.size()));
  frame.out().append(payload);
  absl::Status status = WriteAll(fd_, frame.out(), path_);
  if (status.ok() && ::fdatasync(fd_) != 0) status = ErrnoToStatus(errno, StrCat("fsync ", path_));
  if (!status.ok()) {
    // Cut the partial record so later appends stay readable.
    if (::ftruncate(fd_, size_) != 0 || ::lseek(fd_, size_, SEEK_SET) < 0) {
      return Annotate(status, "store log is damaged and could not be repaired");
    }
    return status;
  }
  size_ += static_cast<int64_t>(frame.out().size());
  ++records_;
  return absl::OkStatus();
}

absl::Status WriteAheadLog::Reset() {
  if (::ftruncate(fd_, 0) != 0 || ::lseek(fd_, 0, SEEK_SET) < 0 || ::fsync(fd_) != 0) {
    return ErrnoToStatus(errno, StrCat("truncate ", path_));
  }
  size_ = 0;
  records_ = 0;
  return absl::OkStatus();
}

absl::Status WriteSnapshot(const std::string& path, const SnapshotData& snap) {
  Encoder e;
  e.U32(kSnapshotMagic);
  e.U32(kSnapshotVersion);
  std::string body;
  {
    Encoder b;
    b.Varint(snap.seq);
    b.Int(snap.revision);
    b.Int(snap.compact_revision);
    b.Int(snap.next_lease_id);
    b.Varint(snap.leases.size());
    for (const auto& [id, ttl] : snap.leases) {
      b.Int(id);
      b.Int(ttl);
    }
    b.Varint(snap.kvs.size());
    for (const KeyValue& kv : snap.kvs) b.Kv(kv);
    body = std::move(b.out());
  }
  e.U32(Crc32(body.data(), body.size()));
  e.out().append(body);

  const std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return ErrnoToStatus(errno, StrCat("open ", tmp));
  absl::Status status = WriteAll(fd, e.out(), tmp);
  if (status.ok() && ::fsync(fd) != 0) status = ErrnoToStatus(errno, StrCat("fsync ", tmp));
  ::close(fd);
  if (status.ok() && ::rename(tmp.c_str(), path.c_str()) != 0) {
    status = ErrnoToStatus(errno, StrCat("rename ", tmp));
  }
  if (!status.ok()) {
    ::unlink(tmp.c_str());
    return status;
  }
  return SyncParentDir(path);
}

absl::StatusOr<SnapshotData> ReadSnapshot(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoToStatus(errno, StrCat("open ", path));
  absl::StatusOr<std::string> data = ReadAll(fd, path);
  ::close(fd);
  if (!data.ok()) return data.status();
  Decoder d(*data);
  uint32_t magic = 0, version = 0, crc = 0;
  if (!d.U32(&magic) || !d.U32(&version) || !d.U32(&crc) || magic != kSnapshotMagic ||
      version != kSnapshotVersion || data->size() < 12 ||
      Crc32(data->data() + 12, data->size() - 12) != crc) {
    return absl::DataLossError(StrCat("store snapshot ", path, " is corrupt"));
  }
  SnapshotData snap;
  uint64_t n = 0;
  bool ok = d.Varint(&snap.seq) && d.Int(&snap.revision) && d.Int(&snap.compact_revision) &&
            d.Int(&snap.next_lease_id) && d.Varint(&n);
  for (uint64_t i = 0; ok && i < n; ++i) {
    std::pair<LeaseId, int64_t> lease;
    ok = d.Int(&lease.first) && d.Int(&lease.second);
    snap.leases.push_back(lease);
  }
  ok = ok && d.Varint(&n);
  for (uint64_t i = 0; ok && i < n; ++i) {
    KeyValue kv;
    ok = d.Kv(&kv);
    snap.kvs.push_back(std::move(kv));
  }
  if (!ok || !d.done()) {
    return absl::DataLossError(StrCat("store snapshot ", path, " is corrupt"));
  }
  return snap;
}

}  // namespace loom::store
