// containerd 1.6's `ctr run --cni` (go-cni + libcni) with a conflist naming `loom`:
// two busybox containers get loomd addresses and reach each other; removing them
// leaves no lease, link, route or file. containerd runs with its own root, state and
// socket in a temp dir; ctr (which execs the CNI plugins itself, from /etc/cni/net.d
// and /opt/cni/bin) runs inside the node namespace and a private mount namespace
// where those two folders are the test's own (an overlay on /etc, tmpfs on /opt and
// on /var/lib for libcni's result cache), so the machine's folders are never touched.
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "agent/store/store.h"
#include "common/strings.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/cni_node.h"
#include "tests/testing/command.h"
#include "tests/testing/cluster.h"
#include "tests/testing/privileged.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/subprocess.h"

namespace loom {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

const char kImage[] = "docker.io/loomtest/busybox:1";

// An OCI image layout holding one layer: /bin/busybox and a few applet links.
const char kBuildImage[] = R"SH(set -e
T="$1"; mkdir -p "$T/img/blobs/sha256" "$T/rootfs/bin" "$T/rootfs/proc" "$T/rootfs/sys" "$T/rootfs/dev" "$T/rootfs/etc" "$T/rootfs/tmp"
cp /bin/busybox "$T/rootfs/bin/"
for a in sh sleep ping ip cat; do ln -s busybox "$T/rootfs/bin/$a"; done
tar --numeric-owner --owner=0 --group=0 -cf "$T/layer.tar" -C "$T/rootfs" .
blob() { d=$(sha256sum "$1" | cut -d' ' -f1); cp "$1" "$T/img/blobs/sha256/$d"; echo "$d $(stat -c %s "$1")"; }
set -- $(blob "$T/layer.tar"); L=$1; LS=$2
printf '{"architecture":"amd64","os":"linux","config":{"Cmd":["sh"],"Env":["PATH=/bin"]},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' $L > "$T/config.json"
set -- $(blob "$T/config.json"); C=$1; CS=$2
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:%s","size":%s}]}' $C $CS $L $LS > "$T/manifest.json"
set -- $(blob "$T/manifest.json"); M=$1; MS=$2
printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"docker.io/loomtest/busybox:1"},"platform":{"architecture":"amd64","os":"linux"}}]}' $M $MS > "$T/img/index.json"
echo '{"imageLayoutVersion":"1.0.0"}' > "$T/img/oci-layout"
tar -cf "$T/image.tar" -C "$T/img" .
)SH";

bool Executable(const std::string& path) { return access(path.c_str(), X_OK) == 0; }

