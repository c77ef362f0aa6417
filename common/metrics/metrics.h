// A Prometheus registry: counters, gauges and histograms with label sets, thread-safe,
// rendered in the text exposition format (version 0.0.4).
//
//   Registry registry;
//   auto& requests = registry.AddCounter("loom_store_requests_total",
//                                        "Store requests by operation and result.",
//                                        {"op", "result"});
//   requests.WithLabels({"get", "ok"}).Increment();
//   std::string text = registry.Render();
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace loom::metrics {

inline constexpr std::string_view kContentType = "text/plain; version=0.0.4; charset=utf-8";

class Counter {
 public:
  // Negative increments are ignored: a counter only goes up.
  void Increment(double by = 1);
  double Value() const { return value_.load(); }

 private:
  std::atomic<double> value_{0};
};

class Gauge {
 public:
  void Set(double value) { value_.store(value); }
  void Add(double by) { value_.fetch_add(by); }
  double Value() const { return value_.load(); }

 private:
  std::atomic<double> value_{0};
};

class Histogram {
 public:
  // `bounds` are the upper bounds of the buckets, ascending; +Inf is implicit.
  explicit Histogram(std::vector<double> bounds);
  void Observe(double value);

  struct Snapshot {
    std::vector<double> bounds;
    std::vector<uint64_t> cumulative;  // one per bound, then +Inf
    double sum = 0;
    uint64_t count = 0;
  };
  Snapshot Take() const;

 private:
  const std::vector<double> bounds_;
  mutable std::mutex mu_;
  std::vector<uint64_t> counts_;  // per bucket, not cumulative; the last is +Inf
  double sum_ = 0;
  uint64_t count_ = 0;
};

// The default buckets of the Prometheus client libraries (seconds).
std::vector<double> DefaultBuckets();

// One metric name with its label names; each distinct set of label values is a child.
template <class Metric>
class Family;

class FamilyBase {
 public:
  FamilyBase(std::string name, std::string help, std::string type,
             std::vector<std::string> label_names)
      : name_(std::move(name)), help_(std::move(help)), type_(std::move(type)),
        label_names_(std::move(label_names)) {}
  virtual ~FamilyBase() = default;
  void Render(std::string& out) const;
  const std::string& name() const { return name_; }
  const std::string& type() const { return type_; }

 protected:
  virtual void RenderChild(std::string& out, const std::string& labels,
                           const void* child) const = 0;

  const std::string name_;
  const std::string help_;
  const std::string type_;
  const std::vector<std::string> label_names_;
  mutable std::mutex mu_;
  // label values -> child (Counter, Gauge or Histogram)
  std::map<std::vector<std::string>, std::shared_ptr<void>> children_;

  template <class Metric>
  friend class Family;
};

template <class Metric>
class Family : public FamilyBase {
 public:
  using FamilyBase::FamilyBase;

  // The child for these label values (one per label name, in order), created on first
  // use. Missing values are empty, extra values are dropped.
  Metric& WithLabels(std::vector<std::string> values) {
    values.resize(label_names_.size());
    std::lock_guard<std::mutex> lock(mu_);
    auto& child = children_[values];
    if (!child) child = Make();
    return *static_cast<Metric*>(child.get());
  }
  // The child of a family without labels.
  Metric& Get() { return WithLabels({}); }

 private:
  friend class Registry;
  std::shared_ptr<void> Make() const;
  void RenderChild(std::string& out, const std::string& labels,
                   const void* child) const override;

  std::vector<double> bounds_;  // histograms only
};

class Registry {
 public:
  // Registering a name twice returns the first family (the help and labels of the
  // first registration stay). A family without labels renders 0 from the start.
  Family<Counter>& AddCounter(std::string_view name, std::string_view help,
                              std::vector<std::string> label_names = {});
  Family<Gauge>& AddGauge(std::string_view name, std::string_view help,
                          std::vector<std::string> label_names = {});
  Family<Histogram>& AddHistogram(std::string_view name, std::string_view help,
                                  std::vector<std::string> label_names = {},
                                  std::vector<double> bounds = DefaultBuckets());

  // Every family, sorted by name, in the text exposition format.
  std::string Render() const;

 private:
  template <class Metric>
  Family<Metric>& Add(std::string_view name, std::string_view help, std::string_view type,
                      std::vector<std::string> label_names, std::vector<double> bounds);

  mutable std::mutex mu_;
  std::map<std::string, std::unique_ptr<FamilyBase>, std::less<>> families_;
};

template <>
std::shared_ptr<void> Family<Counter>::Make() const;
template <>
std::shared_ptr<void> Family<Gauge>::Make() const;
template <>
std::shared_ptr<void> Family<Histogram>::Make() const;

// Formats a sample value as Prometheus does: integers without a fraction, "+Inf",
// "-Inf", "NaN", otherwise the shortest form that reads back exactly.
std::string FormatValue(double value);
// Escapes a label value: backslash, double quote and newline.
std::string EscapeLabelValue(std::string_view value);

}  // namespace loom::metrics
