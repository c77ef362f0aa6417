// CNI_ARGS ("K=V;K=V"): the Kubernetes pod identity runtimes send, Loom's LOOM_LABELS,
// and Kubernetes label syntax (also used for the conf's `args.labels`).
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace loom::cni {

using Labels = std::map<std::string, std::string>;

struct CniArgs {
  bool ignore_unknown = false;        // IgnoreUnknown=1|true|0|false
  std::string pod_namespace;          // K8S_POD_NAMESPACE
  std::string pod_name;               // K8S_POD_NAME
  std::string pod_infra_container_id; // K8S_POD_INFRA_CONTAINER_ID
  std::string pod_uid;                // K8S_POD_UID
  Labels labels;                      // LOOM_LABELS=app=web,tier=front
  // LOOM_READY=false registers the pod not ready (a reconciler turns it ready once
  // its readiness probe passes); default ready once attached.
  bool ready = true;
  // Keys Loom does not know, kept in order (only possible with IgnoreUnknown).
  std::vector<std::pair<std::string, std::string>> unknown;
};

// Parses CNI_ARGS. Each pair splits at its first '=' (so LOOM_LABELS may hold '=');
// a repeated key takes the last value, as libcni's LoadArgs does. Unknown keys are an
// error unless IgnoreUnknown is true, wherever it appears. Errors are code 4 naming
// CNI_ARGS and the offending pair or key.
absl::StatusOr<CniArgs> ParseCniArgs(std::string_view text);

}  // namespace loom::cni
