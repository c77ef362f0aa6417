#include "common/http/server.h"

#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <filesystem>
#include <stdexcept>
#include <string>

#include "common/http/client.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace loom::http {
namespace {

using ::loom::testing::IsOk;
using ::loom::testing::StatusIs;
using ::testing::HasSubstr;

class ServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/loom-http-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    socket_ = dir_ + "/api.sock";
    router_.Handle("GET", "/v1/status", [](const Request&) {
      return Response::JsonBody(200, Json{{"ok", true}});
    });
    router_.Handle("POST", "/echo", [](const Request& r) {
      return Response{201, r.Header("Content-Type"), r.body};
    });
    router_.Handle("GET", "/throw",
                   [](const Request&) -> Response { throw std::runtime_error("boom"); });
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::unique_ptr<HttpServer> MakeServer(ServerOptions options = {}) {
    return std::make_unique<HttpServer>([this](const Request& r) { return router_.Dispatch(r); },
                                        options);
  }

  std::string dir_;
  std::string socket_;
  Router router_;
};

TEST_F(ServerTest, ServesOverUnixSocketWithMode0600) {
  auto server = MakeServer();
  ASSERT_OK(server->ListenUnix(socket_));
  ASSERT_OK(server->Start());
  struct stat st;
  ASSERT_EQ(stat(socket_.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  auto client = HttpClient::ForUnixSocket(socket_);
  ASSERT_OK_AND_ASSIGN(Response r, client.Get("/v1/status"));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.content_type, "application/json");
  EXPECT_EQ(r.body, "{\"ok\":true}\n");

  ASSERT_OK_AND_ASSIGN(Response echo, client.Send("POST", "/echo", "hello", "text/x-test"));
  EXPECT_EQ(echo.status, 201);
  EXPECT_EQ(echo.body, "hello");
  EXPECT_EQ(echo.content_type, "text/x-test");

  ASSERT_OK_AND_ASSIGN(Response missing, client.Get("/missing"));
  EXPECT_EQ(missing.status, 404);
}

TEST_F(ServerTest, HandlerExceptionIs500AndServerKeepsServing) {
  auto server = MakeServer();
  ASSERT_OK(server->ListenUnix(socket_));
  ASSERT_OK(server->Start());
  auto client = HttpClient::ForUnixSocket(socket_);
  ASSERT_OK_AND_ASSIGN(Response r, client.Get("/throw"));
  EXPECT_EQ(r.status, 500);
  ASSERT_OK_AND_ASSIGN(Response ok, client.Get("/v1/status"));
  EXPECT_EQ(ok.status, 200);
}

TEST_F(ServerTest, OversizedBodyIs413) {
  ServerOptions options;
  options.max_body_bytes = 16;
  auto server = MakeServer(options);
  ASSERT_OK(server->ListenUnix(socket_));
  ASSERT_OK(server->Start());
  ASSERT_OK_AND_ASSIGN(Response r, HttpClient::ForUnixSocket(socket_).Send(
                                       "POST", "/echo", std::string(100, 'x'), "text/plain"));
  EXPECT_EQ(r.status, 413);
}

TEST_F(ServerTest, StopRemovesSocketFile) {
  auto server = MakeServer();
  ASSERT_OK(server->ListenUnix(socket_));
  ASSERT_OK(server->Start());
  server->Stop();
  EXPECT_FALSE(std::filesystem::exists(socket_));
  EXPECT_THAT(HttpClient::ForUnixSocket(socket_).Get("/v1/status"),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr(socket_)));
}

TEST_F(ServerTest, ReplacesStaleSocket) {
  // What a crashed process leaves: the socket file, nobody accepting.
  int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", socket_.c_str());
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  close(fd);
  ASSERT_TRUE(std::filesystem::exists(socket_));

  auto server = MakeServer();
  ASSERT_OK(server->ListenUnix(socket_));
  ASSERT_OK(server->Start());
  EXPECT_THAT(HttpClient::ForUnixSocket(socket_).Get("/v1/status"), IsOk());
}

TEST_F(ServerTest, SocketInUseFails) {
  auto first = MakeServer();
  ASSERT_OK(first->ListenUnix(socket_));
  ASSERT_OK(first->Start());
  auto second = MakeServer();
  EXPECT_THAT(second->ListenUnix(socket_),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       socket_ + ": in use by another process"));
  second->Stop();
  // The failed attempt must not have removed the live socket.
  EXPECT_THAT(HttpClient::ForUnixSocket(socket_).Get("/v1/status"), IsOk());
}

TEST_F(ServerTest, RegularFileAtSocketPathFails) {
  FILE* f = std::fopen(socket_.c_str(), "w");
  ASSERT_NE(f, nullptr);
  std::fclose(f);
  auto server = MakeServer();
  EXPECT_THAT(server->ListenUnix(socket_),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("not a socket")));
  EXPECT_TRUE(std::filesystem::is_regular_file(socket_));
}

TEST_F(ServerTest, MissingDirectoryFailsNamingPath) {
  auto server = MakeServer();
  EXPECT_THAT(server->ListenUnix(dir_ + "/no/such/dir.sock"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("dir.sock")));
}

TEST_F(ServerTest, KeepAliveServesSeveralRequestsOnOneConnection) {
  auto server = MakeServer();
  ASSERT_OK(server->ListenUnix(socket_));
  ASSERT_OK(server->Start());
  int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", socket_.c_str());
  ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  std::string two = "GET /v1/status HTTP/1.1\r\nHost: x\r\n\r\n"
                    "GET /v1/status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  ASSERT_EQ(write(fd, two.data(), two.size()), static_cast<ssize_t>(two.size()));
  std::string got;
  char buf[4096];
  for (ssize_t n; (n = read(fd, buf, sizeof buf)) > 0;) got.append(buf, n);
  close(fd);
  size_t first = got.find("HTTP/1.1 200");
  ASSERT_NE(first, std::string::npos);
  EXPECT_NE(got.find("HTTP/1.1 200", first + 1), std::string::npos) << got;
}

TEST_F(ServerTest, ServesOverTcpOnEphemeralPort) {
  auto server = MakeServer();
  ASSERT_OK_AND_ASSIGN(uint16_t port, server->ListenTcp("127.0.0.1", 0));
  ASSERT_NE(port, 0);
  ASSERT_OK(server->Start());
  ASSERT_OK_AND_ASSIGN(Response r, HttpClient::ForTcp("127.0.0.1", port).Get("/v1/status"));
  EXPECT_EQ(r.status, 200);
}

TEST_F(ServerTest, TcpPortInUseFails) {
  auto first = MakeServer();
  ASSERT_OK_AND_ASSIGN(uint16_t port, first->ListenTcp("127.0.0.1", 0));
  auto second = MakeServer();
  EXPECT_THAT(second->ListenTcp("127.0.0.1", port),
              StatusIs(absl::StatusCode::kAlreadyExists, HasSubstr("127.0.0.1:")));
}

TEST_F(ServerTest, ClientTimesOut) {
  // A listener that never accepts: connect succeeds (backlog), the response never comes.
  int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", socket_.c_str());
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(listen(fd, 4), 0);
  auto client = HttpClient::ForUnixSocket(socket_, absl::Milliseconds(200));
  EXPECT_THAT(client.Get("/v1/status"), StatusIs(absl::StatusCode::kDeadlineExceeded));
  close(fd);
}

}  // namespace
}  // namespace loom::http
