// The ingress end to end: a real loomd (etcd store, loopback ingress ports), real
// curl, backends started by the test on loopback addresses (127.0.1.x) and
// registered as ready pods in the store, services and ingresses applied with
// loomctl. Covers the Kubernetes Ingress path examples, wildcard hosts, TLS by SNI
// with two certificates, weights, 404/503/502, a websocket kept open across 100
// route updates under load, and malformed requests against the daemon.
// Needs no root: everything is on loopback, in the test's own temporary directory.
#include <dirent.h>
#include <signal.h>
#include <sys/socket.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>
#include <utility>  // before Asio 1.74's awaitable.hpp, which forgets it

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "absl/time/clock.h"
#include "agent/store/store.h"
#include "common/model/objects.h"
#include "common/status.h"
#include "common/strings.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/command.h"
#include "tests/testing/etcd_server.h"
#include "tests/testing/free_port.h"
#include "tests/testing/http_backend.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/subprocess.h"
#include "tests/testing/test_pod.h"

namespace loom {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
using ::testing::HasSubstr;

const std::string kBin = LOOM_BIN_DIR;

int CountFds(pid_t pid) {
  int n = 0;
  for (const auto& e : std::filesystem::directory_iterator(StrCat("/proc/", pid, "/fd"))) {
    (void)e;
    ++n;
  }
  return n;
}

class IngressTest : public ::testing::Test {
 protected:
  // A failure here must fail the tests, not skip them (gtest reports the tests of a
  // suite whose SetUpTestSuite failed as skipped), and a lost race for a free port
  // is retried: the start runs up to three times, each with fresh ports.
  static void SetUpTestSuite() {
    for (int attempt = 0; attempt < 3; ++attempt) {
      absl::Status s = StartAll();
      if (s.ok()) {
        setup_error_.clear();
        return;
      }
      setup_error_ = StrCat("attempt ", attempt + 1, ": ", s.message());
      StopAll(/*check_clean_exit=*/false);
    }
  }

  void SetUp() override { ASSERT_TRUE(setup_error_.empty()) << "suite setup failed: " << setup_error_; }

  static absl::Status StartAll() {
    char tmpl[] = "/tmp/loom-ingress-XXXXXX";
    dir_ = mkdtemp(tmpl);
    auto etcd = testing::EtcdServer::Start();
    if (!etcd.ok()) return Annotate(etcd.status(), "etcd");
    etcd_ = etcd->release();
    auto store = store::OpenStore(etcd_->StoreUrl(), dir_);
    if (!store.ok()) return Annotate(store.status(), "store");
    store_ = store->release();
    http_port_ = *testing::PickFreePort();
    https_port_ = *testing::PickFreePort();
    std::vector<std::string> argv = {
        kBin + "/loomd", "--node-name=node1", "--store=" + etcd_->StoreUrl(), "--state-dir=" + dir_ + "/state",
        "--run-dir=" + dir_ + "/run", "--metrics-addr=127.0.0.1:" + std::to_string(*testing::PickFreePort()),
        "--underlay-iface=lo", "--overlay=false", "--dns-upstream=none",
        // In the machine's own namespace: no load balancer (it would attach to the
        // host's cgroup2 and pin under /sys/fs/bpf/loom).
        "--lb=false",
        "--dns-addr=127.0.0.1:" + std::to_string(*testing::PickFreePort()),
        "--ingress-addr=127.0.0.1:" + std::to_string(http_port_),
        "--ingress-tls-addr=127.0.0.1:" + std::to_string(https_port_), "--ingress-cert-dir=" + dir_ + "/certs",
        "--ingress-access-log=" + dir_ + "/access.log"};
    auto p = testing::Subprocess::Start(argv, {dir_ + "/loomd.log"});
    if (!p.ok()) return Annotate(p.status(), "loomd");
    loomd_ = p->release();
    bool up = false;
    for (int i = 0; i < 100 && !up; ++i) {
      auto r = testing::RunCommand({kBin + "/loomctl", "--socket", dir_ + "/run/loomd.sock", "status"});
      up = r.ok() && r->exit_code == 0;
      if (!up) {
        if (!loomd_->running()) return absl::InternalError(StrCat("loomd exited: ", LogTail()));
        absl::SleepFor(absl::Milliseconds(100));
      }
    }
    if (!up) return absl::DeadlineExceededError(StrCat("loomd not up in 10 s: ", LogTail()));
    // Backends s1..s4 (one pod each), s5 with two pods for weights, "down" with a
    // pod nobody listens on, "empty" with no ready pod.
    backend_port_ = *testing::PickFreePort();
    std::string services;
    for (int i = 1; i <= 5; ++i) {
      services += StrCat("---\napiVersion: loom/v1\nkind: Service\nmetadata: {name: s", i,
                         "}\nspec:\n  selector: {app: s", i, "}\n  ports: [{name: http, port: 80, targetPort: ",
                         backend_port_, "}]\n");
    }
    for (const char* name : {"down", "empty"}) {
      services += StrCat("---\napiVersion: loom/v1\nkind: Service\nmetadata: {name: ", name,
                         "}\nspec:\n  selector: {app: ", name, "}\n  ports: [{port: 80, targetPort: ", backend_port_,
                         "}]\n");
    }
    if (Loomctl({"apply", "-f", Write("services.yaml", services)}).exit_code != 0) {
      return absl::InternalError("apply of the services failed");
    }
    for (int i = 1; i <= 4; ++i) {
      RETURN_IF_ERROR(AddBackend(StrCat("s", i), StrCat("b", i), StrCat("127.0.1.", i)));
    }
    RETURN_IF_ERROR(AddBackend("s5", "w1", "127.0.1.11"));
    RETURN_IF_ERROR(AddBackend("s5", "w2", "127.0.1.12"));
    RETURN_IF_ERROR(PutPodStatus("down-0", "down", "127.0.1.99", true));
    return PutPodStatus("empty-0", "empty", "127.0.1.98", false);
  }

