// Probes against real sockets on loopback, and the tracker's thresholds and timing.
#include "agent/apps/probe.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/http/server.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace loom::agent {
namespace {

using ::testing::HasSubstr;

model::Probe Http(uint16_t port, std::string path) {
  model::Probe p;
  p.kind = model::Probe::Kind::kHttpGet;
  p.port = port;
  p.http_path = std::move(path);
  return p;
}

model::Probe Tcp(uint16_t port) {
  model::Probe p;
  p.kind = model::Probe::Kind::kTcpSocket;
  p.port = port;
  return p;
}

TEST(ProbeTest, HttpPassesOn2xxAnd3xxOnly) {
  http::HttpServer server([](const http::Request& r) {
    if (r.target == "/ok") return http::Response::Text(200, "ok");
    if (r.target == "/moved") return http::Response::Text(302, "");
    return http::Response::Text(503, "down");
  });
  ASSERT_OK_AND_ASSIGN(uint16_t port, server.ListenTcp("127.0.0.1", 0));
  ASSERT_OK(server.Start());
  EXPECT_OK(RunProbe(Http(port, "/ok"), "127.0.0.1", nullptr));
  EXPECT_OK(RunProbe(Http(port, "/moved"), "127.0.0.1", nullptr));
  absl::Status down = RunProbe(Http(port, "/down"), "127.0.0.1", nullptr);
  EXPECT_THAT(std::string(down.message()), HasSubstr("/down: status 503"));
  server.Stop();
  EXPECT_FALSE(RunProbe(Http(port, "/ok"), "127.0.0.1", nullptr).ok());
}

TEST(ProbeTest, TcpPassesWhenAConnectionIsAccepted) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
  ASSERT_EQ(listen(fd, 4), 0);
  socklen_t len = sizeof sa;
  getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len);
  uint16_t port = ntohs(sa.sin_port);
  EXPECT_OK(RunProbe(Tcp(port), "127.0.0.1", nullptr));
  close(fd);
  absl::Status refused = RunProbe(Tcp(port), "127.0.0.1", nullptr);
  EXPECT_THAT(std::string(refused.message()), HasSubstr("refused"));
  EXPECT_FALSE(RunProbe(Tcp(80), "not-an-ip", nullptr).ok());
}

TEST(ProbeTest, ExecPassesOnExitZero) {
  model::Probe p;
  p.kind = model::Probe::Kind::kExec;
  p.command = {"cat", "/tmp/healthy"};
  int code = 0;
  ExecInReplica exec = [&](const std::vector<std::string>& cmd, absl::Duration) -> absl::StatusOr<int> {
    EXPECT_EQ(cmd[0], "cat");
    return code;
  };
  EXPECT_OK(RunProbe(p, "10.0.0.1", exec));
  code = 1;
  EXPECT_THAT(std::string(RunProbe(p, "10.0.0.1", exec).message()), HasSubstr("exit code 1"));
  EXPECT_FALSE(RunProbe(p, "10.0.0.1", nullptr).ok());
}

TEST(ProbeTrackerTest, ThresholdsAndPeriods) {
  model::Probe p = Tcp(80);
  p.initial_delay_seconds = 5;
  p.period_seconds = 2;
  p.success_threshold = 2;
  p.failure_threshold = 3;
  absl::Time t0 = absl::FromUnixSeconds(100);
  ProbeTracker t(p, t0);
  EXPECT_FALSE(t.Due(t0 + absl::Seconds(4)));
  EXPECT_TRUE(t.Due(t0 + absl::Seconds(5)));
  t.Record(true, t0 + absl::Seconds(5));
  EXPECT_FALSE(t.passing());  // two successes needed
  EXPECT_EQ(t.next(), t0 + absl::Seconds(7));
  t.Record(true, t0 + absl::Seconds(7));
  EXPECT_TRUE(t.passing());
  t.Record(false, t0 + absl::Seconds(9), "refused");
  t.Record(false, t0 + absl::Seconds(11), "refused");
  EXPECT_TRUE(t.passing());  // two failures: not yet
  EXPECT_FALSE(t.failed());
  t.Record(false, t0 + absl::Seconds(13), "refused");
  EXPECT_FALSE(t.passing());
  EXPECT_TRUE(t.failed());
  EXPECT_EQ(t.last_error(), "refused");
  t.Record(true, t0 + absl::Seconds(15));
  EXPECT_FALSE(t.failed());
  EXPECT_FALSE(t.passing());  // needs successThreshold again
}

}  // namespace
}  // namespace loom::agent
