#include "common/metrics/metrics.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "common/log.h"
#include "common/strings.h"

namespace loom::metrics {

void Counter::Increment(double by) {
  if (!(by >= 0)) return;
  value_.fetch_add(by);
}

Histogram::Histogram(std::vector<double> bounds)
    : bounds_([&] {
        std::sort(bounds.begin(), bounds.end());
        bounds.erase(std::unique(bounds.begin(), bounds.end()), bounds.end());
        // +Inf is always the last bucket and must not appear twice.
        if (!bounds.empty() && std::isinf(bounds.back())) bounds.pop_back();
        return bounds;
      }()),
      counts_(bounds_.size() + 1, 0) {}

void Histogram::Observe(double value) {
  size_t i = std::lower_bound(bounds_.begin(), bounds_.end(), value) - bounds_.begin();
  std::lock_guard<std::mutex> lock(mu_);
  counts_[i]++;
  sum_ += value;
  count_++;
}

Histogram::Snapshot Histogram::Take() const {
  Snapshot s;
  s.bounds = bounds_;
  std::lock_guard<std::mutex> lock(mu_);
  uint64_t running = 0;
  for (uint64_t c : counts_) {
    running += c;
    s.cumulative.push_back(running);
  }
  s.sum = sum_;
  s.count = count_;
  return s;
}

std::vector<double> DefaultBuckets() {
  return {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
}

std::string FormatValue(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  if (value == std::floor(value) && std::fabs(value) < 1e15) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.0f", value);
    return buf;
  }
  char buf[32];
  for (int precision = 6; precision <= 17; ++precision) {
    std::snprintf(buf, sizeof buf, "%.*g", precision, value);
    if (std::strtod(buf, nullptr) == value) break;
  }
  return buf;
}

std::string EscapeLabelValue(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    switch (c) {
      case '\\': out += "\\\\"; break;
      case '"': out += "\\\""; break;
      case '\n': out += "\\n"; break;
      default: out += c;
    }
  }
  return out;
}

namespace {

std::string EscapeHelp(std::string_view help) {
  std::string out;
  for (char c : help) {
    if (c == '\\') out += "\\\\";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

// `name1="v1",name2="v2"` (no braces).
std::string LabelPairs(const std::vector<std::string>& names,
                       const std::vector<std::string>& values) {
  std::string out;
  for (size_t i = 0; i < names.size(); ++i) {
    if (i > 0) out += ',';
    StrAppend(&out, names[i], "=\"", EscapeLabelValue(values[i]), "\"");
  }
  return out;
}

std::string Braced(const std::string& pairs) { return pairs.empty() ? "" : "{" + pairs + "}"; }

bool ValidName(std::string_view name, bool label) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
              (!label && c == ':') || (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

}  // namespace

void FamilyBase::Render(std::string& out) const {
  StrAppend(&out, "# HELP ", name_, " ", EscapeHelp(help_), "\n");
  StrAppend(&out, "# TYPE ", name_, " ", type_, "\n");
  std::vector<std::pair<std::vector<std::string>, std::shared_ptr<void>>> children;
  {
    std::lock_guard<std::mutex> lock(mu_);
    children.assign(children_.begin(), children_.end());
  }
  for (const auto& [values, child] : children) {
    RenderChild(out, LabelPairs(label_names_, values), child.get());
  }
}

template <>
std::shared_ptr<void> Family<Counter>::Make() const {
  return std::make_shared<Counter>();
}
template <>
std::shared_ptr<void> Family<Gauge>::Make() const {
  return std::make_shared<Gauge>();
}
template <>
std::shared_ptr<void> Family<Histogram>::Make() const {
  return std::make_shared<Histogram>(bounds_);
}

template <>
void Family<Counter>::RenderChild(std::string& out, const std::string& labels,
                                  const void* child) const {
  StrAppend(&out, name_, Braced(labels), " ",
            FormatValue(static_cast<const Counter*>(child)->Value()), "\n");
}
template <>
void Family<Gauge>::RenderChild(std::string& out, const std::string& labels,
                                const void* child) const {
  StrAppend(&out, name_, Braced(labels), " ",
            FormatValue(static_cast<const Gauge*>(child)->Value()), "\n");
}
template <>
void Family<Histogram>::RenderChild(std::string& out, const std::string& labels,
                                    const void* child) const {
  Histogram::Snapshot s = static_cast<const Histogram*>(child)->Take();
  std::string sep = labels.empty() ? "" : ",";
  for (size_t i = 0; i <= s.bounds.size(); ++i) {
    std::string le = i < s.bounds.size() ? FormatValue(s.bounds[i]) : "+Inf";
    StrAppend(&out, name_, "_bucket{", labels, sep, "le=\"", le, "\"} ", s.cumulative[i], "\n");
  }
  StrAppend(&out, name_, "_sum", Braced(labels), " ", FormatValue(s.sum), "\n");
  StrAppend(&out, name_, "_count", Braced(labels), " ", s.count, "\n");
}

template <class Metric>
Family<Metric>& Registry::Add(std::string_view name, std::string_view help,
                              std::string_view type, std::vector<std::string> label_names,
                              std::vector<double> bounds) {
  if (!ValidName(name, false)) LOG_ERROR("invalid metric name", {"name", name});
  for (const std::string& l : label_names) {
    if (!ValidName(l, true) || l == "le") {
      LOG_ERROR("invalid metric label name", {"name", name}, {"label", l});
    }
  }
  std::lock_guard<std::mutex> lock(mu_);
  auto it = families_.find(name);
  if (it != families_.end()) {
    auto* existing = dynamic_cast<Family<Metric>*>(it->second.get());
    if (existing != nullptr) return *existing;
    // A programming error: the same name with another type. Keep the first and hand
    // back a detached family so the caller still works.
    LOG_ERROR("metric registered twice with different types", {"name", name});
    static auto* detached = new std::vector<std::unique_ptr<FamilyBase>>();
    detached->push_back(std::make_unique<Family<Metric>>(std::string(name), std::string(help),
                                                         std::string(type), label_names));
    return *static_cast<Family<Metric>*>(detached->back().get());
  }
  auto family = std::make_unique<Family<Metric>>(std::string(name), std::string(help),
                                                 std::string(type), std::move(label_names));
  family->bounds_ = std::move(bounds);
  Family<Metric>& ref = *family;
  bool unlabelled = ref.label_names_.empty();
  families_.emplace(std::string(name), std::move(family));
  if (unlabelled) ref.Get();
  return ref;
}

Family<Counter>& Registry::AddCounter(std::string_view name, std::string_view help,
                                      std::vector<std::string> label_names) {
  return Add<Counter>(name, help, "counter", std::move(label_names), {});
}

Family<Gauge>& Registry::AddGauge(std::string_view name, std::string_view help,
                                  std::vector<std::string> label_names) {
  return Add<Gauge>(name, help, "gauge", std::move(label_names), {});
}

Family<Histogram>& Registry::AddHistogram(std::string_view name, std::string_view help,
                                          std::vector<std::string> label_names,
                                          std::vector<double> bounds) {
  return Add<Histogram>(name, help, "histogram", std::move(label_names), std::move(bounds));
}

std::string Registry::Render() const {
  std::string out;
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [name, family] : families_) family->Render(out);
  return out;
}

}  // namespace loom::metrics
