#include "agent/apps/probe.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/http/client.h"
#include "common/strings.h"

namespace loom::agent {
namespace {

absl::Status TcpCheck(const std::string& ip, uint16_t port, absl::Duration timeout) {
  std::string where = StrCat(ip, ":", port);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  if (inet_pton(AF_INET, ip.c_str(), &sa.sin_addr) != 1) {
    return absl::InvalidArgumentError(StrCat("tcp ", where, ": not an IPv4 address"));
  }
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError(StrCat("tcp ", where, ": socket: ", std::strerror(errno)));
  absl::Status result;
  if (connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 && errno != EINPROGRESS) {
    result = absl::UnavailableError(StrCat("tcp ", where, ": ", std::strerror(errno)));
  } else {
    pollfd p{fd, POLLOUT, 0};
    int n = poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(timeout)));
    int err = 0;
    socklen_t len = sizeof err;
    if (n == 0) {
      result = absl::DeadlineExceededError(
          StrCat("tcp ", where, ": no connection within ", absl::FormatDuration(timeout)));
    } else if (n < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
      result = absl::UnavailableError(StrCat("tcp ", where, ": ", std::strerror(err ? err : errno)));
    }
  }
  close(fd);
  return result;
}

}  // namespace

absl::Status RunProbe(const model::Probe& probe, const std::string& ip, const ExecInReplica& exec) {
  absl::Duration timeout = absl::Seconds(probe.timeout_seconds);
  switch (probe.kind) {
    case model::Probe::Kind::kTcpSocket:
      return TcpCheck(ip, probe.port, timeout);
    case model::Probe::Kind::kHttpGet: {
      std::string url = StrCat("GET http://", ip, ":", probe.port, probe.http_path);
      auto response = http::HttpClient::ForTcp(ip, probe.port, timeout).Get(probe.http_path);
      if (!response.ok()) return absl::UnavailableError(StrCat(url, ": ", response.status().message()));
      if (response->status < 200 || response->status >= 400) {
        return absl::UnavailableError(StrCat(url, ": status ", response->status));
      }
      return absl::OkStatus();
    }
    case model::Probe::Kind::kExec: {
      if (!exec) return absl::FailedPreconditionError("exec probe: no runtime to exec in");
      absl::StatusOr<int> code = exec(probe.command, timeout);
      std::string what = StrCat("exec ", probe.command.empty() ? "" : probe.command[0]);
      if (!code.ok()) return absl::UnavailableError(StrCat(what, ": ", code.status().message()));
      if (*code != 0) return absl::UnavailableError(StrCat(what, ": exit code ", *code));
      return absl::OkStatus();
    }
  }
  return absl::InternalError("unknown probe kind");
}

ProbeTracker::ProbeTracker(model::Probe probe, absl::Time started)
    : probe_(std::move(probe)), next_(started + absl::Seconds(probe_.initial_delay_seconds)) {}

void ProbeTracker::Record(bool ok, absl::Time now, std::string reason) {
  next_ = now + absl::Seconds(probe_.period_seconds);
  if (ok) {
    consecutive_failures_ = 0;
    ++consecutive_successes_;
    if (consecutive_successes_ >= probe_.success_threshold) passing_ = true;
    last_error_.clear();
  } else {
    consecutive_successes_ = 0;
    ++consecutive_failures_;
    if (consecutive_failures_ >= probe_.failure_threshold) passing_ = false;
    last_error_ = std::move(reason);
  }
}

}  // namespace loom::agent
