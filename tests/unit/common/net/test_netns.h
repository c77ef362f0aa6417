// A named network namespace for one test, with a unique name, deleted (with every link
// in it) when the object goes away, even when the test fails.
#pragma once

#include <unistd.h>

#include <atomic>
#include <string>

#include "common/net/netlink.h"
#include "common/net/netns.h"
#include "common/strings.h"

namespace loom::net::testing {

class TestNetns {
 public:
  explicit TestNetns(std::string_view tag) {
    static std::atomic<int> counter{0};
    name_ = StrCat("loomt-", tag, "-", getpid(), "-", counter++);
    status_ = CreateNamedNetns(name_);
    if (!status_.ok()) return;
    auto fd = NetnsFd::OpenNamed(name_);
    if (!fd.ok()) {
      status_ = fd.status();
      return;
    }
    fd_ = std::move(*fd);
  }
  ~TestNetns() {
    fd_ = NetnsFd();
    if (created()) (void)DeleteNamedNetns(name_);
  }
  TestNetns(const TestNetns&) = delete;
  TestNetns& operator=(const TestNetns&) = delete;

  const absl::Status& status() const { return status_; }
  const std::string& name() const { return name_; }
  const NetnsFd& fd() const { return fd_; }

  // A Netlink bound to this namespace, usable from the test's thread.
  absl::StatusOr<Netlink> Connect() const {
    return RunInNetns<Netlink>(fd_, [] { return Netlink::Create(); });
  }

 private:
  bool created() const { return !absl::IsAlreadyExists(status_) && !name_.empty(); }
  std::string name_;
  absl::Status status_;
  NetnsFd fd_;
};

}  // namespace loom::net::testing
