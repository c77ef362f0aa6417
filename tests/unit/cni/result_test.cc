#include "cni/protocol/result.h"

#include "cni/protocol/error.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"
#include "tests/unit/cni/cni_matchers.h"

namespace loom::cni {
namespace {

using ::loom::cni::testing::CniErrorIs;
using ::loom::testing::StatusIs;
using ::testing::HasSubstr;

// What Loom's ADD returns: a veth in the pod, its /32, a default route through a
// link-local gateway, and the node-local DNS.
Result PodResult() {
  Result r;
  r.interfaces = {
      {.name = "lxc1a2b", .mac = "aa:bb:cc:00:00:01"},
      {.name = "eth0", .mac = "aa:bb:cc:00:00:02", .mtu = 1450, .sandbox = "/run/netns/p1"}};
  r.ips = {{.address = "10.244.1.5/32", .gateway = "169.254.1.1", .interface = 1},
           {.address = "fd00::5/128", .interface = 1}};
  r.routes = {{.dst = "0.0.0.0/0", .gw = "169.254.1.1"},
              {.dst = "10.96.0.0/12", .mtu = 1400, .advmss = 1360, .priority = 10,
               .table = 100, .scope = 0}};
  r.dns = {.nameservers = {"169.254.20.10"},
           .domain = "cluster.local",
           .search = {"shop.svc.cluster.local", "svc.cluster.local", "cluster.local"},
           .options = {"ndots:5"}};
  return r;
}

TEST(ResultTest, Encodes110) {
  ASSERT_OK_AND_ASSIGN(Json json, EncodeResult(PodResult(), kVersion110));
  EXPECT_EQ(json, Json::parse(R"({
    "cniVersion": "1.1.0",
    "interfaces": [
      {"name": "lxc1a2b", "mac": "aa:bb:cc:00:00:01"},
      {"name": "eth0", "mac": "aa:bb:cc:00:00:02", "mtu": 1450, "sandbox": "/run/netns/p1"}],
    "ips": [
      {"address": "10.244.1.5/32", "gateway": "169.254.1.1", "interface": 1},
      {"address": "fd00::5/128", "interface": 1}],
    "routes": [
      {"dst": "0.0.0.0/0", "gw": "169.254.1.1"},
      {"dst": "10.96.0.0/12", "mtu": 1400, "advmss": 1360, "priority": 10, "table": 100,
       "scope": 0}],
    "dns": {"nameservers": ["169.254.20.10"], "domain": "cluster.local",
            "search": ["shop.svc.cluster.local", "svc.cluster.local", "cluster.local"],
            "options": ["ndots:5"]}})"));
}

TEST(ResultTest, Encodes100WithoutThe110Fields) {
  Result r = PodResult();
  r.interfaces[1].socket_path = "/run/vhost.sock";
  r.interfaces[1].pci_id = "0000:00:1f.6";
  ASSERT_OK_AND_ASSIGN(Json json, EncodeResult(r, kVersion100));
  EXPECT_EQ(json["cniVersion"], "1.0.0");
  EXPECT_EQ(json["interfaces"][1],
            Json::parse(R"({"name": "eth0", "mac": "aa:bb:cc:00:00:02", "sandbox": "/run/netns/p1"})"));
  EXPECT_EQ(json["routes"][1], Json::parse(R"({"dst": "10.96.0.0/12"})"));
  EXPECT_FALSE(json["ips"][0].contains("version"));

  ASSERT_OK_AND_ASSIGN(Json v11, EncodeResult(r, kVersion110));
  EXPECT_EQ(v11["interfaces"][1]["socketPath"], "/run/vhost.sock");
  EXPECT_EQ(v11["interfaces"][1]["pciID"], "0000:00:1f.6");
}

TEST(ResultTest, Encodes0xWithIpVersion) {
  for (const SpecVersion& v : {kVersion031, kVersion040}) {
    ASSERT_OK_AND_ASSIGN(Json json, EncodeResult(PodResult(), v));
    EXPECT_EQ(json["cniVersion"], v.ToString());
    EXPECT_EQ(json["ips"][0], Json::parse(R"({"version": "4", "address": "10.244.1.5/32",
                                               "gateway": "169.254.1.1", "interface": 1})"));
    EXPECT_EQ(json["ips"][1]["version"], "6");
    EXPECT_EQ(json["routes"][1], Json::parse(R"({"dst": "10.96.0.0/12"})"));
  }
}

TEST(ResultTest, OmitsEmptyFields) {
  Result ipam_only;
  ipam_only.ips = {{.address = "10.244.1.7/24"}};
  ASSERT_OK_AND_ASSIGN(Json json, EncodeResult(ipam_only, kVersion100));
  EXPECT_EQ(json, Json::parse(R"({"cniVersion": "1.0.0", "ips": [{"address": "10.244.1.7/24"}],
                                  "dns": {}})"));
  ASSERT_OK_AND_ASSIGN(json, EncodeResult(Result{}, kVersion040));
  EXPECT_EQ(json, Json::parse(R"({"cniVersion": "0.4.0", "dns": {}})"));
}

TEST(ResultTest, EncodeRejectsUnsupportedVersion) {
  EXPECT_THAT(EncodeResult(PodResult(), {0, 2, 0}),
              CniErrorIs(kErrIncompatibleVersion, HasSubstr("0.2.0")));
}

TEST(ResultTest, RoundTripsInEveryVersion) {
  Result r = PodResult();
  for (const SpecVersion& v : SupportedVersions()) {
    ASSERT_OK_AND_ASSIGN(Json json, EncodeResult(r, v));
    ASSERT_OK_AND_ASSIGN(Result back, DecodeResult(json));
    ASSERT_OK_AND_ASSIGN(Json again, EncodeResult(back, v));
    EXPECT_EQ(json, again) << v.ToString();
  }
  ASSERT_OK_AND_ASSIGN(Json json, EncodeResult(r, kVersion110));
  ASSERT_OK_AND_ASSIGN(Result back, DecodeResult(json));
  EXPECT_EQ(back, r);  // 1.1.0 loses nothing
}

TEST(ResultTest, ConvertsAcrossVersions) {
  ASSERT_OK_AND_ASSIGN(Json v11, EncodeResult(PodResult(), kVersion110));
  ASSERT_OK_AND_ASSIGN(Json v04, ConvertResult(v11, kVersion040));
  ASSERT_OK_AND_ASSIGN(Json v04_direct, EncodeResult(PodResult(), kVersion040));
  EXPECT_EQ(v04, v04_direct);
  // Up from 0.4.0: "version" goes, the rest stays.
  ASSERT_OK_AND_ASSIGN(Json v10, ConvertResult(v04, kVersion100));
  ASSERT_OK_AND_ASSIGN(Json v10_direct, EncodeResult(PodResult(), kVersion100));
  EXPECT_EQ(v10, v10_direct);
  ASSERT_OK_AND_ASSIGN(Json v031, ConvertResult(v10, kVersion031));
  EXPECT_EQ(v031["cniVersion"], "0.3.1");
  EXPECT_EQ(v031["ips"][1]["version"], "6");
  ASSERT_OK_AND_ASSIGN(Json v031_to_v11, ConvertResult(v031, kVersion110));
  // The 1.1.0-only fields were dropped on the way down and do not come back.
  EXPECT_EQ(v031_to_v11["routes"][1], Json::parse(R"({"dst": "10.96.0.0/12"})"));
  EXPECT_EQ(v031_to_v11["cniVersion"], "1.1.0");
}

TEST(ResultTest, DecodesTheSpecExample040) {
  Json prev = Json::parse(R"({
    "ips": [{"version": "4", "address": "10.0.0.5/32", "interface": 2}],
    "interfaces": [{"name": "cni0", "mac": "00:11:22:33:44:55"},
                   {"name": "veth3243", "mac": "55:44:33:22:11:11"},
                   {"name": "eth0", "mac": "99:88:77:66:55:44", "sandbox": "/var/run/netns/blue"}],
    "dns": {"nameservers": ["10.1.0.1"]}})");
  ASSERT_OK_AND_ASSIGN(Result r, DecodeResult(prev));
  ASSERT_EQ(r.interfaces.size(), 3u);
  EXPECT_EQ(r.interfaces[2].sandbox, "/var/run/netns/blue");
  EXPECT_EQ(r.ips[0].interface, 2);
  EXPECT_EQ(r.dns.nameservers, std::vector<std::string>{"10.1.0.1"});
}

TEST(ResultTest, DecodeErrorsNameTheField) {
  struct Case {
    const char* json;
    const char* field;
  };
  const Case cases[] = {
      {R"({"ips": [{"address": "10.0.0.5"}]})", "prevResult.ips[0].address"},
      {R"({"ips": [{"address": "10.0.0.5/33"}]})", "prevResult.ips[0].address"},
      {R"({"ips": [{"address": "nope/24"}]})", "prevResult.ips[0].address"},
      {R"({"ips": [{}]})", "prevResult.ips[0].address: required"},
      {R"({"ips": [{"address": "10.0.0.5/24", "gateway": "fd00::1"}]})", "prevResult.ips[0].gateway"},
      {R"({"ips": [{"address": "10.0.0.5/24", "gateway": "x"}]})", "prevResult.ips[0].gateway"},
      {R"({"ips": [{"address": "10.0.0.5/24", "interface": 0}]})", "prevResult.ips[0].interface"},
      {R"({"ips": [{"address": "10.0.0.5/24", "interface": -1}]})", "prevResult.ips[0].interface"},
      {R"({"ips": [{"address": "10.0.0.5/24", "version": "6"}]})", "prevResult.ips[0].version"},
      {R"({"ips": {}})", "prevResult.ips: must be a list"},
      {R"({"interfaces": [{"mac": "x"}]})", "prevResult.interfaces[0].name"},
      {R"({"interfaces": [{"name": 1}]})", "prevResult.interfaces[0].name"},
      {R"({"interfaces": [{"name": "e", "mtu": "1500"}]})", "prevResult.interfaces[0].mtu"},
      {R"({"routes": [{"gw": "10.0.0.1"}]})", "prevResult.routes[0].dst"},
      {R"({"routes": [{"dst": "0.0.0.0/0", "gw": "bad"}]})", "prevResult.routes[0].gw"},
      {R"({"routes": [{"dst": "0.0.0.0/0", "table": -1}]})", "prevResult.routes[0].table"},
      {R"({"dns": {"nameservers": ["nope"]}})", "prevResult.dns.nameservers[0]"},
      {R"({"dns": {"search": "a"}})", "prevResult.dns.search"},
      {R"({"dns": []})", "prevResult.dns: must be an object"},
      {R"({"cniVersion": 1})", "prevResult.cniVersion"},
      {R"([])", "prevResult: must be an object"},
  };
  for (const Case& c : cases) {
    EXPECT_THAT(DecodeResult(Json::parse(c.json), "prevResult"),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(c.field)))
        << c.json;
  }
}

TEST(ResultTest, DecodeRejectsUnsupportedResultVersion) {
  EXPECT_THAT(DecodeResult(Json::parse(R"({"cniVersion": "0.2.0", "ip4": {}})"), "prevResult"),
              CniErrorIs(kErrIncompatibleVersion, HasSubstr("prevResult.cniVersion")));
}

TEST(ResultTest, ResultTextEndsWithNewline) {
  ASSERT_OK_AND_ASSIGN(std::string text, ResultText(PodResult(), kVersion100));
  EXPECT_EQ(text.back(), '\n');
  EXPECT_EQ(Json::parse(text)["cniVersion"], "1.0.0");
}

}  // namespace
}  // namespace loom::cni
