// The DNS server on loopback, asked by real clients (dig, kdig) and by raw sockets
// sending hostile packets.
#include "dns/server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <thread>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/command.h"
#include "tests/testing/privileged.h"
#include "tests/testing/status_matchers.h"

namespace loom::dns {
namespace {

using ::loom::testing::RunCommand;
using ::testing::HasSubstr;
using ::testing::IsSupersetOf;
using ::testing::Not;

model::Service Svc(std::string name, model::ServiceType type, std::string ip = "") {
  model::Service s;
  s.meta.name = std::move(name);
  s.type = type;
  s.cluster_ip = std::move(ip);
  s.selector = {{"app", s.meta.name}};
  s.ports = {{"http", 80, 8080, "", model::Protocol::kTcp, 0}};
  return s;
}

// Answers every forwarded query with one A record 192.0.2.77 (an address that is
// only ever written into answers, never contacted), after a short delay on its
// own thread, as a real upstream would.
class FakeUpstream : public Upstream {
 public:
  ~FakeUpstream() override {
    for (auto& t : threads_) t.join();
  }
  void Resolve(std::vector<uint8_t> query, ResolveCallback done) override {
    ++calls;
    threads_.emplace_back([query = std::move(query), done = std::move(done)] {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
      Query q;
      DecodeError err;
      if (!DecodeQuery(query.data(), query.size(), &q, &err)) {
        done(absl::InternalError("bad query"));
        return;
      }
      std::vector<uint8_t> out(512);
      MessageWriter w(out.data(), out.size());
      Header h;
      h.id = q.header.id;
      h.set_qr(true);
      h.set_rd(true);
      h.set_ra(true);
      w.SetHeader(h);
      w.AddQuestion(q.question.name, q.question.qtype, q.question.qclass);
      uint8_t addr[4] = {192, 0, 2, 77};
      if (q.question.qtype == type::kA) w.AddA(Section::kAnswer, q.question.name, 300, addr);
      out.resize(w.size());
      done(out);
    });
  }
  std::atomic<int> calls{0};

 private:
  std::vector<std::thread> threads_;
};

class DnsServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    LOOM_REQUIRE(access("/usr/bin/dig", X_OK) == 0, "dig (bind9-dnsutils)");
    std::vector<model::Service> services = {Svc("web", model::ServiceType::kClusterIP, "10.96.0.10"),
                                            Svc("big", model::ServiceType::kHeadless),
                                            Svc("ext", model::ServiceType::kExternalName)};
    services[2].external_name = "example.org";
    services[2].selector.clear();
    absl::flat_hash_map<std::string, model::EndpointSet> eps;
    for (int i = 0; i < 300; ++i) {
      model::Endpoint e;
      e.ip = "10.244." + std::to_string(i / 200) + "." + std::to_string(i % 200 + 1);
      e.ready = true;
      e.ports = {8080};
      eps["default/big"].endpoints.push_back(e);
    }
    auto zone = ClusterZone::Build(ZoneOptions{}, model::ServiceTable::Of(services, eps));
    ASSERT_TRUE(zone.ok()) << zone.status();
    zones_.Set(*zone);
    ServerOptions opts;
    opts.listen = "127.0.0.1:0";
    opts.udp_workers = 2;
    server_ = std::make_unique<DnsServer>(opts, &zones_, &upstream_);
    ASSERT_OK(server_->Start());
  }
  void TearDown() override {
    if (server_) server_->Stop();
  }

  std::string Dig(std::vector<std::string> args) {
    std::vector<std::string> argv = {"dig", "@127.0.0.1", "-p", std::to_string(server_->port()),
                                     "+tries=1", "+time=2"};
    argv.insert(argv.end(), args.begin(), args.end());
    auto r = RunCommand(argv, absl::Seconds(10));
    EXPECT_TRUE(r.ok()) << r.status();
    if (!r.ok()) return "";
    // dig aligns columns with tabs or spaces: fold every run of blanks to one space.
    std::string out;
    for (char c : r->out) {
      bool blank = c == ' ' || c == '\t';
      if (blank && !out.empty() && out.back() == ' ') continue;
      out.push_back(blank ? ' ' : c);
    }
    return out;
  }

