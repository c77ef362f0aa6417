#include "cni/protocol/cni_args.h"

#include "cni/protocol/error.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"
#include "tests/unit/cni/cni_matchers.h"

namespace loom::cni {
namespace {

using ::loom::cni::testing::CniErrorIs;
using ::loom::testing::StatusIs;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;

TEST(CniArgsTest, EmptyIsNothing) {
  ASSERT_OK_AND_ASSIGN(CniArgs args, ParseCniArgs(""));
  EXPECT_FALSE(args.ignore_unknown);
  EXPECT_TRUE(args.pod_name.empty());
  EXPECT_TRUE(args.labels.empty());
}

TEST(CniArgsTest, WhatContainerdSends) {
  ASSERT_OK_AND_ASSIGN(
      CniArgs args,
      ParseCniArgs("IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME=web-0;"
                   "K8S_POD_INFRA_CONTAINER_ID=0123abcd;K8S_POD_UID=8c4a-11ee"));
  EXPECT_TRUE(args.ignore_unknown);
  EXPECT_EQ(args.pod_namespace, "shop");
  EXPECT_EQ(args.pod_name, "web-0");
  EXPECT_EQ(args.pod_infra_container_id, "0123abcd");
  EXPECT_EQ(args.pod_uid, "8c4a-11ee");
  EXPECT_TRUE(args.unknown.empty());
}

TEST(CniArgsTest, LoomLabels) {
  ASSERT_OK_AND_ASSIGN(CniArgs args, ParseCniArgs("LOOM_LABELS=app=web,tier=front"));
  EXPECT_THAT(args.labels, ElementsAre(Pair("app", "web"), Pair("tier", "front")));
  ASSERT_OK_AND_ASSIGN(args, ParseCniArgs("LOOM_LABELS=example.com/team=net,empty="));
  EXPECT_THAT(args.labels, ElementsAre(Pair("empty", ""), Pair("example.com/team", "net")));
  ASSERT_OK_AND_ASSIGN(args, ParseCniArgs("LOOM_LABELS="));
  EXPECT_TRUE(args.labels.empty());
}

TEST(CniArgsTest, LoomReady) {
  ASSERT_OK_AND_ASSIGN(CniArgs args, ParseCniArgs("K8S_POD_NAME=a"));
  EXPECT_TRUE(args.ready);
  ASSERT_OK_AND_ASSIGN(args, ParseCniArgs("LOOM_READY=false"));
  EXPECT_FALSE(args.ready);
  ASSERT_OK_AND_ASSIGN(args, ParseCniArgs("LOOM_READY=1"));
  EXPECT_TRUE(args.ready);
  EXPECT_THAT(ParseCniArgs("LOOM_READY=maybe"), CniErrorIs(kErrInvalidEnvironment, HasSubstr("maybe")));
}

TEST(CniArgsTest, BadLoomLabelsAreCode4) {
  EXPECT_THAT(ParseCniArgs("LOOM_LABELS=app"),
              CniErrorIs(kErrInvalidEnvironment,
                         AllOf(HasSubstr("LOOM_LABELS"), HasSubstr("\"app\" is not key=value"))));
  EXPECT_THAT(ParseCniArgs("LOOM_LABELS=-app=web"),
              CniErrorIs(kErrInvalidEnvironment, HasSubstr("\"-app\" is not a valid label key")));
  EXPECT_THAT(ParseCniArgs("LOOM_LABELS=app=we b"),
              CniErrorIs(kErrInvalidEnvironment, HasSubstr("\"we b\" is not a valid label value")));
  EXPECT_THAT(ParseCniArgs("LOOM_LABELS=app=a,app=b"),
              CniErrorIs(kErrInvalidEnvironment, HasSubstr("\"app\" given twice")));
}

TEST(CniArgsTest, UnknownKeysRejectedUnlessIgnored) {
  EXPECT_THAT(ParseCniArgs("FOO=bar"),
              CniErrorIs(kErrInvalidEnvironment,
                         AllOf(HasSubstr("CNI_ARGS"), HasSubstr("unknown key \"FOO\""))));
  EXPECT_THAT(ParseCniArgs("IgnoreUnknown=0;FOO=bar"),
              CniErrorIs(kErrInvalidEnvironment, HasSubstr("FOO")));
  // IgnoreUnknown counts wherever it stands.
  ASSERT_OK_AND_ASSIGN(CniArgs args, ParseCniArgs("FOO=bar;IgnoreUnknown=true;BAZ=q=x"));
  EXPECT_THAT(args.unknown, ElementsAre(Pair("FOO", "bar"), Pair("BAZ", "q=x")));
}

TEST(CniArgsTest, IgnoreUnknownBooleans) {
  for (const char* yes : {"1", "true", "TRUE", "True"}) {
    ASSERT_OK_AND_ASSIGN(CniArgs args, ParseCniArgs(std::string("IgnoreUnknown=") + yes));
    EXPECT_TRUE(args.ignore_unknown) << yes;
  }
  for (const char* no : {"0", "false", "False"}) {
    ASSERT_OK_AND_ASSIGN(CniArgs args, ParseCniArgs(std::string("IgnoreUnknown=") + no));
    EXPECT_FALSE(args.ignore_unknown) << no;
  }
  EXPECT_THAT(ParseCniArgs("IgnoreUnknown=yes"),
              CniErrorIs(kErrInvalidEnvironment, HasSubstr("IgnoreUnknown=\"yes\"")));
}

TEST(CniArgsTest, MalformedPairs) {
  for (const char* bad : {"K8S_POD_NAME", "=x", "K8S_POD_NAME=a;;K8S_POD_UID=b", "K8S_POD_NAME=a;",
                          ";"}) {
    EXPECT_THAT(ParseCniArgs(bad), CniErrorIs(kErrInvalidEnvironment,
                                              AllOf(HasSubstr("CNI_ARGS"), HasSubstr("invalid pair"))))
        << bad;
  }
}

TEST(CniArgsTest, LastValueWins) {
  ASSERT_OK_AND_ASSIGN(CniArgs args, ParseCniArgs("K8S_POD_NAME=a;K8S_POD_NAME=b"));
  EXPECT_EQ(args.pod_name, "b");
}

}  // namespace
}  // namespace loom::cni
