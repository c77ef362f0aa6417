#include "agent/daemon/instrumented_store.h"

#include <cctype>

namespace loom::agent {

std::string StatusResultLabel(const absl::Status& status) {
  std::string name = absl::StatusCodeToString(status.code());
  for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return name;
}

InstrumentedStore::InstrumentedStore(std::unique_ptr<store::Store> inner,
                                     metrics::Registry& registry)
    : inner_(std::move(inner)),
      requests_(registry.AddCounter("loom_store_requests_total",
                                    "Cluster store requests by operation and result.",
                                    {"op", "result"})) {}

void InstrumentedStore::Count(std::string_view op, const absl::Status& status) {
  requests_.WithLabels({std::string(op), StatusResultLabel(status)}).Increment();
}

absl::StatusOr<std::optional<store::KeyValue>> InstrumentedStore::Get(std::string_view key) {
  auto r = inner_->Get(key);
  Count("get", r.status());
  return r;
}

absl::StatusOr<store::RangeResult> InstrumentedStore::Range(std::string_view prefix) {
  auto r = inner_->Range(prefix);
  Count("range", r.status());
  return r;
}

absl::StatusOr<store::Revision> InstrumentedStore::Put(std::string_view key,
                                                       std::string_view value,
                                                       store::LeaseId lease) {
  auto r = inner_->Put(key, value, lease);
  Count("put", r.status());
  return r;
}

absl::StatusOr<int64_t> InstrumentedStore::Delete(std::string_view key) {
  auto r = inner_->Delete(key);
  Count("delete", r.status());
  return r;
}

absl::StatusOr<store::TxnResult> InstrumentedStore::Commit(const store::Txn& txn) {
  auto r = inner_->Commit(txn);
  Count("txn", r.status());
  return r;
}

absl::StatusOr<store::LeaseId> InstrumentedStore::GrantLease(absl::Duration ttl) {
  auto r = inner_->GrantLease(ttl);
  Count("grant", r.status());
  return r;
}

absl::Status InstrumentedStore::KeepAlive(store::LeaseId lease) {
  absl::Status s = inner_->KeepAlive(lease);
  Count("keepalive", s);
  return s;
}

absl::Status InstrumentedStore::RevokeLease(store::LeaseId lease) {
  absl::Status s = inner_->RevokeLease(lease);
  Count("revoke", s);
  return s;
}

absl::Status InstrumentedStore::Compact(store::Revision revision) {
  absl::Status s = inner_->Compact(revision);
  Count("compact", s);
  return s;
}

absl::StatusOr<std::unique_ptr<store::Watch>> InstrumentedStore::WatchPrefix(
    std::string_view prefix, store::Revision after_revision, store::WatchCallback callback) {
  auto r = inner_->WatchPrefix(prefix, after_revision, std::move(callback));
  Count("watch", r.status());
  return r;
}

}  // namespace loom::agent
