// Declared Apps across a 3-node cluster (issue 9): etcd, the overlay, the eBPF load
// balancer, the ingress and Loom's container runtime on every node (Cluster with
// `runtime`), busybox images built by the test (web:v1, web:v2 and web:bad, which has
// no /www so its readiness probe never passes), everything through loomctl.
//   - an App of 6 replicas, a Service and an Ingress: the replicas spread 2 per node;
//     the name resolves from every pod; the VIP from a pod on every node and the
//     ingress of every node reach all 6 replicas;
//   - a killed container is restarted and registered ready again within 2 s;
//   - a rolling update of the image under wrk through the ingress fails no request; a
//     bad image stops the rollout by itself and `rollout undo` brings v2 back, still
//     with no failed request;
//   - every loomd restarted in turn under load (wrk through another node's ingress,
//     and requests to the VIP from pods): no container restarted, no request failed;
//   - a node's loomd and containers killed: after its lease expires its replicas come
//     back on the other nodes, and DNS, the VIP and the ingress stop sending there;
//   - `loomctl status` on any node shows every live node's component health.
// Each test builds its own cluster (about 20 s).
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/json.h"
#include "common/strings.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/cluster.h"
#include "tests/testing/dns_client.h"
#include "tests/testing/privileged.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/subprocess.h"
#include "tests/unit/runtime/busybox_image.h"
#include "tests/integration/web_images.h"

namespace loom::testing {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr int kReplicas = 6;

constexpr char kIngress[] = R"(kind: Ingress
metadata: {name: web}
spec:
  rules:
  - http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
)";

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

class AppsClusterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    LOOM_REQUIRE_ROOT();
    LOOM_REQUIRE(::access(runtime::testing::kHostBusybox, X_OK) == 0, "/bin/busybox (busybox-static)");
    LOOM_REQUIRE(RunCommand({"wrk", "--version"}).ok(), "wrk");
    ClusterOptions o;
    o.nodes = 3;
    o.lb = true;
    o.runtime = true;
    absl::StatusOr<std::unique_ptr<Cluster>> c = Cluster::Create(o);
    ASSERT_OK(c.status());
    cluster_ = *std::move(c);
    char tmpl[] = "/tmp/loom-apps-images-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    images_dir_ = tmpl;
    ASSERT_OK(ImportWebImages(images_dir_, *cluster_));
  }
  void TearDown() override {
    cluster_.reset();
    if (!images_dir_.empty()) fs::remove_all(images_dir_);
  }

  void Apply(const std::string& yaml, int node = 0) {
    std::string path = StrCat(images_dir_, "/manifest.yaml");
    std::ofstream(path) << yaml;
    CommandResult r = cluster_->Ctl(node, {"apply", "-f", path});
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  void WaitRollout(int node = 0) {
    CommandResult r = cluster_->Ctl(node, {"rollout", "status", "web", "--timeout", "120s"}, absl::Seconds(130));
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err << cluster_->LogTail(node);
  }
  // The service's ready endpoints as node `from` sees them: IP -> node.
  std::map<std::string, std::string> ReadyEndpoints(int from = 0) {
    std::map<std::string, std::string> out;
    absl::StatusOr<Json> j = ParseJson(cluster_->Ctl(from, {"get", "endpoints", "web", "-o", "json"}).out);
    if (!j.ok()) return out;
    for (const Json& e : j->value("endpoints", Json::array())) {
      if (e.value("ready", false)) out[e.value("ip", "")] = e.value("node", "");
    }
    return out;
  }
  // Waits (bounded) for `pred` over node `from`'s ready endpoints; seconds, or -1.
  double WaitEndpoints(const std::function<bool(const std::map<std::string, std::string>&)>& pred,
                       absl::Duration limit, int from = 0) {
    absl::Time start = absl::Now();
    while (absl::Now() - start < limit) {
      if (pred(ReadyEndpoints(from))) return absl::ToDoubleSeconds(absl::Now() - start);
      absl::SleepFor(absl::Milliseconds(20));
    }
    return -1;
  }
  // Node i's running web replicas (loomctl ps), by name.
  std::map<std::string, Json> Replicas(int i) {
    std::map<std::string, Json> out;
    absl::StatusOr<Json> j = ParseJson(cluster_->Ctl(i, {"ps", "-o", "json"}).out);
    if (!j.ok()) return out;
    for (const Json& c : j->value("items", Json::array())) {
      if (c.value("labels", Json::object()).value("loom.io/app", "") == "web") out[c.value("name", "")] = c;
    }
    return out;
  }
  // The hostnames of every running replica.
  std::set<std::string> Hostnames() {
    std::set<std::string> out;
    for (int i = 0; i < cluster_->size(); ++i) {
      if (!cluster_->node(i).loomd) continue;
      for (const auto& [name, c] : Replicas(i)) {
        CommandResult r = cluster_->Ctl(i, {"exec", name, "hostname"});
        if (r.exit_code == 0) out.insert(std::string(absl::StripAsciiWhitespace(r.out)));
      }
    }
    return out;
  }
  // Runs `script` (sh) in replica `name` on node i; stdout.
  std::string InReplica(int i, const std::string& name, const std::string& script) {
    CommandResult r = cluster_->Ctl(i, {"exec", name, "sh", "-c", script}, absl::Seconds(120));
    EXPECT_EQ(r.exit_code, 0) << name << ": " << script << "\nstdout: " << r.out << "\nstderr: " << r.err;
    return r.out;
  }
  // `n` requests to url from node i's namespace with curl: each answer's body, and
  // the number that failed.
  std::pair<std::multiset<std::string>, int> CurlFromNode(int i, const std::string& url, int n) {
    auto out = cluster_->ExecInNode(
        i, {"sh", "-c",
            StrCat("for i in $(seq ", n, "); do curl -sf --max-time 3 ", url, " || echo FAILED; echo; done")});
    std::multiset<std::string> answers;
    int failed = 0;
    if (!out.ok()) return {answers, n};
    for (absl::string_view line : absl::StrSplit(*out, '\n', absl::SkipEmpty())) {
      if (line == "FAILED") {
        ++failed;
      } else {
        answers.emplace(line);
      }
    }
    return {answers, failed};
  }
  // wrk through node `target`'s ingress, from node `from`'s namespace, for `seconds`.
  std::unique_ptr<Subprocess> StartWrk(int from, int target, int seconds, const std::string& log) {
    SubprocessOptions so;
    so.log_path = log;
    auto wrk = Subprocess::Start({"ip", "netns", "exec", cluster_->node(from).netns, "wrk", "-t1", "-c8",
                                  StrCat("-d", seconds, "s"), "--timeout", "5s",
                                  StrCat("http://", cluster_->node(target).underlay_ip, "/index.html")},
                                 so);
    EXPECT_OK(wrk.status());
    return wrk.ok() ? *std::move(wrk) : nullptr;
  }
  void ExpectNoFailedRequest(Subprocess* wrk, const std::string& log) {
    ASSERT_NE(wrk, nullptr);
    absl::StatusOr<int> code = wrk->Wait(absl::Seconds(180));
    ASSERT_OK(code.status());
    std::string out = ReadAll(log);
    std::printf("%s\n", out.c_str());
    EXPECT_EQ(*code, 0) << out;
    EXPECT_THAT(out, HasSubstr("requests in"));
    EXPECT_EQ(out.find("Socket errors"), std::string::npos) << out;
    EXPECT_EQ(out.find("Non-2xx"), std::string::npos) << out;
  }
  // Deploys the App (web:v1), the Services and the Ingress, and waits for the rollout.
  void Deploy() {
    ASSERT_NO_FATAL_FAILURE(Apply(WebAppYaml("web:v1", kReplicas) + "---\n" + kWebServicesYaml + std::string("---\n") + kIngress));
    ASSERT_NO_FATAL_FAILURE(WaitRollout());
    ASSERT_GE(WaitEndpoints([](const auto& eps) { return eps.size() == kReplicas; }, absl::Seconds(30)), 0);
  }
  std::string Vip() {
    absl::StatusOr<Json> j = ParseJson(cluster_->Ctl(0, {"get", "services", "web", "-o", "json"}).out);
    if (!j.ok()) return "";
    return (*j)["spec"].value("clusterIP", "");
  }

  std::unique_ptr<Cluster> cluster_;
  std::string images_dir_;
};

