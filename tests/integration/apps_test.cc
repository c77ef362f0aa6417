// Declared Apps end to end on one node (RuntimeNode: loomd with the container runtime,
// the `loom` CNI plugin, the busybox image): `loomctl apply` of an App of busybox
// httpd replicas behind a Service, then readiness gating, a killed replica coming
// back, a rolling update, a bad update that stops by itself and `rollout undo`, scale
// and delete, all through the real binaries.
#include <signal.h>
#include <unistd.h>

#include <fstream>
#include <set>

#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/json.h"
#include "common/strings.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/runtime_node.h"
#include "tests/testing/dns_client.h"
#include "tests/testing/privileged.h"
#include "tests/testing/status_matchers.h"
#include "tests/unit/runtime/busybox_image.h"

namespace loom {
namespace {

using ::testing::HasSubstr;

std::string AppYaml(const std::string& page, const std::string& probe_path = "/index.html",
                    int replicas = 3) {
  return StrCat(R"(kind: App
metadata: {name: web, labels: {app: web}}
spec:
  replicas: )", replicas, R"(
  image: busybox
  command: [/bin/sh, -c, "trap 'exit 0' TERM; /bin/busybox httpd -f -p 8080 -h /www & wait"]
  ports: [{name: http, containerPort: 8080}]
  readinessProbe: {httpGet: {path: )", probe_path, R"(, port: 8080}, periodSeconds: 1}
  strategy: {rollingUpdate: {maxSurge: 1, maxUnavailable: 0}}
  configFiles: [{path: /www/index.html, content: ")", page, R"(\n"}]
  secretFiles: [{path: /run/secrets/token, content: s3cret}]
)");
}

constexpr char kService[] = R"(kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: 8080}]
)";

class AppsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    LOOM_REQUIRE_ROOT();
    LOOM_REQUIRE(::access(runtime::testing::kHostBusybox, X_OK) == 0, "/bin/busybox (busybox-static)");
    absl::StatusOr<std::unique_ptr<testing::RuntimeNode>> rt = testing::RuntimeNode::Create("loom");
    ASSERT_OK(rt.status());
    rt_ = *std::move(rt);
  }
  void TearDown() override { rt_.reset(); }

  testing::CommandResult Ctl(std::vector<std::string> args, absl::Duration timeout = absl::Seconds(90)) {
    return rt_->Ctl(std::move(args), timeout);
  }
  void Apply(const std::string& yaml) {
    std::string path = StrCat(rt_->node().dir(), "/manifest.yaml");
    std::ofstream(path) << yaml;
    testing::CommandResult r = Ctl({"apply", "-f", path});
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  // The ready endpoints of the service: address -> pod name.
  std::map<std::string, std::string> ReadyEndpoints() {
    std::map<std::string, std::string> out;
    testing::CommandResult r = Ctl({"get", "endpoints", "web", "-o", "json"});
    absl::StatusOr<Json> j = ParseJson(r.out);
    if (!j.ok()) return out;
    for (const Json& e : j->value("endpoints", Json::array())) {
      if (e.value("ready", false)) out[e.value("ip", "")] = e.value("pod", "");
    }
    return out;
  }
  // The app's containers as loomctl ps shows them.
  std::vector<Json> Replicas() {
    std::vector<Json> out;
    absl::StatusOr<Json> j = ParseJson(Ctl({"ps", "-a", "-o", "json"}).out);
    if (!j.ok()) return out;
    for (const Json& c : j->value("items", Json::array())) {
      if (c.value("labels", Json::object()).value("loom.io/app", "") == "web") out.push_back(c);
    }
    return out;
  }
  std::string Get(const std::string& ip) {
    auto r = rt_->node().Exec({"curl", "-s", "--max-time", "2", StrCat("http://", ip, ":8080/")});
    return r.ok() ? *r : "";
  }
  // Waits (bounded) for `pred` over the ready endpoints; the seconds it took, or -1.
  double WaitEndpoints(const std::function<bool(const std::map<std::string, std::string>&)>& pred,
                       absl::Duration limit = absl::Seconds(60)) {
    absl::Time start = absl::Now();
    while (absl::Now() - start < limit) {
      if (pred(ReadyEndpoints())) return absl::ToDoubleSeconds(absl::Now() - start);
      absl::SleepFor(absl::Milliseconds(50));
    }
    return -1;
  }
  bool AllServe(const std::string& page) {
    std::map<std::string, std::string> eps = ReadyEndpoints();
    if (eps.empty()) return false;
    for (const auto& [ip, pod] : eps) {
      if (Get(ip) != page + "\n") return false;
    }
    return true;
  }

  std::unique_ptr<testing::RuntimeNode> rt_;
};

