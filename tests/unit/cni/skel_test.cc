#include "cni/protocol/skel.h"

#include "cni/protocol/error.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace loom::cni {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;

EnvMap Env(const std::string& command) {
  return {{"CNI_COMMAND", command},
          {"CNI_CONTAINERID", "c0ffee"},
          {"CNI_NETNS", "/run/netns/pod1"},
          {"CNI_IFNAME", "eth0"},
          {"CNI_ARGS", "IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME=web-0;"
                       "LOOM_LABELS=app=web"},
          {"CNI_PATH", "/opt/cni/bin"}};
}

std::string Conf(const std::string& version = "1.1.0") {
  return R"({"cniVersion": ")" + version + R"(", "name": "loom", "type": "loom"})";
}

Result PodResult() {
  Result r;
  r.interfaces = {{.name = "eth0", .sandbox = "/run/netns/pod1"}};
  r.ips = {{.address = "10.244.1.5/32", .gateway = "169.254.1.1", .interface = 0}};
  r.routes = {{.dst = "0.0.0.0/0", .gw = "169.254.1.1", .priority = 5}};
  return r;
}

// Records what the handlers saw.
struct Recorder {
  std::vector<std::string> calls;
  Request last;
  absl::Status next = absl::OkStatus();

  Handlers MakeHandlers() {
    Handlers h;
    h.add = [this](const Request& r) -> absl::StatusOr<Result> {
      if (absl::Status s = Record("ADD", r); !s.ok()) return s;
      return PodResult();
    };
    h.del = [this](const Request& r) { return Record("DEL", r); };
    h.check = [this](const Request& r) { return Record("CHECK", r); };
    h.status = [this](const Request& r) { return Record("STATUS", r); };
    h.gc = [this](const Request& r) { return Record("GC", r); };
    return h;
  }
  absl::Status Record(const char* verb, const Request& r) {
    calls.push_back(verb);
    last = r;
    return next;
  }
};

Json ErrorOf(const Output& out) {
  EXPECT_EQ(out.exit_code, 1);
  return Json::parse(out.stdout_text);
}

TEST(SkelTest, AddPrintsTheResultInTheConfigVersion) {
  Recorder rec;
  Output out = cni::Run(Env("ADD"), Conf("1.0.0"), rec.MakeHandlers());
  ASSERT_EQ(out.exit_code, 0) << out.stdout_text;
  Json result = Json::parse(out.stdout_text);
  EXPECT_EQ(result["cniVersion"], "1.0.0");
  EXPECT_EQ(result["ips"][0]["address"], "10.244.1.5/32");
  EXPECT_FALSE(result["routes"][0].contains("priority"));  // 1.1.0 only
  EXPECT_THAT(rec.calls, ElementsAre("ADD"));
  EXPECT_EQ(rec.last.env.container_id, "c0ffee");
  EXPECT_EQ(rec.last.args.pod_namespace, "shop");
  EXPECT_EQ(rec.last.args.pod_name, "web-0");
  EXPECT_THAT(rec.last.args.labels, ElementsAre(Pair("app", "web")));
  EXPECT_EQ(rec.last.conf.name, "loom");

  out = cni::Run(Env("ADD"), Conf("0.3.1"), rec.MakeHandlers());
  result = Json::parse(out.stdout_text);
  EXPECT_EQ(result["cniVersion"], "0.3.1");
  EXPECT_EQ(result["ips"][0]["version"], "4");

  out = cni::Run(Env("ADD"), Conf("1.1.0"), rec.MakeHandlers());
  EXPECT_EQ(Json::parse(out.stdout_text)["routes"][0]["priority"], 5);
}

TEST(SkelTest, OtherVerbsPrintNothing) {
  for (const char* verb : {"DEL", "CHECK", "STATUS", "GC"}) {
    Recorder rec;
    Output out = cni::Run(Env(verb), Conf(), rec.MakeHandlers());
    EXPECT_EQ(out.exit_code, 0) << verb << ": " << out.stdout_text;
    EXPECT_EQ(out.stdout_text, "") << verb;
    EXPECT_THAT(rec.calls, ElementsAre(verb));
  }
}

TEST(SkelTest, VersionIgnoresStdin) {
  Recorder rec;
  for (const char* stdin_text : {"", "garbage", R"({"cniVersion": "0.1.0"})"}) {
    Output out = cni::Run({{"CNI_COMMAND", "VERSION"}}, stdin_text, rec.MakeHandlers());
    EXPECT_EQ(out.exit_code, 0);
    EXPECT_EQ(Json::parse(out.stdout_text), VersionInfoJson());
  }
  EXPECT_TRUE(rec.calls.empty());
}

