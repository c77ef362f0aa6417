// Cluster DNS end to end: a one-node cluster (etcd, loomd in its own namespace),
// knotd serving example.test inside the node's namespace as the only upstream, and
// a "pod" namespace whose resolv.conf names loomd's node-local address. Services go
// in through `loomctl apply`, pods straight into the store (etcdctl), and real
// clients (dig, kdig, getent) ask. Never the machine's resolver.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <thread>

#include "absl/strings/str_split.h"
#include "common/model/objects.h"
#include "common/net/netns.h"
#include "common/strings.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/cluster.h"
#include "tests/testing/command.h"
#include "tests/testing/dns_client.h"
#include "tests/testing/knot_server.h"
#include "tests/testing/privileged.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/test_pod.h"

namespace loom {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::UnorderedElementsAre;

constexpr char kDnsIp[] = "169.254.20.10";
constexpr int kKnotPort = 5300;
constexpr char kEtcd[] = "http://198.51.100.2:2379";

constexpr char kUpstreamZone[] = R"($TTL 60
@ SOA ns.example.test. hostmaster.example.test. 1 7200 1800 86400 30
@ NS ns
ns A 192.0.2.1
www A 192.0.2.10
short 1 A 192.0.2.11
fresh A 192.0.2.12
)";

constexpr char kServices[] = R"(apiVersion: loom/v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
kind: Service
metadata: {name: db}
spec:
  clusterIP: None
  selector: {app: db}
  ports: [{name: pg, port: 5432}]
---
kind: Service
metadata: {name: ext}
spec:
  type: ExternalName
  externalName: www.example.test
)";

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> out;
  for (absl::string_view l : absl::StrSplit(text, '\n', absl::SkipEmpty())) out.emplace_back(l);
  return out;
}

class DnsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (geteuid() != 0 || access("/usr/sbin/knotd", X_OK) != 0 ||
        access("/usr/bin/etcd", X_OK) != 0 || access("/usr/bin/dig", X_OK) != 0 ||
        access("/usr/bin/kdig", X_OK) != 0) {
      return;  // SetUp skips (or fails under CI)
    }
    testing::ClusterOptions co;
    co.nodes = 1;
    co.extra_loomd_flags = {StrCat("--dns-upstream=127.0.0.1:", kKnotPort), "--dns-ttl=5s"};
    auto cluster = testing::Cluster::Create(co);
    if (!cluster.ok()) {
      setup_error_ = StrCat("cluster: ", cluster.status().message());
      return;
    }
    cluster_ = cluster->release();
    const auto& node = cluster_->node(0);
    testing::KnotOptions ko;
    ko.listen_ip = "127.0.0.1";
    ko.port = kKnotPort;
    ko.netns = node.netns;
    ko.zones["example.test"] = kUpstreamZone;
    auto knot = testing::KnotServer::Start(ko);
    if (!knot.ok()) {
      setup_error_ = StrCat("knotd: ", knot.status().message());
      return;
    }
    knot_ = knot->release();

    // The pod: a veth into the node's namespace, the node-local DNS address routed
    // through it, and the resolv.conf a runtime writes (bind-mounted by ip netns exec).
    pod_ns_ = StrCat(cluster_->prefix(), "-pod");
    std::vector<std::vector<std::string>> steps = {
        {"ip", "netns", "add", pod_ns_},
        {"ip", "-n", node.netns, "link", "add", "pod0", "type", "veth", "peer", "name", "eth0",
         "netns", pod_ns_},
        {"ip", "-n", node.netns, "addr", "add", "10.244.0.1/24", "dev", "pod0"},
        {"ip", "-n", node.netns, "link", "set", "pod0", "up"},
        {"ip", "-n", pod_ns_, "link", "set", "lo", "up"},
        {"ip", "-n", pod_ns_, "addr", "add", "10.244.0.5/24", "dev", "eth0"},
        {"ip", "-n", pod_ns_, "link", "set", "eth0", "up"},
        {"ip", "-n", pod_ns_, "route", "add", StrCat(kDnsIp, "/32"), "via", "10.244.0.1"},
    };
    for (const auto& argv : steps) {
      auto r = testing::RunChecked(argv);
      if (!r.ok()) {
        setup_error_ = std::string(r.status().message());
        return;
      }
    }
    std::filesystem::create_directories(StrCat("/etc/netns/", pod_ns_));
    std::ofstream(StrCat("/etc/netns/", pod_ns_, "/resolv.conf"))
        << "search default.svc.cluster.local svc.cluster.local cluster.local\n"
        << "nameserver " << kDnsIp << "\noptions ndots:5\n";
  }

  static void TearDownTestSuite() {
    delete knot_;
    knot_ = nullptr;
    if (!pod_ns_.empty()) {
      (void)testing::RunCommand({"ip", "netns", "delete", pod_ns_});
      std::error_code ec;
      std::filesystem::remove_all(StrCat("/etc/netns/", pod_ns_), ec);
      pod_ns_.clear();
    }
    delete cluster_;
    cluster_ = nullptr;
  }

  void SetUp() override {
    LOOM_REQUIRE_ROOT();
    LOOM_REQUIRE(access("/usr/sbin/knotd", X_OK) == 0, "knotd (package knot)");
    LOOM_REQUIRE(access("/usr/bin/etcd", X_OK) == 0, "etcd (package etcd-server)");
    LOOM_REQUIRE(access("/usr/bin/dig", X_OK) == 0, "dig (package bind9-dnsutils)");
    LOOM_REQUIRE(access("/usr/bin/kdig", X_OK) == 0, "kdig (package knot-dnsutils)");
    ASSERT_TRUE(setup_error_.empty()) << setup_error_;
    ASSERT_NE(cluster_, nullptr);
  }

  const testing::Cluster::Node& node() { return cluster_->node(0); }

  // Runs a command in the node's namespace; stdout, or "" with a test failure.
  std::string InNode(std::vector<std::string> argv) {
    std::vector<std::string> full = {"ip", "netns", "exec", node().netns};
    full.insert(full.end(), argv.begin(), argv.end());
    auto r = testing::RunCommand(full, absl::Seconds(20));
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? r->out : "";
  }

  std::string Dig(std::vector<std::string> args) {
    std::vector<std::string> argv = {"dig", StrCat("@", kDnsIp), "+tries=1", "+time=2"};
    argv.insert(argv.end(), args.begin(), args.end());
    return InNode(argv);
  }

  testing::CommandResult Loomctl(std::vector<std::string> args, const std::string& stdin_file = "") {
    std::vector<std::string> argv = {StrCat(LOOM_BIN_DIR, "/loomctl"),
                                     StrCat("--socket=", node().api_socket)};
    argv.insert(argv.end(), args.begin(), args.end());
    (void)stdin_file;
    auto r = testing::RunCommand(argv);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : testing::CommandResult{};
  }

  std::string WriteFile(const std::string& name, const std::string& text) {
    std::string path = StrCat(node().dir, "/", name);
    std::ofstream(path) << text;
    return path;
  }

  void Etcdctl(std::vector<std::string> args) {
    std::vector<std::string> argv = {"env", "ETCDCTL_API=3", "etcdctl",
                                     StrCat("--endpoints=", kEtcd)};
    argv.insert(argv.end(), args.begin(), args.end());
    std::vector<std::string> full = {"ip", "netns", "exec", node().netns};
    full.insert(full.end(), argv.begin(), argv.end());
    ASSERT_OK(testing::RunChecked(full).status());
  }

  void PutPod(const std::string& name, const std::string& app, std::vector<std::string> ips,
              bool ready, const std::string& hostname = "") {
    model::Pod pod = testing::TestPod(name, app, std::move(ips), ready);
    pod.hostname = hostname;
    Etcdctl({"put", testing::TestPodKey(pod), model::PodToJson(pod).dump()});
  }

  // Polls `dig args +short` until `want(out)` (at most 10 s).
  bool WaitDig(std::vector<std::string> args, const std::function<bool(const std::string&)>& want) {
    args.push_back("+short");
    for (int i = 0; i < 100; ++i) {
      if (want(Dig(args))) return true;
      absl::SleepFor(absl::Milliseconds(100));
    }
    return false;
  }

  void ApplyServices() {
    auto r = Loomctl({"apply", "-f", WriteFile("services.yaml", kServices)});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    PutPod("db-0", "db", {"10.244.0.10"}, true, "db-0");
    PutPod("db-1", "db", {"10.244.0.11"}, true);
    PutPod("db-2", "db", {"10.244.0.12"}, false);
    ASSERT_TRUE(WaitDig({"db.default.svc.cluster.local"}, [](const std::string& out) {
      return Lines(out).size() == 2;
    })) << Dig({"db.default.svc.cluster.local"});
  }

  std::string ClusterIp(const std::string& name) {
    auto r = Loomctl({"get", "services", name, "-o", "json"});
    auto j = ParseJson(r.out);
    if (!j.ok()) return "";
    return (*j)["spec"].value("clusterIP", "");
  }

  double Metric(const std::string& name) {
    std::string text = InNode({"curl", "-s", "http://127.0.0.1:9464/metrics"});
    for (const std::string& line : Lines(text)) {
      if (line.rfind(name + " ", 0) == 0) return std::stod(line.substr(name.size() + 1));
    }
    return -1;
  }

  static testing::Cluster* cluster_;
  static testing::KnotServer* knot_;
  static std::string pod_ns_;
  static std::string setup_error_;
};

