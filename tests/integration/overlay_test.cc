// The VXLAN overlay end to end: four nodes on etcd, each running loomd --overlay.
// Distinct subnets; hand-made pods on three nodes ping each other across nodes; the
// pod MTU is exact; egress is masqueraded and pod-to-pod is not; VXLAN from a
// non-node is dropped; a loomd restart writes nothing and an iperf3 flow survives it;
// a stopped node's entries go once its lease expires, and a joining node is
// programmed everywhere within 1 s of its registration. With --direct-routing, peers
// on the same underlay subnet get plain routes and pods still reach each other. Pods
// attached by the real loom CNI plugin reach each other across nodes too.
#include <signal.h>

#include <set>
#include <thread>

#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/overlay_pods.h"
#include "tests/testing/privileged.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/subprocess.h"

namespace loom::testing {
namespace {

using ::testing::HasSubstr;

// Whether node `i` has neighbour, FDB and route entries for a peer.
bool HasPeer(Cluster& c, int i, const NodeOverlay& peer, const std::string& underlay) {
  auto routes = c.ExecInNode(i, {"ip", "route", "show", "proto", "76"});
  auto neigh = c.ExecInNode(i, {"ip", "neigh", "show", "dev", "loom.1"});
  auto fdb = c.ExecInNode(i, {"bridge", "fdb", "show", "dev", "loom.1"});
  if (!routes.ok() || !neigh.ok() || !fdb.ok()) return false;
  return routes->find(StrCat(peer.subnet_base, "0/24 via ", peer.gateway, " dev loom.1")) !=
             std::string::npos &&
         neigh->find(StrCat(peer.gateway, " lladdr")) != std::string::npos &&
         fdb->find(StrCat("dst ", underlay)) != std::string::npos;
}

bool HasAnyPeerEntry(Cluster& c, int i, const NodeOverlay& peer, const std::string& underlay) {
  auto routes = c.ExecInNode(i, {"ip", "route", "show", "proto", "76"});
  auto neigh = c.ExecInNode(i, {"ip", "neigh", "show", "dev", "loom.1"});
  auto fdb = c.ExecInNode(i, {"bridge", "fdb", "show", "dev", "loom.1"});
  return !routes.ok() || !neigh.ok() || !fdb.ok() ||
         routes->find(StrCat(peer.subnet_base, "0/24")) != std::string::npos ||
         neigh->find(StrCat(peer.gateway, " ")) != std::string::npos ||
         fdb->find(StrCat("dst ", underlay, " ")) != std::string::npos;
}

template <typename Pred>
bool WaitFor(Pred pred, absl::Duration timeout) {
  absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    if (pred()) return true;
    absl::SleepFor(absl::Milliseconds(20));
  }
  return pred();
}

// The ts= of the last (or first at/after `after`) log line containing `needle`.
std::optional<absl::Time> LogTime(const std::string& log, const std::string& needle,
                                  std::optional<absl::Time> after = std::nullopt) {
  std::optional<absl::Time> found;
  for (absl::string_view line : absl::StrSplit(log, '\n')) {
    if (line.find(needle) == absl::string_view::npos || line.substr(0, 3) != "ts=") continue;
    std::string ts(line.substr(3, line.find(' ') - 3));
    absl::Time t;
    std::string err;
    if (!absl::ParseTime("%Y-%m-%dT%H:%M:%E*SZ", ts, &t, &err)) continue;
    if (after) {
      if (t >= *after) return t;
    } else {
      found = t;
    }
  }
  return found;
}

std::string ReadFile(const std::string& path) {
  auto out = RunCommand({"cat", path});
  return out.ok() ? out->out : "";
}

double Metric(Cluster& c, int i, const std::string& name) {
  auto out = c.ExecInNode(i, {"curl", "-s", "http://127.0.0.1:9464/metrics"});
  if (!out.ok()) return -1;
  for (absl::string_view line : absl::StrSplit(*out, '\n')) {
    if (line.substr(0, name.size() + 1) == StrCat(name, " ")) {
      return std::stod(std::string(line.substr(name.size() + 1)));
    }
  }
  return -1;
}

// Every pod pings every other; then from the first pod to pod `far`, the largest
// don't-fragment ping that fits the pod MTU passes and one byte more fails.
void ExpectMeshAndExactMtu(const std::vector<std::string>& netns,
                           const std::vector<std::string>& ips, size_t far, int mtu) {
  for (size_t a = 0; a < netns.size(); ++a) {
    for (size_t b = 0; b < netns.size(); ++b) {
      if (a == b) continue;
      auto r = RunCommand({"ip", "netns", "exec", netns[a], "ping", "-c1", "-W2", ips[b]});
      ASSERT_OK(r.status());
      EXPECT_EQ(r->exit_code, 0) << ips[a] << " -> " << ips[b] << ": " << r->out << r->err;
    }
  }
  for (int extra : {0, 1}) {
    auto r = RunCommand({"ip", "netns", "exec", netns[0], "ping", "-M", "do", "-c1", "-W2", "-s",
                         std::to_string(mtu - 28 + extra), ips[far]});
    ASSERT_OK(r.status());
    EXPECT_EQ(r->exit_code == 0, extra == 0) << "payload " << mtu - 28 + extra << ": " << r->out;
  }
}

TEST(OverlayTest, PodsAcrossNodes) {
  LOOM_REQUIRE_ROOT();
  LOOM_REQUIRE(RunCommand({"nft", "--version"}).ok(), "nft");
  ClusterOptions options;
  options.nodes = 4;
  options.node_lease_ttl = absl::Seconds(2);
  options.extra_loomd_flags = {"--overlay", "--subnet-grace=1m"};
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Cluster> c, Cluster::Create(options));

