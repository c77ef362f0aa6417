// A child process for tests: started with fork/exec, stdout and stderr to a log
// file (or inherited), killed with SIGKILL and reaped by the destructor if it is
// still running, so a failing test leaves nothing behind. The child also gets
// SIGKILL if the thread that started it exits (PR_SET_PDEATHSIG), so start
// long-lived children from the test's main thread.
#pragma once

#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace loom::testing {

struct SubprocessOptions {
  std::string log_path;                 // stdout and stderr (appended); empty: inherited
  std::vector<std::string> extra_env;   // "NAME=value", on top of this process's environment
};

class Subprocess {
 public:
  // argv[0] is looked up in PATH. Fails (NotFound, ...) when it cannot be executed.
  static absl::StatusOr<std::unique_ptr<Subprocess>> Start(std::vector<std::string> argv,
                                                           SubprocessOptions options = {});
  ~Subprocess();
  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;

  pid_t pid() const { return pid_; }
  // OK when already exited.
  absl::Status Signal(int signal);
  // The exit code, or 128 + signal number when killed; DeadlineExceeded on timeout.
  absl::StatusOr<int> Wait(absl::Duration timeout);
  bool running();

 private:
  explicit Subprocess(pid_t pid) : pid_(pid) {}
  // Reaps without blocking; true once the child is gone.
  bool Poll();

  pid_t pid_;
  std::optional<int> exit_status_;
};

}  // namespace loom::testing