testing::Cluster* DnsTest::cluster_ = nullptr;
testing::KnotServer* DnsTest::knot_ = nullptr;
std::string DnsTest::pod_ns_;
std::string DnsTest::setup_error_;

TEST_F(DnsTest, EveryRecordFormOverUdpAndTcpWithMixedCase) {
  ApplyServices();
  std::string ip = ClusterIp("web");
  ASSERT_FALSE(ip.empty());
  for (std::string transport : {"+notcp", "+tcp"}) {
    SCOPED_TRACE(transport);
    EXPECT_EQ(Dig({transport, "+short", "WeB.DeFault.SVC.Cluster.LOCAL"}), ip + "\n");
    // SRV with the target's address in the additional section.
    std::string srv = Dig({transport, "+noall", "+answer", "+additional",
                           "_HTTP._tcp.web.default.svc.cluster.local", "SRV"});
    EXPECT_THAT(srv, HasSubstr("SRV 0 100 80 web.default.svc.cluster.local."));
    EXPECT_THAT(srv, HasSubstr(StrCat("IN\tA\t", ip)));
    EXPECT_EQ(Dig({transport, "+short", "-x", ip}), "web.default.svc.cluster.local.\n");
    // Headless: ready endpoints only; per-endpoint names; PTR to the hostname.
    EXPECT_THAT(Lines(Dig({transport, "+short", "DB.default.svc.cluster.local"})),
                UnorderedElementsAre("10.244.0.10", "10.244.0.11"));
    EXPECT_EQ(Dig({transport, "+short", "Db-0.DB.default.svc.cluster.local"}), "10.244.0.10\n");
    EXPECT_EQ(Dig({transport, "+short", "10-244-0-11.db.default.svc.cluster.local"}),
              "10.244.0.11\n");
    EXPECT_EQ(Dig({transport, "+short", "-x", "10.244.0.10"}),
              "db-0.db.default.svc.cluster.local.\n");
    EXPECT_THAT(Dig({transport, "+short", "_pg._tcp.db.default.svc.cluster.local", "SRV"}),
                HasSubstr("5432 db-0.db.default.svc.cluster.local."));
    // NXDOMAIN against NODATA, both with the SOA.
    std::string nx = Dig({transport, "nosuch.default.svc.cluster.local"});
    EXPECT_THAT(nx, HasSubstr("status: NXDOMAIN"));
    EXPECT_THAT(nx, HasSubstr("AUTHORITY: 1"));
    EXPECT_THAT(nx, HasSubstr("SOA"));
    std::string nodata = Dig({transport, "web.default.svc.cluster.local", "AAAA"});
    EXPECT_THAT(nodata, HasSubstr("status: NOERROR"));
    EXPECT_THAT(nodata, HasSubstr("ANSWER: 0"));
    EXPECT_THAT(nodata, HasSubstr("SOA"));
    // ExternalName: the CNAME, chased to knotd's answer.
    std::string ext = Dig({transport, "+noall", "+answer", "EXT.default.svc.cluster.local"});
    EXPECT_THAT(ext, HasSubstr("CNAME\twww.example.test."));
    EXPECT_THAT(ext, HasSubstr("192.0.2.10"));
    EXPECT_EQ(Dig({transport, "+short", "dns-version.cluster.local", "TXT"}), "\"1.1.0\"\n");
  }
  for (std::string transport : {"+notcp", "+tcp"}) {
    std::vector<std::string> kdig = {"kdig", StrCat("@", kDnsIp), transport, "+short"};
    auto with = [&](std::vector<std::string> more) {
      std::vector<std::string> argv = kdig;
      argv.insert(argv.end(), more.begin(), more.end());
      return InNode(argv);
    };
    EXPECT_EQ(with({"wEb.default.svc.cluster.local"}), ip + "\n") << transport;
    EXPECT_THAT(with({"_http._tcp.web.default.svc.cluster.local", "SRV"}),
                HasSubstr("0 100 80 web.default.svc.cluster.local.")) << transport;
    EXPECT_EQ(with({"-x", "10.244.0.10"}), "db-0.db.default.svc.cluster.local.\n") << transport;
  }
  auto eps = Loomctl({"get", "endpoints", "db"});
  EXPECT_THAT(eps.out, ::testing::MatchesRegex(
                           "(.|\n)*default +db +10\\.244\\.0\\.10:5432,10\\.244\\.0\\.11:5432 +1\n"));
  auto status = Loomctl({"status"});
  EXPECT_THAT(status.out, HasSubstr("169.254.20.10:53"));
  EXPECT_GE(Metric("loom_dns_queries_by_type_total{type=\"SRV\"}"), 4);
  EXPECT_GE(Metric("loom_dns_responses_total{rcode=\"NXDOMAIN\"}"), 2);
  EXPECT_GE(Metric("loom_dns_requests_total{proto=\"tcp\"}"), 10);
  EXPECT_GE(Metric("loom_dns_request_duration_seconds_count"), 20);
}

