// The runtime side of CNI against fake plugins (shell scripts) that record their
// environment and stdin: conf dir order, chaining, injected keys, the libcni cache, DEL
// in reverse with the cached result, CHECK, GC, errors and timeouts. No root needed.
#include "runtime/cni_invoker.h"

#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <fstream>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "cni/protocol/error.h"
#include "common/strings.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "runtime/fs_util.h"
#include "tests/testing/status_matchers.h"

namespace loom::runtime {
namespace {

using ::loom::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr char kResultA[] =
    R"({"cniVersion":"1.1.0","interfaces":[{"name":"eth0","sandbox":"/ns"}],)"
    R"("ips":[{"address":"10.1.2.3/24","gateway":"10.1.2.1","interface":0}],)"
    R"("dns":{"nameservers":["10.96.0.10"],"search":["default.svc.cluster.local"],"options":["ndots:5"]}})";

class CniInvokerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    static std::atomic<int> n{0};
    dir_ = StrCat("/tmp/loom-cni-inv-", ::getpid(), "-", n++);
    for (const char* d : {"/bin", "/conf", "/log", "/cache"}) ASSERT_OK(MakeDirs(dir_ + d));
  }
  void TearDown() override { EXPECT_OK(RemoveTree(dir_)); }

  // A plugin that logs "<seq> <name> <env...>" and its stdin, then runs `body`.
  void Plugin(const std::string& name, const std::string& body) {
    std::string path = StrCat(dir_, "/bin/", name);
    std::ofstream f(path);
    f << "#!/bin/sh\n"
      << "L=" << dir_ << "/log\n"
      << "n=$(ls $L | grep -c env); n=$(printf %03d $n)\n"
      << "in=$(cat)\n"
      << "printf '%s' \"$in\" > $L/$n-" << name << ".in\n"
      << "echo \"" << name << " $CNI_COMMAND id=$CNI_CONTAINERID netns=$CNI_NETNS if=$CNI_IFNAME "
      << "args=$CNI_ARGS path=$CNI_PATH\" > $L/$n-" << name << ".env\n"
      << body << "\n";
    f.close();
    ::chmod(path.c_str(), 0755);
  }

  // The recorded calls, in order: "<name> <env line>".
  std::vector<std::string> Calls() {
    std::vector<std::string> out;
    std::vector<std::string> files;
    for (int i = 0; i < 100; ++i) {
      std::string prefix = StrCat(dir_, "/log/", absl::StrFormat("%03d", i));
      bool found = false;
      for (const char* name : {"a", "b", "slow", "bad"}) {
        absl::StatusOr<std::string> env = ReadFileToString(StrCat(prefix, "-", name, ".env"));
        if (env.ok()) {
          out.push_back(std::string(absl::StripTrailingAsciiWhitespace(*env)));
          found = true;
        }
      }
      if (!found) break;
    }
    return out;
  }
  Json Stdin(int seq, const std::string& name) {
    return *ParseJson(*ReadFileToString(StrCat(dir_, "/log/", absl::StrFormat("%03d", seq), "-", name, ".in")));
  }

  CniInvoker Invoker(absl::Duration timeout = absl::Seconds(10)) {
    return CniInvoker({{dir_ + "/nothing-here", dir_ + "/bin"}, dir_ + "/cache", timeout, ""});
  }
  CniNetwork Net(const std::string& version, const std::string& plugins) {
    return *ParseCniNetwork(
        StrCat(R"({"cniVersion":")", version, R"(","name":"testnet","plugins":[)", plugins, "]}"), "", false);
  }
  CniRuntimeConf Rt(const std::string& id = "c1") {
    CniRuntimeConf rt;
    rt.container_id = id;
    rt.netns = "/run/netns/x";
    rt.args = {{"IgnoreUnknown", "1"}, {"K8S_POD_NAME", "web"}, {"LOOM_LABELS", "app=web,tier=f"}};
    rt.capability_args = {{"portMappings", Json::array({{{"hostPort", 8080}, {"containerPort", 80}, {"protocol", "tcp"}}})},
                          {"bandwidth", {{"ingressRate", 1}}}};
    return rt;
  }

  std::string dir_;
};

