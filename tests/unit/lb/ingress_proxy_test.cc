// The ingress proxy in-process, against HttpBackend servers on loopback: routing,
// keep-alive and pooling, streaming, 100-continue, upgrades, failures, limits and
// timeouts, TLS by SNI. Also run under ASan (build-debug) for the malformed cases.
#include "lb/ingress/proxy.h"

#include <sys/socket.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "common/strings.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/command.h"
#include "tests/testing/http_backend.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/yaml_manifest.h"

namespace loom::lb::ingress {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
using ::testing::HasSubstr;
using ::testing::StartsWith;

Ingress ParseIngress(std::string_view yaml) {
  auto ing = IngressFromManifest(testing::FirstYamlDocument(yaml));
  EXPECT_TRUE(ing.ok()) << ing.status();
  return *ing;
}

// A blocking client connection to the proxy.
class Client {
 public:
  explicit Client(uint16_t port) : sock_(io_) {
    sock_.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
    timeval tv{5, 0};
    setsockopt(sock_.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  }
  void Send(std::string_view raw) { asio::write(sock_, asio::buffer(raw.data(), raw.size())); }
  // The next response, or status 0 when the connection closed first.
  bhttp::response<bhttp::string_body> Read(bool head = false) {
    bhttp::response_parser<bhttp::string_body> p;
    p.body_limit(1ull << 30);
    if (head) p.skip(true);
    beast::error_code ec;
    bhttp::read(sock_, buf_, p, ec);
    if (ec) return {};
    return p.release();
  }
  bhttp::response<bhttp::string_body> Get(std::string_view host, std::string_view target) {
    Send(StrCat("GET ", target, " HTTP/1.1\r\nHost: ", host, "\r\n\r\n"));
    return Read();
  }
  // True when the proxy closed the connection (EOF or reset) within the timeout.
  bool Closed() {
    char c;
    beast::error_code ec;
    if (buf_.size() > 0) return false;
    sock_.read_some(asio::buffer(&c, 1), ec);
    return ec == asio::error::eof || ec == asio::error::connection_reset;
  }
  tcp::socket& socket() { return sock_; }

 private:
  asio::io_context io_;
  tcp::socket sock_;
  beast::flat_buffer buf_;
};

class ProxyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* name : {"a", "b", "c"}) {
      auto b = testing::HttpBackend::Start(name);
      ASSERT_TRUE(b.ok()) << b.status();
      backends_.push_back(*std::move(b));
    }
  }

  void StartProxy(ProxyOptions o = {}) {
    o.http_host = "127.0.0.1";
    o.http_port = 0;
    o.https_host = "127.0.0.1";
    o.https_port = 0;
    o.metrics = &metrics_;
    proxy_ = std::make_unique<IngressProxy>(o);
    ASSERT_OK(proxy_->Start());
  }

  // Routes: foo.com /a -> svc-a, /b -> svc-b, anything else on foo.com -> svc-c;
  // slow.com -> svc-a with a 1 s timeout; dead.com -> svc-dead; none.com -> svc-none.
  void Configure(std::vector<BackendAddress> extra_a = {}) {
    ingresses_ = {ParseIngress(R"(
kind: Ingress
metadata: {name: web, namespace: default}
spec:
  rules:
  - host: foo.com
    http:
      paths:
      - {path: /a, pathType: Prefix, backend: {service: {name: svc-a, port: {number: 80}}}}
      - {path: /echo, pathType: Prefix, backend: {service: {name: svc-a, port: {number: 80}}}}
      - {path: /chunked, pathType: Prefix, backend: {service: {name: svc-a, port: {number: 80}}}}
      - {path: /b, pathType: Exact, backend: {service: {name: svc-b, port: {number: 80}}}}
      - {path: /, pathType: Prefix, backend: {service: {name: svc-c, port: {number: 80}}}}
  - host: slow.com
    http:
      paths:
      - {path: /, pathType: Prefix, timeoutSeconds: 1, backend: {service: {name: svc-a, port: {number: 80}}}}
  - host: dead.com
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: svc-dead, port: {number: 80}}}}
  - host: retry.com
    http:
      paths:
      - {path: /, pathType: Prefix, retries: 2, backend: {service: {name: svc-mixed, port: {number: 80}}}}
  - host: none.com
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: svc-none, port: {number: 80}}}}
)")};
    ProxyConfig c;
    c.router = std::make_shared<Router>(Router::Build(ingresses_));
    auto addr = [](const testing::HttpBackend& b) {
      return BackendAddress{b.ip(), static_cast<uint16_t>(b.port())};
    };
    c.backends["default/svc-a:80"] = {addr(*backends_[0])};
    for (auto& e : extra_a) c.backends["default/svc-a:80"].push_back(e);
    c.backends["default/svc-b:80"] = {addr(*backends_[1])};
    c.backends["default/svc-c:80"] = {addr(*backends_[2])};
    c.backends["default/svc-dead:80"] = {{"127.0.0.1", DeadPort()}};
    c.backends["default/svc-mixed:80"] = {{"127.0.0.1", DeadPort()}, addr(*backends_[1])};
    EXPECT_TRUE(proxy_->Update(c).empty());
  }

  // A port nobody listens on (bound, never listened, so nothing else takes it).
  uint16_t DeadPort() {
    if (!dead_) {
      dead_ = std::make_unique<tcp::socket>(io_);
      dead_->open(tcp::v4());
      dead_->bind(tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    }
    return dead_->local_endpoint().port();
  }

  std::string Header(const bhttp::response<bhttp::string_body>& r, std::string_view name) {
    auto it = r.find(beast::string_view(name.data(), name.size()));
    return it == r.end() ? "" : std::string(it->value());
  }

  asio::io_context io_;
  std::unique_ptr<tcp::socket> dead_;
  metrics::Registry metrics_;
  std::vector<std::unique_ptr<testing::HttpBackend>> backends_;
  std::vector<Ingress> ingresses_;
  std::unique_ptr<IngressProxy> proxy_;
};

