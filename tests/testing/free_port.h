// A loopback port that is free for both UDP and TCP right now (for servers such as
// knotd that cannot be told to pick one themselves).
#pragma once

#include <string>

#include "absl/status/statusor.h"

namespace loom::testing {

absl::StatusOr<int> PickFreePort(const std::string& ip = "127.0.0.1");

}  // namespace loom::testing
