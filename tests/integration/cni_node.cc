#include "tests/integration/cni_node.h"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/time/clock.h"
#include "common/http/client.h"
#include "common/status.h"
#include "common/strings.h"
#include "tests/testing/command.h"

namespace loom::testing {
namespace {

std::atomic<int> node_counter{0};

absl::Status Ip(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {"ip"};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunChecked(argv).status();
}

}  // namespace

absl::StatusOr<std::unique_ptr<CniNode>> CniNode::Create(std::vector<std::string> loomd_flags,
                                                         bool host_mounts) {
  std::unique_ptr<CniNode> node(new CniNode());
  node->flags_ = std::move(loomd_flags);
  node->host_mounts_ = host_mounts;
  node->name_ = StrCat("lmcni-", getpid(), "-", node_counter++);
  node->netns_ = StrCat("/run/netns/", node->name_);
  char tmpl[] = "/tmp/lmcni-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) return ErrnoToStatus(errno, "mkdtemp");
  node->dir_ = tmpl;
  node->socket_ = node->dir_ + "/run/loomd.sock";
  RETURN_IF_ERROR(Ip({"netns", "add", node->name_}));
  RETURN_IF_ERROR(Ip({"-n", node->name_, "link", "set", "lo", "up"}));
  RETURN_IF_ERROR(Ip({"-n", node->name_, "link", "add", "ul0", "type", "veth", "peer", "name", "ul1"}));
  RETURN_IF_ERROR(Ip({"-n", node->name_, "addr", "add", "198.51.100.1/24", "dev", "ul0"}));
  RETURN_IF_ERROR(Ip({"-n", node->name_, "link", "set", "ul0", "up"}));
  RETURN_IF_ERROR(Ip({"-n", node->name_, "link", "set", "ul1", "up"}));
  RETURN_IF_ERROR(node->StartLoomd());
  return node;
}

CniNode::~CniNode() {
  if (loomd_) StopLoomd(SIGKILL).IgnoreError();
  for (const std::string& c : containers_) {
    RunCommand({"ip", "netns", "del", c}).IgnoreError();
  }
  RunCommand({"ip", "netns", "del", name_}).IgnoreError();
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

pid_t CniNode::loomd_pid() const { return loomd_ ? loomd_->pid() : -1; }

absl::Status CniNode::StartLoomd() {
  std::vector<std::string> argv = {"ip", "netns", "exec", name_};
  if (host_mounts_) argv = {"nsenter", StrCat("--net=", netns_)};
  argv.insert(argv.end(), {std::string(LOOM_BIN_DIR) + "/loomd",
                                   "--node-name=node1",
                                   StrCat("--state-dir=", dir_, "/state"),
                                   StrCat("--run-dir=", dir_, "/run"),
                                   "--metrics-addr=127.0.0.1:9464",
                                   "--underlay-iface=ul0",
                                   "--node-lease-ttl=5s",
                                   StrCat("--cni-del-queue-dir=", del_queue_dir()),
                                   // DNS inside the node's namespace, never forwarding to
                                   // the machine's resolver.
                                   "--dns-upstream=none", "--overlay=false", "--lb=false"});
  argv.insert(argv.end(), flags_.begin(), flags_.end());
  ASSIGN_OR_RETURN(loomd_, Subprocess::Start(argv, {dir_ + "/loomd.log", {}}));
  http::HttpClient client = http::HttpClient::ForUnixSocket(socket_, absl::Seconds(2));
  absl::Time deadline = absl::Now() + absl::Seconds(15);
  while (absl::Now() < deadline) {
    absl::StatusOr<http::Response> r = client.Get("/v1/cni/status");
    if (r.ok() && r->status == 200) return absl::OkStatus();
    if (!loomd_->running()) break;
    absl::SleepFor(absl::Milliseconds(20));
  }
  return absl::UnavailableError(StrCat("loomd did not become ready: ", LogTail()));
}

absl::Status CniNode::StopLoomd(int signal) {
  if (!loomd_) return absl::OkStatus();
  RETURN_IF_ERROR(loomd_->Signal(signal));
  absl::Status s = loomd_->Wait(absl::Seconds(15)).status();
  loomd_.reset();
  return s;
}

absl::StatusOr<std::string> CniNode::AddContainer() {
  std::string name = StrCat(name_, "-c", container_counter_++);
  RETURN_IF_ERROR(Ip({"netns", "add", name}));
  containers_.push_back(name);
  RETURN_IF_ERROR(Ip({"-n", name, "link", "set", "lo", "up"}));
  return StrCat("/run/netns/", name);
}

absl::Status CniNode::DeleteContainer(const std::string& path) {
  std::string name = path.substr(path.rfind('/') + 1);
  RETURN_IF_ERROR(Ip({"netns", "del", name}));
  std::erase(containers_, name);
  return absl::OkStatus();
}

absl::StatusOr<PluginRun> CniNode::ExecPlugin(const std::string& binary,
                                              const std::map<std::string, std::string>& env,
                                              const std::string& stdin_text,
                                              absl::Duration timeout) {
  std::vector<std::string> env_strings = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin"};
  for (const auto& [k, v] : env) env_strings.push_back(StrCat(k, "=", v));
  std::vector<char*> envp;
  for (std::string& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::string bin = binary;
  char* argv[] = {bin.data(), nullptr};
  std::string log = dir_ + "/plugin.log";

  int ns = open(netns_.c_str(), O_RDONLY | O_CLOEXEC);
  if (ns < 0) return ErrnoToStatus(errno, netns_);
  int logfd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  int in[2], out[2];
  if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0) return ErrnoToStatus(errno, "pipe");
  // vfork, as Go's os/exec does for runtimes: a fork of this large, threaded test
  // process would add milliseconds to every plugin run. The child only makes syscalls.
  pid_t pid = vfork();
  if (pid == 0) {
    if (setns(ns, CLONE_NEWNET) != 0) _exit(126);
    dup2(in[0], 0);
    dup2(out[1], 1);
    if (logfd >= 0) dup2(logfd, 2);
    execve(bin.c_str(), argv, envp.data());
    _exit(127);
  }
  close(ns);
  if (logfd >= 0) close(logfd);
  close(in[0]);
  close(out[1]);
  if (pid < 0) return ErrnoToStatus(errno, "fork");
  size_t off = 0;
  while (off < stdin_text.size()) {
    ssize_t n = write(in[1], stdin_text.data() + off, stdin_text.size() - off);
    if (n <= 0) break;
    off += n;
  }
  close(in[1]);
  PluginRun run;
  absl::Time deadline = absl::Now() + timeout;
  char buf[4096];
  for (;;) {
    pollfd p{out[0], POLLIN, 0};
    int left = static_cast<int>(absl::ToInt64Milliseconds(deadline - absl::Now()));
    if (left <= 0 || poll(&p, 1, left) == 0) {
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
      close(out[0]);
      return absl::DeadlineExceededError(StrCat(binary, " timed out"));
    }
    ssize_t n = read(out[0], buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    run.out.append(buf, n);
  }
  close(out[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  if (absl::StatusOr<Json> j = ParseJson(run.out); j.ok()) run.json = *std::move(j);
  return run;
}

absl::StatusOr<std::string> CniNode::Exec(const std::vector<std::string>& argv) {
  std::vector<std::string> full = {"ip", "netns", "exec", name_};
  full.insert(full.end(), argv.begin(), argv.end());
  return RunChecked(full);
}

absl::StatusOr<std::string> CniNode::ExecIn(const std::string& netns_path,
                                            const std::vector<std::string>& argv) {
  std::vector<std::string> full = {"ip", "netns", "exec", netns_path.substr(netns_path.rfind('/') + 1)};
  full.insert(full.end(), argv.begin(), argv.end());
  return RunChecked(full);
}

std::string CniNode::LogTail() const {
  std::ifstream in(dir_ + "/loomd.log");
  std::stringstream s;
  s << in.rdbuf();
  std::string text = s.str();
  return text.size() > 2000 ? text.substr(text.size() - 2000) : text;
}

}  // namespace loom::testing
