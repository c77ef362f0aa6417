// A node for CNI tests and benchmarks: a network namespace with an underlay veth
// (198.51.100.1/24), a real loomd inside it (embedded store, temp dirs, its own
// socket), container namespaces on demand, and ExecPlugin, which runs a CNI plugin
// binary inside the node namespace as a runtime does (environment, stdin, stdout).
// Everything is removed by the destructor, even when the test failed.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/json.h"
#include "tests/testing/subprocess.h"

namespace loom::testing {

struct PluginRun {
  int exit_code = -1;
  std::string out;  // stdout
  Json json;        // stdout parsed, when it is JSON
};

class CniNode {
 public:
  // Creates the node namespace and starts loomd in it. loomd runs through `ip netns
  // exec` (a private mount namespace with a fresh /sys, so no cgroups), or with
  // `host_mounts` through `nsenter --net` (the machine's mount namespace, as a real loomd:
  // the container runtime needs /sys/fs/cgroup and mounts that outlive loomd).
  static absl::StatusOr<std::unique_ptr<CniNode>> Create(std::vector<std::string> loomd_flags = {},
                                                         bool host_mounts = false);
  ~CniNode();

  const std::string& netns() const { return netns_; }
  const std::string& dir() const { return dir_; }
  const std::string& socket() const { return socket_; }
  std::string del_queue_dir() const { return dir_ + "/cni-del-queue"; }
  std::string state_dir() const { return dir_ + "/state"; }
  pid_t loomd_pid() const;

  absl::Status StartLoomd();
  // Sends `signal` and reaps loomd.
  absl::Status StopLoomd(int signal);

  // A fresh container namespace; returns its path (/run/netns/NAME). Deleted by the
  // destructor unless DeleteContainer ran first.
  absl::StatusOr<std::string> AddContainer();
  absl::Status DeleteContainer(const std::string& path);

  // Runs `binary` in the node namespace with exactly `env` (plus PATH) and `stdin`.
  absl::StatusOr<PluginRun> ExecPlugin(const std::string& binary,
                                       const std::map<std::string, std::string>& env,
                                       const std::string& stdin_text,
                                       absl::Duration timeout = absl::Seconds(60));
  // Runs a command in the node namespace (ip netns exec); stdout.
  absl::StatusOr<std::string> Exec(const std::vector<std::string>& argv);
  absl::StatusOr<std::string> ExecIn(const std::string& netns_path,
                                     const std::vector<std::string>& argv);

  std::string LogTail() const;

 private:
  CniNode() = default;
  std::vector<std::string> flags_;
  bool host_mounts_ = false;
  std::string name_;
  std::string netns_;  // /run/netns/<name_>
  std::string dir_;
  std::string socket_;
  std::unique_ptr<Subprocess> loomd_;
  std::vector<std::string> containers_;  // netns names
  int container_counter_ = 0;
};

}  // namespace loom::testing
