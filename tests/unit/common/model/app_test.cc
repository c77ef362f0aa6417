// The App object: a full manifest round trip, defaults, quantities, and bad input
// naming the field.
#include "common/model/app.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/yaml_manifest.h"

namespace loom::model {
namespace {

using ::loom::testing::StatusIs;
using ::testing::HasSubstr;

Json Yaml(std::string_view text) { return testing::FirstYamlDocument(text); }

constexpr char kWeb[] = R"(
apiVersion: loom/v1
kind: App
metadata: {name: web, labels: {app: web}}
spec:
  replicas: 3
  image: busybox
  command: [httpd, -f, -p, "8080"]
  env: [{name: MODE, value: prod}]
  workingDir: /srv
  ports: [{name: http, containerPort: 8080}]
  resources: {limits: {cpu: 500m, memory: 64Mi, pids: 100}}
  readinessProbe: {httpGet: {path: /healthz, port: 8080}, periodSeconds: 1}
  livenessProbe: {tcpSocket: {port: 8080}, failureThreshold: 5}
  strategy: {type: RollingUpdate, rollingUpdate: {maxSurge: 1, maxUnavailable: "0%"}}
  configFiles: [{path: /etc/web/web.conf, content: "port=8080\n"}]
  secretFiles: [{path: /run/secrets/token, content: s3cret}]
)";

TEST(AppTest, ParsesEveryFieldAndRoundTrips) {
  ASSERT_OK_AND_ASSIGN(App app, AppFromManifest(Yaml(kWeb)));
  EXPECT_EQ(app.meta.Key(), "default/web");
  EXPECT_EQ(app.replicas, 3);
  EXPECT_EQ(app.image, "busybox");
  EXPECT_EQ(app.command.size(), 4u);
  EXPECT_EQ(app.env[0].name, "MODE");
  EXPECT_DOUBLE_EQ(app.cpus, 0.5);
  EXPECT_EQ(app.memory_bytes, 64 * 1024 * 1024);
  EXPECT_EQ(app.pids, 100);
  ASSERT_TRUE(app.readiness.has_value());
  EXPECT_EQ(app.readiness->kind, Probe::Kind::kHttpGet);
  EXPECT_EQ(app.readiness->http_path, "/healthz");
  EXPECT_EQ(app.readiness->period_seconds, 1);
  EXPECT_EQ(app.readiness->failure_threshold, 3);  // default
  EXPECT_EQ(app.liveness->kind, Probe::Kind::kTcpSocket);
  EXPECT_EQ(app.liveness->failure_threshold, 5);
  EXPECT_EQ(app.max_surge.Resolve(3, true), 1);
  EXPECT_EQ(app.max_unavailable.Resolve(3, false), 0);
  EXPECT_EQ(app.secret_files[0].mode, 0600u);
  EXPECT_EQ(app.config_files[0].mode, 0644u);
  ASSERT_OK_AND_ASSIGN(App modes, AppFromManifest(Yaml(
      "kind: App\nmetadata: {name: a}\nspec: {image: x, configFiles: [{path: /a, mode: \"0755\"}, "
      "{path: /b, mode: 420}]}\n")));
  EXPECT_EQ(modes.config_files[0].mode, 0755u);
  EXPECT_EQ(modes.config_files[1].mode, 0644u);
  EXPECT_FALSE(AppFromManifest(Yaml("kind: App\nmetadata: {name: a}\nspec: {image: x, "
                                    "configFiles: [{path: /a, mode: \"0789\"}]}\n")).ok());

  ASSERT_OK_AND_ASSIGN(App again, AppFromManifest(AppToManifest(app, true)));
  EXPECT_EQ(again, app);
  // Secrets are hidden unless asked for.
  Json shown = AppToManifest(app);
  EXPECT_EQ(shown["spec"]["secretFiles"][0]["content"], "<hidden>");
  EXPECT_THAT(shown.dump(), ::testing::Not(HasSubstr("s3cret")));
}

TEST(AppTest, DefaultsAreKubernetes) {
  ASSERT_OK_AND_ASSIGN(App app, AppFromManifest(Yaml("kind: App\nmetadata: {name: a}\nspec: {image: x}\n")));
  EXPECT_EQ(app.replicas, 1);
  EXPECT_EQ(app.max_surge.Resolve(4, true), 1);       // 25% rounded up
  EXPECT_EQ(app.max_unavailable.Resolve(4, false), 1);  // 25% rounded down
  EXPECT_EQ(app.max_unavailable.Resolve(3, false), 0);
  EXPECT_FALSE(app.readiness.has_value());
}

TEST(AppTest, TemplateHashFollowsWhatMakesAReplica) {
  ASSERT_OK_AND_ASSIGN(App app, AppFromManifest(Yaml(kWeb)));
  std::string h = AppTemplateHash(app);
  EXPECT_EQ(h.size(), 16u);
  App scaled = app;
  scaled.replicas = 10;
  scaled.max_surge = {3, false};
  EXPECT_EQ(AppTemplateHash(scaled), h);
  App new_image = app;
  new_image.image = "busybox:2";
  EXPECT_NE(AppTemplateHash(new_image), h);
  App new_secret = app;
  new_secret.secret_files[0].content = "other";
  EXPECT_NE(AppTemplateHash(new_secret), h);
}

TEST(AppTest, Quantities) {
  EXPECT_DOUBLE_EQ(*ParseCpuQuantity(Json("250m"), "c"), 0.25);
  EXPECT_DOUBLE_EQ(*ParseCpuQuantity(Json(2), "c"), 2);
  EXPECT_DOUBLE_EQ(*ParseCpuQuantity(Json("1.5"), "c"), 1.5);
  EXPECT_EQ(*ParseMemoryQuantity(Json("1Gi"), "m"), 1073741824);
  EXPECT_EQ(*ParseMemoryQuantity(Json("1G"), "m"), 1000000000);
  EXPECT_EQ(*ParseMemoryQuantity(Json("512k"), "m"), 512000);
  EXPECT_EQ(*ParseMemoryQuantity(Json(4096), "m"), 4096);
  EXPECT_THAT(ParseCpuQuantity(Json("lots"), "spec.cpu").status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("spec.cpu")));
  EXPECT_FALSE(ParseCpuQuantity(Json("-1"), "c").ok());
  EXPECT_FALSE(ParseMemoryQuantity(Json("64MB"), "m").ok());
  EXPECT_FALSE(ParseMemoryQuantity(Json(0), "m").ok());
}

