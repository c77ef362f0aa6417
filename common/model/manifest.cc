#include "common/model/manifest.h"

#include "common/model/validation.h"
#include "common/status.h"
#include "common/strings.h"

namespace loom::model {

std::string FieldPath(std::string_view base, std::string_view key) {
  return base.empty() ? std::string(key) : StrCat(base, ".", key);
}

absl::Status OnlyKnownKeys(const Json& obj, std::string_view path,
                           std::initializer_list<std::string_view> known) {
  if (!obj.is_object()) {
    return absl::InvalidArgumentError(StrCat(path.empty() ? "manifest" : path, ": must be an object"));
  }
  for (const auto& [key, value] : obj.items()) {
    bool found = false;
    for (std::string_view k : known) found = found || k == key;
    if (!found) {
      return absl::InvalidArgumentError(StrCat(FieldPath(path, key), ": unknown field"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<Labels> ParseStringMap(const Json& obj, std::string_view key,
                                      std::string_view path) {
  Labels out;
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return out;
  std::string field = FieldPath(path, key);
  if (!it->is_object()) return absl::InvalidArgumentError(StrCat(field, ": must be a map"));
  for (const auto& [k, v] : it->items()) {
    if (!v.is_string()) {
      return absl::InvalidArgumentError(StrCat(field, ".", k, ": must be a string"));
    }
    out[k] = v.get<std::string>();
  }
  RETURN_IF_ERROR(ValidateLabels(out, field));
  return out;
}

absl::StatusOr<uint16_t> ParsePortNumber(const Json& obj, std::string_view key,
                                         std::string_view path, bool required) {
  auto it = obj.find(key);
  std::string field = FieldPath(path, key);
  if (it == obj.end() || it->is_null()) {
    if (required) return absl::InvalidArgumentError(StrCat(field, ": required"));
    return uint16_t{0};
  }
  if (!it->is_number_integer()) {
    return absl::InvalidArgumentError(StrCat(field, ": must be an integer"));
  }
  int64_t v = it->get<int64_t>();
  if (v < 1 || v > 65535) return absl::InvalidArgumentError(StrCat(field, ": must be 1..65535"));
  return static_cast<uint16_t>(v);
}

absl::StatusOr<ObjectMeta> ParseMeta(const Json& manifest) {
  auto it = manifest.find("metadata");
  if (it == manifest.end()) return absl::InvalidArgumentError("metadata: required");
  const Json& m = *it;
  RETURN_IF_ERROR(OnlyKnownKeys(m, "metadata",
                                {"name", "namespace", "labels", "annotations", "revision"}));
  ObjectMeta meta;
  ASSIGN_OR_RETURN(meta.name, GetString(m, "name", "metadata"));
  ASSIGN_OR_RETURN(meta.ns, GetStringOr(m, "namespace", "metadata", "default"));
  RETURN_IF_ERROR(ValidateDns1123Label(meta.ns, "metadata.namespace"));
  ASSIGN_OR_RETURN(meta.labels, ParseStringMap(m, "labels", "metadata"));
  ASSIGN_OR_RETURN(meta.revision, GetIntOr(m, "revision", "metadata", 0));
  return meta;
}

Json MetaToJson(const ObjectMeta& meta) {
  Json m = {{"name", meta.name}, {"namespace", meta.ns}};
  if (!meta.labels.empty()) m["labels"] = meta.labels;
  if (meta.revision != 0) m["revision"] = meta.revision;
  return m;
}

absl::Status CheckManifestKind(const Json& manifest, std::string_view kind) {
  RETURN_IF_ERROR(OnlyKnownKeys(manifest, "", {"apiVersion", "kind", "metadata", "spec", "status"}));
  ASSIGN_OR_RETURN(std::string api, GetStringOr(manifest, "apiVersion", "", "loom/v1"));
  if (api != "loom/v1") {
    return absl::InvalidArgumentError(StrCat("apiVersion: \"", api, "\" must be loom/v1"));
  }
  ASSIGN_OR_RETURN(std::string got, GetString(manifest, "kind", ""));
  if (got != kind) {
    return absl::InvalidArgumentError(StrCat("kind: \"", got, "\" is not ", kind));
  }
  return absl::OkStatus();
}

}  // namespace loom::model
