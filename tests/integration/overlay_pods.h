// Hand-made "pods" for overlay tests (the CNI plugin lands separately): a namespace per
// pod with a veth to its node's namespace, the pod's /32 from the node's subnet, a
// default route via 169.254.1.1 onlink, proxy ARP on the host side and a /32 route to
// the pod on the node -- the plumbing DESIGN.md describes. Pod namespaces are named
// after the cluster's prefix, so a crashed run's are swept with the cluster's.
#pragma once

#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "common/json.h"
#include "common/status.h"
#include "common/strings.h"
#include "tests/testing/cluster.h"
#include "tests/testing/command.h"

namespace loom::testing {

struct OverlayPod {
  std::string netns;
  std::string ip;
  int node = 0;
};

// The node's overlay device facts from `ip -j addr show dev loom.1`.
struct NodeOverlay {
  std::string subnet_base;  // "10.244.7." (a /24 subnet)
  std::string gateway;      // "10.244.7.0"
  int mtu = 0;
};

inline absl::StatusOr<NodeOverlay> ReadNodeOverlay(Cluster& c, int node) {
  ASSIGN_OR_RETURN(std::string out,
                   c.ExecInNode(node, {"ip", "-j", "addr", "show", "dev", "loom.1"}));
  Json j = Json::parse(out, nullptr, false);
  if (!j.is_array() || j.empty()) return absl::NotFoundError(StrCat("no loom.1: ", out));
  NodeOverlay o;
  o.mtu = j[0].value("mtu", 0);
  for (const Json& a : j[0].value("addr_info", Json::array())) {
    if (a.value("family", "") != "inet") continue;
    o.gateway = a.value("local", "");
  }
  if (o.gateway.empty()) return absl::NotFoundError(StrCat("loom.1 has no address: ", out));
  o.subnet_base = o.gateway.substr(0, o.gateway.rfind('.') + 1);
  return o;
}

class OverlayPods {
 public:
  explicit OverlayPods(Cluster* c) : c_(c) {}
  ~OverlayPods() {
    for (const OverlayPod& p : pods_) (void)RunCommand({"ip", "netns", "delete", p.netns});
  }

  // A pod on node `node` with address <node subnet>.<host>.
  absl::StatusOr<OverlayPod> Add(int node, int host) {
    ASSIGN_OR_RETURN(NodeOverlay o, ReadNodeOverlay(*c_, node));
    OverlayPod p;
    p.node = node;
    p.ip = StrCat(o.subnet_base, host);
    p.netns = StrCat(c_->prefix(), "-pod", node + 1, "x", host);
    std::string host_if = StrCat("vp", host);
    const std::string& ns = c_->node(node).netns;
    RETURN_IF_ERROR(Run({"ip", "netns", "add", p.netns}));
    pods_.push_back(p);
    std::string mtu = std::to_string(o.mtu);
    RETURN_IF_ERROR(Run({"ip", "-n", ns, "link", "add", host_if, "mtu", mtu, "type", "veth",
                         "peer", "name", "eth0", "mtu", mtu, "netns", p.netns}));
    RETURN_IF_ERROR(Run({"ip", "-n", p.netns, "link", "set", "lo", "up"}));
    RETURN_IF_ERROR(Run({"ip", "-n", p.netns, "addr", "add", StrCat(p.ip, "/32"), "dev", "eth0"}));
    RETURN_IF_ERROR(Run({"ip", "-n", p.netns, "link", "set", "eth0", "up"}));
    RETURN_IF_ERROR(Run({"ip", "-n", p.netns, "route", "add", "169.254.1.1", "dev", "eth0",
                         "scope", "link"}));
    RETURN_IF_ERROR(Run({"ip", "-n", p.netns, "route", "add", "default", "via", "169.254.1.1",
                         "dev", "eth0", "onlink"}));
    RETURN_IF_ERROR(Run({"ip", "netns", "exec", ns, "sysctl", "-qw",
                         StrCat("net.ipv4.conf.", host_if, ".proxy_arp=1")}));
    RETURN_IF_ERROR(Run({"ip", "-n", ns, "link", "set", host_if, "up"}));
    // The gateway's MAC is the host side's, fixed (as Cilium does): proxy ARP alone
    // answers only for addresses the node routes elsewhere, and 169.254.1.1 is none.
    ASSIGN_OR_RETURN(std::string link, RunChecked({"ip", "-n", ns, "-j", "link", "show", host_if}));
    Json lj = Json::parse(link, nullptr, false);
    if (!lj.is_array() || lj.empty()) return absl::InternalError(StrCat("ip link: ", link));
    RETURN_IF_ERROR(Run({"ip", "-n", p.netns, "neigh", "replace", "169.254.1.1", "lladdr",
                         lj[0].value("address", ""), "dev", "eth0", "nud", "permanent"}));
    RETURN_IF_ERROR(Run({"ip", "-n", ns, "route", "add", StrCat(p.ip, "/32"), "dev", host_if}));
    return p;
  }

  // Runs a command inside the pod.
  absl::StatusOr<CommandResult> Exec(const OverlayPod& p, std::vector<std::string> argv,
                                     absl::Duration timeout = absl::Seconds(30)) {
    std::vector<std::string> full = {"ip", "netns", "exec", p.netns};
    full.insert(full.end(), argv.begin(), argv.end());
    return RunCommand(full, timeout);
  }

  const std::vector<OverlayPod>& pods() const { return pods_; }

 private:
  static absl::Status Run(const std::vector<std::string>& argv) {
    return RunChecked(argv).status();
  }
  Cluster* c_;
  std::vector<OverlayPod> pods_;
};

// A UDP echo server that answers each datagram with the sender's address as it saw it.
inline std::vector<std::string> UdpWhoAmIServer(const std::string& netns, const std::string& ip,
                                                int port) {
  return {"ip", "netns", "exec", netns, "python3", "-c",
          StrCat("import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
                 "s.bind(('", ip, "',", port, "))\n"
                 "while True:\n  d,a=s.recvfrom(100)\n  s.sendto(a[0].encode(),a)\n")};
}

// Asks a UdpWhoAmIServer which address it saw; retries a few times.
inline std::vector<std::string> UdpWhoAmIClient(const std::string& ip, int port) {
  return {"python3", "-c",
          StrCat("import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
                 "s.settimeout(1)\n"
                 "for i in range(5):\n"
                 "  s.sendto(b'x',('", ip, "',", port, "))\n"
                 "  try:\n    print(s.recv(100).decode()); break\n"
                 "  except socket.timeout: pass\n")};
}

}  // namespace loom::testing
