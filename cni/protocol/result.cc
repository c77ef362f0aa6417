#include "cni/protocol/result.h"

#include <limits>

#include "cni/protocol/error.h"
#include "cni/protocol/fields.h"
#include "common/status.h"
#include "common/strings.h"

namespace loom::cni {
namespace {

constexpr int64_t kIntMax = std::numeric_limits<int>::max();
constexpr int64_t kIntMin = std::numeric_limits<int>::min();

void PutIfSet(Json& out, const char* key, const std::string& value) {
  if (!value.empty()) out[key] = value;
}
void PutIfSet(Json& out, const char* key, const std::optional<int>& value) {
  if (value.has_value()) out[key] = *value;
}
void PutIfSet(Json& out, const char* key, const std::vector<std::string>& value) {
  if (!value.empty()) out[key] = value;
}

absl::StatusOr<std::optional<int>> GetInt32(const Json& obj, std::string_view key,
                                            std::string_view path, int64_t min) {
  ASSIGN_OR_RETURN(std::optional<int64_t> v, GetOptionalInt(obj, key, path, min, kIntMax));
  if (!v.has_value()) return std::optional<int>();
  return std::optional<int>(static_cast<int>(*v));
}

absl::StatusOr<Interface> DecodeInterface(const Json& json, const std::string& path) {
  RETURN_IF_ERROR(RequireObject(json, path));
  Interface out;
  ASSIGN_OR_RETURN(out.name, GetString(json, "name", path));
  ASSIGN_OR_RETURN(out.mac, GetStringOr(json, "mac", path, ""));
  ASSIGN_OR_RETURN(out.mtu, GetInt32(json, "mtu", path, 0));
  ASSIGN_OR_RETURN(out.sandbox, GetStringOr(json, "sandbox", path, ""));
  ASSIGN_OR_RETURN(out.socket_path, GetStringOr(json, "socketPath", path, ""));
  ASSIGN_OR_RETURN(out.pci_id, GetStringOr(json, "pciID", path, ""));
  return out;
}

absl::StatusOr<IpConfig> DecodeIp(const Json& json, const std::string& path,
                                  size_t interface_count) {
  RETURN_IF_ERROR(RequireObject(json, path));
  IpConfig out;
  ASSIGN_OR_RETURN(out.address, GetString(json, "address", path));
  ASSIGN_OR_RETURN(int family, CidrFamily(out.address, FieldPath(path, "address")));
  ASSIGN_OR_RETURN(out.gateway, GetStringOr(json, "gateway", path, ""));
  if (!out.gateway.empty()) {
    ASSIGN_OR_RETURN(int gw_family, IpFamily(out.gateway, FieldPath(path, "gateway")));
    if (gw_family != family) {
      return absl::InvalidArgumentError(
          StrCat(FieldPath(path, "gateway"), ": \"", out.gateway,
                 "\" is not of the address's IP family"));
    }
  }
  ASSIGN_OR_RETURN(out.interface, GetInt32(json, "interface", path, 0));
  if (out.interface.has_value() && static_cast<size_t>(*out.interface) >= interface_count) {
    return absl::InvalidArgumentError(StrCat(FieldPath(path, "interface"), ": index ",
                                             *out.interface, " is beyond the ",
                                             interface_count, " interfaces"));
  }
  // 0.x results say the family; when they do it must match the address.
  if (auto it = json.find("version"); it != json.end() && !it->is_null()) {
    std::string want = family == 4 ? "4" : "6";
    if (!it->is_string() || it->get<std::string>() != want) {
      return absl::InvalidArgumentError(StrCat(FieldPath(path, "version"), ": must be \"", want,
                                               "\" for ", out.address));
    }
  }
  return out;
}

absl::StatusOr<Route> DecodeRoute(const Json& json, const std::string& path) {
  RETURN_IF_ERROR(RequireObject(json, path));
  Route out;
  ASSIGN_OR_RETURN(out.dst, GetString(json, "dst", path));
  RETURN_IF_ERROR(CidrFamily(out.dst, FieldPath(path, "dst")).status());
  ASSIGN_OR_RETURN(out.gw, GetStringOr(json, "gw", path, ""));
  if (!out.gw.empty()) RETURN_IF_ERROR(IpFamily(out.gw, FieldPath(path, "gw")).status());
  ASSIGN_OR_RETURN(out.mtu, GetInt32(json, "mtu", path, 0));
  ASSIGN_OR_RETURN(out.advmss, GetInt32(json, "advmss", path, 0));
  ASSIGN_OR_RETURN(out.priority, GetInt32(json, "priority", path, 0));
  ASSIGN_OR_RETURN(out.table, GetInt32(json, "table", path, 0));
  ASSIGN_OR_RETURN(out.scope, GetInt32(json, "scope", path, kIntMin));
  return out;
}

template <typename T, typename Fn>
absl::StatusOr<std::vector<T>> DecodeList(const Json& json, std::string_view key,
                                          std::string_view path, Fn decode) {
  std::vector<T> out;
  auto it = json.find(key);
  if (it == json.end() || it->is_null()) return out;
  std::string field = FieldPath(path, key);
  RETURN_IF_ERROR(RequireArray(*it, field));
  for (size_t i = 0; i < it->size(); ++i) {
    ASSIGN_OR_RETURN(T item, decode((*it)[i], StrCat(field, "[", i, "]")));
    out.push_back(std::move(item));
  }
  return out;
}

}  // namespace

Json EncodeDns(const Dns& dns) {
  Json out = Json::object();
  PutIfSet(out, "nameservers", dns.nameservers);
  PutIfSet(out, "domain", dns.domain);
  PutIfSet(out, "search", dns.search);
  PutIfSet(out, "options", dns.options);
  return out;
}

absl::StatusOr<Dns> DecodeDns(const Json& json, std::string_view path) {
  RETURN_IF_ERROR(RequireObject(json, path));
  Dns out;
  ASSIGN_OR_RETURN(out.nameservers, GetStringList(json, "nameservers", path));
  for (size_t i = 0; i < out.nameservers.size(); ++i) {
    RETURN_IF_ERROR(
        IpFamily(out.nameservers[i], StrCat(FieldPath(path, "nameservers"), "[", i, "]")).status());
  }
  ASSIGN_OR_RETURN(out.domain, GetStringOr(json, "domain", path, ""));
  ASSIGN_OR_RETURN(out.search, GetStringList(json, "search", path));
  ASSIGN_OR_RETURN(out.options, GetStringList(json, "options", path));
  return out;
}

absl::StatusOr<Json> EncodeResult(const Result& result, const SpecVersion& version) {
  if (!IsSupported(version)) {
    return CniError(kErrIncompatibleVersion,
                    StrCat("cannot encode a result for cniVersion ", version.ToString()));
  }
  const bool v11 = version >= kVersion110;
  const bool v0 = version < kVersion100;
  Json out = {{"cniVersion", version.ToString()}};
  if (!result.interfaces.empty()) {
    Json list = Json::array();
    for (const Interface& i : result.interfaces) {
      Json item = {{"name", i.name}};
      PutIfSet(item, "mac", i.mac);
      if (v11) PutIfSet(item, "mtu", i.mtu);
      PutIfSet(item, "sandbox", i.sandbox);
      if (v11) {
        PutIfSet(item, "socketPath", i.socket_path);
        PutIfSet(item, "pciID", i.pci_id);
      }
      list.push_back(std::move(item));
    }
    out["interfaces"] = std::move(list);
  }
  if (!result.ips.empty()) {
    Json list = Json::array();
    for (size_t n = 0; n < result.ips.size(); ++n) {
      const IpConfig& ip = result.ips[n];
      Json item = Json::object();
      if (v0) {
        ASSIGN_OR_RETURN(int family, CidrFamily(ip.address, StrCat("ips[", n, "].address")));
        item["version"] = family == 4 ? "4" : "6";
      }
      PutIfSet(item, "interface", ip.interface);
      item["address"] = ip.address;
      PutIfSet(item, "gateway", ip.gateway);
      list.push_back(std::move(item));
    }
    out["ips"] = std::move(list);
  }
  if (!result.routes.empty()) {
    Json list = Json::array();
    for (const Route& r : result.routes) {
      Json item = {{"dst", r.dst}};
      PutIfSet(item, "gw", r.gw);
      if (v11) {
        PutIfSet(item, "mtu", r.mtu);
        PutIfSet(item, "advmss", r.advmss);
        PutIfSet(item, "priority", r.priority);
        PutIfSet(item, "table", r.table);
        PutIfSet(item, "scope", r.scope);
      }
      list.push_back(std::move(item));
    }
    out["routes"] = std::move(list);
  }
  out["dns"] = EncodeDns(result.dns);
  return out;
}

absl::StatusOr<std::string> ResultText(const Result& result, const SpecVersion& version) {
  ASSIGN_OR_RETURN(Json json, EncodeResult(result, version));
  return json.dump(4) + "\n";
}

absl::StatusOr<Result> DecodeResult(const Json& json, std::string_view path) {
  RETURN_IF_ERROR(RequireObject(json, path.empty() ? "result" : path));
  if (auto it = json.find("cniVersion"); it != json.end() && !it->is_null()) {
    std::string field = FieldPath(path, "cniVersion");
    if (!it->is_string()) return absl::InvalidArgumentError(StrCat(field, ": must be a string"));
    absl::StatusOr<SpecVersion> v = ParseVersion(it->get<std::string>());
    if (!v.ok() || !IsSupported(*v)) {
      return CniError(kErrIncompatibleVersion,
                      StrCat(field, ": result version \"", it->get<std::string>(),
                             "\" is not supported"));
    }
  }
  Result out;
  ASSIGN_OR_RETURN(out.interfaces,
                   DecodeList<Interface>(json, "interfaces", path, DecodeInterface));
  size_t count = out.interfaces.size();
  ASSIGN_OR_RETURN(out.ips, DecodeList<IpConfig>(json, "ips", path,
                                                 [count](const Json& j, const std::string& p) {
                                                   return DecodeIp(j, p, count);
                                                 }));
  ASSIGN_OR_RETURN(out.routes, DecodeList<Route>(json, "routes", path, DecodeRoute));
  if (auto it = json.find("dns"); it != json.end() && !it->is_null()) {
    ASSIGN_OR_RETURN(out.dns, DecodeDns(*it, FieldPath(path, "dns")));
  }
  return out;
}

absl::StatusOr<Json> ConvertResult(const Json& json, const SpecVersion& to) {
  ASSIGN_OR_RETURN(Result result, DecodeResult(json));
  return EncodeResult(result, to);
}

}  // namespace loom::cni