  // Distinct subnets, MTU = 1500 - 50.
  std::vector<NodeOverlay> ov;
  std::set<std::string> subnets;
  for (int i = 0; i < 4; ++i) {
    ASSERT_OK_AND_ASSIGN(NodeOverlay o, ReadNodeOverlay(*c, i));
    EXPECT_EQ(o.mtu, 1450);
    EXPECT_TRUE(subnets.insert(o.subnet_base).second) << o.subnet_base;
    ov.push_back(o);
    // The CNI plugin's IPAM takes its range from the lease.
    ASSERT_OK_AND_ASSIGN(std::string cni, RunChecked({"curl", "-s", "--unix-socket",
                                                      c->node(i).api_socket,
                                                      "http://loomd/v1/cni/status"}));
    EXPECT_THAT(cni, HasSubstr(StrCat("\"", o.subnet_base, "0/24\""))) << cni;
  }
  for (int i = 0; i < 4; ++i) {
    for (int j = 0; j < 4; ++j) {
      if (i == j) continue;
      EXPECT_TRUE(WaitFor([&] { return HasPeer(*c, i, ov[j], c->node(j).underlay_ip); },
                          absl::Seconds(5)))
          << c->node(i).name << " lacks " << c->node(j).name << "\n" << c->LogTail(i);
    }
  }

  // Two pods on each of nodes 1..3; every pod pings every other.
  OverlayPods pods(c.get());
  for (int n = 0; n < 3; ++n) {
    for (int h : {10, 11}) ASSERT_OK(pods.Add(n, h).status());
  }
  {
    std::vector<std::string> netns, ips;
    for (const OverlayPod& p : pods.pods()) {
      netns.push_back(p.netns);
      ips.push_back(p.ip);
    }
    ExpectMeshAndExactMtu(netns, ips, 2, 1450);
  }
  const OverlayPod& p1 = pods.pods()[0];  // node1
  const OverlayPod& p2 = pods.pods()[2];  // node2

  // Egress is masqueraded to the node's address; pod-to-pod keeps pod addresses.
  const std::string fabric = StrCat(c->prefix(), "-fabric");
  ASSERT_OK(RunChecked({"ip", "-n", fabric, "addr", "add", "198.51.100.200/24", "dev", "br0"})
                .status());
  {
    ASSERT_OK_AND_ASSIGN(auto outside,
                         Subprocess::Start(UdpWhoAmIServer(fabric, "198.51.100.200", 9999)));
    ASSERT_OK_AND_ASSIGN(auto in_pod, Subprocess::Start(UdpWhoAmIServer(p2.netns, p2.ip, 9999)));
    absl::SleepFor(absl::Milliseconds(300));
    ASSERT_OK_AND_ASSIGN(CommandResult out, pods.Exec(p1, UdpWhoAmIClient("198.51.100.200", 9999)));
    EXPECT_EQ(out.out, StrCat(c->node(0).underlay_ip, "\n")) << out.err;
    ASSERT_OK_AND_ASSIGN(CommandResult east, pods.Exec(p1, UdpWhoAmIClient(p2.ip, 9999)));
    EXPECT_EQ(east.out, StrCat(p1.ip, "\n")) << east.err;
  }

