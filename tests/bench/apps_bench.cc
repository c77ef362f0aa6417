// Declared Apps at scale on the 3-node harness (etcd, overlay, LB, ingress, runtime):
//   1. `loomctl apply` of an App of N replicas (default 100; busybox httpd, readiness
//      probe every second) with a ClusterIP Service and a headless one: the time until
//      all N are ready in the endpoints and until the headless name resolves to all N
//      through node1's DNS (dig +tcp);
//   2. node3's loomd SIGKILLed and its containers killed: the time until its replicas
//      are ready again on node1/node2 and DNS no longer lists the lost ones (the node
//      lease TTL, 3 s here, is part of it).
// No peer is named for these figures (no Kubernetes on this machine); they are recorded
// in docs/benchmarks.md.  ctest --test-dir build -L bench -R apps -V
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/json.h"
#include "common/strings.h"
#include "tests/integration/web_images.h"
#include "tests/testing/cluster.h"

namespace {

using loom::StrCat;
using loom::testing::Cluster;

std::string LoadAvg() {
  std::ifstream in("/proc/loadavg");
  std::string a, b, c;
  in >> a >> b >> c;
  return a + " " + b + " " + c;
}

// Ready endpoints of `web` as node i sees them: IP -> node.
std::map<std::string, std::string> ReadyEndpoints(Cluster& c, int i) {
  std::map<std::string, std::string> out;
  absl::StatusOr<loom::Json> j = loom::ParseJson(c.Ctl(i, {"get", "endpoints", "web", "-o", "json"}).out);
  if (!j.ok()) return out;
  for (const loom::Json& e : j->value("endpoints", loom::Json::array())) {
    if (e.value("ready", false)) out[e.value("ip", "")] = e.value("node", "");
  }
  return out;
}

// The A records of the headless name through node i's DNS, over TCP (N answers do not
// fit in a UDP reply).
std::set<std::string> Resolve(Cluster& c, int i) {
  std::set<std::string> out;
  absl::StatusOr<std::string> r = c.ExecInNode(
      i, {"dig", "+tcp", "+short", "+time=2", "+tries=1", "@169.254.20.10", "web-pods.default.svc.cluster.local"});
  if (!r.ok()) return out;
  for (absl::string_view line : absl::StrSplit(*r, '\n', absl::SkipEmpty())) out.emplace(line);
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  const int n = argc > 1 ? std::atoi(argv[1]) : 100;
  if (geteuid() != 0) {
    std::fprintf(stderr, "bench_apps needs root (namespaces, cgroups, BPF)\n");
    return 77;
  }
  loom::testing::ClusterOptions o;
  o.nodes = 3;
  o.lb = true;
  o.runtime = true;
  absl::StatusOr<std::unique_ptr<Cluster>> created = Cluster::Create(o);
  if (!created.ok()) {
    std::fprintf(stderr, "cluster: %s\n", std::string(created.status().message()).c_str());
    return 1;
  }
  Cluster& c = **created;
  char tmpl[] = "/tmp/loom-bench-apps-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) return 1;
  const std::string dir = tmpl;
  struct Cleanup {
    std::string dir;
    ~Cleanup() { std::filesystem::remove_all(dir); }
  } cleanup{dir};
  if (absl::Status s = loom::testing::ImportWebImages(dir, c); !s.ok()) {
    std::fprintf(stderr, "%s\n", std::string(s.message()).c_str());
    return 1;
  }
  auto apply = [&](const std::string& yaml) {
    std::string path = StrCat(dir, "/manifest.yaml");
    std::ofstream(path) << yaml;
    loom::testing::CommandResult r = c.Ctl(0, {"apply", "-f", path});
    if (r.exit_code != 0) std::fprintf(stderr, "apply: %s\n", r.err.c_str());
    return r.exit_code == 0;
  };
  if (!apply(loom::testing::kWebServicesYaml)) return 1;
  std::printf("load before: %s\n", LoadAvg().c_str());

  // 1. apply -> all ready, and all resolvable.
  const absl::Duration limit = absl::Seconds(300);
  absl::Time t0 = absl::Now();
  if (!apply(loom::testing::WebAppYaml("web:v1", n))) return 1;
  double ready_s = -1, resolvable_s = -1;
  while (absl::Now() - t0 < limit && (ready_s < 0 || resolvable_s < 0)) {
    if (ready_s < 0 && ReadyEndpoints(c, 0).size() == static_cast<size_t>(n)) {
      ready_s = absl::ToDoubleSeconds(absl::Now() - t0);
    }
    if (resolvable_s < 0 && Resolve(c, 0).size() == static_cast<size_t>(n)) {
      resolvable_s = absl::ToDoubleSeconds(absl::Now() - t0);
    }
    absl::SleepFor(absl::Milliseconds(100));
  }
  std::map<std::string, int> per_node;
  std::map<std::string, std::string> eps = ReadyEndpoints(c, 0);
  for (const auto& [ip, node] : eps) ++per_node[node];
  std::printf("apply of %d replicas: all ready in %.2f s, all resolvable in %.2f s (", n, ready_s, resolvable_s);
  for (const auto& [node, count] : per_node) std::printf(" %s=%d", node.c_str(), count);
  std::printf(" )\n");
  if (ready_s < 0 || resolvable_s < 0) return 1;

  // 2. node3 lost.
  std::set<std::string> lost;
  for (const auto& [ip, node] : eps) {
    if (node == "node3") lost.insert(ip);
  }
  absl::Time t1 = absl::Now();
  if (!c.StopLoomd(2, SIGKILL).ok()) return 1;
  loom::testing::RemoveV1CgroupTrees(c.node(2).cgroup_parent);
  double gone_s = -1, back_s = -1, dns_s = -1;
  while (absl::Now() - t1 < limit && (back_s < 0 || dns_s < 0)) {
    std::map<std::string, std::string> now = ReadyEndpoints(c, 0);
    bool any_lost = false;
    for (const std::string& ip : lost) any_lost |= now.contains(ip);
    if (gone_s < 0 && !any_lost) gone_s = absl::ToDoubleSeconds(absl::Now() - t1);
    if (back_s < 0 && !any_lost && now.size() == static_cast<size_t>(n)) {
      back_s = absl::ToDoubleSeconds(absl::Now() - t1);
    }
    if (dns_s < 0 && back_s >= 0) {
      std::set<std::string> names = Resolve(c, 0);
      bool stale = false;
      for (const std::string& ip : lost) stale |= names.contains(ip);
      if (!stale && names.size() == static_cast<size_t>(n)) dns_s = absl::ToDoubleSeconds(absl::Now() - t1);
    }
    absl::SleepFor(absl::Milliseconds(100));
  }
  std::printf("node3 lost (%zu replicas, lease TTL %.0f s): out of the endpoints in %.2f s, all %d ready "
              "on node1/node2 in %.2f s, DNS right in %.2f s\n",
              lost.size(), absl::ToDoubleSeconds(o.node_lease_ttl), gone_s, n, back_s, dns_s);
  std::printf("load after: %s\n", LoadAvg().c_str());
  return back_s < 0 || dns_s < 0 ? 1 : 0;
}