TEST_F(ProxyTest, RoutesKeepsAliveAndPoolsUpstreams) {
  StartProxy();
  Configure();
  Client c(proxy_->http_port());
  for (int i = 0; i < 20; ++i) {
    auto r = c.Get("foo.com", "/a/x?q=1");
    ASSERT_EQ(r.result_int(), 200);
    EXPECT_EQ(r.body(), "a GET /a/x?q=1\n");
    EXPECT_EQ(Header(r, "X-Seen-Host"), "foo.com");
    EXPECT_EQ(Header(r, "X-Seen-Xff"), "127.0.0.1");
    EXPECT_EQ(Header(r, "X-Seen-Proto"), "http");
  }
  EXPECT_EQ(c.Get("FOO.com:80", "/b").body(), "b GET /b\n");
  EXPECT_EQ(c.Get("foo.com", "/b/").body(), "c GET /b/\n");  // Exact: /b is not /b/
  EXPECT_EQ(c.Get("foo.com", "/abc").body(), "c GET /abc\n");  // Prefix: whole elements
  EXPECT_EQ(backends_[0]->connections(), 1u);                   // one pooled connection
  EXPECT_EQ(proxy_->stats().connections, 1u);

  // An X-Forwarded-For from the client is kept and extended.
  c.Send("GET /a HTTP/1.1\r\nHost: foo.com\r\nX-Forwarded-For: 192.0.2.1\r\n\r\n");
  EXPECT_EQ(Header(c.Read(), "X-Seen-Xff"), "192.0.2.1, 127.0.0.1");
  // HEAD has no body; HTTP/1.0 gets a keep-alive when it asks.
  c.Send("HEAD /a HTTP/1.1\r\nHost: foo.com\r\n\r\n");
  EXPECT_EQ(c.Read(true).result_int(), 200);
  c.Send("GET /a HTTP/1.0\r\nHost: foo.com\r\nConnection: keep-alive\r\n\r\n");
  EXPECT_EQ(c.Read().body(), "a GET /a\n");
  EXPECT_EQ(c.Get("foo.com", "/a").result_int(), 200);
  // Counted once the response is written: a moment after the client has it.
  std::string want = R"(loom_ingress_requests_total{ingress="default/web",host="foo.com",path="/a",code="200"} 24)";
  std::string text;
  for (int i = 0; i < 100 && text.find(want) == std::string::npos; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    text = metrics_.Render();
  }
  EXPECT_THAT(text, HasSubstr(want));
  EXPECT_THAT(text, HasSubstr("loom_ingress_request_duration_seconds_bucket"));
}