TEST_F(CniInvokerTest, ConfDirPicksTheFirstFileBySortedNameAndWrapsASingleConf) {
  EXPECT_THAT(LoadDefaultCniNetwork(dir_ + "/conf"), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_OK(WriteFileAtomic(dir_ + "/conf/README", "not a config"));
  EXPECT_OK(WriteFileAtomic(dir_ + "/conf/20-b.conflist",
                            R"({"cniVersion":"1.0.0","name":"second","plugins":[{"type":"b"}]})"));
  EXPECT_OK(WriteFileAtomic(dir_ + "/conf/10-a.conf", R"({"cniVersion":"0.4.0","name":"first","type":"a","x":1})"));
  ASSERT_OK_AND_ASSIGN(CniNetwork net, LoadDefaultCniNetwork(dir_ + "/conf"));
  EXPECT_EQ(net.name, "first");
  EXPECT_EQ(net.cni_version, "0.4.0");
  ASSERT_EQ(net.plugins.size(), 1u);
  EXPECT_EQ(net.plugins[0]["x"], 1);
  EXPECT_EQ(net.source, dir_ + "/conf/10-a.conf");

  EXPECT_OK(WriteFileAtomic(dir_ + "/conf/05-broken.conflist", R"({"name":"x","cniVersion":"1.0.0","plugins":[]})"));
  absl::StatusOr<CniNetwork> broken = LoadDefaultCniNetwork(dir_ + "/conf");
  EXPECT_THAT(broken, StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("05-broken.conflist")));
  EXPECT_THAT(ParseCniNetwork(R"({"name":"x","cniVersion":"1.0.0","plugins":[{"type":"../evil"}]})", "f", false),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("plain name")));
  EXPECT_THAT(ParseCniNetwork(R"({"cniVersion":"1.0.0","plugins":[{"type":"a"}]})", "f", false),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("\"name\"")));
  EXPECT_THAT(ParseCniNetwork(R"({"cniVersion":"9.0.0","name":"n","plugins":[{"type":"a"}]})", "f", false),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("f:")));
  // cniVersions: the highest one Loom speaks.
  ASSERT_OK_AND_ASSIGN(CniNetwork multi,
                       ParseCniNetwork(R"({"cniVersions":["0.4.0","1.1.0","9.9.9"],"name":"n","plugins":[{"type":"a"}]})", "", false));
  EXPECT_EQ(multi.cni_version, "1.1.0");
}

