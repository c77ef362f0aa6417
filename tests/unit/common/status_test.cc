#include "common/status.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace loom {
namespace {

using ::loom::testing::IsOk;
using ::loom::testing::IsOkAndHolds;
using ::loom::testing::StatusIs;
using ::testing::HasSubstr;

absl::StatusOr<int> Half(int v) {
  if (v % 2 != 0) return absl::InvalidArgumentError("odd");
  return v / 2;
}

absl::StatusOr<int> Quarter(int v) {
  ASSIGN_OR_RETURN(int h, Half(v));
  ASSIGN_OR_RETURN(int q, Half(h));
  return q;
}

absl::Status CheckEven(int v) {
  RETURN_IF_ERROR(Half(v).status());
  return absl::OkStatus();
}

TEST(StatusMacros, AssignOrReturnPropagates) {
  EXPECT_THAT(Quarter(8), IsOkAndHolds(2));
  EXPECT_THAT(Quarter(6), StatusIs(absl::StatusCode::kInvalidArgument, "odd"));
  EXPECT_THAT(CheckEven(4), IsOk());
  EXPECT_THAT(CheckEven(3), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(ErrnoToStatus, MapsCodesAndKeepsContext) {
  EXPECT_THAT(ErrnoToStatus(ENOENT, "open /x"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("open /x: No such file")));
  EXPECT_THAT(ErrnoToStatus(EACCES, "mkdir"), StatusIs(absl::StatusCode::kPermissionDenied));
  EXPECT_THAT(ErrnoToStatus(EEXIST, "link"), StatusIs(absl::StatusCode::kAlreadyExists));
  EXPECT_THAT(ErrnoToStatus(EADDRINUSE, "bind"), StatusIs(absl::StatusCode::kAlreadyExists));
}

TEST(Annotate, PrefixesMessageKeepsCode) {
  EXPECT_THAT(Annotate(absl::NotFoundError("gone"), "lease 7"),
              StatusIs(absl::StatusCode::kNotFound, "lease 7: gone"));
  EXPECT_THAT(Annotate(absl::OkStatus(), "x"), IsOk());
}

}  // namespace
}  // namespace loom
