// The container runtime end to end, through the real binaries: a loomd in a node
// namespace (CniNode: embedded store, loopback-only DNS inside that namespace, no
// forwarding), `loomctl` for every operation, and a busybox OCI image layout packed
// from the host's busybox-static. Containers attach through the CNI conf dir: the `loom`
// plugin, or (in its own test) the reference bridge + host-local plugins from
// /usr/lib/cni. Each test checks that removal leaves no process, mount, cgroup,
// namespace, veth or lease behind.
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <set>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "agent/store/store.h"
#include "common/json.h"
#include "common/strings.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/cni_node.h"
#include "tests/integration/runtime_node.h"
#include "tests/testing/command.h"
#include "tests/testing/privileged.h"
#include "tests/testing/status_matchers.h"
#include "tests/unit/runtime/busybox_image.h"

namespace loom {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

bool Exists(const std::string& p) {
  struct stat st;
  return ::lstat(p.c_str(), &st) == 0;
}

std::string Slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class RuntimeIntegrationTest : public ::testing::Test {
 protected:
  // `network`: "loom", "bridge" or "" (no CNI config at all).
  void Start(const std::string& network = "loom", bool lb = false) {
    LOOM_REQUIRE_ROOT();
    LOOM_REQUIRE(::access(runtime::testing::kHostBusybox, X_OK) == 0, "/bin/busybox (busybox-static)");
    if (network == "bridge") {
      LOOM_REQUIRE(::access("/usr/lib/cni/bridge", X_OK) == 0, "the reference CNI plugins in /usr/lib/cni");
    }
    absl::StatusOr<std::unique_ptr<testing::RuntimeNode>> rt = testing::RuntimeNode::Create(network, {}, lb);
    ASSERT_OK(rt.status());
    rt_ = *std::move(rt);
    node_ = &rt_->node();
    cgroup_parent_ = rt_->cgroup_parent();
    conf_dir_ = rt_->conf_dir();
  }

  void WriteConf(const std::string& text) { rt_->WriteConf(text); }

  void TearDown() override {
    node_ = nullptr;
    rt_.reset();
  }

  testing::CommandResult Ctl(std::vector<std::string> args, absl::Duration timeout = absl::Seconds(90)) {
    return rt_->Ctl(std::move(args), timeout);
  }
  std::string RunDetached(std::vector<std::string> args) {
    args.insert(args.begin(), {"run", "-d"});
    testing::CommandResult r = Ctl(args);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return std::string(absl::StripTrailingAsciiWhitespace(r.out));
  }
  Json Inspect(const std::string& ref) {
    testing::CommandResult r = Ctl({"ps", "-a", "-o", "json"});
    absl::StatusOr<Json> list = ParseJson(r.out);
    if (!list.ok()) return Json();
    for (const Json& c : (*list)["items"]) {
      if (c.value("name", "") == ref || c.value("id", "") == ref) return c;
    }
    return Json();
  }
  std::string Exec(const std::string& ref, std::vector<std::string> cmd) {
    cmd.insert(cmd.begin(), {"exec", ref});
    testing::CommandResult r = Ctl(cmd);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.out;
  }
  // Waits (bounded) until the container is no longer running.
  Json WaitExited(const std::string& ref) {
    absl::Time deadline = absl::Now() + absl::Seconds(20);
    Json c;
    while (absl::Now() < deadline) {
      c = Inspect(ref);
      if (c.value("state", "") != "running") return c;
      absl::SleepFor(absl::Milliseconds(50));
    }
    return c;
  }
  // (Re)starts loomd and waits until its containers are adopted (the API answers).
  void RestartLoomd() {
    ASSERT_OK(node_->StartLoomd());
    absl::Time deadline = absl::Now() + absl::Seconds(20);
    while (Ctl({"ps"}).exit_code != 0 && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(50));
  }
  // Waits (bounded) for "ready" in the log: a PID 1 ignores SIGTERM until its trap is set.
  void WaitReady(const std::string& ref) {
    absl::Time deadline = absl::Now() + absl::Seconds(10);
    while (Ctl({"logs", ref}).out.find("ready") == std::string::npos && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(20));
    }
  }
  std::string LoomdMounts() { return Slurp(StrCat("/proc/", node_->loomd_pid(), "/mountinfo")); }

