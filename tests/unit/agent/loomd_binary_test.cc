// Runs build/bin/loomd and build/bin/loomctl as a user would, without root: temporary
// state and run dirs, the loopback interface as the underlay, a free loopback port for
// metrics. Covers start-up, status, SIGTERM, and every bad input of the issue: each
// fails with one clear line on stderr, a non-zero exit, and nothing left behind.
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "agent/store/store.h"
#include "common/http/client.h"
#include "common/json.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/etcd_server.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/subprocess.h"

namespace loom {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;

const std::string kLoomd = std::string(LOOM_BIN_DIR) + "/loomd";
const std::string kLoomctl = std::string(LOOM_BIN_DIR) + "/loomctl";

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> out;
  for (absl::string_view l : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    out.emplace_back(l);
  }
  return out;
}

uint16_t FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

// These loomd run in the machine's own network namespace: never with the overlay
// (a VXLAN device, nftables rules) nor the load balancer (BPF on the machine's cgroup),
// which the namespace tests cover.
std::vector<std::string> WithoutOverlay(std::vector<std::string> argv) {
  if (argv.empty() || argv[0].find("loomd") == std::string::npos) return argv;
  bool overlay = false, lb = false;
  for (const std::string& a : argv) {
    overlay = overlay || a.rfind("--overlay", 0) == 0;
    lb = lb || a.rfind("--lb", 0) == 0;
  }
  if (!overlay) argv.push_back("--overlay=false");
  if (!lb) argv.push_back("--lb=false");
  return argv;
}

// A child process whose stdout and stderr go to one log file.
class Child {
 public:
  Child(const std::vector<std::string>& argv, const std::string& log_path,
        std::vector<std::string> env = {})
      : log_path_(log_path) {
    auto p = testing::Subprocess::Start(WithoutOverlay(argv), {log_path, std::move(env)});
    EXPECT_TRUE(p.ok()) << p.status();
    if (p.ok()) process_ = *std::move(p);
  }
  // The exit code, or -1 if it did not exit in time.
  int Wait(absl::Duration timeout = absl::Seconds(20)) {
    if (!process_) return -1;
    absl::StatusOr<int> rc = process_->Wait(timeout);
    return rc.ok() ? *rc : -1;
  }
  bool Running() { return process_ && process_->running(); }
  void Signal(int sig) {
    if (process_) process_->Signal(sig).IgnoreError();
  }
  std::string Log() const { return ReadAll(log_path_); }

 private:
  std::string log_path_;
  std::unique_ptr<testing::Subprocess> process_;
};

class LoomdBinaryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/loomd-bin-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    state_ = dir_ + "/state";
    run_ = dir_ + "/run";
    socket_ = run_ + "/loomd.sock";
    port_ = FreePort();
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::vector<std::string> Args(std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {kLoomd,
                                     "--node-name=test-node",
                                     "--state-dir=" + state_,
                                     "--run-dir=" + run_,
                                     "--metrics-addr=127.0.0.1:" + std::to_string(port_),
                                     "--underlay-iface=lo",
                                     "--node-lease-ttl=5s",
                                     // DNS on loopback (already local: nothing is added to
                                     // the machine's lo) and never the machine's resolver.
                                     "--dns-addr=127.0.0.1:" + std::to_string(FreePort()),
                                     "--dns-upstream=none",
                                     // The ingress on loopback, never the machine's :80/:443.
                                     "--ingress-addr=127.0.0.1:" + std::to_string(FreePort()),
                                     "--ingress-tls-addr=127.0.0.1:" + std::to_string(FreePort())};
    for (auto& e : extra) args.push_back(e);
    return args;
  }

  std::unique_ptr<Child> Start(std::vector<std::string> args, const std::string& name = "loomd") {
    return std::make_unique<Child>(args, dir_ + "/" + name + ".log");
  }

  // Polls /readyz until 200 (bounded).
  bool WaitReady(Child& child, uint16_t port) {
    auto client = http::HttpClient::ForTcp("127.0.0.1", port, absl::Seconds(1));
    for (int i = 0; i < 200 && child.Running(); ++i) {
      auto r = client.Get("/readyz");
      if (r.ok() && r->status == 200) return true;
      absl::SleepFor(absl::Milliseconds(50));
    }
    return false;
  }

  // Runs loomd expecting it to fail; checks the one stderr line and what is left.
  void ExpectFailsCleanly(const std::vector<std::string>& args, int want_code,
                          const std::string& want_in_line, const std::string& name) {
    auto child = Start(args, name);
    int rc = child->Wait();
    EXPECT_EQ(rc, want_code) << child->Log();
    std::vector<std::string> lines = Lines(child->Log());
    ASSERT_EQ(lines.size(), 1u) << child->Log();
    EXPECT_THAT(lines[0], HasSubstr(want_in_line));
    EXPECT_FALSE(fs::exists(run_)) << "run dir left behind";
    EXPECT_FALSE(fs::exists(socket_)) << "socket left behind";
  }

  std::string dir_, state_, run_, socket_;
  uint16_t port_ = 0;
};

