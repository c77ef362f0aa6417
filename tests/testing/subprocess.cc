#include "tests/testing/subprocess.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/status.h"
#include "common/strings.h"

extern char** environ;

namespace loom::testing {

absl::StatusOr<std::unique_ptr<Subprocess>> Subprocess::Start(std::vector<std::string> argv,
                                                              SubprocessOptions options) {
  if (argv.empty()) return absl::InvalidArgumentError("Subprocess::Start: empty argv");
  std::vector<char*> args;
  for (std::string& a : argv) args.push_back(a.data());
  args.push_back(nullptr);
  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e) env_strings.emplace_back(*e);
  for (const std::string& e : options.extra_env) env_strings.push_back(e);
  std::vector<char*> env;
  for (std::string& e : env_strings) env.push_back(e.data());
  env.push_back(nullptr);

  int log_fd = -1;
  if (!options.log_path.empty()) {
    log_fd = ::open(options.log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (log_fd < 0) return ErrnoToStatus(errno, StrCat("open ", options.log_path));
  }
  // The child reports an exec failure's errno through this close-on-exec pipe.
  int err_pipe[2];
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) {
    int err = errno;
    if (log_fd >= 0) ::close(log_fd);
    return ErrnoToStatus(err, "pipe");
  }
  const pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) {
    int err = errno;
    if (log_fd >= 0) ::close(log_fd);
    ::close(err_pipe[0]);
    ::close(err_pipe[1]);
    return ErrnoToStatus(err, "fork");
  }
  if (pid == 0) {
    // Die with the test process, whatever happens to it.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
    if (log_fd >= 0) {
      ::dup2(log_fd, STDOUT_FILENO);
      ::dup2(log_fd, STDERR_FILENO);
    }
    int devnull = ::open("/dev/null", O_RDONLY);
    if (devnull >= 0) ::dup2(devnull, STDIN_FILENO);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::execvpe(args[0], args.data(), env.data());
    int err = errno;
    ssize_t ignored = ::write(err_pipe[1], &err, sizeof(err));
    (void)ignored;
    ::_exit(127);
  }
  if (log_fd >= 0) ::close(log_fd);
  ::close(err_pipe[1]);
  int child_errno = 0;
  ssize_t n;
  do {
    n = ::read(err_pipe[0], &child_errno, sizeof(child_errno));
  } while (n < 0 && errno == EINTR);
  ::close(err_pipe[0]);
  std::unique_ptr<Subprocess> proc(new Subprocess(pid));
  if (n == sizeof(child_errno)) {
    proc->Wait(absl::Seconds(5)).IgnoreError();
    return ErrnoToStatus(child_errno, StrCat("exec ", argv[0]));
  }
  return proc;
}

Subprocess::~Subprocess() {
  if (exit_status_.has_value()) return;
  ::kill(pid_, SIGKILL);
  int status;
  while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
}

bool Subprocess::Poll() {
  if (exit_status_.has_value()) return true;
  int status = 0;
  pid_t r = ::waitpid(pid_, &status, WNOHANG);
  if (r == pid_) {
    exit_status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return true;
  }
  if (r < 0 && errno == ECHILD) {
    exit_status_ = -1;
    return true;
  }
  return false;
}

bool Subprocess::running() { return !Poll(); }

absl::Status Subprocess::Signal(int signal) {
  if (Poll()) return absl::OkStatus();
  if (::kill(pid_, signal) != 0 && errno != ESRCH) {
    return ErrnoToStatus(errno, StrCat("kill ", pid_));
  }
  return absl::OkStatus();
}

absl::StatusOr<int> Subprocess::Wait(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (!Poll()) {
    if (absl::Now() >= deadline) {
      return absl::DeadlineExceededError(
          StrCat("process ", pid_, " still running after ", absl::FormatDuration(timeout)));
    }
    absl::SleepFor(absl::Milliseconds(5));
  }
  return *exit_status_;
}

}  // namespace loom::testing