TEST_F(ProxyTest, NoRouteNoEndpointAndDeadEndpoint) {
  StartProxy();
  Configure();
  Client c(proxy_->http_port());
  // With retries, a refused connect moves on to the live endpoint, and the dead one
  // is ejected (not tried again within its back-off).
  for (int i = 0; i < 10; ++i) {
    auto r = c.Get("retry.com", "/");
    ASSERT_EQ(r.result_int(), 200);
    EXPECT_EQ(r.body(), "b GET /\n");
  }
  EXPECT_EQ(c.Get("other.com", "/").result_int(), 404);
  EXPECT_EQ(c.Get("none.com", "/").result_int(), 503);
  EXPECT_EQ(c.Get("dead.com", "/").result_int(), 502);  // ejected, but the only one: tried
  EXPECT_EQ(c.Get("foo.com", "/a").result_int(), 200);  // the connection survived them all
  std::string text = metrics_.Render();
  EXPECT_THAT(text, HasSubstr(R"(loom_ingress_upstream_errors_total{ingress="default/web",host="retry.com",path="/",reason="connect"} 1)"));
  EXPECT_THAT(text, HasSubstr(R"(loom_ingress_upstream_errors_total{ingress="default/web",host="dead.com",path="/",reason="connect"} 1)"));
  EXPECT_THAT(text, HasSubstr(R"(code="404"} 1)"));
}

TEST_F(ProxyTest, UpstreamTimeoutIs504) {
  StartProxy();
  Configure();
  Client c(proxy_->http_port());
  auto start = std::chrono::steady_clock::now();
  auto r = c.Get("slow.com", "/slow?ms=3000");
  EXPECT_EQ(r.result_int(), 504);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(2500));
}

