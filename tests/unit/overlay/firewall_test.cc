#include "overlay/firewall.h"

#include "common/strings.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace loom::overlay {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST(FirewallTest, RendersNodeAllowListAndMasquerade) {
  FirewallRules r;
  r.vxlan_port = 4789;
  r.nodes = {net::Ipv4Address(198, 51, 100, 12), net::Ipv4Address(198, 51, 100, 11)};
  r.cluster_cidr = net::Ipv4Prefix::Parse("10.244.0.0/16").value();
  std::string s = RenderNftScript(r);
  EXPECT_THAT(s, HasSubstr("delete table ip loom\n"));
  EXPECT_THAT(s, HasSubstr(StrCat("comment \"loom ", RulesetTag(r), "\"")));
  FirewallRules other = r;
  other.nodes.insert(net::Ipv4Address(198, 51, 100, 13));
  EXPECT_NE(RulesetTag(other), RulesetTag(r));
  EXPECT_THAT(s, HasSubstr("elements = { 198.51.100.11, 198.51.100.12 }"));
  EXPECT_THAT(s, HasSubstr("udp dport 4789 ip saddr != @nodes counter drop"));
  EXPECT_THAT(s, HasSubstr("ip saddr 10.244.0.0/16 ip daddr != 10.244.0.0/16 counter masquerade"));
  r.masquerade = false;
  r.nodes.clear();
  s = RenderNftScript(r);
  EXPECT_THAT(s, Not(HasSubstr("masquerade")));
  EXPECT_THAT(s, Not(HasSubstr("elements")));  // an empty set drops every VXLAN packet
  EXPECT_THAT(s, Not(HasSubstr("notrack")));
}

TEST(FirewallTest, NodeLocalDnsSkipsConnectionTracking) {
  FirewallRules r;
  r.cluster_cidr = net::Ipv4Prefix::Parse("10.244.0.0/16").value();
  std::string before = RulesetTag(r);
  r.dns_ip = net::Ipv4Address(169, 254, 20, 10);
  r.dns_port = 53;
  std::string s = RenderNftScript(r);
  EXPECT_NE(RulesetTag(r), before);
  EXPECT_THAT(s, HasSubstr("type filter hook prerouting priority raw; policy accept;\n"
                           "    ip daddr 169.254.20.10 udp dport 53 notrack\n"
                           "    ip daddr 169.254.20.10 tcp dport 53 notrack\n"));
  EXPECT_THAT(s, HasSubstr("type filter hook output priority raw; policy accept;\n"
                           "    ip saddr 169.254.20.10 udp sport 53 notrack\n"
                           "    ip saddr 169.254.20.10 tcp sport 53 notrack\n"
                           "    ip daddr 169.254.20.10 udp dport 53 notrack\n"
                           "    ip daddr 169.254.20.10 tcp dport 53 notrack\n"));
}

}  // namespace
}  // namespace loom::overlay