TEST_F(AppsTest, ReplicasTurnReadyComeBackRollOutStopOnABadUpdateAndRollBack) {
  Apply(AppYaml("v1") + "---\n" + kService);
  testing::CommandResult status = Ctl({"rollout", "status", "web", "--timeout", "60s"});
  ASSERT_EQ(status.exit_code, 0) << status.out << status.err << rt_->node().LogTail();
  ASSERT_EQ(Replicas().size(), 3u);
  ASSERT_EQ(ReadyEndpoints().size(), 3u);
  EXPECT_TRUE(AllServe("v1"));
  // Config and secret files are there, the secret with mode 0600.
  std::string name = Replicas()[0].value("name", "");
  testing::CommandResult perms = Ctl({"exec", name, "stat", "-c", "%a", "/run/secrets/token"});
  EXPECT_EQ(perms.out, "600\n") << perms.err;
  EXPECT_EQ(Ctl({"exec", name, "cat", "/run/secrets/token"}).out, "s3cret");
  // `get` hides secrets unless asked.
  EXPECT_THAT(Ctl({"get", "apps", "web", "-o", "json"}).out, Not(HasSubstr("s3cret")));
  EXPECT_THAT(Ctl({"get", "apps", "web", "-o", "json", "--show-secrets"}).out, HasSubstr("s3cret"));
  EXPECT_THAT(Ctl({"get", "apps"}).out, HasSubstr("3/3"));
  testing::CommandResult described = Ctl({"describe", "web"});
  EXPECT_EQ(described.exit_code, 0) << "[" << described.err << "]";
  EXPECT_THAT(described.out, HasSubstr("3 updated and ready"));
  EXPECT_THAT(described.out, HasSubstr("http-get :8080/index.html"));
  EXPECT_THAT(described.out, HasSubstr("Started")) << described.out;
  // The service name resolves from the node through its DNS.
  {
    testing::DnsClient dns(rt_->node().netns().substr(rt_->node().netns().rfind('/') + 1), "169.254.20.10");
    EXPECT_EQ(dns.A("web.default.svc.cluster.local").size(), 1u);
  }

  // A replica killed: a new one is ready again, and the dead one no longer listed.
  Json victim = Replicas()[0];
  ASSERT_TRUE(victim.contains("pid"));
  std::string victim_ip = victim["ips"][0].get<std::string>();
  victim_ip = victim_ip.substr(0, victim_ip.find('/'));
  ASSERT_EQ(::kill(victim["pid"].get<int>(), SIGKILL), 0);
  double back = WaitEndpoints([&](const auto& eps) { return eps.size() == 3 && !eps.contains(victim_ip); },
                              absl::Seconds(30));
  ASSERT_GE(back, 0) << rt_->node().LogTail();
  std::printf("killed replica replaced and ready in %.2f s\n", back);
  EXPECT_LT(back, 5);
  EXPECT_THAT(Ctl({"events", "web"}).out, HasSubstr("Exited"));

  // A rolling update (new page): never fewer than 3 ready, then all serve v2.
  Apply(AppYaml("v2"));
  int min_ready = 3;
  absl::Time deadline = absl::Now() + absl::Seconds(60);
  while (absl::Now() < deadline && !AllServe("v2")) {
    min_ready = std::min<int>(min_ready, ReadyEndpoints().size());
    absl::SleepFor(absl::Milliseconds(50));
  }
  EXPECT_EQ(Ctl({"rollout", "status", "web", "--timeout", "60s"}).exit_code, 0);
  EXPECT_TRUE(AllServe("v2"));
  EXPECT_GE(min_ready, 3) << "a ready replica went away before its replacement was ready";

  // A bad update (the readiness probe never passes): one new replica, never ready;
  // the rollout stops there and the old replicas keep serving.
  Apply(AppYaml("v3", "/nosuch.html"));
  absl::SleepFor(absl::Seconds(5));
  EXPECT_EQ(ReadyEndpoints().size(), 3u);
  EXPECT_TRUE(AllServe("v2"));
  EXPECT_EQ(Replicas().size(), 4u);
  testing::CommandResult stuck = Ctl({"rollout", "status", "web", "--timeout", "2s"});
  EXPECT_NE(stuck.exit_code, 0);
  EXPECT_THAT(stuck.err, HasSubstr("timed out"));
  testing::CommandResult undo = Ctl({"rollout", "undo", "web"});
  ASSERT_EQ(undo.exit_code, 0) << undo.err;
  EXPECT_EQ(Ctl({"rollout", "status", "web", "--timeout", "60s"}).exit_code, 0);
  EXPECT_GE(WaitEndpoints([](const auto& eps) { return eps.size() == 3; }, absl::Seconds(20)), 0);
  EXPECT_TRUE(AllServe("v2"));
  EXPECT_EQ(Replicas().size(), 3u);
  EXPECT_THAT(Ctl({"rollout", "history", "web"}).out, HasSubstr("(current)"));

  // Scale down, then delete: the replicas go, and with them their pods.
  ASSERT_EQ(Ctl({"scale", "web", "--replicas", "1"}).exit_code, 0);
  EXPECT_GE(WaitEndpoints([](const auto& eps) { return eps.size() == 1; }, absl::Seconds(30)), 0);
  ASSERT_EQ(Ctl({"delete", "app", "web"}).exit_code, 0);
  deadline = absl::Now() + absl::Seconds(30);
  while (absl::Now() < deadline && !Replicas().empty()) absl::SleepFor(absl::Milliseconds(100));
  EXPECT_TRUE(Replicas().empty());
  EXPECT_TRUE(ReadyEndpoints().empty());
  EXPECT_THAT(Ctl({"get", "pods", "-o", "json"}).out, Not(HasSubstr("loom.io/app")));
}

TEST_F(AppsTest, BadManifestsNameTheFieldAndNothingStarts) {
  std::string path = StrCat(rt_->node().dir(), "/bad.yaml");
  std::ofstream(path) << "kind: App\nmetadata: {name: web}\nspec: {image: busybox, replicas: 2, "
                         "readinessProbe: {httpGet: {port: 0}}}\n";
  testing::CommandResult r = Ctl({"apply", "-f", path});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.err, HasSubstr("spec.readinessProbe.httpGet.port"));
  EXPECT_THAT(Ctl({"scale", "nosuch", "--replicas", "2"}).err, HasSubstr("not found"));
  absl::SleepFor(absl::Milliseconds(500));
  EXPECT_TRUE(Replicas().empty());
}

}  // namespace
}  // namespace loom