TEST_F(ProxyTest, StreamsBodiesBothWaysChunkedAndLarge) {
  StartProxy();
  Configure();
  Client c(proxy_->http_port());
  // A chunked request body (with an extension) reaches the backend whole.
  c.Send("POST /echo HTTP/1.1\r\nHost: foo.com\r\nTransfer-Encoding: chunked\r\n\r\n"
         "5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
  EXPECT_EQ(c.Read().body(), "hello world");
  // A chunked response.
  auto r = c.Get("foo.com", "/chunked/x");
  EXPECT_EQ(r.body(), "a GET /chunked/x\n");
  EXPECT_TRUE(r.chunked());
  // 8 MiB up and back, sent in pieces.
  std::string big(8 << 20, 'x');
  for (size_t i = 0; i < big.size(); i += 4093) big[i] = static_cast<char>('a' + i % 26);
  std::thread sender([&] {
    c.Send(StrCat("POST /echo HTTP/1.1\r\nHost: foo.com\r\nContent-Length: ", big.size(), "\r\n\r\n"));
    for (size_t off = 0; off < big.size(); off += 1 << 20) c.Send(std::string_view(big).substr(off, 1 << 20));
  });
  auto echoed = c.Read();
  sender.join();
  EXPECT_EQ(echoed.result_int(), 200);
  EXPECT_TRUE(echoed.body() == big);
}

TEST_F(ProxyTest, ExpectContinueIsPassedThrough) {
  StartProxy();
  Configure();
  Client c(proxy_->http_port());
  c.Send("POST /echo HTTP/1.1\r\nHost: foo.com\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n");
  bhttp::response_parser<bhttp::empty_body> cont;
  beast::flat_buffer buf;
  bhttp::read_header(c.socket(), buf, cont);
  EXPECT_EQ(cont.get().result_int(), 100);
  c.Send("hello");
  EXPECT_EQ(c.Read().body(), "hello");
}

TEST_F(ProxyTest, WebSocketSurvivesConfigUpdates) {
  StartProxy();
  Configure();
  Client ws(proxy_->http_port());
  ws.Send("GET /a/ws HTTP/1.1\r\nHost: foo.com\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
          "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n");
  bhttp::response_parser<bhttp::empty_body> p;
  p.skip(true);
  beast::flat_buffer buf;
  bhttp::read_header(ws.socket(), buf, p);
  ASSERT_EQ(p.get().result_int(), 101);
  for (int i = 0; i < 20; ++i) {
    Configure();  // a new snapshot each time
    std::string msg = StrCat("frame-", i);
    ws.Send(msg);
    std::string got(msg.size(), '\0');
    size_t have = 0;
    if (buf.size() > 0) {
      have = asio::buffer_copy(asio::buffer(got), buf.data());
      buf.consume(have);
    }
    if (have < got.size()) asio::read(ws.socket(), asio::buffer(got.data() + have, got.size() - have));
    EXPECT_EQ(got, msg);
  }
  EXPECT_GE(proxy_->stats().generation, 21u);
}

TEST_F(ProxyTest, MalformedRequestsGet400) {
  StartProxy();
  Configure();
  for (std::string bad : {"GARBAGE\r\n\r\n", "GET / HTTP/9.9\r\nHost: foo.com\r\n\r\n",
                          "GET /a HTTP/1.1\r\nHost: foo.com\r\nBad Header\r\n\r\n",
                          "GET /a HTTP/1.1\r\n\r\n" /* no Host */,
                          "GET /a HTTP/1.1\r\nHost: foo.com\r\nHost: bar.com\r\n\r\n"}) {
    Client c(proxy_->http_port());
    c.Send(bad);
    EXPECT_EQ(c.Read().result_int(), 400) << bad;
    EXPECT_TRUE(c.Closed()) << bad;
  }
  // An invalid chunk size, after the head went upstream.
  Client c(proxy_->http_port());
  c.Send("POST /echo HTTP/1.1\r\nHost: foo.com\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n");
  EXPECT_EQ(c.Read().result_int(), 400);
  EXPECT_TRUE(c.Closed());
  // Request smuggling shapes are refused.
  Client d(proxy_->http_port());
  d.Send("POST /echo HTTP/1.1\r\nHost: foo.com\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd");
  EXPECT_EQ(d.Read().result_int(), 400);
  Client ok(proxy_->http_port());
  EXPECT_EQ(ok.Get("foo.com", "/a").result_int(), 200);
}

TEST_F(ProxyTest, OversizedHeadersGet431) {
  ProxyOptions o;
  o.max_header_bytes = 4096;
  o.max_header_fields = 20;
  StartProxy(o);
  Configure();
  {
    Client c(proxy_->http_port());
    c.Send(StrCat("GET /a HTTP/1.1\r\nHost: foo.com\r\nX-Big: ", std::string(8000, 'x'), "\r\n\r\n"));
    EXPECT_EQ(c.Read().result_int(), 431);
    EXPECT_TRUE(c.Closed());
  }
  {
    Client c(proxy_->http_port());
    std::string req = "GET /a HTTP/1.1\r\nHost: foo.com\r\n";
    for (int i = 0; i < 30; ++i) req += StrCat("X-F", i, ": v\r\n");
    c.Send(req + "\r\n");
    EXPECT_EQ(c.Read().result_int(), 431);
  }
  {
    // A header that never ends, sent without pause: the limit, not a timeout.
    Client c(proxy_->http_port());
    c.Send(StrCat("GET /", std::string(5000, 'a'), " HTTP/1.1\r\n"));
    EXPECT_EQ(c.Read().result_int(), 431);
  }
}

TEST_F(ProxyTest, SlowSendersGet408) {
  ProxyOptions o;
  o.header_timeout = absl::Milliseconds(500);
  o.body_timeout = absl::Milliseconds(500);
  o.idle_timeout = absl::Milliseconds(500);
  StartProxy(o);
  Configure();
  {
    // Slowloris: a byte at a time, never finishing the header.
    Client c(proxy_->http_port());
    c.Send("GET /a HTTP/1.1\r\n");
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    c.Send("Host: foo.com\r\n");
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    c.Send("X-A: b\r\n");
    EXPECT_EQ(c.Read().result_int(), 408);
    EXPECT_TRUE(c.Closed());
  }
  {
    // A body that stops short.
    Client c(proxy_->http_port());
    c.Send("POST /echo HTTP/1.1\r\nHost: foo.com\r\nContent-Length: 100\r\n\r\nabc");
    EXPECT_EQ(c.Read().result_int(), 408);
  }
  {
    // An idle keep-alive connection is closed without a response.
    Client c(proxy_->http_port());
    EXPECT_EQ(c.Get("foo.com", "/a").result_int(), 200);
    EXPECT_TRUE(c.Closed());
  }
  // Every connection is gone once the clients closed theirs (after the lingering close).
  for (int i = 0; i < 300 && proxy_->stats().open_connections != 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(proxy_->stats().open_connections, 0u);
}

TEST_F(ProxyTest, StalePooledConnectionIsReplayed) {
  StartProxy();
  Configure();
  Client c(proxy_->http_port());
  EXPECT_EQ(c.Get("foo.com", "/a").result_int(), 200);
  // The backend goes away (closing the pooled connection) and comes back on the same port.
  int port = backends_[0]->port();
  backends_[0]->Stop();
  auto again = testing::HttpBackend::Start("a2", "127.0.0.1", port);
  ASSERT_TRUE(again.ok()) << again.status();
  backends_[0] = *std::move(again);
  auto r = c.Get("foo.com", "/a");
  EXPECT_EQ(r.result_int(), 200);
  EXPECT_EQ(r.body(), "a2 GET /a\n");
}

TEST_F(ProxyTest, BalancesRoundRobinAndByWeight) {
  StartProxy();
  auto d = testing::HttpBackend::Start("d");
  ASSERT_TRUE(d.ok());
  Configure({{"127.0.0.1", static_cast<uint16_t>((*d)->port())}});
  Client c(proxy_->http_port());
  std::map<std::string, int> seen;
  for (int i = 0; i < 100; ++i) seen[c.Get("foo.com", "/a").body().substr(0, 1)]++;
  EXPECT_EQ(seen["a"], 50);
  EXPECT_EQ(seen["d"], 50);
}

TEST_F(ProxyTest, SeveralWorkersShareThePorts) {
  ProxyOptions o;
  o.workers = 3;
  StartProxy(o);
  Configure();
  for (int i = 0; i < 30; ++i) {
    Client c(proxy_->http_port());
    EXPECT_EQ(c.Get("foo.com", "/a").body(), "a GET /a\n");
  }
  EXPECT_EQ(proxy_->stats().connections, 30u);
}

// TLS: two certificates, chosen by SNI; a name without one fails the handshake.
TEST_F(ProxyTest, TlsBySni) {
  std::string dir = StrCat(::testing::TempDir(), "/proxy-tls-", getpid());
  std::filesystem::create_directories(dir);
  auto cert = [&](const std::string& cn) -> Certificate {
    auto r = testing::RunCommand({"openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                                  "-subj", "/CN=" + cn, "-addext", "subjectAltName=DNS:" + cn, "-keyout",
                                  dir + "/" + cn + ".key", "-out", dir + "/" + cn + ".crt"});
    EXPECT_TRUE(r.ok() && r->exit_code == 0);
    auto read = [](const std::string& p) {
      std::ifstream in(p);
      return std::string(std::istreambuf_iterator<char>(in), {});
    };
    return {read(dir + "/" + cn + ".crt"), read(dir + "/" + cn + ".key")};
  };
  StartProxy();
  ingresses_ = {ParseIngress(R"(
kind: Ingress
metadata: {name: tls, namespace: default}
spec:
  tls:
  - {hosts: [one.test], secretName: one}
  - {hosts: ["*.two.test"], secretName: two}
  rules:
  - http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: svc-a, port: {number: 80}}}}
)")};
  ProxyConfig c;
  c.router = std::make_shared<Router>(Router::Build(ingresses_));
  c.backends["default/svc-a:80"] = {{backends_[0]->ip(), static_cast<uint16_t>(backends_[0]->port())}};
  c.certificates["default/one"] = cert("one.test");
  c.certificates["default/two"] = cert("x.two.test");
  c.certificates["default/broken"] = {"not a pem", "nor this"};
  auto errors = proxy_->Update(c);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_THAT(errors[0], HasSubstr("secret default/broken"));
  auto curl = [&](const std::string& host, const std::string& ca) {
    return testing::RunCommand({"curl", "-sS", "--max-time", "5", "--cacert", dir + "/" + ca + ".crt",
                                "--resolve", StrCat(host, ":", proxy_->https_port(), ":127.0.0.1"),
                                "-D", "-", StrCat("https://", host, ":", proxy_->https_port(), "/p")});
  };
  auto one = curl("one.test", "one.test");
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(one->exit_code, 0) << one->err;
  EXPECT_THAT(one->out, HasSubstr("X-Seen-Proto: https"));
  EXPECT_THAT(one->out, HasSubstr("a GET /p"));
  auto two = curl("x.two.test", "x.two.test");
  ASSERT_TRUE(two.ok());
  EXPECT_EQ(two->exit_code, 0) << two->err;
  auto wrong = curl("x.two.test", "one.test");  // the other certificate: not trusted
  EXPECT_NE(wrong->exit_code, 0);
  auto none = curl("three.test", "one.test");
  EXPECT_NE(none->exit_code, 0);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace loom::lb::ingress
