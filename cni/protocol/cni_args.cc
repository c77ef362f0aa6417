#include "cni/protocol/cni_args.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_split.h"
#include "cni/protocol/error.h"
#include "cni/protocol/fields.h"
#include "common/status.h"
#include "common/strings.h"

namespace loom::cni {
namespace {

constexpr size_t kMaxLabelNameLength = 63;
constexpr size_t kMaxLabelPrefixLength = 253;

// The "name" part of a label key, and a non-empty label value.
bool IsQualifiedName(std::string_view s) {
  if (s.empty() || s.size() > kMaxLabelNameLength) return false;
  if (!IsAlnum(s.front()) || !IsAlnum(s.back())) return false;
  for (char c : s) {
    if (!IsAlnum(c) && c != '-' && c != '_' && c != '.') return false;
  }
  return true;
}

// RFC 1123 subdomain: dot-separated labels of [a-z0-9-], alphanumeric at both ends.
bool IsDnsSubdomain(std::string_view s) {
  if (s.empty() || s.size() > kMaxLabelPrefixLength) return false;
  for (absl::string_view label : absl::StrSplit(ToAbsl(s), '.')) {
    if (label.empty() || label.size() > 63) return false;
    auto lower_alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
    if (!lower_alnum(label.front()) || !lower_alnum(label.back())) return false;
    for (char c : label) {
      if (!lower_alnum(c) && c != '-') return false;
    }
  }
  return true;
}

absl::StatusOr<bool> ParseBool(std::string_view value) {
  std::string lower = absl::AsciiStrToLower(ToAbsl(value));
  if (lower == "1" || lower == "true") return true;
  if (lower == "0" || lower == "false") return false;
  return CniError(kErrInvalidEnvironment,
                  StrCat("CNI_ARGS: IgnoreUnknown=\"", value, "\" is not a boolean"));
}

}  // namespace

absl::Status ValidateLabelKey(std::string_view key, std::string_view field) {
  std::string_view name = key;
  size_t slash = key.find('/');
  if (slash != std::string_view::npos) {
    std::string_view prefix = key.substr(0, slash);
    name = key.substr(slash + 1);
    if (!IsDnsSubdomain(prefix)) {
      return absl::InvalidArgumentError(
          StrCat(field, ": label key \"", key,
                 "\": prefix must be a lower-case DNS subdomain of at most 253 characters"));
    }
  }
  if (!IsQualifiedName(name)) {
    return absl::InvalidArgumentError(
        StrCat(field, ": label key \"", key,
               "\": name must be 1-63 characters of [A-Za-z0-9._-], starting and ending "
               "with a letter or digit"));
  }
  return absl::OkStatus();
}

absl::Status ValidateLabelValue(std::string_view value, std::string_view field) {
  if (!value.empty() && !IsQualifiedName(value)) {
    return absl::InvalidArgumentError(
        StrCat(field, ": label value \"", value,
               "\": must be empty or 1-63 characters of [A-Za-z0-9._-], starting and ending "
               "with a letter or digit"));
  }
  return absl::OkStatus();
}

absl::StatusOr<Labels> ParseLabelList(std::string_view text, std::string_view field) {
  Labels labels;
  if (text.empty()) return labels;
  for (absl::string_view item : absl::StrSplit(ToAbsl(text), ',')) {
    size_t eq = item.find('=');
    if (eq == absl::string_view::npos) {
      return absl::InvalidArgumentError(
          StrCat(field, ": \"", ToStd(item), "\" is not key=value"));
    }
    std::string key(item.substr(0, eq));
    std::string value(item.substr(eq + 1));
    RETURN_IF_ERROR(ValidateLabelKey(key, field));
    RETURN_IF_ERROR(ValidateLabelValue(value, field));
    if (!labels.emplace(key, value).second) {
      return absl::InvalidArgumentError(StrCat(field, ": label key \"", key, "\" given twice"));
    }
  }
  return labels;
}

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
      absl::StatusOr<Labels> labels = ParseLabelList(value, "CNI_ARGS LOOM_LABELS");
      if (!labels.ok()) return CniError(kErrInvalidEnvironment, ToStd(labels.status().message()));
      out.labels = *std::move(labels);
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
