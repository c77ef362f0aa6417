// The etcd client's own promises: URL parsing, failing fast and clearly when etcd
// is unreachable, failing over between endpoints.
#include "agent/store/etcd_store.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "absl/time/clock.h"
#include "common/strings.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/etcd_server.h"
#include "tests/testing/privileged.h"
#include "tests/testing/status_matchers.h"
#include "tests/unit/store/store_test_util.h"

namespace loom::store {
namespace {

using ::loom::testing::EtcdServer;
using ::loom::testing::IsOkAndHolds;
using ::loom::testing::StatusIs;
using ::testing::Eq;
using ::testing::HasSubstr;
using ::testing::Optional;
using ::testing::Field;

// A loopback port with nothing listening on it.
int ClosedPort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

TEST(EtcdUrlTest, ParsesEndpoints) {
  ASSERT_OK_AND_ASSIGN(auto eps, ParseEtcdUrl("etcd://127.0.0.1:2379,etcd-1.example:12379,[::1]:3"));
  ASSERT_EQ(eps.size(), 3u);
  EXPECT_EQ(eps[0].host, "127.0.0.1");
  EXPECT_EQ(eps[0].port, 2379);
  EXPECT_EQ(eps[1].ToString(), "etcd-1.example:12379");
  EXPECT_EQ(eps[2].host, "::1");
  EXPECT_EQ(eps[2].ToString(), "[::1]:3");
}

TEST(EtcdUrlTest, NamesWhatIsWrong) {
  const auto kBad = absl::StatusCode::kInvalidArgument;
  EXPECT_THAT(ParseEtcdUrl("http://127.0.0.1:2379"), StatusIs(kBad, HasSubstr("not an etcd://")));
  EXPECT_THAT(ParseEtcdUrl("etcd://"), StatusIs(kBad, HasSubstr("no endpoints")));
  EXPECT_THAT(ParseEtcdUrl("etcd://127.0.0.1"), StatusIs(kBad, HasSubstr("has no port")));
  EXPECT_THAT(ParseEtcdUrl("etcd://127.0.0.1:"), StatusIs(kBad, HasSubstr("bad port")));
  EXPECT_THAT(ParseEtcdUrl("etcd://127.0.0.1:99999"), StatusIs(kBad, HasSubstr("bad port")));
  EXPECT_THAT(ParseEtcdUrl("etcd://127.0.0.1:+5"), StatusIs(kBad, HasSubstr("bad port")));
  EXPECT_THAT(ParseEtcdUrl("etcd://:2379"), StatusIs(kBad, HasSubstr("has no host")));
  EXPECT_THAT(ParseEtcdUrl("etcd://a:1,,b:2"), StatusIs(kBad, HasSubstr("endpoint \"\"")));
  EXPECT_THAT(ParseEtcdUrl("etcd://a/b:1"), StatusIs(kBad, HasSubstr("bad host")));
  EXPECT_THAT(OpenStore("etcd://x", ""), StatusIs(kBad, HasSubstr("etcd://x")));
}

TEST(EtcdStoreTest, UnreachableEtcdFailsFastAndSaysSo) {
  const int port = ClosedPort();
  const absl::Time start = absl::Now();
  EXPECT_THAT(OpenStore(StrCat("etcd://127.0.0.1:", port), ""),
              StatusIs(absl::StatusCode::kUnavailable,
                       Eq(StrCat("etcd at 127.0.0.1:", port, ": connection refused"))));
  EXPECT_LT(absl::Now() - start, absl::Seconds(3));
}

TEST(EtcdStoreTest, ANonRespondingEndpointTimesOut) {
  // A listening socket that never accepts nor answers.
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(::listen(fd, 1), 0);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  const int port = ntohs(addr.sin_port);
  EtcdStoreOptions options;
  options.request_timeout = absl::Milliseconds(500);
  const absl::Time start = absl::Now();
  EXPECT_THAT(OpenEtcdStore(StrCat("etcd://127.0.0.1:", port), options),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("timed out")));
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  ::close(fd);
}

class EtcdFailoverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    LOOM_REQUIRE(::access(loom::testing::kEtcdBinary, X_OK) == 0, "etcd-server (/usr/bin/etcd)");
    ASSERT_OK_AND_ASSIGN(etcd_, EtcdServer::Start());
  }
  std::unique_ptr<EtcdServer> etcd_;
};

TEST_F(EtcdFailoverTest, SkipsADeadEndpoint) {
  const std::string url = StrCat("etcd://127.0.0.1:", ClosedPort(), ",127.0.0.1:", etcd_->client_port());
  ASSERT_OK_AND_ASSIGN(auto store, OpenStore(url, ""));
  ASSERT_OK_AND_ASSIGN(Revision r, store->Put("/k", "v"));
  WatchRecorder rec;
  ASSERT_OK_AND_ASSIGN(auto watch, store->WatchPrefix("/", r - 1, rec.Callback()));
  ASSERT_TRUE(rec.WaitForEvents(1));
  EXPECT_THAT(store->Get("/k"), IsOkAndHolds(Optional(Field(&KeyValue::value, "v"))));
}

TEST_F(EtcdFailoverTest, CallsFailWhileEtcdIsDownAndRecoverAfter) {
  ASSERT_OK_AND_ASSIGN(auto store, OpenStore(etcd_->StoreUrl(), ""));
  ASSERT_OK(store->Put("/k", "1").status());
  ASSERT_OK(etcd_->Stop());
  const absl::Time start = absl::Now();
  EXPECT_THAT(store->Put("/k", "2"), StatusIs(absl::StatusCode::kUnavailable,
                                              HasSubstr("connection refused")));
  EXPECT_LT(absl::Now() - start, absl::Seconds(3));
  ASSERT_OK(etcd_->Restart());
  EXPECT_THAT(store->Get("/k"), IsOkAndHolds(Optional(Field(&KeyValue::value, "1"))));
}

}  // namespace
}  // namespace loom::store
