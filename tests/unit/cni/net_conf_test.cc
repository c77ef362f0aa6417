#include "cni/protocol/net_conf.h"

#include "cni/protocol/error.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"
#include "tests/unit/cni/cni_matchers.h"

namespace loom::cni {
namespace {

using ::loom::cni::testing::CniErrorIs;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;

// The smallest valid config, with `patch` merged over it (null deletes a key).
std::string Conf(const char* patch = "{}") {
  Json conf = Json::parse(R"({"cniVersion": "1.1.0", "name": "loom", "type": "loom"})");
  conf.merge_patch(Json::parse(patch));
  return conf.dump();
}

TEST(NetConfTest, Minimal) {
  ASSERT_OK_AND_ASSIGN(NetConf conf, ParseNetConf(Conf()));
  EXPECT_EQ(conf.cni_version, "1.1.0");
  EXPECT_EQ(conf.version, kVersion110);
  EXPECT_EQ(conf.name, "loom");
  EXPECT_EQ(conf.type, "loom");
  EXPECT_EQ(conf.socket, "/run/loom/loomd.sock");
  EXPECT_FALSE(conf.mtu.has_value());
  EXPECT_FALSE(conf.ipam.has_value());
  EXPECT_TRUE(conf.labels.empty());
  EXPECT_FALSE(conf.prev_result.has_value());
  EXPECT_FALSE(conf.valid_attachments.has_value());
  EXPECT_EQ(conf.raw["name"], "loom");
}

TEST(NetConfTest, EverySupportedVersion) {
  for (const char* v : {"0.3.1", "0.4.0", "1.0.0", "1.1.0"}) {
    ASSERT_OK_AND_ASSIGN(NetConf conf, ParseNetConf(Conf((R"({"cniVersion": ")" +
                                                          std::string(v) + "\"}").c_str())));
    EXPECT_EQ(conf.cni_version, v);
  }
}

TEST(NetConfTest, FullConfig) {
  ASSERT_OK_AND_ASSIGN(NetConf conf, ParseNetConf(Conf(R"({
    "socket": "/tmp/loom-test/loomd.sock",
    "mtu": 1450,
    "ipam": {"type": "host-local", "subnet": "10.244.1.0/24"},
    "args": {"labels": {"app": "web", "example.com/tier": "front"}, "cni": {"ips": []}},
    "capabilities": {"portMappings": true, "bandwidth": false},
    "runtimeConfig": {
      "portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"},
                       {"hostPort": 53, "containerPort": 53, "protocol": "udp", "hostIP": "127.0.0.1"}],
      "bandwidth": {"ingressRate": 1000000, "ingressBurst": 2000, "egressRate": 5, "egressBurst": 6},
      "ips": ["10.244.1.9/24", "fd00::9"],
      "mac": "aa:bb:cc:dd:ee:ff",
      "dns": {"nameservers": ["169.254.20.10"], "search": ["svc.cluster.local"]},
      "aliases": ["web", "web.shop"],
      "cgroupPath": "/kubepods/pod1",
      "io.kubernetes.cri.pod-annotations": {"a": "b"}
    },
    "prevResult": {"cniVersion": "1.1.0", "ips": [{"address": "10.244.1.9/24"}]},
    "cni.dev/valid-attachments": [{"containerID": "c1", "ifname": "eth0"}],
    "someOtherPluginKey": {"anything": [1, 2, 3]}
  })")));
  EXPECT_EQ(conf.socket, "/tmp/loom-test/loomd.sock");
  EXPECT_EQ(conf.mtu, 1450);
  EXPECT_EQ(conf.ipam_type, "host-local");
  EXPECT_EQ((*conf.ipam)["subnet"], "10.244.1.0/24");
  EXPECT_THAT(conf.labels, ElementsAre(Pair("app", "web"), Pair("example.com/tier", "front")));
  EXPECT_TRUE(conf.args.contains("cni"));
  EXPECT_EQ(conf.capabilities["portMappings"], true);
  const RuntimeConfig& rc = conf.runtime_config;
  ASSERT_EQ(rc.port_mappings.size(), 2u);
  EXPECT_EQ(rc.port_mappings[0], (PortMapping{8080, 80, "tcp", ""}));
  EXPECT_EQ(rc.port_mappings[1], (PortMapping{53, 53, "udp", "127.0.0.1"}));
  EXPECT_EQ(rc.bandwidth, (Bandwidth{1000000, 2000, 5, 6}));
  EXPECT_THAT(rc.ips, ElementsAre("10.244.1.9/24", "fd00::9"));
  EXPECT_EQ(rc.mac, "aa:bb:cc:dd:ee:ff");
  ASSERT_TRUE(rc.dns.has_value());
  EXPECT_THAT(rc.dns->nameservers, ElementsAre("169.254.20.10"));
  EXPECT_THAT(rc.aliases, ElementsAre("web", "web.shop"));
  EXPECT_EQ(rc.cgroup_path, "/kubepods/pod1");
  EXPECT_EQ(rc.other, Json::parse(R"({"io.kubernetes.cri.pod-annotations": {"a": "b"}})"));
  ASSERT_TRUE(conf.prev_result.has_value());
  EXPECT_EQ(conf.prev_result->ips[0].address, "10.244.1.9/24");
  ASSERT_TRUE(conf.valid_attachments.has_value());
  EXPECT_THAT(*conf.valid_attachments, ElementsAre(Attachment{"c1", "eth0"}));
  EXPECT_TRUE(conf.raw.contains("someOtherPluginKey"));
}

