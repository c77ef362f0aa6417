#include "cni/protocol/cni_args.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_split.h"
#include "cni/protocol/error.h"
#include "cni/protocol/fields.h"
#include "common/model/validation.h"
#include "common/status.h"
#include "common/strings.h"

namespace loom::cni {
namespace {

absl::StatusOr<bool> ParseBool(std::string_view value) {
  std::string lower = absl::AsciiStrToLower(ToAbsl(value));
  if (lower == "1" || lower == "true") return true;
  if (lower == "0" || lower == "false") return false;
  return CniError(kErrInvalidEnvironment,
                  StrCat("CNI_ARGS: IgnoreUnknown=\"", value, "\" is not a boolean"));
}

}  // namespace


absl::StatusOr<CniArgs> ParseCniArgs(std::string_view text) {
  CniArgs out;
  if (text.empty()) return out;
  std::vector<std::pair<std::string, std::string>> pairs;
  for (absl::string_view pair : absl::StrSplit(ToAbsl(text), ';')) {
    size_t eq = pair.find('=');
    if (eq == absl::string_view::npos || eq == 0) {
      return CniError(kErrInvalidEnvironment,
                      StrCat("CNI_ARGS: invalid pair \"", ToStd(pair), "\": want KEY=VALUE"));
    }
    pairs.emplace_back(std::string(pair.substr(0, eq)), std::string(pair.substr(eq + 1)));
  }
  // IgnoreUnknown applies to the whole string, wherever it stands.
  for (const auto& [key, value] : pairs) {
    if (key == "IgnoreUnknown") {
      ASSIGN_OR_RETURN(out.ignore_unknown, ParseBool(value));
    }
  }
  for (const auto& [key, value] : pairs) {
    if (key == "IgnoreUnknown") continue;
    if (key == "K8S_POD_NAMESPACE") {
      out.pod_namespace = value;
    } else if (key == "K8S_POD_NAME") {
      out.pod_name = value;
    } else if (key == "K8S_POD_INFRA_CONTAINER_ID") {
      out.pod_infra_container_id = value;
    } else if (key == "K8S_POD_UID") {
      out.pod_uid = value;
    } else if (key == "LOOM_LABELS") {
      absl::StatusOr<Labels> labels = model::ParseLabelList(value, "CNI_ARGS LOOM_LABELS");
      if (!labels.ok()) return CniError(kErrInvalidEnvironment, ToStd(labels.status().message()));
      out.labels = *std::move(labels);
    } else if (key == "LOOM_READY") {
      ASSIGN_OR_RETURN(out.ready, ParseBool(value));
    } else if (out.ignore_unknown) {
      out.unknown.emplace_back(key, value);
    } else {
      return CniError(kErrInvalidEnvironment,
                      StrCat("CNI_ARGS: unknown key \"", key,
                             "\" (set IgnoreUnknown=1 to ignore unknown keys)"));
    }
  }
  return out;
}

}  // namespace loom::cni
