#include "cni/plugin/ipam_exec.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <vector>

#include "absl/strings/str_split.h"
#include "cni/protocol/error.h"
#include "common/json.h"
#include "common/status.h"
#include "common/strings.h"

namespace loom::cni {
namespace {

absl::StatusOr<std::string> FindInPath(std::string_view type, std::string_view path) {
  if (type.find('/') != std::string_view::npos) {
    return CniError(kErrInvalidConfig, StrCat("ipam.type \"", type, "\" must be a plain name"));
  }
  for (absl::string_view dir : absl::StrSplit(ToAbsl(path), ':', absl::SkipEmpty())) {
    std::string candidate = StrCat(std::string_view(dir.data(), dir.size()), "/", type);
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return CniError(kErrInvalidConfig,
                  StrCat("IPAM plugin \"", type, "\" not found in CNI_PATH ", path));
}

}  // namespace

absl::StatusOr<std::string> ExecPlugin(std::string_view type, std::string_view command,
                                       const EnvMap& env, std::string_view stdin_text) {
  auto path_it = env.find("CNI_PATH");
  ASSIGN_OR_RETURN(std::string binary,
                   FindInPath(type, path_it == env.end() ? "" : path_it->second));
  std::vector<std::string> env_strings;
  for (const auto& [k, v] : env) {
    if (k != "CNI_COMMAND") env_strings.push_back(StrCat(k, "=", v));
  }
  env_strings.push_back(StrCat("CNI_COMMAND=", command));
  std::vector<char*> envp;
  for (std::string& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);

  int in[2], out[2];
  if (pipe2(in, O_CLOEXEC) != 0) return ErrnoToStatus(errno, "pipe");
  if (pipe2(out, O_CLOEXEC) != 0) {
    close(in[0]);
    close(in[1]);
    return ErrnoToStatus(errno, "pipe");
  }
  pid_t pid = fork();
  if (pid < 0) return ErrnoToStatus(errno, "fork");
  if (pid == 0) {
    dup2(in[0], 0);
    dup2(out[1], 1);
    char* argv[] = {binary.data(), nullptr};
    execve(binary.c_str(), argv, envp.data());
    _exit(127);
  }
  close(in[0]);
  close(out[1]);
  // Configs are small; write all, then read to EOF. SIGPIPE is ignored by main.
  size_t off = 0;
  while (off < stdin_text.size()) {
    ssize_t n = write(in[1], stdin_text.data() + off, stdin_text.size() - off);
    if (n <= 0) break;
    off += n;
  }
  close(in[1]);
  std::string output;
  char buf[4096];
  for (;;) {
    ssize_t n = read(out[0], buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    output.append(buf, n);
  }
  close(out[0]);
  int wstatus = 0;
  while (waitpid(pid, &wstatus, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0) return output;
  absl::StatusOr<Json> err = ParseJson(output);
  if (err.ok() && err->is_object() && err->contains("code")) {
    int code = err->value("code", kErrInternal);
    return CniError(code, StrCat(type, " ", command, ": ", err->value("msg", std::string())),
                    err->value("details", std::string()));
  }
  return CniError(kErrInternal, StrCat(type, " ", command, " failed (status ", wstatus, "): ", output));
}

}  // namespace loom::cni
