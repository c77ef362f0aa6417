// Helpers for store tests: a watch callback that records what it receives.
#pragma once

#include <condition_variable>
#include <functional>
#include <mutex>
#include <vector>

#include "absl/time/time.h"
#include "agent/store/store.h"

namespace loom::store {

class WatchRecorder {
 public:
  WatchCallback Callback() {
    return [this](const WatchBatch& batch) {
      std::lock_guard<std::mutex> lock(mu_);
      batches_.push_back(batch);
      cv_.notify_all();
    };
  }

  std::vector<WatchBatch> batches() {
    std::lock_guard<std::mutex> lock(mu_);
    return batches_;
  }

  // Every event after the last resync, in delivery order.
  std::vector<Event> events() {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<Event> out;
    for (const WatchBatch& b : batches_) out.insert(out.end(), b.events.begin(), b.events.end());
    return out;
  }

  size_t event_count() { return events().size(); }

  // Waits until `done(batches)` holds; false on timeout.
  bool WaitFor(const std::function<bool(const std::vector<WatchBatch>&)>& done,
               absl::Duration timeout = absl::Seconds(10)) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, absl::ToChronoMilliseconds(timeout),
                        [&] { return done(batches_); });
  }

  // The first batch, once there is one (an empty batch on timeout).
  WatchBatch WaitForFirstBatch(absl::Duration timeout = absl::Seconds(10)) {
    if (!WaitFor([](const auto& b) { return !b.empty(); }, timeout)) return {};
    return batches()[0];
  }

  bool WaitForEvents(size_t n, absl::Duration timeout = absl::Seconds(10)) {
    return WaitFor(
        [n](const std::vector<WatchBatch>& batches) {
          size_t count = 0;
          for (const WatchBatch& b : batches) count += b.events.size();
          return count >= n;
        },
        timeout);
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<WatchBatch> batches_;
};

}  // namespace loom::store
