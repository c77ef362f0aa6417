// Apps in the store: apply outcomes, revisions only on template changes, scale,
// history pruning, undo, delete (with the history), against the embedded store.
#include "agent/apps/app_registry.h"

#include "common/strings.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_store.h"
#include "tests/testing/yaml_manifest.h"

namespace loom::agent {
namespace {

using ::loom::testing::StatusIs;
using ::testing::HasSubstr;

Json Manifest(const std::string& image, int replicas = 3) {
  return testing::FirstYamlDocument(StrCat("kind: App\nmetadata: {name: web, labels: {app: web}}\n",
                                        "spec:\n  replicas: ", replicas, "\n  image: ", image,
                                        "\n  secretFiles: [{path: /run/token, content: s3cret}]\n"));
}

class AppRegistryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_OK(store_.Open("loom-apps"));
    registry_ = std::make_unique<AppRegistry>(store_.get());
  }
  testing::TempStore store_;
  std::unique_ptr<AppRegistry> registry_;
};

TEST_F(AppRegistryTest, RevisionsFollowTheTemplateNotTheReplicaCount) {
  ASSERT_OK_AND_ASSIGN(AppApplyResult a, registry_->Apply(Manifest("web:1")));
  EXPECT_EQ(a.outcome, AppApplyOutcome::kCreated);
  EXPECT_EQ(a.stored.revision, 1);
  ASSERT_OK_AND_ASSIGN(AppApplyResult same, registry_->Apply(Manifest("web:1")));
  EXPECT_EQ(same.outcome, AppApplyOutcome::kUnchanged);
  ASSERT_OK_AND_ASSIGN(AppApplyResult scaled, registry_->Apply(Manifest("web:1", 5)));
  EXPECT_EQ(scaled.outcome, AppApplyOutcome::kConfigured);
  EXPECT_FALSE(scaled.new_revision);
  EXPECT_EQ(scaled.stored.revision, 1);
  ASSERT_OK_AND_ASSIGN(AppApplyResult v2, registry_->Apply(Manifest("web:2", 5)));
  EXPECT_TRUE(v2.new_revision);
  EXPECT_EQ(v2.stored.revision, 2);
  ASSERT_OK_AND_ASSIGN(StoredApp s, registry_->Scale("default", "web", 7));
  EXPECT_EQ(s.app.replicas, 7);
  EXPECT_EQ(s.revision, 2);
  EXPECT_THAT(registry_->Scale("default", "web", -1).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("spec.replicas")));
  ASSERT_OK_AND_ASSIGN(auto history, registry_->History("default", "web"));
  ASSERT_EQ(history.size(), 2u);
  EXPECT_EQ(history[0].app.image, "web:1");
  EXPECT_EQ(history[1].app.image, "web:2");
}

TEST_F(AppRegistryTest, UndoGoesBackKeepingTheReplicaCount) {
  EXPECT_THAT(registry_->Undo("default", "web").status(), StatusIs(absl::StatusCode::kNotFound));
  ASSERT_OK(registry_->Apply(Manifest("web:1")).status());
  EXPECT_THAT(registry_->Undo("default", "web").status(),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("no earlier revision")));
  ASSERT_OK(registry_->Apply(Manifest("web:bad", 4)).status());
  ASSERT_OK_AND_ASSIGN(AppApplyResult undone, registry_->Undo("default", "web"));
  EXPECT_EQ(undone.stored.app.image, "web:1");
  EXPECT_EQ(undone.stored.app.replicas, 4);
  EXPECT_EQ(undone.stored.revision, 3);
  ASSERT_OK_AND_ASSIGN(AppApplyResult to2, registry_->Undo("default", "web", 2));
  EXPECT_EQ(to2.stored.app.image, "web:bad");
  EXPECT_THAT(registry_->Undo("default", "web", 99).status(), StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(AppRegistryTest, HistoryIsPrunedAndDeletedWithTheApp) {
  for (int i = 1; i <= kHistoryLimit + 3; ++i) {
    ASSERT_OK(registry_->Apply(Manifest(StrCat("web:", i))).status());
  }
  ASSERT_OK_AND_ASSIGN(auto history, registry_->History("default", "web"));
  ASSERT_EQ(history.size(), static_cast<size_t>(kHistoryLimit));
  EXPECT_EQ(history.front().revision, 4);
  EXPECT_EQ(history.back().revision, kHistoryLimit + 3);
  ASSERT_OK(registry_->Delete("default", "web").status());
  ASSERT_OK_AND_ASSIGN(store::RangeResult left, store_->Range("/loom/app"));
  EXPECT_TRUE(left.kvs.empty());
  EXPECT_THAT(registry_->Delete("default", "web").status(), StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(AppRegistryTest, SecretsAreStoredButHiddenWhenServed) {
  ASSERT_OK(registry_->Apply(Manifest("web:1")).status());
  ASSERT_OK_AND_ASSIGN(StoredApp s, registry_->Get("default", "web"));
  EXPECT_EQ(s.app.secret_files[0].content, "s3cret");
  EXPECT_THAT(s.ToJson(false).dump(), ::testing::Not(HasSubstr("s3cret")));
  EXPECT_THAT(s.ToJson(true).dump(), HasSubstr("s3cret"));
  ASSERT_OK_AND_ASSIGN(auto list, registry_->List());
  EXPECT_EQ(list.size(), 1u);
  ASSERT_OK_AND_ASSIGN(auto other_ns, registry_->List("other"));
  EXPECT_TRUE(other_ns.empty());
  EXPECT_THAT(registry_->Apply(Manifest("")).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("spec.image")));
}

}  // namespace
}  // namespace loom::agent
