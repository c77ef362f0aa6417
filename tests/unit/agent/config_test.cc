#include "agent/daemon/config.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace loom::agent {
namespace {

using ::loom::testing::IsOk;
using ::loom::testing::StatusIs;
using ::testing::HasSubstr;

constexpr auto kInvalid = absl::StatusCode::kInvalidArgument;

TEST(ConfigTest, DefaultsAreValid) {
  ASSERT_OK_AND_ASSIGN(LoomdConfig c, BuildConfig(RawFlags{}, "node-1"));
  EXPECT_EQ(c.node_name, "node-1");
  EXPECT_EQ(c.store_url, "embedded");
  EXPECT_EQ(c.api_socket, "/run/loom/loomd.sock");
  EXPECT_EQ(c.metrics_addr, (HostPort{"127.0.0.1", 9464}));
  EXPECT_EQ(c.cluster_cidr.ToString(), "10.244.0.0/16");
  EXPECT_EQ(c.service_cidr.ToString(), "10.96.0.0/12");
  EXPECT_EQ(c.node_cidr_size, 24);
  EXPECT_EQ(c.dns_addr, (HostPort{"169.254.20.10", 53}));
  EXPECT_TRUE(c.dns_upstream.empty());
  EXPECT_TRUE(c.dns_forwarding);
  EXPECT_EQ(c.resolv_conf, "/etc/resolv.conf");
  EXPECT_EQ(c.dns_ttl_seconds, 5u);
  EXPECT_EQ(c.dns_workers, 1);
  EXPECT_EQ(c.dns_udp_coalesce, absl::Microseconds(50));
  EXPECT_EQ(c.dns_max_udp_size, 1232);
  EXPECT_EQ(c.vxlan_vni, 1u);
  EXPECT_EQ(c.vxlan_port, 4789);
  EXPECT_EQ(c.ingress_addr, (HostPort{"0.0.0.0", 80}));
  EXPECT_EQ(c.ingress_tls_addr, (HostPort{"0.0.0.0", 443}));
  EXPECT_TRUE(c.ingress);
  EXPECT_EQ(c.ingress_workers, 1);
  EXPECT_EQ(c.ingress_cert_dir, "/var/lib/loom/ingress-certs");
  EXPECT_EQ(c.ingress_access_log, "");
  EXPECT_EQ(c.node_lease_ttl, absl::Seconds(10));
  EXPECT_FALSE(c.overlay);
  EXPECT_FALSE(c.direct_routing);
  EXPECT_EQ(c.subnet_grace, absl::Minutes(10));
  EXPECT_EQ(c.log_level, LogLevel::kInfo);
}

TEST(ConfigTest, PodCidrDefaultsToTheFirstNodeSubnet) {
  ASSERT_OK_AND_ASSIGN(LoomdConfig c, BuildConfig(RawFlags{}, "node-1"));
  EXPECT_EQ(c.pod_cidr.ToString(), "10.244.0.0/24");
  EXPECT_EQ(c.cni_del_queue_dir, "/var/lib/loom/cni-del-queue");
  RawFlags f;
  f.pod_cidr = "10.244.9.0/24";
  ASSERT_OK_AND_ASSIGN(c, BuildConfig(f, "node-1"));
  EXPECT_EQ(c.pod_cidr.ToString(), "10.244.9.0/24");
  f.pod_cidr = "10.245.0.0/24";
  EXPECT_THAT(BuildConfig(f, "node-1"),
              StatusIs(kInvalid, HasSubstr("invalid --pod-cidr \"10.245.0.0/24\": not inside")));
  f.pod_cidr = "10.244.0.0/31";
  EXPECT_THAT(BuildConfig(f, "node-1"), StatusIs(kInvalid, HasSubstr("at most 30")));
}

TEST(ConfigTest, ApiSocketFollowsRunDir) {
  RawFlags f;
  f.run_dir = "/tmp/x";
  ASSERT_OK_AND_ASSIGN(LoomdConfig c, BuildConfig(f, "n"));
  EXPECT_EQ(c.api_socket, "/tmp/x/loomd.sock");
  f.api_socket = "/tmp/y.sock";
  ASSERT_OK_AND_ASSIGN(c, BuildConfig(f, "n"));
  EXPECT_EQ(c.api_socket, "/tmp/y.sock");
}

struct BadFlag {
  std::string flag;
  std::function<void(RawFlags&)> set;
  std::string message;
};

class BadFlagTest : public ::testing::TestWithParam<BadFlag> {};

TEST_P(BadFlagTest, NamesFlagAndValue) {
  RawFlags f;
  GetParam().set(f);
  EXPECT_THAT(BuildConfig(f, "n"),
              StatusIs(kInvalid, HasSubstr(GetParam().message)));
  EXPECT_THAT(BuildConfig(f, "n"),
              StatusIs(kInvalid, HasSubstr("invalid --" + GetParam().flag + " \"")));
}

INSTANTIATE_TEST_SUITE_P(
    Flags, BadFlagTest,
    ::testing::Values(
        BadFlag{"cluster-cidr", [](RawFlags& f) { f.cluster_cidr = "10.0.0.0/33"; },
                "\"10.0.0.0/33\": prefix length must be 0..32"},
        BadFlag{"cluster-cidr", [](RawFlags& f) { f.cluster_cidr = "10.244.1.0/16"; },
                "host bits are set (did you mean 10.244.0.0/16?)"},
        BadFlag{"cluster-cidr", [](RawFlags& f) { f.cluster_cidr = "banana"; },
                "want an IPv4 CIDR"},
        BadFlag{"service-cidr", [](RawFlags& f) { f.service_cidr = "300.1.0.0/16"; },
                "\"300.1.0.0\" is not an IPv4 address"},
        BadFlag{"service-cidr", [](RawFlags& f) { f.service_cidr = "10.244.0.0/24"; },
                "overlaps --cluster-cidr"},
        BadFlag{"node-cidr-size", [](RawFlags& f) { f.node_cidr_size = 8; }, "\"8\""},
        BadFlag{"node-cidr-size", [](RawFlags& f) { f.node_cidr_size = 31; }, "and 30"},
        BadFlag{"metrics-addr", [](RawFlags& f) { f.metrics_addr = "127.0.0.1:70000"; },
                "port must be 1..65535"},
        BadFlag{"metrics-addr", [](RawFlags& f) { f.metrics_addr = "127.0.0.1:0"; },
                "port must be 1..65535"},
        BadFlag{"metrics-addr", [](RawFlags& f) { f.metrics_addr = "localhost:9464"; },
                "not an IPv4 address"},
        BadFlag{"metrics-addr", [](RawFlags& f) { f.metrics_addr = "9464"; }, "want ip:port"},
        BadFlag{"dns-addr", [](RawFlags& f) { f.dns_addr = "[::1:53"; }, "want [ipv6]:port"},
        BadFlag{"dns-upstream", [](RawFlags& f) { f.dns_upstream = "1.1.1.1,nope"; },
                "not an IPv4 address"},
        BadFlag{"dns-ttl", [](RawFlags& f) { f.dns_ttl = "1.5s"; }, "whole seconds"},
        BadFlag{"dns-ttl", [](RawFlags& f) { f.dns_ttl = "-1s"; }, "whole seconds"},
        BadFlag{"dns-ttl", [](RawFlags& f) { f.dns_ttl = "two"; }, "whole seconds"},
        BadFlag{"dns-workers", [](RawFlags& f) { f.dns_workers = 0; }, "1..64"},
        BadFlag{"dns-udp-coalesce", [](RawFlags& f) { f.dns_udp_coalesce = "2ms"; }, "0s and 1ms"},
        BadFlag{"dns-udp-coalesce", [](RawFlags& f) { f.dns_udp_coalesce = "soon"; }, "0s and 1ms"},
        BadFlag{"dns-max-udp-size", [](RawFlags& f) { f.dns_max_udp_size = 511; }, "512..4096"},
        BadFlag{"ingress-addr", [](RawFlags& f) { f.ingress_addr = "0.0.0.0:-1"; },
                "port must be"},
        BadFlag{"ingress-tls-addr", [](RawFlags& f) { f.ingress_tls_addr = "x"; }, "want"},
        BadFlag{"ingress-workers", [](RawFlags& f) { f.ingress_workers = 65; }, "1..64"},
        BadFlag{"ingress-cert-dir", [](RawFlags& f) { f.ingress_cert_dir = std::string("a\0b", 3); }, "NUL"},
        BadFlag{"vxlan-vni", [](RawFlags& f) { f.vxlan_vni = 0; }, "1..16777215"},
        BadFlag{"vxlan-vni", [](RawFlags& f) { f.vxlan_vni = 16777216; }, "1..16777215"},
        BadFlag{"vxlan-port", [](RawFlags& f) { f.vxlan_port = 65536; }, "1..65535"},
        BadFlag{"store", [](RawFlags& f) { f.store = "redis://x"; }, "want \"embedded\""},
        BadFlag{"store", [](RawFlags& f) { f.store = "etcd://"; }, "no etcd endpoint"},
        BadFlag{"store", [](RawFlags& f) { f.store = "etcd://h:99999"; }, "port must be"},
        BadFlag{"store", [](RawFlags& f) { f.store = "etcd://h:2379,h2"; }, "want host:port"},
        BadFlag{"state-dir", [](RawFlags& f) { f.state_dir = ""; }, "must not be empty"},
        BadFlag{"api-socket", [](RawFlags& f) { f.api_socket = "/" + std::string(120, 'a'); },
                "unix socket path too long"},
        BadFlag{"node-name", [](RawFlags& f) { f.node_name = "bad/name"; }, "DNS name"},
        BadFlag{"underlay-iface", [](RawFlags& f) { f.underlay_iface = "a-very-long-name0"; },
                "not a valid interface name"},
        BadFlag{"cluster-domain", [](RawFlags& f) { f.cluster_domain = "Cluster..local"; },
                "DNS name"},
        BadFlag{"log-level", [](RawFlags& f) { f.log_level = "loud"; }, "want debug"},
        BadFlag{"node-lease-ttl", [](RawFlags& f) { f.node_lease_ttl = "ten"; },
                "want a duration"},
        BadFlag{"node-lease-ttl", [](RawFlags& f) { f.node_lease_ttl = "100ms"; },
                "between 1s and 1h"},
        BadFlag{"subnet-grace", [](RawFlags& f) { f.subnet_grace = "soon"; },
                "want a duration"}));

TEST(ConfigTest, ParsesGoodValues) {
  RawFlags f;
  f.store = "etcd://127.0.0.1:2379,10.0.0.2:2379";
  f.metrics_addr = "[::1]:9464";
  f.dns_upstream = "1.1.1.1,9.9.9.9:5353,[2001:db8::1]";
  f.node_lease_ttl = "2500ms";
  f.log_level = "debug";
  ASSERT_OK_AND_ASSIGN(LoomdConfig c, BuildConfig(f, "n"));
  EXPECT_EQ(c.metrics_addr.ToString(), "[::1]:9464");
  ASSERT_EQ(c.dns_upstream.size(), 3u);
  EXPECT_EQ(c.dns_upstream[0].ToString(), "1.1.1.1:53");
  EXPECT_EQ(c.dns_upstream[1].ToString(), "9.9.9.9:5353");
  EXPECT_EQ(c.dns_upstream[2].ToString(), "[2001:db8::1]:53");
  EXPECT_EQ(c.node_lease_ttl, absl::Milliseconds(2500));
  EXPECT_EQ(c.log_level, LogLevel::kDebug);
}

TEST(ConfigTest, DnsUpstreamNoneTurnsForwardingOff) {
  RawFlags f;
  f.dns_upstream = "none";
  f.dns_ttl = "0s";
  f.dns_workers = 4;
  f.dns_max_udp_size = 4096;
  f.dns_udp_coalesce = "20us";
  ASSERT_OK_AND_ASSIGN(LoomdConfig c, BuildConfig(f, "host1"));
  EXPECT_FALSE(c.dns_forwarding);
  EXPECT_TRUE(c.dns_upstream.empty());
  EXPECT_EQ(c.dns_ttl_seconds, 0u);
  EXPECT_EQ(c.dns_workers, 4);
  EXPECT_EQ(c.dns_max_udp_size, 4096);
  EXPECT_EQ(c.dns_udp_coalesce, absl::Microseconds(20));
}

TEST(ConfigTest, ParseHostPortAllowsZeroOnlyWhenAsked) {
  EXPECT_THAT(ParseHostPort("127.0.0.1:0"), StatusIs(kInvalid));
  EXPECT_THAT(ParseHostPort("127.0.0.1:0", /*allow_zero_port=*/true), IsOk());
}

}  // namespace
}  // namespace loom::agent
