#include "agent/daemon/instrumented_store.h"

#include "agent/store/embedded_store.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace loom::agent {
namespace {

using ::testing::HasSubstr;

TEST(InstrumentedStoreTest, CountsByOperationAndResult) {
  metrics::Registry registry;
  InstrumentedStore store(store::NewMemoryStore(), registry);
  ASSERT_OK(store.Put("/a", "1").status());
  ASSERT_OK(store.Get("/a").status());
  EXPECT_THAT(store.KeepAlive(12345), loom::testing::StatusIs(absl::StatusCode::kNotFound));
  std::string text = registry.Render();
  EXPECT_THAT(text, HasSubstr("loom_store_requests_total{op=\"put\",result=\"ok\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("loom_store_requests_total{op=\"get\",result=\"ok\"} 1\n"));
  EXPECT_THAT(text,
              HasSubstr("loom_store_requests_total{op=\"keepalive\",result=\"not_found\"} 1\n"));
}

}  // namespace
}  // namespace loom::agent
