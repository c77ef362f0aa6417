// A Store decorator that counts every request by operation and result:
//   loom_store_requests_total{op="put",result="ok"} 12
//   loom_store_requests_total{op="keepalive",result="unavailable"} 1
#pragma once

#include <memory>

#include "agent/store/store.h"
#include "common/metrics/metrics.h"

namespace loom::agent {

class InstrumentedStore : public store::Store {
 public:
  InstrumentedStore(std::unique_ptr<store::Store> inner, metrics::Registry& registry);

  absl::StatusOr<std::optional<store::KeyValue>> Get(std::string_view key) override;
  absl::StatusOr<store::RangeResult> Range(std::string_view prefix) override;
  absl::StatusOr<store::Revision> Put(std::string_view key, std::string_view value,
                                      store::LeaseId lease = store::kNoLease) override;
  absl::StatusOr<int64_t> Delete(std::string_view key) override;
  absl::StatusOr<store::TxnResult> Commit(const store::Txn& txn) override;
  absl::StatusOr<store::LeaseId> GrantLease(absl::Duration ttl) override;
  absl::Status KeepAlive(store::LeaseId lease) override;
  absl::Status RevokeLease(store::LeaseId lease) override;
  absl::Status Compact(store::Revision revision) override;
  absl::StatusOr<std::unique_ptr<store::Watch>> WatchPrefix(
      std::string_view prefix, store::Revision after_revision,
      store::WatchCallback callback) override;

 private:
  void Count(std::string_view op, const absl::Status& status);

  std::unique_ptr<store::Store> inner_;
  metrics::Family<metrics::Counter>& requests_;
};

// "ok", "not_found", "unavailable", ...: absl's code name in lower case.
std::string StatusResultLabel(const absl::Status& status);

}  // namespace loom::agent
