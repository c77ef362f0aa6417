#include "agent/apps/event_log.h"

#include <cstdio>

#include "common/status.h"
#include "common/strings.h"

namespace loom::agent {

Json AppEventToJson(const AppEvent& e) {
  return {{"time", absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", e.time, absl::UTCTimeZone())},
          {"node", e.node},
          {"app", e.app},
          {"ordinal", e.ordinal},
          {"type", e.type},
          {"reason", e.reason},
          {"message", e.message}};
}

absl::Status EventLog::Record(const std::vector<AppEvent>& events) {
  if (events.empty()) return absl::OkStatus();
  std::lock_guard<std::mutex> lock(mu_);
  absl::Time now = absl::Now();
  if (lease_ == store::kNoLease || now - lease_granted_ > ttl_ / 2) {
    ASSIGN_OR_RETURN(lease_, store_->GrantLease(ttl_));
    lease_granted_ = now;
  }
  store::Txn txn;
  for (const AppEvent& e : events) {
    char stamp[32];
    std::snprintf(stamp, sizeof stamp, "%020lld", static_cast<long long>(absl::ToUnixNanos(e.time)));
    txn.success.push_back(store::Op::Put(StrCat(kEventsPrefix, e.app, "/", stamp, "-", e.node, "-", ++seq_),
                                         AppEventToJson(e).dump(), lease_));
  }
  absl::StatusOr<store::TxnResult> r = store_->Commit(txn);
  if (!r.ok()) {
    lease_ = store::kNoLease;  // perhaps it expired: a new one next time
    return r.status();
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<Json>> EventLog::List(std::string_view filter) {
  std::string prefix = StrCat(kEventsPrefix, filter);
  if (!filter.empty()) prefix += "/";
  ASSIGN_OR_RETURN(store::RangeResult range, store_->Range(prefix));
  std::vector<std::pair<std::string, Json>> items;
  for (const store::KeyValue& kv : range.kvs) {
    absl::StatusOr<Json> j = ParseJson(kv.value);
    if (!j.ok()) continue;
    items.emplace_back(kv.key.substr(kv.key.rfind('/') + 1), *std::move(j));
  }
  // Keys sort by app first; events read best in time order across apps.
  std::sort(items.begin(), items.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<Json> out;
  for (auto& [k, j] : items) out.push_back(std::move(j));
  return out;
}

}  // namespace loom::agent
