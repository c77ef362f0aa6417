#include "overlay/firewall.h"

#include <cstdio>

#include "common/strings.h"

namespace loom::overlay {

namespace {

std::string Body(const FirewallRules& r) {
  std::string elements;
  for (const net::Ipv4Address& a : r.nodes) {
    StrAppend(&elements, elements.empty() ? "" : ", ", a.ToString());
  }
  std::string cidr = r.cluster_cidr.network().ToString();
  std::string s = "  set nodes {\n    type ipv4_addr\n";
  if (!elements.empty()) StrAppend(&s, "    elements = { ", elements, " }\n");
  StrAppend(&s, "  }\n",
            "  chain input {\n    type filter hook input priority -10; policy accept;\n",
            "    udp dport ", r.vxlan_port, " ip saddr != @nodes counter drop\n  }\n");
  if (r.masquerade) {
    StrAppend(&s, "  chain postrouting {\n",
              "    type nat hook postrouting priority srcnat; policy accept;\n",
              "    ip saddr ", cidr, " ip daddr != ", cidr, " counter masquerade\n  }\n");
  }
  if (r.dns_ip) {
    const std::string ip = r.dns_ip->ToString();
    StrAppend(&s, "  chain dns_notrack_in {\n",
              "    type filter hook prerouting priority raw; policy accept;\n",
              "    ip daddr ", ip, " udp dport ", r.dns_port, " notrack\n",
              "    ip daddr ", ip, " tcp dport ", r.dns_port, " notrack\n  }\n",
              "  chain dns_notrack_out {\n",
              "    type filter hook output priority raw; policy accept;\n",
              "    ip saddr ", ip, " udp sport ", r.dns_port, " notrack\n",
              "    ip saddr ", ip, " tcp sport ", r.dns_port, " notrack\n",
              // The queries of the node's own processes (host-network clients) leave
              // through output, and are never seen untracked in prerouting again.
              "    ip daddr ", ip, " udp dport ", r.dns_port, " notrack\n",
              "    ip daddr ", ip, " tcp dport ", r.dns_port, " notrack\n  }\n");
  }
  return s;
}

}  // namespace

std::string RulesetTag(const FirewallRules& r) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : Body(r)) {
    h ^= c;
    h *= 1099511628211ull;
  }
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

std::string RenderNftScript(const FirewallRules& r) {
  // "add table" then "delete table" makes the delete safe when the table is absent;
  // the whole script is one netlink transaction, so no packet sees a half state.
  return StrCat("add table ip ", kNftTable, "\n", "delete table ip ", kNftTable, "\n",
                "table ip ", kNftTable, " {\n", "  comment \"loom ", RulesetTag(r), "\"\n",
                Body(r), "}\n");
}

}  // namespace loom::overlay
