#include "cni/protocol/error.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace loom::cni {
namespace {

TEST(ErrorTest, JsonHasSpecShape) {
  Json json = ErrorToJson({kErrInvalidConfig, "bad mtu", "mtu must be 68..65535"}, "1.0.0");
  EXPECT_EQ(json, Json::parse(R"({"cniVersion": "1.0.0", "code": 7, "msg": "bad mtu",
                                  "details": "mtu must be 68..65535"})"));
}

TEST(ErrorTest, JsonOmitsEmptyDetails) {
  Json json = ErrorToJson({kErrTryAgainLater, "loomd unreachable", ""}, "1.1.0");
  EXPECT_FALSE(json.contains("details"));
  EXPECT_EQ(json["code"], 11);
}

TEST(ErrorTest, CodesAreTheSpecs) {
  EXPECT_EQ(kErrIncompatibleVersion, 1);
  EXPECT_EQ(kErrUnsupportedField, 2);
  EXPECT_EQ(kErrUnknownContainer, 3);
  EXPECT_EQ(kErrInvalidEnvironment, 4);
  EXPECT_EQ(kErrIo, 5);
  EXPECT_EQ(kErrDecode, 6);
  EXPECT_EQ(kErrInvalidConfig, 7);
  EXPECT_EQ(kErrTryAgainLater, 11);
  EXPECT_EQ(kErrNotAvailable, 50);
  EXPECT_EQ(kErrNotAvailableDegraded, 51);
  EXPECT_EQ(kErrPluginBase, 100);
  EXPECT_EQ(kErrInternal, 999);
}

TEST(ErrorTest, CniErrorRoundTripsThroughStatus) {
  for (int code : {1, 2, 3, 4, 5, 6, 7, 11, 50, 51, 100, 123, 999}) {
    absl::Status s = CniError(code, "message", "more");
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(CniCode(s), code);
    EXPECT_EQ(ErrorFromStatus(s), (Error{code, "message", "more"}));
  }
}

TEST(ErrorTest, CniErrorKeepsAReadableStatusCode) {
  EXPECT_EQ(CniError(kErrInvalidEnvironment, "x").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(CniError(kErrTryAgainLater, "x").code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(CniError(kErrUnknownContainer, "x").code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(CniError(kErrInternal, "x").code(), absl::StatusCode::kInternal);
}

TEST(ErrorTest, PlainStatusesMapToTryAgainOrInternal) {
  EXPECT_EQ(ErrorFromStatus(absl::UnavailableError("loomd down")),
            (Error{kErrTryAgainLater, "loomd down", ""}));
  EXPECT_EQ(ErrorFromStatus(absl::DeadlineExceededError("slow")).code, kErrTryAgainLater);
  EXPECT_EQ(ErrorFromStatus(absl::InternalError("boom")).code, kErrInternal);
  EXPECT_EQ(ErrorFromStatus(absl::InvalidArgumentError("x")).code, kErrInternal);
  EXPECT_EQ(CniCode(absl::InternalError("boom")), std::nullopt);
}

}  // namespace
}  // namespace loom::cni
