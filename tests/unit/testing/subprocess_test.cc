// The test helpers themselves: subprocesses are reaped and killed, errors are clear.
#include "tests/testing/subprocess.h"

#include <signal.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace loom::testing {
namespace {

using ::testing::HasSubstr;

TEST(SubprocessTest, ReportsTheExitCodeAndWritesTheLog) {
  char tmpl[] = "/tmp/loom-subprocess-test-XXXXXX";
  ASSERT_GE(::mkstemp(tmpl), 0);
  ASSERT_OK_AND_ASSIGN(auto p, Subprocess::Start({"sh", "-c", "echo out $FOO; echo err >&2; exit 3"},
                                                 {.log_path = tmpl, .extra_env = {"FOO=bar"}}));
  EXPECT_THAT(p->Wait(absl::Seconds(10)), IsOkAndHolds(3));
  EXPECT_THAT(p->Wait(absl::Seconds(1)), IsOkAndHolds(3));  // already reaped
  std::stringstream ss;
  ss << std::ifstream(tmpl).rdbuf();
  EXPECT_EQ(ss.str(), "out bar\nerr\n");
  ::unlink(tmpl);
}

TEST(SubprocessTest, SignalsTimesOutAndKillsOnDestruction) {
  ASSERT_OK_AND_ASSIGN(auto p, Subprocess::Start({"sleep", "30"}));
  EXPECT_THAT(p->Wait(absl::Milliseconds(50)), StatusIs(absl::StatusCode::kDeadlineExceeded));
  ASSERT_OK(p->Signal(SIGTERM));
  EXPECT_THAT(p->Wait(absl::Seconds(10)), IsOkAndHolds(128 + SIGTERM));
  EXPECT_OK(p->Signal(SIGTERM));  // gone: fine

  ASSERT_OK_AND_ASSIGN(auto q, Subprocess::Start({"sleep", "30"}));
  const pid_t pid = q->pid();
  q.reset();
  EXPECT_NE(::kill(pid, 0), 0);  // killed and reaped
}

TEST(SubprocessTest, AMissingBinaryIsAClearError) {
  EXPECT_THAT(Subprocess::Start({"/nonexistent/loom-binary"}),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("exec /nonexistent/loom-binary")));
  EXPECT_THAT(Subprocess::Start({}), StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace loom::testing
