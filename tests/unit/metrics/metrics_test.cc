#include "common/metrics/metrics.h"

#include <cmath>
#include <limits>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace loom::metrics {
namespace {

using ::testing::HasSubstr;

TEST(MetricsTest, RendersCounterWithLabelsInExactTextFormat) {
  Registry registry;
  auto& requests =
      registry.AddCounter("loom_store_requests_total", "Store requests.", {"op", "result"});
  requests.WithLabels({"put", "ok"}).Increment();
  requests.WithLabels({"get", "ok"}).Increment(2);
  requests.WithLabels({"get", "not_found"}).Increment();
  EXPECT_EQ(registry.Render(),
            "# HELP loom_store_requests_total Store requests.\n"
            "# TYPE loom_store_requests_total counter\n"
            "loom_store_requests_total{op=\"get\",result=\"not_found\"} 1\n"
            "loom_store_requests_total{op=\"get\",result=\"ok\"} 2\n"
            "loom_store_requests_total{op=\"put\",result=\"ok\"} 1\n");
}

TEST(MetricsTest, UnlabelledFamilyRendersZeroFromTheStart) {
  Registry registry;
  registry.AddCounter("loom_node_lease_renewals_total", "Lease renewals.");
  registry.AddGauge("process_start_time_seconds", "Start time.").Get().Set(1764391200.5);
  EXPECT_EQ(registry.Render(),
            "# HELP loom_node_lease_renewals_total Lease renewals.\n"
            "# TYPE loom_node_lease_renewals_total counter\n"
            "loom_node_lease_renewals_total 0\n"
            "# HELP process_start_time_seconds Start time.\n"
            "# TYPE process_start_time_seconds gauge\n"
            "process_start_time_seconds 1764391200.5\n");
}

TEST(MetricsTest, EscapesLabelValuesAndHelp) {
  Registry registry;
  registry.AddGauge("loom_build_info", "Build \\ info\nsecond line", {"version"})
      .WithLabels({"a\"b\\c\nd"})
      .Set(1);
  EXPECT_EQ(registry.Render(),
            "# HELP loom_build_info Build \\\\ info\\nsecond line\n"
            "# TYPE loom_build_info gauge\n"
            "loom_build_info{version=\"a\\\"b\\\\c\\nd\"} 1\n");
}

TEST(MetricsTest, HistogramHasCumulativeBucketsSumAndCount) {
  Registry registry;
  auto& latency = registry.AddHistogram("loom_http_request_duration_seconds", "Latency.",
                                        {"path"}, {0.1, 0.5, 1});
  auto& h = latency.WithLabels({"/v1/status"});
  h.Observe(0.05);
  h.Observe(0.1);  // on the bound: counts in le="0.1"
  h.Observe(0.7);
  h.Observe(3);
  EXPECT_EQ(registry.Render(),
            "# HELP loom_http_request_duration_seconds Latency.\n"
            "# TYPE loom_http_request_duration_seconds histogram\n"
            "loom_http_request_duration_seconds_bucket{path=\"/v1/status\",le=\"0.1\"} 2\n"
            "loom_http_request_duration_seconds_bucket{path=\"/v1/status\",le=\"0.5\"} 2\n"
            "loom_http_request_duration_seconds_bucket{path=\"/v1/status\",le=\"1\"} 3\n"
            "loom_http_request_duration_seconds_bucket{path=\"/v1/status\",le=\"+Inf\"} 4\n"
            "loom_http_request_duration_seconds_sum{path=\"/v1/status\"} 3.85\n"
            "loom_http_request_duration_seconds_count{path=\"/v1/status\"} 4\n");
}

TEST(MetricsTest, HistogramWithoutLabels) {
  Registry registry;
  registry.AddHistogram("h", "H.", {}, {1}).Get().Observe(2);
  EXPECT_EQ(registry.Render(),
            "# HELP h H.\n# TYPE h histogram\n"
            "h_bucket{le=\"1\"} 0\nh_bucket{le=\"+Inf\"} 1\nh_sum 2\nh_count 1\n");
}

TEST(MetricsTest, FormatsSpecialValues) {
  EXPECT_EQ(FormatValue(0), "0");
  EXPECT_EQ(FormatValue(-3), "-3");
  EXPECT_EQ(FormatValue(0.25), "0.25");
  EXPECT_EQ(FormatValue(0.1), "0.1");
  EXPECT_EQ(FormatValue(1e20), "1e+20");
  EXPECT_EQ(FormatValue(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(FormatValue(-std::numeric_limits<double>::infinity()), "-Inf");
  EXPECT_EQ(FormatValue(std::nan("")), "NaN");
}

TEST(MetricsTest, CounterIgnoresNegativeIncrements) {
  Counter c;
  c.Increment(2);
  c.Increment(-1);
  EXPECT_EQ(c.Value(), 2);
}

TEST(MetricsTest, RegisteringTwiceReturnsTheSameFamily) {
  Registry registry;
  auto& a = registry.AddCounter("c_total", "C.", {"x"});
  auto& b = registry.AddCounter("c_total", "other help", {"x"});
  EXPECT_EQ(&a, &b);
}

TEST(MetricsTest, ConcurrentIncrementsAreAllCounted) {
  Registry registry;
  auto& family = registry.AddCounter("c_total", "C.", {"t"});
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10000; ++i) family.WithLabels({"x"}).Increment();
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_THAT(registry.Render(), HasSubstr("c_total{t=\"x\"} 40000\n"));
}

}  // namespace
}  // namespace loom::metrics
