#include "cni/protocol/fields.h"

#include <arpa/inet.h>

#include "absl/strings/numbers.h"
#include "common/strings.h"

namespace loom::cni {

bool IsAlnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

bool IsIdentifier(std::string_view s) {
  if (s.empty() || !IsAlnum(s.front())) return false;
  for (char c : s) {
    if (!IsAlnum(c) && c != '_' && c != '.' && c != '-') return false;
  }
  return true;
}

std::string FieldPath(std::string_view path, std::string_view key) {
  if (path.empty()) return std::string(key);
  return StrCat(path, ".", key);
}

absl::StatusOr<std::vector<std::string>> GetStringList(const Json& obj, std::string_view key,
                                                       std::string_view path) {
  std::vector<std::string> out;
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return out;
  std::string field = FieldPath(path, key);
  if (!it->is_array()) return absl::InvalidArgumentError(StrCat(field, ": must be a list of strings"));
  for (size_t i = 0; i < it->size(); ++i) {
    if (!(*it)[i].is_string()) {
      return absl::InvalidArgumentError(StrCat(field, "[", i, "]: must be a string"));
    }
    out.push_back((*it)[i].get<std::string>());
  }
  return out;
}

absl::StatusOr<std::optional<int64_t>> GetOptionalInt(const Json& obj, std::string_view key,
                                                      std::string_view path, int64_t min,
                                                      int64_t max) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return std::optional<int64_t>();
  std::string field = FieldPath(path, key);
  if (!it->is_number_integer()) return absl::InvalidArgumentError(StrCat(field, ": must be an integer"));
  // Large unsigned values do not fit int64; they are out of range for every field here.
  if (it->is_number_unsigned() && it->get<uint64_t>() > static_cast<uint64_t>(max)) {
    return absl::InvalidArgumentError(StrCat(field, ": must be between ", min, " and ", max));
  }
  int64_t v = it->get<int64_t>();
  if (v < min || v > max) {
    return absl::InvalidArgumentError(StrCat(field, ": must be between ", min, " and ", max));
  }
  return std::optional<int64_t>(v);
}

absl::Status RequireObject(const Json& value, std::string_view path) {
  if (!value.is_object()) return absl::InvalidArgumentError(StrCat(path, ": must be an object"));
  return absl::OkStatus();
}

absl::Status RequireArray(const Json& value, std::string_view path) {
  if (!value.is_array()) return absl::InvalidArgumentError(StrCat(path, ": must be a list"));
  return absl::OkStatus();
}

absl::StatusOr<int> IpFamily(std::string_view ip, std::string_view path) {
  std::string text(ip);
  unsigned char buf[16];
  if (inet_pton(AF_INET, text.c_str(), buf) == 1) return 4;
  if (inet_pton(AF_INET6, text.c_str(), buf) == 1) return 6;
  return absl::InvalidArgumentError(StrCat(path, ": \"", ip, "\" is not an IP address"));
}

absl::StatusOr<int> CidrFamily(std::string_view cidr, std::string_view path) {
  size_t slash = cidr.find('/');
  if (slash == std::string_view::npos) {
    return absl::InvalidArgumentError(
        StrCat(path, ": \"", cidr, "\" is not in CIDR form (address/prefix)"));
  }
  absl::StatusOr<int> family = IpFamily(cidr.substr(0, slash), path);
  if (!family.ok()) {
    return absl::InvalidArgumentError(StrCat(path, ": \"", cidr, "\" has no valid IP address"));
  }
  int prefix = -1;
  std::string_view prefix_text = cidr.substr(slash + 1);
  int max = *family == 4 ? 32 : 128;
  if (prefix_text.empty() || prefix_text.find_first_not_of("0123456789") != std::string_view::npos ||
      !absl::SimpleAtoi(ToAbsl(prefix_text), &prefix) || prefix > max) {
    return absl::InvalidArgumentError(
        StrCat(path, ": \"", cidr, "\" has an invalid prefix length (0-", max, ")"));
  }
  return *family;
}

}  // namespace loom::cni
