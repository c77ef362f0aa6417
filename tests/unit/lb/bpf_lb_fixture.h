// A private bpffs (and cgroup2 when asked) mounted under a temporary directory for the
// BpfLoadBalancer tests, unmounted and removed whatever the test did.
#pragma once

#include <sys/mount.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "absl/status/statusor.h"
#include "gtest/gtest.h"
#include "lb/backend_set.h"
#include "tests/testing/privileged.h"

namespace loom::lb::testing {

class BpfFsFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    LOOM_REQUIRE_ROOT();
    char tmpl[] = "/tmp/loom-lb-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    tmp_ = tmpl;
    bpffs_ = tmp_ + "/bpf";
    ASSERT_EQ(mkdir(bpffs_.c_str(), 0700), 0);
    ASSERT_EQ(mount("bpffs", bpffs_.c_str(), "bpf", 0, nullptr), 0) << strerror(errno);
    bpffs_mounted_ = true;
    pin_dir_ = bpffs_ + "/loom";
  }
  void TearDown() override {
    if (!cgroup_child_.empty()) rmdir(cgroup_child_.c_str());
    if (cgroup_mounted_) umount2(cgroup_root_.c_str(), MNT_DETACH);
    if (!cgroup_root_.empty()) rmdir(cgroup_root_.c_str());
    if (bpffs_mounted_) umount2(bpffs_.c_str(), MNT_DETACH);
    if (!bpffs_.empty()) rmdir(bpffs_.c_str());
    if (!tmp_.empty()) rmdir(tmp_.c_str());
  }
  // Mounts cgroup2 and creates a child cgroup; returns its path.
  std::string MakeCgroup() {
    cgroup_root_ = tmp_ + "/cgroup2";
    EXPECT_EQ(mkdir(cgroup_root_.c_str(), 0700), 0);
    EXPECT_EQ(mount("cgroup2", cgroup_root_.c_str(), "cgroup2", 0, nullptr), 0)
        << strerror(errno);
    cgroup_mounted_ = true;
    cgroup_child_ = cgroup_root_ + "/loom-lb-test-" + std::to_string(getpid());
    EXPECT_EQ(mkdir(cgroup_child_.c_str(), 0755), 0) << strerror(errno);
    return cgroup_child_;
  }

  std::string tmp_, bpffs_, pin_dir_, cgroup_root_, cgroup_child_;
  bool bpffs_mounted_ = false, cgroup_mounted_ = false;
};

inline net::Ipv4Address Ip(const char* text) { return *net::Ipv4Address::Parse(text); }

inline ServiceBackendSet OneFrontend(std::string name, ServiceFrontend fe,
                                     std::vector<BackendAddress> backends) {
  std::sort(backends.begin(), backends.end());
  FrontendBackends f;
  f.frontend = fe;
  f.backends = std::move(backends);
  return ServiceBackendSet{std::move(name), {f}};
}

}  // namespace loom::lb::testing
