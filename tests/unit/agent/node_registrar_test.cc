#include "agent/daemon/node_registrar.h"

#include <stdlib.h>

#include <filesystem>
#include <fstream>

#include "agent/store/embedded_store.h"
#include "tests/fakes/fake_clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace loom::agent {
namespace {

using ::loom::testing::StatusIs;
namespace testing = ::loom::testing;

NodeInfo TestNode() {
  return {"node-1", "198.51.100.1", "", "", 4, 8LL << 30, "0.1.0-dev"};
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::string s;
  std::getline(in, s);
  return s;
}

class NodeRegistrarTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/loom-registrar-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    store::EmbeddedStoreOptions opts;
    opts.clock = &clock_;
    opts.expiry_interval = absl::Milliseconds(10);
    store_ = store::NewMemoryStore(opts);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  RegistrarOptions Options() {
    RegistrarOptions o;
    o.ttl = absl::Seconds(3);
    o.lease_file = dir_ + "/node-lease";
    o.now = [] { return absl::FromUnixSeconds(1795900000); };
    o.metrics = &metrics_;
    return o;
  }

  // Waits (bounded) until the key is gone: expiry runs on the store's own thread.
  bool WaitForKeyGone(store::Store& s, const std::string& key) {
    for (int i = 0; i < 200; ++i) {
      auto kv = s.Get(key);
      if (kv.ok() && !kv->has_value()) return true;
      absl::SleepFor(absl::Milliseconds(10));
    }
    return false;
  }

  std::string dir_;
  testing::FakeClock clock_{absl::FromUnixSeconds(1795900000)};
  metrics::Registry metrics_;
  std::unique_ptr<store::Store> store_;
};

TEST_F(NodeRegistrarTest, RegisterPutsNodeJsonOnALease) {
  NodeRegistrar registrar(store_.get(), TestNode(), Options());
  ASSERT_OK(registrar.Register());
  EXPECT_TRUE(registrar.healthy());
  ASSERT_OK_AND_ASSIGN(std::optional<store::KeyValue> kv, store_->Get("/loom/nodes/node-1"));
  ASSERT_TRUE(kv.has_value());
  EXPECT_EQ(kv->lease, registrar.lease());
  EXPECT_NE(kv->lease, store::kNoLease);
  ASSERT_OK_AND_ASSIGN(Json node, ParseJson(kv->value));
  EXPECT_EQ(node, Json::parse(R"({"name":"node-1","underlayIP":"198.51.100.1","vtepMAC":"",
      "podCIDR":"","capacity":{"cpus":4,"memoryBytes":8589934592},
      "heartbeat":"2026-11-28T21:06:40Z","version":"0.1.0-dev"})"));
  EXPECT_EQ(ReadFile(dir_ + "/node-lease"), std::to_string(registrar.lease()) + " - node-1");
}

TEST_F(NodeRegistrarTest, RenewKeepsTheLeaseAliveWithoutRewritingTheKey) {
  NodeRegistrar registrar(store_.get(), TestNode(), Options());
  ASSERT_OK(registrar.Register());
  ASSERT_OK_AND_ASSIGN(auto before, store_->Get("/loom/nodes/node-1"));
  for (int i = 0; i < 5; ++i) {
    clock_.Advance(absl::Seconds(1));
    ASSERT_OK(registrar.RenewOnce());
  }
  // 5 s past a 3 s TTL: alive only because of the renewals.
  ASSERT_OK_AND_ASSIGN(auto after, store_->Get("/loom/nodes/node-1"));
  ASSERT_TRUE(after.has_value());
  EXPECT_EQ(after->mod_revision, before->mod_revision);
  EXPECT_THAT(metrics_.Render(), ::testing::HasSubstr("loom_node_lease_renewals_total 5\n"));
}

TEST_F(NodeRegistrarTest, LostLeaseRegistersAgain) {
  NodeRegistrar registrar(store_.get(), TestNode(), Options());
  ASSERT_OK(registrar.Register());
  store::LeaseId first = registrar.lease();
  clock_.Advance(absl::Seconds(4));
  ASSERT_TRUE(WaitForKeyGone(*store_, "/loom/nodes/node-1"));

  ASSERT_OK(registrar.RenewOnce());
  EXPECT_TRUE(registrar.healthy());
  EXPECT_NE(registrar.lease(), first);
  ASSERT_OK_AND_ASSIGN(auto kv, store_->Get("/loom/nodes/node-1"));
  ASSERT_TRUE(kv.has_value());
  EXPECT_EQ(kv->lease, registrar.lease());
  EXPECT_EQ(ReadFile(dir_ + "/node-lease"), std::to_string(registrar.lease()) + " - node-1");
  EXPECT_THAT(metrics_.Render(), ::testing::HasSubstr("loom_node_registrations_total 2\n"));
}

TEST_F(NodeRegistrarTest, RevokedLeaseRegistersAgain) {
  NodeRegistrar registrar(store_.get(), TestNode(), Options());
  ASSERT_OK(registrar.Register());
  ASSERT_OK(store_->RevokeLease(registrar.lease()));
  ASSERT_OK_AND_ASSIGN(auto gone, store_->Get("/loom/nodes/node-1"));
  EXPECT_FALSE(gone.has_value());
  ASSERT_OK(registrar.RenewOnce());
  ASSERT_OK_AND_ASSIGN(auto kv, store_->Get("/loom/nodes/node-1"));
  EXPECT_TRUE(kv.has_value());
}

