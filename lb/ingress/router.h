// Ingress objects and the router that matches requests to them, as the Kubernetes
// Ingress (networking.k8s.io/v1) rules say. Pure: no sockets; the proxy holds a
// std::shared_ptr<const Router> and swaps in a new one when ingresses change, so
// requests in flight keep the routes they matched.
//
// The manifest (apiVersion loom/v1, kind Ingress) follows networking.k8s.io/v1:
//   spec.ingressClassName                   accepted and kept, not used (one proxy)
//   spec.defaultBackend  {service: {name, port: {number | name}}}
//   spec.rules[].host    exact ("foo.com"), single-label wildcard ("*.foo.com"), or absent (any)
//   spec.rules[].http.paths[]  {path, pathType: Exact | Prefix | ImplementationSpecific, backend}
//   spec.tls[]           {hosts: [...], secretName}
// Loom extensions, per path:
//   weightedBackends: [{service: NAME, port: NUMBER | "NAME", weight: 0..1000000 (default 1)}]
//       instead of `backend`: traffic splits by weight / sum (as HTTPRoute's backendRefs);
//   timeoutSeconds: 1..3600, the request's upstream timeout (default: the proxy's);
//   retries: 0..10, further attempts on another endpoint when connecting fails;
//   loadBalancer: RoundRobin (default) | LeastRequest, how an endpoint is picked.
// ImplementationSpecific is matched as Prefix.
//
// Matching (Router::Match):
//   * Host: the Host header, lowercased, without port or trailing dot. A rule with
//     an exact host beats a wildcard rule, which beats rules without a host. Only
//     the most specific host that has rules is considered: its paths are matched,
//     and if none matches the default backend is used (as ingress-nginx's and
//     Envoy's virtual hosts do; there is no fall-through to less specific hosts).
//   * Path: the query string is ignored; percent-encoding is not decoded. Exact
//     compares the whole path, case-sensitively ("/foo" is not "/foo/"). Prefix
//     compares whole path elements: "/foo" matches "/foo", "/foo/", "/foo/bar", not
//     "/foobar"; a trailing slash in the rule is ignored; "/" matches every path.
//     The longest matching path wins; on a tie Exact beats Prefix (an Exact match
//     is the whole path, so it always wins when it matches).
//   * Unmatched: the default backend, else no route (the proxy answers 404).
//   * Conflicts between ingresses (the same host, path and type, or two default
//     backends): the ingress first in namespace/name order wins, and the loser is
//     reported by Router::conflicts(). Kubernetes controllers prefer the oldest, but
//     ObjectMeta has no creation revision (revision is the last modification, so an
//     unrelated edit would flip the winner); name order is the same on every node.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "common/json.h"
#include "common/model/objects.h"

