#include "common/model/objects.h"

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
kind: Service
metadata: {name: web, namespace: shop, labels: {app: web}}
spec:
  selector: {app: web}
  ports:
  - {name: http, port: 80, targetPort: 8080}
  - {name: dns, port: 53, targetPort: dns, protocol: UDP}
  sessionAffinity: ClientIP
  sessionAffinityConfig: {clientIP: {timeoutSeconds: 60}}
)";

TEST(Service, ParsesAManifest) {
  ASSERT_OK_AND_ASSIGN(Service svc, ServiceFromManifest(Yaml(kWeb)));
  EXPECT_EQ(svc.meta.name, "web");
  EXPECT_EQ(svc.meta.ns, "shop");
  EXPECT_EQ(svc.type, ServiceType::kClusterIP);
  ASSERT_EQ(svc.ports.size(), 2u);
  EXPECT_EQ(svc.ports[0].target_port, 8080);
  EXPECT_EQ(svc.ports[1].target_port_name, "dns");
  EXPECT_EQ(svc.ports[1].protocol, Protocol::kUdp);
  EXPECT_TRUE(svc.client_ip_affinity);
  EXPECT_EQ(svc.affinity_timeout_seconds, 60u);
}

TEST(Service, RoundTripsThroughItsManifest) {
  ASSERT_OK_AND_ASSIGN(Service svc, ServiceFromManifest(Yaml(kWeb)));
  svc.cluster_ip = "10.96.0.20";
  ASSERT_OK_AND_ASSIGN(Service back, ServiceFromManifest(ServiceToManifest(svc)));
  EXPECT_EQ(back, svc);
}

TEST(Service, DefaultsAndKinds) {
  ASSERT_OK_AND_ASSIGN(Service s, ServiceFromManifest(Yaml(R"(
kind: Service
metadata: {name: db}
spec: {clusterIP: None, selector: {app: db}}
)")));
  EXPECT_EQ(s.meta.ns, "default");
  EXPECT_EQ(s.type, ServiceType::kHeadless);
  ASSERT_OK_AND_ASSIGN(Service e, ServiceFromManifest(Yaml(R"(
kind: Service
metadata: {name: ext}
spec: {type: ExternalName, externalName: example.org.}
)")));
  EXPECT_EQ(e.type, ServiceType::kExternalName);
  ASSERT_OK_AND_ASSIGN(Service one, ServiceFromManifest(Yaml(R"(
kind: Service
metadata: {name: one}
spec: {selector: {app: one}, ports: [{port: 80}]}
)")));
  EXPECT_EQ(one.ports[0].target_port, 80);
  EXPECT_EQ(one.ports[0].protocol, Protocol::kTcp);
}

TEST(Service, ErrorsNameTheField) {
  struct Case {
    const char* yaml;
    const char* error;
  };
  const Case cases[] = {
      {"kind: Service\nmetadata: {name: Web}\nspec: {ports: [{port: 80}]}", "metadata.name: \"Web\""},
      {"kind: Service\nmetadata: {name: web}\nspec: {ports: [{port: 0}]}", "spec.ports[0].port: must be 1..65535"},
      {"kind: Service\nmetadata: {name: web}\nspec: {ports: [{port: 80}, {port: 81}]}",
       "spec.ports[0].name: required when"},
      {"kind: Service\nmetadata: {name: web}\nspec: {ports: [{port: 80, protocol: ICMP}]}",
       "spec.ports[0].protocol: \"ICMP\""},
      {"kind: Service\nmetadata: {name: web}\nspec: {ports: [{port: 80, prot: UDP}]}",
       "spec.ports[0].prot: unknown field"},
      {"kind: Service\nmetadata: {name: web}\nspec: {type: LoadBalancer}", "spec.type: \"LoadBalancer\""},
      {"kind: Service\nmetadata: {name: web}\nspec: {type: ExternalName}", "spec.externalName: required"},
      {"kind: Service\nmetadata: {name: web}\nspec: {}", "spec.ports: a ClusterIP service needs"},
      {"kind: Service\nmetadata: {name: web}\nspec: {clusterIP: 10.96.0.300, ports: [{port: 80}]}",
       "spec.clusterIP"},
      {"kind: Service\nmetadata: {name: web, labels: {\"a b\": x}}\nspec: {ports: [{port: 80}]}",
       "metadata.labels"},
      {"kind: Service\nmetadata: {name: web}\nspec: {ports: [{name: a, port: 80}, {name: a, port: 81}]}",
       "spec.ports[1].name: \"a\" is used twice"},
      {"kind: Service\nmetadata: {name: web}\nspec: {ports: [{port: 80, nodePort: 30080}]}",
       "spec.ports[0].nodePort: only for type NodePort"},
      {"kind: App\nmetadata: {name: web}\nspec: {}", "kind: \"App\" is not Service"},
      {"apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {}", "apiVersion"},
      {"kind: Service\nspec: {}", "metadata: required"},
  };
  for (const Case& c : cases) {
    EXPECT_THAT(ServiceFromManifest(Yaml(c.yaml)),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(c.error)))
        << c.yaml;
  }
}

TEST(Pod, RoundTripsAndValidates) {
  Pod pod;
  pod.meta.name = "web-1";
  pod.meta.ns = "shop";
  pod.meta.labels = {{"app", "web"}};
  pod.id = "abc123";
  pod.ifname = "eth0";
  pod.node = "node1";
  pod.ips = {"10.244.1.5"};
  pod.ports = {{"http", 8080, Protocol::kTcp}};
  pod.hostname = "web-1";
  pod.ready = true;
  ASSERT_OK_AND_ASSIGN(Pod back, PodFromJson(PodToJson(pod)));
  EXPECT_EQ(back, pod);

  Json bad = PodToJson(pod);
  bad["ips"] = {"10.244.1.500"};
  EXPECT_THAT(PodFromJson(bad), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("ips[0]")));
}

}  // namespace
}  // namespace loom::model
