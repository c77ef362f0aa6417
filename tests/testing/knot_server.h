// Knot DNS (knotd) as a peer: the fake upstream of forwarding tests and the
// authoritative server benchmarks compare Loom against. Runs as root with its own
// config, zone files and run dir in a temporary directory, removed on destruction.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "tests/testing/subprocess.h"

namespace loom::testing {

struct KnotOptions {
  std::string listen_ip = "127.0.0.1";
  int port = 0;        // 0: a free one
  std::string netns;   // run inside this named network namespace when set
  int udp_workers = 1;
  int tcp_workers = 1;
  // zone name -> zone file text ($ORIGIN is added).
  std::map<std::string, std::string> zones;
};

class KnotServer {
 public:
  static absl::StatusOr<std::unique_ptr<KnotServer>> Start(KnotOptions options);
  ~KnotServer();

  int port() const { return options_.port; }
  std::string Address() const;  // "ip:port"
  pid_t pid() const { return proc_ ? proc_->pid() : 0; }
  void Stop();
  absl::Status Restart();

 private:
  explicit KnotServer(KnotOptions options) : options_(std::move(options)) {}
  absl::Status Launch();

  KnotOptions options_;
  std::string dir_;
  std::unique_ptr<Subprocess> proc_;
};

}  // namespace loom::testing