TEST_F(AppsClusterTest, SpreadResolvedReachedRestartedAndRolledOutWithoutAFailedRequest) {
  ASSERT_NO_FATAL_FAILURE(Deploy());
  // Spread: two replicas per node.
  std::map<std::string, int> per_node;
  for (const auto& [ip, node] : ReadyEndpoints()) ++per_node[node];
  EXPECT_EQ(per_node, (std::map<std::string, int>{{"node1", 2}, {"node2", 2}, {"node3", 2}}));
  const std::string vip = Vip();
  ASSERT_FALSE(vip.empty());
  // Every node's health, as any node shows it: every component on and ok.
  {
    absl::StatusOr<Json> status = ParseJson(cluster_->Ctl(1, {"status", "-o", "json"}).out);
    ASSERT_OK(status.status());
    const Json nodes = status->value("nodes", Json::array());
    ASSERT_EQ(nodes.size(), 3u) << status->dump();
    for (const Json& n : nodes) {
      const Json components = n.value("components", Json::object());
      EXPECT_EQ(components.size(), 6u) << n.dump();
      for (const auto& [name, c] : components.items()) EXPECT_EQ(c.value("state", ""), "ok") << n.dump();
    }
    EXPECT_THAT(cluster_->Ctl(1, {"status"}).out, HasSubstr("INGRESS"));
  }
  const std::set<std::string> hostnames = Hostnames();
  ASSERT_EQ(hostnames.size(), static_cast<size_t>(kReplicas));

  for (int i = 0; i < cluster_->size(); ++i) {
    std::map<std::string, Json> mine = Replicas(i);
    ASSERT_EQ(mine.size(), 2u) << cluster_->node(i).name;
    // The name resolves from every pod (its resolv.conf names its node's DNS), the
    // service to its VIP and the headless one to the 6 replicas.
    for (const auto& [name, c] : mine) {
      std::string out = InReplica(i, name, "nslookup -type=a web.default.svc.cluster.local && nslookup -type=a web-pods.default.svc.cluster.local");
      EXPECT_THAT(out, HasSubstr(vip)) << name << ": " << out;
      for (const auto& [ip, node] : ReadyEndpoints()) EXPECT_THAT(out, HasSubstr(ip)) << name;
    }
    // The VIP, from a pod on every node (socket LB: the pods are in Loom's cgroup),
    // reaches every replica, and the node's ingress too. (busybox nslookup tries every
    // search domain and fails on the NXDOMAINs, so it gets full names; wget resolves the
    // short name through the search domains.)
    std::string answers =
        InReplica(i, mine.begin()->first,
                  "for i in $(seq 90); do wget -qO- http://web/cgi-bin/id || echo FAILED; done");
    std::multiset<std::string> seen;
    for (absl::string_view line : absl::StrSplit(answers, '\n', absl::SkipEmpty())) seen.emplace(line);
    EXPECT_EQ(seen.count("FAILED"), 0u) << answers;
    EXPECT_EQ(std::set<std::string>(seen.begin(), seen.end()), hostnames) << "VIP from " << cluster_->node(i).name;
    auto [through_ingress, failed] =
        CurlFromNode(i, StrCat("http://", cluster_->node(i).underlay_ip, "/cgi-bin/id"), 90);
    EXPECT_EQ(failed, 0);
    EXPECT_EQ(std::set<std::string>(through_ingress.begin(), through_ingress.end()), hostnames)
        << "ingress of " << cluster_->node(i).name;
  }

  // A container killed: restarted and registered ready again within 2 s.
  {
    std::map<std::string, Json> on2 = Replicas(1);
    ASSERT_FALSE(on2.empty());
    const Json victim = on2.begin()->second;
    std::string victim_ip = victim["ips"][0].get<std::string>();
    victim_ip = victim_ip.substr(0, victim_ip.find('/'));
    ASSERT_EQ(::kill(victim["pid"].get<int>(), SIGKILL), 0);
    double back = WaitEndpoints(
        [&](const auto& eps) { return eps.size() == kReplicas && !eps.contains(victim_ip); }, absl::Seconds(30));
    ASSERT_GE(back, 0) << cluster_->LogTail(1);
    std::printf("killed replica restarted and ready in %.2f s\n", back);
    EXPECT_LT(back, 2.0);
    EXPECT_THAT(cluster_->Ctl(0, {"events", "web"}).out, HasSubstr("Exited"));
  }

  // A rolling update of the image under wrk through node2's ingress.
  std::string log = StrCat(images_dir_, "/wrk-rollout.log");
  std::unique_ptr<Subprocess> wrk = StartWrk(0, 1, 40, log);
  absl::SleepFor(absl::Seconds(1));
  ASSERT_NO_FATAL_FAILURE(Apply(WebAppYaml("web:v2", kReplicas)));
  ASSERT_NO_FATAL_FAILURE(WaitRollout());
  // A bad image: its first replica never turns ready, the rollout stops by itself.
  ASSERT_NO_FATAL_FAILURE(Apply(WebAppYaml("web:bad", kReplicas)));
  absl::SleepFor(absl::Seconds(6));
  CommandResult stuck = cluster_->Ctl(0, {"rollout", "status", "web", "--timeout", "2s"});
  EXPECT_NE(stuck.exit_code, 0);
  EXPECT_THAT(stuck.err, HasSubstr("timed out"));
  EXPECT_EQ(ReadyEndpoints().size(), static_cast<size_t>(kReplicas));
  // Undo: the v2 replicas stay, the bad one goes.
  CommandResult undo = cluster_->Ctl(0, {"rollout", "undo", "web"});
  ASSERT_EQ(undo.exit_code, 0) << undo.err;
  ASSERT_NO_FATAL_FAILURE(WaitRollout());
  ASSERT_NO_FATAL_FAILURE(ExpectNoFailedRequest(wrk.get(), log));
  auto [pages, failed] = CurlFromNode(2, StrCat("http://", cluster_->node(2).underlay_ip, "/index.html"), 30);
  EXPECT_EQ(failed, 0);
  EXPECT_EQ(pages.size(), 30u);
  for (const std::string& p : pages) EXPECT_EQ(p, "v2");
  EXPECT_THAT(cluster_->Ctl(0, {"rollout", "history", "web"}).out, HasSubstr("(current)"));
}