TEST_F(DnsTest, GetentInAPodResolvesThroughTheSearchList) {
  ApplyServices();
  std::string ip = ClusterIp("web");
  auto getent = [&](const std::string& name) {
    auto r = testing::RunCommand({"ip", "netns", "exec", pod_ns_, "getent", "hosts", name});
    EXPECT_TRUE(r.ok());
    return r.ok() ? r->out : "";
  };
  auto resolves_to = [](const std::string& ip, const std::string& name) {
    return ::testing::MatchesRegex(StrCat(ip, " +", name, "\n"));
  };
  EXPECT_THAT(getent("web.default.svc.cluster.local"),
              resolves_to(ip, "web.default.svc.cluster.local"));
  // By the search list (ndots:5): the first suffix that exists answers.
  EXPECT_THAT(getent("web"), resolves_to(ip, "web.default.svc.cluster.local"));
  EXPECT_THAT(getent("web.default"), HasSubstr(ip));
  EXPECT_THAT(getent("db-0.db"), HasSubstr("10.244.0.10"));
}

TEST_F(DnsTest, HeadlessWith300EndpointsTruncatesOverUdpAndDigRetriesOverTcp) {
  auto r = Loomctl({"apply", "-f", WriteFile("big.yaml", R"(kind: Service
metadata: {name: big}
spec: {clusterIP: None, selector: {app: big}}
)")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (int p = 0; p < 3; ++p) {
    std::vector<std::string> ips;
    for (int i = 0; i < 100; ++i) ips.push_back(StrCat("10.244.", 10 + p, ".", i + 1));
    PutPod(StrCat("big-", p), "big", ips, true);
  }
  ASSERT_TRUE(WaitDig({"+tcp", "big.default.svc.cluster.local"},
                      [](const std::string& out) { return Lines(out).size() == 300; }));
  std::string udp_only = Dig({"+ignore", "big.default.svc.cluster.local"});
  EXPECT_THAT(udp_only, HasSubstr(" tc "));
  std::string retried = Dig({"big.default.svc.cluster.local"});
  EXPECT_THAT(retried, HasSubstr("Truncated, retrying in TCP mode"));
  EXPECT_THAT(retried, HasSubstr("ANSWER: 300"));
  EXPECT_GE(Metric("loom_dns_truncated_total"), 1);
}

TEST_F(DnsTest, ForwardingCachesCountsDownServesStaleAndRecovers) {
  auto ttl_of = [&](const std::string& name) -> int {
    std::string out = Dig({"+noall", "+answer", name});
    std::smatch m;
    if (!std::regex_search(out, m, std::regex("\\s(\\d+)\\s+IN\\s+A\\s"))) return -1;
    return std::stoi(m[1]);
  };
  // knotd may come up after loomd's first health check; wait until it answers.
  ASSERT_TRUE(WaitDig({"www.example.test"},
                      [](const std::string& out) { return out == "192.0.2.10\n"; }));
  double hits = Metric("loom_dns_cache_hits_total");
  int first = ttl_of("www.example.test");
  absl::SleepFor(absl::Milliseconds(2100));
  int second = ttl_of("www.example.test");
  EXPECT_GT(first, 0);
  EXPECT_LT(second, first);  // counted down in the cache
  EXPECT_GE(second, first - 4);
  EXPECT_GT(Metric("loom_dns_cache_hits_total"), hits);

  // Negative caching: the second NXDOMAIN is a cache hit.
  EXPECT_THAT(Dig({"nope.example.test"}), HasSubstr("status: NXDOMAIN"));
  hits = Metric("loom_dns_cache_hits_total");
  std::string again = Dig({"nope.example.test"});
  EXPECT_THAT(again, HasSubstr("status: NXDOMAIN"));
  EXPECT_THAT(again, HasSubstr("example.test."));  // the SOA
  EXPECT_GT(Metric("loom_dns_cache_hits_total"), hits);

  // Stale: a 1 s record outlives its TTL while knotd is down.
  EXPECT_EQ(Dig({"+short", "short.example.test"}), "192.0.2.11\n");
  knot_->Stop();
  absl::SleepFor(absl::Milliseconds(1500));
  double stale = Metric("loom_dns_stale_served_total");
  EXPECT_EQ(Dig({"+short", "+time=5", "short.example.test"}), "192.0.2.11\n");
  EXPECT_GT(Metric("loom_dns_stale_served_total"), stale);
  EXPECT_THAT(Dig({"+time=5", "fresh.example.test"}), HasSubstr("status: SERVFAIL"));

  // Recovery: knotd back, a name never cached resolves again.
  ASSERT_OK(knot_->Restart());
  EXPECT_TRUE(WaitDig({"+time=3", "fresh.example.test"},
                      [](const std::string& out) { return out == "192.0.2.12\n"; }));
}

TEST_F(DnsTest, ChangesShowInAnswersWithin100msOfTheStoreWrite) {
  ApplyServices();
  testing::DnsClient client(node().netns, kDnsIp);
  // Polls until `want` holds; returns the milliseconds taken (or 5000).
  auto time_until = [&](absl::Time since, const std::string& name,
                        const std::function<bool(const std::vector<std::string>&)>& want) {
    absl::Time deadline = since + absl::Seconds(5);
    while (absl::Now() < deadline) {
      if (want(client.A(name))) return absl::ToDoubleMilliseconds(absl::Now() - since);
      absl::SleepFor(absl::Milliseconds(1));
    }
    return 5000.0;
  };
  constexpr int kTrials = 5;
  double new_service = 0, turn_ready = 0, turn_unready = 0;
  for (int i = 0; i < kTrials; ++i) {
    std::string name = StrCat("fast", i);
    std::string file = WriteFile(name + ".yaml", StrCat("kind: Service\nmetadata: {name: ", name,
                                                        "}\nspec: {ports: [{port: 80}]}\n"));
    auto r = Loomctl({"apply", "-f", file});  // returns once the store holds it
    absl::Time written = absl::Now();
    ASSERT_EQ(r.exit_code, 0) << r.err;
    new_service += time_until(written, StrCat(name, ".default.svc.cluster.local"),
                              [](const auto& a) { return a.size() == 1; });

    PutPod("db-2", "db", {"10.244.0.12"}, true);
    written = absl::Now();
    turn_ready += time_until(written, "db.default.svc.cluster.local",
                             [](const auto& a) { return a.size() == 3; });
    PutPod("db-2", "db", {"10.244.0.12"}, false);
    written = absl::Now();
    turn_unready += time_until(written, "db.default.svc.cluster.local",
                               [](const auto& a) { return a.size() == 2; });
  }
  new_service /= kTrials;
  turn_ready /= kTrials;
  turn_unready /= kTrials;
  std::printf("mean ms from store write to DNS answer: new service %.1f, ready %.1f, "
              "unready %.1f\n", new_service, turn_ready, turn_unready);
  EXPECT_LT(new_service, 100);
  EXPECT_LT(turn_ready, 100);
  EXPECT_LT(turn_unready, 100);
}

TEST_F(DnsTest, BadManifestsNameDocumentAndFieldAndDeleteReleasesTheIp) {
  std::string bad = WriteFile("bad.yaml", R"(kind: Service
metadata: {name: good}
spec: {ports: [{port: 80}]}
---
kind: Service
metadata: {name: bad}
spec: {ports: [{port: 70000}]}
)");
  auto r = Loomctl({"apply", "-f", bad});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.out, HasSubstr("service/good created"));
  EXPECT_THAT(r.err, HasSubstr("document 2 (service/bad): spec.ports[0].port: must be 1..65535"));
  r = Loomctl({"apply", "-f", WriteFile("typo.yaml", "kind: Service\nmetadata: {name: t}\n"
                                                     "spec: {selectr: {app: x}, ports: [{port: 80}]}\n")});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("spec.selectr: unknown field"));

  std::string ip = ClusterIp("good");
  ASSERT_FALSE(ip.empty());
  ASSERT_TRUE(WaitDig({"good.default.svc.cluster.local"},
                      [&](const std::string& out) { return out == ip + "\n"; }));
  r = Loomctl({"delete", "service", "good"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("service/good deleted"));
  auto keys = cluster_->StoreKeys("/loom/serviceips/");
  ASSERT_OK(keys.status());
  EXPECT_THAT(*keys, Not(::testing::Contains(StrCat("/loom/serviceips/", ip))));
  EXPECT_TRUE(WaitDig({"good.default.svc.cluster.local"},
                      [](const std::string& out) { return out.empty(); }));
  r = Loomctl({"delete", "service", "good"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("not found"));
}

// The overlay's masquerade turns connection tracking on in the node; the queries to
// the node-local address, from a pod and from the node itself, and their answers stay
// out of it (Loom's notrack rules), over UDP and TCP.
TEST_F(DnsTest, QueriesFromPodsAndTheNodeLeaveNoConntrackEntries) {
  ApplyServices();
  // Source ports of this test's own, so that entries of other tests do not count.
  auto entries_from = [&](int sport) {
    std::string table = InNode({"cat", "/proc/net/nf_conntrack"});
    int n = 0;
    for (const std::string& line : Lines(table)) {
      if (line.find(StrCat(" sport=", sport, " ")) != std::string::npos) ++n;
    }
    return n;
  };
  // Tracking is on: a query to knotd (another address) from the node gets an entry.
  InNode({"dig", "@127.0.0.1", "-p", std::to_string(kKnotPort), "-b", "127.0.0.1#41530",
          "+tries=1", "+time=2", "+short", "www.example.test"});
  ASSERT_EQ(entries_from(41530), 1) << InNode({"cat", "/proc/net/nf_conntrack"});
  for (std::string transport : {"+notcp", "+tcp"}) {
    SCOPED_TRACE(transport);
    const int port = transport == "+tcp" ? 41532 : 41531;
    EXPECT_THAT(Dig({transport, "-b", StrCat("0.0.0.0#", port), "+short",
                     "web.default.svc.cluster.local"}),
                Not(::testing::IsEmpty()));
    auto r = testing::RunCommand({"ip", "netns", "exec", pod_ns_, "dig", StrCat("@", kDnsIp),
                                  transport, "-b", StrCat("10.244.0.5#", port), "+tries=1",
                                  "+time=2", "+short", "web.default.svc.cluster.local"});
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_THAT(r->out, Not(::testing::IsEmpty()));
    EXPECT_EQ(entries_from(port), 0) << InNode({"cat", "/proc/net/nf_conntrack"});
  }
}

TEST_F(DnsTest, LoomdRemovesTheAddressItAddedOnStop) {
  EXPECT_THAT(InNode({"ip", "-4", "addr", "show", "dev", "lo"}), HasSubstr("169.254.20.10/32"));
  ASSERT_OK(cluster_->StopLoomd(0, SIGTERM));
  EXPECT_THAT(InNode({"ip", "-4", "addr", "show", "dev", "lo"}),
              Not(HasSubstr("169.254.20.10")));
  ASSERT_OK(cluster_->StartLoomd(0));
}

// Two agents sharing etcd: concurrent applies through both never hand out one
// ClusterIP twice, and each agent's DNS answers for services applied on the other.
TEST(DnsMultiNodeTest, TwoAgentsAllocateDistinctIpsAndBothAnswer) {
  LOOM_REQUIRE_ROOT();
  LOOM_REQUIRE(access("/usr/bin/etcd", X_OK) == 0, "etcd (package etcd-server)");
  LOOM_REQUIRE(access("/usr/bin/dig", X_OK) == 0, "dig (package bind9-dnsutils)");
  testing::ClusterOptions co;
  co.nodes = 2;
  // A small service CIDR makes collisions likely if CAS were missing.
  co.extra_loomd_flags = {"--service-cidr=10.96.0.0/27"};
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<testing::Cluster> cluster, testing::Cluster::Create(co));
  auto loomctl = [&](int node, std::vector<std::string> args) {
    std::vector<std::string> argv = {StrCat(LOOM_BIN_DIR, "/loomctl"),
                                     StrCat("--socket=", cluster->node(node).api_socket)};
    argv.insert(argv.end(), args.begin(), args.end());
    auto r = testing::RunCommand(argv);
    return r.ok() ? *r : testing::CommandResult{};
  };
  for (int node = 0; node < 2; ++node) {
    std::string docs;
    for (int i = 0; i < 12; ++i) {
      docs += StrCat("---\nkind: Service\nmetadata: {name: n", node, "s", i,
                     "}\nspec: {ports: [{port: 80}]}\n");
    }
    std::ofstream(StrCat(cluster->node(node).dir, "/many.yaml")) << docs;
  }
  std::vector<std::thread> threads;
  testing::CommandResult results[2];
  for (int node = 0; node < 2; ++node) {
    threads.emplace_back([&, node] {
      results[node] = loomctl(node, {"apply", "-f", StrCat(cluster->node(node).dir, "/many.yaml")});
    });
  }
  for (auto& t : threads) t.join();
  for (int node = 0; node < 2; ++node) ASSERT_EQ(results[node].exit_code, 0) << results[node].err;

  auto list = loomctl(0, {"get", "services", "-o", "json"});
  ASSERT_OK_AND_ASSIGN(Json j, ParseJson(list.out));
  std::set<std::string> ips;
  std::map<std::string, std::string> by_name;
  for (const Json& s : j["items"]) {
    std::string ip = s["spec"].value("clusterIP", "");
    ips.insert(ip);
    by_name[s["metadata"].value("name", "")] = ip;
  }
  EXPECT_EQ(by_name.size(), 24u);
  EXPECT_EQ(ips.size(), 24u);  // distinct
  ASSERT_OK_AND_ASSIGN(std::vector<std::string> claims, cluster->StoreKeys("/loom/serviceips/"));
  EXPECT_EQ(claims.size(), 24u);

  // Each agent answers for the services applied through the other.
  for (int node = 0; node < 2; ++node) {
    std::string name = StrCat("n", 1 - node, "s7");
    std::string got;
    for (int i = 0; i < 50 && got != by_name[name] + "\n"; ++i) {
      auto r = cluster->ExecInNode(node, {"dig", StrCat("@", kDnsIp), "+short", "+tries=1",
                                          StrCat(name, ".default.svc.cluster.local")});
      got = r.ok() ? *r : "";
      if (got != by_name[name] + "\n") absl::SleepFor(absl::Milliseconds(100));
    }
    EXPECT_EQ(got, by_name[name] + "\n") << "node " << node;
  }
  // The CIDR has 30 usable addresses minus none reserved; 24 used. The same requested
  // address from both agents at once: exactly one wins.
  std::string free_ip;
  for (int last = 1; last < 31 && free_ip.empty(); ++last) {
    std::string ip = StrCat("10.96.0.", last);
    if (!ips.contains(ip)) free_ip = ip;
  }
  ASSERT_FALSE(free_ip.empty());
  for (int node = 0; node < 2; ++node) {
    std::ofstream(StrCat(cluster->node(node).dir, "/want.yaml"))
        << "kind: Service\nmetadata: {name: want" << node << "}\nspec: {clusterIP: " << free_ip
        << ", ports: [{port: 80}]}\n";
  }
  threads.clear();
  for (int node = 0; node < 2; ++node) {
    threads.emplace_back([&, node] {
      results[node] = loomctl(node, {"apply", "-f", StrCat(cluster->node(node).dir, "/want.yaml")});
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ((results[0].exit_code == 0) + (results[1].exit_code == 0), 1)
      << results[0].err << results[1].err;
  EXPECT_THAT(results[0].err + results[1].err, HasSubstr("is already allocated to service"));
}

}  // namespace
}  // namespace loom
