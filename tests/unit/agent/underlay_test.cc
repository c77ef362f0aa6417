#include "agent/daemon/underlay.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace loom::agent {
namespace {

using ::loom::testing::IsOkAndHolds;
using ::loom::testing::StatusIs;
using ::testing::Eq;
using ::testing::HasSubstr;

constexpr char kHeader[] =
    "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n";

TEST(UnderlayTest, PicksDefaultRouteInterface) {
  std::string text = std::string(kHeader) +
                     "eth1\t0064A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"
                     "eth0\t00000000\t0102A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n";
  EXPECT_THAT(DefaultRouteInterface(text), IsOkAndHolds(Eq("eth0")));
}

TEST(UnderlayTest, LowestMetricWinsAndDownRoutesAreSkipped) {
  std::string text = std::string(kHeader) +
                     "eth0\t00000000\t0102A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n"
                     "wlan0\t00000000\t0102A8C0\t0003\t0\t0\t50\t00000000\t0\t0\t0\n"
                     "down0\t00000000\t0102A8C0\t0002\t0\t0\t1\t00000000\t0\t0\t0\n";
  EXPECT_THAT(DefaultRouteInterface(text), IsOkAndHolds(Eq("wlan0")));
}

TEST(UnderlayTest, NoDefaultRoute) {
  std::string text = std::string(kHeader) +
                     "eth1\t0064A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";
  EXPECT_THAT(DefaultRouteInterface(text), StatusIs(absl::StatusCode::kNotFound));
}

TEST(UnderlayTest, ResolveWithoutDefaultRouteAsksForFlag) {
  char path[] = "/tmp/loom-route-XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(write(fd, kHeader, sizeof kHeader - 1), static_cast<ssize_t>(sizeof kHeader - 1));
  close(fd);
  EXPECT_THAT(ResolveUnderlay("", path),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("pass --underlay-iface")));
  unlink(path);
}

TEST(UnderlayTest, LoopbackHasAnIpv4Address) {
  ASSERT_OK_AND_ASSIGN(Underlay u, ResolveUnderlay("lo"));
  EXPECT_EQ(u.iface, "lo");
  EXPECT_EQ(u.ip, "127.0.0.1");
}

TEST(UnderlayTest, MissingInterfaceIsNamed) {
  EXPECT_THAT(ResolveUnderlay("nosuch0"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("nosuch0 does not exist")));
}

}  // namespace
}  // namespace loom::agent