class ContainerdTest : public ::testing::Test {
 protected:
  void SetUp() override {
    LOOM_REQUIRE_ROOT();
    LOOM_REQUIRE(Executable("/usr/bin/containerd") && Executable("/usr/bin/ctr"), "containerd and ctr");
    LOOM_REQUIRE(Executable("/usr/sbin/runc") || Executable("/usr/bin/runc"), "runc");
    LOOM_REQUIRE(Executable("/bin/busybox"), "busybox");
    absl::StatusOr<std::unique_ptr<testing::CniNode>> node = testing::CniNode::Create();
    ASSERT_OK(node.status());
    node_ = *std::move(node);
    t_ = node_->dir() + "/ctr";
    for (const char* d : {"", "/root", "/state", "/netd", "/bin", "/etcup", "/etcwork"}) {
      fs::create_directories(t_ + d);
    }
    fs::copy_file(std::string(LOOM_BIN_DIR) + "/loom", t_ + "/bin/loom");
    {
      std::ofstream conf(t_ + "/netd/10-loom.conflist");
      conf << Json{{"cniVersion", "1.0.0"},
                   {"name", "loom"},
                   {"plugins", Json::array({Json{{"type", "loom"},
                                                 {"socket", node_->socket()},
                                                 {"delQueueDir", node_->del_queue_dir()}}})}}
                  .dump();
      std::ofstream toml(t_ + "/config.toml");
      toml << "version = 2\nroot = \"" << t_ << "/root\"\nstate = \"" << t_
           << "/state\"\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n[grpc]\n  address = \""
           << t_ << "/containerd.sock\"\n[ttrpc]\n  address = \"" << t_
           << "/containerd.sock.ttrpc\"\n";
      std::ofstream ctr(t_ + "/ctr.sh");
      ctr << "set -e\n"
          << "mount -t overlay overlay -o lowerdir=/etc,upperdir=" << t_ << "/etcup,workdir=" << t_
          << "/etcwork /etc\n"
          << "mkdir -p /etc/cni/net.d && mount --bind " << t_ << "/netd /etc/cni/net.d\n"
          << "mount -t tmpfs none /opt && mkdir -p /opt/cni/bin && mount --bind " << t_
          << "/bin /opt/cni/bin\n"
          << "mount -t tmpfs none /var/lib\n"
          << "exec ctr -a " << t_ << "/containerd.sock \"$@\"\n";
    }
    absl::StatusOr<std::unique_ptr<testing::Subprocess>> containerd = testing::Subprocess::Start(
        {"containerd", "--config", t_ + "/config.toml"}, {t_ + "/containerd.log", {}});
    ASSERT_OK(containerd.status());
    containerd_ = *std::move(containerd);
    absl::Time deadline = absl::Now() + absl::Seconds(20);
    while (!fs::exists(t_ + "/containerd.sock") && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(50));
    }
    ASSERT_TRUE(fs::exists(t_ + "/containerd.sock")) << "containerd did not start";
    ASSERT_OK(testing::RunChecked({"sh", "-c", kBuildImage, "build", t_}).status());
    ASSERT_OK(Ctr({"images", "import", t_ + "/image.tar"}).status());
  }

  void TearDown() override {
    if (containerd_) {
      for (const std::string& c : names_) {
        Ctr({"task", "kill", "-s", "KILL", c}).IgnoreError();
      }
      absl::SleepFor(absl::Milliseconds(300));
      for (const std::string& c : names_) {
        Ctr({"task", "delete", "-f", c}).IgnoreError();
        Ctr({"container", "delete", c}).IgnoreError();
      }
      containerd_->Signal(SIGTERM).IgnoreError();
      containerd_->Wait(absl::Seconds(10)).IgnoreError();
      containerd_.reset();
    }
    // Anything containerd left mounted under our dir (it should leave nothing).
    testing::DetachMounts(testing::MountsUnder(t_));
    node_.reset();
    // runc's cgroups of the containers (under a parent of the test's own, not
    // containerd's default /<namespace>/<id>, so nothing of the machine's is touched).
    testing::RemoveV1CgroupTrees(cgroup_parent_);
    if (std::string cg2 = testing::HostCgroup2Mount(); !cg2.empty()) {
      testing::RemoveCgroupTree(StrCat(cg2, "/", cgroup_parent_));
    }
  }

  std::string CgroupPath(const std::string& container) const {
    return StrCat("/", cgroup_parent_, "/", container);
  }

  std::vector<std::string> CtrArgv(const std::vector<std::string>& args) {
    std::vector<std::string> argv = {"ip", "netns", "exec",
                                     node_->netns().substr(node_->netns().rfind('/') + 1),
                                     "unshare", "-m", "--propagation", "private",
                                     "sh", t_ + "/ctr.sh"};
    argv.insert(argv.end(), args.begin(), args.end());
    return argv;
  }
  absl::StatusOr<std::string> Ctr(const std::vector<std::string>& args) {
    return testing::RunChecked(CtrArgv(args), absl::Seconds(60));
  }
  std::vector<std::string> PodRoutes() {
    std::vector<std::string> out;
    for (absl::string_view l : absl::StrSplit(node_->Exec({"ip", "route"}).value_or(""), '\n')) {
      if (l.find("10.244.") != absl::string_view::npos) out.emplace_back(l);
    }
    return out;
  }

  std::unique_ptr<testing::CniNode> node_;
  std::string t_;
  const std::string cgroup_parent_ = StrCat("lmctr-", getpid());
  std::unique_ptr<testing::Subprocess> containerd_;
  std::vector<std::string> names_;
};

TEST_F(ContainerdTest, CtrRunCniAttachesTwoContainersThatReachEachOther) {
  std::string c1 = StrCat("lmc1-", getpid()), c2 = StrCat("lmc2-", getpid());
  names_ = {c1, c2};
  // c1 runs in the foreground of its own ctr (which DELs when the task ends).
  absl::StatusOr<std::unique_ptr<testing::Subprocess>> first = testing::Subprocess::Start(
      CtrArgv({"run", "--rm", "--cni", "--cgroup", CgroupPath(c1), kImage, c1, "sleep", "60"}), {t_ + "/c1.log", {}});
  ASSERT_OK(first.status());
  absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (PodRoutes().empty() && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(100));
  std::vector<std::string> routes = PodRoutes();
  ASSERT_EQ(routes.size(), 1u) << "c1 was not attached";
  std::string ip1 = routes[0].substr(0, routes[0].find(' '));
  EXPECT_THAT(ip1, ::testing::StartsWith("10.244.0."));

  // c2 pings c1 and prints its own address.
  absl::StatusOr<std::string> out =
      Ctr({"run", "--rm", "--cni", "--cgroup", CgroupPath(c2), kImage, c2, "sh", "-c", "ip -4 -o addr show eth0; ping -c2 -W2 " + ip1});
  ASSERT_OK(out.status());
  EXPECT_THAT(*out, HasSubstr("inet 10.244.0."));
  EXPECT_THAT(*out, HasSubstr("2 packets received"));

  ASSERT_OK(Ctr({"task", "kill", "-s", "KILL", c1}).status());
  EXPECT_OK((*first)->Wait(absl::Seconds(20)).status());
  names_.clear();

  EXPECT_THAT(PodRoutes(), IsEmpty());
  EXPECT_THAT(node_->Exec({"ip", "-o", "link"}).value_or(""), ::testing::Not(HasSubstr(": lm")));
  EXPECT_FALSE(fs::exists(node_->del_queue_dir()) && !fs::is_empty(node_->del_queue_dir()));
  ASSERT_OK(node_->StopLoomd(SIGTERM));
  absl::StatusOr<std::unique_ptr<store::Store>> s = store::OpenStore("embedded", node_->state_dir());
  ASSERT_OK(s.status());
  EXPECT_THAT((*s)->Range("/loom/ipam/")->kvs, IsEmpty());
  EXPECT_THAT((*s)->Range("/loom/pods/")->kvs, IsEmpty());
}

}  // namespace
}  // namespace loom