  // After `rm`: no process, no netns pin, no cgroup, no veth, no lease.
  void ExpectGone(const Json& c) {
    const std::string id = c.value("id", "");
    ASSERT_FALSE(id.empty());
    if (c.contains("pid")) {
      int pid = c["pid"].get<int>();
      EXPECT_FALSE(::kill(pid, 0) == 0) << "pid " << pid << " of " << id << " still runs";
    }
    EXPECT_THAT(LoomdMounts(), Not(HasSubstr(id))) << "a mount of " << id << " is left in loomd's namespace";
    for (const char* ctrl : {"memory", "cpu", "pids"}) {
      EXPECT_FALSE(Exists(StrCat("/sys/fs/cgroup/", ctrl, "/", cgroup_parent_, "/", id)));
    }
    EXPECT_FALSE(Exists(StrCat(node_->dir(), "/run/runtime/netns/", id)));
    EXPECT_FALSE(Exists(StrCat(node_->dir(), "/state/runtime/cni-cache/results/loom-", id, "-eth0")));
    // No route to its address, no allocation in loomd (404 for the CHECK lookup).
    for (const Json& ip : c.value("ips", Json::array())) {
      std::string bare = ip.get<std::string>().substr(0, ip.get<std::string>().find('/'));
      EXPECT_THAT(node_->Exec({"ip", "route"}).value_or(""), Not(HasSubstr(StrCat(bare, " dev"))));
    }
    testing::CommandResult lease = testing::RunCommand(
        {"curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--unix-socket", node_->socket(),
         StrCat("http://x/v1/cni/attachments/", id, "/eth0")}).value();
    EXPECT_EQ(lease.out, "404") << "loomd still holds an allocation for " << id;
  }
  // Stops loomd and reads its store: no address lease, no pod left.
  void ExpectNoLeasesOrPods() {
    ASSERT_OK(node_->StopLoomd(SIGTERM));
    absl::StatusOr<std::unique_ptr<store::Store>> s = store::OpenStore("embedded", node_->state_dir());
    ASSERT_OK(s.status());
    EXPECT_THAT((*s)->Range("/loom/ipam/")->kvs, IsEmpty());
    EXPECT_THAT((*s)->Range("/loom/pods/")->kvs, IsEmpty());
  }
  // Once every container is gone: no veth into any container namespace.
  void ExpectNoVeths() {
    std::string links = node_->Exec({"ip", "-o", "link"}).value_or("");
    for (absl::string_view l : absl::StrSplit(links, '\n', absl::SkipEmpty())) {
      EXPECT_THAT(std::string(l), Not(HasSubstr("link-netns"))) << "a veth to a container is left";
    }
  }

  std::unique_ptr<testing::RuntimeNode> rt_;
  testing::CniNode* node_ = nullptr;
  std::string cgroup_parent_;
  std::string conf_dir_;
};

