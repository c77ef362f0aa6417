// Service load balancing end to end (issue 6): a 3-node cluster (etcd, overlay, --lb),
// pods attached by the real `loom` CNI plugin, services applied with loomctl.
//   - from a pod on every node, TCP and UDP to VIP:port reach all 3 backends (one per
//     node), each within 10% of an even share over 3000 connections, both with the
//     socket programs (client processes in a child of the node's Loom cgroup; no packet
//     to the VIP on any interface, tcpdump) and with tc (clients outside the cgroup);
//   - ClientIP affinity keeps a client on one backend, on both paths;
//   - a backend removed while wrk runs, and backends scaled 3 -> 10 -> 3 every 200 ms for
//     30 s under wrk, then removed under load: zero failed requests on both paths;
//   - a UDP backend removed: a socket connected to the VIP is ended by loomd (socket
//     path: the error the application sees, then a live backend once it reconnects) or
//     re-placed (tc); unconnected sockets reach a live backend on both paths;
//   - loomd killed and restarted during an iperf3 flow through a VIP: the flow survives;
//   - NodePort: every node's underlay address serves the service to a host outside the
//     cluster (all three backends) and to the node's own pods on both paths;
//   - `loomd --uninstall` leaves no pin, tc filter, cgroup, device or table behind.
// One cluster for the whole suite (building it is the slow part); tests run in order.
#include <signal.h>
#include <sys/stat.h>

#include <fstream>
#include <iostream>
#include <map>
#include <thread>

#include "absl/strings/str_split.h"
#include "common/json.h"
#include "common/status.h"
#include "common/strings.h"
#include "gtest/gtest.h"
#include "tests/testing/cluster.h"
#include "tests/testing/command.h"
#include "tests/testing/privileged.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/subprocess.h"

namespace loom::testing {
namespace {

constexpr char kBackendScript[] = R"(import http.server, socket, sys, threading
ip = sys.argv[1]
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        body = ip.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
def udp():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", 8080))
    while True:
        d, a = s.recvfrom(100)
        s.sendto(ip.encode(), a)
threading.Thread(target=udp, daemon=True).start()
http.server.ThreadingHTTPServer.daemon_threads = True
http.server.ThreadingHTTPServer.request_queue_size = 256
http.server.ThreadingHTTPServer(("0.0.0.0", 8080), H).serve_forever()
)";

// client.py MODE VIP PORT N [CGROUP]: N new connections (tcp) or sockets (udp) to
// VIP:PORT; prints {"counts": {backend: n}, "errors": n, "peer_mismatch": n, "end": unix
// time it finished, "first_errors": ["<unix time> <error>", ...]}. MODE load: N seconds
// of new TCP connections from 4 threads. With
// CGROUP, joins it first (cgroup.procs), so the socket programs see its sockets.
constexpr char kClientScript[] = R"(import json, socket, sys, threading, time
mode, vip, port, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
if len(sys.argv) > 5:
    open(sys.argv[5] + "/cgroup.procs", "w").write("0")
counts, errors, mismatch, first = {}, 0, 0, []
lock = threading.Lock()
def tcp():
    s = socket.create_connection((vip, port), timeout=10)
    bad = s.getpeername() != (vip, port)
    s.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
    data = b""
    while True:
        d = s.recv(4096)
        if not d:
            break
        data += d
    s.close()
    return data.split(b"\r\n\r\n", 1)[1].decode(), bad
def udp():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(1)
    try:
        for attempt in range(3):
            s.sendto(b"x", (vip, port))
            try:
                d, a = s.recvfrom(100)
            except socket.timeout:
                continue
            return d.decode(), a != (vip, port)
        raise Exception("no answer")
    finally:
        s.close()
slow = 0
def one(f):
    global errors, mismatch, slow
    try:
        t0 = time.time()
        who, bad = f()
        with lock:
            counts[who] = counts.get(who, 0) + 1
            mismatch += bad
            slow += time.time() - t0 > 0.9
    except Exception as e:
        with lock:
            errors += 1
            if len(first) < 3:
                first.append("%.3f %s" % (time.time(), repr(e)))
if mode == "load":
    # n seconds of new connections from 4 threads.
    end = time.time() + n
    def loop():
        while time.time() < end:
            one(tcp)
    ts = [threading.Thread(target=loop) for i in range(4)]
    [t.start() for t in ts]
    [t.join() for t in ts]
else:
    for i in range(n):
        one(tcp if mode == "tcp" else udp)
print(json.dumps({"counts": counts, "errors": errors, "peer_mismatch": mismatch,
                  "end": time.time(),
                  "first_errors": first, "slow": slow}))
)";

