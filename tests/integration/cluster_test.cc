// The cluster-in-one-machine harness, end to end: etcd plus three loomd in node
// namespaces; every node registers; a killed node's key goes when its lease expires.
#include "tests/testing/cluster.h"

#include <signal.h>

#include <algorithm>
#include <thread>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/command.h"
#include "tests/testing/privileged.h"
#include "tests/testing/status_matchers.h"

namespace loom::testing {
namespace {

using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::UnorderedElementsAre;

// Polls `keys under prefix` until `done(keys)` or the timeout; returns the last keys.
template <typename Pred>
std::vector<std::string> WaitForKeys(Cluster& c, const std::string& prefix, Pred done,
                                     absl::Duration timeout) {
  absl::Time deadline = absl::Now() + timeout;
  std::vector<std::string> keys;
  while (true) {
    auto k = c.StoreKeys(prefix);
    if (k.ok()) keys = *k;
    if ((k.ok() && done(keys)) || absl::Now() > deadline) return keys;
    absl::SleepFor(absl::Milliseconds(200));
  }
}

std::vector<std::string> NamespacesWithPrefix(const std::string& prefix) {
  std::vector<std::string> found;
  auto out = RunCommand({"ip", "netns", "list"});
  if (!out.ok()) return found;
  size_t pos = 0;
  while ((pos = out->out.find(prefix, pos)) != std::string::npos) {
    size_t end = out->out.find_first_of(" \n", pos);
    found.push_back(out->out.substr(pos, end - pos));
    pos = end;
  }
  return found;
}

class ClusterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    LOOM_REQUIRE_ROOT();
    LOOM_REQUIRE(access("/usr/bin/etcd", X_OK) == 0, "etcd-server (/usr/bin/etcd)");
    LOOM_REQUIRE(access("/usr/bin/etcdctl", X_OK) == 0, "etcd-client (/usr/bin/etcdctl)");
  }
};

TEST_F(ClusterTest, ThreeNodesRegisterAndAKilledNodeExpires) {
  ClusterOptions options;
  options.nodes = 3;
  options.node_lease_ttl = absl::Seconds(2);
  ASSERT_OK_AND_ASSIGN(auto cluster, Cluster::Create(options));

  auto keys = WaitForKeys(
      *cluster, "/loom/nodes/", [](const auto& k) { return k.size() == 3; }, absl::Seconds(10));
  EXPECT_THAT(keys, UnorderedElementsAre("/loom/nodes/node1", "/loom/nodes/node2",
                                         "/loom/nodes/node3"));

  // Each node's loomd reports itself through its own API socket.
  for (int i = 0; i < cluster->size(); ++i) {
    ASSERT_OK_AND_ASSIGN(std::string status,
                         RunChecked({std::string(LOOM_BIN_DIR) + "/loomctl",
                                     "--socket=" + cluster->node(i).api_socket, "status", "-o",
                                     "json"}));
    EXPECT_THAT(status, HasSubstr(cluster->node(i).name));
  }

  ASSERT_OK(cluster->StopLoomd(1, SIGKILL));
  keys = WaitForKeys(
      *cluster, "/loom/nodes/",
      [](const auto& k) {
        return std::find(k.begin(), k.end(), "/loom/nodes/node2") == k.end();
      },
      absl::Seconds(10));
  EXPECT_THAT(keys, UnorderedElementsAre("/loom/nodes/node1", "/loom/nodes/node3"))
      << "node2's key should go once its 2s lease expires";

  // The node comes back under its old name.
  ASSERT_OK(cluster->StartLoomd(1));
  keys = WaitForKeys(
      *cluster, "/loom/nodes/", [](const auto& k) { return k.size() == 3; }, absl::Seconds(10));
  EXPECT_THAT(keys, Contains("/loom/nodes/node2"));
}

TEST_F(ClusterTest, TeardownLeavesNoNamespaceOrProcess) {
  std::string prefix;
  pid_t loomd_pid = 0;
  {
    ClusterOptions options;
    options.nodes = 2;
    ASSERT_OK_AND_ASSIGN(auto cluster, Cluster::Create(options));
    prefix = cluster->prefix();
    loomd_pid = cluster->node(0).loomd->pid();
    EXPECT_THAT(NamespacesWithPrefix(prefix), ::testing::SizeIs(4));  // fabric, etcd, 2 nodes
  }
  EXPECT_THAT(NamespacesWithPrefix(prefix), ::testing::IsEmpty());
  EXPECT_NE(kill(loomd_pid, 0), 0) << "loomd still running after teardown";
}

}  // namespace
}  // namespace loom::testing
