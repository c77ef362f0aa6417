#include "lb/ingress/router.h"

#include <atomic>
#include <cstdlib>
#include <new>
#include <random>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/yaml_manifest.h"

// Counts heap allocations, to show that Router::Match makes none. (GCC pairs our
// replaced new and delete wrongly when it inlines them.)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
static std::atomic<long> g_allocations{0};
void* operator new(std::size_t n) {
  ++g_allocations;
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace loom::lb::ingress {
namespace {

using ::loom::testing::IsOk;
using ::loom::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

Ingress Parse(std::string_view yaml) {
  auto ing = IngressFromManifest(testing::FirstYamlDocument(yaml));
  EXPECT_THAT(ing, IsOk());
  return ing.ok() ? *ing : Ingress{};
}

absl::Status ParseError(std::string_view yaml) {
  return IngressFromManifest(testing::FirstYamlDocument(yaml)).status();
}

// An ingress named `name` whose rule for `host` maps each (path, type) to a
// service named after its index: svc0, svc1...
struct P {
  std::string path;
  std::string type;
};
Ingress Paths(std::vector<P> paths, std::string host = "", std::string name = "ing") {
  Json rule = {{"http", {{"paths", Json::array()}}}};
  if (!host.empty()) rule["host"] = host;
  for (size_t i = 0; i < paths.size(); ++i) {
    rule["http"]["paths"].push_back(
        {{"path", paths[i].path},
         {"pathType", paths[i].type},
         {"backend", {{"service", {{"name", "svc" + std::to_string(i)}, {"port", {{"number", 80}}}}}}}});
  }
  Json m = {{"apiVersion", "loom/v1"}, {"kind", "Ingress"}, {"metadata", {{"name", name}}},
            {"spec", {{"rules", Json::array({rule})}}}};
  auto ing = IngressFromManifest(m);
  EXPECT_THAT(ing, IsOk());
  return ing.ok() ? *ing : Ingress{};
}

std::string Where(const Router& r, std::string_view host, std::string_view target) {
  const Route* route = r.Match(host, target);
  return route ? route->backends.front().service : "404";
}

std::string One(std::vector<P> paths, std::string_view target) {
  std::vector<Ingress> ings = {Paths(std::move(paths))};
  return Where(Router::Build(ings), "example.com", target);
}

// kubernetes.io/docs/concepts/services-networking/ingress/#examples, row by row.
TEST(RouterTest, KubernetesPathMatchingExamples) {
  for (const char* path : {"/", "/foo", "/foo/bar/baz", "/x?y=1"}) {
    EXPECT_EQ(One({{"/", "Prefix"}}, path), "svc0") << path;
  }
  EXPECT_EQ(One({{"/foo", "Exact"}}, "/foo"), "svc0");
  EXPECT_EQ(One({{"/foo", "Exact"}}, "/bar"), "404");
  EXPECT_EQ(One({{"/foo", "Exact"}}, "/foo/"), "404");
  EXPECT_EQ(One({{"/foo/", "Exact"}}, "/foo"), "404");
  EXPECT_EQ(One({{"/foo", "Prefix"}}, "/foo"), "svc0");
  EXPECT_EQ(One({{"/foo", "Prefix"}}, "/foo/"), "svc0");
  EXPECT_EQ(One({{"/foo/", "Prefix"}}, "/foo"), "svc0");
  EXPECT_EQ(One({{"/foo/", "Prefix"}}, "/foo/"), "svc0");
  EXPECT_EQ(One({{"/aaa/bb", "Prefix"}}, "/aaa/bbb"), "404");
  EXPECT_EQ(One({{"/aaa/bbb", "Prefix"}}, "/aaa/bbb"), "svc0");
  EXPECT_EQ(One({{"/aaa/bbb/", "Prefix"}}, "/aaa/bbb"), "svc0");  // ignores trailing slash
  EXPECT_EQ(One({{"/aaa/bbb", "Prefix"}}, "/aaa/bbb/"), "svc0");  // matches trailing slash
  EXPECT_EQ(One({{"/aaa/bbb", "Prefix"}}, "/aaa/bbb/ccc"), "svc0");  // matches subpath
  EXPECT_EQ(One({{"/aaa/bbb", "Prefix"}}, "/aaa/bbbxyz"), "404");  // not a string prefix
  EXPECT_EQ(One({{"/", "Prefix"}, {"/aaa", "Prefix"}}, "/aaa/ccc"), "svc1");
  EXPECT_EQ(One({{"/", "Prefix"}, {"/aaa", "Prefix"}, {"/aaa/bbb", "Prefix"}}, "/aaa/bbb"), "svc2");
  EXPECT_EQ(One({{"/", "Prefix"}, {"/aaa", "Prefix"}, {"/aaa/bbb", "Prefix"}}, "/ccc"), "svc0");
  EXPECT_EQ(One({{"/aaa", "Prefix"}}, "/ccc"), "404");  // the default backend, if any
  EXPECT_EQ(One({{"/foo", "Prefix"}, {"/foo", "Exact"}}, "/foo"), "svc1");  // prefers Exact
}

TEST(RouterTest, PathDetails) {
  EXPECT_EQ(One({{"/Foo", "Exact"}}, "/foo"), "404");  // case-sensitive
  EXPECT_EQ(One({{"/Foo", "Prefix"}}, "/foo/bar"), "404");
  EXPECT_EQ(One({{"/foo", "Exact"}}, "/foo?a=b/c"), "svc0");  // query ignored
  EXPECT_EQ(One({{"/foo", "Prefix"}}, "/foo?x"), "svc0");
  EXPECT_EQ(One({{"/foo", "Prefix"}}, "/foobar?/foo"), "404");
  EXPECT_EQ(One({{"/", "Prefix"}}, "*"), "404");  // not origin form
  EXPECT_EQ(One({{"/", "Prefix"}}, ""), "404");
  EXPECT_EQ(One({{"/a", "Prefix"}, {"/a/b/c", "Prefix"}}, "/a/b/cd"), "svc0");
  EXPECT_EQ(One({{"/a", "Prefix"}, {"/a/b", "Exact"}}, "/a/b/"), "svc0");
  EXPECT_EQ(One({{"/a/b", "Prefix"}, {"/a/b/", "Exact"}}, "/a/b/"), "svc1");
  EXPECT_EQ(One({{"/a/b", "Prefix"}, {"/a/b/", "Exact"}}, "/a/b"), "svc0");
  EXPECT_EQ(One({{"/", "ImplementationSpecific"}, {"/x", "ImplementationSpecific"}}, "/x/y"), "svc1");
}

TEST(RouterTest, Hosts) {
  std::vector<Ingress> ings = {Paths({{"/", "Prefix"}}, "foo.com", "a"),
                               Paths({{"/", "Prefix"}}, "*.foo.com", "b"),
                               Paths({{"/", "Prefix"}}, "bar.foo.com", "c"),
                               Paths({{"/only", "Prefix"}}, "", "d")};
  ings[1].rules[0].paths[0].backends[0].service = "wild";
  ings[2].rules[0].paths[0].backends[0].service = "bar";
  ings[3].rules[0].paths[0].backends[0].service = "any";
  Router r = Router::Build(ings);
  EXPECT_EQ(Where(r, "foo.com", "/"), "svc0");
  EXPECT_EQ(Where(r, "baz.foo.com", "/"), "wild");
  EXPECT_EQ(Where(r, "bar.foo.com", "/"), "bar");  // exact beats wildcard
  EXPECT_EQ(Where(r, "x.bar.foo.com", "/"), "404");  // one label only; no hostless "/"
  EXPECT_EQ(Where(r, "x.bar.foo.com", "/only/x"), "any");
  EXPECT_EQ(Where(r, ".foo.com", "/only"), "any");
  EXPECT_EQ(Where(r, "other.com", "/only"), "any");
  EXPECT_EQ(Where(r, "other.com", "/"), "404");
  // Host header forms: case, port, trailing dot.
  EXPECT_EQ(Where(r, "BAZ.Foo.COM:8080", "/"), "wild");
  EXPECT_EQ(Where(r, "foo.com.", "/"), "svc0");
  EXPECT_EQ(Where(r, "[::1]:80", "/only"), "any");
  EXPECT_EQ(Where(r, "", "/only"), "any");
  EXPECT_EQ(Where(r, std::string(300, 'a'), "/only"), "any");
  // The most specific host decides alone: foo.com has no /only, so no fall-through.
  EXPECT_EQ(Where(r, "foo.com", "/only"), "svc0");
}

TEST(RouterTest, MatchDoesNotAllocate) {
  std::vector<Ingress> ings = {Paths({{"/", "Prefix"}, {"/a/b", "Prefix"}, {"/a/b/c", "Exact"}}, "foo.com", "a"),
                               Paths({{"/x", "Prefix"}}, "*.foo.com", "b"),
                               Paths({{"/y", "Prefix"}}, "", "c")};
  ings[0].tls.push_back({{"foo.com"}, "cert"});
  long before = g_allocations.load();
  Router r = Router::Build(ings);
  EXPECT_GT(g_allocations.load(), before);  // the counter works
  const std::string long_host(300, 'h');
  before = g_allocations.load();
  int found = 0;
  for (int i = 0; i < 100; ++i) {
    found += r.Match("Foo.com:443", "/a/b/c?q=1") != nullptr;
    found += r.Match("foo.com", "/a/b/d/e/f/g") != nullptr;
    found += r.Match("bar.foo.com", "/x/y/z") != nullptr;
    found += r.Match("other.org", "/y") != nullptr;
    found += r.Match(long_host, "/nothing") != nullptr;
    found += r.CertificateFor("FOO.com") != nullptr;
  }
  EXPECT_EQ(g_allocations.load(), before);
  EXPECT_EQ(found, 500);
}

TEST(RouterTest, DefaultBackend) {
  Ingress ing = Parse(R"(
apiVersion: loom/v1
kind: Ingress
metadata: {name: web}
spec:
  defaultBackend: {service: {name: fallback, port: {name: http}}}
  rules:
  - host: foo.com
    http:
      paths:
      - {path: /api, pathType: Prefix, backend: {service: {name: api, port: {number: 8080}}}}
)");
  std::vector<Ingress> ings = {ing};
  Router r = Router::Build(ings);
  EXPECT_EQ(Where(r, "foo.com", "/api/v1"), "api");
  EXPECT_EQ(Where(r, "foo.com", "/web"), "fallback");
  EXPECT_EQ(Where(r, "bar.com", "/api"), "fallback");
  const Route* d = r.Match("bar.com", "/");
  ASSERT_NE(d, nullptr);
  EXPECT_TRUE(d->is_default);
  EXPECT_EQ(d->backends.front().port.name, "http");
  EXPECT_EQ(d->ingress, "default/web");
  const Route* api = r.Match("foo.com", "/api");
  EXPECT_EQ(api->path, "/api");
  EXPECT_EQ(api->host, "foo.com");
  EXPECT_EQ(api->backends.front().port.number, 8080);
}

TEST(RouterTest, ConflictsGoToTheFirstByNamespaceAndName) {
  Ingress a = Paths({{"/x", "Prefix"}}, "foo.com", "a");
  Ingress b = Paths({{"/x/", "Prefix"}, {"/x", "Exact"}}, "foo.com", "b");
  b.rules[0].paths[0].backends[0].service = "from-b";
  b.rules[0].paths[1].backends[0].service = "exact-b";
  a.default_backend = WeightedBackend{"def-a", {80, ""}, 1};
  b.default_backend = WeightedBackend{"def-b", {80, ""}, 1};
  for (auto order : {std::vector<Ingress>{a, b}, std::vector<Ingress>{b, a}}) {
    Router r = Router::Build(order);
    EXPECT_EQ(Where(r, "foo.com", "/x/y"), "svc0");
    EXPECT_EQ(Where(r, "foo.com", "/x"), "exact-b");  // not a conflict: another type
    EXPECT_EQ(Where(r, "foo.com", "/"), "def-a");
    EXPECT_THAT(r.conflicts(),
                ElementsAre("ingress default/b: host \"foo.com\" path /x/ (Prefix) is already "
                            "routed by default/a",
                            "ingress default/b: defaultBackend is already that of default/a"));
  }
}

TEST(RouterTest, CertificatesBySni) {
  Ingress ing = Parse(R"(
apiVersion: loom/v1
kind: Ingress
metadata: {name: web, namespace: shop}
spec:
  tls:
  - {hosts: [foo.com, bar.foo.com], secretName: foo-cert}
  - {hosts: ["*.foo.com"], secretName: wild-cert}
  - {secretName: fallback-cert}
  rules:
  - http:
      paths: [{path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}]
)");
  std::vector<Ingress> ings = {ing};
  Router r = Router::Build(ings);
  auto cert = [&](std::string_view sni) {
    const std::string* c = r.CertificateFor(sni);
    return c ? *c : "none";
  };
  EXPECT_EQ(cert("foo.com"), "shop/foo-cert");
  EXPECT_EQ(cert("Bar.Foo.com"), "shop/foo-cert");
  EXPECT_EQ(cert("baz.foo.com"), "shop/wild-cert");
  EXPECT_EQ(cert("a.baz.foo.com"), "shop/fallback-cert");
  EXPECT_EQ(cert(""), "shop/fallback-cert");
  EXPECT_EQ(Router().CertificateFor("foo.com"), nullptr);
  EXPECT_EQ(Router().Match("foo.com", "/"), nullptr);
}

TEST(RouterTest, WeightedBackendsSplit70To30) {
  Ingress ing = Parse(R"(
apiVersion: loom/v1
kind: Ingress
metadata: {name: canary}
spec:
  rules:
  - host: app.example.com
    http:
      paths:
      - path: /
        pathType: Prefix
        timeoutSeconds: 5
        retries: 2
        weightedBackends:
        - {service: stable, port: 80, weight: 70}
        - {service: canary, port: http, weight: 30}
        - {service: off, port: 80, weight: 0}
)");
  std::vector<Ingress> ings = {ing};
  Router r = Router::Build(ings);
  const Route* route = r.Match("app.example.com", "/checkout");
  ASSERT_NE(route, nullptr);
  EXPECT_EQ(route->timeout_seconds, 5u);
  EXPECT_EQ(route->retries, 2u);
  std::mt19937_64 rng(7);
  int stable = 0, canary = 0;
  for (int i = 0; i < 500; ++i) {
    const WeightedBackend* b = route->Pick(rng());
    ASSERT_NE(b, nullptr);
    ASSERT_NE(b->service, "off");
    (b->service == "stable" ? stable : canary)++;
  }
  EXPECT_NEAR(stable / 500.0, 0.70, 0.05);
  EXPECT_NEAR(canary / 500.0, 0.30, 0.05);
  // Boundaries: random values map to weight ranges [0,70) and [70,100).
  EXPECT_EQ(route->Pick(0)->service, "stable");
  EXPECT_EQ(route->Pick(69)->service, "stable");
  EXPECT_EQ(route->Pick(70)->service, "canary");
  EXPECT_EQ(route->Pick(99)->service, "canary");
  EXPECT_EQ(route->Pick(100)->service, "stable");
  Route zero;
  EXPECT_EQ(zero.Pick(1), nullptr);
}

TEST(IngressManifestTest, RoundTrip) {
  Ingress ing = Parse(R"(
apiVersion: loom/v1
kind: Ingress
metadata: {name: web, namespace: shop, labels: {app: web}}
spec:
  ingressClassName: loom
  defaultBackend: {service: {name: fallback, port: {number: 80}}}
  tls: [{hosts: ["*.shop.com"], secretName: shop-tls}]
  rules:
  - host: "*.shop.com"
    http:
      paths:
      - {path: /a, pathType: Exact, backend: {service: {name: a, port: {name: http}}}, timeoutSeconds: 3}
      - {path: /b, pathType: ImplementationSpecific, weightedBackends: [{service: b, port: 81, weight: 2}]}
)");
  EXPECT_EQ(ing.meta.ns, "shop");
  EXPECT_EQ(ing.ingress_class, "loom");
  ASSERT_EQ(ing.rules.size(), 1u);
  EXPECT_EQ(ing.rules[0].paths[1].type, PathType::kPrefix);
  EXPECT_TRUE(ing.rules[0].paths[1].implementation_specific);
  ASSERT_OK_AND_ASSIGN(Ingress again, IngressFromManifest(IngressToManifest(ing)));
  EXPECT_EQ(again, ing);
}

TEST(IngressManifestTest, ValidationErrorsNameTheField) {
  const std::string head = "apiVersion: loom/v1\nkind: Ingress\nmetadata: {name: web}\n";
  const std::string backend = "backend: {service: {name: web, port: {number: 80}}}";
  auto path_rule = [&](std::string path_fields) {
    return head + "spec:\n  rules:\n  - host: foo.com\n    http:\n      paths:\n      - {" +
           path_fields + "}\n";
  };
  struct Case {
    std::string yaml;
    std::string error;
  };
  std::vector<Case> cases = {
      {"apiVersion: loom/v1\nkind: Service\nmetadata: {name: web}\nspec: {}\n", "kind: \"Service\" is not Ingress"},
      {head + "spec: {}\n", "spec: needs rules or a defaultBackend"},
      {head + "spec: {bogus: 1}\n", "spec.bogus: unknown field"},
      {head + "spec:\n  rules:\n  - host: \"*.*.foo.com\"\n    http: {paths: [{path: /, pathType: Prefix, " + backend + "}]}\n",
       "spec.rules[0].host: \"*.*.foo.com\": a wildcard must be the whole first label"},
      {head + "spec:\n  rules:\n  - host: \"foo*.com\"\n    http: {paths: [{path: /, pathType: Prefix, " + backend + "}]}\n",
       "spec.rules[0].host"},
      {head + "spec:\n  rules:\n  - host: 10.0.0.1\n    http: {paths: [{path: /, pathType: Prefix, " + backend + "}]}\n",
       "spec.rules[0].host: \"10.0.0.1\": must be a DNS name"},
      {head + "spec:\n  rules:\n  - host: Foo.com\n    http: {paths: [{path: /, pathType: Prefix, " + backend + "}]}\n",
       "spec.rules[0].host"},
      {head + "spec:\n  rules:\n  - host: foo.com\n", "spec.rules[0].http: required"},
      {head + "spec:\n  rules:\n  - host: foo.com\n    http: {paths: []}\n", "spec.rules[0].http.paths: must be a non-empty list"},
      {head + "spec:\n  rules:\n  - host: a.com\n    http: {paths: [{path: /, pathType: Prefix, " + backend +
           "}]}\n  - host: a.com\n    http: {paths: [{path: /b, pathType: Prefix, " + backend + "}]}\n",
       "spec.rules[1].host: \"a.com\" has an earlier rule"},
      {path_rule("path: /, pathType: Regex, " + backend), "spec.rules[0].http.paths[0].pathType: \"Regex\" must be"},
      {path_rule("path: /, " + backend), "spec.rules[0].http.paths[0].pathType: required"},
      {path_rule("pathType: Exact, " + backend), "spec.rules[0].http.paths[0].path: required for Exact"},
      {path_rule("path: foo, pathType: Exact, " + backend), "spec.rules[0].http.paths[0].path: \"foo\" must start with /"},
      {path_rule("path: /a//b, pathType: Prefix, " + backend), "paths[0].path: \"/a//b\" must not contain //"},
      {path_rule("path: /a/../b, pathType: Prefix, " + backend), "paths[0].path"},
      {path_rule("path: \"/a?b\", pathType: Prefix, " + backend), "paths[0].path"},
      {path_rule("path: /a, pathType: Prefix"), "spec.rules[0].http.paths[0]: exactly one of backend and weightedBackends"},
      {path_rule("path: /a, pathType: Prefix, " + backend + ", weightedBackends: [{service: a, port: 80}]"),
       "exactly one of backend and weightedBackends"},
      {path_rule("path: /a, pathType: Prefix, backend: {service: {name: web}}"),
       "spec.rules[0].http.paths[0].backend.service.port: required"},
      {path_rule("path: /a, pathType: Prefix, backend: {service: {name: web, port: {number: 80, name: http}}}"),
       "backend.service.port: exactly one of number and name"},
      {path_rule("path: /a, pathType: Prefix, backend: {service: {name: web, port: {number: 0}}}"),
       "backend.service.port.number: must be 1..65535"},
      {path_rule("path: /a, pathType: Prefix, backend: {service: {name: web, port: {name: 80}}}"),
       "backend.service.port.name: must be a string"},
      {path_rule("path: /a, pathType: Prefix, backend: {service: {name: Web, port: {number: 80}}}"),
       "backend.service.name"},
      {path_rule("path: /a, pathType: Prefix, backend: {resource: {kind: Bucket}}"),
       "backend.resource: unknown field"},
      {path_rule("path: /a, pathType: Prefix, weightedBackends: [{service: a, port: 80, weight: 1000001}]"),
       "weightedBackends[0].weight: must be 0..1000000"},
      {path_rule("path: /a, pathType: Prefix, weightedBackends: [{service: a, port: 80, weight: 0}]"),
       "weightedBackends: at least one weight must be positive"},
      {path_rule("path: /a, pathType: Prefix, weightedBackends: [{service: a, port: 80}, {service: a, port: 80}]"),
       "weightedBackends[1]: service a and its port are listed twice"},
      {path_rule("path: /a, pathType: Prefix, weightedBackends: []"), "weightedBackends: must be a non-empty list"},
      {path_rule("path: /a, pathType: Prefix, weightedBackends: [{port: 80}]"), "weightedBackends[0].service"},
      {path_rule("path: /a, pathType: Prefix, timeoutSeconds: 0, " + backend), "paths[0].timeoutSeconds: must be 1..3600"},
      {path_rule("path: /a, pathType: Prefix, retries: 11, " + backend), "paths[0].retries: must be 0..10"},
      {head + "spec:\n  rules:\n  - http:\n      paths:\n      - {path: /a/, pathType: Prefix, " + backend +
           "}\n      - {path: /a, pathType: Prefix, " + backend + "}\n",
       "spec.rules[0].http.paths[1].path: \"/a\" (Prefix) is given twice"},
      {head + "spec:\n  defaultBackend: {service: {name: web, port: {number: 80}}}\n  tls: [{hosts: [foo.com]}]\n",
       "spec.tls[0].secretName"},
      {head + "spec:\n  defaultBackend: {service: {name: web, port: {number: 80}}}\n  tls: [{hosts: [\"*\"], secretName: s}]\n",
       "spec.tls[0].hosts[0]"},
      {head + "spec:\n  defaultBackend: {service: {name: web}}\n", "spec.defaultBackend.service.port: required"},
      {"apiVersion: loom/v1\nkind: Ingress\nmetadata: {name: Web}\nspec: {}\n", "metadata.name"},
  };
  for (const Case& c : cases) {
    EXPECT_THAT(ParseError(c.yaml), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(c.error)))
        << c.yaml;
  }
}

}  // namespace
}  // namespace loom::lb::ingress
