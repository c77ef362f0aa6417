#include "common/model/validation.h"

#include "common/strings.h"

namespace loom::model {
namespace {

bool IsLowerAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
bool IsAlnum(char c) { return IsLowerAlnum(c) || (c >= 'A' && c <= 'Z'); }

absl::Status Invalid(std::string_view field, std::string_view value, std::string_view rule) {
  return absl::InvalidArgumentError(StrCat(field, ": \"", value, "\" ", rule));
}

bool IsDns1123Label(std::string_view v) {
  if (v.empty() || v.size() > 63) return false;
  if (!IsLowerAlnum(v.front()) || !IsLowerAlnum(v.back())) return false;
  for (char c : v) {
    if (!IsLowerAlnum(c) && c != '-') return false;
  }
  return true;
}

// The name part of a label key, and label values.
bool IsQualifiedName(std::string_view v) {
  if (v.empty() || v.size() > 63) return false;
  if (!IsAlnum(v.front()) || !IsAlnum(v.back())) return false;
  for (char c : v) {
    if (!IsAlnum(c) && c != '-' && c != '_' && c != '.') return false;
  }
  return true;
}

}  // namespace

absl::Status ValidateDns1123Label(std::string_view value, std::string_view field) {
  if (IsDns1123Label(value)) return absl::OkStatus();
  return Invalid(field, value,
                 "must be at most 63 lower-case letters, digits or '-', starting and ending "
                 "with a letter or digit");
}

absl::Status ValidateDns1035Label(std::string_view value, std::string_view field) {
  if (IsDns1123Label(value) && value.front() >= 'a' && value.front() <= 'z') {
    return absl::OkStatus();
  }
  return Invalid(field, value,
                 "must be at most 63 lower-case letters, digits or '-', starting with a letter "
                 "and ending with a letter or digit");
}

absl::Status ValidateDns1123Subdomain(std::string_view value, std::string_view field) {
  bool ok = !value.empty() && value.size() <= 253;
  size_t start = 0;
  while (ok) {
    size_t dot = value.find('.', start);
    std::string_view label = value.substr(start, dot == std::string_view::npos ? dot : dot - start);
    ok = IsDns1123Label(label);
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  if (ok) return absl::OkStatus();
  return Invalid(field, value,
                 "must be a DNS subdomain: dot-separated lower-case labels of letters, digits "
                 "and '-', at most 253 characters");
}

absl::Status ValidatePortName(std::string_view value, std::string_view field) {
  bool ok = !value.empty() && value.size() <= 15 && value.front() != '-' && value.back() != '-' &&
            value.find("--") == std::string_view::npos;
  bool letter = false;
  for (char c : value) {
    if (c >= 'a' && c <= 'z') letter = true;
    if (!IsLowerAlnum(c) && c != '-') ok = false;
  }
  if (ok && letter) return absl::OkStatus();
  return Invalid(field, value,
                 "must be at most 15 lower-case letters, digits or '-', with at least one "
                 "letter and no '-' at either end or twice in a row");
}

absl::Status ValidateLabelKey(std::string_view key, std::string_view field) {
  std::string_view name = key;
  size_t slash = key.find('/');
  if (slash != std::string_view::npos) {
    std::string_view prefix = key.substr(0, slash);
    name = key.substr(slash + 1);
    if (!ValidateDns1123Subdomain(prefix, field).ok()) {
      return Invalid(field, key, "has a prefix that is not a DNS subdomain");
    }
  }
  if (IsQualifiedName(name)) return absl::OkStatus();
  return Invalid(field, key,
                 "is not a valid label key: at most 63 letters, digits, '-', '_' or '.', "
                 "starting and ending with a letter or digit, optionally behind 'prefix/'");
}

absl::Status ValidateLabelValue(std::string_view value, std::string_view field) {
  if (value.empty() || IsQualifiedName(value)) return absl::OkStatus();
  return Invalid(field, value,
                 "is not a valid label value: at most 63 letters, digits, '-', '_' or '.', "
                 "starting and ending with a letter or digit");
}

absl::Status ValidateLabels(const std::map<std::string, std::string>& labels,
                            std::string_view field) {
  for (const auto& [k, v] : labels) {
    if (absl::Status s = ValidateLabelKey(k, field); !s.ok()) return s;
    if (absl::Status s = ValidateLabelValue(v, StrCat(field, ".", k)); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::StatusOr<std::map<std::string, std::string>> ParseLabelList(std::string_view text,
                                                                  std::string_view field) {
  std::map<std::string, std::string> labels;
  size_t start = 0;
  while (start <= text.size()) {
    size_t comma = text.find(',', start);
    std::string_view item =
        text.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start);
    if (!item.empty()) {
      size_t eq = item.find('=');
      if (eq == std::string_view::npos) {
        return absl::InvalidArgumentError(
            StrCat(field, ": \"", item, "\" is not key=value"));
      }
      std::string key(item.substr(0, eq));
      std::string value(item.substr(eq + 1));
      if (absl::Status s = ValidateLabelKey(key, field); !s.ok()) return s;
      if (absl::Status s = ValidateLabelValue(value, StrCat(field, ".", key)); !s.ok()) return s;
      if (!labels.emplace(key, value).second) {
        return absl::InvalidArgumentError(StrCat(field, ": label key \"", key, "\" given twice"));
      }
    }
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return labels;
}

bool SelectorMatches(const std::map<std::string, std::string>& selector,
                     const std::map<std::string, std::string>& labels) {
  if (selector.empty()) return false;
  for (const auto& [k, v] : selector) {
    auto it = labels.find(k);
    if (it == labels.end() || it->second != v) return false;
  }
  return true;
}

}  // namespace loom::model