TEST_F(CniInvokerTest, AddChainsPluginsWithInjectedKeysAndCachesTheResult) {
  Plugin("a", StrCat("echo '", kResultA, "'"));
  // b passes its prevResult on (here: prints a fixed result with a route added).
  Plugin("b", R"(echo '{"cniVersion":"1.0.0","ips":[{"address":"10.1.2.3/24"}],"routes":[{"dst":"0.0.0.0/0"}],"dns":{"nameservers":["10.96.0.10"]}}')");
  CniNetwork net = Net("1.0.0", R"({"type":"a","capabilities":{"portMappings":true}},{"type":"b","capabilities":{"bandwidth":false}})");
  CniInvoker inv = Invoker();
  ASSERT_OK_AND_ASSIGN(cni::Result result, inv.Add(net, Rt()));
  ASSERT_EQ(result.ips.size(), 1u);
  EXPECT_EQ(result.ips[0].address, "10.1.2.3/24");
  ASSERT_EQ(result.routes.size(), 1u);

  EXPECT_THAT(Calls(), ElementsAre(
      StrCat("a ADD id=c1 netns=/run/netns/x if=eth0 args=IgnoreUnknown=1;K8S_POD_NAME=web;LOOM_LABELS=app=web,tier=f path=",
             dir_, "/nothing-here:", dir_, "/bin"),
      HasSubstr("b ADD id=c1")));
  Json a_in = Stdin(0, "a");
  EXPECT_EQ(a_in["name"], "testnet");
  EXPECT_EQ(a_in["cniVersion"], "1.0.0");
  EXPECT_FALSE(a_in.contains("prevResult"));
  EXPECT_EQ(a_in["runtimeConfig"]["portMappings"][0]["hostPort"], 8080);
  EXPECT_FALSE(a_in["runtimeConfig"].contains("bandwidth"));  // not declared
  Json b_in = Stdin(1, "b");
  EXPECT_FALSE(b_in.contains("runtimeConfig"));  // bandwidth declared false
  // a's 1.1.0 result reached b in the list's version (1.0.0).
  EXPECT_EQ(b_in["prevResult"]["cniVersion"], "1.0.0");
  EXPECT_EQ(b_in["prevResult"]["ips"][0]["address"], "10.1.2.3/24");

  const std::string cache = dir_ + "/cache/results/testnet-c1-eth0";
  struct stat st;
  ASSERT_EQ(::stat(cache.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  Json c = *ParseJson(*ReadFileToString(cache));
  EXPECT_EQ(c["kind"], "cniCacheV1");
  EXPECT_EQ(c["containerId"], "c1");
  EXPECT_EQ(c["ifName"], "eth0");
  EXPECT_EQ(c["networkName"], "testnet");
  EXPECT_EQ(c["netns"], "/run/netns/x");
  EXPECT_EQ(c["cniArgs"][1], Json::array({"K8S_POD_NAME", "web"}));
  EXPECT_EQ(c["capabilityArgs"]["portMappings"][0]["containerPort"], 80);
  EXPECT_EQ(c["result"]["routes"][0]["dst"], "0.0.0.0/0");
  std::string config;
  ASSERT_TRUE(absl::Base64Unescape(c["config"].get<std::string>(), &config));
  EXPECT_EQ(config, net.bytes);
}

TEST_F(CniInvokerTest, DelRunsInReverseWithTheCachedResultAndIsRepeatable) {
  Plugin("a", StrCat("[ \"$CNI_COMMAND\" = ADD ] && echo '", kResultA, "'; exit 0"));
  Plugin("b", StrCat("[ \"$CNI_COMMAND\" = ADD ] && echo '", kResultA, "'; exit 0"));
  CniNetwork net = Net("1.1.0", R"({"type":"a"},{"type":"b"})");
  CniInvoker inv = Invoker();
  ASSERT_OK(inv.Add(net, Rt()).status());
  ASSERT_OK(inv.Check(net, Rt()));
  ASSERT_OK(inv.Del(net, Rt()));
  std::vector<std::string> calls = Calls();
  ASSERT_EQ(calls.size(), 6u);
  EXPECT_THAT(calls[2], HasSubstr("a CHECK"));
  EXPECT_THAT(calls[3], HasSubstr("b CHECK"));
  EXPECT_THAT(calls[4], HasSubstr("b DEL id=c1 netns=/run/netns/x"));
  EXPECT_THAT(calls[5], HasSubstr("a DEL"));
  EXPECT_EQ(Stdin(2, "a")["prevResult"]["ips"][0]["address"], "10.1.2.3/24");
  EXPECT_EQ(Stdin(4, "b")["prevResult"]["ips"][0]["address"], "10.1.2.3/24");
  EXPECT_THAT(inv.Cached("testnet", "c1", "eth0"), StatusIs(absl::StatusCode::kNotFound));
  // Again: no cache, so no prevResult, still OK.
  CniRuntimeConf gone = Rt();
  gone.netns = "";
  ASSERT_OK(inv.Del(net, gone));
  EXPECT_FALSE(Stdin(6, "b").contains("prevResult"));
  EXPECT_THAT(inv.Check(net, Rt()), StatusIs(absl::StatusCode::kNotFound));
  // Versions before 0.4.0 have no CHECK.
  EXPECT_THAT(inv.Check(Net("0.3.1", R"({"type":"a"})"), Rt()),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("no CHECK")));
}

TEST_F(CniInvokerTest, ErrorsNameThePluginTheVerbAndTheCniCode) {
  Plugin("bad", R"(echo '{"cniVersion":"1.0.0","code":7,"msg":"bad subnet","details":"10.0.0.0/33"}'; echo oops >&2; exit 1)");
  absl::Status s = Invoker().Add(Net("1.0.0", R"({"type":"bad"})"), Rt()).status();
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("plugin bad ADD: CNI error 7: bad subnet (10.0.0.0/33)")));
  EXPECT_EQ(cni::CniCode(s), 7);
  EXPECT_THAT(Invoker().Cached("testnet", "c1", "eth0"), StatusIs(absl::StatusCode::kNotFound));

  Plugin("b", "echo 'not json at all' >&2; exit 3");
  EXPECT_THAT(Invoker().Add(Net("1.0.0", R"({"type":"b"})"), Rt()),
              StatusIs(absl::StatusCode::kInternal, HasSubstr("plugin b ADD failed (exit status 3): not json at all")));
  Plugin("a", "echo '{\"ips\": 5}'");
  EXPECT_THAT(Invoker().Add(Net("1.0.0", R"({"type":"a"})"), Rt()), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("plugin a ADD: bad result")));
  EXPECT_THAT(Invoker().Add(Net("1.0.0", R"({"type":"missing"})"), Rt()),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("CNI plugin \"missing\" not found in")));
}