  ZoneHolder zones_;
  FakeUpstream upstream_;
  std::unique_ptr<DnsServer> server_;
};

TEST_F(DnsServerTest, AnswersOverUdpAndTcpKeepingCase) {
  std::string udp = Dig({"WEB.Default.Svc.cluster.LOCAL", "A"});
  EXPECT_THAT(udp, HasSubstr("status: NOERROR"));
  EXPECT_THAT(udp, HasSubstr("flags: qr aa rd ra"));
  EXPECT_THAT(udp, HasSubstr("WEB.Default.Svc.cluster.LOCAL. 5 IN A 10.96.0.10"));
  std::string tcp = Dig({"+tcp", "web.default.svc.cluster.local", "A"});
  EXPECT_THAT(tcp, HasSubstr("10.96.0.10"));
  EXPECT_THAT(tcp, HasSubstr("(TCP)"));
  std::string srv = Dig({"_http._tcp.web.default.svc.cluster.local", "SRV"});
  EXPECT_THAT(srv, HasSubstr("SRV 0 100 80 web.default.svc.cluster.local."));
  std::string nx = Dig({"nope.default.svc.cluster.local", "A"});
  EXPECT_THAT(nx, HasSubstr("status: NXDOMAIN"));
  EXPECT_THAT(nx, HasSubstr("SOA"));
}

TEST_F(DnsServerTest, TruncatesOverUdpAndDigRetriesOverTcp) {
  std::string out = Dig({"+bufsize=1232", "big.default.svc.cluster.local", "A"});
  EXPECT_THAT(out, HasSubstr("Truncated, retrying in TCP mode"));
  EXPECT_THAT(out, HasSubstr("ANSWER: 300"));
  std::string plain = Dig({"+noedns", "+ignore", "big.default.svc.cluster.local", "A"});
  EXPECT_THAT(plain, HasSubstr("flags: qr aa tc rd ra"));
}

TEST_F(DnsServerTest, ForwardsOtherNamesAndExternalNameTargets) {
  std::string fwd = Dig({"www.example.com", "A"});
  EXPECT_THAT(fwd, HasSubstr("192.0.2.77"));
  EXPECT_THAT(fwd, Not(HasSubstr(" aa ")));
  std::string ext = Dig({"ext.default.svc.cluster.local", "A"});
  EXPECT_THAT(ext, HasSubstr("CNAME example.org."));
  EXPECT_THAT(ext, HasSubstr("example.org. 300 IN A 192.0.2.77"));
  EXPECT_EQ(upstream_.calls.load(), 2);
}

// Each worker and the TCP thread count on their own; stats() adds them up, the
// counts outlive Stop(), and the threads carry names one can pin them by.
TEST_F(DnsServerTest, CountsOnEveryThreadAndNamesTheThreads) {
  std::set<std::string> names;
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task")) {
    std::ifstream comm(task.path() / "comm");
    std::string name;
    std::getline(comm, name);
    names.insert(name);
  }
  EXPECT_THAT(names, IsSupersetOf({"dns-udp-0", "dns-udp-1", "dns-tcp"}));

  for (int i = 0; i < 4; ++i) Dig({"web.default.svc.cluster.local", "A"});  // the fast path
  Dig({"web.default.svc.cluster.local", "AAAA"});                        // NODATA
  Dig({"nope.default.svc.cluster.local", "A"});                          // NXDOMAIN
  Dig({"_http._tcp.web.default.svc.cluster.local", "SRV"});              // the general path
  Dig({"+tcp", "web.default.svc.cluster.local", "A"});
  Dig({"www.example.com", "A"});                                         // forwarded
  ServerStats s = server_->stats();
  EXPECT_EQ(s.queries_udp, 8u);
  EXPECT_EQ(s.queries_tcp, 1u);
  EXPECT_EQ(s.forwarded, 1u);
  EXPECT_EQ(s.qtype[ServerStats::QtypeSlot(type::kA)], 7u);
  EXPECT_EQ(s.qtype[ServerStats::QtypeSlot(type::kAaaa)], 1u);
  EXPECT_EQ(s.qtype[ServerStats::QtypeSlot(type::kSrv)], 1u);
  EXPECT_EQ(s.rcode[static_cast<int>(Rcode::kNoError)], 8u);
  EXPECT_EQ(s.rcode[static_cast<int>(Rcode::kNxDomain)], 1u);
  uint64_t timed = 0;
  for (uint64_t n : s.latency) timed += n;
  EXPECT_EQ(timed, 9u);
  EXPECT_GT(s.latency_sum_ns, 0u);
  server_->Stop();
  EXPECT_EQ(server_->stats().queries_udp, 8u);
}

