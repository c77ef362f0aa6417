// The forwarder against a real upstream that the test starts itself: knotd on
// loopback serving example.test. Never the machine's resolver.
#include "dns/forwarder.h"

#include <future>

#include "dns/server.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/knot_server.h"
#include "tests/testing/privileged.h"
#include "tests/testing/status_matchers.h"

namespace loom::dns {
namespace {

using ::testing::HasSubstr;

constexpr char kZone[] = R"($TTL 60
@ SOA ns.example.test. hostmaster.example.test. 1 7200 1800 86400 30
@ NS ns
ns A 192.0.2.1
www A 192.0.2.10
)";

std::vector<uint8_t> MakeQuery(std::string_view name, uint16_t qtype, uint16_t id) {
  std::vector<uint8_t> q(512);
  MessageWriter w(q.data(), q.size());
  Header h;
  h.id = id;
  h.set_rd(true);
  w.SetHeader(h);
  w.AddQuestion(*Name::FromText(name), qtype, kClassIn);
  q.resize(w.size());
  return q;
}

absl::StatusOr<Message> Ask(Forwarder& f, std::string_view name, uint16_t qtype, uint16_t id = 1) {
  std::promise<absl::StatusOr<std::vector<uint8_t>>> p;
  auto fut = p.get_future();
  f.Resolve(MakeQuery(name, qtype, id), [&p](absl::StatusOr<std::vector<uint8_t>> r) {
    p.set_value(std::move(r));
  });
  if (fut.wait_for(std::chrono::seconds(10)) != std::future_status::ready) {
    return absl::DeadlineExceededError("no answer in 10s");
  }
  auto r = fut.get();
  if (!r.ok()) return r.status();
  return DecodeMessage(r->data(), r->size());
}

class ForwarderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    LOOM_REQUIRE_ROOT();  // knotd runs as root with its own config
    LOOM_REQUIRE(access("/usr/sbin/knotd", X_OK) == 0, "knotd (package knot)");
    testing::KnotOptions ko;
    ko.zones["example.test"] = kZone;
    auto k = testing::KnotServer::Start(ko);
    ASSERT_TRUE(k.ok()) << k.status();
    knot_ = *std::move(k);
    ForwarderOptions fo;
    fo.upstreams = {knot_->Address()};
    fo.upstream_timeout = absl::Milliseconds(500);
    fo.health_check_interval = absl::Milliseconds(100);
    fo.now = [this] { return absl::Now() + absl::Seconds(offset_.load()); };
    forwarder_ = std::make_unique<Forwarder>(fo);
    ASSERT_OK(forwarder_->Start());
  }

  std::atomic<int64_t> offset_{0};
  std::unique_ptr<testing::KnotServer> knot_;
  std::unique_ptr<Forwarder> forwarder_;
};

TEST_F(ForwarderTest, CachesAndCountsTtlDown) {
  ASSERT_OK_AND_ASSIGN(Message first, Ask(*forwarder_, "WWW.example.test", type::kA, 7));
  EXPECT_EQ(first.header.id, 7);
  ASSERT_EQ(first.answers.size(), 1u);
  EXPECT_EQ(first.answers[0].ttl, 60u);
  EXPECT_EQ(first.questions[0].name.ToText(), "WWW.example.test.");
  EXPECT_EQ(forwarder_->stats().cache_misses.load(), 1u);

  offset_ = 10;
  ASSERT_OK_AND_ASSIGN(Message second, Ask(*forwarder_, "www.example.test", type::kA, 8));
  EXPECT_EQ(second.header.id, 8);
  EXPECT_EQ(second.answers[0].ttl, 50u);
  EXPECT_EQ(forwarder_->stats().cache_hits.load(), 1u);
  EXPECT_EQ(forwarder_->stats().upstream_queries.load(), 1u);
}

TEST_F(ForwarderTest, NegativeAnswersAreCachedForTheSoaMinimum) {
  ASSERT_OK_AND_ASSIGN(Message nx, Ask(*forwarder_, "nope.example.test", type::kA));
  EXPECT_EQ(nx.header.rcode(), Rcode::kNxDomain);
  ASSERT_EQ(nx.authority.size(), 1u);
  ASSERT_OK_AND_ASSIGN(Message again, Ask(*forwarder_, "nope.example.test", type::kA));
  EXPECT_EQ(again.header.rcode(), Rcode::kNxDomain);
  EXPECT_EQ(forwarder_->stats().cache_hits.load(), 1u);
  offset_ = 31;  // the SOA minimum is 30
  ASSERT_OK_AND_ASSIGN(Message expired, Ask(*forwarder_, "nope.example.test", type::kA));
  EXPECT_EQ(forwarder_->stats().upstream_queries.load(), 2u);
  (void)expired;
}