  static std::string LogTail() {
    std::ifstream log(dir_ + "/loomd.log");
    std::string text((std::istreambuf_iterator<char>(log)), {});
    return text.substr(text.size() > 2000 ? text.size() - 2000 : 0);
  }

  static void TearDownTestSuite() { StopAll(/*check_clean_exit=*/setup_error_.empty()); }

  static void StopAll(bool check_clean_exit) {
    if (loomd_ != nullptr && check_clean_exit) {
      // A clean stop: exit 0 (under ASan, also no leak at exit).
      EXPECT_OK(loomd_->Signal(SIGTERM));
      absl::StatusOr<int> rc = loomd_->Wait(absl::Seconds(30));
      std::ifstream log(dir_ + "/loomd.log");
      std::string text((std::istreambuf_iterator<char>(log)), {});
      EXPECT_TRUE(rc.ok() && *rc == 0) << (rc.ok() ? std::to_string(*rc) : "still running") << "\n"
                                       << text.substr(text.size() > 4000 ? text.size() - 4000 : 0);
    }
    delete loomd_;  // SIGKILL (if still running) and reap
    loomd_ = nullptr;
    for (auto* b : backends_) delete b;
    backends_.clear();
    delete store_;
    store_ = nullptr;
    delete etcd_;
    etcd_ = nullptr;
    std::filesystem::remove_all(dir_);
    dir_.clear();
  }

  static absl::Status AddBackend(const std::string& app, const std::string& name, const std::string& ip) {
    auto b = testing::HttpBackend::Start(name, ip, backend_port_);
    if (!b.ok()) return Annotate(b.status(), StrCat("backend ", name));
    backends_.push_back(b->release());
    return PutPodStatus(name, app, ip, true);
  }

  static absl::Status PutPodStatus(const std::string& name, const std::string& app, const std::string& ip,
                                   bool ready) {
    model::Pod pod = testing::TestPod(name, app, {ip}, ready);
    return store_->Put(testing::TestPodKey(pod), model::PodToJson(pod).dump()).status();
  }
  static void PutPod(const std::string& name, const std::string& app, const std::string& ip, bool ready) {
    ASSERT_OK(PutPodStatus(name, app, ip, ready));
  }

  static std::string Write(const std::string& name, const std::string& text) {
    std::string path = StrCat(dir_, "/", name);
    std::ofstream(path) << text;
    return path;
  }

  static testing::CommandResult Loomctl(std::vector<std::string> args) {
    std::vector<std::string> argv = {kBin + "/loomctl", "--socket", dir_ + "/run/loomd.sock"};
    argv.insert(argv.end(), args.begin(), args.end());
    auto r = testing::RunCommand(argv);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : testing::CommandResult{};
  }

  void Apply(const std::string& yaml) {
    auto r = Loomctl({"apply", "-f", Write("ingress.yaml", yaml)});
    ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
  }

