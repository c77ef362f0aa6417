// loomd's /v1/cni/* handlers against an in-memory store and fake link/netns probes.
#include "agent/cni_api/cni_api.h"

#include <filesystem>
#include <fstream>
#include <set>

#include "agent/store/embedded_store.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace loom::cniapi {
namespace {

using ::testing::HasSubstr;

class CniApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/cniapi-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::unique_ptr<CniApi> MakeApi() {
    CniApiOptions o;
    o.node = "n1";
    o.pod_cidr = *net::Ipv4Prefix::Parse("10.244.3.0/24");
    o.underlay_iface = "lo";  // MTU 65536 -> 65486
    o.dns_nameserver = "169.254.20.10";
    o.del_queue_dir = dir_ + "/q";
    o.link_exists = [this](const std::string& l) { return links_.contains(l); };
    o.netns_exists = [this](const std::string& n) { return netns_.contains(n); };
    o.ready = [this](std::string* why) {
      *why = "node not registered";
      return ready_;
    };
    auto api = std::make_unique<CniApi>(o);
    router_ = http::Router();
    api->Register(router_);
    return api;
  }

  http::Response Call(const std::string& method, const std::string& path, const Json& body = {}) {
    http::Request r;
    r.method = method;
    r.target = r.path = path;
    if (!body.is_null()) r.body = body.dump();
    return router_.Dispatch(r);
  }

  std::string dir_;
  std::unique_ptr<store::Store> store_ = store::NewMemoryStore();
  http::Router router_;
  std::set<std::string> links_, netns_;
  bool ready_ = true;
};

TEST_F(CniApiTest, UnavailableUntilStarted) {
  auto api = MakeApi();
  EXPECT_EQ(Call("GET", "/v1/cni/status").status, 503);
  EXPECT_EQ(Call("POST", "/v1/cni/add", {{"containerID", "c"}, {"ifname", "eth0"}}).status, 503);
  ASSERT_OK(api->Start(store_.get()));
  EXPECT_EQ(Call("GET", "/v1/cni/status").status, 200);
  ready_ = false;
  http::Response r = Call("GET", "/v1/cni/status");
  EXPECT_EQ(r.status, 503);
  EXPECT_THAT(r.body, HasSubstr("node not registered"));
}

TEST_F(CniApiTest, AddAttachedGetDel) {
  auto api = MakeApi();
  ASSERT_OK(api->Start(store_.get()));
  http::Response add = Call("POST", "/v1/cni/add",
                            {{"containerID", "c1"}, {"ifname", "eth0"}, {"netns", "/n/c1"},
                             {"hostVeth", "lmx"}, {"podNamespace", "shop"}});
  ASSERT_EQ(add.status, 200) << add.body;
  Json j = *ParseJson(add.body);
  EXPECT_EQ(j["ip"], "10.244.3.1");
  EXPECT_EQ(j["gateway"], "169.254.1.1");
  EXPECT_EQ(j["mtu"], 65536 - 50);
  EXPECT_EQ(j["dns"]["search"][0], "shop.svc.cluster.local");
  EXPECT_EQ(j["dns"]["options"][0], "ndots:5");
  EXPECT_EQ((*ParseJson(Call("POST", "/v1/cni/add", {{"containerID", "c1"}, {"ifname", "eth0"}}).body))["ip"],
            "10.244.3.1");

  http::Response att = Call("POST", "/v1/cni/attached",
                            {{"containerID", "c1"}, {"ifname", "eth0"}, {"namespace", "shop"},
                             {"name", "web"}, {"labels", {{"app", "web"}}}, {"ips", {"10.244.3.1"}}});
  ASSERT_EQ(att.status, 200) << att.body;
  ASSERT_OK_AND_ASSIGN(auto pod, store_->Get("/loom/pods/n1/c1"));
  ASSERT_TRUE(pod.has_value());
  EXPECT_THAT(pod->value, HasSubstr("\"ready\":true"));

  http::Response get = Call("GET", "/v1/cni/attachments/c1/eth0");
  ASSERT_EQ(get.status, 200);
  EXPECT_EQ((*ParseJson(get.body))["hostVeth"], "lmx");
  EXPECT_EQ(Call("GET", "/v1/cni/attachments/c1/eth1").status, 404);

  EXPECT_EQ(Call("POST", "/v1/cni/del", {{"containerID", "c1"}, {"ifname", "eth0"}}).status, 200);
  EXPECT_EQ(Call("POST", "/v1/cni/del", {{"containerID", "c1"}, {"ifname", "eth0"}}).status, 200);
  EXPECT_EQ(*store_->Get("/loom/pods/n1/c1"), std::nullopt);
  EXPECT_TRUE(store_->Range("/loom/ipam/")->kvs.empty());
}

TEST_F(CniApiTest, BadRequestsNameTheProblem) {
  auto api = MakeApi();
  ASSERT_OK(api->Start(store_.get()));
  EXPECT_EQ(Call("POST", "/v1/cni/add", Json::array()).status, 400);
  http::Response r = Call("POST", "/v1/cni/add", {{"ifname", "eth0"}});
  EXPECT_EQ(r.status, 400);
  EXPECT_THAT(r.body, HasSubstr("containerID"));
  EXPECT_EQ(Call("POST", "/v1/cni/gc", Json::object()).status, 400);
}

TEST_F(CniApiTest, GcAndStartupReconcileAndQueueReplay) {
  auto api = MakeApi();
  ASSERT_OK(api->Start(store_.get()));
  for (std::string id : {"a", "b", "c"}) {
    ASSERT_EQ(Call("POST", "/v1/cni/add", {{"containerID", id}, {"ifname", "eth0"},
                                           {"netns", "/n/" + id}, {"hostVeth", "lm" + id}})
                  .status,
              200);
    links_.insert("lm" + id);
    netns_.insert("/n/" + id);
  }
  http::Response gc = Call("POST", "/v1/cni/gc",
                           {{"validAttachments", {{{"containerID", "a"}, {"ifname", "eth0"}},
                                                  {{"containerID", "b"}, {"ifname", "eth0"}}}}});
  ASSERT_EQ(gc.status, 200);
  EXPECT_EQ((*ParseJson(gc.body))["released"][0]["hostVeth"], "lmc");
  EXPECT_EQ(store_->Range("/loom/ipam/")->kvs.size(), 2u);

  // b's veth vanished; a DEL of a was queued while loomd was down.
  links_.erase("lmb");
  std::filesystem::create_directories(dir_ + "/q");
  std::ofstream(dir_ + "/q/a.eth0.json") << R"({"containerID":"a","ifname":"eth0"})";
  api.reset();
  auto restarted = MakeApi();
  ASSERT_OK(restarted->Start(store_.get()));
  EXPECT_TRUE(store_->Range("/loom/ipam/")->kvs.empty());
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/q/a.eth0.json"));
}

}  // namespace
}  // namespace loom::cniapi
