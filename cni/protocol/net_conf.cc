#include "cni/protocol/net_conf.h"

#include <limits>

#include "cni/protocol/error.h"
#include "common/model/validation.h"
#include "cni/protocol/fields.h"
#include "common/status.h"
#include "common/strings.h"

namespace loom::cni {
namespace {

constexpr int64_t kMinMtu = 68;  // the IPv4 minimum
constexpr int64_t kMaxMtu = 65535;

// A present, non-null member.
const Json* Member(const Json& obj, std::string_view key) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return nullptr;
  return &*it;
}

absl::StatusOr<PortMapping> DecodePortMapping(const Json& json, const std::string& path) {
  RETURN_IF_ERROR(RequireObject(json, path));
  PortMapping out;
  ASSIGN_OR_RETURN(std::optional<int64_t> host, GetOptionalInt(json, "hostPort", path, 1, 65535));
  ASSIGN_OR_RETURN(std::optional<int64_t> container,
                   GetOptionalInt(json, "containerPort", path, 1, 65535));
  if (!host.has_value()) return absl::InvalidArgumentError(StrCat(path, ".hostPort: required"));
  if (!container.has_value()) {
    return absl::InvalidArgumentError(StrCat(path, ".containerPort: required"));
  }
  out.host_port = static_cast<int>(*host);
  out.container_port = static_cast<int>(*container);
  ASSIGN_OR_RETURN(out.protocol, GetStringOr(json, "protocol", path, ""));
  ASSIGN_OR_RETURN(out.host_ip, GetStringOr(json, "hostIP", path, ""));
  if (!out.host_ip.empty()) RETURN_IF_ERROR(IpFamily(out.host_ip, StrCat(path, ".hostIP")).status());
  return out;
}

absl::StatusOr<Bandwidth> DecodeBandwidth(const Json& json, const std::string& path) {
  RETURN_IF_ERROR(RequireObject(json, path));
  Bandwidth out;
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  ASSIGN_OR_RETURN(auto ingress_rate, GetOptionalInt(json, "ingressRate", path, 0, kMax));
  ASSIGN_OR_RETURN(auto ingress_burst, GetOptionalInt(json, "ingressBurst", path, 0, kMax));
  ASSIGN_OR_RETURN(auto egress_rate, GetOptionalInt(json, "egressRate", path, 0, kMax));
  ASSIGN_OR_RETURN(auto egress_burst, GetOptionalInt(json, "egressBurst", path, 0, kMax));
  out.ingress_rate = ingress_rate.value_or(0);
  out.ingress_burst = ingress_burst.value_or(0);
  out.egress_rate = egress_rate.value_or(0);
  out.egress_burst = egress_burst.value_or(0);
  return out;
}

absl::StatusOr<RuntimeConfig> DecodeRuntimeConfig(const Json& json) {
  const std::string path = "runtimeConfig";
  RETURN_IF_ERROR(RequireObject(json, path));
  RuntimeConfig out;
  for (const auto& [key, value] : json.items()) {
    if (value.is_null()) continue;
    const std::string field = FieldPath(path, key);
    if (key == "portMappings") {
      RETURN_IF_ERROR(RequireArray(value, field));
      for (size_t i = 0; i < value.size(); ++i) {
        ASSIGN_OR_RETURN(PortMapping m, DecodePortMapping(value[i], StrCat(field, "[", i, "]")));
        out.port_mappings.push_back(m);
      }
    } else if (key == "bandwidth") {
      ASSIGN_OR_RETURN(out.bandwidth, DecodeBandwidth(value, field));
    } else if (key == "ips") {
      ASSIGN_OR_RETURN(out.ips, GetStringList(json, key, path));
      for (size_t i = 0; i < out.ips.size(); ++i) {
        std::string item = StrCat(field, "[", i, "]");
        if (out.ips[i].find('/') != std::string::npos) {
          RETURN_IF_ERROR(CidrFamily(out.ips[i], item).status());
        } else {
          RETURN_IF_ERROR(IpFamily(out.ips[i], item).status());
        }
      }
    } else if (key == "mac") {
      ASSIGN_OR_RETURN(out.mac, GetString(json, key, path));
    } else if (key == "dns") {
      ASSIGN_OR_RETURN(out.dns, DecodeDns(value, field));
    } else if (key == "aliases") {
      ASSIGN_OR_RETURN(out.aliases, GetStringList(json, key, path));
    } else if (key == "cgroupPath") {
      ASSIGN_OR_RETURN(out.cgroup_path, GetString(json, key, path));
    } else {
      out.other[key] = value;
    }
  }
  return out;
}

absl::StatusOr<std::vector<Attachment>> DecodeAttachments(const Json& json,
                                                          const std::string& path) {
  RETURN_IF_ERROR(RequireArray(json, path));
  std::vector<Attachment> out;
  for (size_t i = 0; i < json.size(); ++i) {
    std::string item = StrCat(path, "[", i, "]");
    RETURN_IF_ERROR(RequireObject(json[i], item));
    Attachment a;
    ASSIGN_OR_RETURN(a.container_id, GetString(json[i], "containerID", item));
    ASSIGN_OR_RETURN(a.ifname, GetString(json[i], "ifname", item));
    out.push_back(std::move(a));
  }
  return out;
}

absl::Status DecodeArgs(const Json& json, NetConf& conf) {
  RETURN_IF_ERROR(RequireObject(json, "args"));
  conf.args = json;
  const Json* labels = Member(json, "labels");
  if (labels == nullptr) return absl::OkStatus();
  RETURN_IF_ERROR(RequireObject(*labels, "args.labels"));
  for (const auto& [key, value] : labels->items()) {
    std::string field = StrCat("args.labels.", key);
    if (!value.is_string()) return absl::InvalidArgumentError(StrCat(field, ": must be a string"));
    RETURN_IF_ERROR(model::ValidateLabelKey(key, "args.labels"));
    RETURN_IF_ERROR(model::ValidateLabelValue(value.get<std::string>(), field));
    conf.labels[key] = value.get<std::string>();
  }
  return absl::OkStatus();
}

// Every field after the version; InvalidArgument errors become code 7 in the caller.
absl::Status DecodeFields(const Json& json, NetConf& conf) {
  ASSIGN_OR_RETURN(conf.name, GetString(json, "name", ""));
  if (!IsValidNetworkName(conf.name)) {
    return absl::InvalidArgumentError(
        StrCat("name: \"", conf.name,
               "\" must start with a letter or digit, then letters, digits, '_', '.' or '-'"));
  }
  ASSIGN_OR_RETURN(conf.type, GetString(json, "type", ""));
  if (conf.type.empty() || conf.type.find('/') != std::string::npos) {
    return absl::InvalidArgumentError(
        StrCat("type: \"", conf.type, "\" must be a plugin file name (non-empty, no '/')"));
  }
  ASSIGN_OR_RETURN(conf.socket, GetStringOr(json, "socket", "", kDefaultSocket));
  if (conf.socket.empty() || conf.socket.front() != '/') {
    return absl::InvalidArgumentError(
        StrCat("socket: \"", conf.socket, "\" must be an absolute path"));
  }
  ASSIGN_OR_RETURN(std::optional<int64_t> mtu, GetOptionalInt(json, "mtu", "", kMinMtu, kMaxMtu));
  if (mtu.has_value()) conf.mtu = static_cast<int>(*mtu);
  if (const Json* ipam = Member(json, "ipam"); ipam != nullptr) {
    RETURN_IF_ERROR(RequireObject(*ipam, "ipam"));
    ASSIGN_OR_RETURN(conf.ipam_type, GetString(*ipam, "type", "ipam"));
    if (conf.ipam_type.empty() || conf.ipam_type.find('/') != std::string::npos) {
      return absl::InvalidArgumentError(StrCat(
          "ipam.type: \"", conf.ipam_type, "\" must be a plugin file name (non-empty, no '/')"));
    }
    conf.ipam = *ipam;
  }
  if (const Json* args = Member(json, "args"); args != nullptr) {
    RETURN_IF_ERROR(DecodeArgs(*args, conf));
  }
  if (const Json* rc = Member(json, "runtimeConfig"); rc != nullptr) {
    ASSIGN_OR_RETURN(conf.runtime_config, DecodeRuntimeConfig(*rc));
  }
  if (const Json* caps = Member(json, "capabilities"); caps != nullptr) {
    RETURN_IF_ERROR(RequireObject(*caps, "capabilities"));
    for (const auto& [key, value] : caps->items()) {
      if (!value.is_boolean()) {
        return absl::InvalidArgumentError(StrCat("capabilities.", key, ": must be true or false"));
      }
    }
    conf.capabilities = *caps;
  }
  if (const Json* prev = Member(json, "prevResult"); prev != nullptr) {
    // Any supported shape is accepted; the handler re-encodes in the config's version.
    ASSIGN_OR_RETURN(conf.prev_result, DecodeResult(*prev, "prevResult"));
  }
  for (const char* key : {"cni.dev/valid-attachments", "cni.dev/attachments"}) {
    if (const Json* list = Member(json, key); list != nullptr) {
      ASSIGN_OR_RETURN(conf.valid_attachments, DecodeAttachments(*list, key));
      break;
    }
  }
  return absl::OkStatus();
}

}  // namespace

