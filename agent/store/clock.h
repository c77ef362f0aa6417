// Time source for lease expiry, injectable so tests can move time by hand.
#pragma once

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace loom::store {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual absl::Time Now() = 0;
};

class RealClock : public Clock {
 public:
  absl::Time Now() override { return absl::Now(); }
};

}  // namespace loom::store
