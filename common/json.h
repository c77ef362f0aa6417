// JSON (nlohmann-json) and YAML (yaml-cpp) helpers. YAML is read into the same
// nlohmann::json tree so that every object is validated by one code path.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace loom {

using Json = nlohmann::json;

// Parses one JSON document; errors say where ("line 3, column 7: ...").
absl::StatusOr<Json> ParseJson(std::string_view text);

// Parses a stream of YAML documents separated by `---` (JSON is YAML too).
// Empty documents are skipped.
absl::StatusOr<std::vector<Json>> ParseYamlDocuments(std::string_view text);

// Renders a JSON value as block-style YAML.
std::string ToYaml(const Json& value);

// Typed field access with errors that name the field path ("spec.ports[0].port").
// A missing optional field yields the default.
absl::StatusOr<std::string> GetString(const Json& obj, std::string_view key,
                                      std::string_view path);
absl::StatusOr<std::string> GetStringOr(const Json& obj, std::string_view key,
                                        std::string_view path, std::string_view def);
absl::StatusOr<int64_t> GetInt(const Json& obj, std::string_view key, std::string_view path);
absl::StatusOr<int64_t> GetIntOr(const Json& obj, std::string_view key, std::string_view path,
                                 int64_t def);
absl::StatusOr<bool> GetBoolOr(const Json& obj, std::string_view key, std::string_view path,
                               bool def);

}  // namespace loom