TEST_F(NodeRegistrarTest, RegisterReusesTheLiveLeaseNamedInTheFile) {
  store::LeaseId first;
  {
    NodeRegistrar registrar(store_.get(), TestNode(), Options());
    ASSERT_OK(registrar.Register());
    first = registrar.lease();
  }
  NodeRegistrar again(store_.get(), TestNode(), Options());
  ASSERT_OK(again.Register());
  EXPECT_EQ(again.lease(), first);
}

TEST_F(NodeRegistrarTest, StaleLeaseFileGetsANewLease) {
  std::ofstream(dir_ + "/node-lease") << "987654\n";
  NodeRegistrar registrar(store_.get(), TestNode(), Options());
  ASSERT_OK(registrar.Register());
  EXPECT_NE(registrar.lease(), 987654);
  EXPECT_EQ(ReadFile(dir_ + "/node-lease"), std::to_string(registrar.lease()) + " - node-1");
}

TEST_F(NodeRegistrarTest, LeaseFileOfAnotherStoreOrNodeIsNotReused) {
  store::LeaseId first;
  {
    NodeRegistrar registrar(store_.get(), TestNode(), Options());
    ASSERT_OK(registrar.Register());
    first = registrar.lease();
  }
  RegistrarOptions other_store = Options();
  other_store.store_name = "etcd://127.0.0.1:2379";
  NodeRegistrar registrar(store_.get(), TestNode(), other_store);
  ASSERT_OK(registrar.Register());
  EXPECT_NE(registrar.lease(), first);
  EXPECT_EQ(ReadFile(dir_ + "/node-lease"),
            std::to_string(registrar.lease()) + " etcd://127.0.0.1:2379 node-1");
}

TEST_F(NodeRegistrarTest, MalformedLeaseFileIsIgnored) {
  std::ofstream(dir_ + "/node-lease") << "garbage\n";
  NodeRegistrar registrar(store_.get(), TestNode(), Options());
  ASSERT_OK(registrar.Register());
  EXPECT_NE(registrar.lease(), store::kNoLease);
}

TEST_F(NodeRegistrarTest, UnwritableLeaseFileFailsRegistration) {
  RegistrarOptions o = Options();
  o.lease_file = dir_ + "/no/such/dir/node-lease";
  NodeRegistrar registrar(store_.get(), TestNode(), o);
  EXPECT_THAT(registrar.Register(),
              StatusIs(absl::StatusCode::kNotFound, ::testing::HasSubstr("node-lease")));
  EXPECT_FALSE(registrar.healthy());
}

// Against the durable embedded store: a restarted agent (new store instance on the same
// directory, new registrar) finds its key still there and keeps the same lease.
TEST_F(NodeRegistrarTest, RestartReusesLeaseAndKeyNeverDisappears) {
  std::string state = dir_ + "/state";
  RegistrarOptions o = Options();
  o.lease_file = dir_ + "/node-lease";
  store::LeaseId first;
  {
    ASSERT_OK_AND_ASSIGN(auto s, store::OpenEmbeddedStore(state));
    NodeRegistrar registrar(s.get(), TestNode(), o);
    ASSERT_OK(registrar.Register());
    first = registrar.lease();
  }
  ASSERT_OK_AND_ASSIGN(auto s, store::OpenEmbeddedStore(state));
  ASSERT_OK_AND_ASSIGN(auto kv, s->Get("/loom/nodes/node-1"));
  ASSERT_TRUE(kv.has_value());
  NodeRegistrar registrar(s.get(), TestNode(), o);
  ASSERT_OK(registrar.Register());
  EXPECT_EQ(registrar.lease(), first);
  ASSERT_OK_AND_ASSIGN(kv, s->Get("/loom/nodes/node-1"));
  ASSERT_TRUE(kv.has_value());
  EXPECT_EQ(kv->lease, first);
}

// The keeper thread, in real time with a 1 s TTL: the key outlives several TTLs while
// renewed, and is gone within a TTL once renewals stop.
TEST_F(NodeRegistrarTest, KeeperRenewsInRealTime) {
  std::unique_ptr<store::Store> real = store::NewMemoryStore();
  RegistrarOptions o = Options();
  o.ttl = absl::Seconds(1);
  NodeRegistrar registrar(real.get(), TestNode(), o);
  ASSERT_OK(registrar.Register());
  registrar.Start();
  absl::SleepFor(absl::Milliseconds(2500));
  ASSERT_OK_AND_ASSIGN(auto kv, real->Get("/loom/nodes/node-1"));
  EXPECT_TRUE(kv.has_value());
  EXPECT_TRUE(registrar.healthy());
  registrar.Stop();
  bool gone = false;
  for (int i = 0; i < 40 && !gone; ++i) {
    absl::SleepFor(absl::Milliseconds(100));
    ASSERT_OK_AND_ASSIGN(kv, real->Get("/loom/nodes/node-1"));
    gone = !kv.has_value();
  }
  EXPECT_TRUE(gone);
}

}  // namespace
}  // namespace loom::agent