  // VXLAN from an address that is not a node is dropped (the rule's counter moves).
  {
    ASSERT_OK(RunChecked({"ip", "netns", "exec", fabric, "python3", "-c",
                          "import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
                          "s.bind(('198.51.100.200',0))\n"
                          "s.sendto(b'\\x08'+b'\\x00'*15,('198.51.100.11',4789))\n"})
                  .status());
    ASSERT_OK_AND_ASSIGN(std::string rules,
                         c->ExecInNode(0, {"nft", "list", "chain", "ip", "loom", "input"}));
    EXPECT_THAT(rules, HasSubstr("counter packets 1 "));
  }

  // A restart with nothing changed writes nothing, and a flow runs through it.
  {
    ASSERT_OK_AND_ASSIGN(auto server, Subprocess::Start({"ip", "netns", "exec", p2.netns,
                                                         "iperf3", "-s", "-1", "-B", p2.ip}));
    absl::SleepFor(absl::Milliseconds(300));
    absl::StatusOr<CommandResult> flow;
    std::thread client([&] {
      flow = pods.Exec(p1, {"iperf3", "-c", p2.ip, "-t", "4", "-b", "200M"}, absl::Seconds(20));
    });
    absl::SleepFor(absl::Seconds(1));
    ASSERT_OK(c->StopLoomd(0, SIGTERM));
    ASSERT_OK(c->StartLoomd(0));
    client.join();
    ASSERT_OK(flow.status());
    EXPECT_EQ(flow->exit_code, 0) << flow->out << flow->err;
    EXPECT_THAT(flow->out, HasSubstr("receiver"));
    absl::SleepFor(absl::Seconds(1));
    std::string log = ReadFile(c->node(0).log_path);
    std::string setup = log.substr(log.rfind("msg=\"overlay set up\""));
    EXPECT_THAT(setup.substr(0, setup.find('\n')), HasSubstr("netlink_writes=0"));
    EXPECT_EQ(Metric(*c, 0, "loom_overlay_netlink_writes_total"), 0);
    EXPECT_EQ(Metric(*c, 0, "loom_overlay_nft_writes_total"), 0);
    EXPECT_EQ(Metric(*c, 0, "loom_overlay_peers"), 3);
  }

  // node4 stops: its entries go from every node once its lease (2 s) expired.
  ASSERT_OK(c->StopLoomd(3, SIGTERM));
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(WaitFor([&] { return !HasAnyPeerEntry(*c, i, ov[3], c->node(3).underlay_ip); },
                        absl::Seconds(10)))
        << c->node(i).name << " still has node4\n" << c->LogTail(i);
  }
  // It comes back (same subnet, within the grace): programmed within 1 s everywhere.
  ASSERT_OK(c->StartLoomd(3));
  ASSERT_OK_AND_ASSIGN(NodeOverlay again, ReadNodeOverlay(*c, 3));
  EXPECT_EQ(again.subnet_base, ov[3].subnet_base);
  std::optional<absl::Time> registered =
      LogTime(ReadFile(c->node(3).log_path), "msg=\"node registered\"");
  ASSERT_TRUE(registered.has_value());
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(WaitFor([&] { return HasPeer(*c, i, ov[3], c->node(3).underlay_ip); },
                        absl::Seconds(5)))
        << c->LogTail(i);
    std::optional<absl::Time> programmed = LogTime(
        ReadFile(c->node(i).log_path), "msg=\"overlay peers reconciled\"", *registered);
    ASSERT_TRUE(programmed.has_value()) << c->LogTail(i);
    absl::Duration took = *programmed - *registered;
    std::printf("%s programmed node4 %s after its registration\n", c->node(i).name.c_str(),
                absl::FormatDuration(took).c_str());
    EXPECT_LT(took, absl::Seconds(1));
  }
}

}  // namespace
}  // namespace loom::testing

