#include "common/model/validation.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace loom::model {
namespace {

using ::loom::testing::IsOk;
using ::loom::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::Pair;
using ::testing::UnorderedElementsAre;

TEST(Validation, DnsLabels) {
  EXPECT_THAT(ValidateDns1123Label("web-1", "f"), IsOk());
  EXPECT_THAT(ValidateDns1123Label("1web", "f"), IsOk());
  EXPECT_THAT(ValidateDns1035Label("1web", "metadata.name"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("metadata.name: \"1web\"")));
  for (const char* bad : {"", "-a", "a-", "A", "a_b", "a.b"}) {
    EXPECT_FALSE(ValidateDns1123Label(bad, "f").ok()) << bad;
  }
  EXPECT_FALSE(ValidateDns1123Label(std::string(64, 'a'), "f").ok());
  EXPECT_THAT(ValidateDns1123Subdomain("example.org", "f"), IsOk());
  EXPECT_FALSE(ValidateDns1123Subdomain("example..org", "f").ok());
  EXPECT_FALSE(ValidateDns1123Subdomain("example.org.", "f").ok());
}

TEST(Validation, PortNames) {
  EXPECT_THAT(ValidatePortName("http", "f"), IsOk());
  EXPECT_THAT(ValidatePortName("http-alt2", "f"), IsOk());
  for (const char* bad : {"", "80", "-http", "http-", "ht--tp", "HTTP", "averyveryverylong"}) {
    EXPECT_FALSE(ValidatePortName(bad, "f").ok()) << bad;
  }
}

TEST(Validation, LabelsAndSelectors) {
  EXPECT_THAT(ValidateLabelKey("app", "f"), IsOk());
  EXPECT_THAT(ValidateLabelKey("loom.dev/tier", "f"), IsOk());
  EXPECT_FALSE(ValidateLabelKey("/tier", "f").ok());
  EXPECT_FALSE(ValidateLabelKey("Bad_Prefix/x", "f").ok());
  EXPECT_FALSE(ValidateLabelKey("-x", "f").ok());
  EXPECT_THAT(ValidateLabelValue("", "f"), IsOk());
  EXPECT_FALSE(ValidateLabelValue("a b", "f").ok());

  ASSERT_OK_AND_ASSIGN(auto labels, ParseLabelList("app=web,tier=front,", "LOOM_LABELS"));
  EXPECT_THAT(labels, UnorderedElementsAre(Pair("app", "web"), Pair("tier", "front")));
  EXPECT_THAT(ParseLabelList("app", "LOOM_LABELS"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not key=value")));
  EXPECT_THAT(ParseLabelList("app=we b", "LOOM_LABELS"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("LOOM_LABELS.app")));
  EXPECT_THAT(ParseLabelList("app=a,app=b", "LOOM_LABELS"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("given twice")));

  EXPECT_TRUE(SelectorMatches({{"app", "web"}}, {{"app", "web"}, {"tier", "front"}}));
  EXPECT_FALSE(SelectorMatches({{"app", "web"}, {"tier", "back"}}, {{"app", "web"}}));
  EXPECT_FALSE(SelectorMatches({}, {{"app", "web"}}));
}

TEST(Validation, LabelKeySyntaxCases) {
  for (const std::string& good :
       {std::string("app"), std::string("a"), std::string("App.Name_1-x"),
        std::string("example.com/app"), std::string("a.b-c.d/x"), std::string(63, 'k')}) {
    EXPECT_OK(ValidateLabelKey(good, "f")) << good;
  }
  for (const std::string& bad :
       {std::string(""), std::string("-a"), std::string("a-"), std::string("a b"),
        std::string("Example.com/app"), std::string("/app"), std::string("ex..com/app"),
        std::string("example.com/"), std::string("a/b/c"), std::string(64, 'k'),
        std::string(254, 'p') + "/x"}) {
    EXPECT_THAT(ValidateLabelKey(bad, "args.labels"),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("args.labels")))
        << bad;
  }
  for (const char* good : {"", "web", "v1.2_3-x", "A"}) EXPECT_OK(ValidateLabelValue(good, "f"));
  for (const std::string& bad : {std::string("-x"), std::string("x."), std::string("a/b"),
                                 std::string(64, 'v')}) {
    EXPECT_THAT(ValidateLabelValue(bad, "field"),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("field")))
        << bad;
  }
}

}  // namespace
}  // namespace loom::model
