// loomctl apply/get/delete against the real objects API (RegisterObjectRoutes over a
// ServiceRegistry on the embedded store), served on a unix socket in a temp dir.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "agent/cli/cli.h"
#include "agent/services/object_api.h"
#include "common/http/server.h"
#include "gmock/gmock.h"
#include "tests/unit/agent/captured_output.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace loom::cli {
namespace {

using ::testing::HasSubstr;
using ::testing::MatchesRegex;
using ::testing::Not;


class ObjectCommandsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/loomctl-objects-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    socket_ = dir_ + "/loomd.sock";
    ASSERT_OK_AND_ASSIGN(store_, store::OpenStore("embedded", dir_ + "/state"));
    agent::ServiceRegistryOptions o;
    o.start_offset = 10;
    registry_ = std::make_unique<agent::ServiceRegistry>(store_.get(), o);
    agent::RegisterObjectRoutes(router_, {[this] { return registry_.get(); },
                                          [] { return std::shared_ptr<const agent::ServiceState>(); }});
    server_ = std::make_unique<http::HttpServer>(
        [this](const http::Request& r) { return router_.Dispatch(r); });
    ASSERT_OK(server_->ListenUnix(socket_));
    ASSERT_OK(server_->Start());
  }
  void TearDown() override {
    server_.reset();
    registry_.reset();
    store_.reset();
    std::filesystem::remove_all(dir_);
  }

  std::string File(const std::string& name, const std::string& text) {
    std::string path = dir_ + "/" + name;
    std::ofstream(path) << text;
    return path;
  }

  // Runs loomctl; returns {exit code, stdout, stderr}.
  std::tuple<int, std::string, std::string> Run(std::vector<std::string> args) {
    Captured c;
    args.insert(args.begin(), {"--socket", socket_});
    int rc = RunCli(args, nullptr, c.out, c.err);
    return {rc, Captured::Read(c.out), Captured::Read(c.err)};
  }

  std::string dir_, socket_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<agent::ServiceRegistry> registry_;
  http::Router router_;
  std::unique_ptr<http::HttpServer> server_;
};

constexpr char kTwo[] = R"(apiVersion: loom/v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: 8080}, {name: dns, port: 53, protocol: UDP}]
---
{"kind": "Service", "metadata": {"name": "db", "namespace": "prod"},
 "spec": {"clusterIP": "None", "selector": {"app": "db"}}}
)";

TEST_F(ObjectCommandsTest, ApplyGetDelete) {
  std::string file = File("two.yaml", kTwo);
  auto [rc, out, err] = Run({"apply", "-f", file});
  EXPECT_EQ(rc, 0) << err;
  EXPECT_EQ(out, "service/web created\nservice/db created\n");
  std::tie(rc, out, err) = Run({"apply", "-f", file});
  EXPECT_EQ(out, "service/web unchanged\nservice/db unchanged\n");

  std::tie(rc, out, err) = Run({"get", "services"});
  EXPECT_EQ(rc, 0) << err;
  EXPECT_THAT(out, HasSubstr("NAMESPACE   NAME   TYPE        CLUSTER-IP"));
  EXPECT_THAT(out, MatchesRegex("(.|\n)*default +web +ClusterIP +10\\.96\\.0\\.10 +<none> +"
                                "80/TCP,53/UDP +[0-9]+s\n(.|\n)*"));
  EXPECT_THAT(out, MatchesRegex("(.|\n)*prod +db +Headless +None +<none> +<none> (.|\n)*"));
  std::tie(rc, out, err) = Run({"get", "svc", "-n", "prod"});
  EXPECT_THAT(out, Not(HasSubstr("web")));
  std::tie(rc, out, err) = Run({"get", "services", "web", "-o", "json"});
  EXPECT_EQ(rc, 0);
  ASSERT_OK_AND_ASSIGN(Json j, ParseJson(out));
  EXPECT_EQ(j["spec"]["clusterIP"], "10.96.0.10");
  EXPECT_FALSE(j["status"].value("createdAt", "").empty());

  std::tie(rc, out, err) = Run({"delete", "service", "web"});
  EXPECT_EQ(rc, 0) << err;
  EXPECT_EQ(out, "service/web deleted\n");
  std::tie(rc, out, err) = Run({"delete", "service", "web"});
  EXPECT_EQ(rc, 1);
  EXPECT_THAT(err, HasSubstr("service default/web not found"));
  std::tie(rc, out, err) = Run({"delete", "-f", file});
  EXPECT_EQ(rc, 1);  // web is gone already; db still deleted
  EXPECT_EQ(out, "service/db deleted\n");
  std::tie(rc, out, err) = Run({"get", "services", "web"});
  EXPECT_EQ(rc, 1);
  EXPECT_THAT(err, HasSubstr("404"));
}