  // curl through the ingress: "<status> <body>".
  static std::string Curl(const std::string& host, const std::string& path, std::vector<std::string> extra = {}) {
    std::vector<std::string> argv = {"curl", "-sS", "--max-time", "5", "-o", "-", "-w", " %{http_code}",
                                     "--resolve", StrCat(host, ":", http_port_, ":127.0.0.1")};
    argv.insert(argv.end(), extra.begin(), extra.end());
    argv.push_back(StrCat("http://", host, ":", http_port_, path));
    auto r = testing::RunCommand(argv);
    if (!r.ok()) return "error";
    std::string out = r->out;
    size_t sp = out.rfind(' ');
    std::string code = out.substr(sp + 1);
    std::string body = out.substr(0, sp);
    if (!body.empty() && body.back() == '\n') body.pop_back();
    // The backends answer "<name> <METHOD> <target>": keep the name.
    return StrCat(code, " ", body.substr(0, body.find(' ')));
  }

  // Polls until `host path` answers `want` (the store -> loomd -> proxy path takes
  // a few milliseconds).
  static bool WaitFor(const std::string& host, const std::string& path, const std::string& want) {
    for (int i = 0; i < 100; ++i) {
      if (Curl(host, path) == want) return true;
      absl::SleepFor(absl::Milliseconds(100));
    }
    return false;
  }

  static inline std::string dir_;
  static inline std::string setup_error_;
  static inline testing::EtcdServer* etcd_ = nullptr;
  static inline store::Store* store_ = nullptr;
  static inline testing::Subprocess* loomd_ = nullptr;
  static inline std::vector<testing::HttpBackend*> backends_;
  static inline int http_port_ = 0, https_port_ = 0, backend_port_ = 0;
};

std::string Path(const std::string& path, const std::string& type, const std::string& svc) {
  return StrCat("      - {path: ", path, ", pathType: ", type, ", backend: {service: {name: ", svc,
                ", port: {number: 80}}}}\n");
}

// The examples of the Kubernetes Ingress documentation ("Examples" under path types).
TEST_F(IngressTest, KubernetesPathExamplesAndWildcardHosts) {
  Apply(StrCat("apiVersion: loom/v1\nkind: Ingress\nmetadata: {name: paths}\nspec:\n  rules:\n",
               "  - host: ex1.test\n    http:\n      paths:\n", Path("/foo", "Exact", "s1"), Path("/foo", "Prefix", "s2"),
               "  - host: ex2.test\n    http:\n      paths:\n", Path("/aaa/bbb", "Prefix", "s1"),
               Path("/aaa", "Prefix", "s2"), Path("/", "Prefix", "s3"),
               "  - host: ex3.test\n    http:\n      paths:\n", Path("/foo/", "Exact", "s1"),
               Path("/bar/", "Prefix", "s2"), Path("/aaa/bb", "Prefix", "s3"),
               "  - host: \"*.wild.test\"\n    http:\n      paths:\n", Path("/", "Prefix", "s4"),
               "  - host: exact.wild.test\n    http:\n      paths:\n", Path("/", "Prefix", "s1")));
  ASSERT_TRUE(WaitFor("ex1.test", "/foo", "200 b1")) << Curl("ex1.test", "/foo");
  // Exact /foo against Prefix /foo; /foo is not /foo/; Prefix matches whole elements.
  EXPECT_EQ(Curl("ex1.test", "/foo/"), "200 b2");
  EXPECT_EQ(Curl("ex1.test", "/foo/x"), "200 b2");
  EXPECT_EQ(Curl("ex1.test", "/foobar"), "404 Not");
  EXPECT_EQ(Curl("ex1.test", "/bar"), "404 Not");
  // Longest prefix wins; /aaa/bbb does not match /aaa/bbbxyz.
  EXPECT_EQ(Curl("ex2.test", "/aaa/bbb"), "200 b1");
  EXPECT_EQ(Curl("ex2.test", "/aaa/bbb/"), "200 b1");
  EXPECT_EQ(Curl("ex2.test", "/aaa/bbb/ccc"), "200 b1");
  EXPECT_EQ(Curl("ex2.test", "/aaa/bbbxyz"), "200 b2");
  EXPECT_EQ(Curl("ex2.test", "/aaa/ccc"), "200 b2");
  EXPECT_EQ(Curl("ex2.test", "/ccc"), "200 b3");
  // Exact /foo/ does not match /foo; Prefix /bar/ matches /bar and /bar/;
  // Prefix /aaa/bb does not match /aaa/bbb.
  EXPECT_EQ(Curl("ex3.test", "/foo"), "404 Not");
  EXPECT_EQ(Curl("ex3.test", "/foo/"), "200 b1");
  EXPECT_EQ(Curl("ex3.test", "/bar"), "200 b2");
  EXPECT_EQ(Curl("ex3.test", "/bar/"), "200 b2");
  EXPECT_EQ(Curl("ex3.test", "/aaa/bbb"), "404 Not");
  // A wildcard covers one label; an exact host beats it.
  EXPECT_EQ(Curl("bar.wild.test", "/x"), "200 b4");
  EXPECT_EQ(Curl("baz.bar.wild.test", "/x"), "404 Not");
  EXPECT_EQ(Curl("wild.test", "/x"), "404 Not");
  EXPECT_EQ(Curl("exact.wild.test", "/x"), "200 b1");

  auto get = Loomctl({"get", "ingresses"});
  EXPECT_THAT(get.out, HasSubstr("paths"));
  EXPECT_THAT(get.out, HasSubstr("ex1.test/foo->s1:80"));
  EXPECT_EQ(Loomctl({"delete", "ingress", "paths"}).out, "ingress/paths deleted\n");
  EXPECT_TRUE(WaitFor("ex1.test", "/foo", "404 Not"));
}

TEST_F(IngressTest, InvalidIngressIsRefusedNamingTheField) {
  auto r = Loomctl({"apply", "-f", Write("bad.yaml", StrCat("apiVersion: loom/v1\nkind: Ingress\nmetadata: {name: bad}\n",
                                                         "spec:\n  rules:\n  - host: a.test\n    http:\n      paths:\n",
                                                         "      - {path: /x, pathType: Regex, backend: {service: {name: s1, port: {number: 80}}}}\n"))});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.err, HasSubstr("spec.rules[0].http.paths[0].pathType"));
}

