#include "common/net/netlink_error.h"

#include <netlink/errno.h>

#include <cerrno>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace loom::net {
namespace {

using ::loom::testing::IsOk;
using ::loom::testing::StatusIs;
using ::testing::Eq;
using ::testing::HasSubstr;

TEST(NetlinkErrorTest, Success) {
  EXPECT_THAT(NetlinkErrorToStatus(0, "anything"), IsOk());
}

TEST(NetlinkErrorTest, UsesKernelWordsAndNamesTheObject) {
  EXPECT_THAT(NetlinkErrorToStatus(-NLE_EXIST, "add route 10.244.2.0/24 via 10.244.2.0 dev loom.1",
                                   EEXIST),
              StatusIs(absl::StatusCode::kAlreadyExists,
                       Eq("add route 10.244.2.0/24 via 10.244.2.0 dev loom.1: File exists")));
  EXPECT_THAT(NetlinkErrorToStatus(NLE_NODEV, "delete link x", ENODEV),
              StatusIs(absl::StatusCode::kNotFound, Eq("delete link x: No such device")));
}

TEST(NetlinkErrorTest, FallsBackToLibnlText) {
  absl::Status s = NetlinkErrorToStatus(-NLE_NOMEM, "dump");
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("dump: ")));
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr(nl_geterror(NLE_NOMEM))));
}

TEST(NetlinkErrorTest, AppendsExtendedAck) {
  EXPECT_THAT(NetlinkErrorToStatus(-NLE_INVAL, "add route", EINVAL, "Nexthop has invalid gateway"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       Eq("add route: Invalid argument (Nexthop has invalid gateway)")));
}

TEST(NetlinkErrorTest, MapsCodes) {
  struct Case {
    int nle;
    absl::StatusCode code;
  };
  for (const Case& c : std::initializer_list<Case>{
           {NLE_EXIST, absl::StatusCode::kAlreadyExists},
           {NLE_OBJ_NOTFOUND, absl::StatusCode::kNotFound},
           {NLE_NODEV, absl::StatusCode::kNotFound},
           {NLE_NOADDR, absl::StatusCode::kNotFound},
           {NLE_PERM, absl::StatusCode::kPermissionDenied},
           {NLE_NOACCESS, absl::StatusCode::kPermissionDenied},
           {NLE_INVAL, absl::StatusCode::kInvalidArgument},
           {NLE_RANGE, absl::StatusCode::kInvalidArgument},
           {NLE_MISSING_ATTR, absl::StatusCode::kInvalidArgument},
           {NLE_OPNOTSUPP, absl::StatusCode::kUnimplemented},
           {NLE_AF_NOSUPPORT, absl::StatusCode::kUnimplemented},
           {NLE_BUSY, absl::StatusCode::kUnavailable},
           {NLE_AGAIN, absl::StatusCode::kUnavailable},
           {NLE_DUMP_INTR, absl::StatusCode::kUnavailable},
           {NLE_NOMEM, absl::StatusCode::kResourceExhausted},
           {NLE_BAD_SOCK, absl::StatusCode::kFailedPrecondition},
           {NLE_PARSE_ERR, absl::StatusCode::kInternal},
       }) {
    EXPECT_THAT(NetlinkErrorToStatus(-c.nle, "op"), StatusIs(c.code)) << nl_geterror(c.nle);
  }
}

TEST(NetlinkErrorTest, BadFdFromTheKernelIsAnArgumentError) {
  EXPECT_THAT(NetlinkErrorToStatus(-NLE_BAD_SOCK, "move link x to netns fd 99", EBADF),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("Bad file descriptor")));
}

TEST(NetlinkErrorTest, GenericFailureUsesKernelErrno) {
  // libnl folds errnos it has no code for (ENETUNREACH...) into NLE_FAILURE.
  EXPECT_THAT(NetlinkErrorToStatus(-NLE_FAILURE, "add route", ENETUNREACH),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("Network is unreachable")));
  EXPECT_THAT(NetlinkErrorToStatus(-NLE_FAILURE, "op"), StatusIs(absl::StatusCode::kInternal));
}

}  // namespace
}  // namespace loom::net