TEST_F(RuntimeIntegrationTest, BusyboxIsIsolatedAttachedThroughLoomAndResolvesClusterNames) {
  Start("loom");
  std::string id = RunDetached({"--name", "web", "-l", "app=web", "-l", "tier=front", "-p", "8080:80",
                                "busybox", "sleep", "1000"});
  ASSERT_FALSE(id.empty());
  // PID 1 is the command, in its own PID and UTS namespaces.
  EXPECT_EQ(Exec("web", {"cat", "/proc/1/cmdline"}), std::string("sleep\0" "1000\0", 11));
  EXPECT_EQ(Exec("web", {"hostname"}), "web\n");
  std::set<int> pids;
  for (absl::string_view p : absl::StrSplit(Exec("web", {"ls", "/proc"}), absl::ByAnyChar(" \n"), absl::SkipEmpty())) {
    int pid;
    if (absl::SimpleAtoi(p, &pid)) pids.insert(pid);
  }
  EXPECT_TRUE(pids.contains(1));
  EXPECT_LE(pids.size(), 3u) << "host processes are visible";
  // No host mount is visible (the host's /work, /tmp test dirs, /run/netns...).
  // Its mount table has its own mounts only: the root overlay, /proc, /sys, /dev and the
  // three /etc files (the overlay's options do name host folders, as in Docker).
  for (absl::string_view line : absl::StrSplit(Exec("web", {"cat", "/proc/mounts"}), '\n', absl::SkipEmpty())) {
    std::vector<std::string> f = absl::StrSplit(line, ' ');
    ASSERT_GE(f.size(), 2u);
    const std::string& at = f[1];
    EXPECT_TRUE(at == "/" || at.rfind("/proc", 0) == 0 || at.rfind("/sys", 0) == 0 ||
                at.rfind("/dev", 0) == 0 || at == "/etc/resolv.conf" || at == "/etc/hosts" ||
                at == "/etc/hostname")
        << "host mount visible: " << line;
  }

  // The address comes from loomd's IPAM through the loom plugin, shown by ps.
  std::string addr = Exec("web", {"ip", "-4", "-o", "addr", "show", "eth0"});
  EXPECT_THAT(addr, HasSubstr("inet 10.244.0."));
  Json c = Inspect("web");
  ASSERT_EQ(c["ips"].size(), 1u) << c.dump();
  std::string ip = c["ips"][0].get<std::string>();
  ip = ip.substr(0, ip.find('/'));
  EXPECT_THAT(addr, HasSubstr(StrCat("inet ", ip, "/32")));
  EXPECT_EQ(c["network"], "loom");
  EXPECT_THAT(Ctl({"ps"}).out, HasSubstr(ip));
  EXPECT_THAT(Ctl({"ps"}).out, HasSubstr("8080->80/tcp"));
  // /etc/hosts and /etc/resolv.conf come from the CNI result.
  EXPECT_THAT(Exec("web", {"cat", "/etc/hosts"}), HasSubstr(StrCat(ip, "\tweb\n")));
  EXPECT_EQ(Exec("web", {"cat", "/etc/resolv.conf"}),
            "nameserver 169.254.20.10\nsearch default.svc.cluster.local svc.cluster.local "
            "cluster.local\noptions ndots:5\n");
  // CHECK on demand.
  testing::CommandResult check = testing::RunCommand(
      {"curl", "-s", "--unix-socket", node_->socket(), "-X", "POST", StrCat("http://x/v1/containers/web/check")}).value();
  EXPECT_THAT(check.out, HasSubstr("\"ok\":true"));

  // Registered as a pod with its labels: a service selecting app=web has it as endpoint,
  // and the container resolves the service through its resolv.conf (loomd's DNS).
  std::string svc = StrCat(node_->dir(), "/svc.yaml");
  std::ofstream(svc) << "apiVersion: loom/v1\nkind: Service\nmetadata: {name: web}\nspec:\n"
                        "  selector: {app: web, tier: front}\n  ports: [{name: http, port: 80, targetPort: 80}]\n";
  testing::CommandResult applied = Ctl({"apply", "-f", svc});
  ASSERT_EQ(applied.exit_code, 0) << applied.err;
  absl::Time deadline = absl::Now() + absl::Seconds(10);
  std::string endpoints;
  while (absl::Now() < deadline && endpoints.find(ip) == std::string::npos) {
    endpoints = Ctl({"get", "endpoints", "web"}).out;
    absl::SleepFor(absl::Milliseconds(100));
  }
  EXPECT_THAT(endpoints, HasSubstr(ip));
  absl::StatusOr<Json> svc_json = ParseJson(Ctl({"get", "services", "web", "-o", "json"}).out);
  ASSERT_OK(svc_json.status());
  std::string vip = svc_json->value("spec", Json::object()).value("clusterIP", "");
  ASSERT_FALSE(vip.empty()) << svc_json->dump();
  std::string answer;
  for (int i = 0; i < 50 && answer.find(vip) == std::string::npos; ++i) {
    answer = Ctl({"exec", "web", "nslookup", "web.default.svc.cluster.local"}).out;
    absl::SleepFor(absl::Milliseconds(100));
  }
  EXPECT_THAT(answer, HasSubstr(vip));

  ASSERT_EQ(Ctl({"rm", "-f", "web"}).exit_code, 0);
  ExpectGone(c);
  ExpectNoVeths();
  EXPECT_THAT(Ctl({"ps", "-a"}).out, Not(HasSubstr("web")));
  // The lease and the pod are gone from the store.
  ExpectNoLeasesOrPods();
}

