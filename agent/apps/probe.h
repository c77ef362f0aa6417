// Readiness and liveness probes of App replicas, as Kubernetes runs them: httpGet
// (a status 200..399 within the timeout), tcpSocket (a connection accepted within
// the timeout), exec (exit 0 within the timeout, through the runtime).
//
// ProbeTracker holds one probe's state for one replica: when it is due (after
// initialDelaySeconds, then every periodSeconds) and whether the thresholds have
// been crossed (successThreshold successes in a row to pass, failureThreshold
// failures in a row to fail). It is pure: the caller runs the check and records it.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "common/model/app.h"

namespace loom::agent {

// Runs `command` in the replica's container; its exit code, or an error.
using ExecInReplica =
    std::function<absl::StatusOr<int>(const std::vector<std::string>& command, absl::Duration timeout)>;

// One check of `probe` against a replica at `ip`. OK when it passed; otherwise the
// reason ("GET http://10.244.1.5:8080/healthz: status 503").
absl::Status RunProbe(const model::Probe& probe, const std::string& ip, const ExecInReplica& exec);

class ProbeTracker {
 public:
  // `started`: when the container started.
  ProbeTracker(model::Probe probe, absl::Time started);

  bool Due(absl::Time now) const { return now >= next_; }
  absl::Time next() const { return next_; }
  void Record(bool ok, absl::Time now, std::string reason = "");
  // Starts out passing (a replica found ready on its pod record when loomd restarts:
  // it stays in the endpoints until the probe fails failureThreshold times).
  void SeedPassing() { passing_ = true; }

  // Readiness: passed successThreshold times in a row since the last failure streak.
  bool passing() const { return passing_; }
  // Liveness: failed failureThreshold times in a row.
  bool failed() const { return consecutive_failures_ >= probe_.failure_threshold; }
  const std::string& last_error() const { return last_error_; }
  const model::Probe& probe() const { return probe_; }

 private:
  model::Probe probe_;
  absl::Time next_;
  int consecutive_successes_ = 0;
  int consecutive_failures_ = 0;
  bool passing_ = false;
  std::string last_error_;
};

}  // namespace loom::agent