TEST(AppTest, BadInputNamesTheField) {
  struct Case {
    const char* yaml;
    const char* field;
  } cases[] = {
      {"kind: App\nmetadata: {name: a}\nspec: {}\n", "spec.image"},
      {"kind: App\nmetadata: {name: A_b}\nspec: {image: x}\n", "metadata.name"},
      {"kind: App\nmetadata: {name: a}\nspec: {image: x, replicas: -1}\n", "spec.replicas"},
      {"kind: App\nmetadata: {name: a}\nspec: {image: x, replica: 2}\n", "spec"},
      {"kind: App\nmetadata: {name: a}\nspec: {image: x, env: [{name: 'A=B'}]}\n", "spec.env[0].name"},
      {"kind: App\nmetadata: {name: a}\nspec: {image: x, env: [{name: A}, {name: A}]}\n", "spec.env[1].name"},
      {"kind: App\nmetadata: {name: a}\nspec: {image: x, ports: [{containerPort: 0}]}\n", "spec.ports[0].containerPort"},
      {"kind: App\nmetadata: {name: a}\nspec: {image: x, ports: [{containerPort: 80}, {containerPort: 80}]}\n", "spec.ports[1].containerPort"},
      {"kind: App\nmetadata: {name: a}\nspec: {image: x, resources: {limits: {memory: 12XB}}}\n", "spec.resources.limits.memory"},
      {"kind: App\nmetadata: {name: a}\nspec: {image: x, resources: {limits: {gpu: 1}}}\n", "spec.resources.limits"},
      {"kind: App\nmetadata: {name: a}\nspec: {image: x, readinessProbe: {periodSeconds: 1}}\n", "spec.readinessProbe"},
      {"kind: App\nmetadata: {name: a}\nspec: {image: x, readinessProbe: {httpGet: {port: 80}, tcpSocket: {port: 80}}}\n", "spec.readinessProbe"},
      {"kind: App\nmetadata: {name: a}\nspec: {image: x, livenessProbe: {httpGet: {path: x, port: 80}}}\n", "spec.livenessProbe.httpGet.path"},
      {"kind: App\nmetadata: {name: a}\nspec: {image: x, livenessProbe: {exec: {command: []}}}\n", "spec.livenessProbe.exec.command"},
      {"kind: App\nmetadata: {name: a}\nspec: {image: x, livenessProbe: {tcpSocket: {port: 1}, periodSeconds: 0}}\n", "spec.livenessProbe.periodSeconds"},
      {"kind: App\nmetadata: {name: a}\nspec: {image: x, strategy: {type: Recreate}}\n", "spec.strategy.type"},
      {"kind: App\nmetadata: {name: a}\nspec: {image: x, strategy: {rollingUpdate: {maxSurge: 150%}}}\n", "spec.strategy.rollingUpdate.maxSurge"},
      {"kind: App\nmetadata: {name: a}\nspec: {image: x, strategy: {rollingUpdate: {maxSurge: 0, maxUnavailable: 0}}}\n", "spec.strategy.rollingUpdate"},
      {"kind: App\nmetadata: {name: a}\nspec: {image: x, configFiles: [{path: etc/x}]}\n", "spec.configFiles[0].path"},
      {"kind: App\nmetadata: {name: a}\nspec: {image: x, configFiles: [{path: /a/../../etc/passwd}]}\n", "spec.configFiles[0].path"},
      {"kind: App\nmetadata: {name: a}\nspec: {image: x, configFiles: [{path: /x}], secretFiles: [{path: /x}]}\n", "spec.secretFiles[0].path"},
      {"kind: App\nmetadata: {name: a}\nspec: {image: x, workingDir: srv}\n", "spec.workingDir"},
      {"kind: Service\nmetadata: {name: a}\nspec: {image: x}\n", "kind"},
  };
  for (const Case& c : cases) {
    auto app = AppFromManifest(Yaml(c.yaml));
    ASSERT_FALSE(app.ok()) << c.yaml;
    EXPECT_THAT(std::string(app.status().message()), HasSubstr(c.field)) << c.yaml;
  }
}

}  // namespace
}  // namespace loom::model
