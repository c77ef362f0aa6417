// Node health in the store: written on the node's lease only when it changed, gone
// with the lease, and read back for every live node.
#include "agent/daemon/node_health.h"

#include <stdlib.h>

#include <filesystem>

#include "agent/daemon/node_registrar.h"
#include "common/strings.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace loom::agent {
namespace {

TEST(NodeHealthTest, PublishedOnChangeOnTheLeaseAndListedForLiveNodes) {
  char tmpl[] = "/tmp/loom-node-health-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  std::string dir = tmpl;
  {
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<store::Store> store, store::OpenStore("embedded", dir));
    ASSERT_OK_AND_ASSIGN(store::LeaseId lease, store->GrantLease(absl::Hours(1)));
    ASSERT_OK(store->Put(NodeKey("n1"), R"({"name":"n1"})", lease).status());
    Json components = {{"dns", ComponentHealth("ok", "169.254.20.10:53")}};
    NodeHealthPublisher pub(store.get(), "n1", [&] { return components; }, [&] { return lease; });
    ASSERT_OK(pub.PublishOnce());
    ASSERT_OK_AND_ASSIGN(std::optional<store::KeyValue> first, store->Get("/loom/nodestatus/n1"));
    ASSERT_TRUE(first.has_value());
    EXPECT_EQ(first->lease, lease);
    ASSERT_OK(pub.PublishOnce());  // unchanged: not written again
    ASSERT_OK_AND_ASSIGN(std::optional<store::KeyValue> same, store->Get("/loom/nodestatus/n1"));
    EXPECT_EQ(same->mod_revision, first->mod_revision);
    components["dns"] = ComponentHealth("degraded", "no healthy upstream");
    ASSERT_OK(pub.PublishOnce());
    ASSERT_OK_AND_ASSIGN(std::optional<store::KeyValue> changed, store->Get("/loom/nodestatus/n1"));
    EXPECT_GT(changed->mod_revision, first->mod_revision);

    ASSERT_OK_AND_ASSIGN(Json nodes, ClusterHealth(store.get()));
    ASSERT_EQ(nodes.size(), 1u);
    EXPECT_EQ(nodes[0]["node"], "n1");
    EXPECT_EQ(nodes[0]["components"]["dns"]["state"], "degraded");
    EXPECT_FALSE(nodes[0].value("since", "").empty());

    ASSERT_OK(store->RevokeLease(lease));  // the node is lost: so is its health
    ASSERT_OK_AND_ASSIGN(std::optional<store::KeyValue> gone, store->Get("/loom/nodestatus/n1"));
    EXPECT_FALSE(gone.has_value());
    ASSERT_OK_AND_ASSIGN(nodes, ClusterHealth(store.get()));
    EXPECT_TRUE(nodes.empty());
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace loom::agent
