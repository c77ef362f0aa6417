#include "common/net/netns.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/net/netlink.h"
#include "common/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/privileged.h"
#include "tests/testing/status_matchers.h"
#include "tests/unit/common/net/test_netns.h"

namespace loom::net {
namespace {

using ::loom::net::testing::TestNetns;
using ::loom::testing::IsOk;
using ::loom::testing::IsOkAndHolds;
using ::loom::testing::StatusIs;
using ::testing::Eq;
using ::testing::HasSubstr;
using ::testing::Ne;

TEST(NetnsTest, CreateOpenDelete) {
  LOOM_REQUIRE_ROOT();
  TestNetns ns("ns");
  ASSERT_OK(ns.status());
  struct stat st;
  ASSERT_EQ(stat(NamedNetnsPath(ns.name()).c_str(), &st), 0);
  EXPECT_THAT(CreateNamedNetns(ns.name()), StatusIs(absl::StatusCode::kAlreadyExists));

  ASSERT_OK_AND_ASSIGN(NetnsFd again, NetnsFd::OpenNamed(ns.name()));
  ASSERT_OK_AND_ASSIGN(NetnsFd current, NetnsFd::OpenCurrent());
  ASSERT_OK_AND_ASSIGN(ino_t ns_inode, ns.fd().Inode());
  EXPECT_THAT(again.Inode(), IsOkAndHolds(Eq(ns_inode)));
  EXPECT_THAT(current.Inode(), IsOkAndHolds(Ne(ns_inode)));
  ASSERT_OK_AND_ASSIGN(NetnsFd mine, NetnsFd::OpenPid(getpid()));
  EXPECT_TRUE(mine.valid());
  EXPECT_EQ(mine.path(), StrCat("/proc/", getpid(), "/ns/net"));

  // Moves keep one owner.
  NetnsFd moved = std::move(again);
  EXPECT_FALSE(again.valid());  // NOLINT(bugprone-use-after-move)
  EXPECT_TRUE(moved.valid());

  std::string name = ns.name();
  ASSERT_OK(DeleteNamedNetns(name));
  EXPECT_NE(stat(NamedNetnsPath(name).c_str(), &st), 0);
  EXPECT_THAT(DeleteNamedNetns(name), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(NetnsFd::OpenNamed(name), StatusIs(absl::StatusCode::kNotFound));
  // Still usable through an open fd after the name is gone.
  EXPECT_OK(RunInNetns(moved, [] { return absl::OkStatus(); }));
}

TEST(NetnsTest, RejectsBadNamesAndPaths) {
  for (const char* bad : {"", ".", "..", "a/b", "/abs"}) {
    EXPECT_THAT(CreateNamedNetns(bad), StatusIs(absl::StatusCode::kInvalidArgument)) << bad;
    EXPECT_THAT(DeleteNamedNetns(bad), StatusIs(absl::StatusCode::kInvalidArgument)) << bad;
    EXPECT_THAT(NetnsFd::OpenNamed(bad), StatusIs(absl::StatusCode::kInvalidArgument)) << bad;
  }
  EXPECT_THAT(NetnsFd::OpenPath("/proc/self/ns/mnt"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not a network namespace")));
  EXPECT_THAT(NetnsFd::OpenPath("/nonexistent/ns"), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(RunInNetns(NetnsFd(), [] { return absl::OkStatus(); }),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(NetnsTest, RunInNetnsRunsThereAndLeavesTheCallerAlone) {
  LOOM_REQUIRE_ROOT();
  TestNetns ns("run");
  ASSERT_OK(ns.status());
  ASSERT_OK_AND_ASSIGN(ino_t ns_inode, ns.fd().Inode());
  ASSERT_OK_AND_ASSIGN(NetnsFd before, NetnsFd::OpenCurrent());
  ASSERT_OK_AND_ASSIGN(ino_t caller_inode, before.Inode());

  // The function sees the namespace...
  auto inside = RunInNetns<ino_t>(ns.fd(), []() -> absl::StatusOr<ino_t> {
    ASSIGN_OR_RETURN(NetnsFd here, NetnsFd::OpenCurrent());
    return here.Inode();
  });
  EXPECT_THAT(inside, IsOkAndHolds(Eq(ns_inode)));

  // ...a link made there stays there...
  const std::string link = "runtest0";
  ASSERT_OK(RunInNetns(ns.fd(), [&]() -> absl::Status {
    ASSIGN_OR_RETURN(Netlink nl, Netlink::Create());
    return nl.CreateBridge(link);
  }));
  ASSERT_OK_AND_ASSIGN(Netlink there, ns.Connect());
  EXPECT_OK(there.GetLink(link));
  ASSERT_OK_AND_ASSIGN(Netlink here, Netlink::Create());
  EXPECT_THAT(here.GetLink(link), StatusIs(absl::StatusCode::kNotFound));

  // ...and the caller's thread never moved.
  ASSERT_OK_AND_ASSIGN(NetnsFd after, NetnsFd::OpenCurrent());
  EXPECT_THAT(after.Inode(), IsOkAndHolds(Eq(caller_inode)));

  // Errors come back as they were.
  EXPECT_THAT(RunInNetns(ns.fd(), [] { return absl::DataLossError("boom"); }),
              StatusIs(absl::StatusCode::kDataLoss, "boom"));
  EXPECT_THAT(RunInNetns<int>(ns.fd(), []() -> absl::StatusOr<int> { return 7; }),
              IsOkAndHolds(Eq(7)));
  EXPECT_THAT(RunInNetns<int>(ns.fd(),
                              []() -> absl::StatusOr<int> { return absl::NotFoundError("x"); }),
              StatusIs(absl::StatusCode::kNotFound));
}

TEST(NetnsTest, NoFdLeakOverManyRuns) {
  LOOM_REQUIRE_ROOT();
  TestNetns ns("leak");
  ASSERT_OK(ns.status());
  auto count = [] {
    int n = 0;
    for (int fd = 0; fd < 4096; ++fd) {
      if (fcntl(fd, F_GETFD) != -1) ++n;
    }
    return n;
  };
  int before = count();
  for (int i = 0; i < 100; ++i) {
    ASSERT_OK_AND_ASSIGN(NetnsFd fd, NetnsFd::OpenNamed(ns.name()));
    ASSERT_OK(RunInNetns(fd, [] { return Netlink::Create().status(); }));
  }
  EXPECT_EQ(count(), before);
}

}  // namespace
}  // namespace loom::net
