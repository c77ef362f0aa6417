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
  // Keys Loom does not know, kept in order (only possible with IgnoreUnknown).
  std::vector<std::pair<std::string, std::string>> unknown;
};

// Parses CNI_ARGS. Each pair splits at its first '=' (so LOOM_LABELS may hold '=');
// a repeated key takes the last value, as libcni's LoadArgs does. Unknown keys are an
// error unless IgnoreUnknown is true, wherever it appears. Errors are code 4 naming
// CNI_ARGS and the offending pair or key.
absl::StatusOr<CniArgs> ParseCniArgs(std::string_view text);

// "app=web,tier=front" -> labels; empty text -> none. Errors (InvalidArgument) name
// `field` and the bad item; a key given twice is an error.
absl::StatusOr<Labels> ParseLabelList(std::string_view text, std::string_view field);

// Kubernetes label syntax. Key: optional DNS-subdomain prefix (<= 253, lower case) and
// '/', then a name of 1..63 of [A-Za-z0-9._-] starting and ending alphanumeric. Value:
// empty, or 1..63 of the same. InvalidArgument naming `field`.
absl::Status ValidateLabelKey(std::string_view key, std::string_view field);
absl::Status ValidateLabelValue(std::string_view value, std::string_view field);

}  // namespace loom::cni
