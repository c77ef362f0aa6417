// NodeDns without root: serving on 127.0.0.1 (already local, so no address is
// added), zones from ServiceState snapshots, readiness, status and metrics.
#include "agent/node_dns/node_dns.h"

#include <linux/capability.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <thread>

#include <arpa/inet.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace loom::agent {
namespace {

using ::testing::HasSubstr;

// One UDP query for `name` A; the decoded answer.
absl::StatusOr<dns::Message> Ask(uint16_t port, const std::string& name) {
  std::vector<uint8_t> q(512);
  dns::MessageWriter w(q.data(), q.size());
  dns::Header h;
  h.id = 42;
  w.SetHeader(h);
  w.AddQuestion(*dns::Name::FromText(name), dns::type::kA, dns::kClassIn);
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  timeval tv{2, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
  sendto(fd, q.data(), w.size(), 0, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
  uint8_t buf[4096];
  ssize_t n = recv(fd, buf, sizeof buf, 0);
  close(fd);
  if (n <= 0) return absl::DeadlineExceededError("no answer");
  return dns::DecodeMessage(buf, static_cast<size_t>(n));
}

std::shared_ptr<const ServiceState> StateWith(const std::string& name, const std::string& ip) {
  auto s = std::make_shared<ServiceState>();
  model::Service svc;
  svc.meta.name = name;
  svc.cluster_ip = ip;
  svc.ports = {{"http", 80, 80, "", model::Protocol::kTcp, 0}};
  s->services = model::ServiceTable::Of({svc});
  s->generation = 1;
  return s;
}

TEST(NodeDnsTest, ServesZonesFromStateAndReportsStatusAndMetrics) {
  metrics::Registry registry;
  NodeDnsOptions o;
  o.ip = "127.0.0.1";
  o.port = 0;
  o.ttl = 7;
  NodeDns dns(o, &registry);
  ASSERT_OK(dns.Start());
  ASSERT_NE(dns.port(), 0);
  std::string reason;
  EXPECT_FALSE(dns.Ready(&reason));
  EXPECT_THAT(reason, HasSubstr("zone not built"));
  // Serving an empty zone already: NXDOMAIN, not SERVFAIL.
  ASSERT_OK_AND_ASSIGN(dns::Message empty, Ask(dns.port(), "web.default.svc.cluster.local"));
  EXPECT_EQ(empty.header.rcode(), dns::Rcode::kNxDomain);

  dns.OnState(StateWith("web", "10.96.0.10"));
  EXPECT_TRUE(dns.Ready(&reason)) << reason;
  ASSERT_OK_AND_ASSIGN(dns::Message m, Ask(dns.port(), "WEB.default.svc.cluster.local"));
  ASSERT_EQ(m.answers.size(), 1u);
  EXPECT_EQ(m.answers[0].ttl, 7u);
  EXPECT_EQ(m.answers[0].rdata, std::string("\x0a\x60\x00\x0a", 4));
  // Outside the zone without upstreams: REFUSED.
  ASSERT_OK_AND_ASSIGN(dns::Message other, Ask(dns.port(), "example.test"));
  EXPECT_EQ(other.header.rcode(), dns::Rcode::kRefused);

  Json status = dns.StatusJson();
  EXPECT_EQ(status["serving"], true);
  EXPECT_EQ(status["addressAdded"], false);  // 127.0.0.1 was local already
  EXPECT_EQ(status["zone"]["services"], 1);
  EXPECT_EQ(status["forwarding"]["enabled"], false);

  dns.UpdateMetrics();
  std::string text = registry.Render() + dns.RenderLatency();
  EXPECT_THAT(text, HasSubstr("loom_dns_requests_total{proto=\"udp\"} 3"));
  EXPECT_THAT(text, HasSubstr("loom_dns_responses_total{rcode=\"NXDOMAIN\"} 1"));
  EXPECT_THAT(text, HasSubstr("loom_dns_responses_total{rcode=\"REFUSED\"} 1"));
  EXPECT_THAT(text, HasSubstr("loom_dns_queries_by_type_total{type=\"A\"} 3"));
  EXPECT_THAT(text, HasSubstr("loom_dns_zone_updates_total 1"));
  EXPECT_THAT(text, HasSubstr("loom_dns_request_duration_seconds_bucket{le=\"+Inf\"} 3"));
  EXPECT_THAT(text, HasSubstr("loom_dns_request_duration_seconds_count 3"));
  // Counters stay in step on later scrapes.
  dns.UpdateMetrics();
  EXPECT_THAT(registry.Render(), HasSubstr("loom_dns_requests_total{proto=\"udp\"} 3"));

  dns.Stop();
  EXPECT_FALSE(dns.Ready(&reason));
  EXPECT_THAT(reason, HasSubstr("not serving"));
}

// Drops CAP_NET_ADMIN from the calling thread's effective set (capabilities are
// per thread; threads it starts inherit the reduced set).
bool DropNetAdminInThisThread() {
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2] = {};
  if (syscall(SYS_capget, &header, data) != 0) return false;
  data[CAP_NET_ADMIN / 32].effective &= ~(1u << (CAP_NET_ADMIN % 32));
  return syscall(SYS_capset, &header, data) == 0;
}

// Without the right to add the address (not root, or root without CAP_NET_ADMIN),
// start-up fails with a clear error naming it.
TEST(NodeDnsTest, AnAddressThatIsNotLocalNeedsNetAdminOrFailsClearly) {
  absl::Status started;
  bool dropped = false;
  std::thread t([&] {
    dropped = DropNetAdminInThisThread();
    if (!dropped) return;
    NodeDnsOptions o;
    o.ip = "192.0.2.53";
    o.port = 0;
    NodeDns dns(o, nullptr);
    started = dns.Start();
  });
  t.join();
  ASSERT_TRUE(dropped) << "capset failed";
  EXPECT_THAT(started, loom::testing::StatusIs(absl::StatusCode::kPermissionDenied,
                                               HasSubstr("192.0.2.53")));
}

}  // namespace
}  // namespace loom::agent
