// Building blocks for parsing manifests into typed objects, shared by every kind
// (Service and Pod here, Ingress in lb/ingress): each error names the field.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/json.h"
#include "common/model/objects.h"

namespace loom::model {

// "spec.ports[0]" + "port" -> "spec.ports[0].port"; an empty base gives the key.
std::string FieldPath(std::string_view base, std::string_view key);

// `obj` must be an object whose keys are all in `known`: a typo is an error, not
// silently ignored.
absl::Status OnlyKnownKeys(const Json& obj, std::string_view path,
                           std::initializer_list<std::string_view> known);

// The top level: only apiVersion, kind, metadata, spec and status; apiVersion
// loom/v1 (the default) and the given kind.
absl::Status CheckManifestKind(const Json& manifest, std::string_view kind);

// An optional map of label keys to values at obj[key] (empty when absent).
absl::StatusOr<Labels> ParseStringMap(const Json& obj, std::string_view key,
                                      std::string_view path);

// A port number 1..65535 at obj[key]; 0 when absent and not required.
absl::StatusOr<uint16_t> ParsePortNumber(const Json& obj, std::string_view key,
                                         std::string_view path, bool required);

absl::StatusOr<ObjectMeta> ParseMeta(const Json& manifest);
Json MetaToJson(const ObjectMeta& meta);

}  // namespace loom::model