TEST_F(RuntimeIntegrationTest, LogsExitCodesStopGraceAndOomKill) {
  Start("loom");
  // Foreground: output streamed, the exit code returned, --rm removes it.
  testing::CommandResult fg = Ctl({"run", "--rm", "--name", "fg", "busybox", "sh", "-c", "echo out; echo err >&2; exit 7"});
  EXPECT_EQ(fg.exit_code, 7) << fg.err;
  EXPECT_EQ(fg.out, "out\nerr\n");
  EXPECT_TRUE(Inspect("fg").is_null());

  RunDetached({"--name", "hello", "busybox", "sh", "-c", "echo hello; exit 3"});
  Json hello = WaitExited("hello");
  EXPECT_EQ(hello["state"], "exited");
  EXPECT_EQ(hello["exitCode"], 3);
  EXPECT_EQ(Ctl({"logs", "hello"}).out, "hello\n");
  EXPECT_THAT(Ctl({"ps", "-a"}).out, HasSubstr("Exited (3)"));
  EXPECT_THAT(Ctl({"ps"}).out, Not(HasSubstr("hello")));
  // Its network was released when it exited (the reaper), before any rm.
  absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (Inspect("hello").value("attached", true) && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(100));
  EXPECT_FALSE(Inspect("hello").value("attached", true));

  // logs -f follows until the container exits.
  RunDetached({"--name", "ticker", "busybox", "sh", "-c", "for i in 1 2 3; do echo tick $i; sleep 0.2; done"});
  EXPECT_EQ(Ctl({"logs", "-f", "ticker"}).out, "tick 1\ntick 2\ntick 3\n");

  // A PID 1 with a TERM handler stops at once; one without is killed at the grace's end.
  RunDetached({"--name", "polite", "busybox", "sh", "-c", "trap 'exit 0' TERM; echo ready; while true; do sleep 0.1; done"});
  WaitReady("polite");
  absl::Time t0 = absl::Now();
  ASSERT_EQ(Ctl({"stop", "-t", "5", "polite"}).exit_code, 0);
  EXPECT_LT(absl::Now() - t0, absl::Seconds(3));
  EXPECT_EQ(Inspect("polite")["exitCode"], 0);
  RunDetached({"--name", "stubborn", "busybox", "sleep", "1000"});
  t0 = absl::Now();
  ASSERT_EQ(Ctl({"stop", "-t", "1", "stubborn"}).exit_code, 0);
  absl::Duration took = absl::Now() - t0;
  EXPECT_GE(took, absl::Milliseconds(900));
  EXPECT_LT(took, absl::Seconds(4));
  EXPECT_EQ(Inspect("stubborn")["exitCode"], 137);

  // The memory limit is enforced and the OOM kill reported.
  testing::CommandResult oom = Ctl({"run", "--name", "oom", "--memory", "16m", "busybox", "sh", "-c",
                                    "x=aaaaaaaaaaaaaaaa; while true; do x=$x$x; done"});
  EXPECT_EQ(oom.exit_code, 137) << oom.err;
  EXPECT_THAT(oom.err, HasSubstr("OOM killed"));
  Json oom_c = Inspect("oom");
  EXPECT_EQ(oom_c["oomKilled"], true);
  EXPECT_THAT(Ctl({"ps", "-a"}).out, HasSubstr("(OOM killed)"));

  // Errors name what was wrong.
  testing::CommandResult dup = Ctl({"run", "-d", "--name", "oom", "busybox", "true"});
  EXPECT_EQ(dup.exit_code, 125);
  EXPECT_THAT(dup.err, HasSubstr("a container named 'oom' exists"));
  EXPECT_THAT(Ctl({"run", "-d", "nosuchimage", "true"}).err, HasSubstr("nosuchimage"));
  EXPECT_THAT(Ctl({"run", "-d", "busybox", "/no/such/cmd"}).err, HasSubstr("/no/such/cmd"));
  EXPECT_THAT(Ctl({"rm", "hello-nope"}).err, HasSubstr("no container 'hello-nope'"));

  for (const char* name : {"hello", "ticker", "polite", "stubborn", "oom"}) {
    Json c = Inspect(name);
    ASSERT_EQ(Ctl({"rm", name}).exit_code, 0) << name;
    ExpectGone(c);
  }
  EXPECT_THAT(Ctl({"ps", "-a"}).out, Not(HasSubstr("busybox")));
  ExpectNoVeths();
}

