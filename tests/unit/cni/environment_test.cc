#include "cni/protocol/environment.h"

#include "cni/protocol/error.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"
#include "tests/unit/cni/cni_matchers.h"

namespace loom::cni {
namespace {

using ::loom::cni::testing::CniErrorIs;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

EnvMap FullEnv(std::string command) {
  return {{"CNI_COMMAND", command},      {"CNI_CONTAINERID", "abc123"},
          {"CNI_NETNS", "/run/netns/x"}, {"CNI_IFNAME", "eth0"},
          {"CNI_ARGS", "IgnoreUnknown=1"}, {"CNI_PATH", "/opt/cni/bin:/usr/lib/cni"}};
}

TEST(EnvironmentTest, ParsesEveryCommand) {
  const std::pair<const char*, Command> cases[] = {
      {"ADD", Command::kAdd},       {"DEL", Command::kDel}, {"CHECK", Command::kCheck},
      {"STATUS", Command::kStatus}, {"GC", Command::kGc},   {"VERSION", Command::kVersion}};
  for (const auto& [name, command] : cases) {
    ASSERT_OK_AND_ASSIGN(Environment env, ParseEnvironment(FullEnv(name)));
    EXPECT_EQ(env.command, command);
    EXPECT_EQ(CommandName(command), name);
  }
}

TEST(EnvironmentTest, CarriesTheValues) {
  ASSERT_OK_AND_ASSIGN(Environment env, ParseEnvironment(FullEnv("ADD")));
  EXPECT_EQ(env.container_id, "abc123");
  EXPECT_EQ(env.netns, "/run/netns/x");
  EXPECT_EQ(env.ifname, "eth0");
  EXPECT_EQ(env.args, "IgnoreUnknown=1");
  EXPECT_EQ(env.path, "/opt/cni/bin:/usr/lib/cni");
}

TEST(EnvironmentTest, MissingCommand) {
  EnvMap env = FullEnv("ADD");
  env.erase("CNI_COMMAND");
  EXPECT_THAT(ParseEnvironment(env), CniErrorIs(kErrInvalidEnvironment, HasSubstr("CNI_COMMAND")));
  env["CNI_COMMAND"] = "";
  EXPECT_THAT(ParseEnvironment(env), CniErrorIs(kErrInvalidEnvironment, HasSubstr("CNI_COMMAND")));
}

TEST(EnvironmentTest, UnknownCommand) {
  EXPECT_THAT(ParseEnvironment(FullEnv("GET")),
              CniErrorIs(kErrInvalidEnvironment, AllOf(HasSubstr("CNI_COMMAND"), HasSubstr("GET"))));
  EXPECT_THAT(ParseEnvironment(FullEnv("add")), CniErrorIs(kErrInvalidEnvironment, HasSubstr("add")));
}

// Every variable each verb requires, and that its absence is reported by name.
TEST(EnvironmentTest, RequiredPerVerb) {
  struct Case {
    const char* command;
    std::vector<const char*> required;
  };
  const Case cases[] = {
      {"ADD", {"CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"}},
      {"CHECK", {"CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"}},
      {"DEL", {"CNI_CONTAINERID", "CNI_IFNAME", "CNI_PATH"}},
      {"GC", {"CNI_PATH"}},
      {"STATUS", {"CNI_PATH"}},
      {"VERSION", {}},
  };
  const char* all[] = {"CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_ARGS", "CNI_PATH"};
  for (const Case& c : cases) {
    for (const char* var : all) {
      bool required = std::find_if(c.required.begin(), c.required.end(), [&](const char* r) {
                        return std::string_view(r) == var;
                      }) != c.required.end();
      EnvMap env = FullEnv(c.command);
      env.erase(var);
      if (required) {
        EXPECT_THAT(ParseEnvironment(env), CniErrorIs(kErrInvalidEnvironment,
                                                      AllOf(HasSubstr("missing"), HasSubstr(var))))
            << c.command << " without " << var;
        env[var] = "";  // empty counts as missing
        EXPECT_THAT(ParseEnvironment(env), CniErrorIs(kErrInvalidEnvironment, HasSubstr(var)))
            << c.command << " with empty " << var;
      } else {
        EXPECT_OK(ParseEnvironment(env)) << c.command << " without " << var;
      }
    }
  }
}

TEST(EnvironmentTest, NamesEveryMissingVariable) {
  EXPECT_THAT(ParseEnvironment({{"CNI_COMMAND", "ADD"}}),
              CniErrorIs(kErrInvalidEnvironment,
                         HasSubstr("CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME, CNI_PATH")));
}

TEST(EnvironmentTest, GcAndStatusNeedOnlyPath) {
  EXPECT_OK(ParseEnvironment({{"CNI_COMMAND", "GC"}, {"CNI_PATH", "/opt/cni/bin"}}));
  EXPECT_OK(ParseEnvironment({{"CNI_COMMAND", "STATUS"}, {"CNI_PATH", "/opt/cni/bin"}}));
  EXPECT_OK(ParseEnvironment({{"CNI_COMMAND", "VERSION"}}));
  // Not validated where not required.
  EXPECT_OK(ParseEnvironment(
      {{"CNI_COMMAND", "GC"}, {"CNI_PATH", "/p"}, {"CNI_IFNAME", "way/too/long/name"}}));
}

TEST(EnvironmentTest, DelWithoutNetns) {
  EnvMap env = FullEnv("DEL");
  env["CNI_NETNS"] = "";
  ASSERT_OK_AND_ASSIGN(Environment parsed, ParseEnvironment(env));
  EXPECT_EQ(parsed.netns, "");
}

TEST(EnvironmentTest, ContainerIdRule) {
  for (const char* good : {"a", "0", "abc123", "A_b.c-d", "9f86d081884c7d659a2feaa0c55ad015"}) {
    EXPECT_OK(ValidateContainerId(good)) << good;
  }
  for (const char* bad : {"", "-abc", "_abc", ".abc", "abc/def", "abc def", "abc:1", "ab$"}) {
    EXPECT_THAT(ValidateContainerId(bad),
                CniErrorIs(kErrInvalidEnvironment, HasSubstr("CNI_CONTAINERID")))
        << bad;
  }
  for (const char* command : {"ADD", "DEL", "CHECK"}) {
    EnvMap env = FullEnv(command);
    env["CNI_CONTAINERID"] = "-bad";
    EXPECT_THAT(ParseEnvironment(env),
                CniErrorIs(kErrInvalidEnvironment, HasSubstr("CNI_CONTAINERID \"-bad\"")));
  }
}

TEST(EnvironmentTest, InterfaceNameRule) {
  for (const char* good : {"eth0", "e", "net1", "123456789012345", "a.b", "...", "veth-x_y"}) {
    EXPECT_OK(ValidateInterfaceName(good)) << good;
  }
  for (const char* bad : {"", ".", "..", "1234567890123456", "a/b", "a:b", "a b", "a\tb",
                          "a\nb"}) {
    EXPECT_THAT(ValidateInterfaceName(bad), CniErrorIs(kErrInvalidEnvironment, HasSubstr("CNI_IFNAME")))
        << bad;
  }
  for (const char* command : {"ADD", "DEL", "CHECK"}) {
    EnvMap env = FullEnv(command);
    env["CNI_IFNAME"] = "eth0:1";
    EXPECT_THAT(ParseEnvironment(env), CniErrorIs(kErrInvalidEnvironment, HasSubstr("eth0:1")));
  }
}

TEST(EnvironmentTest, FromArray) {
  const char* envp[] = {"CNI_COMMAND=ADD", "CNI_ARGS=A=b;C=d", "NOEQUALS", "EMPTY=", nullptr};
  EnvMap env = EnvFromArray(envp);
  EXPECT_EQ(env["CNI_COMMAND"], "ADD");
  EXPECT_EQ(env["CNI_ARGS"], "A=b;C=d");
  EXPECT_EQ(env["EMPTY"], "");
  EXPECT_FALSE(env.contains("NOEQUALS"));
  EXPECT_TRUE(EnvFromArray(nullptr).empty());
}

}  // namespace
}  // namespace loom::cni