TEST_F(LoomdBinaryTest, StartsServesStatusAndStopsCleanly) {
  auto loomd = Start(Args());
  ASSERT_TRUE(WaitReady(*loomd, port_)) << loomd->Log();

  struct stat st;
  ASSERT_EQ(stat(socket_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(stat(run_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0755u);

  auto metrics = http::HttpClient::ForTcp("127.0.0.1", port_);
  ASSERT_OK_AND_ASSIGN(http::Response healthz, metrics.Get("/healthz"));
  EXPECT_EQ(healthz.status, 200);
  ASSERT_OK_AND_ASSIGN(http::Response m, metrics.Get("/metrics"));
  EXPECT_EQ(m.status, 200);
  EXPECT_THAT(m.content_type, HasSubstr("text/plain; version=0.0.4"));
  EXPECT_THAT(m.body, HasSubstr("loom_build_info{version=\""));
  // The node key, then this node's health (node_health.h), once it was checked.
  EXPECT_THAT(m.body, ::testing::ContainsRegex("loom_store_requests_total\\{op=\"put\",result=\"ok\"\\} [12]\n"));
  EXPECT_THAT(m.body, HasSubstr("# TYPE loom_node_lease_renewals_total counter\n"));
  EXPECT_THAT(m.body, HasSubstr("process_start_time_seconds "));

  ASSERT_OK_AND_ASSIGN(http::Response status,
                       http::HttpClient::ForUnixSocket(socket_).Get("/v1/status"));
  ASSERT_EQ(status.status, 200);
  ASSERT_OK_AND_ASSIGN(Json s, ParseJson(status.body));
  EXPECT_EQ(s["node"], "test-node");
  EXPECT_EQ(s["ready"], true);
  EXPECT_EQ(s["store"]["kind"], "embedded");
  EXPECT_EQ(s["store"]["healthy"], true);
  EXPECT_GT(s["store"]["revision"].get<int64_t>(), 0);

  // loomctl, by flag and by environment.
  {
    Child ctl({kLoomctl, "--socket", socket_, "status", "-o", "json"}, dir_ + "/ctl.log");
    EXPECT_EQ(ctl.Wait(), 0) << ctl.Log();
    ASSERT_OK_AND_ASSIGN(Json out, ParseJson(ctl.Log()));
    EXPECT_EQ(out["node"], "test-node");
  }
  {
    Child ctl({kLoomctl, "status"}, dir_ + "/ctl2.log", {"LOOM_SOCKET=" + socket_});
    EXPECT_EQ(ctl.Wait(), 0) << ctl.Log();
    EXPECT_THAT(ctl.Log(), HasSubstr("test-node"));
    EXPECT_THAT(ctl.Log(), HasSubstr("READY"));
  }

  loomd->Signal(SIGTERM);
  EXPECT_EQ(loomd->Wait(), 0) << loomd->Log();
  EXPECT_FALSE(fs::exists(socket_));
  EXPECT_THAT(loomd->Log(), HasSubstr("lease kept"));

  // The node key is in the store, on the lease named in <state-dir>/node-lease.
  ASSERT_OK_AND_ASSIGN(auto store, store::OpenStore("embedded", state_));
  ASSERT_OK_AND_ASSIGN(auto kv, store->Get("/loom/nodes/test-node"));
  ASSERT_TRUE(kv.has_value());
  ASSERT_OK_AND_ASSIGN(Json node, ParseJson(kv->value));
  EXPECT_EQ(node["name"], "test-node");
  EXPECT_EQ(node["underlayIP"], "127.0.0.1");
  EXPECT_EQ(node["version"], s["version"]);
  EXPECT_TRUE(node["capacity"]["cpus"].get<int64_t>() > 0);
  std::string lease_text = ReadAll(state_ + "/node-lease");
  EXPECT_EQ(std::to_string(kv->lease) + " embedded test-node\n", lease_text);
}

TEST_F(LoomdBinaryTest, RestartReusesTheLiveLease) {
  std::string first_lease;
  {
    auto loomd = Start(Args());
    ASSERT_TRUE(WaitReady(*loomd, port_)) << loomd->Log();
    loomd->Signal(SIGTERM);
    ASSERT_EQ(loomd->Wait(), 0);
    first_lease = ReadAll(state_ + "/node-lease");
  }
  auto loomd = Start(Args(), "loomd2");
  ASSERT_TRUE(WaitReady(*loomd, port_)) << loomd->Log();
  EXPECT_THAT(loomd->Log(), HasSubstr("reusing live node lease"));
  EXPECT_EQ(ReadAll(state_ + "/node-lease"), first_lease);
  loomd->Signal(SIGINT);
  EXPECT_EQ(loomd->Wait(), 0);
}

TEST_F(LoomdBinaryTest, UnknownFlag) {
  ExpectFailsCleanly(Args({"--bogus-flag=1"}), 1, "unknown command line flag 'bogus-flag'",
                     "unknown");
}

TEST_F(LoomdBinaryTest, BadCidr) {
  ExpectFailsCleanly(Args({"--cluster-cidr=10.244.0.0/33"}), 2,
                     "loomd: invalid --cluster-cidr \"10.244.0.0/33\": prefix length", "cidr");
}

TEST_F(LoomdBinaryTest, BadPort) {
  ExpectFailsCleanly(Args({"--vxlan-port=70000"}), 2, "invalid --vxlan-port \"70000\"", "port");
}

TEST_F(LoomdBinaryTest, UnreachableEtcd) {
  ExpectFailsCleanly(Args({"--store=etcd://127.0.0.1:1"}), 1, "etcd://127.0.0.1:1", "etcd");
  EXPECT_FALSE(fs::exists(state_));
}

TEST_F(LoomdBinaryTest, UnwritableStateDir) {
  std::string file = dir_ + "/regular-file";
  std::ofstream(file) << "x";
  ExpectFailsCleanly(Args({"--state-dir=" + file + "/state"}), 1, file + "/state", "state");
}

TEST_F(LoomdBinaryTest, NoSuchUnderlayInterface) {
  ExpectFailsCleanly(Args({"--underlay-iface=nosuch0"}), 1, "nosuch0", "iface");
}

TEST_F(LoomdBinaryTest, SocketInUseByAnotherLoomd) {
  auto first = Start(Args());
  ASSERT_TRUE(WaitReady(*first, port_)) << first->Log();

  // A second agent on the same socket, everything else its own.
  std::string run2 = dir_ + "/run2";
  auto second = Start({kLoomd, "--node-name=other", "--state-dir=" + dir_ + "/state2",
                       "--run-dir=" + run2, "--api-socket=" + socket_,
                       "--metrics-addr=127.0.0.1:" + std::to_string(FreePort()),
                       "--underlay-iface=lo", "--dns-addr=127.0.0.1:" + std::to_string(FreePort()),
                       "--dns-upstream=none", "--ingress=false"},
                      "second");
  EXPECT_EQ(second->Wait(), 1);
  std::vector<std::string> lines = Lines(second->Log());
  ASSERT_EQ(lines.size(), 1u) << second->Log();
  EXPECT_THAT(lines[0], HasSubstr("api socket " + socket_ + ": in use by another process"));
  EXPECT_FALSE(fs::exists(run2));
  EXPECT_FALSE(fs::exists(dir_ + "/state2"));

  // The first one is untouched.
  ASSERT_OK_AND_ASSIGN(http::Response r,
                       http::HttpClient::ForUnixSocket(socket_).Get("/v1/status"));
  EXPECT_EQ(r.status, 200);
  first->Signal(SIGTERM);
  EXPECT_EQ(first->Wait(), 0);
}

TEST_F(LoomdBinaryTest, MetricsAddressInUse) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port_);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(listen(fd, 1), 0);
  ExpectFailsCleanly(Args(), 1, "metrics address: listen on 127.0.0.1:", "metrics");
  close(fd);
  EXPECT_FALSE(fs::exists(state_));
}

TEST_F(LoomdBinaryTest, DnsAddressInUseFailsStartCleanly) {
  uint16_t dns_port = FreePort();
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(dns_port);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  auto loomd = Start(Args({"--dns-addr=127.0.0.1:" + std::to_string(dns_port)}), "dns");
  EXPECT_EQ(loomd->Wait(), 1);
  close(fd);
  std::vector<std::string> lines = Lines(loomd->Log());
  ASSERT_FALSE(lines.empty());
  EXPECT_THAT(lines.back(), HasSubstr("level=error"));
  EXPECT_THAT(lines.back(),
              HasSubstr("dns: dns udp listen 127.0.0.1:" + std::to_string(dns_port)));
  EXPECT_FALSE(fs::exists(socket_)) << "socket left behind";
}

TEST_F(LoomdBinaryTest, LoomctlWithoutLoomd) {
  Child ctl({kLoomctl, "--socket", socket_, "status"}, dir_ + "/ctl.log");
  EXPECT_EQ(ctl.Wait(), 1);
  EXPECT_EQ(ctl.Log(), "loomctl: cannot reach loomd at " + socket_ +
                           ": No such file or directory\n");
}

// kill -9 leaves a stale socket and a live lease: the next loomd replaces the socket,
// reuses the lease, and the node key stays.
TEST_F(LoomdBinaryTest, RestartAfterKill9ReplacesStaleSocket) {
  {
    auto loomd = Start(Args());
    ASSERT_TRUE(WaitReady(*loomd, port_)) << loomd->Log();
    loomd->Signal(SIGKILL);
    loomd->Wait();
  }
  ASSERT_TRUE(fs::exists(socket_));
  std::string lease = ReadAll(state_ + "/node-lease");
  auto loomd = Start(Args(), "loomd2");
  ASSERT_TRUE(WaitReady(*loomd, port_)) << loomd->Log();
  EXPECT_THAT(loomd->Log(), HasSubstr("removed stale socket"));
  EXPECT_THAT(loomd->Log(), HasSubstr("reusing live node lease"));
  EXPECT_EQ(ReadAll(state_ + "/node-lease"), lease);
  loomd->Signal(SIGTERM);
  EXPECT_EQ(loomd->Wait(), 0);
  EXPECT_FALSE(fs::exists(socket_));
}

// The same agent on a real etcd-server on loopback.
TEST_F(LoomdBinaryTest, RegistersInEtcd) {
  if (!fs::exists(testing::kEtcdBinary)) GTEST_SKIP() << "no " << testing::kEtcdBinary;
  ASSERT_OK_AND_ASSIGN(auto etcd, testing::EtcdServer::Start());
  auto loomd = Start(Args({"--store=" + etcd->StoreUrl()}));
  ASSERT_TRUE(WaitReady(*loomd, port_)) << loomd->Log();
  ASSERT_OK_AND_ASSIGN(http::Response status,
                       http::HttpClient::ForUnixSocket(socket_).Get("/v1/status"));
  ASSERT_OK_AND_ASSIGN(Json s, ParseJson(status.body));
  EXPECT_EQ(s["store"]["kind"], "etcd");
  EXPECT_EQ(s["store"]["healthy"], true);

  ASSERT_OK_AND_ASSIGN(auto store, store::OpenStore(etcd->StoreUrl(), state_));
  ASSERT_OK_AND_ASSIGN(auto kv, store->Get("/loom/nodes/test-node"));
  ASSERT_TRUE(kv.has_value());
  EXPECT_NE(kv->lease, store::kNoLease);
  loomd->Signal(SIGTERM);
  EXPECT_EQ(loomd->Wait(), 0) << loomd->Log();
}

}  // namespace
}  // namespace loom
