#include "tests/testing/etcd_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>

#include "common/status.h"
#include "common/strings.h"

namespace loom::testing {
namespace {

// A port the kernel considers free on loopback right now (etcd binds it moments later).
absl::StatusOr<int> PickFreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return ErrnoToStatus(errno, "socket");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    int err = errno;
    ::close(fd);
    return ErrnoToStatus(err, "bind a free port");
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

}  // namespace

absl::StatusOr<std::unique_ptr<EtcdServer>> EtcdServer::Start(EtcdOptions options) {
  std::unique_ptr<EtcdServer> server(new EtcdServer(std::move(options)));
  char tmpl[] = "/tmp/loom-etcd-XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) return ErrnoToStatus(errno, "mkdtemp");
  server->temp_dir_ = tmpl;
  server->log_path_ = server->temp_dir_ + "/etcd.log";
  if (server->options_.data_dir.empty()) server->options_.data_dir = server->temp_dir_ + "/data";
  if (server->options_.client_port == 0) {
    ASSIGN_OR_RETURN(server->options_.client_port, PickFreePort());
  }
  ASSIGN_OR_RETURN(server->peer_port_, PickFreePort());
  while (server->peer_port_ == server->options_.client_port) {
    ASSIGN_OR_RETURN(server->peer_port_, PickFreePort());
  }
  RETURN_IF_ERROR(server->Launch());
  return server;
}

EtcdServer::~EtcdServer() {
  Stop().IgnoreError();
  std::error_code ec;
  if (!temp_dir_.empty()) std::filesystem::remove_all(temp_dir_, ec);
}

std::string EtcdServer::ClientUrl() const {
  return StrCat("http://", options_.listen_ip, ":", options_.client_port);
}

std::string EtcdServer::StoreUrl() const {
  return StrCat("etcd://", options_.listen_ip, ":", options_.client_port);
}

std::vector<std::string> EtcdServer::Prefix() const {
  if (options_.netns.empty()) return {};
  return {"ip", "netns", "exec", options_.netns};
}

absl::Status EtcdServer::Launch() {
  const std::string peer_url = StrCat("http://", options_.listen_ip, ":", peer_port_);
  std::vector<std::string> argv = Prefix();
  std::vector<std::string> args = {
      kEtcdBinary,
      "--name=loom-test",
      StrCat("--data-dir=", options_.data_dir),
      StrCat("--listen-client-urls=", ClientUrl()),
      StrCat("--advertise-client-urls=", ClientUrl()),
      StrCat("--listen-peer-urls=", peer_url),
      StrCat("--initial-advertise-peer-urls=", peer_url),
      StrCat("--initial-cluster=loom-test=", peer_url),
      "--initial-cluster-state=new",
      "--logger=zap",
      "--log-outputs=stderr",
  };
  argv.insert(argv.end(), args.begin(), args.end());
  ASSIGN_OR_RETURN(process_, Subprocess::Start(argv, {.log_path = log_path_}));
  absl::Status healthy = WaitHealthy(absl::Seconds(15));
  if (!healthy.ok()) {
    process_.reset();
    return Annotate(healthy, StrCat("etcd at ", ClientUrl(), " (log ", log_path_, ")"));
  }
  return absl::OkStatus();
}

absl::Status EtcdServer::WaitHealthy(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  std::vector<std::string> argv = Prefix();
  std::vector<std::string> check = {kEtcdctlBinary, StrCat("--endpoints=", ClientUrl()),
                                    "--dial-timeout=1s", "--command-timeout=1s",
                                    "endpoint", "health"};
  argv.insert(argv.end(), check.begin(), check.end());
  while (absl::Now() < deadline) {
    if (!process_->running()) return absl::UnavailableError("etcd exited during start-up");
    ASSIGN_OR_RETURN(auto probe,
                     Subprocess::Start(argv, {.log_path = "/dev/null",
                                              .extra_env = {"ETCDCTL_API=3"}}));
    absl::StatusOr<int> rc = probe->Wait(absl::Seconds(5));
    if (rc.ok() && *rc == 0) return absl::OkStatus();
    absl::SleepFor(absl::Milliseconds(50));
  }
  return absl::DeadlineExceededError("etcd did not become healthy");
}

absl::Status EtcdServer::Stop() {
  if (process_ == nullptr) return absl::OkStatus();
  RETURN_IF_ERROR(process_->Signal(SIGTERM));
  if (!process_->Wait(absl::Seconds(5)).ok()) {
    RETURN_IF_ERROR(process_->Signal(SIGKILL));
    RETURN_IF_ERROR(process_->Wait(absl::Seconds(5)).status());
  }
  process_.reset();
  return absl::OkStatus();
}

absl::Status EtcdServer::Restart() {
  RETURN_IF_ERROR(Stop());
  return Launch();
}

}  // namespace loom::testing
