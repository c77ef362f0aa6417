#include "cni/protocol/version.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"
#include "tests/unit/cni/cni_matchers.h"

namespace loom::cni {
namespace {

using ::loom::cni::testing::CniErrorIs;
using ::loom::testing::IsOkAndHolds;
using ::loom::testing::StatusIs;
using ::testing::AllOf;
using ::testing::Eq;
using ::testing::HasSubstr;

TEST(VersionTest, ParsesSemver) {
  EXPECT_THAT(ParseVersion("1.1.0"), IsOkAndHolds(Eq(SpecVersion{1, 1, 0})));
  EXPECT_THAT(ParseVersion("0.3.1"), IsOkAndHolds(Eq(SpecVersion{0, 3, 1})));
  EXPECT_THAT(ParseVersion("1.0"), IsOkAndHolds(Eq(SpecVersion{1, 0, 0})));
  EXPECT_THAT(ParseVersion("2"), IsOkAndHolds(Eq(SpecVersion{2, 0, 0})));
  EXPECT_THAT(ParseVersion("10.20.30"), IsOkAndHolds(Eq(SpecVersion{10, 20, 30})));
}

TEST(VersionTest, RejectsNonVersions) {
  for (const char* bad : {"", "a.b.c", "1.0.0.0", "1..0", "1.0.x", "-1.0.0", "1.0.0-rc1",
                          " 1.0.0", "v1.0.0", "99999999999.0.0"}) {
    EXPECT_THAT(ParseVersion(bad),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("invalid version")))
        << bad;
  }
}

TEST(VersionTest, ComparesNumerically) {
  EXPECT_LT(SpecVersion(0, 3, 1), SpecVersion(0, 4, 0));
  EXPECT_LT(SpecVersion(0, 4, 0), SpecVersion(1, 0, 0));
  EXPECT_LT(SpecVersion(1, 0, 0), SpecVersion(1, 1, 0));
  EXPECT_LT(SpecVersion(1, 2, 0), SpecVersion(1, 10, 0));
  EXPECT_EQ(SpecVersion(1, 0, 0), SpecVersion(1, 0, 0));
  EXPECT_EQ(SpecVersion(1, 10, 2).ToString(), "1.10.2");
}

TEST(VersionTest, SupportsExactlyTheFourVersions) {
  std::vector<std::string> got;
  for (const SpecVersion& v : SupportedVersions()) got.push_back(v.ToString());
  EXPECT_THAT(got, ::testing::ElementsAre("0.3.1", "0.4.0", "1.0.0", "1.1.0"));
  EXPECT_FALSE(IsSupported({0, 3, 0}));
  EXPECT_FALSE(IsSupported({0, 2, 0}));
  EXPECT_FALSE(IsSupported({1, 2, 0}));
}

TEST(VersionTest, VersionInfo) {
  EXPECT_EQ(VersionInfoJson(), Json::parse(R"({"cniVersion": "1.1.0",
      "supportedVersions": ["0.3.1", "0.4.0", "1.0.0", "1.1.0"]})"));
}

TEST(VersionTest, ConfigVersionAcceptsSupported) {
  EXPECT_THAT(ConfigVersion(Json{{"cniVersion", "0.4.0"}}), IsOkAndHolds(Eq(kVersion040)));
}

TEST(VersionTest, ConfigVersionRejectsUnsupportedWithCode1) {
  EXPECT_THAT(ConfigVersion(Json{{"cniVersion", "0.3.0"}}),
              CniErrorIs(kErrIncompatibleVersion, AllOf(HasSubstr("cniVersion"),
                                                        HasSubstr("0.3.0"))));
  EXPECT_THAT(ConfigVersion(Json{{"cniVersion", "banana"}}),
              CniErrorIs(kErrIncompatibleVersion, HasSubstr("cniVersion \"banana\"")));
  // libcni reads a missing cniVersion as 0.1.0, which no one supports any more.
  EXPECT_THAT(ConfigVersion(Json{{"name", "x"}}),
              CniErrorIs(kErrIncompatibleVersion, HasSubstr("cniVersion")));
}

TEST(VersionTest, ConfigVersionOfWrongTypeIsCode7) {
  EXPECT_THAT(ConfigVersion(Json{{"cniVersion", 1}}),
              CniErrorIs(kErrInvalidConfig, HasSubstr("cniVersion: must be a string")));
}

TEST(VersionTest, PicksHighestSupportedFromCniVersions) {
  Json list = Json::parse(R"({"cniVersion": "1.0.0", "cniVersions": ["0.4.0", "1.1.0", "1.0.0"]})");
  EXPECT_THAT(PickConfigVersion(list), IsOkAndHolds(Eq(kVersion110)));
  // Versions newer than Loom's are skipped, not chosen.
  list = Json::parse(R"({"cniVersion": "1.0.0", "cniVersions": ["1.0.0", "1.2.0", "9.9.9"]})");
  EXPECT_THAT(PickConfigVersion(list), IsOkAndHolds(Eq(kVersion100)));
}

TEST(VersionTest, PickFallsBackToCniVersion) {
  EXPECT_THAT(PickConfigVersion(Json{{"cniVersion", "0.3.1"}}), IsOkAndHolds(Eq(kVersion031)));
  EXPECT_THAT(PickConfigVersion(Json::parse(R"({"cniVersion": "0.4.0", "cniVersions": []})")),
              IsOkAndHolds(Eq(kVersion040)));
}

TEST(VersionTest, PickFailsWhenNothingIsSupported) {
  EXPECT_THAT(PickConfigVersion(Json::parse(R"({"cniVersions": ["0.2.0", "2.0.0"]})")),
              CniErrorIs(kErrIncompatibleVersion, HasSubstr("cniVersions")));
  EXPECT_THAT(PickConfigVersion(Json::parse(R"({"cniVersions": "1.0.0"})")),
              CniErrorIs(kErrInvalidConfig, HasSubstr("cniVersions")));
  EXPECT_THAT(PickConfigVersion(Json::parse(R"({"cniVersions": ["1.0.0", 1]})")),
              CniErrorIs(kErrInvalidConfig, HasSubstr("cniVersions[1]")));
  EXPECT_THAT(PickConfigVersion(Json::array()), CniErrorIs(kErrDecode, HasSubstr("object")));
}

}  // namespace
}  // namespace loom::cni