TEST_F(RuntimeIntegrationTest, NamedVolumesOutliveContainersAndReadOnlyBindsRefuseWrites) {
  Start("loom");
  EXPECT_EQ(Ctl({"run", "--rm", "-v", "data:/data", "busybox", "sh", "-c", "echo kept > /data/f"}).exit_code, 0);
  testing::CommandResult read = Ctl({"run", "--rm", "-v", "data:/in:ro", "busybox", "cat", "/in/f"});
  EXPECT_EQ(read.exit_code, 0) << read.err;
  EXPECT_EQ(read.out, "kept\n");
  EXPECT_THAT(Ctl({"volume", "ls"}).out, HasSubstr("data"));

  const std::string host_dir = StrCat(node_->dir(), "/bind");
  fs::create_directories(host_dir);
  std::ofstream(host_dir + "/file") << "host\n";
  testing::CommandResult ro = Ctl({"run", "--rm", "-v", StrCat(host_dir, ":/b:ro"), "busybox", "sh", "-c",
                                   "cat /b/file; echo x > /b/file"});
  EXPECT_NE(ro.exit_code, 0);
  EXPECT_THAT(ro.out, HasSubstr("host"));
  EXPECT_THAT(ro.out + ro.err, HasSubstr("Read-only file system"));
  EXPECT_EQ(Slurp(host_dir + "/file"), "host\n");
  testing::CommandResult rw = Ctl({"run", "--rm", "-v", StrCat(host_dir, ":/b"), "busybox", "sh", "-c", "echo new > /b/file"});
  EXPECT_EQ(rw.exit_code, 0) << rw.err;
  EXPECT_EQ(Slurp(host_dir + "/file"), "new\n");

  // A volume in use cannot be removed; once free it can.
  RunDetached({"--name", "user", "-v", "data:/data", "busybox", "sleep", "1000"});
  EXPECT_THAT(Ctl({"volume", "rm", "data"}).err, HasSubstr("used by container"));
  ASSERT_EQ(Ctl({"rm", "-f", "user"}).exit_code, 0);
  EXPECT_EQ(Ctl({"volume", "rm", "data"}).exit_code, 0);
  EXPECT_THAT(Ctl({"volume", "ls"}).out, Not(HasSubstr("data")));
}

TEST_F(RuntimeIntegrationTest, ContainersOutliveALoomdRestartAndAreAdopted) {
  Start("loom");
  RunDetached({"--name", "survivor", "busybox", "sh", "-c", "trap 'exit 0' TERM; echo ready; while true; do sleep 0.1; done"});
  WaitReady("survivor");
  Json before = Inspect("survivor");
  ASSERT_EQ(before["state"], "running");
  int pid = before["pid"].get<int>();
  ASSERT_OK(node_->StopLoomd(SIGKILL));
  absl::SleepFor(absl::Milliseconds(300));
  EXPECT_EQ(::kill(pid, 0), 0) << "the container died with loomd";
  RestartLoomd();
  Json after = Inspect("survivor");
  EXPECT_EQ(after["state"], "running");
  EXPECT_EQ(after["pid"], pid);
  EXPECT_TRUE(after.value("attached", false));
  EXPECT_EQ(after["ips"], before["ips"]);
  // Still managed: exec, network CHECK, stop (which DELs), rm.
  EXPECT_THAT(Exec("survivor", {"ip", "-4", "-o", "addr", "show", "eth0"}), HasSubstr("inet 10.244.0."));
  ASSERT_EQ(Ctl({"stop", "survivor"}).exit_code, 0);
  EXPECT_EQ(Inspect("survivor")["exitCode"], 0);
  EXPECT_FALSE(Inspect("survivor").value("attached", true));
  ASSERT_EQ(Ctl({"rm", "survivor"}).exit_code, 0);
  ExpectGone(after);
  ExpectNoVeths();
  ExpectNoLeasesOrPods();
}

// A container reaches a service VIP: loomd with the eBPF load balancer (socket programs
// on the cgroup2 folder every container process joins, tc on the pod veths).
TEST_F(RuntimeIntegrationTest, AContainerReachesAServiceVip) {
  Start("loom", /*lb=*/true);
  RunDetached({"--name", "backend", "-l", "app=hello", "busybox", "nc", "-ll", "-p", "8080", "-e", "echo", "hi"});
  std::string svc = StrCat(node_->dir(), "/hello.yaml");
  std::ofstream(svc) << "apiVersion: loom/v1\nkind: Service\nmetadata: {name: hello}\nspec:\n"
                        "  selector: {app: hello}\n  ports: [{name: http, port: 80, targetPort: 8080}]\n";
  ASSERT_EQ(Ctl({"apply", "-f", svc}).exit_code, 0);
  absl::StatusOr<Json> svc_json = ParseJson(Ctl({"get", "services", "hello", "-o", "json"}).out);
  ASSERT_OK(svc_json.status());
  std::string vip = svc_json->value("spec", Json::object()).value("clusterIP", "");
  ASSERT_FALSE(vip.empty());
  std::string got;
  absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (got.find("hi") == std::string::npos && absl::Now() < deadline) {
    got = Ctl({"run", "--rm", "busybox", "nc", "-w", "2", vip, "80"}).out;
  }
  EXPECT_EQ(got, "hi\n");
  // By name too, through the container's resolv.conf.
  EXPECT_EQ(Ctl({"run", "--rm", "busybox", "nc", "-w", "2", "hello.default.svc.cluster.local", "80"}).out, "hi\n");
  ASSERT_EQ(Ctl({"rm", "-f", "backend"}).exit_code, 0);
}