TEST_F(CniInvokerTest, ASlowPluginIsKilledAtTheTimeout) {
  Plugin("slow", "sleep 30 & wait");
  absl::Time start = absl::Now();
  EXPECT_THAT(Invoker(absl::Milliseconds(300)).Add(Net("1.0.0", R"({"type":"slow"})"), Rt()),
              StatusIs(absl::StatusCode::kDeadlineExceeded, HasSubstr("plugin slow ADD: timed out")));
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
}

TEST_F(CniInvokerTest, GcDelsStaleCachedAttachmentsThenSendsValidAttachments) {
  Plugin("a", StrCat("[ \"$CNI_COMMAND\" = ADD ] && echo '", kResultA, "'; exit 0"));
  CniNetwork net = Net("1.1.0", R"({"type":"a"})");
  CniInvoker inv = Invoker();
  ASSERT_OK(inv.Add(net, Rt("keep")).status());
  ASSERT_OK(inv.Add(net, Rt("stale")).status());
  EXPECT_EQ(inv.CachedAttachments("testnet").size(), 2u);
  ASSERT_OK(inv.Gc(net, {{"keep", "eth0"}}));
  std::vector<std::string> calls = Calls();
  ASSERT_EQ(calls.size(), 4u);
  EXPECT_THAT(calls[2], HasSubstr("a DEL id=stale netns=/run/netns/x if=eth0 args=IgnoreUnknown=1"));
  EXPECT_THAT(calls[3], HasSubstr("a GC id= netns= if= args= path="));
  EXPECT_EQ(Stdin(2, "a")["prevResult"]["ips"][0]["address"], "10.1.2.3/24");
  Json gc = Stdin(3, "a");
  EXPECT_EQ(gc["cni.dev/valid-attachments"], Json::parse(R"([{"containerID":"keep","ifname":"eth0"}])"));
  EXPECT_EQ(gc["cni.dev/attachments"], gc["cni.dev/valid-attachments"]);
  ASSERT_EQ(inv.CachedAttachments("testnet").size(), 1u);
  EXPECT_EQ(inv.CachedAttachments("testnet")[0].container_id, "keep");
  // Before 1.1.0 only the stale DELs happen.
  ASSERT_OK(inv.Gc(Net("1.0.0", R"({"type":"a"})"), {}));
  calls = Calls();
  ASSERT_EQ(calls.size(), 5u);
  EXPECT_THAT(calls[4], HasSubstr("a DEL id=keep"));
}

TEST(ResolvConfTest, FormatsNameserversSearchAndOptions) {
  cni::Dns dns;
  dns.nameservers = {"169.254.20.10"};
  dns.search = {"default.svc.cluster.local", "svc.cluster.local", "cluster.local"};
  dns.options = {"ndots:5"};
  EXPECT_EQ(FormatResolvConf(dns),
            "nameserver 169.254.20.10\nsearch default.svc.cluster.local svc.cluster.local "
            "cluster.local\noptions ndots:5\n");
  cni::Dns domain_only;
  domain_only.domain = "example.test";
  EXPECT_EQ(FormatResolvConf(domain_only), "domain example.test\n");
  EXPECT_THAT(FormatHosts("web", {"10.244.0.5"}), HasSubstr("127.0.0.1\tlocalhost\n"));
  EXPECT_THAT(FormatHosts("web", {"10.244.0.5"}), HasSubstr("\n10.244.0.5\tweb\n"));
}

}  // namespace
}  // namespace loom::runtime
