// The overlay against the underlay, same run, same machine: iperf3 pod to pod across
// two nodes (VXLAN) against iperf3 between the node namespaces (the underlay veths
// and bridge); ping latency p50/p99 both ways; and the time to program one peer
// (neighbour, FDB, route) over netlink. Prints a table; never part of CI.
#include <algorithm>
#include <cstdio>
#include <vector>

#include "absl/strings/str_split.h"
#include "overlay/overlay_kernel_netlink.h"
#include "overlay/vxlan_reconciler.h"
#include "tests/integration/overlay_pods.h"
#include "tests/testing/subprocess.h"
#include "tests/unit/common/net/test_netns.h"

namespace loom::testing {
namespace {

double Iperf(const std::vector<std::string>& client_prefix, const std::string& server_ns,
             const std::string& server_ip) {
  auto server = Subprocess::Start({"ip", "netns", "exec", server_ns, "iperf3", "-s", "-1", "-B",
                                   server_ip},
                                  {"/dev/null", {}});
  if (!server.ok()) return -1;
  absl::SleepFor(absl::Milliseconds(300));
  std::vector<std::string> argv = client_prefix;
  for (const char* a : {"iperf3", "-J", "-t", "5", "-c"}) argv.push_back(a);
  argv.push_back(server_ip);
  auto out = RunCommand(argv, absl::Seconds(30));
  if (!out.ok() || out->exit_code != 0) return -1;
  Json j = Json::parse(out->out, nullptr, false);
  return j["end"]["sum_received"].value("bits_per_second", -1.0);
}

std::pair<double, double> PingP50P99(const std::vector<std::string>& prefix, const std::string& ip) {
  std::vector<std::string> argv = prefix;
  for (const char* a : {"ping", "-c", "500", "-i", "0.002", "-n"}) argv.push_back(a);
  argv.push_back(ip);
  auto out = RunCommand(argv, absl::Seconds(60));
  std::vector<double> rtts;
  if (out.ok()) {
    for (absl::string_view line : absl::StrSplit(out->out, '\n')) {
      size_t t = line.find("time=");
      if (t == absl::string_view::npos) continue;
      rtts.push_back(std::stod(std::string(line.substr(t + 5))));
    }
  }
  if (rtts.empty()) return {-1, -1};
  std::sort(rtts.begin(), rtts.end());
  return {rtts[rtts.size() / 2], rtts[std::min(rtts.size() - 1, rtts.size() * 99 / 100)]};
}

// Median time to add one peer (neighbour, FDB, route) to a device that already has
// 100 peers, over 200 add/remove rounds, in a private namespace.
absl::StatusOr<absl::Duration> PeerProgramTime() {
  net::testing::TestNetns ns("ovbench");
  RETURN_IF_ERROR(ns.status());
  ASSIGN_OR_RETURN(net::Netlink nl, ns.Connect());
  RETURN_IF_ERROR(nl.CreateVeth("eth0", "eth0peer"));
  RETURN_IF_ERROR(nl.AddAddress("eth0", {net::Ipv4Prefix::ParseHost("198.51.100.11/24").value(),
                                         std::nullopt, net::Scope::kUniverse}));
  RETURN_IF_ERROR(nl.SetLinkUp("eth0"));
  ASSIGN_OR_RETURN(auto kernel, net::RunInNetns<std::unique_ptr<overlay::OverlayKernel>>(
                                    ns.fd(), [] { return overlay::NewNetlinkOverlayKernel(); }));
  overlay::VxlanReconciler r(kernel.get());
  overlay::DeviceConfig dc;
  dc.underlay_iface = "eth0";
  dc.underlay_ip = net::Ipv4Address(198, 51, 100, 11);
  dc.mac = overlay::VtepMac("node1");
  dc.pod_cidr = net::Ipv4Prefix::Parse("10.244.1.0/24").value();
  RETURN_IF_ERROR(r.EnsureDevice(dc));
  std::vector<overlay::Peer> peers;
  for (int i = 0; i < 101; ++i) {
    peers.push_back({StrCat("p", 1000 + i), net::Ipv4Prefix::Parse(StrCat("10.100.", i, ".0/24")).value(),
                     net::Ipv4Address(203, 0, 113, static_cast<uint8_t>(1 + i)),
                     overlay::VtepMac(StrCat("p", i))});
  }
  std::vector<overlay::Peer> base(peers.begin(), peers.end() - 1);
  RETURN_IF_ERROR(r.SetPeers(base));
  std::vector<absl::Duration> times;
  for (int round = 0; round < 200; ++round) {
    RETURN_IF_ERROR(r.SetPeers(peers));
    times.push_back(r.last_peer_program_time());
    RETURN_IF_ERROR(r.SetPeers(base));
  }
  RETURN_IF_ERROR(r.RemoveAll());
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

int Main() {
  ClusterOptions options;
  options.nodes = 2;
  options.extra_loomd_flags = {"--overlay"};
  auto c = Cluster::Create(options);
  if (!c.ok()) {
    std::fprintf(stderr, "cluster: %s\n", std::string(c.status().message()).c_str());
    return 1;
  }
  OverlayPods pods(c->get());
  auto a = pods.Add(0, 10);
  auto b = pods.Add(1, 10);
  if (!a.ok() || !b.ok()) {
    std::fprintf(stderr, "pods: %s %s\n", std::string(a.status().message()).c_str(),
                 std::string(b.status().message()).c_str());
    return 1;
  }
  // Let the peers converge.
  (void)pods.Exec(*a, {"ping", "-c3", "-W1", b->ip});
  const Cluster& cl = **c;
  std::vector<std::string> in_pod = {"ip", "netns", "exec", a->netns};
  std::vector<std::string> in_node = {"ip", "netns", "exec", cl.node(0).netns};
  // Alternating rounds, medians: the machine is shared, so single runs are noisy.
  std::vector<double> us, os;
  for (int round = 0; round < 3; ++round) {
    us.push_back(Iperf(in_node, cl.node(1).netns, cl.node(1).underlay_ip));
    os.push_back(Iperf(in_pod, b->netns, b->ip));
    std::printf("round %d: underlay %.2f Gbit/s overlay %.2f Gbit/s\n", round + 1, us.back() / 1e9,
                os.back() / 1e9);
  }
  std::sort(us.begin(), us.end());
  std::sort(os.begin(), os.end());
  double underlay = us[1];
  double overlay = os[1];
  auto [u50, u99] = PingP50P99(in_node, cl.node(1).underlay_ip);
  auto [o50, o99] = PingP50P99(in_pod, b->ip);
  auto program = PeerProgramTime();
  std::printf("\n== overlay bench (iperf3 3 x 5 s alternating, 1 stream, medians; ping 500 x 2 ms) ==\n");
  std::printf("throughput  underlay %.2f Gbit/s  overlay %.2f Gbit/s  ratio %.2f\n", underlay / 1e9,
              overlay / 1e9, underlay > 0 ? overlay / underlay : 0);
  std::printf("ping rtt    underlay p50 %.3f ms p99 %.3f ms   overlay p50 %.3f ms p99 %.3f ms\n",
              u50, u99, o50, o99);
  std::printf("program one peer (neighbour+FDB+route, 100 present): p50 %s\n",
              program.ok() ? absl::FormatDuration(*program).c_str()
                           : std::string(program.status().message()).c_str());
  return underlay > 0 && overlay > 0 ? 0 : 1;
}

}  // namespace
}  // namespace loom::testing

int main() { return loom::testing::Main(); }
