// Start-to-running latency: `loomctl run -d` through loomd (returns once the command has
// been exec'd in its namespaces and cgroups) against `ctr run -d` with containerd 1.6 and
// runc (returns once the task has started), the same busybox OCI image, `sleep 1000`,
// interleaved in one run, N starts each (default 50). No CNI network on either side (a
// netns with a loopback only), so both measure the runtime. Removal is not timed.
// containerd runs with its own root, state and socket in a temp dir.
//   ctest --test-dir build -L bench -R runtime -V
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "tests/integration/cni_node.h"
#include "tests/testing/cluster.h"
#include "tests/testing/command.h"
#include "tests/testing/subprocess.h"
#include "tests/unit/runtime/busybox_image.h"

namespace {

namespace fs = std::filesystem;
using loom::testing::RunCommand;

double Percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * v.size()))];
}

std::string LoadAvg() {
  std::ifstream in("/proc/loadavg");
  std::string a, b, c;
  in >> a >> b >> c;
  return a + " " + b + " " + c;
}

// Times one command; -1 when it failed.
double TimeMs(const std::vector<std::string>& argv, bool quiet = false) {
  absl::Time t0 = absl::Now();
  absl::StatusOr<loom::testing::CommandResult> r = RunCommand(argv, absl::Seconds(60));
  double ms = absl::ToDoubleMilliseconds(absl::Now() - t0);
  if (!r.ok() || r->exit_code != 0) {
    if (quiet) return -1;
    std::fprintf(stderr, "failed: %s: %s\n", argv[0].c_str(), r.ok() ? r->err.c_str() : std::string(r.status().message()).c_str());
    return -1;
  }
  return ms;
}

}  // namespace