TEST_F(ForwarderTest, ServesStaleWhileTheUpstreamIsDownAndRecovers) {
  ASSERT_OK(Ask(*forwarder_, "www.example.test", type::kA).status());
  knot_->Stop();
  offset_ = 120;  // past the 60 s TTL
  ASSERT_OK_AND_ASSIGN(Message stale, Ask(*forwarder_, "www.example.test", type::kA));
  ASSERT_EQ(stale.answers.size(), 1u);
  EXPECT_EQ(stale.answers[0].ttl, 30u);
  EXPECT_GE(forwarder_->stats().stale_served.load(), 1u);
  // A name never seen: nothing stale to give, so the caller gets the failure.
  EXPECT_FALSE(Ask(*forwarder_, "ns.example.test", type::kA).ok());
  EXPECT_TRUE(forwarder_->HealthyUpstreams().empty());

  ASSERT_OK(knot_->Restart());
  absl::Time deadline = absl::Now() + absl::Seconds(5);
  while (forwarder_->HealthyUpstreams().empty() && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(50));
  }
  EXPECT_EQ(forwarder_->HealthyUpstreams().size(), 1u);
  ASSERT_OK_AND_ASSIGN(Message fresh, Ask(*forwarder_, "ns.example.test", type::kA));
  ASSERT_EQ(fresh.answers.size(), 1u);
  EXPECT_EQ(fresh.answers[0].ttl, 60u);
}

TEST_F(ForwarderTest, BoundedCacheEvictsLeastRecentlyUsed) {
  ForwarderOptions fo;
  fo.upstreams = {knot_->Address()};
  fo.cache_entries = 2;
  Forwarder small(fo);
  ASSERT_OK(small.Start());
  ASSERT_OK(Ask(small, "www.example.test", type::kA).status());
  ASSERT_OK(Ask(small, "ns.example.test", type::kA).status());
  ASSERT_OK(Ask(small, "a.example.test", type::kA).status());
  EXPECT_EQ(small.cache_size(), 2u);
}

// An upstream that forwards back to loomd: the HINFO probe returns and the
// forwarder stops forwarding instead of looping.
TEST(ForwarderLoop, DetectsAForwardingLoop) {
  struct Shim : Upstream {
    Upstream* target = nullptr;
    void Resolve(std::vector<uint8_t> q, ResolveCallback done) override {
      if (target == nullptr) return done(absl::UnavailableError("not wired"));
      target->Resolve(std::move(q), std::move(done));
    }
  } shim;
  ZoneHolder zones;
  zones.Set(*ClusterZone::Build(ZoneOptions{}, {}));
  ServerOptions so;
  so.listen = "127.0.0.1:0";
  DnsServer server(so, &zones, &shim);
  ASSERT_OK(server.Start());
  ForwarderOptions fo;
  fo.upstreams = {"127.0.0.1:" + std::to_string(server.port())};
  fo.upstream_timeout = absl::Milliseconds(300);
  Forwarder forwarder(fo);
  shim.target = &forwarder;
  ASSERT_OK(forwarder.Start());
  absl::Time deadline = absl::Now() + absl::Seconds(5);
  while (!forwarder.loop_detected() && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(20));
  EXPECT_TRUE(forwarder.loop_detected());
  EXPECT_FALSE(Ask(forwarder, "www.example.test", type::kA).ok());
  forwarder.Stop();
  server.Stop();
}

TEST(ForwarderConfig, ClearErrors) {
  ForwarderOptions none;
  Forwarder f(none);
  EXPECT_THAT(f.Start(), ::loom::testing::StatusIs(absl::StatusCode::kInvalidArgument,
                                                   HasSubstr("no upstream")));
  ForwarderOptions bad;
  bad.upstreams = {"not-an-ip"};
  Forwarder g(bad);
  EXPECT_THAT(g.Start(), ::loom::testing::StatusIs(absl::StatusCode::kInvalidArgument,
                                                   HasSubstr("not-an-ip")));
  EXPECT_FALSE(ReadResolvConf("/nonexistent/resolv.conf").ok());
}

}  // namespace
}  // namespace loom::dns
