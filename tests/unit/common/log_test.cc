#include "common/log.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace loom {
namespace {

using ::testing::EndsWith;
using ::testing::HasSubstr;
using ::testing::StartsWith;

TEST(Log, FormatsLogfmtWithFields) {
  std::string line = FormatLogLine(LogLevel::kInfo, "node registered",
                                   {{"node", "n1"}, {"lease", 42}, {"ready", true}});
  EXPECT_THAT(line, StartsWith("ts="));
  EXPECT_THAT(line, EndsWith(" level=info msg=\"node registered\" node=n1 lease=42 ready=true"));
}

TEST(Log, QuotesAndEscapesValues) {
  std::string line = FormatLogLine(LogLevel::kError, "x", {{"err", "a \"b\"\nc"}, {"empty", ""}});
  EXPECT_THAT(line, HasSubstr("err=\"a \\\"b\\\"\\nc\""));
  EXPECT_THAT(line, HasSubstr("empty=\"\""));
}

TEST(Log, ParsesLevels) {
  LogLevel level;
  EXPECT_TRUE(ParseLogLevel("debug", &level));
  EXPECT_EQ(level, LogLevel::kDebug);
  EXPECT_TRUE(ParseLogLevel("warning", &level));
  EXPECT_EQ(level, LogLevel::kWarning);
  EXPECT_FALSE(ParseLogLevel("loud", &level));
}

}  // namespace
}  // namespace loom