TEST_F(ObjectCommandsTest, ApplyStopsAtTheFirstBadDocumentNamingIt) {
  std::string file = File("bad.yaml", R"(kind: Service
metadata: {name: ok}
spec: {ports: [{port: 80}]}
---
kind: Service
metadata: {name: bad}
spec: {ports: [{port: 80, protocol: TPC}]}
---
kind: Service
metadata: {name: never}
spec: {ports: [{port: 80}]}
)");
  auto [rc, out, err] = Run({"apply", "-f", file});
  EXPECT_EQ(rc, 1);
  EXPECT_EQ(out, "service/ok created\n");
  EXPECT_THAT(err, HasSubstr(file + ": document 2 (service/bad): spec.ports[0].protocol: \"TPC\" "
                                    "must be TCP, UDP or SCTP"));
  std::tie(rc, out, err) = Run({"apply", "-f", File("app.yaml", "kind: App\nmetadata: {name: a}\n")});
  EXPECT_EQ(rc, 1);
  EXPECT_THAT(err, HasSubstr("document 1 (app/a): kind: \"App\" is not served"));
  std::tie(rc, out, err) = Run({"apply", "-f", File("broken.yaml", "kind: [\n")});
  EXPECT_EQ(rc, 1);
  EXPECT_THAT(err, HasSubstr("broken.yaml"));
  std::tie(rc, out, err) = Run({"apply", "-f", dir_ + "/missing.yaml"});
  EXPECT_EQ(rc, 1);
  EXPECT_THAT(err, HasSubstr("missing.yaml: cannot be read"));
  std::tie(rc, out, err) = Run({"apply"});
  EXPECT_EQ(rc, 2);
  std::tie(rc, out, err) = Run({"get", "widgets"});
  EXPECT_EQ(rc, 2);
  EXPECT_THAT(err, HasSubstr("unknown kind \"widgets\""));
}

TEST_F(ObjectCommandsTest, ApplyReadsStdin) {
  std::istringstream in(kTwo);
  std::streambuf* saved = std::cin.rdbuf(in.rdbuf());
  auto [rc, out, err] = Run({"apply", "-f", "-"});
  std::cin.rdbuf(saved);
  EXPECT_EQ(rc, 0) << err;
  EXPECT_EQ(out, "service/web created\nservice/db created\n");
}

TEST(ObjectTablesTest, EndpointsTable) {
  Json items = Json::parse(R"([{"namespace": "default", "name": "db", "endpoints": [
      {"ip": "10.244.0.10", "ready": true, "ports": [5432]},
      {"ip": "10.244.0.11", "ready": false, "ports": [5432]}]}])");
  EXPECT_EQ(FormatEndpointsTable(items),
            "NAMESPACE   NAME   ENDPOINTS          NOT-READY\n"
            "default     db     10.244.0.10:5432   1\n");
}

TEST(ObjectTablesTest, StatusShowsDns) {
  Json status = Json::parse(R"({"node": "n1", "ready": true, "dns": {
      "address": "169.254.20.10:53", "serving": true, "zone": {"services": 3, "names": 17},
      "forwarding": {"enabled": true, "upstreams": ["10.0.0.2:53", "10.0.0.3:53"],
                     "healthy": ["10.0.0.2:53"], "loopDetected": false}}})");
  std::string table = FormatStatusTable(status);
  EXPECT_THAT(table, HasSubstr("DNS                SERVING   SERVICES   NAMES   UPSTREAMS\n"
                               "169.254.20.10:53   yes       3          17      1/2 healthy\n"));
  status["dns"]["forwarding"] = {{"enabled", false}};
  EXPECT_THAT(FormatStatusTable(status), HasSubstr("17      none"));
}

}  // namespace
}  // namespace loom::cli
