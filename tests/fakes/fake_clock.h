// A store::Clock that moves only when told to.
#pragma once

#include <mutex>

#include "absl/time/time.h"
#include "agent/store/clock.h"

namespace loom::testing {

class FakeClock : public store::Clock {
 public:
  explicit FakeClock(absl::Time start = absl::FromUnixSeconds(1'800'000'000)) : now_(start) {}
  absl::Time Now() override {
    std::lock_guard<std::mutex> lock(mu_);
    return now_;
  }
  void Advance(absl::Duration d) {
    std::lock_guard<std::mutex> lock(mu_);
    now_ += d;
  }

 private:
  std::mutex mu_;
  absl::Time now_;
};

}  // namespace loom::testing
