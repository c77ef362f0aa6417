#include "lb/ingress/router.h"

#include <algorithm>
#include <numeric>
#include <set>
#include <tuple>

#include "common/model/manifest.h"
#include "common/model/validation.h"
#include "common/net/ip.h"
#include "common/status.h"
#include "common/strings.h"

namespace loom::lb::ingress {
namespace {

using model::FieldPath;
using model::OnlyKnownKeys;

absl::Status Invalid(std::string_view field, std::string_view what) {
  return absl::InvalidArgumentError(StrCat(field, ": ", what));
}

// "foo.com" or "*.foo.com": a DNS name, not an address; a wildcard is one whole
// leading label.
absl::Status ValidateHost(std::string_view host, std::string_view field) {
  std::string_view name = host;
  if (host.starts_with("*.")) name.remove_prefix(2);
  if (name.find('*') != std::string_view::npos) {
    return Invalid(field, StrCat("\"", host, "\": a wildcard must be the whole first label (*.foo.com)"));
  }
  if (net::Ipv4Address::Parse(name).ok()) {
    return Invalid(field, StrCat("\"", host, "\": must be a DNS name, not an IP address"));
  }
  return model::ValidateDns1123Subdomain(name, field);
}

// Absolute, and free of what a proxy would normalise away (so a rule cannot be one
// that no normalised request reaches): no "//", "." or ".." elements, query or fragment.
absl::Status ValidatePath(std::string_view path, std::string_view field) {
  if (!path.starts_with('/')) return Invalid(field, StrCat("\"", path, "\" must start with /"));
  for (char c : path) {
    if (static_cast<unsigned char>(c) <= ' ' || c == 0x7f || c == '?' || c == '#') {
      return Invalid(field, StrCat("\"", path, "\" must not contain spaces, control characters, ? or #"));
    }
  }
  size_t start = 1;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    std::string_view element = path.substr(start, end - start);
    if (element == "." || element == ".." || (element.empty() && end != path.size())) {
      return Invalid(field, StrCat("\"", path, "\" must not contain //, /./ or /../"));
    }
    start = end + 1;
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ParseServiceName(const Json& obj, std::string_view key,
                                             std::string_view path) {
  ASSIGN_OR_RETURN(std::string name, GetString(obj, key, path));
  RETURN_IF_ERROR(model::ValidateDns1035Label(name, FieldPath(path, key)));
  return name;
}

// A port as a number (1..65535) or a port name (a string).
absl::StatusOr<ServicePortRef> ParsePortValue(const Json& value, std::string_view field) {
  ServicePortRef ref;
  if (value.is_string()) {
    ref.name = value.get<std::string>();
    RETURN_IF_ERROR(model::ValidatePortName(ref.name, field));
    return ref;
  }
  if (!value.is_number_integer()) return Invalid(field, "must be a port number or name");
  int64_t n = value.get<int64_t>();
  if (n < 1 || n > 65535) return Invalid(field, "must be 1..65535");
  ref.number = static_cast<uint16_t>(n);
  return ref;
}

// networking.k8s.io/v1 IngressBackend: {service: {name, port: {number | name}}}.
absl::StatusOr<WeightedBackend> ParseBackend(const Json& obj, std::string_view path) {
  RETURN_IF_ERROR(OnlyKnownKeys(obj, path, {"service"}));
  auto svc = obj.find("service");
  if (svc == obj.end()) return Invalid(FieldPath(path, "service"), "required");
  std::string svc_path = FieldPath(path, "service");
  RETURN_IF_ERROR(OnlyKnownKeys(*svc, svc_path, {"name", "port"}));
  WeightedBackend b;
  ASSIGN_OR_RETURN(b.service, ParseServiceName(*svc, "name", svc_path));
  auto port = svc->find("port");
  std::string port_path = FieldPath(svc_path, "port");
  if (port == svc->end()) return Invalid(port_path, "required");
  RETURN_IF_ERROR(OnlyKnownKeys(*port, port_path, {"number", "name"}));
  bool has_number = port->contains("number"), has_name = port->contains("name");
  if (has_number == has_name) return Invalid(port_path, "exactly one of number and name");
  ASSIGN_OR_RETURN(b.port, ParsePortValue(has_number ? (*port)["number"] : (*port)["name"],
                                          FieldPath(port_path, has_number ? "number" : "name")));
  if (has_number != (b.port.number != 0)) {
    return Invalid(FieldPath(port_path, has_number ? "number" : "name"),
                   has_number ? "must be a number" : "must be a string");
  }
  return b;
}

// Loom's weightedBackends entry: {service: NAME, port: NUMBER | "NAME", weight}.
absl::StatusOr<WeightedBackend> ParseWeightedBackend(const Json& obj, std::string_view path) {
  RETURN_IF_ERROR(OnlyKnownKeys(obj, path, {"service", "port", "weight"}));
  WeightedBackend b;
  ASSIGN_OR_RETURN(b.service, ParseServiceName(obj, "service", path));
  auto port = obj.find("port");
  if (port == obj.end()) return Invalid(FieldPath(path, "port"), "required");
  ASSIGN_OR_RETURN(b.port, ParsePortValue(*port, FieldPath(path, "port")));
  ASSIGN_OR_RETURN(int64_t weight, GetIntOr(obj, "weight", path, 1));
  if (weight < 0 || weight > kMaxBackendWeight) {
    return Invalid(FieldPath(path, "weight"), StrCat("must be 0..", kMaxBackendWeight));
  }
  b.weight = static_cast<uint32_t>(weight);
  return b;
}

absl::StatusOr<uint32_t> ParseBounded(const Json& obj, std::string_view key, std::string_view path,
                                      int64_t min, int64_t max) {
  ASSIGN_OR_RETURN(int64_t v, GetIntOr(obj, key, path, 0));
  if (obj.contains(key) && (v < min || v > max)) {
    return Invalid(FieldPath(path, key), StrCat("must be ", min, "..", max));
  }
  return static_cast<uint32_t>(v);
}

// Prefix rules compare whole elements, so a trailing '/' is no part of the key,
// and "/" becomes "" (the prefix of every path).
std::string_view StripTrailingSlashes(std::string_view path) {
  while (!path.empty() && path.back() == '/') path.remove_suffix(1);
  return path;
}

absl::StatusOr<IngressPath> ParsePath(const Json& obj, std::string_view path) {
  RETURN_IF_ERROR(OnlyKnownKeys(obj, path, {"path", "pathType", "backend", "weightedBackends",
                                            "timeoutSeconds", "retries", "loadBalancer"}));
  IngressPath p;
  ASSIGN_OR_RETURN(std::string type, GetString(obj, "pathType", path));
  if (type == "Exact") {
    p.type = PathType::kExact;
  } else if (type == "Prefix") {
    p.type = PathType::kPrefix;
  } else if (type == "ImplementationSpecific") {
    p.type = PathType::kPrefix;
    p.implementation_specific = true;
  } else {
    return Invalid(FieldPath(path, "pathType"),
                   StrCat("\"", type, "\" must be Exact, Prefix or ImplementationSpecific"));
  }
  ASSIGN_OR_RETURN(p.path, GetStringOr(obj, "path", path, p.implementation_specific ? "/" : ""));
  if (p.path.empty()) return Invalid(FieldPath(path, "path"), StrCat("required for ", type));
  RETURN_IF_ERROR(ValidatePath(p.path, FieldPath(path, "path")));

  auto backend = obj.find("backend");
  auto weighted = obj.find("weightedBackends");
  if ((backend == obj.end()) == (weighted == obj.end())) {
    return Invalid(path, "exactly one of backend and weightedBackends");
  }
  if (backend != obj.end()) {
    ASSIGN_OR_RETURN(WeightedBackend b, ParseBackend(*backend, FieldPath(path, "backend")));
    p.backends.push_back(std::move(b));
  } else {
    p.weighted = true;
    std::string wpath = FieldPath(path, "weightedBackends");
    if (!weighted->is_array() || weighted->empty()) return Invalid(wpath, "must be a non-empty list");
    uint64_t total = 0;
    std::set<std::tuple<std::string, uint16_t, std::string>> seen;
    for (size_t i = 0; i < weighted->size(); ++i) {
      std::string item = StrCat(wpath, "[", i, "]");
      ASSIGN_OR_RETURN(WeightedBackend b, ParseWeightedBackend((*weighted)[i], item));
      if (!seen.insert({b.service, b.port.number, b.port.name}).second) {
        return Invalid(item, StrCat("service ", b.service, " and its port are listed twice"));
      }
      total += b.weight;
      p.backends.push_back(std::move(b));
    }
    if (total == 0) return Invalid(wpath, "at least one weight must be positive");
  }
  ASSIGN_OR_RETURN(p.timeout_seconds, ParseBounded(obj, "timeoutSeconds", path, 1, kMaxTimeoutSeconds));
  ASSIGN_OR_RETURN(p.retries, ParseBounded(obj, "retries", path, 0, kMaxRetries));
  ASSIGN_OR_RETURN(std::string balance, GetStringOr(obj, "loadBalancer", path, "RoundRobin"));
  if (balance == "LeastRequest") {
    p.balance = Balance::kLeastRequest;
  } else if (balance != "RoundRobin") {
    return Invalid(FieldPath(path, "loadBalancer"),
                   StrCat("\"", balance, "\" must be RoundRobin or LeastRequest"));
  }
  return p;
}

absl::StatusOr<IngressRule> ParseRule(const Json& obj, std::string_view path) {
  RETURN_IF_ERROR(OnlyKnownKeys(obj, path, {"host", "http"}));
  IngressRule rule;
  ASSIGN_OR_RETURN(rule.host, GetStringOr(obj, "host", path, ""));
  if (obj.contains("host")) RETURN_IF_ERROR(ValidateHost(rule.host, FieldPath(path, "host")));
  auto http = obj.find("http");
  std::string http_path = FieldPath(path, "http");
  if (http == obj.end()) return Invalid(http_path, "required");
  RETURN_IF_ERROR(OnlyKnownKeys(*http, http_path, {"paths"}));
  auto paths = http->find("paths");
  std::string paths_path = FieldPath(http_path, "paths");
  if (paths == http->end() || !paths->is_array() || paths->empty()) {
    return Invalid(paths_path, "must be a non-empty list");
  }
  std::set<std::pair<std::string, PathType>> seen;
  for (size_t i = 0; i < paths->size(); ++i) {
    std::string item = StrCat(paths_path, "[", i, "]");
    ASSIGN_OR_RETURN(IngressPath p, ParsePath((*paths)[i], item));
    std::string key(p.type == PathType::kPrefix ? StripTrailingSlashes(p.path) : p.path);
    if (!seen.insert({key, p.type}).second) {
      return Invalid(FieldPath(item, "path"),
                     StrCat("\"", p.path, "\" (", PathTypeName(p.type), ") is given twice"));
    }
    rule.paths.push_back(std::move(p));
  }
  return rule;
}

absl::StatusOr<IngressTls> ParseTls(const Json& obj, std::string_view path) {
  RETURN_IF_ERROR(OnlyKnownKeys(obj, path, {"hosts", "secretName"}));
  IngressTls tls;
  ASSIGN_OR_RETURN(tls.secret_name, GetString(obj, "secretName", path));
  RETURN_IF_ERROR(model::ValidateDns1123Subdomain(tls.secret_name, FieldPath(path, "secretName")));
  auto hosts = obj.find("hosts");
  if (hosts != obj.end() && !hosts->is_null()) {
    std::string hosts_path = FieldPath(path, "hosts");
    if (!hosts->is_array()) return Invalid(hosts_path, "must be a list");
    for (size_t i = 0; i < hosts->size(); ++i) {
      std::string item = StrCat(hosts_path, "[", i, "]");
      if (!(*hosts)[i].is_string()) return Invalid(item, "must be a string");
      std::string host = (*hosts)[i].get<std::string>();
      RETURN_IF_ERROR(ValidateHost(host, item));
      tls.hosts.push_back(std::move(host));
    }
  }
  return tls;
}

Json BackendToJson(const WeightedBackend& b) {
  Json port = b.port.name.empty() ? Json{{"number", b.port.number}} : Json{{"name", b.port.name}};
  return {{"service", {{"name", b.service}, {"port", std::move(port)}}}};
}

// Host header to the form rules use: lowercase, no port, no trailing dot, into
// `buf`. Empty when it cannot be a rule's host (too long, empty).
constexpr size_t kMaxHost = 253;
std::string_view NormalizeHost(std::string_view host, char (&buf)[kMaxHost]) {
  if (!host.empty() && host.front() != '[') {  // an IPv6 literal's colons are no port
    size_t colon = host.rfind(':');
    if (colon != std::string_view::npos) host = host.substr(0, colon);
  }
  if (!host.empty() && host.back() == '.') host.remove_suffix(1);
  if (host.size() > kMaxHost) return {};
  for (size_t i = 0; i < host.size(); ++i) {
    char c = host[i];
    buf[i] = (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
  }
  return {buf, host.size()};
}

// "bar.foo.com" -> "foo.com": the key of the wildcard that could match it.
std::optional<std::string_view> WildcardKey(std::string_view host) {
  size_t dot = host.find('.');
  if (dot == std::string_view::npos || dot == 0) return std::nullopt;
  return host.substr(dot + 1);
}

// The entry for a normalised host: an exact name beats a "*." wildcard (kept under
// its parent domain), which beats the entry for any host.
template <typename V>
const V* MostSpecific(const absl::flat_hash_map<std::string, V>& exact,
                      const absl::flat_hash_map<std::string, V>& wildcard,
                      const std::optional<V>& any, std::string_view host) {
  if (!host.empty()) {
    if (auto it = exact.find(ToAbsl(host)); it != exact.end()) return &it->second;
    if (auto parent = WildcardKey(host)) {
      if (auto it = wildcard.find(ToAbsl(*parent)); it != wildcard.end()) return &it->second;
    }
  }
  return any ? &*any : nullptr;
}

}  // namespace

std::string_view PathTypeName(PathType type) {
  return type == PathType::kExact ? "Exact" : "Prefix";
}

std::string_view BalanceName(Balance balance) {
  return balance == Balance::kLeastRequest ? "LeastRequest" : "RoundRobin";
}

absl::StatusOr<Ingress> IngressFromManifest(const Json& manifest) {
  RETURN_IF_ERROR(model::CheckManifestKind(manifest, "Ingress"));
  Ingress ing;
  ASSIGN_OR_RETURN(ing.meta, model::ParseMeta(manifest));
  RETURN_IF_ERROR(model::ValidateDns1123Subdomain(ing.meta.name, "metadata.name"));
  auto spec_it = manifest.find("spec");
  if (spec_it == manifest.end()) return Invalid("spec", "required");
  const Json& spec = *spec_it;
  RETURN_IF_ERROR(OnlyKnownKeys(spec, "spec", {"ingressClassName", "defaultBackend", "rules", "tls"}));
  ASSIGN_OR_RETURN(ing.ingress_class, GetStringOr(spec, "ingressClassName", "spec", ""));
  auto def = spec.find("defaultBackend");
  if (def != spec.end() && !def->is_null()) {
    ASSIGN_OR_RETURN(ing.default_backend, ParseBackend(*def, "spec.defaultBackend"));
  }
  auto rules = spec.find("rules");
  if (rules != spec.end() && !rules->is_null()) {
    if (!rules->is_array()) return Invalid("spec.rules", "must be a list");
    std::set<std::string> hosts;
    for (size_t i = 0; i < rules->size(); ++i) {
      std::string item = StrCat("spec.rules[", i, "]");
      ASSIGN_OR_RETURN(IngressRule rule, ParseRule((*rules)[i], item));
      if (!hosts.insert(rule.host).second) {
        return Invalid(FieldPath(item, "host"),
                       StrCat("\"", rule.host, "\" has an earlier rule: merge their paths"));
      }
      ing.rules.push_back(std::move(rule));
    }
  }
  if (ing.rules.empty() && !ing.default_backend) {
    return Invalid("spec", "needs rules or a defaultBackend");
  }
  auto tls = spec.find("tls");
  if (tls != spec.end() && !tls->is_null()) {
    if (!tls->is_array()) return Invalid("spec.tls", "must be a list");
    for (size_t i = 0; i < tls->size(); ++i) {
      ASSIGN_OR_RETURN(IngressTls t, ParseTls((*tls)[i], StrCat("spec.tls[", i, "]")));
      ing.tls.push_back(std::move(t));
    }
  }
  return ing;
}

Json IngressToManifest(const Ingress& ing) {
  Json spec = Json::object();
  if (!ing.ingress_class.empty()) spec["ingressClassName"] = ing.ingress_class;
  if (ing.default_backend) spec["defaultBackend"] = BackendToJson(*ing.default_backend);
  if (!ing.rules.empty()) {
    Json rules = Json::array();
    for (const IngressRule& r : ing.rules) {
      Json paths = Json::array();
      for (const IngressPath& p : r.paths) {
        Json j = {{"path", p.path},
                  {"pathType", p.implementation_specific ? "ImplementationSpecific"
                                                         : std::string(PathTypeName(p.type))}};
        if (p.weighted) {
          Json wb = Json::array();
          for (const WeightedBackend& b : p.backends) {
            Json port = b.port.name.empty() ? Json(b.port.number) : Json(b.port.name);
            wb.push_back({{"service", b.service}, {"port", std::move(port)}, {"weight", b.weight}});
          }
          j["weightedBackends"] = std::move(wb);
        } else {
          j["backend"] = BackendToJson(p.backends.front());
        }
        if (p.timeout_seconds != 0) j["timeoutSeconds"] = p.timeout_seconds;
        if (p.retries != 0) j["retries"] = p.retries;
        if (p.balance != Balance::kRoundRobin) j["loadBalancer"] = std::string(BalanceName(p.balance));
        paths.push_back(std::move(j));
      }
      Json rule = {{"http", {{"paths", std::move(paths)}}}};
      if (!r.host.empty()) rule["host"] = r.host;
      rules.push_back(std::move(rule));
    }
    spec["rules"] = std::move(rules);
  }
  if (!ing.tls.empty()) {
    Json tls = Json::array();
    for (const IngressTls& t : ing.tls) {
      Json j = {{"secretName", t.secret_name}};
      if (!t.hosts.empty()) j["hosts"] = t.hosts;
      tls.push_back(std::move(j));
    }
    spec["tls"] = std::move(tls);
  }
  return {{"apiVersion", "loom/v1"}, {"kind", "Ingress"}, {"metadata", model::MetaToJson(ing.meta)},
          {"spec", std::move(spec)}};
}

const WeightedBackend* Route::Pick(uint64_t random) const {
  if (cumulative_weights.empty() || cumulative_weights.back() == 0) return nullptr;
  uint64_t x = random % cumulative_weights.back();
  auto it = std::upper_bound(cumulative_weights.begin(), cumulative_weights.end(), x);
  return &backends[it - cumulative_weights.begin()];
}

Router Router::Build(std::span<const Ingress> ingresses) {
  Router router;
  std::vector<const Ingress*> ranked;
  for (const Ingress& ing : ingresses) ranked.push_back(&ing);
  std::sort(ranked.begin(), ranked.end(), [](const Ingress* a, const Ingress* b) {
    return std::tie(a->meta.ns, a->meta.name) < std::tie(b->meta.ns, b->meta.name);
  });

  auto add_route = [&router](const Ingress& ing, Route route) {
    route.ingress = ing.meta.Key();
    route.ns = ing.meta.ns;
    uint64_t sum = 0;
    for (const WeightedBackend& b : route.backends) route.cumulative_weights.push_back(sum += b.weight);
    route.index = static_cast<uint32_t>(router.routes_.size());
    router.routes_.push_back(std::move(route));
    return static_cast<uint32_t>(router.routes_.size() - 1);
  };
  // The first claim on a key wins; later ones are reported against it.
  auto claim = [&router](auto& map, std::string_view key, const std::string& owner,
                         const std::string& what) {
    auto [it, inserted] = map.try_emplace(std::string(key), owner);
    if (!inserted) router.conflicts_.push_back(StrCat(what, " is already ", it->second));
    return inserted;
  };

  absl::flat_hash_map<std::string, std::string> route_owners;  // "host path type" -> ingress
  for (const Ingress* ing : ranked) {
    const std::string key = ing->meta.Key();
    for (const IngressRule& rule : ing->rules) {
      HostRoutes* hr;
      if (rule.host.empty()) {
        if (!router.any_host_) router.any_host_.emplace();
        hr = &*router.any_host_;
      } else if (rule.host.starts_with("*.")) {
        hr = &router.wildcard_hosts_[rule.host.substr(2)];
      } else {
        hr = &router.exact_hosts_[rule.host];
      }
      for (const IngressPath& p : rule.paths) {
        std::string_view path_key = p.type == PathType::kExact ? std::string_view(p.path)
                                                              : StripTrailingSlashes(p.path);
        std::string what = StrCat("ingress ", key, ": host \"", rule.host, "\" path ", p.path, " (",
                                  PathTypeName(p.type), ")");
        if (!claim(route_owners, StrCat(rule.host, " ", path_key, " ", PathTypeName(p.type)),
                   StrCat("routed by ", key), what)) {
          continue;
        }
        uint32_t idx = add_route(*ing, {.host = rule.host, .path = p.path, .type = p.type,
                                        .backends = p.backends, .timeout_seconds = p.timeout_seconds,
                                        .retries = p.retries, .balance = p.balance});
        if (p.type == PathType::kExact) {
          hr->exact.emplace(path_key, idx);
        } else {
          hr->prefix.emplace(path_key, idx);
          hr->longest_prefix = std::max(hr->longest_prefix, path_key.size());
        }
      }
    }
    if (ing->default_backend) {
      if (router.default_route_) {
        router.conflicts_.push_back(StrCat("ingress ", key, ": defaultBackend is already that of ",
                                           router.routes_[*router.default_route_].ingress));
      } else {
        router.default_route_ = add_route(*ing, {.is_default = true, .backends = {*ing->default_backend}});
      }
    }
    for (const IngressTls& tls : ing->tls) {
      std::string secret = StrCat(ing->meta.ns, "/", tls.secret_name);
      if (tls.hosts.empty()) {
        if (router.any_cert_) {
          router.conflicts_.push_back(StrCat("ingress ", key, ": a certificate for every host is already ",
                                             *router.any_cert_));
        } else {
          router.any_cert_ = secret;
        }
      }
      for (const std::string& host : tls.hosts) {
        std::string what = StrCat("ingress ", key, ": tls host \"", host, "\"");
        if (host.starts_with("*.")) {
          claim(router.wildcard_certs_, std::string_view(host).substr(2), secret, what);
        } else {
          claim(router.exact_certs_, host, secret, what);
        }
      }
    }
  }
  return router;
}

const Router::HostRoutes* Router::FindHost(std::string_view host) const {
  return MostSpecific(exact_hosts_, wildcard_hosts_, any_host_, host);
}

const Route* Router::MatchPath(const HostRoutes& routes, std::string_view path) const {
  // An Exact match is the whole path: nothing can be longer.
  if (auto it = routes.exact.find(ToAbsl(path)); it != routes.exact.end()) return &routes_[it->second];
  if (routes.prefix.empty()) return nullptr;
  // Element boundaries from the longest prefix down: "/a/b/" -> "/a/b", "/a", "".
  std::string_view candidate = StripTrailingSlashes(path);
  while (true) {
    if (candidate.size() <= routes.longest_prefix) {
      if (auto it = routes.prefix.find(ToAbsl(candidate)); it != routes.prefix.end()) {
        return &routes_[it->second];
      }
    }
    if (candidate.empty()) return nullptr;
    candidate = StripTrailingSlashes(candidate.substr(0, candidate.rfind('/')));
  }
}

const Route* Router::Match(std::string_view host, std::string_view target) const {
  char buf[kMaxHost];
  if (const HostRoutes* routes = FindHost(NormalizeHost(host, buf))) {
    std::string_view path = target.substr(0, target.find_first_of("?#"));
    if (path.starts_with('/')) {
      if (const Route* r = MatchPath(*routes, path)) return r;
    }
  }
  return default_route_ ? &routes_[*default_route_] : nullptr;
}

const std::string* Router::CertificateFor(std::string_view server_name) const {
  char buf[kMaxHost];
  return MostSpecific(exact_certs_, wildcard_certs_, any_cert_, NormalizeHost(server_name, buf));
}

}  // namespace loom::lb::ingress
