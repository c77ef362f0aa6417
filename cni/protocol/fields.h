// JSON field helpers the config and result parsers share; errors are InvalidArgument
// naming the field path, and callers decide which CNI code that becomes.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "common/json.h"

namespace loom::cni {

bool IsAlnum(char c);
// The spec's rule for container IDs and network names: [A-Za-z0-9] then [A-Za-z0-9_.-]*.
bool IsIdentifier(std::string_view s);

std::string FieldPath(std::string_view path, std::string_view key);

// A list of strings; absent or null gives an empty list.
absl::StatusOr<std::vector<std::string>> GetStringList(const Json& obj, std::string_view key,
                                                       std::string_view path);
// An integer in [min, max]; absent or null gives nullopt.
absl::StatusOr<std::optional<int64_t>> GetOptionalInt(const Json& obj, std::string_view key,
                                                      std::string_view path, int64_t min,
                                                      int64_t max);
// Fails unless `value` is a JSON object (null/absent is allowed by the caller's check).
absl::Status RequireObject(const Json& value, std::string_view path);
absl::Status RequireArray(const Json& value, std::string_view path);

// An IPv4 or IPv6 address (4 or 6), else InvalidArgument naming `path`.
absl::StatusOr<int> IpFamily(std::string_view ip, std::string_view path);
// "address/prefix" with a prefix valid for the family; returns the family.
absl::StatusOr<int> CidrFamily(std::string_view cidr, std::string_view path);

}  // namespace loom::cni
