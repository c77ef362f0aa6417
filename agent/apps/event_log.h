// App events in the store, for `loomctl events`: one key per event,
//   /loom/events/<ns>/<app>/<unix nanos>-<node>-<seq>  {time, node, app, ordinal, type, reason, message}
// written on a lease of `ttl` (a new lease every ttl/2), so events expire by
// themselves and the store never grows without bound.
#pragma once

#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "agent/apps/reconciler.h"
#include "agent/store/store.h"
#include "common/json.h"

namespace loom::agent {

inline constexpr std::string_view kEventsPrefix = "/loom/events/";

Json AppEventToJson(const AppEvent& e);

class EventLog {
 public:
  EventLog(store::Store* store, absl::Duration ttl = absl::Hours(1)) : store_(store), ttl_(ttl) {}

  absl::Status Record(const std::vector<AppEvent>& events);
  // Oldest first; every app's, one namespace's ("ns") or one app's ("ns/name").
  absl::StatusOr<std::vector<Json>> List(std::string_view filter = "");

 private:
  store::Store* store_;
  absl::Duration ttl_;
  std::mutex mu_;
  store::LeaseId lease_ = store::kNoLease;
  absl::Time lease_granted_;
  uint64_t seq_ = 0;
};

}  // namespace loom::agent