TEST(SkelTest, EnvironmentErrorsAreCode4) {
  Recorder rec;
  EnvMap env = Env("ADD");
  env.erase("CNI_NETNS");
  Json err = ErrorOf(cni::Run(env, Conf(), rec.MakeHandlers()));
  EXPECT_EQ(err["code"], 4);
  EXPECT_THAT(err["msg"].get<std::string>(), HasSubstr("CNI_NETNS"));
  EXPECT_EQ(err["cniVersion"], "1.1.0");

  err = ErrorOf(cni::Run({}, Conf(), rec.MakeHandlers()));
  EXPECT_EQ(err["code"], 4);
  EXPECT_THAT(err["msg"].get<std::string>(), HasSubstr("CNI_COMMAND"));

  env = Env("ADD");
  env["CNI_IFNAME"] = "this-name-is-too-long";
  err = ErrorOf(cni::Run(env, Conf(), rec.MakeHandlers()));
  EXPECT_EQ(err["code"], 4);
  EXPECT_THAT(err["msg"].get<std::string>(), HasSubstr("CNI_IFNAME"));
  EXPECT_TRUE(rec.calls.empty());
}

TEST(SkelTest, BadCniArgsAreCode4) {
  Recorder rec;
  EnvMap env = Env("ADD");
  env["CNI_ARGS"] = "K8S_POD_NAME=a;FOO=bar";
  Json err = ErrorOf(cni::Run(env, Conf("1.0.0"), rec.MakeHandlers()));
  EXPECT_EQ(err["code"], 4);
  EXPECT_THAT(err["msg"].get<std::string>(), AllOf(HasSubstr("CNI_ARGS"), HasSubstr("FOO")));
  EXPECT_EQ(err["cniVersion"], "1.0.0");  // the config's version, once known
  // GC and STATUS have no container, so CNI_ARGS is not theirs to judge.
  env["CNI_COMMAND"] = "GC";
  EXPECT_EQ(cni::Run(env, Conf(), rec.MakeHandlers()).exit_code, 0);
  EXPECT_THAT(rec.calls, ElementsAre("GC"));
}

TEST(SkelTest, BadJsonIsCode6) {
  Recorder rec;
  Json err = ErrorOf(cni::Run(Env("ADD"), "{not json", rec.MakeHandlers()));
  EXPECT_EQ(err["code"], 6);
  EXPECT_THAT(err["msg"].get<std::string>(), HasSubstr("parse error"));
  EXPECT_TRUE(rec.calls.empty());
}

TEST(SkelTest, UnsupportedVersionIsCode1) {
  Recorder rec;
  Json err = ErrorOf(cni::Run(Env("ADD"), Conf("0.2.0"), rec.MakeHandlers()));
  EXPECT_EQ(err["code"], 1);
  EXPECT_THAT(err["msg"].get<std::string>(), HasSubstr("cniVersion \"0.2.0\""));
  EXPECT_THAT(err["details"].get<std::string>(), HasSubstr("0.3.1, 0.4.0, 1.0.0, 1.1.0"));
  EXPECT_EQ(err["cniVersion"], "1.1.0");  // a version Loom speaks, not the rejected one
  EXPECT_TRUE(rec.calls.empty());
}

// libcni's skel: CHECK needs 0.4.0, STATUS and GC need 1.1.0; below, code 1.
TEST(SkelTest, VerbsBelowTheirVersionAreCode1) {
  struct Case {
    const char* verb;
    const char* version;
    bool allowed;
  };
  const Case cases[] = {
      {"CHECK", "0.3.1", false}, {"CHECK", "0.4.0", true},  {"STATUS", "1.0.0", false},
      {"STATUS", "0.4.0", false}, {"STATUS", "1.1.0", true}, {"GC", "1.0.0", false},
      {"GC", "0.3.1", false},     {"GC", "1.1.0", true},     {"ADD", "0.3.1", true},
      {"DEL", "0.3.1", true},
  };
  for (const Case& c : cases) {
    Recorder rec;
    Output out = cni::Run(Env(c.verb), Conf(c.version), rec.MakeHandlers());
    if (c.allowed) {
      EXPECT_EQ(out.exit_code, 0) << c.verb << " " << c.version << ": " << out.stdout_text;
      EXPECT_THAT(rec.calls, ElementsAre(c.verb));
    } else {
      Json err = ErrorOf(out);
      EXPECT_EQ(err["code"], 1) << c.verb << " " << c.version;
      EXPECT_THAT(err["msg"].get<std::string>(),
                  HasSubstr(std::string("config version does not allow ") + c.verb));
      EXPECT_TRUE(rec.calls.empty());
    }
  }
}