int main(int argc, char** argv) {
  const int n = argc > 1 ? std::atoi(argv[1]) : 50;
  if (geteuid() != 0) {
    std::fprintf(stderr, "runtime bench needs root\n");
    return 77;
  }
  for (const char* bin : {"/usr/bin/containerd", "/usr/bin/ctr", "/bin/busybox"}) {
    if (access(bin, X_OK) != 0) {
      std::fprintf(stderr, "missing %s\n", bin);
      return 77;
    }
  }
  const std::string cgroup = absl::StrCat("loom-bench-", getpid());
  const std::string conf_dir = absl::StrCat("/tmp/loom-bench-conf-", getpid());
  fs::create_directories(conf_dir);  // empty: containers get a loopback only
  absl::StatusOr<std::unique_ptr<loom::testing::CniNode>> node = loom::testing::CniNode::Create(
      {"--cni-conf-dir=" + conf_dir, "--cgroup-root=/sys/fs/cgroup/" + cgroup}, /*host_mounts=*/true);
  if (!node.ok()) {
    std::fprintf(stderr, "node: %s\n", std::string(node.status().message()).c_str());
    return 1;
  }
  const std::string dir = (*node)->dir();
  const std::string loomctl = std::string(LOOM_BIN_DIR) + "/loomctl";
  const std::string sock = "--socket=" + (*node)->socket();
  int rc = 0;
  std::unique_ptr<loom::testing::Subprocess> containerd;
  const std::string t = dir + "/ctr";
  const std::string ref = "docker.io/loomtest/busybox:bench";
  auto ctr = [&](std::vector<std::string> args) {
    args.insert(args.begin(), {"ctr", "-a", t + "/containerd.sock"});
    return args;
  };
  [&] {
    if (!loom::runtime::testing::MakeBusyboxRootfs(dir + "/rootfs").ok() ||
        !loom::runtime::testing::MakeOciLayout(dir + "/rootfs", dir + "/oci", ref).ok() ||
        TimeMs({loomctl, sock, "image", "import", dir + "/oci", "busybox"}) < 0 ||
        TimeMs({"tar", "-cf", dir + "/oci.tar", "-C", dir + "/oci", "."}) < 0) {
      std::fprintf(stderr, "cannot build or import the image\n");
      rc = 1;
      return;
    }
    fs::create_directories(t + "/root");
    fs::create_directories(t + "/state");
    std::ofstream(t + "/config.toml")
        << "version = 2\nroot = \"" << t << "/root\"\nstate = \"" << t
        << "/state\"\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n[grpc]\n  address = \"" << t
        << "/containerd.sock\"\n[ttrpc]\n  address = \"" << t << "/containerd.sock.ttrpc\"\n";
    absl::StatusOr<std::unique_ptr<loom::testing::Subprocess>> started = loom::testing::Subprocess::Start(
        {"containerd", "--config", t + "/config.toml"}, {t + "/containerd.log", {}});
    if (!started.ok()) {
      rc = 1;
      return;
    }
    containerd = *std::move(started);
    absl::Time deadline = absl::Now() + absl::Seconds(20);
    while (!fs::exists(t + "/containerd.sock") && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(50));
    if (TimeMs(ctr({"images", "import", dir + "/oci.tar"})) < 0) {
      rc = 1;
      return;
    }
    std::printf("load before: %s\n", LoadAvg().c_str());
    std::vector<double> loom_ms, ctr_ms;
    for (int i = 0; i < n + 3; ++i) {  // 3 warm-up rounds are not counted
      std::string name = absl::StrCat("b", getpid(), "-", i);
      double l = TimeMs({loomctl, sock, "run", "-d", "--name", name, "busybox", "sleep", "1000"});
      double c = TimeMs(ctr({"run", "-d", "--cgroup", absl::StrCat("/", cgroup, "-ctr/", name), ref, name, "sleep", "1000"}));
      TimeMs({loomctl, sock, "rm", "-f", name});
      TimeMs(ctr({"task", "kill", "-s", "KILL", name}));
      for (int k = 0; k < 50; ++k) {
        if (TimeMs(ctr({"task", "delete", name}), /*quiet=*/true) >= 0) break;
        absl::SleepFor(absl::Milliseconds(20));
      }
      TimeMs(ctr({"container", "delete", name}));
      if (l < 0 || c < 0) {
        rc = 1;
        return;
      }
      if (i >= 3) {
        loom_ms.push_back(l);
        ctr_ms.push_back(c);
      }
    }
    std::printf("load after: %s\n", LoadAvg().c_str());
    double lp50 = Percentile(loom_ms, 0.5), lp99 = Percentile(loom_ms, 0.99);
    double cp50 = Percentile(ctr_ms, 0.5), cp99 = Percentile(ctr_ms, 0.99);
    std::printf("start-to-running over %d starts (ms)       p50      p99\n", n);
    std::printf("  loomctl run -d (loomd, loom-shim)  %8.1f %8.1f\n", lp50, lp99);
    std::printf("  ctr run -d (containerd 1.6, runc)  %8.1f %8.1f\n", cp50, cp99);
    std::printf("  ratio loom/ctr                     %8.2f %8.2f\n", lp50 / cp50, lp99 / cp99);
  }();
  if (containerd) {
    containerd->Signal(SIGTERM).IgnoreError();
    containerd->Wait(absl::Seconds(10)).IgnoreError();
  }
  // Whatever containerd left mounted under our folder.
  loom::testing::DetachMounts(loom::testing::MountsUnder(t));
  node->reset();
  for (const char* ctrl : {"memory", "cpu", "pids"}) rmdir(absl::StrCat("/sys/fs/cgroup/", ctrl, "/", cgroup).c_str());
  // runc's cgroups of the ctr containers (a parent of our own, not containerd's /default).
  loom::testing::RemoveV1CgroupTrees(cgroup + "-ctr");
  if (std::string cg2 = loom::testing::HostCgroup2Mount(); !cg2.empty()) {
    loom::testing::RemoveCgroupTree(absl::StrCat(cg2, "/", cgroup, "-ctr"));
  }
  std::error_code ec;
  fs::remove_all(conf_dir, ec);
  return rc;
}
