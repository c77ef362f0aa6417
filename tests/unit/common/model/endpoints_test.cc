#include "common/model/endpoints.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace loom::model {
namespace {

Pod MakePod(std::string name, std::string ns, Labels labels, std::string ip, bool ready,
            std::vector<ContainerPort> ports = {}) {
  Pod p;
  p.meta.name = std::move(name);
  p.meta.ns = std::move(ns);
  p.meta.labels = std::move(labels);
  p.ips = {std::move(ip)};
  p.ready = ready;
  p.node = "node1";
  p.ports = std::move(ports);
  return p;
}

TEST(DeriveEndpoints, SelectsByLabelsWithinTheNamespace) {
  Service svc;
  svc.meta.name = "web";
  svc.meta.ns = "shop";
  svc.selector = {{"app", "web"}};
  svc.ports = {{"http", 80, 8080, "", Protocol::kTcp, 0},
               {"metrics", 9100, 0, "metrics", Protocol::kTcp, 0}};
  Pod a = MakePod("a", "shop", {{"app", "web"}, {"v", "1"}}, "10.244.1.9", true,
                  {{"metrics", 9200, Protocol::kTcp}});
  Pod b = MakePod("b", "shop", {{"app", "web"}}, "10.244.1.3", false);
  Pod other_ns = MakePod("c", "default", {{"app", "web"}}, "10.244.1.4", true);
  Pod other_app = MakePod("d", "shop", {{"app", "db"}}, "10.244.1.5", true);
  EndpointSet set = DeriveEndpoints(svc, {&a, &b, &other_ns, &other_app});
  EXPECT_EQ(set.service, "shop/web");
  ASSERT_EQ(set.endpoints.size(), 2u);
  EXPECT_EQ(set.endpoints[0].ip, "10.244.1.3");  // sorted by address
  EXPECT_FALSE(set.endpoints[0].ready);
  EXPECT_EQ(set.endpoints[0].ports, (std::vector<uint16_t>{8080, 0}));  // no "metrics" port
  EXPECT_EQ(set.endpoints[1].pod, "shop/a");
  EXPECT_EQ(set.endpoints[1].ports, (std::vector<uint16_t>{8080, 9200}));
}

TEST(DeriveEndpoints, NoSelectorOrExternalNameMeansNone) {
  Pod a = MakePod("a", "default", {{"app", "web"}}, "10.244.1.9", true);
  Service none;
  none.meta.name = "x";
  EXPECT_TRUE(DeriveEndpoints(none, {&a}).endpoints.empty());
  Service ext;
  ext.type = ServiceType::kExternalName;
  ext.selector = {{"app", "web"}};
  EXPECT_TRUE(DeriveEndpoints(ext, {&a}).endpoints.empty());
}

}  // namespace
}  // namespace loom::model
