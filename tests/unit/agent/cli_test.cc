#include "agent/cli/cli.h"

#include <stdlib.h>

#include <cstdio>
#include <filesystem>
#include <string>

#include "common/http/server.h"
#include "gmock/gmock.h"
#include "tests/unit/agent/captured_output.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace loom::cli {
namespace {

using ::testing::HasSubstr;


TEST(CliTest, SocketComesFromFlagThenEnvThenDefault) {
  EXPECT_EQ(ResolveSocket("/a.sock", "/b.sock"), "/a.sock");
  EXPECT_EQ(ResolveSocket("", "/b.sock"), "/b.sock");
  EXPECT_EQ(ResolveSocket("", ""), "/run/loom/loomd.sock");
  EXPECT_EQ(ResolveSocket("", nullptr), "/run/loom/loomd.sock");
}

TEST(CliTest, TakeOutputFormat) {
  std::vector<std::string> args = {"x", "-o", "yaml", "y"};
  ASSERT_OK_AND_ASSIGN(OutputFormat f, TakeOutputFormat(args));
  EXPECT_EQ(f, OutputFormat::kYaml);
  EXPECT_EQ(args, (std::vector<std::string>{"x", "y"}));
  args = {"--output=json"};
  ASSERT_OK_AND_ASSIGN(f, TakeOutputFormat(args));
  EXPECT_EQ(f, OutputFormat::kJson);
  args = {"-o", "xml"};
  EXPECT_THAT(TakeOutputFormat(args),
              loom::testing::StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("xml")));
  args = {"-o"};
  EXPECT_FALSE(TakeOutputFormat(args).ok());
}

TEST(CliTest, FormatTableAlignsColumns) {
  EXPECT_EQ(FormatTable({{"NODE", "READY"}, {"node-123", "yes"}}),
            "NODE       READY\n"
            "node-123   yes\n");
}

TEST(CliTest, FormatAge) {
  EXPECT_EQ(FormatAge(7), "7s");
  EXPECT_EQ(FormatAge(62), "1m2s");
  EXPECT_EQ(FormatAge(7500), "2h5m");
  EXPECT_EQ(FormatAge(3 * 86400 + 4 * 3600), "3d4h");
}

TEST(CliTest, StatusTable) {
  Json status = Json::parse(R"({"node":"n1","version":"0.1.0","ready":true,"uptimeSeconds":65,
      "store":{"kind":"embedded","healthy":true,"revision":42}})");
  EXPECT_EQ(FormatStatusTable(status),
            "NODE   VERSION   STORE      STORE HEALTHY   REVISION   READY   UPTIME\n"
            "n1     0.1.0     embedded   yes             42         yes     1m5s\n");
}

TEST(CliTest, UnreachableLoomdIsOneLineAndExit1) {
  Captured c;
  int rc = RunCli({"--socket", "/nonexistent/loomd.sock", "status"}, nullptr, c.out, c.err);
  EXPECT_EQ(rc, 1);
  EXPECT_EQ(c.Err(),
            "loomctl: cannot reach loomd at /nonexistent/loomd.sock: No such file or directory\n");
  EXPECT_EQ(c.Out(), "");
}

TEST(CliTest, UsageErrorsExit2) {
  Captured c;
  EXPECT_EQ(RunCli({"frobnicate"}, nullptr, c.out, c.err), 2);
  EXPECT_THAT(c.Err(), HasSubstr("unknown command \"frobnicate\""));
  EXPECT_EQ(RunCli({}, nullptr, c.out, c.err), 2);
  EXPECT_EQ(RunCli({"status", "-o", "xml"}, nullptr, c.out, c.err), 2);
  EXPECT_EQ(RunCli({"--socket"}, nullptr, c.out, c.err), 2);
  EXPECT_EQ(RunCli({"--help"}, nullptr, c.out, c.err), 0);
  EXPECT_THAT(c.Out(), HasSubstr("status [-o json|yaml]"));
}

TEST(CliTest, StatusAgainstAServer) {
  char tmpl[] = "/tmp/loomctl-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  std::string socket = std::string(tmpl) + "/loomd.sock";
  http::Router router;
  router.Handle("GET", "/v1/status", [](const http::Request&) {
    return http::Response::JsonBody(
        200, Json::parse(R"({"node":"n1","version":"v","ready":false,"uptimeSeconds":3,
                            "store":{"kind":"etcd","healthy":false,"revision":0}})"));
  });
  http::HttpServer server([&](const http::Request& r) { return router.Dispatch(r); });
  ASSERT_OK(server.ListenUnix(socket));
  ASSERT_OK(server.Start());
  {
    Captured c;
    EXPECT_EQ(RunCli({"status", "--socket", socket, "-o", "json"}, nullptr, c.out, c.err), 0);
    ASSERT_OK_AND_ASSIGN(Json got, ParseJson(c.Out()));
    EXPECT_EQ(got["node"], "n1");
  }
  {
    Captured c;
    EXPECT_EQ(RunCli({"status"}, socket.c_str(), c.out, c.err), 0);
    EXPECT_THAT(c.Out(), HasSubstr("etcd"));
    EXPECT_THAT(c.Out(), HasSubstr("NODE"));
  }
  {
    Captured c;
    EXPECT_EQ(RunCli({"status", "-o", "yaml"}, socket.c_str(), c.out, c.err), 0);
    EXPECT_THAT(c.Out(), HasSubstr("node: n1\n"));
  }
  server.Stop();
  std::filesystem::remove_all(tmpl);
}

}  // namespace
}  // namespace loom::cli