namespace loom::testing {
namespace {

// --direct-routing: nodes on one underlay subnet route to each other without VXLAN.
TEST(OverlayTest, DirectRoutingOnSharedSegment) {
  LOOM_REQUIRE_ROOT();
  LOOM_REQUIRE(RunCommand({"nft", "--version"}).ok(), "nft");
  ClusterOptions options;
  options.nodes = 2;
  options.extra_loomd_flags = {"--overlay", "--direct-routing"};
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Cluster> c, Cluster::Create(options));
  ASSERT_OK_AND_ASSIGN(NodeOverlay peer, ReadNodeOverlay(*c, 1));
  EXPECT_TRUE(WaitFor(
      [&] {
        auto routes = c->ExecInNode(0, {"ip", "route", "show", "proto", "76"});
        return routes.ok() &&
               routes->find(StrCat(peer.subnet_base, "0/24 via ", c->node(1).underlay_ip,
                                   " dev eth0")) != std::string::npos;
      },
      absl::Seconds(5)))
      << c->LogTail(0);
  ASSERT_OK_AND_ASSIGN(std::string neigh, c->ExecInNode(0, {"ip", "neigh", "show", "dev", "loom.1"}));
  EXPECT_EQ(neigh, "");
  OverlayPods pods(c.get());
  ASSERT_OK_AND_ASSIGN(OverlayPod a, pods.Add(0, 10));
  ASSERT_OK_AND_ASSIGN(OverlayPod b, pods.Add(1, 10));
  ASSERT_OK_AND_ASSIGN(CommandResult r, pods.Exec(a, {"ping", "-c1", "-W2", b.ip}));
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
}

}  // namespace
}  // namespace loom::testing

namespace loom::testing {
namespace {

// Three nodes, two pods each attached by the real `loom` CNI plugin (its IPAM on the
// leased subnets): every pod reaches every other across nodes through the overlay,
// with the exact pod MTU.
TEST(OverlayTest, CniPluginPodsAcrossNodes) {
  LOOM_REQUIRE_ROOT();
  LOOM_REQUIRE(RunCommand({"nft", "--version"}).ok(), "nft");
  ClusterOptions options;
  options.nodes = 3;
  options.extra_loomd_flags = {"--overlay"};
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Cluster> c, Cluster::Create(options));
  std::vector<std::string> netns;
  std::vector<std::string> ips;
  struct Cleanup {
    std::vector<std::string>* names;
    ~Cleanup() {
      for (const std::string& n : *names) (void)RunCommand({"ip", "netns", "delete", n});
    }
  } cleanup{&netns};
  for (int n = 0; n < options.nodes; ++n) {
    for (int k = 0; k < 2; ++k) {
      std::string name = StrCat(c->prefix(), "-cni", n + 1, "x", k);
      ASSERT_OK(RunChecked({"ip", "netns", "add", name}).status());
      netns.push_back(name);
      Json conf{{"cniVersion", "1.1.0"}, {"name", "loomnet"}, {"type", "loom"},
                {"socket", c->node(n).api_socket}};
      std::string script = StrCat("echo '", conf.dump(), "' | env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin",
                                  " CNI_COMMAND=ADD CNI_CONTAINERID=", name,
                                  " CNI_NETNS=/run/netns/", name, " CNI_IFNAME=eth0 CNI_PATH=",
                                  LOOM_BIN_DIR, " ", LOOM_BIN_DIR, "/loom");
      ASSERT_OK_AND_ASSIGN(std::string out, c->ExecInNode(n, {"sh", "-c", script}));
      Json result = Json::parse(out, nullptr, false);
      ASSERT_TRUE(result.contains("ips")) << out;
      std::string addr = result["ips"][0].value("address", "");
      ips.push_back(addr.substr(0, addr.find('/')));
    }
  }
  ExpectMeshAndExactMtu(netns, ips, 2, 1450);
}

}  // namespace
}  // namespace loom::testing
