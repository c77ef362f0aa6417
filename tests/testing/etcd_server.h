// A real etcd-server (Debian's /usr/bin/etcd) for tests: a one-member cluster on
// `listen_ip`, optionally inside a network namespace, with its data in a
// temporary directory removed on destruction. Start() returns once it is healthy.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "tests/testing/subprocess.h"

namespace loom::testing {

inline constexpr char kEtcdBinary[] = "/usr/bin/etcd";
inline constexpr char kEtcdctlBinary[] = "/usr/bin/etcdctl";

struct EtcdOptions {
  std::string listen_ip = "127.0.0.1";
  std::string netns;     // if set, run as `ip netns exec <netns> etcd ...` (needs root)
  int client_port = 0;   // 0: pick a free port
  std::string data_dir;  // empty: a fresh temporary directory, removed on destruction
};

class EtcdServer {
 public:
  static absl::StatusOr<std::unique_ptr<EtcdServer>> Start(EtcdOptions options = {});
  ~EtcdServer();

  std::string ClientUrl() const;  // "http://ip:port"
  std::string StoreUrl() const;   // "etcd://ip:port"
  int client_port() const { return options_.client_port; }
  const std::string& data_dir() const { return options_.data_dir; }
  const std::string& log_path() const { return log_path_; }
  pid_t pid() const { return process_ ? process_->pid() : -1; }

  // SIGTERM (SIGKILL after a few seconds) and wait.
  absl::Status Stop();
  // Stop if running, then start again on the same data dir and ports; waits until healthy.
  absl::Status Restart();

 private:
  explicit EtcdServer(EtcdOptions options) : options_(std::move(options)) {}
  absl::Status Launch();
  absl::Status WaitHealthy(absl::Duration timeout);
  std::vector<std::string> Prefix() const;

  EtcdOptions options_;
  int peer_port_ = 0;
  std::string temp_dir_;  // holds the log (and the data when no data_dir was given)
  std::string log_path_;
  std::unique_ptr<Subprocess> process_;
};

}  // namespace loom::testing