TEST(NetConfTest, OlderAttachmentsKey) {
  ASSERT_OK_AND_ASSIGN(NetConf conf, ParseNetConf(Conf(
      R"({"cni.dev/attachments": [{"containerID": "c2", "ifname": "net1"}]})")));
  EXPECT_THAT(*conf.valid_attachments, ElementsAre(Attachment{"c2", "net1"}));
  // The newer key wins when both are sent, as libcni does.
  ASSERT_OK_AND_ASSIGN(conf, ParseNetConf(Conf(
      R"({"cni.dev/attachments": [{"containerID": "old", "ifname": "eth0"}],
          "cni.dev/valid-attachments": []})")));
  EXPECT_TRUE(conf.valid_attachments->empty());
}

TEST(NetConfTest, PrevResultInAnOlderShape) {
  ASSERT_OK_AND_ASSIGN(NetConf conf, ParseNetConf(Conf(R"({"cniVersion": "0.4.0",
      "prevResult": {"cniVersion": "0.4.0",
                     "ips": [{"version": "4", "address": "10.0.0.5/32", "interface": 0}],
                     "interfaces": [{"name": "eth0", "sandbox": "/run/netns/x"}]}})")));
  EXPECT_EQ(conf.prev_result->ips[0].interface, 0);
}

TEST(NetConfTest, BadJsonIsCode6WithTheParsersMessage) {
  EXPECT_THAT(ParseNetConf("{\"cniVersion\": "),
              CniErrorIs(kErrDecode, AllOf(HasSubstr("cannot decode network configuration"),
                                           HasSubstr("parse error"))));
  EXPECT_THAT(ParseNetConf(""), CniErrorIs(kErrDecode, HasSubstr("parse error")));
  EXPECT_THAT(ParseNetConf("[1, 2]"), CniErrorIs(kErrDecode, HasSubstr("array is not a JSON object")));
  EXPECT_THAT(ParseNetConf("\"x\""), CniErrorIs(kErrDecode, HasSubstr("not a JSON object")));
}

TEST(NetConfTest, VersionIsCode1) {
  EXPECT_THAT(ParseNetConf(Conf(R"({"cniVersion": "0.3.0"})")),
              CniErrorIs(kErrIncompatibleVersion, HasSubstr("cniVersion \"0.3.0\"")));
  EXPECT_THAT(ParseNetConf(Conf(R"({"cniVersion": "2.0.0"})")),
              CniErrorIs(kErrIncompatibleVersion, HasSubstr("cniVersion")));
  EXPECT_THAT(ParseNetConf(Conf(R"({"cniVersion": null})")),
              CniErrorIs(kErrIncompatibleVersion, HasSubstr("cniVersion")));
  // The version is checked before the other fields.
  EXPECT_THAT(ParseNetConf(R"({"cniVersion": "0.1.0", "mtu": "x"})"),
              CniErrorIs(kErrIncompatibleVersion, HasSubstr("cniVersion")));
}

TEST(NetConfTest, InvalidFieldsAreCode7NamingTheField) {
  struct Case {
    const char* patch;
    const char* field;
  };
  const Case cases[] = {
      {R"({"name": null})", "name: required"},
      {R"({"name": 5})", "name: must be a string"},
      {R"({"name": ""})", "name: \"\""},
      {R"({"name": "-net"})", "name: \"-net\""},
      {R"({"name": "my net"})", "name: \"my net\""},
      {R"({"type": null})", "type: required"},
      {R"({"type": "../loom"})", "type: \"../loom\""},
      {R"({"socket": 1})", "socket: must be a string"},
      {R"({"socket": "loomd.sock"})", "socket: \"loomd.sock\" must be an absolute path"},
      {R"({"mtu": "1500"})", "mtu: must be an integer"},
      {R"({"mtu": 1500.5})", "mtu: must be an integer"},
      {R"({"mtu": 67})", "mtu: must be between 68 and 65535"},
      {R"({"mtu": 65536})", "mtu: must be between 68 and 65535"},
      {R"({"mtu": 18446744073709551615})", "mtu: must be between"},
      {R"({"ipam": "host-local"})", "ipam: must be an object"},
      {R"({"ipam": {}})", "ipam.type: required"},
      {R"({"ipam": {"type": ""}})", "ipam.type: \"\""},
      {R"({"ipam": {"type": "/bin/sh"}})", "ipam.type: \"/bin/sh\""},
      {R"({"args": []})", "args: must be an object"},
      {R"({"args": {"labels": ["a"]}})", "args.labels: must be an object"},
      {R"({"args": {"labels": {"app": 1}}})", "args.labels.app: must be a string"},
      {R"({"args": {"labels": {"-app": "web"}}})", "args.labels: \"-app\" is not a valid label key"},
      {R"({"args": {"labels": {"app": "we b"}}})", "args.labels.app: \"we b\" is not a valid label value"},
      {R"({"capabilities": []})", "capabilities: must be an object"},
      {R"({"capabilities": {"portMappings": "yes"}})", "capabilities.portMappings"},
      {R"({"runtimeConfig": 1})", "runtimeConfig: must be an object"},
      {R"({"runtimeConfig": {"portMappings": {}}})", "runtimeConfig.portMappings: must be a list"},
      {R"({"runtimeConfig": {"portMappings": [1]}})", "runtimeConfig.portMappings[0]: must be an object"},
      {R"({"runtimeConfig": {"portMappings": [{"containerPort": 80}]}})",
       "runtimeConfig.portMappings[0].hostPort: required"},
      {R"({"runtimeConfig": {"portMappings": [{"hostPort": 80}]}})",
       "runtimeConfig.portMappings[0].containerPort: required"},
      {R"({"runtimeConfig": {"portMappings": [{"hostPort": 0, "containerPort": 80}]}})",
       "runtimeConfig.portMappings[0].hostPort: must be between 1 and 65535"},
      {R"({"runtimeConfig": {"portMappings": [{"hostPort": 80, "containerPort": 70000}]}})",
       "runtimeConfig.portMappings[0].containerPort"},
      {R"({"runtimeConfig": {"portMappings": [{"hostPort": 80, "containerPort": 80, "protocol": 6}]}})",
       "runtimeConfig.portMappings[0].protocol"},
      {R"({"runtimeConfig": {"portMappings": [{"hostPort": 80, "containerPort": 80, "hostIP": "x"}]}})",
       "runtimeConfig.portMappings[0].hostIP"},
      {R"({"runtimeConfig": {"bandwidth": {"ingressRate": -1}}})", "runtimeConfig.bandwidth.ingressRate"},
      {R"({"runtimeConfig": {"bandwidth": {"egressBurst": "1"}}})", "runtimeConfig.bandwidth.egressBurst"},
      {R"({"runtimeConfig": {"bandwidth": 1}})", "runtimeConfig.bandwidth: must be an object"},
      {R"({"runtimeConfig": {"ips": "10.0.0.1"}})", "runtimeConfig.ips: must be a list"},
      {R"({"runtimeConfig": {"ips": ["10.0.0.1/40"]}})", "runtimeConfig.ips[0]"},
      {R"({"runtimeConfig": {"ips": ["nope"]}})", "runtimeConfig.ips[0]"},
      {R"({"runtimeConfig": {"mac": 1}})", "runtimeConfig.mac: must be a string"},
      {R"({"runtimeConfig": {"dns": {"nameservers": [1]}}})", "runtimeConfig.dns.nameservers[0]"},
      {R"({"runtimeConfig": {"aliases": [1]}})", "runtimeConfig.aliases[0]"},
      {R"({"runtimeConfig": {"cgroupPath": []}})", "runtimeConfig.cgroupPath: must be a string"},
      {R"({"prevResult": []})", "prevResult: must be an object"},
      {R"({"prevResult": {"ips": [{"address": "10.0.0.1"}]}})", "prevResult.ips[0].address"},
      {R"({"cni.dev/valid-attachments": {}})", "cni.dev/valid-attachments: must be a list"},
      {R"({"cni.dev/valid-attachments": [{"ifname": "eth0"}]})",
       "cni.dev/valid-attachments[0].containerID: required"},
      {R"({"cni.dev/valid-attachments": [{"containerID": "c"}]})",
       "cni.dev/valid-attachments[0].ifname: required"},
      {R"({"cni.dev/attachments": [1]})", "cni.dev/attachments[0]: must be an object"},
  };
  for (const Case& c : cases) {
    EXPECT_THAT(ParseNetConf(Conf(c.patch)),
                CniErrorIs(kErrInvalidConfig, AllOf(HasSubstr("invalid network configuration"),
                                                    HasSubstr(c.field))))
        << c.patch;
  }
}

TEST(NetConfTest, VersionOfWrongTypeIsCode7) {
  EXPECT_THAT(ParseNetConf(Conf(R"({"cniVersion": 110})")),
              CniErrorIs(kErrInvalidConfig, HasSubstr("cniVersion: must be a string")));
}

TEST(NetConfTest, PrevResultOfUnsupportedVersionIsCode1) {
  EXPECT_THAT(ParseNetConf(Conf(R"({"prevResult": {"cniVersion": "0.2.0"}})")),
              CniErrorIs(kErrIncompatibleVersion, HasSubstr("prevResult.cniVersion")));
}

TEST(NetConfTest, NullsAreAbsent) {
  ASSERT_OK_AND_ASSIGN(NetConf conf, ParseNetConf(Conf(
      R"({"mtu": null, "ipam": null, "args": null, "prevResult": null, "runtimeConfig": null})")));
  EXPECT_FALSE(conf.mtu.has_value());
  EXPECT_FALSE(conf.ipam.has_value());
}

TEST(NetConfTest, NetworkNameRule) {
  EXPECT_TRUE(IsValidNetworkName("loom"));
  EXPECT_TRUE(IsValidNetworkName("0net_a.b-c"));
  EXPECT_FALSE(IsValidNetworkName(""));
  EXPECT_FALSE(IsValidNetworkName(".net"));
  EXPECT_FALSE(IsValidNetworkName("net/1"));
}

}  // namespace
}  // namespace loom::cni