TEST(SkelTest, InvalidConfigIsCode7) {
  Recorder rec;
  Json err = ErrorOf(cni::Run(Env("ADD"),
                         R"({"cniVersion": "1.0.0", "name": "loom", "type": "loom", "mtu": 10})",
                         rec.MakeHandlers()));
  EXPECT_EQ(err["code"], 7);
  EXPECT_THAT(err["msg"].get<std::string>(), HasSubstr("mtu"));
  err = ErrorOf(cni::Run(Env("DEL"), R"({"cniVersion": "1.0.0", "type": "loom"})", rec.MakeHandlers()));
  EXPECT_EQ(err["code"], 7);
  EXPECT_THAT(err["msg"].get<std::string>(), HasSubstr("name"));
  EXPECT_TRUE(rec.calls.empty());
}

TEST(SkelTest, HandlerErrorsKeepTheirCode) {
  for (int code : {2, 3, 5, 11, 51, 100, 999}) {
    Recorder rec;
    rec.next = CniError(code, "handler said no", "why");
    Json err = ErrorOf(cni::Run(Env("ADD"), Conf("0.4.0"), rec.MakeHandlers()));
    EXPECT_EQ(err["code"], code);
    EXPECT_EQ(err["msg"], "handler said no");
    EXPECT_EQ(err["details"], "why");
    EXPECT_EQ(err["cniVersion"], "0.4.0");
  }
}

TEST(SkelTest, PlainHandlerErrorsAreMapped) {
  Recorder rec;
  rec.next = absl::UnavailableError("loomd is not answering");
  EXPECT_EQ(ErrorOf(cni::Run(Env("ADD"), Conf(), rec.MakeHandlers()))["code"], 11);
  EXPECT_EQ(ErrorOf(cni::Run(Env("DEL"), Conf(), rec.MakeHandlers()))["code"], 11);
  // STATUS reports an unreachable agent as "not available".
  Json err = ErrorOf(cni::Run(Env("STATUS"), Conf(), rec.MakeHandlers()));
  EXPECT_EQ(err["code"], 50);
  EXPECT_EQ(err["msg"], "loomd is not answering");
  rec.next = absl::InternalError("bug");
  EXPECT_EQ(ErrorOf(cni::Run(Env("CHECK"), Conf(), rec.MakeHandlers()))["code"], 999);
  EXPECT_EQ(ErrorOf(cni::Run(Env("STATUS"), Conf(), rec.MakeHandlers()))["code"], 999);
}

TEST(SkelTest, MissingHandlers) {
  Handlers none;
  for (const char* verb : {"DEL", "CHECK", "STATUS", "GC"}) {
    EXPECT_EQ(cni::Run(Env(verb), Conf(), none).exit_code, 0) << verb;
  }
  EXPECT_EQ(ErrorOf(cni::Run(Env("ADD"), Conf(), none))["code"], 999);
}

TEST(SkelTest, DelWithoutNetnsAndPrevResult) {
  Recorder rec;
  EnvMap env = Env("DEL");
  env.erase("CNI_NETNS");
  Output out = cni::Run(env, Conf("1.0.0"), rec.MakeHandlers());
  EXPECT_EQ(out.exit_code, 0) << out.stdout_text;
  EXPECT_EQ(rec.last.env.netns, "");
  EXPECT_FALSE(rec.last.conf.prev_result.has_value());
}

TEST(SkelTest, GcSeesValidAttachments) {
  Recorder rec;
  Output out = cni::Run({{"CNI_COMMAND", "GC"}, {"CNI_PATH", "/opt/cni/bin"}},
                   R"({"cniVersion": "1.1.0", "name": "loom", "type": "loom",
                       "cni.dev/valid-attachments": [{"containerID": "a", "ifname": "eth0"}]})",
                   rec.MakeHandlers());
  EXPECT_EQ(out.exit_code, 0) << out.stdout_text;
  ASSERT_TRUE(rec.last.conf.valid_attachments.has_value());
  EXPECT_EQ(rec.last.conf.valid_attachments->at(0), (Attachment{"a", "eth0"}));
}

TEST(SkelTest, ErrorTextIsTheSpecShape) {
  std::string text = ErrorText({7, "bad", ""}, "1.0.0");
  EXPECT_EQ(text.back(), '\n');
  EXPECT_EQ(Json::parse(text), Json::parse(R"({"cniVersion": "1.0.0", "code": 7, "msg": "bad"})"));
}

}  // namespace
}  // namespace loom::cni