// udp_switch.py VIP PORT TRIGGER [CGROUP]: a UDP socket connect()ed to VIP:PORT talks to
// a backend ("first"), and an unconnected socket sending to the VIP too (sockets are
// made until one reaches the same backend). Once TRIGGER exists (the test removed that
// backend), both keep exchanging every 50 ms, the connected one connecting again after
// any error, until both reach another backend (10 s at most). Prints {"first": ip,
// "connected": [events], "unconnected": [events]}, an event being "reply <ip>",
// "timeout", "<op> <errno name>" or "reconnect".
constexpr char kUdpSwitchScript[] = R"(import errno, json, os, socket, sys, time
vip, port, trigger = sys.argv[1], int(sys.argv[2]), sys.argv[3]
if len(sys.argv) > 4:
    open(sys.argv[4] + "/cgroup.procs", "w").write("0")
c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
c.settimeout(0.5)
c.connect((vip, port))
c.send(b"x")
first = c.recv(100).decode()
u = None
for i in range(50):
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.settimeout(0.5)
    u.sendto(b"x", (vip, port))
    d, a = u.recvfrom(100)
    if d.decode() == first and a == (vip, port):
        break
    u.close()
    u = None
print(first, flush=True)
while not os.path.exists(trigger):
    time.sleep(0.02)
events = {"connected": [], "unconnected": []}
def note(name, e):
    if not events[name] or events[name][-1] != e:
        events[name].append(e)
def done(name):
    return events[name] and events[name][-1].startswith("reply ") and events[name][-1] != "reply " + first
end = time.time() + 10
while time.time() < end and not (done("connected") and (u is None or done("unconnected"))):
    if not done("connected"):
        op = "send"
        try:
            c.send(b"x")
            op = "recv"
            note("connected", "reply " + c.recv(100).decode())
        except socket.timeout:
            note("connected", "timeout")
        except OSError as e:
            note("connected", op + " " + errno.errorcode.get(e.errno, str(e.errno)))
            c.connect((vip, port))
            note("connected", "reconnect")
    if u is not None and not done("unconnected"):
        try:
            u.sendto(b"x", (vip, port))
            d, a = u.recvfrom(100)
            note("unconnected", "reply " + d.decode() + ("" if a == (vip, port) else " from " + a[0]))
        except socket.timeout:
            note("unconnected", "timeout")
    time.sleep(0.05)
if u is None:
    events["unconnected"] = ["no unconnected socket reached " + first]
print(json.dumps(dict(first=first, **events)), flush=True)
)";

struct Pod {
  std::string name;
  std::string id;     // container ID
  std::string netns;  // name under /run/netns
  std::string ip;
  int node = 0;
  std::string labels;
};

class LbClusterTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (geteuid() != 0) return;
    ClusterOptions o;
    o.lb = true;
    o.extra_loomd_flags = {"--overlay"};
    auto c = Cluster::Create(o);
    if (!c.ok()) {
      setup_error_ = std::string(c.status().message());
      return;
    }
    cluster_ = c->release();
    absl::Status s = BuildPods();
    if (!s.ok()) setup_error_ = std::string(s.message());
  }

  static void TearDownTestSuite() {
    for (auto& p : servers_) (void)p->Signal(SIGKILL);
    servers_.clear();
    if (cluster_ != nullptr) {
      for (const Pod& p : pods_) (void)RunCommand({"ip", "netns", "delete", p.netns});
      delete cluster_;  // kills loomd, removes namespaces, pins and cgroups
      cluster_ = nullptr;
    }
    pods_.clear();
  }

  void SetUp() override {
    LOOM_REQUIRE_ROOT();
    ASSERT_TRUE(setup_error_.empty()) << setup_error_;
    ASSERT_NE(cluster_, nullptr);
  }

  static std::string WriteFile(const std::string& name, const std::string& text) {
    std::string path = StrCat(cluster_->node(0).dir, "/", name);
    std::ofstream(path) << text;
    return path;
  }

  static absl::StatusOr<std::string> Loomctl(int node, std::vector<std::string> args) {
    std::vector<std::string> argv = {StrCat(LOOM_BIN_DIR, "/loomctl"),
                                     StrCat("--socket=", cluster_->node(node).api_socket)};
    argv.insert(argv.end(), args.begin(), args.end());
    return RunChecked(argv);
  }

  // CNI ADD through the real plugin, in the node's namespace, as a runtime runs it.
  static absl::StatusOr<Pod> AddPod(int node, const std::string& name, const std::string& labels) {
    Pod p;
    p.name = name;
    p.node = node;
    p.labels = labels;
    p.id = StrCat(cluster_->prefix(), name);
    p.netns = StrCat(cluster_->prefix(), "-", name);
    RETURN_IF_ERROR(RunChecked({"ip", "netns", "add", p.netns}).status());
    pods_.push_back(p);
    RETURN_IF_ERROR(RunChecked({"ip", "-n", p.netns, "link", "set", "lo", "up"}).status());
    ASSIGN_OR_RETURN(std::string out, Plugin("ADD", p));
    Json j = Json::parse(out, nullptr, false);
    if (!j.is_object() || !j.contains("ips")) return absl::InternalError(StrCat("ADD: ", out));
    std::string cidr = j["ips"][0].value("address", "");
    p.ip = cidr.substr(0, cidr.find('/'));
    pods_.back() = p;
    return p;
  }

  static absl::StatusOr<std::string> Plugin(const std::string& command, const Pod& p) {
    const auto& n = cluster_->node(p.node);
    std::string conf = StrCat(n.dir, "/cni.json");
    std::ofstream(conf) << Json{{"cniVersion", "1.0.0"}, {"name", "loom"}, {"type", "loom"},
                                {"socket", n.api_socket}}
                               .dump();
    return RunChecked({"ip", "netns", "exec", n.netns, "env", StrCat("CNI_COMMAND=", command),
                       StrCat("CNI_CONTAINERID=", p.id), StrCat("CNI_NETNS=/run/netns/", p.netns),
                       "CNI_IFNAME=eth0", StrCat("CNI_PATH=", LOOM_BIN_DIR),
                       StrCat("CNI_ARGS=K8S_POD_NAMESPACE=default;K8S_POD_NAME=", p.name,
                              ";LOOM_LABELS=", p.labels),
                       "sh", "-c", StrCat("exec ", LOOM_BIN_DIR, "/loom < ", conf)});
  }

  static absl::Status StartServer(const Pod& p, std::vector<std::string> argv) {
    std::vector<std::string> full = {"ip", "netns", "exec", p.netns};
    full.insert(full.end(), argv.begin(), argv.end());
    SubprocessOptions so;
    so.log_path = StrCat(cluster_->node(p.node).dir, "/server-", p.name, ".log");
    ASSIGN_OR_RETURN(auto proc, Subprocess::Start(full, so));
    servers_.push_back(std::move(proc));
    return absl::OkStatus();
  }

  static absl::Status BuildPods() {
    std::string backend = WriteFile("backend.py", kBackendScript);
    WriteFile("client.py", kClientScript);
    WriteFile("udp_switch.py", kUdpSwitchScript);
    for (int node = 0; node < 3; ++node) {
      ASSIGN_OR_RETURN(Pod web, AddPod(node, StrCat("web", node + 1), "app=web"));
      RETURN_IF_ERROR(StartServer(web, {"python3", backend, web.ip}));
      web_.push_back(web);
      ASSIGN_OR_RETURN(Pod client, AddPod(node, StrCat("client", node + 1), "role=client"));
      clients_.push_back(client);
      // The client processes' cgroup: a child of the node's Loom cgroup.
      std::string cg = StrCat(cluster_->node(node).cgroup2_dir, "/clients");
      if (mkdir(cg.c_str(), 0755) != 0 && errno != EEXIST) return ErrnoToStatus(errno, cg);
    }
    // Seven more backends for the scaling test, not selected until then.
    for (int i = 0; i < 7; ++i) {
      ASSIGN_OR_RETURN(Pod extra, AddPod(i % 3, StrCat("extra", i + 1), "app=spare"));
      RETURN_IF_ERROR(StartServer(extra, {"python3", backend, extra.ip}));
      extra_.push_back(extra);
    }
    ASSIGN_OR_RETURN(Pod iperf, AddPod(1, "iperf", "app=iperf"));
    RETURN_IF_ERROR(StartServer(iperf, {"iperf3", "-s", "-p", "5201"}));

    RETURN_IF_ERROR(Loomctl(0, {"apply", "-f", WriteFile("services.yaml", R"(apiVersion: loom/v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports:
  - {name: http, port: 80, targetPort: 8080, protocol: TCP}
  - {name: udp, port: 80, targetPort: 8080, protocol: UDP}
---
apiVersion: loom/v1
kind: Service
metadata: {name: sticky}
spec:
  selector: {app: web}
  sessionAffinity: ClientIP
  ports: [{port: 81, targetPort: 8080}]
---
apiVersion: loom/v1
kind: Service
metadata: {name: iperf}
spec:
  selector: {app: iperf}
  ports: [{port: 5201, targetPort: 5201}]
---
apiVersion: loom/v1
kind: Service
metadata: {name: np}
spec:
  type: NodePort
  selector: {app: web}
  ports: [{port: 82, targetPort: 8080, nodePort: 30080}]
)")}).status());
    for (const char* name : {"web", "sticky", "iperf", "np"}) {
      ASSIGN_OR_RETURN(std::string out, Loomctl(0, {"get", "services", name, "-o", "json"}));
      Json j = Json::parse(out, nullptr, false);
      if (!j.is_object()) return absl::InternalError(StrCat("get service: ", out));
      vips_[name] = j["spec"].value("clusterIP", "");
    }
    // Every node programs the services (all backends answering) before the tests.
    for (int node = 0; node < 3; ++node) {
      bool ok = false;
      for (int i = 0; i < 100 && !ok; ++i) {
        absl::StatusOr<Json> r = Client(node, "tcp", vips_["web"], 80, 30, true);
        ok = r.ok() && (*r)["counts"].size() == 3 && (*r)["errors"] == 0;
        if (!ok) absl::SleepFor(absl::Milliseconds(200));
      }
      if (!ok) return absl::DeadlineExceededError(StrCat("node", node + 1, " never balanced web: ",
                                                         cluster_->LogTail(node)));
    }
    return absl::OkStatus();
  }

  static std::vector<std::string> ClientArgv(int node, const std::string& mode,
                                             const std::string& vip, int port, int n,
                                             bool in_cgroup) {
    std::vector<std::string> argv = {"ip", "netns", "exec", clients_[node].netns, "python3",
                                     StrCat(cluster_->node(0).dir, "/client.py"), mode, vip,
                                     std::to_string(port), std::to_string(n)};
    if (in_cgroup) argv.push_back(StrCat(cluster_->node(node).cgroup2_dir, "/clients"));
    return argv;
  }

  static absl::StatusOr<Json> Client(int node, const std::string& mode, const std::string& vip,
                                     int port, int n, bool in_cgroup) {
    ASSIGN_OR_RETURN(std::string out,
                     RunChecked(ClientArgv(node, mode, vip, port, n, in_cgroup), absl::Seconds(120)));
    Json j = Json::parse(out, nullptr, false);
    if (!j.is_object()) return absl::InternalError(StrCat("client: ", out));
    return j;
  }

  // Runs the 3 nodes' clients at once; each result is checked for an even share.
  static void ExpectEvenShares(const std::string& mode, bool in_cgroup) {
    constexpr int kConnections = 3000;
    std::vector<absl::StatusOr<Json>> results(3, absl::UnknownError("not run"));
    std::vector<std::thread> threads;
    for (int node = 0; node < 3; ++node) {
      threads.emplace_back([&, node] {
        results[node] = Client(node, mode, vips_["web"], 80, kConnections, in_cgroup);
      });
    }
    for (auto& t : threads) t.join();
    for (int node = 0; node < 3; ++node) {
      SCOPED_TRACE(StrCat("client on node", node + 1, " ", mode, in_cgroup ? " socket" : " tc"));
      ASSERT_OK(results[node].status());
      const Json& r = *results[node];
      EXPECT_EQ(r["errors"], 0) << r.dump();
      EXPECT_EQ(r["peer_mismatch"], 0) << r.dump();
      ASSERT_EQ(r["counts"].size(), 3u) << r.dump();
      for (const Pod& w : web_) {
        int got = r["counts"].value(w.ip, 0);
        EXPECT_GE(got, kConnections / 3 * 9 / 10) << w.ip << " " << r.dump();
        EXPECT_LE(got, kConnections / 3 * 11 / 10) << w.ip << " " << r.dump();
      }
    }
  }

  // Writes values[i] at keys[i], all at once.
  static void PutAll(const std::vector<std::string>& keys, const std::vector<std::string>& values) {
    std::vector<std::thread> writers;
    for (size_t i = 0; i < keys.size(); ++i) {
      writers.emplace_back([&, i] { EXPECT_OK(cluster_->StorePut(keys[i], values[i])); });
    }
    for (auto& t : writers) t.join();
  }

  static std::string ReadAll(const std::string& path) {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

  static Cluster* cluster_;
  static std::string setup_error_;
  static std::vector<Pod> pods_, web_, clients_, extra_;
  static std::vector<std::unique_ptr<Subprocess>> servers_;
  static std::map<std::string, std::string> vips_;
};

Cluster* LbClusterTest::cluster_ = nullptr;
std::string LbClusterTest::setup_error_;
std::vector<Pod> LbClusterTest::pods_, LbClusterTest::web_, LbClusterTest::clients_,
    LbClusterTest::extra_;
std::vector<std::unique_ptr<Subprocess>> LbClusterTest::servers_;
std::map<std::string, std::string> LbClusterTest::vips_;

TEST_F(LbClusterTest, SocketPathSpreadsEvenlyAndNoPacketCarriesTheVip) {
  // tcpdump on every interface of every node (the pods' host veths, the overlay, the
  // underlay) while the socket-path clients run.
  std::vector<std::unique_ptr<Subprocess>> dumps;
  std::vector<std::string> logs;
  for (int node = 0; node < 3; ++node) {
    logs.push_back(StrCat(cluster_->node(node).dir, "/tcpdump-vip.log"));
    SubprocessOptions so;
    so.log_path = logs.back();
    ASSERT_OK_AND_ASSIGN(auto d, Subprocess::Start({"ip", "netns", "exec", cluster_->node(node).netns,
                                                    "tcpdump", "-i", "any", "-nn", "-l", "host",
                                                    vips_["web"]},
                                                   so));
    dumps.push_back(std::move(d));
  }
  absl::SleepFor(absl::Seconds(1));  // tcpdump is listening
  ExpectEvenShares("tcp", true);
  ExpectEvenShares("udp", true);
  for (auto& d : dumps) {
    ASSERT_OK(d->Signal(SIGINT));
    (void)d->Wait(absl::Seconds(5));
  }
  for (int node = 0; node < 3; ++node) {
    std::string log = ReadAll(logs[node]);
    EXPECT_NE(log.find("listening on any"), std::string::npos) << log;
    EXPECT_EQ(log.find(" > "), std::string::npos) << "node" << node + 1 << ": " << log.substr(0, 2000);
  }
}

TEST_F(LbClusterTest, TcPathSpreadsEvenlyForClientsOutsideTheCgroup) {
  ExpectEvenShares("tcp", false);
  ExpectEvenShares("udp", false);
}

TEST_F(LbClusterTest, ClientIpAffinityKeepsAClientOnOneBackend) {
  for (bool in_cgroup : {true, false}) {
    for (int node = 0; node < 3; ++node) {
      SCOPED_TRACE(StrCat("node", node + 1, in_cgroup ? " socket" : " tc"));
      ASSERT_OK_AND_ASSIGN(Json r, Client(node, "tcp", vips_["sticky"], 81, 40, in_cgroup));
      EXPECT_EQ(r["errors"], 0) << r.dump();
      EXPECT_EQ(r["counts"].size(), 1u) << r.dump();
    }
  }
}

TEST_F(LbClusterTest, NodePortAnswersOnEveryNodesAddress) {
  // From outside the cluster: a host on the underlay (the etcd namespace), to every
  // node's address; backends on all three nodes answer (DNAT + SNAT through the overlay).
  for (int node = 0; node < 3; ++node) {
    SCOPED_TRACE(StrCat("outside -> node", node + 1));
    ASSERT_OK_AND_ASSIGN(
        std::string out,
        RunChecked({"ip", "netns", "exec", StrCat(cluster_->prefix(), "-etcd"), "python3",
                    StrCat(cluster_->node(0).dir, "/client.py"), "tcp",
                    cluster_->node(node).underlay_ip, "30080", "90"},
                   absl::Seconds(120)));
    Json r = Json::parse(out, nullptr, false);
    ASSERT_TRUE(r.is_object()) << out;
    EXPECT_EQ(r["errors"], 0) << r.dump();
    EXPECT_EQ(r["peer_mismatch"], 0) << r.dump();
    EXPECT_EQ(r["counts"].size(), 3u) << r.dump();
  }
  // From the nodes' own pods, through both paths.
  for (int node = 0; node < 3; ++node) {
    for (bool in_cgroup : {true, false}) {
      SCOPED_TRACE(StrCat("node", node + 1, in_cgroup ? " socket" : " tc"));
      ASSERT_OK_AND_ASSIGN(
          Json r, Client(node, "tcp", cluster_->node(node).underlay_ip, 30080, 40, in_cgroup));
      EXPECT_EQ(r["errors"], 0) << r.dump();
      EXPECT_EQ(r["counts"].size(), 3u) << r.dump();
    }
  }
}

// wrk (kept-alive connections) and new connections from node1's client (socket path)
// while one backend leaves the endpoints.
TEST_F(LbClusterTest, BackendRemovedUnderLoadFailsNoRequest) {
  const Pod& leaving = web_[2];
  std::string key = StrCat("/loom/pods/", "node3/", leaving.id);
  ASSERT_OK_AND_ASSIGN(std::string pod_json, cluster_->StoreGet(key));
  ASSERT_FALSE(pod_json.empty()) << key;
  std::string log = StrCat(cluster_->node(0).dir, "/wrk-remove.log");
  SubprocessOptions so;
  so.log_path = log;
  ASSERT_OK_AND_ASSIGN(
      auto wrk, Subprocess::Start({"ip", "netns", "exec", clients_[0].netns, "sh", "-c",
                                   StrCat("echo 0 > ", cluster_->node(0).cgroup2_dir,
                                          "/clients/cgroup.procs && exec wrk -t1 -c4 -d6s http://",
                                          vips_["web"], "/")},
                                  so));
  // wrk keeps its connections; new ones (4 threads, one request each) churn through the LB.
  absl::StatusOr<Json> churn;
  std::thread churner([&] { churn = Client(0, "load", vips_["web"], 80, 6, true); });
  absl::SleepFor(absl::Seconds(2));
  ASSERT_OK(cluster_->StoreDelete(key));
  absl::SleepFor(absl::Seconds(1));
  // New connections no longer reach it.
  ASSERT_OK_AND_ASSIGN(Json r, Client(1, "tcp", vips_["web"], 80, 60, true));
  EXPECT_EQ(r["counts"].value(leaving.ip, 0), 0) << r.dump();
  ASSERT_OK_AND_ASSIGN(int code, wrk->Wait(absl::Seconds(20)));
  churner.join();
  ASSERT_OK(churn.status());
  EXPECT_EQ((*churn)["errors"], 0) << churn->dump();
  EXPECT_EQ((*churn)["counts"].size(), 3u) << churn->dump();
  std::string out = ReadAll(log);
  EXPECT_EQ(code, 0) << out;
  EXPECT_NE(out.find("requests in"), std::string::npos) << out;
  EXPECT_EQ(out.find("Socket errors"), std::string::npos) << out;
  EXPECT_EQ(out.find("Non-2xx"), std::string::npos) << out;
  ASSERT_OK(cluster_->StorePut(key, pod_json));  // back for the next tests
  absl::SleepFor(absl::Milliseconds(500));
}

// A UDP backend leaves while a client talks to it through a connected and an unconnected
// socket. Socket path: the connected socket is ended by loomd (bpf_sock_destroy), which
// the application sees as in docs/lb.md (ECONNABORTED, or EDESTADDRREQ on a send():
// the kernel disconnected it); connecting again reaches a live backend. tc path: the same socket's
// next datagram goes to a live backend, no error. Unconnected sockets: the next datagram
// goes to a live backend on both paths.
TEST_F(LbClusterTest, UdpFlowsToARemovedBackendReachALiveOne) {
  for (bool in_cgroup : {true, false}) {
    SCOPED_TRACE(in_cgroup ? "socket" : "tc");
    std::string trigger = StrCat(cluster_->node(0).dir, "/udp-trigger");
    unlink(trigger.c_str());
    std::vector<std::string> argv = {"ip", "netns", "exec", clients_[0].netns, "python3",
                                     StrCat(cluster_->node(0).dir, "/udp_switch.py"),
                                     vips_["web"], "80", trigger};
    if (in_cgroup) argv.push_back(StrCat(cluster_->node(0).cgroup2_dir, "/clients"));
    std::string log = StrCat(cluster_->node(0).dir, "/udp-switch.log");
    unlink(log.c_str());
    SubprocessOptions so;
    so.log_path = log;
    ASSERT_OK_AND_ASSIGN(auto client, Subprocess::Start(argv, so));
    std::string first;
    for (int i = 0; i < 100 && first.empty(); ++i) {
      absl::SleepFor(absl::Milliseconds(100));
      std::string out = ReadAll(log);
      if (out.find('\n') != std::string::npos) first = out.substr(0, out.find('\n'));
    }
    ASSERT_FALSE(first.empty()) << ReadAll(log);
    const Pod* leaving = nullptr;
    for (const Pod& w : web_) {
      if (w.ip == first) leaving = &w;
    }
    ASSERT_NE(leaving, nullptr) << first;
    std::string key = StrCat("/loom/pods/node", leaving->node + 1, "/", leaving->id);
    ASSERT_OK_AND_ASSIGN(std::string pod_json, cluster_->StoreGet(key));
    ASSERT_OK(cluster_->StoreDelete(key));
    std::ofstream(trigger) << "go";
    absl::StatusOr<int> code = client->Wait(absl::Seconds(30));
    ASSERT_OK(cluster_->StorePut(key, pod_json));  // back for the next tests
    ASSERT_OK(code.status());
    std::string out = ReadAll(log);
    ASSERT_EQ(*code, 0) << out;
    Json r = Json::parse(out.substr(out.find('\n') + 1), nullptr, false);
    ASSERT_TRUE(r.is_object()) << out;
    std::cout << (in_cgroup ? "socket" : "tc") << " path: " << r.dump() << "\n";
    std::vector<std::string> connected = r["connected"], unconnected = r["unconnected"];
    // Answers from the backend until loomd applied the removal, then:
    std::erase(connected, StrCat("reply ", first));
    std::erase(unconnected, StrCat("reply ", first));
    ASSERT_FALSE(connected.empty()) << out;
    ASSERT_FALSE(unconnected.empty()) << out;
    std::string live = connected.back().substr(6);
    EXPECT_TRUE(live != first && connected.back().starts_with("reply 10.244.")) << out;
    EXPECT_TRUE(unconnected.size() == 1 && unconnected[0].starts_with("reply 10.244.") &&
                unconnected[0].find(" from ") == std::string::npos)
        << out;
    if (in_cgroup) {
      // Ended while waiting in recv() (or between send() and recv()): that recv() fails.
      // Ended before a send(): it fails (disconnected), and the error stays pending until
      // the first call after connecting again.
      connected.pop_back();
      EXPECT_TRUE(connected == std::vector<std::string>({"recv ECONNABORTED", "reconnect"}) ||
                  connected == std::vector<std::string>({"send EDESTADDRREQ", "reconnect",
                                                         "send ECONNABORTED", "reconnect"}))
          << out;
    } else {
      EXPECT_EQ(connected.size(), 1u) << out;
    }
    absl::SleepFor(absl::Milliseconds(500));  // the pod is back everywhere
  }
}

// Backends 3 -> 10 -> 3 every 200 ms for 30 s while wrk (kept-alive connections) runs
// from node2's client and new connections churn from node2 (tc) and node3 (socket
// programs), then the seven extra backends leave the service while the churn goes on
// (connections in flight to them finish: they keep their backend on both paths): not
// one failed request.
TEST_F(LbClusterTest, ScalingEvery200msUnderLoadFailsNoRequest) {
  // Scaling down marks the extra backends terminating (ready=false: they keep serving
  // what they have, get nothing new), as a Deployment's scale-down does; scaling up
  // makes them ready again.
  std::vector<std::string> keys, spare, selected, terminating;
  for (const Pod& p : extra_) {
    std::string key = StrCat("/loom/pods/node", p.node + 1, "/", p.id);
    ASSERT_OK_AND_ASSIGN(std::string json, cluster_->StoreGet(key));
    ASSERT_NE(json.find("\"spare\""), std::string::npos) << json;
    ASSERT_NE(json.find("\"ready\":true"), std::string::npos) << json;
    keys.push_back(key);
    spare.push_back(json);
    std::string web = json;
    web.replace(web.find("\"spare\""), 7, "\"web\"");
    selected.push_back(web);
    web.replace(web.find("\"ready\":true"), 12, "\"ready\":false");
    terminating.push_back(web);
  }
  for (size_t i = 0; i < keys.size(); ++i) ASSERT_OK(cluster_->StorePut(keys[i], terminating[i]));
  std::string log = StrCat(cluster_->node(1).dir, "/wrk-scale.log");
  SubprocessOptions so;
  so.log_path = log;
  ASSERT_OK_AND_ASSIGN(auto wrk, Subprocess::Start({"ip", "netns", "exec", clients_[1].netns,
                                                    "wrk", "-t1", "-c4", "-d35s",
                                                    StrCat("http://", vips_["web"], "/")},
                                                   so));
  // New connections all along, through tc (outside the cgroup), and through the socket
  // programs from node3, for 4 s more than the flips (the removal below takes a while
  // on a loaded machine).
  absl::StatusOr<Json> churn_tc, churn_sock;
  std::thread churner_tc([&] { churn_tc = Client(1, "load", vips_["web"], 80, 34, false); });
  std::thread churner_sock([&] { churn_sock = Client(2, "load", vips_["web"], 80, 34, true); });
  absl::Time end = absl::Now() + absl::Seconds(30);
  bool up = false;
  int flips = 0;
  while (absl::Now() < end) {
    absl::Time next = absl::Now() + absl::Milliseconds(200);
    up = !up;
    PutAll(keys, up ? selected : terminating);
    ++flips;
    absl::SleepFor(next - absl::Now());
  }
  // The extras leave the service (from up or down, whichever the last flip left).
  PutAll(keys, spare);
  double removed_at = absl::ToDoubleSeconds(absl::Now() - absl::UnixEpoch());
  ASSERT_OK_AND_ASSIGN(int code, wrk->Wait(absl::Seconds(30)));
  churner_tc.join();
  churner_sock.join();
  for (const absl::StatusOr<Json>* churn : {&churn_tc, &churn_sock}) {
    ASSERT_OK(churn->status());
    EXPECT_GE((**churn)["counts"].size(), 4u) << (*churn)->dump();  // extras were reached
    std::cout << "churn: " << (*churn)->dump() << "\n";
  }
  for (const absl::StatusOr<Json>* churn : {&churn_tc, &churn_sock}) {
    EXPECT_EQ((**churn)["errors"], 0) << (*churn)->dump();
    // The churn went on after the extras left.
    EXPECT_GT((**churn)["end"].get<double>() - removed_at, 0.5) << (*churn)->dump();
  }
  std::string out = ReadAll(log);
  EXPECT_GE(flips, 60);
  EXPECT_EQ(code, 0) << out;
  EXPECT_NE(out.find("requests in"), std::string::npos) << out;
  EXPECT_EQ(out.find("Socket errors"), std::string::npos) << out;
  EXPECT_EQ(out.find("Non-2xx"), std::string::npos) << out;
  std::cout << "scaling: " << flips << " flips; wrk: " << out << "\n";
}

// iperf3 through the iperf VIP from node1's client via tc while node1's loomd is
// killed and restarted: the pinned maps and filters keep the flow going.
TEST_F(LbClusterTest, LoomdRestartDuringIperfFlowKeepsTheFlow) {
  for (bool in_cgroup : {false, true}) {
    SCOPED_TRACE(in_cgroup ? "socket" : "tc");
    std::string log = StrCat(cluster_->node(0).dir, "/iperf.log");
    SubprocessOptions so;
    so.log_path = log;
    std::string join = in_cgroup ? StrCat("echo 0 > ", cluster_->node(0).cgroup2_dir,
                                          "/clients/cgroup.procs && ")
                                 : "";
    ASSERT_OK_AND_ASSIGN(
        auto iperf, Subprocess::Start({"ip", "netns", "exec", clients_[0].netns, "sh", "-c",
                                       StrCat(join, "exec iperf3 -c ", vips_["iperf"],
                                              " -p 5201 -t 6 -b 200M -i 1 --connect-timeout 3000")},
                                      so));
    absl::SleepFor(absl::Seconds(2));
    ASSERT_OK(cluster_->StopLoomd(0, SIGKILL));
    absl::SleepFor(absl::Milliseconds(500));
    ASSERT_OK(cluster_->StartLoomd(0));
    ASSERT_OK_AND_ASSIGN(int code, iperf->Wait(absl::Seconds(30)));
    std::string out = ReadAll(log);
    EXPECT_EQ(code, 0) << out;
    EXPECT_NE(out.find("receiver"), std::string::npos) << out;
    // No one-second interval without traffic.
    EXPECT_EQ(out.find(" 0.00 bits/sec"), std::string::npos) << out;
  }
  // The restarted loomd still balances (it reused the pinned state).
  ASSERT_OK_AND_ASSIGN(Json r, Client(0, "tcp", vips_["web"], 80, 60, true));
  EXPECT_EQ(r["counts"].size(), 3u) << r.dump();
}

// Last: takes node3 out of Loom.
TEST_F(LbClusterTest, UninstallRemovesEverythingLoomAttached) {
  const int node = 2;
  ASSERT_OK(cluster_->StopLoomd(node, SIGTERM));
  RemoveCgroupTree(StrCat(cluster_->node(node).cgroup2_dir, "/clients"));
  std::vector<std::string> argv = {"ip", "netns", "exec", cluster_->node(node).netns};
  for (const std::string& f : cluster_->LoomdFlags(node)) argv.push_back(f);
  argv.push_back("--uninstall");
  ASSERT_OK_AND_ASSIGN(CommandResult r, RunCommand(argv));
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("tc filters"), std::string::npos) << r.out;
  struct stat st;
  EXPECT_NE(stat(cluster_->node(node).bpffs_dir.c_str(), &st), 0);
  EXPECT_NE(stat(cluster_->node(node).cgroup2_dir.c_str(), &st), 0);
  ASSERT_OK_AND_ASSIGN(std::string filters,
                       cluster_->ExecInNode(node, {"sh", "-c",
                                                   "for d in $(ls /sys/class/net); do tc filter "
                                                   "show dev $d ingress; tc filter show dev $d "
                                                   "egress; done 2>/dev/null"}));
  EXPECT_EQ(filters.find("lb_tc_"), std::string::npos) << filters;
  ASSERT_OK_AND_ASSIGN(std::string links, cluster_->ExecInNode(node, {"ip", "link"}));
  EXPECT_EQ(links.find("loom.1"), std::string::npos) << links;
  ASSERT_OK_AND_ASSIGN(std::string tables, cluster_->ExecInNode(node, {"nft", "list", "tables"}));
  EXPECT_EQ(tables.find("loom"), std::string::npos) << tables;
  // A second run finds nothing left and still succeeds.
  ASSERT_OK_AND_ASSIGN(r, RunCommand(argv));
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
}

}  // namespace
}  // namespace loom::testing