TEST_F(IngressTest, NotFoundNoEndpointAndBadGateway) {
  Apply(StrCat("apiVersion: loom/v1\nkind: Ingress\nmetadata: {name: errors}\nspec:\n  rules:\n",
               "  - host: err.test\n    http:\n      paths:\n", Path("/empty", "Prefix", "empty"),
               Path("/down", "Prefix", "down"), Path("/missing", "Prefix", "nosuch"), Path("/ok", "Prefix", "s1")));
  ASSERT_TRUE(WaitFor("err.test", "/ok", "200 b1"));
  EXPECT_EQ(Curl("err.test", "/nothing"), "404 Not");
  EXPECT_EQ(Curl("err.test", "/empty"), "503 Service");
  EXPECT_EQ(Curl("err.test", "/missing"), "503 Service");
  EXPECT_EQ(Curl("err.test", "/down"), "502 Bad");
  EXPECT_EQ(Curl("nohost.test", "/"), "404 Not");
  Loomctl({"delete", "ingress", "errors"});
}

TEST_F(IngressTest, WeightsSplit70To30) {
  Apply(StrCat("apiVersion: loom/v1\nkind: Ingress\nmetadata: {name: weights}\nspec:\n  rules:\n",
               "  - host: w.test\n    http:\n      paths:\n",
               "      - {path: /, pathType: Prefix, weightedBackends: [{service: s1, port: 80, weight: 70}, "
               "{service: s2, port: http, weight: 30}]}\n"));
  ASSERT_TRUE(WaitFor("w.test", "/", "200 b1") || WaitFor("w.test", "/", "200 b2"));
  // 500 requests in one curl (one keep-alive connection).
  std::vector<std::string> argv = {"curl", "-sS", "--max-time", "60", "--resolve",
                                   StrCat("w.test:", http_port_, ":127.0.0.1")};
  for (int i = 0; i < 500; ++i) argv.push_back(StrCat("http://w.test:", http_port_, "/r", i));
  auto r = testing::RunCommand(argv, absl::Seconds(90));
  ASSERT_TRUE(r.ok());
  int b1 = 0, b2 = 0;
  for (size_t p = 0; (p = r->out.find("b1 GET", p)) != std::string::npos; ++p) ++b1;
  for (size_t p = 0; (p = r->out.find("b2 GET", p)) != std::string::npos; ++p) ++b2;
  EXPECT_EQ(b1 + b2, 500);
  EXPECT_NEAR(b1 / 500.0, 0.70, 0.05) << b1 << " / " << b2;
  Loomctl({"delete", "ingress", "weights"});
}