bool IsValidNetworkName(std::string_view name) { return IsIdentifier(name); }

absl::StatusOr<Json> DecodeConfigJson(std::string_view text) {
  absl::StatusOr<Json> json = ParseJson(text);
  if (!json.ok()) {
    return CniError(kErrDecode,
                    StrCat("cannot decode network configuration: ", json.status().message()));
  }
  if (!json->is_object()) {
    return CniError(kErrDecode, StrCat("cannot decode network configuration: a ",
                                       json->type_name(), " is not a JSON object"));
  }
  return json;
}

absl::StatusOr<NetConf> NetConfFromJson(const Json& json) {
  NetConf conf;
  ASSIGN_OR_RETURN(conf.version, ConfigVersion(json));
  conf.cni_version = json.at("cniVersion").get<std::string>();
  absl::Status status = DecodeFields(json, conf);
  if (!status.ok()) {
    if (CniCode(status).has_value()) return status;
    return CniError(kErrInvalidConfig,
                    StrCat("invalid network configuration: ", status.message()));
  }
  conf.raw = json;
  return conf;
}

absl::StatusOr<NetConf> ParseNetConf(std::string_view text) {
  ASSIGN_OR_RETURN(Json json, DecodeConfigJson(text));
  return NetConfFromJson(json);
}

}  // namespace loom::cni
