// The real `loom` binary exec'd as a runtime execs it (environment, stdin, CNI_PATH)
// inside a node namespace running a real loomd; containers are further namespaces.
#include <signal.h>
#include <sys/stat.h>

#include <filesystem>
#include <set>
#include <thread>

#include "absl/strings/str_split.h"
#include "agent/store/store.h"
#include "common/strings.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/cni_node.h"
#include "tests/testing/privileged.h"
#include "tests/testing/status_matchers.h"

namespace loom {
namespace {

namespace fs = std::filesystem;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using testing::PluginRun;

const std::string kLoom = std::string(LOOM_BIN_DIR) + "/loom";
const std::string kRefDir = "/usr/lib/cni";

class CniPluginTest : public ::testing::Test {
 protected:
  void SetUp() override {
    LOOM_REQUIRE_ROOT();
    absl::StatusOr<std::unique_ptr<testing::CniNode>> node = testing::CniNode::Create();
    ASSERT_OK(node.status());
    node_ = *std::move(node);
  }

  Json Conf(const std::string& version = "1.1.0") const {
    return Json{{"cniVersion", version},
                {"name", "loomnet"},
                {"type", "loom"},
                {"socket", node_->socket()},
                {"delQueueDir", node_->del_queue_dir()}};
  }

  std::map<std::string, std::string> Env(const std::string& command, const std::string& id,
                                         const std::string& netns,
                                         const std::string& args = "") const {
    std::map<std::string, std::string> env = {{"CNI_COMMAND", command},
                                              {"CNI_CONTAINERID", id},
                                              {"CNI_NETNS", netns},
                                              {"CNI_IFNAME", "eth0"},
                                              {"CNI_PATH", std::string(LOOM_BIN_DIR) + ":" + kRefDir}};
    if (!args.empty()) env["CNI_ARGS"] = args;
    return env;
  }

  PluginRun Run(const std::map<std::string, std::string>& env, const std::string& stdin_text,
                const std::string& binary = kLoom) {
    absl::StatusOr<PluginRun> r = node_->ExecPlugin(binary, env, stdin_text);
    EXPECT_OK(r.status());
    return r.ok() ? *r : PluginRun{};
  }
  PluginRun Loom(const std::string& command, const std::string& id, const std::string& netns,
                 const Json& conf) {
    return Run(Env(command, id, netns), conf.dump());
  }

  // Keys under `prefix` in loomd's embedded store (loomd is stopped for the read).
  std::vector<std::string> StoreKeys(const std::string& prefix) {
    std::vector<std::string> keys;
    EXPECT_OK(node_->StopLoomd(SIGTERM));
    {
      absl::StatusOr<std::unique_ptr<store::Store>> s = store::OpenStore("embedded", node_->state_dir());
      EXPECT_OK(s.status());
      if (s.ok()) {
        absl::StatusOr<store::RangeResult> r = (*s)->Range(prefix);
        EXPECT_OK(r.status());
        if (r.ok()) {
          for (const auto& kv : r->kvs) keys.push_back(kv.key + "=" + kv.value);
        }
      }
    }
    EXPECT_OK(node_->StartLoomd());
    return keys;
  }

  std::vector<std::string> Grep(const std::vector<std::string>& argv, const std::string& needle) {
    absl::StatusOr<std::string> out = node_->Exec(argv);
    EXPECT_OK(out.status());
    std::vector<std::string> lines;
    for (absl::string_view l : absl::StrSplit(out.value_or(""), '\n')) {
      if (l.find(needle) != absl::string_view::npos) lines.emplace_back(l);
    }
    return lines;
  }
  std::vector<std::string> HostVeths() { return Grep({"ip", "-o", "link"}, ": lm"); }
  std::vector<std::string> PodRoutes() { return Grep({"ip", "route"}, "10.244."); }
  int QueuedDels() {
    int n = 0;
    std::error_code ec;
    if (!fs::exists(node_->del_queue_dir())) return 0;
    for (const auto& e : fs::directory_iterator(node_->del_queue_dir(), ec)) {
      n += e.path().extension() == ".json";
    }
    return n;
  }
  std::string NewContainer() {
    absl::StatusOr<std::string> c = node_->AddContainer();
    EXPECT_OK(c.status());
    return c.value_or("");
  }
  std::string Ip(const PluginRun& r) {
    if (!r.json.contains("ips")) return "";
    return r.json["ips"][0]["address"].get<std::string>();
  }

