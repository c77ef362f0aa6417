// The pods of a node whose lease expired turn not ready (nodeLost) through the other
// agents' LostNodes, and the node's own LostNodes undoes it when the node is back.
#include "agent/services/lost_nodes.h"

#include "absl/time/clock.h"
#include "agent/store/store.h"
#include "common/model/objects.h"
#include "common/strings.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_store.h"

namespace loom::agent {
namespace {

class LostNodesTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_OK(store_.Open("loom-lost-nodes")); }

  // node's key on a lease (what its registrar writes).
  store::LeaseId Register(const std::string& node, absl::Duration ttl = absl::Hours(1)) {
    absl::StatusOr<store::LeaseId> lease = store_->GrantLease(ttl);
    EXPECT_OK(lease.status());
    EXPECT_OK(store_->Put(StrCat("/loom/nodes/", node), StrCat(R"({"name":")", node, R"("})"), *lease)
                  .status());
    return *lease;
  }
  void PutPod(const std::string& node, const std::string& id, bool ready, bool app) {
    model::Pod pod;
    pod.meta.name = id;
    pod.id = id;
    pod.node = node;
    pod.ips = {"10.244.1.2"};
    pod.ready = ready;
    if (app) pod.meta.labels["loom.io/app"] = "web";
    ASSERT_OK(store_->Put(StrCat("/loom/pods/", node, "/", id), model::PodToJson(pod).dump()).status());
  }
  model::Pod GetPod(const std::string& node, const std::string& id) {
    absl::StatusOr<std::optional<store::KeyValue>> kv = store_->Get(StrCat("/loom/pods/", node, "/", id));
    EXPECT_TRUE(kv.ok() && kv->has_value());
    if (!kv.ok() || !kv->has_value()) return {};
    absl::StatusOr<model::Pod> pod = model::PodFromJson(*ParseJson((*kv)->value));
    EXPECT_OK(pod.status());
    return pod.ok() ? *pod : model::Pod{};
  }
  bool WaitFor(const std::function<bool()>& pred) {
    for (absl::Time end = absl::Now() + absl::Seconds(10); absl::Now() < end;) {
      if (pred()) return true;
      absl::SleepFor(absl::Milliseconds(10));
    }
    return pred();
  }

  testing::TempStore store_;
};

TEST_F(LostNodesTest, ALostNodesReadyPodsTurnNotReadyAndComeBackWithIt) {
  Register("n1");
  store::LeaseId n2 = Register("n2");
  PutPod("n2", "cni", true, false);
  PutPod("n2", "replica", true, true);
  PutPod("n2", "starting", false, true);
  PutPod("n1", "mine", true, false);
  LostNodes watcher(store_.get(), "n1");
  ASSERT_OK(watcher.Start());
  absl::SleepFor(absl::Milliseconds(100));
  EXPECT_TRUE(GetPod("n2", "cni").ready);  // nothing happens to live nodes

  ASSERT_OK(store_->RevokeLease(n2));  // what an expired lease does
  ASSERT_TRUE(WaitFor([&] { return watcher.marked() == 2; })) << watcher.marked();
  for (const char* id : {"cni", "replica"}) {
    model::Pod pod = GetPod("n2", id);
    EXPECT_FALSE(pod.ready) << id;
    EXPECT_TRUE(pod.node_lost) << id;
  }
  EXPECT_FALSE(GetPod("n2", "starting").node_lost);  // was not ready: left alone
  EXPECT_TRUE(GetPod("n1", "mine").ready);

  // n2's agent comes back: its CNI pod is ready again; the replica waits for its probe.
  LostNodes n2_agent(store_.get(), "n2");
  ASSERT_OK(n2_agent.Start());
  Register("n2");
  ASSERT_TRUE(WaitFor([&] { return n2_agent.reclaimed() == 2; })) << n2_agent.reclaimed();
  EXPECT_TRUE(GetPod("n2", "cni").ready);
  EXPECT_FALSE(GetPod("n2", "cni").node_lost);
  EXPECT_FALSE(GetPod("n2", "replica").ready);
  EXPECT_FALSE(GetPod("n2", "replica").node_lost);
  EXPECT_EQ(watcher.marked(), 2u);  // n2 is live again: not marked twice
}

TEST_F(LostNodesTest, AnAgentReclaimsItsOwnPodsAtItsStart) {
  PutPod("n3", "cni", false, false);
  model::Pod lost = GetPod("n3", "cni");
  lost.node_lost = true;
  ASSERT_OK(store_->Put("/loom/pods/n3/cni", model::PodToJson(lost).dump()).status());
  Register("n3");
  LostNodes agent(store_.get(), "n3");
  ASSERT_OK(agent.Start());
  ASSERT_TRUE(WaitFor([&] { return GetPod("n3", "cni").ready; }));
  EXPECT_FALSE(GetPod("n3", "cni").node_lost);
}

}  // namespace
}  // namespace loom::agent
