#include "overlay/nft_firewall.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <optional>
#include <vector>

#include "absl/strings/str_join.h"

#include "common/log.h"
#include "common/status.h"
#include "common/strings.h"

namespace loom::overlay {
namespace {

// Runs nft with `args` and `script` on stdin; returns its output (stdout and stderr),
// the error carries it.
absl::StatusOr<std::string> RunNft(const std::string& nft, const std::vector<std::string>& args,
                                   const std::string& script) {
  std::vector<char*> argv;
  argv.push_back(const_cast<char*>(nft.c_str()));
  for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  int in[2], err[2];
  if (pipe2(in, O_CLOEXEC) != 0) return ErrnoToStatus(errno, "pipe");
  if (pipe2(err, O_CLOEXEC) != 0) {
    close(in[0]);
    close(in[1]);
    return ErrnoToStatus(errno, "pipe");
  }
  pid_t pid = fork();
  if (pid < 0) {
    int e = errno;
    close(in[0]), close(in[1]), close(err[0]), close(err[1]);
    return ErrnoToStatus(e, "fork nft");
  }
  if (pid == 0) {
    dup2(in[0], 0);
    dup2(err[1], 1);
    dup2(err[1], 2);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    execvp(nft.c_str(), argv.data());
    _exit(127);
  }
  close(in[0]);
  close(err[1]);
  size_t off = 0;
  while (off < script.size()) {
    ssize_t n = write(in[1], script.data() + off, script.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    off += static_cast<size_t>(n);
  }
  close(in[1]);
  std::string output;
  char buf[4096];
  for (;;) {
    ssize_t n = read(err[0], buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    if (output.size() < 16384) output.append(buf, static_cast<size_t>(n));
  }
  close(err[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return output;
  if (WIFEXITED(status) && WEXITSTATUS(status) == 127) {
    return absl::FailedPreconditionError(StrCat("cannot run ", nft, " (is nftables installed?)"));
  }
  return absl::InternalError(StrCat("nft ", absl::StrJoin(args, " "), " failed: ", output));
}

class NftFirewall : public Firewall {
 public:
  explicit NftFirewall(std::string nft) : nft_(std::move(nft)) {}

  absl::Status Apply(const FirewallRules& rules) override {
    if (applied_ && *applied_ == rules) return absl::OkStatus();
    if (!applied_) {
      // A restart: the table an earlier loomd left may already be exactly this one.
      absl::StatusOr<std::string> have = RunNft(nft_, {"list", "table", "ip", kNftTable}, "");
      if (have.ok() &&
          have->find(StrCat("comment \"loom ", RulesetTag(rules), "\"")) != std::string::npos) {
        applied_ = rules;
        RETURN_IF_ERROR(EnableIpForwarding());
        return absl::OkStatus();
      }
    }
    RETURN_IF_ERROR(RunNft(nft_, {"-f", "-"}, RenderNftScript(rules)).status());
    RETURN_IF_ERROR(EnableIpForwarding());
    ++writes_;
    applied_ = rules;
    LOG_DEBUG("overlay firewall applied", {"nodes", rules.nodes.size()});
    return absl::OkStatus();
  }
  uint64_t writes() const override { return writes_; }
  absl::Status Remove() override {
    applied_.reset();
    return RunNft(nft_, {"-f", "-"},
                  StrCat("add table ip ", kNftTable, "\ndelete table ip ", kNftTable, "\n"))
        .status();
  }

 private:
  std::string nft_;
  std::optional<FirewallRules> applied_;
  uint64_t writes_ = 0;
};

}  // namespace

std::unique_ptr<Firewall> NewNftFirewall(std::string nft_path) {
  return std::make_unique<NftFirewall>(std::move(nft_path));
}

absl::Status EnableIpForwarding() {
  // /proc/sys/net belongs to the namespace of the process opening it: loomd's.
  const std::string file = "/proc/sys/net/ipv4/ip_forward";
  {
    std::ifstream in(file);
    std::string v;
    if (in >> v && v == "1") return absl::OkStatus();
  }
  std::ofstream out(file);
  out << "1\n";
  out.flush();
  if (!out) return absl::InternalError(StrCat("cannot write ", file));
  return absl::OkStatus();
}

}  // namespace loom::overlay
