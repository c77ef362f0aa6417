#include "common/json.h"

#include <sstream>

#include "common/strings.h"
#include "yaml-cpp/yaml.h"

namespace loom {
namespace {

std::string FieldPath(std::string_view path, std::string_view key) {
  if (path.empty()) return std::string(key);
  return StrCat(path, ".", key);
}

// YAML scalars carry no type: plain scalars that read as null, bool, integer or
// float become those; quoted scalars stay strings.
Json ScalarToJson(const YAML::Node& node) {
  const std::string& text = node.Scalar();
  if (node.Tag() == "!") return text;  // quoted
  if (text == "~" || text == "null" || text == "Null" || text == "NULL") return nullptr;
  if (text == "true" || text == "True" || text == "TRUE") return true;
  if (text == "false" || text == "False" || text == "FALSE") return false;
  if (!text.empty()) {
    char* end = nullptr;
    errno = 0;
    long long i = std::strtoll(text.c_str(), &end, 10);
    if (errno == 0 && end == text.c_str() + text.size()) return static_cast<int64_t>(i);
    errno = 0;
    double d = std::strtod(text.c_str(), &end);
    if (errno == 0 && end == text.c_str() + text.size() &&
        text.find_first_of(".eE") != std::string::npos &&
        text.find_first_not_of("0123456789.eE+-") == std::string::npos) {
      return d;
    }
  }
  return text;
}

absl::StatusOr<Json> YamlToJson(const YAML::Node& node, const std::string& path) {
  switch (node.Type()) {
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
      return Json(nullptr);
    case YAML::NodeType::Scalar:
      return ScalarToJson(node);
    case YAML::NodeType::Sequence: {
      Json out = Json::array();
      size_t i = 0;
      for (const auto& item : node) {
        auto v = YamlToJson(item, StrCat(path, "[", i++, "]"));
        if (!v.ok()) return v.status();
        out.push_back(*std::move(v));
      }
      return out;
    }
    case YAML::NodeType::Map: {
      Json out = Json::object();
      for (const auto& kv : node) {
        if (!kv.first.IsScalar()) {
          return absl::InvalidArgumentError(
              StrCat(path.empty() ? "document" : path, ": map keys must be scalars"));
        }
        std::string key = kv.first.Scalar();
        auto v = YamlToJson(kv.second, FieldPath(path, key));
        if (!v.ok()) return v.status();
        out[key] = *std::move(v);
      }
      return out;
    }
  }
  return Json(nullptr);
}

void EmitYaml(YAML::Emitter& out, const Json& value) {
  switch (value.type()) {
    case Json::value_t::object:
      out << YAML::BeginMap;
      for (const auto& [k, v] : value.items()) {
        out << YAML::Key << k << YAML::Value;
        EmitYaml(out, v);
      }
      out << YAML::EndMap;
      break;
    case Json::value_t::array:
      out << YAML::BeginSeq;
      for (const auto& v : value) EmitYaml(out, v);
      out << YAML::EndSeq;
      break;
    case Json::value_t::string: {
      const std::string& s = value.get_ref<const std::string&>();
      // Quote strings that would read back as another type.
      Json reread = ScalarToJson(YAML::Node(s));
      if (!reread.is_string() || s.empty()) {
        out << YAML::DoubleQuoted << s;
      } else {
        out << s;
      }
      break;
    }
    case Json::value_t::boolean:
      out << (value.get<bool>() ? "true" : "false");
      break;
    case Json::value_t::null:
      out << YAML::Null;
      break;
    default:
      out << value.dump();
  }
}

}  // namespace

absl::StatusOr<Json> ParseJson(std::string_view text) {
  try {
    return Json::parse(text.begin(), text.end());
  } catch (const Json::parse_error& e) {
    return absl::InvalidArgumentError(StrCat("invalid JSON: ", e.what()));
  }
}

absl::StatusOr<std::vector<Json>> ParseYamlDocuments(std::string_view text) {
  std::vector<Json> docs;
  try {
    std::vector<YAML::Node> nodes = YAML::LoadAll(std::string(text));
    for (const YAML::Node& node : nodes) {
      if (node.IsNull()) continue;
      auto doc = YamlToJson(node, "");
      if (!doc.ok()) return doc.status();
      docs.push_back(*std::move(doc));
    }
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(
        StrCat("invalid YAML at line ", e.mark.line + 1, ", column ", e.mark.column + 1,
                     ": ", e.msg));
  }
  return docs;
}

std::string ToYaml(const Json& value) {
  YAML::Emitter out;
  EmitYaml(out, value);
  return std::string(out.c_str()) + "\n";
}

absl::StatusOr<std::string> GetString(const Json& obj, std::string_view key,
                                      std::string_view path) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) {
    return absl::InvalidArgumentError(StrCat(FieldPath(path, key), ": required"));
  }
  if (!it->is_string()) {
    return absl::InvalidArgumentError(StrCat(FieldPath(path, key), ": must be a string"));
  }
  return it->get<std::string>();
}

absl::StatusOr<std::string> GetStringOr(const Json& obj, std::string_view key,
                                        std::string_view path, std::string_view def) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return std::string(def);
  return GetString(obj, key, path);
}

absl::StatusOr<int64_t> GetInt(const Json& obj, std::string_view key, std::string_view path) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) {
    return absl::InvalidArgumentError(StrCat(FieldPath(path, key), ": required"));
  }
  if (!it->is_number_integer()) {
    return absl::InvalidArgumentError(
        StrCat(FieldPath(path, key), ": must be an integer"));
  }
  return it->get<int64_t>();
}

absl::StatusOr<int64_t> GetIntOr(const Json& obj, std::string_view key, std::string_view path,
                                 int64_t def) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return def;
  return GetInt(obj, key, path);
}

absl::StatusOr<bool> GetBoolOr(const Json& obj, std::string_view key, std::string_view path,
                               bool def) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return def;
  if (!it->is_boolean()) {
    return absl::InvalidArgumentError(StrCat(FieldPath(path, key), ": must be true or false"));
  }
  return it->get<bool>();
}

}  // namespace loom