TEST_F(IngressTest, TlsBySniWithTwoCertificates) {
  std::string certs = dir_ + "/certs/default";
  auto make = [&](const std::string& secret, const std::string& cn) {
    std::filesystem::create_directories(certs + "/" + secret);
    auto r = testing::RunCommand({"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                                  "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj", "/CN=" + cn,
                                  "-addext", "subjectAltName=DNS:" + cn, "-keyout", certs + "/" + secret + "/tls.key",
                                  "-out", certs + "/" + secret + "/tls.crt"});
    ASSERT_TRUE(r.ok() && r->exit_code == 0);
  };
  make("one-tls", "one.tls.test");
  make("two-tls", "two.tls.test");
  Apply(StrCat("apiVersion: loom/v1\nkind: Ingress\nmetadata: {name: tls}\nspec:\n",
               "  tls:\n  - {hosts: [one.tls.test], secretName: one-tls}\n  - {hosts: [two.tls.test], secretName: two-tls}\n",
               "  rules:\n  - host: one.tls.test\n    http:\n      paths:\n", Path("/", "Prefix", "s1"),
               "  - host: two.tls.test\n    http:\n      paths:\n", Path("/", "Prefix", "s2")));
  auto curl = [&](const std::string& host, const std::string& secret) {
    auto r = testing::RunCommand({"curl", "-sS", "--max-time", "5", "--cacert", certs + "/" + secret + "/tls.crt",
                                  "--resolve", StrCat(host, ":", https_port_, ":127.0.0.1"), "-D", "-",
                                  StrCat("https://", host, ":", https_port_, "/s")});
    return r.ok() ? *r : testing::CommandResult{};
  };
  testing::CommandResult one;
  for (int i = 0; i < 50; ++i) {
    one = curl("one.tls.test", "one-tls");
    if (one.exit_code == 0) break;
    absl::SleepFor(absl::Milliseconds(100));
  }
  EXPECT_EQ(one.exit_code, 0) << one.err;
  EXPECT_THAT(one.out, HasSubstr("b1 GET /s"));
  EXPECT_THAT(one.out, HasSubstr("X-Seen-Proto: https"));
  auto two = curl("two.tls.test", "two-tls");
  EXPECT_EQ(two.exit_code, 0) << two.err;
  EXPECT_THAT(two.out, HasSubstr("b2 GET /s"));
  // Each name gets its own certificate: two.tls.test does not verify against one's.
  EXPECT_NE(curl("two.tls.test", "one-tls").exit_code, 0);
  // A name without a certificate fails the handshake.
  EXPECT_NE(curl("three.tls.test", "one-tls").exit_code, 0);
  Loomctl({"delete", "ingress", "tls"});
}

// A websocket through the ingress stays open while its ingress is re-applied 100
// times at 10 per second, with a client hammering another route meanwhile; no
// request fails.
TEST_F(IngressTest, WebsocketAndLoadSurviveRouteUpdates) {
  auto ingress = [](int gen) {
    return StrCat("apiVersion: loom/v1\nkind: Ingress\nmetadata: {name: live}\nspec:\n  rules:\n",
                  "  - host: live.test\n    http:\n      paths:\n", Path("/ws", "Prefix", "s1"),
                  Path("/load", "Prefix", "s2"), Path(StrCat("/gen", gen), "Exact", gen % 2 ? "s3" : "s4"));
  };
  Apply(ingress(0));
  ASSERT_TRUE(WaitFor("live.test", "/gen0", "200 b4"));

  asio::io_context io;
  tcp::socket ws(io);
  ws.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), http_port_));
  timeval tv{5, 0};
  setsockopt(ws.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  std::string upgrade = "GET /ws HTTP/1.1\r\nHost: live.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
  asio::write(ws, asio::buffer(upgrade));
  beast::flat_buffer buf;
  bhttp::response_parser<bhttp::empty_body> p;
  p.skip(true);
  bhttp::read_header(ws, buf, p);
  ASSERT_EQ(p.get().result_int(), 101);

  std::atomic<bool> stop{false};
  std::atomic<int> ok{0}, failed{0};
  std::thread load([&] {
    asio::io_context lio;
    tcp::socket s(lio);
    s.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), http_port_));
    beast::flat_buffer lbuf;
    while (!stop) {
      std::string req = "GET /load HTTP/1.1\r\nHost: live.test\r\n\r\n";
      beast::error_code ec;
      asio::write(s, asio::buffer(req), ec);
      bhttp::response<bhttp::string_body> res;
      if (!ec) bhttp::read(s, lbuf, res, ec);
      if (ec || res.result_int() != 200 || !res.body().starts_with("b2 ")) {
        ++failed;
        if (ec) return;
      } else {
        ++ok;
      }
    }
  });
  int echoed = 0;
  for (int gen = 1; gen <= 100; ++gen) {
    absl::Time next = absl::Now() + absl::Milliseconds(100);
    auto r = Loomctl({"apply", "-f", Write("live.yaml", ingress(gen))});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    std::string msg = StrCat("message-", gen);
    beast::error_code ec;
    asio::write(ws, asio::buffer(msg), ec);
    ASSERT_FALSE(ec) << "websocket write failed at update " << gen;
    std::string got(msg.size(), '\0');
    size_t have = asio::buffer_copy(asio::buffer(got), buf.data());
    buf.consume(have);
    if (have < got.size()) asio::read(ws, asio::buffer(got.data() + have, got.size() - have), ec);
    ASSERT_FALSE(ec) << "websocket closed at update " << gen << ": " << ec.message();
    EXPECT_EQ(got, msg);
    ++echoed;
    absl::SleepFor(next - absl::Now());
  }
  stop = true;
  load.join();
  EXPECT_EQ(echoed, 100);
  EXPECT_EQ(failed.load(), 0);
  EXPECT_GT(ok.load(), 100);
  // The last update took effect: /gen100 -> s4 (b4).
  EXPECT_TRUE(WaitFor("live.test", "/gen100", "200 b4"));
  EXPECT_EQ(Curl("live.test", "/gen99"), "404 Not");
  Loomctl({"delete", "ingress", "live"});
}

