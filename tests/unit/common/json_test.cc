#include "common/json.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace loom {
namespace {

using ::loom::testing::IsOkAndHolds;
using ::loom::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::SizeIs;

TEST(Json, ParseErrorsSayWhere) {
  EXPECT_THAT(ParseJson("{\"a\": 1,}"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("invalid JSON")));
  EXPECT_THAT(ParseJson("{\"a\": 1}"), IsOkAndHolds(Json{{"a", 1}}));
}

TEST(Yaml, ReadsSeveralDocumentsWithTypes) {
  auto docs = ParseYamlDocuments(R"(
apiVersion: loom/v1
kind: Service
metadata: {name: web, labels: {app: web}}
spec:
  ports: [{name: http, port: 80, protocol: TCP}]
  quoted: "80"
  flag: true
  ratio: 0.5
  none: ~
---
---
kind: App
)");
  ASSERT_TRUE(docs.ok()) << docs.status();
  ASSERT_THAT(*docs, SizeIs(2));
  const Json& svc = (*docs)[0];
  EXPECT_EQ(svc["kind"], "Service");
  EXPECT_EQ(svc["spec"]["ports"][0]["port"], 80);
  EXPECT_EQ(svc["spec"]["quoted"], "80");
  EXPECT_EQ(svc["spec"]["flag"], true);
  EXPECT_DOUBLE_EQ(svc["spec"]["ratio"].get<double>(), 0.5);
  EXPECT_TRUE(svc["spec"]["none"].is_null());
  EXPECT_EQ((*docs)[1]["kind"], "App");
}

TEST(Yaml, ErrorsNameLine) {
  EXPECT_THAT(ParseYamlDocuments("a: [1, 2\nb: 3\n"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("line")));
}

TEST(Yaml, RoundTripsThroughToYaml) {
  Json v = {{"name", "web"}, {"port", 80}, {"text", "80"}, {"on", true}, {"list", {1, "x"}}};
  auto back = ParseYamlDocuments(ToYaml(v));
  ASSERT_TRUE(back.ok()) << back.status();
  ASSERT_THAT(*back, SizeIs(1));
  EXPECT_EQ((*back)[0], v);
}

TEST(JsonFields, ErrorsNameTheFieldPath) {
  Json spec = {{"port", "eighty"}, {"name", "http"}};
  EXPECT_THAT(GetInt(spec, "port", "spec.ports[0]"),
              StatusIs(absl::StatusCode::kInvalidArgument, "spec.ports[0].port: must be an integer"));
  EXPECT_THAT(GetString(spec, "protocol", "spec.ports[0]"),
              StatusIs(absl::StatusCode::kInvalidArgument, "spec.ports[0].protocol: required"));
  EXPECT_THAT(GetStringOr(spec, "protocol", "spec", "TCP"), IsOkAndHolds("TCP"));
  EXPECT_THAT(GetIntOr(spec, "weight", "spec", 1), IsOkAndHolds(1));
  EXPECT_THAT(GetBoolOr(spec, "name", "spec", false),
              StatusIs(absl::StatusCode::kInvalidArgument, "spec.name: must be true or false"));
}

}  // namespace
}  // namespace loom