TEST_F(DnsServerTest, RefusesOtherClassesTransfersAndOpcodes) {
  EXPECT_THAT(Dig({"-c", "CH", "version.bind", "TXT"}), HasSubstr("status: REFUSED"));
  EXPECT_THAT(Dig({"+tcp", "cluster.local", "AXFR"}), HasSubstr("Transfer failed"));
  EXPECT_THAT(Dig({"+edns=1", "+noednsnegotiation", "web.default.svc.cluster.local"}),
              HasSubstr("BADVERS"));
}

TEST_F(DnsServerTest, SurvivesHostilePacketsOverUdpAndTcp) {
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(server_->port());
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  timeval tv{0, 200000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  // A compression loop: FORMERR back, with the ID echoed.
  std::vector<uint8_t> loop = {0xAB, 0xCD, 0x01, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xC0, 12, 0, 1, 0, 1};
  sendto(fd, loop.data(), loop.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to);
  uint8_t buf[2048];
  ssize_t n = recv(fd, buf, sizeof buf, 0);
  ASSERT_GE(n, 12);
  EXPECT_EQ(buf[0], 0xAB);
  EXPECT_EQ(buf[1], 0xCD);
  EXPECT_EQ(buf[3] & 0xF, 1) << "FORMERR";
  // Random garbage, bounded.
  std::mt19937 rng(7);
  for (int i = 0; i < 2000; ++i) {
    std::vector<uint8_t> junk(rng() % 600);
    for (auto& b : junk) b = static_cast<uint8_t>(rng());
    if (junk.size() > 2) junk[2] &= 0x7F;  // mostly queries, so they get parsed deeper
    sendto(fd, junk.data(), junk.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to);
  }
  close(fd);
  // TCP: a frame announcing more than is sent, then a zero-length frame.
  int t = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_EQ(connect(t, reinterpret_cast<sockaddr*>(&to), sizeof to), 0);
  uint8_t bad[] = {0xFF, 0xFF, 1, 2, 3};
  ASSERT_EQ(send(t, bad, sizeof bad, 0), static_cast<ssize_t>(sizeof bad));
  close(t);
  t = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_EQ(connect(t, reinterpret_cast<sockaddr*>(&to), sizeof to), 0);
  uint8_t zero[] = {0, 0};
  send(t, zero, sizeof zero, 0);
  EXPECT_EQ(recv(t, buf, sizeof buf, 0), 0) << "a zero-length frame closes the connection";
  close(t);
  // Still answering.
  EXPECT_THAT(Dig({"web.default.svc.cluster.local", "A"}), HasSubstr("10.96.0.10"));
  EXPECT_THAT(Dig({"+tcp", "web.default.svc.cluster.local", "A"}), HasSubstr("10.96.0.10"));
}

TEST_F(DnsServerTest, PipelinedTcpQueriesAllAnswered) {
  int t = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(server_->port());
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(connect(t, reinterpret_cast<sockaddr*>(&to), sizeof to), 0);
  std::vector<uint8_t> stream;
  for (int i = 0; i < 20; ++i) {
    uint8_t q[512];
    MessageWriter w(q, sizeof q);
    Header h;
    h.id = static_cast<uint16_t>(i);
    w.SetHeader(h);
    w.AddQuestion(*Name::FromText(i % 2 ? "web.default.svc.cluster.local" : "www.example.com"),
                  type::kA, kClassIn);
    stream.push_back(static_cast<uint8_t>(w.size() >> 8));
    stream.push_back(static_cast<uint8_t>(w.size()));
    stream.insert(stream.end(), q, q + w.size());
  }
  ASSERT_EQ(send(t, stream.data(), stream.size(), 0), static_cast<ssize_t>(stream.size()));
  timeval tv{3, 0};
  setsockopt(t, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  std::vector<uint8_t> got;
  std::set<int> ids;
  uint8_t buf[4096];
  while (ids.size() < 20) {
    ssize_t n = recv(t, buf, sizeof buf, 0);
    if (n <= 0) break;
    got.insert(got.end(), buf, buf + n);
    while (got.size() >= 2) {
      size_t len = (size_t{got[0]} << 8) | got[1];
      if (got.size() < len + 2) break;
      ids.insert((got[2] << 8) | got[3]);
      got.erase(got.begin(), got.begin() + static_cast<long>(len + 2));
    }
  }
  close(t);
  EXPECT_EQ(ids.size(), 20u);
}

// A UDP socket connected to `port` on loopback, reads timing out after 2 s.
int ConnectedUdp(uint16_t port) {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(port);
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd >= 0 && connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to) != 0) {
    close(fd);
    return -1;
  }
  timeval tv{2, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}

// Sends `count` copies of `query` on `fd`, 20 to a sendmmsg with up to 120 in flight
// (inside both sockets' buffers; bursts that are not the worker's batch of 32, as
// clients' are not), reading the answers up to 32 to a recvmmsg, as dnsperf keeps
// queries in flight; the number of answers.
int Load(int fd, const std::vector<uint8_t>& query, int count) {
  constexpr int kBurst = 20;
  constexpr int kRead = 32;
  mmsghdr out[kBurst] = {}, in[kRead] = {};
  iovec out_iov[kBurst], in_iov[kRead];
  uint8_t answers[kRead][512];
  for (int i = 0; i < kBurst; ++i) {
    out_iov[i] = {const_cast<uint8_t*>(query.data()), query.size()};
    out[i].msg_hdr.msg_iov = &out_iov[i];
    out[i].msg_hdr.msg_iovlen = 1;
  }
  for (int i = 0; i < kRead; ++i) {
    in_iov[i] = {answers[i], sizeof answers[i]};
    in[i].msg_hdr.msg_iov = &in_iov[i];
    in[i].msg_hdr.msg_iovlen = 1;
  }
  int sent = 0, answered = 0;
  while (answered < count) {
    while (sent < count && sent - answered <= 120 - kBurst) {
      int n = sendmmsg(fd, out, static_cast<unsigned>(std::min(kBurst, count - sent)), 0);
      if (n <= 0) return answered;
      sent += n;
    }
    int n = recvmmsg(fd, in, kRead, MSG_WAITFORONE, nullptr);
    if (n <= 0) return answered;
    answered += n;
  }
  return answered;
}

// Under load a worker reads after waits on its timer (ServerOptions::udp_coalesce),
// answers everything, and leaves the timer once the load is gone: queries one at a
// time are answered without it.
TEST(DnsServerCoalesce, WaitsOnItsTimerOnlyUnderLoad) {
  ZoneHolder zones;
  auto zone = ClusterZone::Build(
      ZoneOptions{},
      model::ServiceTable::Of({Svc("web", model::ServiceType::kClusterIP, "10.96.0.10")}));
  ASSERT_TRUE(zone.ok()) << zone.status();
  zones.Set(*zone);
  ServerOptions opts;
  opts.listen = "127.0.0.1:0";
  opts.udp_coalesce = absl::Microseconds(200);
  DnsServer server(opts, &zones, nullptr);
  ASSERT_OK(server.Start());
  // SRV queries take the general path, the worker's costliest per query.
  auto make_query = [](std::string_view name, uint16_t qtype) {
    std::vector<uint8_t> q(512);
    MessageWriter w(q.data(), q.size());
    w.SetHeader(Header{});
    w.AddQuestion(*Name::FromText(name), qtype, kClassIn);
    q.resize(w.size());
    return q;
  };
  std::vector<uint8_t> srv = make_query("_http._tcp.web.default.svc.cluster.local", type::kSrv);
  std::vector<uint8_t> query = make_query("web.default.svc.cluster.local", type::kA);

  // Load: one such client, 20,000 SRV queries; the worker, slower per query than the
  // client, mostly finds some queued. Whether a given load's last reads happen to be
  // partial is up to the scheduler: up to five loads.
  constexpr int kQueries = 20000;
  int loads = 0;
  while (loads < 5 && server.stats().udp_waits == 0) {
    ++loads;
    int fd = ConnectedUdp(server.port());
    ASSERT_GE(fd, 0);
    ASSERT_EQ(Load(fd, srv, kQueries), kQueries);
    close(fd);
    // The worker's last wait may begin just after the last answer.
    absl::Time deadline = absl::Now() + absl::Milliseconds(200);
    while (server.stats().udp_waits == 0 && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(1));
    }
  }
  EXPECT_EQ(server.stats().queries_udp, static_cast<uint64_t>(loads) * kQueries);
  const uint64_t waits = server.stats().udp_waits;
  EXPECT_GT(waits, 0u);
  absl::SleepFor(absl::Milliseconds(5));  // the load's last wait, if one is under way

  // One at a time: the worker sleeps on its socket between them.
  int fd = ConnectedUdp(server.port());
  ASSERT_GE(fd, 0);
  for (int i = 0; i < 200; ++i) {
    query[0] = static_cast<uint8_t>(i >> 8);
    query[1] = static_cast<uint8_t>(i);
    ASSERT_EQ(send(fd, query.data(), query.size(), 0), static_cast<ssize_t>(query.size()));
    uint8_t answer[512];
    ssize_t n = recv(fd, answer, sizeof answer, 0);
    ASSERT_GE(n, 16) << "query " << i;
    EXPECT_EQ((answer[0] << 8) | answer[1], i);
    EXPECT_EQ(std::vector<uint8_t>(answer + n - 4, answer + n),
              (std::vector<uint8_t>{10, 96, 0, 10}));
  }
  close(fd);
  // A wait or two when the end of the load still reads as load (or on a starved
  // CPU), never one per query.
  EXPECT_LT(server.stats().udp_waits - waits, 20u);
}

TEST(DnsServerStart, ClearErrorsForBadAddresses) {
  ZoneHolder zones;
  ServerOptions bad;
  bad.listen = "nonsense";
  DnsServer s1(bad, &zones, nullptr);
  EXPECT_THAT(s1.Start(), ::loom::testing::StatusIs(absl::StatusCode::kInvalidArgument,
                                                    HasSubstr("want ip:port")));
  // A port already bound by someone else without SO_REUSEPORT.
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
  socklen_t len = sizeof sa;
  getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len);
  ServerOptions taken;
  taken.listen = "127.0.0.1:" + std::to_string(ntohs(sa.sin_port));
  DnsServer s2(taken, &zones, nullptr);
  EXPECT_THAT(s2.Start(), ::loom::testing::StatusIs(absl::StatusCode::kAlreadyExists,
                                                    HasSubstr("in use")));
  close(fd);
}

}  // namespace
}  // namespace loom::dns
