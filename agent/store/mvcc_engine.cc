#include "agent/store/mvcc_engine.h"

#include <algorithm>
#include <cmath>

#include "common/status.h"
#include "common/strings.h"

namespace loom::store {

bool HasPrefix(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && s.compare(0, prefix.size(), prefix) == 0;
}

std::optional<KeyValue> MvccEngine::Get(std::string_view key) const {
  auto it = kvs_.find(std::string(key));
  if (it == kvs_.end()) return std::nullopt;
  return it->second;
}

RangeResult MvccEngine::Range(std::string_view prefix) const {
  RangeResult result;
  result.revision = revision_;
  for (auto it = kvs_.lower_bound(std::string(prefix));
       it != kvs_.end() && HasPrefix(it->first, prefix); ++it) {
    result.kvs.push_back(it->second);
  }
  return result;
}

bool MvccEngine::LeaseLive(LeaseId lease, absl::Time now) const {
  auto it = leases_.find(lease);
  return it != leases_.end() && it->second.expiry > now;
}

absl::Status MvccEngine::PlanOps(const std::vector<Op>& ops, absl::Time now, Mutation* m) const {
  std::set<std::string> seen;
  const Revision rev = revision_ + 1;
  for (const Op& op : ops) {
    if (op.key.empty()) return absl::InvalidArgumentError("empty key");
    if (!seen.insert(op.key).second) {
      return absl::InvalidArgumentError(StrCat("duplicate key in transaction: ", op.key));
    }
    auto it = kvs_.find(op.key);
    if (op.type == Op::Type::kPut) {
      if (op.lease != kNoLease && !LeaseLive(op.lease, now)) {
        return absl::NotFoundError(StrCat("lease ", op.lease, " not found"));
      }
      Event e;
      e.type = Event::Type::kPut;
      e.kv.key = op.key;
      e.kv.value = op.value;
      e.kv.mod_revision = rev;
      e.kv.lease = op.lease;
      if (it == kvs_.end()) {
        e.kv.create_revision = rev;
        e.kv.version = 1;
      } else {
        e.kv.create_revision = it->second.create_revision;
        e.kv.version = it->second.version + 1;
      }
      m->events.push_back(std::move(e));
    } else if (it != kvs_.end()) {
      Event e;
      e.type = Event::Type::kDelete;
      e.kv.key = op.key;
      e.kv.mod_revision = rev;
      m->events.push_back(std::move(e));
    }
  }
  if (!m->events.empty()) m->revision = rev;
  return absl::OkStatus();
}

absl::StatusOr<Mutation> MvccEngine::PlanPut(std::string_view key, std::string_view value,
                                             LeaseId lease, absl::Time now) const {
  Mutation m;
  RETURN_IF_ERROR(PlanOps({Op::Put(key, value, lease)}, now, &m));
  return m;
}

absl::StatusOr<Mutation> MvccEngine::PlanDelete(std::string_view key) const {
  Mutation m;
  RETURN_IF_ERROR(PlanOps({Op::Delete(key)}, absl::InfinitePast(), &m));
  return m;
}

bool MvccEngine::CompareHolds(const Compare& c,
                              const std::map<std::string, KeyValue>& /*pending*/) const {
  auto it = kvs_.find(c.key);
  const KeyValue* kv = it == kvs_.end() ? nullptr : &it->second;
  switch (c.target) {
    case Compare::Target::kValue:
      // As in etcd, a value comparison against a missing key fails.
      return kv != nullptr && kv->value == c.value;
    case Compare::Target::kVersion:
      return (kv ? kv->version : 0) == c.number;
    case Compare::Target::kCreateRevision:
      return (kv ? kv->create_revision : 0) == c.number;
    case Compare::Target::kModRevision:
      return (kv ? kv->mod_revision : 0) == c.number;
  }
  return false;
}

absl::StatusOr<Mutation> MvccEngine::PlanTxn(const Txn& txn, absl::Time now,
                                             bool* succeeded) const {
  bool ok = true;
  for (const Compare& c : txn.compare) {
    if (c.key.empty()) return absl::InvalidArgumentError("empty key in comparison");
    if (!CompareHolds(c, kvs_)) {
      ok = false;
      break;
    }
  }
  Mutation m;
  RETURN_IF_ERROR(PlanOps(ok ? txn.success : txn.failure, now, &m));
  *succeeded = ok;
  return m;
}

Mutation MvccEngine::PlanGrantLease(absl::Duration ttl) const {
  Mutation m;
  m.granted_lease = next_lease_id_;
  int64_t seconds = static_cast<int64_t>(std::ceil(absl::ToDoubleSeconds(ttl)));
  m.granted_ttl_seconds = std::max<int64_t>(1, seconds);
  return m;
}

Mutation MvccEngine::PlanEndLease(LeaseId lease) const {
  Mutation m;
  auto it = leases_.find(lease);
  if (it == leases_.end()) return m;
  m.ended_leases.push_back(lease);
  const Revision rev = revision_ + 1;
  for (const std::string& key : it->second.keys) {
    Event e;
    e.type = Event::Type::kDelete;
    e.kv.key = key;
    e.kv.mod_revision = rev;
    m.events.push_back(std::move(e));
  }
  if (!m.events.empty()) m.revision = rev;
  return m;
}

absl::Status MvccEngine::KeepAlive(LeaseId lease, absl::Time now) {
  auto it = leases_.find(lease);
  if (it == leases_.end() || it->second.expiry <= now) {
    return absl::NotFoundError(StrCat("lease ", lease, " not found"));
  }
  it->second.expiry = now + absl::Seconds(it->second.ttl_seconds);
  return absl::OkStatus();
}

std::vector<LeaseId> MvccEngine::ExpiredLeases(absl::Time now) const {
  std::vector<LeaseId> out;
  for (const auto& [id, lease] : leases_) {
    if (lease.expiry <= now) out.push_back(id);
  }
  return out;
}

absl::StatusOr<Mutation> MvccEngine::PlanCompact(Revision revision) const {
  if (revision > revision_) {
    return absl::OutOfRangeError(
        StrCat("compact revision ", revision, " is in the future (store is at ", revision_, ")"));
  }
  Mutation m;
  if (revision > compact_revision_) m.compact_revision = revision;
  return m;
}

void MvccEngine::Apply(const Mutation& m, absl::Time now) {
  for (const Event& e : m.events) {
    auto it = kvs_.find(e.kv.key);
    if (it != kvs_.end() && it->second.lease != kNoLease) {
      auto lease = leases_.find(it->second.lease);
      if (lease != leases_.end()) lease->second.keys.erase(e.kv.key);
    }
    if (e.type == Event::Type::kPut) {
      kvs_[e.kv.key] = e.kv;
      if (e.kv.lease != kNoLease) leases_[e.kv.lease].keys.insert(e.kv.key);
    } else if (it != kvs_.end()) {
      kvs_.erase(it);
    }
    history_.push_back(e);
  }
  if (m.revision > revision_) revision_ = m.revision;
  for (LeaseId id : m.ended_leases) leases_.erase(id);
  if (m.granted_lease != kNoLease) {
    LeaseState& lease = leases_[m.granted_lease];
    lease.ttl_seconds = m.granted_ttl_seconds;
    lease.expiry = now + absl::Seconds(m.granted_ttl_seconds);
    next_lease_id_ = std::max(next_lease_id_, m.granted_lease + 1);
  }
  Revision compact = m.compact_revision;
  if (history_.size() > max_history_) {
    compact = std::max(compact, history_[history_.size() - max_history_ - 1].kv.mod_revision + 1);
  }
  if (compact > compact_revision_) {
    compact_revision_ = compact;
    while (!history_.empty() && history_.front().kv.mod_revision < compact_revision_) {
      history_.pop_front();
    }
  }
}

WatchStart MvccEngine::WatchFrom(std::string_view prefix, Revision after_revision) const {
  WatchStart start;
  start.revision = revision_;
  // History before the oldest kept event is gone; so is anything before compaction.
  Revision oldest = std::max<Revision>(compact_revision_, 1);
  if (after_revision <= 0 || after_revision + 1 < oldest) {
    start.resync = true;
    start.snapshot = Range(prefix).kvs;
    return start;
  }
  auto it = std::lower_bound(history_.begin(), history_.end(), after_revision + 1,
                             [](const Event& e, Revision r) { return e.kv.mod_revision < r; });
  for (; it != history_.end(); ++it) {
    if (HasPrefix(it->kv.key, prefix)) start.events.push_back(*it);
  }
  return start;
}

void MvccEngine::Restore(Revision revision, Revision compact_revision, LeaseId next_lease_id,
                         std::vector<KeyValue> kvs,
                         const std::vector<std::pair<LeaseId, int64_t>>& leases, absl::Time now) {
  kvs_.clear();
  leases_.clear();
  history_.clear();
  revision_ = revision;
  // History older than the snapshot is not kept: watchers from before it resync.
  compact_revision_ = std::max(compact_revision, revision + 1);
  next_lease_id_ = next_lease_id;
  for (const auto& [id, ttl] : leases) {
    leases_[id] = LeaseState{ttl, now + absl::Seconds(ttl), {}};
  }
  for (KeyValue& kv : kvs) {
    if (kv.lease != kNoLease) leases_[kv.lease].keys.insert(kv.key);
    std::string key = kv.key;
    kvs_.emplace(std::move(key), std::move(kv));
  }
}

void MvccEngine::RefreshAllLeases(absl::Time now) {
  for (auto& [id, lease] : leases_) lease.expiry = now + absl::Seconds(lease.ttl_seconds);
}

}  // namespace loom::store
