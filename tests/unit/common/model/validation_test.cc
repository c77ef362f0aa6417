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

  std::map<std::string, std::string> labels;
  ASSERT_OK(ParseLabelList("app=web,tier=front,", "LOOM_LABELS", &labels));
  EXPECT_THAT(labels, UnorderedElementsAre(Pair("app", "web"), Pair("tier", "front")));
  EXPECT_THAT(ParseLabelList("app", "LOOM_LABELS", &labels),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not key=value")));
  EXPECT_THAT(ParseLabelList("app=we b", "LOOM_LABELS", &labels),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("LOOM_LABELS.app")));

  EXPECT_TRUE(SelectorMatches({{"app", "web"}}, {{"app", "web"}, {"tier", "front"}}));
  EXPECT_FALSE(SelectorMatches({{"app", "web"}, {"tier", "back"}}, {{"app", "web"}}));
  EXPECT_FALSE(SelectorMatches({}, {{"app", "web"}}));
}

}  // namespace
}  // namespace loom::model