namespace loom::lb::ingress {

inline constexpr uint32_t kMaxBackendWeight = 1'000'000;
inline constexpr uint32_t kMaxTimeoutSeconds = 3600;
inline constexpr uint32_t kMaxRetries = 10;

enum class PathType { kExact, kPrefix };
std::string_view PathTypeName(PathType type);

enum class Balance { kRoundRobin, kLeastRequest };
std::string_view BalanceName(Balance balance);

// A service port by number or by name (exactly one is set).
struct ServicePortRef {
  uint16_t number = 0;
  std::string name;
  friend bool operator==(const ServicePortRef&, const ServicePortRef&) = default;
};

// A service in the ingress's namespace.
struct WeightedBackend {
  std::string service;
  ServicePortRef port;
  uint32_t weight = 1;
  friend bool operator==(const WeightedBackend&, const WeightedBackend&) = default;
};

struct IngressPath {
  std::string path;
  PathType type = PathType::kPrefix;
  bool implementation_specific = false;  // given as ImplementationSpecific, matched as Prefix
  bool weighted = false;                 // given as weightedBackends (else `backend`)
  std::vector<WeightedBackend> backends;  // one, or several by weight
  uint32_t timeout_seconds = 0;           // 0: the proxy's default
  uint32_t retries = 0;
  Balance balance = Balance::kRoundRobin;
  friend bool operator==(const IngressPath&, const IngressPath&) = default;
};

struct IngressRule {
  std::string host;  // "" (any), "foo.com" or "*.foo.com"
  std::vector<IngressPath> paths;
  friend bool operator==(const IngressRule&, const IngressRule&) = default;
};

struct IngressTls {
  std::vector<std::string> hosts;  // "" hosts: the certificate for every name
  std::string secret_name;
  friend bool operator==(const IngressTls&, const IngressTls&) = default;
};

struct Ingress {
  model::ObjectMeta meta;
  std::string ingress_class;
  std::optional<WeightedBackend> default_backend;
  std::vector<IngressRule> rules;
  std::vector<IngressTls> tls;
  friend bool operator==(const Ingress&, const Ingress&) = default;
};

// From a manifest (kind Ingress): unknown fields and every bad value are errors
// naming the field ("spec.rules[0].http.paths[1].pathType: ...").
absl::StatusOr<Ingress> IngressFromManifest(const Json& manifest);
Json IngressToManifest(const Ingress& ingress);

// What a request matched.
struct Route {
  std::string ingress;    // "<namespace>/<name>"
  std::string ns;         // where the backends' services are
  std::string host;       // the rule's host ("" any, "*.foo.com"); "" for the default backend
  std::string path;       // the rule's path; "" for the default backend
  PathType type = PathType::kPrefix;
  bool is_default = false;
  std::vector<WeightedBackend> backends;
  uint32_t timeout_seconds = 0;
  uint32_t retries = 0;
  Balance balance = Balance::kRoundRobin;
  uint32_t index = 0;  // in Router::routes()

  // The backend for a uniformly random `random`: backend i with probability
  // weight_i / sum. nullptr when every weight is 0.
  const WeightedBackend* Pick(uint64_t random) const;

  std::vector<uint64_t> cumulative_weights;  // filled by the Router
};

class Router {
 public:
  Router() = default;
  // Ingresses in any order (they are ranked by namespace/name).
  static Router Build(std::span<const Ingress> ingresses);

  // The route for a request, or nullptr (404). `host` is the Host header (or the
  // :authority), `target` the request target in origin form ("/a/b?x=1"). Does not
  // allocate.
  const Route* Match(std::string_view host, std::string_view target) const;

  // The TLS secret ("<namespace>/<secretName>") for a server name (SNI): an exact
  // host beats a wildcard, which beats a tls entry without hosts. Does not allocate.
  const std::string* CertificateFor(std::string_view server_name) const;

  // Rules and default backends that lost to an earlier ingress, one line each.
  const std::vector<std::string>& conflicts() const { return conflicts_; }
  size_t route_count() const { return routes_.size(); }
  // Every route (Route::index is its place here); the proxy keeps per-route state.
  const std::vector<Route>& routes() const { return routes_; }

 private:
  struct HostRoutes {
    absl::flat_hash_map<std::string, uint32_t> exact;   // path -> route
    absl::flat_hash_map<std::string, uint32_t> prefix;  // path without trailing '/' ("/" is "")
    size_t longest_prefix = 0;  // longer candidates are cut without a lookup
  };
  const HostRoutes* FindHost(std::string_view normalized_host) const;
  const Route* MatchPath(const HostRoutes& routes, std::string_view path) const;

  std::vector<Route> routes_;
  absl::flat_hash_map<std::string, HostRoutes> exact_hosts_;
  absl::flat_hash_map<std::string, HostRoutes> wildcard_hosts_;  // "*.foo.com" under "foo.com"
  std::optional<HostRoutes> any_host_;
  std::optional<uint32_t> default_route_;
  absl::flat_hash_map<std::string, std::string> exact_certs_;
  absl::flat_hash_map<std::string, std::string> wildcard_certs_;
  std::optional<std::string> any_cert_;
  std::vector<std::string> conflicts_;
};

}  // namespace loom::lb::ingress