// Any CNI plugin works: the reference bridge with host-local IPAM.
TEST_F(RuntimeIntegrationTest, TheReferenceBridgePluginAttachesContainersToo) {
  Start("bridge");
  RunDetached({"--name", "b1", "busybox", "sleep", "1000"});
  RunDetached({"--name", "b2", "busybox", "sleep", "1000"});
  std::string addr = Exec("b1", {"ip", "-4", "-o", "addr", "show", "eth0"});
  EXPECT_THAT(addr, HasSubstr("inet 10.99.0."));
  Json b2 = Inspect("b2");
  ASSERT_EQ(b2["ips"].size(), 1u);
  std::string ip2 = b2["ips"][0].get<std::string>();
  ip2 = ip2.substr(0, ip2.find('/'));
  EXPECT_THAT(Exec("b1", {"ping", "-c", "1", "-W", "2", ip2}), HasSubstr("1 packets received"));
  EXPECT_THAT(Exec("b1", {"ping", "-c", "1", "-W", "2", "10.99.0.1"}), HasSubstr("1 packets received"));
  // No DNS in the bridge's result: loomd's node-local DNS is the fallback.
  EXPECT_THAT(Exec("b1", {"cat", "/etc/resolv.conf"}), HasSubstr("nameserver 169.254.20.10\n"));
  testing::CommandResult check = testing::RunCommand(
      {"curl", "-s", "--unix-socket", node_->socket(), "-X", "POST", "http://x/v1/containers/b1/check"}).value();
  EXPECT_THAT(check.out, HasSubstr("\"ok\":true"));
  const std::string leases = StrCat(node_->dir(), "/host-local/br");
  EXPECT_THAT(Slurp(StrCat(leases, "/", ip2)), HasSubstr(b2["id"].get<std::string>()));
  Json b1 = Inspect("b1");
  ASSERT_EQ(Ctl({"rm", "-f", "b1", "b2"}).exit_code, 0);
  ExpectGone(b1);
  ExpectGone(b2);
  ExpectNoVeths();
  EXPECT_FALSE(Exists(StrCat(leases, "/", ip2))) << "host-local lease left";
}

// GC at start: an attachment cached for a container that no longer exists (here: a
// record and bundle deleted while loomd was down) is DELeted when loomd starts.
TEST_F(RuntimeIntegrationTest, StaleAttachmentsAreCollectedAtStart) {
  Start("loom");
  RunDetached({"--name", "gone", "busybox", "sleep", "1000"});
  Json c = Inspect("gone");
  const std::string id = c["id"].get<std::string>();
  ASSERT_OK(node_->StopLoomd(SIGKILL));
  // The container dies and its records vanish behind loomd's back.
  ::kill(c["pid"].get<int>(), SIGKILL);
  absl::SleepFor(absl::Milliseconds(300));
  const std::string state = StrCat(node_->dir(), "/state/runtime");
  ::unlink(StrCat(state, "/records/", id, ".json").c_str());
  std::error_code ec;
  fs::remove_all(StrCat(state, "/bundles/", id), ec);
  ASSERT_TRUE(Exists(StrCat(state, "/cni-cache/results/loom-", id, "-eth0")));
  RestartLoomd();
  EXPECT_FALSE(Exists(StrCat(state, "/cni-cache/results/loom-", id, "-eth0")));
  for (const char* ctrl : {"memory", "cpu", "pids"}) {
    ::rmdir(StrCat("/sys/fs/cgroup/", ctrl, "/", cgroup_parent_, "/", id).c_str());
  }
  ExpectNoLeasesOrPods();
}

}  // namespace
}  // namespace loom