  std::unique_ptr<testing::CniNode> node_;
};

TEST_F(CniPluginTest, AddCheckDelRegistersAndCleansUp) {
  std::string c = NewContainer();
  PluginRun add = Run(Env("ADD", "ctr1", c, "IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME=web-0;LOOM_LABELS=app=web,tier=front"),
                      Conf().dump());
  ASSERT_EQ(add.exit_code, 0) << add.out << node_->LogTail();
  EXPECT_EQ(add.json["cniVersion"], "1.1.0");
  EXPECT_THAT(Ip(add), ::testing::StartsWith("10.244.0."));
  EXPECT_THAT(Ip(add), ::testing::EndsWith("/32"));
  ASSERT_EQ(add.json["interfaces"].size(), 2u);
  EXPECT_THAT(add.json["interfaces"][0]["name"].get<std::string>(), ::testing::MatchesRegex("lm[0-9a-f]{11}"));
  EXPECT_EQ(add.json["interfaces"][1]["name"], "eth0");
  EXPECT_EQ(add.json["interfaces"][1]["sandbox"], c);
  EXPECT_EQ(add.json["interfaces"][1]["mtu"], 1450);  // the underlay veth's 1500 - 50
  EXPECT_EQ(add.json["ips"][0]["interface"], 1);
  EXPECT_EQ(add.json["ips"][0]["gateway"], "169.254.1.1");
  EXPECT_EQ(add.json["routes"][0]["dst"], "0.0.0.0/0");
  EXPECT_THAT(add.json["dns"]["search"].get<std::vector<std::string>>(),
              ElementsAre("shop.svc.cluster.local", "svc.cluster.local", "cluster.local"));
  EXPECT_THAT(add.json["dns"]["nameservers"].get<std::vector<std::string>>(), ElementsAre("169.254.20.10"));
  EXPECT_THAT(add.json["dns"]["options"].get<std::vector<std::string>>(), ElementsAre("ndots:5"));

  // The pod reaches the node and the node the pod.
  std::string ip = Ip(add).substr(0, Ip(add).find('/'));
  EXPECT_OK(node_->ExecIn(c, {"busybox", "ping", "-c1", "-W2", "198.51.100.1"}).status());
  EXPECT_OK(node_->Exec({"busybox", "ping", "-c1", "-W2", ip}).status());
  EXPECT_THAT(node_->ExecIn(c, {"ip", "link", "show", "eth0"}).value_or(""), HasSubstr("mtu 1450"));

  Json check_conf = Conf();
  check_conf["prevResult"] = add.json;
  PluginRun check = Loom("CHECK", "ctr1", c, check_conf);
  EXPECT_EQ(check.exit_code, 0) << check.out;

  // Registered as a pod, with its allocation.
  std::vector<std::string> pods = StoreKeys("/loom/pods/node1/");
  ASSERT_EQ(pods.size(), 1u);
  EXPECT_THAT(pods[0], HasSubstr("\"namespace\":\"shop\""));
  EXPECT_THAT(pods[0], HasSubstr("\"name\":\"web-0\""));
  EXPECT_THAT(pods[0], HasSubstr("\"app\":\"web\""));
  EXPECT_THAT(pods[0], HasSubstr("\"ready\":true"));
  EXPECT_THAT(pods[0], HasSubstr(ip));
  EXPECT_EQ(StoreKeys("/loom/ipam/node1/").size(), 1u);

  // ADD of the same attachment is refused (eth0 exists) and changes nothing.
  PluginRun again = Loom("ADD", "ctr1", c, Conf());
  EXPECT_EQ(again.json["code"], 4) << again.out;
  EXPECT_EQ(Loom("CHECK", "ctr1", c, check_conf).exit_code, 0);

  // DEL after a loomd restart (StoreKeys restarted it), then again: both succeed.
  Json del_conf = check_conf;
  EXPECT_EQ(Loom("DEL", "ctr1", c, del_conf).exit_code, 0);
  EXPECT_EQ(Loom("DEL", "ctr1", c, del_conf).exit_code, 0);
  EXPECT_EQ(Loom("DEL", "ctr1", "", Conf()).exit_code, 0);  // CNI_NETNS empty, no prevResult
  EXPECT_THAT(HostVeths(), IsEmpty());
  EXPECT_THAT(PodRoutes(), IsEmpty());
  EXPECT_THAT(StoreKeys("/loom/ipam/"), IsEmpty());
  EXPECT_THAT(StoreKeys("/loom/pods/"), IsEmpty());
  // CHECK of a deleted attachment: container unknown.
  EXPECT_EQ(Loom("CHECK", "ctr1", c, Conf()).json["code"], 3);
}

TEST_F(CniPluginTest, EveryVersionAndVersionVerb) {
  for (std::string v : {"0.3.1", "0.4.0", "1.0.0", "1.1.0"}) {
    std::string c = NewContainer();
    PluginRun add = Loom("ADD", "v" + std::to_string(v[0]) + v[2], c, Conf(v));
    ASSERT_EQ(add.exit_code, 0) << v << ": " << add.out;
    EXPECT_EQ(add.json["cniVersion"], v);
    if (v[0] == '0') {
      EXPECT_EQ(add.json["ips"][0]["version"], "4");
    }
    EXPECT_EQ(Loom("DEL", "v" + std::to_string(v[0]) + v[2], c, Conf(v)).exit_code, 0);
  }
  PluginRun version = Run({{"CNI_COMMAND", "VERSION"}}, "");
  EXPECT_EQ(version.exit_code, 0);
  EXPECT_THAT(version.json["supportedVersions"].get<std::vector<std::string>>(), Contains("1.1.0"));
}

TEST_F(CniPluginTest, ErrorCodesForBadInput) {
  std::string c = NewContainer();
  Json bad_version = Conf("9.9.9");
  EXPECT_EQ(Loom("ADD", "e1", c, bad_version).json["code"], 1);
  auto env = Env("ADD", "e1", c);
  env.erase("CNI_NETNS");
  PluginRun missing = Run(env, Conf().dump());
  EXPECT_EQ(missing.json["code"], 4);
  EXPECT_THAT(missing.json["msg"].get<std::string>(), HasSubstr("CNI_NETNS"));
  EXPECT_EQ(Run(Env("ADD", "e1", c), "{not json").json["code"], 6);
  Json invalid = Conf();
  invalid["mtu"] = "big";
  EXPECT_EQ(Loom("ADD", "e1", c, invalid).json["code"], 7);
  auto bad_if = Env("ADD", "e1", c);
  bad_if["CNI_IFNAME"] = "eth/0";
  EXPECT_EQ(Run(bad_if, Conf().dump()).json["code"], 4);
  EXPECT_EQ(Loom("ADD", "-bad-id", c, Conf()).json["code"], 4);
  EXPECT_EQ(Loom("ADD", "e1", "/run/netns/does-not-exist-lmcni", Conf()).json["code"], 4);
  // STATUS below 1.1.0 is an incompatible version.
  EXPECT_EQ(Loom("STATUS", "", "", Conf("1.0.0")).json["code"], 1);

  // A duplicate interface: eth0 already in the container; it is left alone and no
  // address leaks.
  ASSERT_OK(node_->ExecIn(c, {"ip", "link", "add", "eth0", "type", "veth", "peer", "name", "other0"}).status());
  PluginRun dup = Loom("ADD", "e2", c, Conf());
  EXPECT_EQ(dup.json["code"], 4) << dup.out;
  EXPECT_THAT(dup.json["msg"].get<std::string>(), HasSubstr("already exists"));
  EXPECT_OK(node_->ExecIn(c, {"ip", "link", "show", "eth0"}).status());
  EXPECT_THAT(HostVeths(), IsEmpty());
  EXPECT_THAT(StoreKeys("/loom/ipam/"), IsEmpty());
}

TEST_F(CniPluginTest, CheckReportsDrift) {
  std::string c = NewContainer();
  PluginRun add = Loom("ADD", "d1", c, Conf());
  ASSERT_EQ(add.exit_code, 0) << add.out;
  Json conf = Conf();
  conf["prevResult"] = add.json;
  ASSERT_EQ(Loom("CHECK", "d1", c, conf).exit_code, 0);
  ASSERT_OK(node_->ExecIn(c, {"ip", "route", "del", "default"}).status());
  PluginRun check = Loom("CHECK", "d1", c, conf);
  EXPECT_EQ(check.json["code"], 100) << check.out;
  EXPECT_THAT(check.json["msg"].get<std::string>(), HasSubstr("default route via 169.254.1.1"));
  ASSERT_OK(node_->ExecIn(c, {"ip", "addr", "flush", "dev", "eth0"}).status());
  EXPECT_THAT(Loom("CHECK", "d1", c, conf).json["msg"].get<std::string>(), HasSubstr("lacks address"));
  EXPECT_EQ(Loom("DEL", "d1", c, conf).exit_code, 0);
}

TEST_F(CniPluginTest, GcReleasesUnlistedAttachments) {
  std::string c1 = NewContainer(), c2 = NewContainer(), c3 = NewContainer();
  ASSERT_EQ(Loom("ADD", "g1", c1, Conf()).exit_code, 0);
  ASSERT_EQ(Loom("ADD", "g2", c2, Conf()).exit_code, 0);
  ASSERT_EQ(Loom("ADD", "g3", c3, Conf()).exit_code, 0);
  // g3's namespace vanishes without a DEL.
  ASSERT_OK(node_->DeleteContainer(c3));
  // Without the key nothing is released.
  EXPECT_EQ(Loom("GC", "", "", Conf()).exit_code, 0);
  EXPECT_EQ(StoreKeys("/loom/ipam/").size(), 3u);
  Json gc = Conf();
  gc["cni.dev/valid-attachments"] = Json::array({Json{{"containerID", "g1"}, {"ifname", "eth0"}}});
  PluginRun r = Run({{"CNI_COMMAND", "GC"}, {"CNI_PATH", LOOM_BIN_DIR}}, gc.dump());
  EXPECT_EQ(r.exit_code, 0) << r.out;
  std::vector<std::string> left = StoreKeys("/loom/ipam/");
  ASSERT_EQ(left.size(), 1u);
  EXPECT_THAT(left[0], HasSubstr("\"containerID\":\"g1\""));
  EXPECT_EQ(HostVeths().size(), 1u);
  EXPECT_EQ(StoreKeys("/loom/pods/").size(), 1u);
  EXPECT_EQ(Loom("DEL", "g1", c1, Conf()).exit_code, 0);
}

TEST_F(CniPluginTest, StartupReconcileReclaimsVanishedNamespaces) {
  std::string c1 = NewContainer(), c2 = NewContainer();
  ASSERT_EQ(Loom("ADD", "r1", c1, Conf()).exit_code, 0);
  ASSERT_EQ(Loom("ADD", "r2", c2, Conf()).exit_code, 0);
  ASSERT_OK(node_->StopLoomd(SIGKILL));
  ASSERT_OK(node_->DeleteContainer(c2));
  ASSERT_OK(node_->StartLoomd());
  std::vector<std::string> left = StoreKeys("/loom/ipam/");
  ASSERT_EQ(left.size(), 1u);
  EXPECT_THAT(left[0], HasSubstr("r1"));
  EXPECT_EQ(Loom("DEL", "r1", c1, Conf()).exit_code, 0);
}

TEST_F(CniPluginTest, LoomdDownAddRetriesStatusUnavailableDelQueued) {
  std::string c1 = NewContainer(), c2 = NewContainer();
  PluginRun add = Loom("ADD", "k1", c1, Conf());
  ASSERT_EQ(add.exit_code, 0) << add.out;
  EXPECT_EQ(Loom("STATUS", "", "", Conf()).exit_code, 0);
  ASSERT_OK(node_->StopLoomd(SIGKILL));

  PluginRun add2 = Loom("ADD", "k2", c2, Conf());
  EXPECT_EQ(add2.json["code"], 11) << add2.out;
  EXPECT_THAT(node_->ExecIn(c2, {"ip", "-o", "link"}).value_or(""), ::testing::Not(HasSubstr("eth0")));
  PluginRun status = Loom("STATUS", "", "", Conf());
  EXPECT_EQ(status.json["code"], 50) << status.out;
  EXPECT_EQ(Loom("CHECK", "k1", c1, Conf()).json["code"], 11);

  Json conf = Conf();
  conf["prevResult"] = add.json;
  EXPECT_EQ(Loom("DEL", "k1", c1, conf).exit_code, 0);
  EXPECT_EQ(QueuedDels(), 1);
  EXPECT_THAT(HostVeths(), IsEmpty());  // the plumbing is undone at once

  ASSERT_OK(node_->StartLoomd());
  EXPECT_EQ(QueuedDels(), 0);
  EXPECT_THAT(StoreKeys("/loom/ipam/"), IsEmpty());
  EXPECT_THAT(StoreKeys("/loom/pods/"), IsEmpty());
}

TEST_F(CniPluginTest, SixtyFourParallelAddsGetDistinctAddresses) {
  constexpr int kN = 64;
  std::vector<std::string> containers;
  for (int i = 0; i < kN; ++i) containers.push_back(NewContainer());
  std::vector<PluginRun> runs(kN);
  std::vector<std::thread> threads;
  for (int i = 0; i < kN; ++i) {
    threads.emplace_back([&, i] {
      absl::StatusOr<PluginRun> r =
          node_->ExecPlugin(kLoom, Env("ADD", "p" + std::to_string(i), containers[i]), Conf().dump());
      if (r.ok()) runs[i] = *r;
    });
  }
  for (auto& t : threads) t.join();
  std::set<std::string> ips;
  for (int i = 0; i < kN; ++i) {
    ASSERT_EQ(runs[i].exit_code, 0) << i << ": " << runs[i].out;
    ips.insert(Ip(runs[i]));
  }
  EXPECT_EQ(ips.size(), static_cast<size_t>(kN));
  EXPECT_EQ(HostVeths().size(), static_cast<size_t>(kN));
  threads.clear();
  for (int i = 0; i < kN; ++i) {
    threads.emplace_back([&, i] {
      absl::StatusOr<PluginRun> r =
          node_->ExecPlugin(kLoom, Env("DEL", "p" + std::to_string(i), containers[i]), Conf().dump());
      if (r.ok()) runs[i] = *r;
    });
  }
  for (auto& t : threads) t.join();
  for (int i = 0; i < kN; ++i) EXPECT_EQ(runs[i].exit_code, 0) << runs[i].out;
  EXPECT_THAT(HostVeths(), IsEmpty());
  EXPECT_THAT(StoreKeys("/loom/ipam/"), IsEmpty());
}

int CountFds(pid_t pid) {
  int n = 0;
  std::error_code ec;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(StrCat("/proc/", pid, "/fd"), ec)) ++n;
  return n;
}

void Cycles(testing::CniNode* node, int n, const Json& conf,
            const std::function<std::map<std::string, std::string>(const std::string&, const std::string&)>& env) {
  absl::StatusOr<std::string> c = node->AddContainer();
  ASSERT_OK(c.status());
  for (int i = 0; i < n; ++i) {
    absl::StatusOr<PluginRun> add = node->ExecPlugin(kLoom, env("ADD", *c), conf.dump());
    ASSERT_OK(add.status());
    ASSERT_EQ(add->exit_code, 0) << i << ": " << add->out;
    absl::StatusOr<PluginRun> del = node->ExecPlugin(kLoom, env("DEL", *c), conf.dump());
    ASSERT_OK(del.status());
    ASSERT_EQ(del->exit_code, 0) << i << ": " << del->out;
  }
}

class CniCyclesTest : public CniPluginTest {
 protected:
  void RunCycles(int n) {
    auto env = [&](const std::string& cmd, const std::string& c) { return Env(cmd, "cyc", c); };
    Cycles(node_.get(), 5, Conf(), env);  // warm-up: lazily opened fds are counted before
    int fds_before = CountFds(node_->loomd_pid());
    absl::Time start = absl::Now();
    Cycles(node_.get(), n, Conf(), env);
    absl::Duration took = absl::Now() - start;
    int fds_after = CountFds(node_->loomd_pid());
    std::cout << n << " ADD/DEL cycles in " << took << "; loomd fds " << fds_before << " -> "
              << fds_after << "\n";
    EXPECT_LE(fds_after, fds_before + 2);
    EXPECT_THAT(HostVeths(), IsEmpty());
    EXPECT_THAT(PodRoutes(), IsEmpty());
    EXPECT_EQ(QueuedDels(), 0);
    EXPECT_THAT(StoreKeys("/loom/ipam/"), IsEmpty());
    EXPECT_THAT(StoreKeys("/loom/pods/"), IsEmpty());
  }
};

// About 60 s here (1000 x (ADD + DEL) of the real binary), so it runs by default.
TEST_F(CniCyclesTest, ThousandAddDelCyclesLeakNothing) { RunCycles(1000); }

TEST_F(CniPluginTest, ChainWithReferencePortmapBandwidthTuning) {
  for (std::string p : {"portmap", "bandwidth", "tuning", "host-local"}) {
    LOOM_REQUIRE(access((kRefDir + "/" + p).c_str(), X_OK) == 0, kRefDir + "/" + p);
  }
  LOOM_REQUIRE(node_->Exec({"iptables", "-t", "nat", "-S"}).ok(), "iptables");
  std::string c = NewContainer();
  const std::string v = "1.0.0";  // the reference plugins speak 1.0.0 at most
  std::vector<Json> confs = {
      Conf(v),
      Json{{"type", "portmap"}, {"capabilities", {{"portMappings", true}}},
           {"runtimeConfig", {{"portMappings", Json::array({Json{{"hostPort", 18080}, {"containerPort", 80}, {"protocol", "tcp"}}})}}}},
      Json{{"type", "bandwidth"}, {"capabilities", {{"bandwidth", true}}},
           {"runtimeConfig", {{"bandwidth", {{"ingressRate", 8000000}, {"ingressBurst", 800000}}}}}},
      Json{{"type", "tuning"}, {"sysctl", {{"net.ipv4.conf.eth0.arp_ignore", "1"}}}}};
  Json prev;
  for (size_t i = 0; i < confs.size(); ++i) {
    Json conf = confs[i];
    conf["cniVersion"] = v;
    conf["name"] = "loomnet";
    if (i > 0) conf["prevResult"] = prev;
    std::string bin = i == 0 ? kLoom : kRefDir + "/" + conf["type"].get<std::string>();
    PluginRun r = Run(Env("ADD", "chain1", c, "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=chain"),
                      conf.dump(), bin);
    ASSERT_EQ(r.exit_code, 0) << conf["type"] << ": " << r.out;
    prev = r.json;
  }
  std::string host_veth = prev["interfaces"][0]["name"];
  EXPECT_THAT(node_->Exec({"iptables", "-t", "nat", "-S"}).value_or(""), HasSubstr("DNAT"));
  EXPECT_THAT(node_->Exec({"iptables", "-t", "nat", "-S"}).value_or(""), HasSubstr("18080"));
  EXPECT_THAT(node_->Exec({"tc", "qdisc", "show", "dev", host_veth}).value_or(""), HasSubstr("tbf"));
  EXPECT_EQ(node_->ExecIn(c, {"cat", "/proc/sys/net/ipv4/conf/eth0/arp_ignore"}).value_or(""), "1\n");

  Json check = Conf(v);
  check["prevResult"] = prev;
  EXPECT_EQ(Loom("CHECK", "chain1", c, check).exit_code, 0);
  // DEL in reverse order, each with the final result.
  for (size_t i = confs.size(); i-- > 0;) {
    Json conf = confs[i];
    conf["cniVersion"] = v;
    conf["name"] = "loomnet";
    conf["prevResult"] = prev;
    std::string bin = i == 0 ? kLoom : kRefDir + "/" + conf["type"].get<std::string>();
    PluginRun r = Run(Env("DEL", "chain1", c, "IgnoreUnknown=1"), conf.dump(), bin);
    EXPECT_EQ(r.exit_code, 0) << conf["type"] << ": " << r.out;
  }
  EXPECT_THAT(node_->Exec({"iptables", "-t", "nat", "-S"}).value_or(""), ::testing::Not(HasSubstr("18080")));
  EXPECT_THAT(HostVeths(), IsEmpty());
  EXPECT_THAT(StoreKeys("/loom/ipam/"), IsEmpty());
}

TEST_F(CniPluginTest, IpamDelegatedToHostLocal) {
  LOOM_REQUIRE(access((kRefDir + "/host-local").c_str(), X_OK) == 0, "host-local");
  std::string c = NewContainer();
  std::string data = node_->dir() + "/host-local";
  Json conf = Conf("1.0.0");
  conf["ipam"] = {{"type", "host-local"},
                  {"dataDir", data},
                  {"ranges", Json::array({Json::array({Json{{"subnet", "10.244.7.0/24"}}})})}};
  PluginRun add = Loom("ADD", "h1", c, conf);
  ASSERT_EQ(add.exit_code, 0) << add.out;
  EXPECT_THAT(Ip(add), ::testing::StartsWith("10.244.7."));
  EXPECT_TRUE(fs::exists(data + "/loomnet/" + Ip(add).substr(0, Ip(add).find('/'))));
  EXPECT_OK(node_->ExecIn(c, {"busybox", "ping", "-c1", "-W2", "198.51.100.1"}).status());
  Json check = conf;
  check["prevResult"] = add.json;
  EXPECT_EQ(Loom("CHECK", "h1", c, check).exit_code, 0);
  EXPECT_THAT(StoreKeys("/loom/ipam/"), IsEmpty());  // loomd allocated nothing
  EXPECT_EQ(StoreKeys("/loom/pods/").size(), 1u);     // but registered the pod
  EXPECT_EQ(Loom("DEL", "h1", c, check).exit_code, 0);
  EXPECT_FALSE(fs::exists(data + "/loomnet/" + Ip(add).substr(0, Ip(add).find('/'))));
  EXPECT_THAT(StoreKeys("/loom/pods/"), IsEmpty());
  EXPECT_THAT(HostVeths(), IsEmpty());

  // An ADD that fails after host-local allocated (loomd is down: code 11) calls
  // host-local DEL, so its address is free again.
  ASSERT_OK(node_->StopLoomd(SIGKILL));
  PluginRun failed = Loom("ADD", "h2", c, conf);
  EXPECT_EQ(failed.json["code"], 11) << failed.out;
  size_t files = 0;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(data + "/loomnet", ec)) {
    files += e.path().filename().string().rfind("10.244.7.", 0) == 0;
  }
  EXPECT_EQ(files, 0u);
}

}  // namespace
}  // namespace loom