TEST_F(AppsClusterTest, LoomdRestartsKeepContainersAndALostNodesReplicasMove) {
  ASSERT_NO_FATAL_FAILURE(Deploy());
  const std::string vip = Vip();
  std::map<std::string, int> pids_before;
  for (int i = 0; i < cluster_->size(); ++i) {
    for (const auto& [name, c] : Replicas(i)) pids_before[name] = c.value("pid", 0);
  }
  ASSERT_EQ(pids_before.size(), static_cast<size_t>(kReplicas));

  // Every loomd restarted in turn, under wrk through the next node's ingress and
  // requests to the VIP from a pod on the node after that.
  for (int i = 0; i < cluster_->size(); ++i) {
    const int target = (i + 1) % 3, client = (i + 2) % 3;
    std::string log = StrCat(images_dir_, "/wrk-restart-", i, ".log");
    std::unique_ptr<Subprocess> wrk = StartWrk(client, target, 8, log);
    std::string vip_out;
    std::thread vip_client([&] {
      vip_out = InReplica(client, Replicas(client).begin()->first,
                          StrCat("for i in $(seq 150); do wget -qO- http://", vip, "/index.html || echo FAILED; "
                                 "usleep 40000; done"));
    });
    absl::SleepFor(absl::Seconds(1));
    ASSERT_OK(cluster_->StopLoomd(i, SIGTERM));
    ASSERT_OK(cluster_->StartLoomd(i));
    vip_client.join();
    ASSERT_NO_FATAL_FAILURE(ExpectNoFailedRequest(wrk.get(), log));
    EXPECT_EQ(vip_out.find("FAILED"), std::string::npos) << vip_out;
  }
  absl::SleepFor(absl::Seconds(2));  // time for a reconciler to (wrongly) restart something
  std::map<std::string, int> pids_after;
  for (int i = 0; i < cluster_->size(); ++i) {
    for (const auto& [name, c] : Replicas(i)) pids_after[name] = c.value("pid", 0);
  }
  EXPECT_EQ(pids_after, pids_before) << "a replica was restarted or replaced";
  EXPECT_THAT(cluster_->Ctl(0, {"events", "web"}).out, Not(HasSubstr("Exited")));
  EXPECT_EQ(ReadyEndpoints().size(), static_cast<size_t>(kReplicas));

  // node3's loomd and containers killed (the machine is gone): after its lease
  // expires (3 s), its replicas are started on node1 and node2.
  std::set<std::string> lost_ips;
  for (const auto& [ip, node] : ReadyEndpoints()) {
    if (node == "node3") lost_ips.insert(ip);
  }
  ASSERT_EQ(lost_ips.size(), 2u);
  ASSERT_OK(cluster_->StopLoomd(2, SIGKILL));
  RemoveV1CgroupTrees(cluster_->node(2).cgroup_parent);  // kills its containers
  double moved = WaitEndpoints(
      [&](const auto& eps) {
        if (eps.size() != kReplicas) return false;
        for (const auto& [ip, node] : eps) {
          if (node == "node3") return false;
        }
        return true;
      },
      absl::Seconds(60), 0);
  ASSERT_GE(moved, 0) << cluster_->LogTail(0);
  std::printf("node3 lost: its replicas ready on node1/node2 %.2f s after the kill (lease TTL 3 s)\n", moved);
  EXPECT_GE(WaitEndpoints(
                [&](const auto& eps) {
                  for (const std::string& ip : lost_ips) {
                    if (eps.contains(ip)) return false;
                  }
                  return eps.size() == kReplicas;
                },
                absl::Seconds(10), 1),
            0)
      << "node2 sees the same";

  // DNS, the VIP and the ingress of the live nodes no longer send there.
  for (int i = 0; i < 2; ++i) {
    std::map<std::string, Json> mine = Replicas(i);
    ASSERT_FALSE(mine.empty());
    std::string lookup = InReplica(i, mine.begin()->first, "nslookup -type=a web-pods.default.svc.cluster.local");
    for (const std::string& ip : lost_ips) EXPECT_THAT(lookup, Not(HasSubstr(ip))) << lookup;
    std::string answers = InReplica(
        i, mine.begin()->first,
        "for i in $(seq 60); do wget -qO- http://web/cgi-bin/id || echo FAILED; done");
    EXPECT_EQ(answers.find("FAILED"), std::string::npos) << answers;
    auto [through_ingress, failed] =
        CurlFromNode(i, StrCat("http://", cluster_->node(i).underlay_ip, "/cgi-bin/id"), 60);
    EXPECT_EQ(failed, 0);
    EXPECT_EQ(std::set<std::string>(through_ingress.begin(), through_ingress.end()).size(),
              static_cast<size_t>(kReplicas));
  }
  absl::StatusOr<Json> status = ParseJson(cluster_->Ctl(0, {"status", "-o", "json"}).out);
  ASSERT_OK(status.status());
  EXPECT_EQ(status->value("nodes", Json::array()).size(), 2u) << "node3's health went with its lease";
  CommandResult pods = cluster_->Ctl(0, {"get", "pods", "-o", "json"});
  EXPECT_THAT(pods.out, HasSubstr("\"nodeLost\": true"));
}

}  // namespace
}  // namespace loom::testing
