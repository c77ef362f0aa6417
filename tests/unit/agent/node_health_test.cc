// Node health in the store: written on the node's lease only when it changed, gone
// with the lease, and read back for every live node.
#include "agent/daemon/node_health.h"

#include "agent/daemon/node_registrar.h"
#include "common/strings.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_store.h"

namespace loom::agent {
namespace {

TEST(NodeHealthTest, PublishedOnChangeOnTheLeaseAndListedForLiveNodes) {
  testing::TempStore temp;
  ASSERT_OK(temp.Open("loom-node-health"));
  ASSERT_OK_AND_ASSIGN(store::LeaseId lease, temp->GrantLease(absl::Hours(1)));
  ASSERT_OK(temp->Put(NodeKey("n1"), R"({"name":"n1"})", lease).status());
  Json components = {{"dns", ComponentHealth("ok", "169.254.20.10:53")}};
  NodeHealthPublisher pub(temp.get(), "n1", [&] { return components; }, [&] { return lease; });
  ASSERT_OK(pub.PublishOnce());
  ASSERT_OK_AND_ASSIGN(std::optional<store::KeyValue> first, temp->Get("/loom/nodestatus/n1"));
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->lease, lease);
  ASSERT_OK(pub.PublishOnce());  // unchanged: not written again
  ASSERT_OK_AND_ASSIGN(std::optional<store::KeyValue> same, temp->Get("/loom/nodestatus/n1"));
  EXPECT_EQ(same->mod_revision, first->mod_revision);
  components["dns"] = ComponentHealth("degraded", "no healthy upstream");
  ASSERT_OK(pub.PublishOnce());
  ASSERT_OK_AND_ASSIGN(std::optional<store::KeyValue> changed, temp->Get("/loom/nodestatus/n1"));
  EXPECT_GT(changed->mod_revision, first->mod_revision);

  ASSERT_OK_AND_ASSIGN(Json nodes, ClusterHealth(temp.get()));
  ASSERT_EQ(nodes.size(), 1u);
  EXPECT_EQ(nodes[0]["node"], "n1");
  EXPECT_EQ(nodes[0]["components"]["dns"]["state"], "degraded");
  EXPECT_FALSE(nodes[0].value("since", "").empty());

  ASSERT_OK(temp->RevokeLease(lease));  // the node is lost: so is its health
  ASSERT_OK_AND_ASSIGN(std::optional<store::KeyValue> gone, temp->Get("/loom/nodestatus/n1"));
  EXPECT_FALSE(gone.has_value());
  ASSERT_OK_AND_ASSIGN(nodes, ClusterHealth(temp.get()));
  EXPECT_TRUE(nodes.empty());
}

}  // namespace
}  // namespace loom::agent