// Malformed and slow requests against the daemon: the right status, and loomd keeps
// serving with no descriptor left behind.
TEST_F(IngressTest, MalformedRequestsNeitherCrashNorLeak) {
  Apply(StrCat("apiVersion: loom/v1\nkind: Ingress\nmetadata: {name: mal}\nspec:\n  rules:\n",
               "  - host: mal.test\n    http:\n      paths:\n", Path("/", "Prefix", "s1")));
  ASSERT_TRUE(WaitFor("mal.test", "/", "200 b1"));
  int fds_before = CountFds(loomd_->pid());
  auto raw = [&](const std::string& data) {
    asio::io_context io;
    tcp::socket s(io);
    s.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), http_port_));
    timeval tv{15, 0};
    setsockopt(s.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    asio::write(s, asio::buffer(data));
    beast::flat_buffer b;
    bhttp::response<bhttp::string_body> res;
    beast::error_code ec;
    bhttp::read(s, b, res, ec);
    return ec ? 0 : res.result_int();
  };
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(raw("BLAH\r\n\r\n"), 400);
    EXPECT_EQ(raw(StrCat("GET / HTTP/1.1\r\nHost: mal.test\r\nX: ", std::string(20000, 'x'), "\r\n\r\n")), 431);
    EXPECT_EQ(raw("POST / HTTP/1.1\r\nHost: mal.test\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffffffff\r\n"),
              400);
  }
  // A slow sender: loomd's header timeout (10 s) answers 408.
  EXPECT_EQ(raw("GET / HTTP/1.1\r\nHost: mal.test\r\n"), 408);
  EXPECT_EQ(Curl("mal.test", "/"), "200 b1");
  // Closed connections are reaped within the lingering close (2 s).
  int fds_after = 0;
  for (int i = 0; i < 50; ++i) {
    fds_after = CountFds(loomd_->pid());
    if (fds_after <= fds_before) break;
    absl::SleepFor(absl::Milliseconds(100));
  }
  EXPECT_LE(fds_after, fds_before);
  Loomctl({"delete", "ingress", "mal"});
  // The access log: time client "request" status bytes seconds host upstream ingress scheme.
  absl::SleepFor(absl::Milliseconds(300));  // flushed every 100 ms
  std::ifstream log(dir_ + "/access.log");
  std::string text((std::istreambuf_iterator<char>(log)), {});
  EXPECT_THAT(text, HasSubstr(StrCat("\"GET / HTTP/1.1\" 200 ")));
  EXPECT_THAT(text, HasSubstr(StrCat(" mal.test:", http_port_, " 127.0.1.1:", backend_port_, " default/mal http\n")));
  EXPECT_THAT(text, HasSubstr("127.0.0.1 \"-\" 400 "));
}

}  // namespace
}  // namespace loom
