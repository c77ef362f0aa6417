// Runs a short command to completion and captures its output, for test fixtures
// that drive iproute2, etcdctl and the like. Never goes through a shell.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace loom::testing {

struct CommandResult {
  int exit_code = -1;  // -1 when killed by a signal or the timeout
  std::string out;     // stdout
  std::string err;     // stderr
};

// Runs argv[0] (looked up in PATH) with the given arguments. Fails only when the
// command cannot be started or outlives `timeout` (it is then killed).
absl::StatusOr<CommandResult> RunCommand(const std::vector<std::string>& argv,
                                         absl::Duration timeout = absl::Seconds(30));

// Like RunCommand, but a non-zero exit is an error carrying the command line and stderr.
absl::StatusOr<std::string> RunChecked(const std::vector<std::string>& argv,
                                       absl::Duration timeout = absl::Seconds(30));

}  // namespace loom::testing
