// The service registry (apply, ClusterIP allocation, delete) and the service state
// controller, against the embedded store in a temporary directory.
#include <future>
#include <map>
#include <random>
#include <set>

#include "agent/services/service_controller.h"
#include "agent/services/service_registry.h"
#include "common/model/endpoints.h"
#include "common/strings.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_store.h"
#include "tests/testing/yaml_manifest.h"

namespace loom::agent {
namespace {

using ::testing::HasSubstr;
using ::loom::testing::StatusIs;

Json Manifest(std::string_view yaml) { return testing::FirstYamlDocument(yaml); }

constexpr char kWeb[] = R"(
kind: Service
metadata: {name: web, labels: {app: web}}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: 8080}]
)";

class ServicesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_OK(store_.Open("loom-services"));
    ServiceRegistryOptions o;
    o.cidr = {0x0A600000, 28};  // 10.96.0.0/28: 14 usable, minus the reserved one
    o.reserved = {0x0A600005};  // 10.96.0.5
    o.start_offset = 1;
    registry_ = std::make_unique<ServiceRegistry>(store_.get(), o);
  }

  testing::TempStore store_;
  std::unique_ptr<ServiceRegistry> registry_;
};

TEST_F(ServicesTest, ApplyCreatesThenIsUnchangedThenConfigured) {
  ASSERT_OK_AND_ASSIGN(ApplyResult first, registry_->Apply(Manifest(kWeb)));
  EXPECT_EQ(first.outcome, ApplyOutcome::kCreated);
  EXPECT_EQ(first.stored.service.cluster_ip, "10.96.0.1");
  EXPECT_FALSE(first.stored.created_at.empty());

  ASSERT_OK_AND_ASSIGN(ApplyResult again, registry_->Apply(Manifest(kWeb)));
  EXPECT_EQ(again.outcome, ApplyOutcome::kUnchanged);
  EXPECT_EQ(again.stored.service.cluster_ip, "10.96.0.1");

  std::string changed = kWeb;
  changed.replace(changed.find("port: 80"), 8, "port: 81");
  ASSERT_OK_AND_ASSIGN(ApplyResult third, registry_->Apply(Manifest(changed)));
  EXPECT_EQ(third.outcome, ApplyOutcome::kConfigured);
  EXPECT_EQ(third.stored.service.cluster_ip, "10.96.0.1");  // stable for the service's life
  EXPECT_EQ(third.stored.created_at, first.stored.created_at);

  ASSERT_OK_AND_ASSIGN(auto claim, store_->Get(ServiceIpKey("10.96.0.1")));
  ASSERT_TRUE(claim.has_value());
  EXPECT_THAT(claim->value, HasSubstr("default/web"));
}

TEST_F(ServicesTest, RequestedClusterIpHonouredOrRefusedClearly) {
  std::string with_ip = std::string(kWeb) + "  clusterIP: 10.96.0.9\n";
  ASSERT_OK_AND_ASSIGN(ApplyResult r, registry_->Apply(Manifest(with_ip)));
  EXPECT_EQ(r.stored.service.cluster_ip, "10.96.0.9");

  std::string other = with_ip;
  other.replace(other.find("name: web"), 9, "name: api");
  EXPECT_THAT(registry_->Apply(Manifest(other)),
              StatusIs(absl::StatusCode::kAlreadyExists,
                       HasSubstr("spec.clusterIP: \"10.96.0.9\" is already allocated to service "
                                 "default/web")));
  std::string changed = with_ip;
  changed.replace(changed.find("10.96.0.9"), 9, "10.96.0.8");
  EXPECT_THAT(registry_->Apply(Manifest(changed)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("cannot replace 10.96.0.9")));
  for (std::string ip : {"10.96.0.0", "10.96.0.15", "10.96.0.5"}) {
    std::string bad = other;
    bad.replace(bad.find("10.96.0.9"), 9, ip);
    EXPECT_THAT(registry_->Apply(Manifest(bad)),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("is reserved")))
        << ip;
  }
  std::string outside = other;
  outside.replace(outside.find("10.96.0.9"), 9, "10.97.0.1");
  EXPECT_THAT(registry_->Apply(Manifest(outside)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not in the service CIDR")));
}

TEST_F(ServicesTest, AllocationSkipsReservedAndRunsOut) {
  std::set<std::string> ips;
  for (int i = 0; i < 13; ++i) {
    std::string m = kWeb;
    m.replace(m.find("name: web"), 9, "name: s" + std::to_string(i));
    ASSERT_OK_AND_ASSIGN(ApplyResult r, registry_->Apply(Manifest(m)));
    EXPECT_NE(r.stored.service.cluster_ip, "10.96.0.5");
    EXPECT_NE(r.stored.service.cluster_ip, "10.96.0.0");
    EXPECT_NE(r.stored.service.cluster_ip, "10.96.0.15");
    ips.insert(r.stored.service.cluster_ip);
  }
  EXPECT_EQ(ips.size(), 13u);
  EXPECT_THAT(registry_->Apply(Manifest(kWeb)),
              StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("no free ClusterIP")));
  // Deleting one releases its address for the next service.
  ASSERT_OK(registry_->Delete("default", "s3").status());
  ASSERT_OK_AND_ASSIGN(ApplyResult r, registry_->Apply(Manifest(kWeb)));
  EXPECT_FALSE(r.stored.service.cluster_ip.empty());
}

TEST_F(ServicesTest, DeleteReleasesTheIpAndTypeChangeToo) {
  ASSERT_OK_AND_ASSIGN(ApplyResult r, registry_->Apply(Manifest(kWeb)));
  std::string ip = r.stored.service.cluster_ip;
  std::string headless = std::string(kWeb) + "  clusterIP: None\n";
  ASSERT_OK_AND_ASSIGN(ApplyResult h, registry_->Apply(Manifest(headless)));
  EXPECT_EQ(h.outcome, ApplyOutcome::kConfigured);
  EXPECT_TRUE(h.stored.service.cluster_ip.empty());
  ASSERT_OK_AND_ASSIGN(auto claim, store_->Get(ServiceIpKey(ip)));
  EXPECT_FALSE(claim.has_value());

  ASSERT_OK_AND_ASSIGN(ApplyResult back, registry_->Apply(Manifest(kWeb)));
  ASSERT_OK_AND_ASSIGN(StoredService gone, registry_->Delete("default", "web"));
  EXPECT_EQ(gone.service.cluster_ip, back.stored.service.cluster_ip);
  ASSERT_OK_AND_ASSIGN(auto claim2, store_->Get(ServiceIpKey(back.stored.service.cluster_ip)));
  EXPECT_FALSE(claim2.has_value());
  EXPECT_THAT(registry_->Delete("default", "web"), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(registry_->Get("default", "web"), StatusIs(absl::StatusCode::kNotFound));
}

constexpr char kNodePort[] = R"(
kind: Service
metadata: {name: np}
spec:
  type: NodePort
  selector: {app: web}
  ports:
  - {name: http, port: 80, targetPort: 8080}
  - {name: dns, port: 53, protocol: UDP, nodePort: 30053}
)";

TEST_F(ServicesTest, NodePortsAllocatedKeptAndReleased) {
  ASSERT_OK_AND_ASSIGN(ApplyResult first, registry_->Apply(Manifest(kNodePort)));
  const auto& ports = first.stored.service.ports;
  ASSERT_EQ(ports.size(), 2u);
  EXPECT_GE(ports[0].node_port, 30000);
  EXPECT_LE(ports[0].node_port, 32767);
  EXPECT_EQ(ports[1].node_port, 30053);
  ASSERT_OK_AND_ASSIGN(auto claim, store_->Get(NodePortKey(model::Protocol::kTcp, ports[0].node_port)));
  ASSERT_TRUE(claim.has_value());
  EXPECT_THAT(claim->value, HasSubstr("default/np"));
  // A re-apply keeps the allocated port (the manifest still names none).
  ASSERT_OK_AND_ASSIGN(ApplyResult again, registry_->Apply(Manifest(kNodePort)));
  EXPECT_EQ(again.outcome, ApplyOutcome::kUnchanged);
  EXPECT_EQ(again.stored.service.ports[0].node_port, ports[0].node_port);

  // Another service asking for a taken port: refused, naming the field and the owner.
  std::string other = kNodePort;
  other.replace(other.find("name: np"), 8, "name: o2");
  absl::StatusOr<ApplyResult> taken = registry_->Apply(Manifest(other));
  ASSERT_FALSE(taken.ok());
  EXPECT_EQ(taken.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(std::string(taken.status().message()), HasSubstr("spec.ports[1].nodePort: 30053"));
  EXPECT_THAT(std::string(taken.status().message()), HasSubstr("default/np"));

  // Out of range, and twice in one service.
  std::string low = kNodePort;
  low.replace(low.find("nodePort: 30053"), 15, "nodePort: 8080");
  absl::StatusOr<ApplyResult> bad = registry_->Apply(Manifest(low));
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(std::string(bad.status().message()),
              HasSubstr("spec.ports[1].nodePort: 8080 is outside the node port range 30000-32767"));

  // Deleting the service releases its ports.
  ASSERT_OK(registry_->Delete("default", "np").status());
  ASSERT_OK_AND_ASSIGN(store::RangeResult left, store_->Range(kNodePortsPrefix));
  EXPECT_TRUE(left.kvs.empty());
  // A type change to ClusterIP releases them too.
  ASSERT_OK(registry_->Apply(Manifest(kNodePort)).status());
  std::string cip = kNodePort;
  cip.replace(cip.find("type: NodePort"), 14, "type: ClusterIP");
  cip.replace(cip.find(", nodePort: 30053"), 17, "");
  ASSERT_OK(registry_->Apply(Manifest(cip)).status());
  ASSERT_OK_AND_ASSIGN(left, store_->Range(kNodePortsPrefix));
  EXPECT_TRUE(left.kvs.empty());
}

TEST_F(ServicesTest, BadManifestsNameTheField) {
  EXPECT_THAT(registry_->Apply(Manifest("kind: Service\nmetadata: {name: web}\nspec: {ports: "
                                        "[{port: 70000}]}\n")),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("spec.ports[0].port")));
  EXPECT_THAT(registry_->Apply(Manifest("kind: Service\nmetadata: {name: Web}\nspec: {ports: "
                                        "[{port: 80}]}\n")),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("metadata.name")));
}

TEST_F(ServicesTest, ControllerPublishesServicesAndEndpoints) {
  ASSERT_OK(registry_->Apply(Manifest(kWeb)).status());
  model::Pod pod;
  pod.meta.name = "web-1";
  pod.meta.labels = {{"app", "web"}};
  pod.id = "c1";
  pod.node = "n1";
  pod.ips = {"10.244.0.5"};
  pod.ready = true;
  ASSERT_OK(store_->Put("/loom/pods/n1/c1", model::PodToJson(pod).dump()).status());

  ServiceController controller(store_.get());
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::shared_ptr<const ServiceState>> seen;
  controller.Subscribe([&](std::shared_ptr<const ServiceState> s) {
    std::lock_guard<std::mutex> lock(mu);
    seen.push_back(std::move(s));
    cv.notify_all();
  });
  ASSERT_OK(controller.Start());
  auto wait_for = [&](auto pred) {
    std::unique_lock<std::mutex> lock(mu);
    return cv.wait_for(lock, std::chrono::seconds(5),
                       [&] { return !seen.empty() && pred(*seen.back()); });
  };
  ASSERT_TRUE(wait_for([](const ServiceState& s) {
    return s.services.size() == 1 &&
           s.services.Find("default/web")->endpoints->endpoints.size() == 1;
  }));
  EXPECT_TRUE(controller.Current()->services.Find("default/web")->endpoints->endpoints[0].ready);

  // A broken pod value (skipped), a pod turning unready, a new service: each shows up.
  // The pods' watch delivers in order, so the state with the pod unready comes after
  // the broken value was seen.
  ASSERT_OK(store_->Put("/loom/pods/n1/bad", "{not json").status());
  pod.ready = false;
  ASSERT_OK(store_->Put("/loom/pods/n1/c1", model::PodToJson(pod).dump()).status());
  ASSERT_TRUE(wait_for([](const ServiceState& s) {
    const model::EndpointSet& web = *s.services.Find("default/web")->endpoints;
    return !web.endpoints.empty() && !web.endpoints[0].ready;
  }));
  EXPECT_GE(controller.decode_errors(), 1u);
  std::string api = kWeb;
  api.replace(api.find("name: web"), 9, "name: api");
  ASSERT_OK(registry_->Apply(Manifest(api)).status());
  ASSERT_TRUE(wait_for([](const ServiceState& s) { return s.services.size() == 2; }));
  ASSERT_OK(store_->Delete("/loom/pods/n1/c1").status());
  ASSERT_OK(registry_->Delete("default", "web").status());
  ASSERT_TRUE(wait_for([](const ServiceState& s) {
    return s.services.size() == 1 && s.services.Find("default/api")->endpoints->endpoints.empty();
  }));
  controller.Stop();
}

// A store whose watches the test drives by hand (for resync batches).
class ScriptedStore : public store::Store {
 public:
  absl::StatusOr<std::optional<store::KeyValue>> Get(std::string_view) override { return No(); }
  absl::StatusOr<store::RangeResult> Range(std::string_view) override { return No(); }
  absl::StatusOr<store::Revision> Put(std::string_view, std::string_view, store::LeaseId) override {
    return No();
  }
  absl::StatusOr<int64_t> Delete(std::string_view) override { return No(); }
  absl::StatusOr<store::TxnResult> Commit(const store::Txn&) override { return No(); }
  absl::StatusOr<store::LeaseId> GrantLease(absl::Duration) override { return No(); }
  absl::Status KeepAlive(store::LeaseId) override { return No(); }
  absl::Status RevokeLease(store::LeaseId) override { return No(); }
  absl::Status Compact(store::Revision) override { return No(); }
  absl::StatusOr<std::unique_ptr<store::Watch>> WatchPrefix(std::string_view prefix,
                                                            store::Revision,
                                                            store::WatchCallback cb) override {
    callbacks[std::string(prefix)] = std::move(cb);
    return std::make_unique<store::Watch>();
  }
  std::map<std::string, store::WatchCallback> callbacks;

 private:
  static absl::Status No() { return absl::UnimplementedError("scripted"); }
};

store::KeyValue ServiceKv(const std::string& name, int64_t rev) {
  auto svc = model::ServiceFromManifest(Manifest(
      "kind: Service\nmetadata: {name: " + name + "}\nspec: {clusterIP: None, selector: {app: " +
      name + "}}\n"));
  EXPECT_TRUE(svc.ok()) << svc.status();
  return {ServiceKey("default", name), StoredService{*svc, ""}.ToJson().dump(), rev, rev, 1, 0};
}

// Every state a controller publishes, kept in order.
class StateLog {
 public:
  explicit StateLog(ServiceController& controller) {
    controller.Subscribe([this](std::shared_ptr<const ServiceState> s) {
      std::lock_guard<std::mutex> lock(mu_);
      states_.push_back(std::move(s));
      cv_.notify_all();
    });
  }
  // The newest state once it holds `revision`; null if none does within 5 s.
  std::shared_ptr<const ServiceState> WaitForRevision(store::Revision revision) {
    std::unique_lock<std::mutex> lock(mu_);
    bool arrived = cv_.wait_for(lock, std::chrono::seconds(5), [&] {
      return !states_.empty() && states_.back()->revision == revision;
    });
    return arrived ? states_.back() : nullptr;
  }
  std::vector<std::shared_ptr<const ServiceState>> All() {
    std::lock_guard<std::mutex> lock(mu_);
    return states_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::shared_ptr<const ServiceState>> states_;
};

TEST(ServiceControllerTest, ResyncReplacesWhatItKnew) {
  ScriptedStore store;
  ServiceController controller(&store, {absl::Milliseconds(1)});
  std::mutex mu;
  std::condition_variable cv;
  std::shared_ptr<const ServiceState> last;
  controller.Subscribe([&](std::shared_ptr<const ServiceState> s) {
    std::lock_guard<std::mutex> lock(mu);
    last = std::move(s);
    cv.notify_all();
  });
  ASSERT_OK(controller.Start());
  auto wait_for = [&](auto pred) {
    std::unique_lock<std::mutex> lock(mu);
    return cv.wait_for(lock, std::chrono::seconds(5), [&] { return last && pred(*last); });
  };
  auto& services = store.callbacks.at(std::string(kServicesPrefix));
  auto& pods = store.callbacks.at(std::string(kPodsPrefix));
  store::WatchBatch first{true, {ServiceKv("a", 2), ServiceKv("b", 3)}, {}, 3};
  services(first);
  EXPECT_EQ(controller.Current(), nullptr);  // pods not synced yet: nothing published
  pods(store::WatchBatch{true, {}, {}, 3});
  ASSERT_TRUE(wait_for([](const ServiceState& s) { return s.services.size() == 2; }));

  // Events, then a resync without "a" (history compacted meanwhile): a is gone.
  services(store::WatchBatch{false, {}, {{store::Event::Type::kPut, ServiceKv("c", 4)}}, 4});
  ASSERT_TRUE(wait_for([](const ServiceState& s) { return s.services.size() == 3; }));
  services(store::WatchBatch{true, {ServiceKv("b", 3), ServiceKv("d", 9)}, {}, 9});
  ASSERT_TRUE(wait_for([](const ServiceState& s) {
    std::vector<std::string> keys;
    for (const model::ServiceEntry& e : s.services) keys.push_back(e.key());
    return keys == std::vector<std::string>{"default/b", "default/d"} && s.revision == 9;
  }));
  services(store::WatchBatch{
      false, {}, {{store::Event::Type::kDelete, {ServiceKey("default", "b"), "", 0, 10, 0, 0}}}, 10});
  ASSERT_TRUE(wait_for([](const ServiceState& s) { return s.services.size() == 1; }));
  controller.Stop();
}

// A snapshot shares with the one before it every object that did not change: the
// same Service and EndpointSet objects, not equal copies.
TEST(ServiceControllerTest, UnchangedServicesAreSharedBetweenStates) {
  ScriptedStore store;
  ServiceController controller(&store, {absl::Milliseconds(1)});
  StateLog log(controller);
  ASSERT_OK(controller.Start());
  auto pod_kv = [](const std::string& app, bool ready, int64_t rev) {
    model::Pod p;
    p.meta.name = app + "-0";
    p.meta.labels = {{"app", app}};
    p.id = "c-" + app;
    p.node = "n1";
    p.ips = {app == "a" ? "10.244.0.1" : "10.244.0.2"};
    p.ready = ready;
    return store::KeyValue{"/loom/pods/n1/c-" + app, model::PodToJson(p).dump(), rev, rev, 1, 0};
  };
  store.callbacks.at(std::string(kServicesPrefix))(
      store::WatchBatch{true, {ServiceKv("a", 2), ServiceKv("b", 3)}, {}, 3});
  store.callbacks.at(std::string(kPodsPrefix))(
      store::WatchBatch{true, {pod_kv("a", true, 3), pod_kv("b", true, 3)}, {}, 3});
  std::shared_ptr<const ServiceState> first = log.WaitForRevision(3);
  ASSERT_NE(first, nullptr);
  ASSERT_EQ(first->services.size(), 2u);

  // Pod a turns unready: a's endpoints are new, a's service and all of b are the same objects.
  store.callbacks.at(std::string(kPodsPrefix))(
      store::WatchBatch{false, {}, {{store::Event::Type::kPut, pod_kv("a", false, 4)}}, 4});
  std::shared_ptr<const ServiceState> second = log.WaitForRevision(4);
  ASSERT_NE(second, nullptr);
  EXPECT_EQ(second->changed, std::vector<std::string>{"default/a"});
  const model::ServiceEntry* a1 = first->services.Find("default/a");
  const model::ServiceEntry* a2 = second->services.Find("default/a");
  const model::ServiceEntry* b1 = first->services.Find("default/b");
  const model::ServiceEntry* b2 = second->services.Find("default/b");
  ASSERT_TRUE(a1 && a2 && b1 && b2);
  EXPECT_EQ(a2->service, a1->service);
  EXPECT_NE(a2->endpoints, a1->endpoints);
  EXPECT_FALSE(a2->endpoints->endpoints[0].ready);
  EXPECT_TRUE(a1->endpoints->endpoints[0].ready);  // the first snapshot is untouched
  EXPECT_EQ(*b2, *b1);

  // Service b is put again unchanged (same revision, as after a resync): nothing is
  // published for it and its objects stay; a new revision of it is a new object.
  store.callbacks.at(std::string(kServicesPrefix))(
      store::WatchBatch{false, {}, {{store::Event::Type::kPut, ServiceKv("b", 3)}}, 5});
  std::shared_ptr<const ServiceState> third = log.WaitForRevision(5);
  ASSERT_NE(third, nullptr);
  EXPECT_TRUE(third->changed.empty());
  EXPECT_EQ(*third->services.Find("default/b"), *b1);
  store.callbacks.at(std::string(kServicesPrefix))(
      store::WatchBatch{false, {}, {{store::Event::Type::kPut, ServiceKv("b", 6)}}, 6});
  std::shared_ptr<const ServiceState> fourth = log.WaitForRevision(6);
  ASSERT_NE(fourth, nullptr);
  EXPECT_EQ(fourth->changed, std::vector<std::string>{"default/b"});
  EXPECT_NE(fourth->services.Find("default/b")->service, b1->service);
  EXPECT_EQ(*fourth->services.Find("default/a"), *a2);
  controller.Stop();
}

// The incremental derivation must always equal deriving everything from scratch,
// and `changed` must name exactly the services that differ from the last snapshot.
TEST(ServiceControllerTest, IncrementalEndpointsMatchAFullDerivation) {
  ScriptedStore store;
  ServiceController controller(&store, {absl::Milliseconds(1)});
  StateLog log(controller);
  ASSERT_OK(controller.Start());
  auto& on_services = store.callbacks.at(std::string(kServicesPrefix));
  auto& on_pods = store.callbacks.at(std::string(kPodsPrefix));

  std::mt19937 rng(7);
  auto pick = [&](int n) { return static_cast<int>(rng() % n); };
  const std::vector<std::string> namespaces = {"default", "other"};
  const std::vector<std::pair<std::string, std::string>> pairs = {
      {"app", "web"}, {"app", "api"}, {"tier", "front"}, {"tier", "back"}, {"track", "canary"}};
  std::map<std::string, model::Service> services;  // by store key
  std::map<std::string, model::Pod> pods;           // by store key
  auto random_service = [&](int i) {
    model::Service s;
    s.meta.name = StrCat("s", i);
    s.meta.ns = namespaces[pick(2)];
    s.type = pick(8) == 0 ? model::ServiceType::kExternalName : model::ServiceType::kHeadless;
    if (s.type == model::ServiceType::kExternalName) {
      s.external_name = "example.org";
      return s;
    }
    int n = pick(3);  // 0: no selector
    for (int j = 0; j < n; ++j) s.selector.insert(pairs[pick(pairs.size())]);
    s.ports = {{"http", 80, static_cast<uint16_t>(8000 + pick(3)), "", model::Protocol::kTcp, 0}};
    return s;
  };
  auto random_pod = [&](int i) {
    model::Pod p;
    p.meta.name = StrCat("p", i);
    p.meta.ns = namespaces[pick(2)];
    int n = pick(4);
    for (int j = 0; j < n; ++j) p.meta.labels.insert(pairs[pick(pairs.size())]);
    p.id = StrCat("c", i);
    p.node = "n1";
    p.ips = {StrCat("10.244.0.", i + 1)};
    p.ready = pick(3) != 0;
    return p;
  };
  auto service_kv = [](const std::string& key, const model::Service& s, int64_t rev) {
    return store::KeyValue{key, StoredService{s, ""}.ToJson().dump(), rev, rev, 1, 0};
  };
  auto pod_kv = [](const std::string& key, const model::Pod& p, int64_t rev) {
    return store::KeyValue{key, model::PodToJson(p).dump(), rev, rev, 1, 0};
  };

  int64_t rev = 1;
  on_services(store::WatchBatch{true, {}, {}, rev});
  on_pods(store::WatchBatch{true, {}, {}, rev});
  std::shared_ptr<const ServiceState> previous;
  for (int step = 0; step < 300; ++step) {
    ++rev;
    int what = pick(10);
    if (what < 3) {  // put a service (new or replaced)
      model::Service s = random_service(pick(12));
      std::string key = ServiceKey(s.meta.ns, s.meta.name);
      services[key] = s;
      on_services(store::WatchBatch{false, {}, {{store::Event::Type::kPut, service_kv(key, s, rev)}}, rev});
    } else if (what < 4 && !services.empty()) {  // delete a service
      auto it = std::next(services.begin(), pick(services.size()));
      on_services(store::WatchBatch{
          false, {}, {{store::Event::Type::kDelete, {it->first, "", 0, rev, 0, 0}}}, rev});
      services.erase(it);
    } else if (what < 8) {  // put a pod
      int i = pick(20);
      model::Pod p = random_pod(i);
      std::string key = StrCat("/loom/pods/n1/c", i);
      pods[key] = p;
      on_pods(store::WatchBatch{false, {}, {{store::Event::Type::kPut, pod_kv(key, p, rev)}}, rev});
    } else if (what < 9 && !pods.empty()) {  // delete a pod
      auto it = std::next(pods.begin(), pick(pods.size()));
      on_pods(store::WatchBatch{
          false, {}, {{store::Event::Type::kDelete, {it->first, "", 0, rev, 0, 0}}}, rev});
      pods.erase(it);
    } else {  // a resync of the pods with one changed and one dropped
      if (!pods.empty()) pods.erase(std::next(pods.begin(), pick(pods.size())));
      int i = pick(20);
      pods[StrCat("/loom/pods/n1/c", i)] = random_pod(i);
      std::vector<store::KeyValue> snapshot;
      for (const auto& [k, p] : pods) snapshot.push_back(pod_kv(k, p, rev));
      on_pods(store::WatchBatch{true, snapshot, {}, rev});
    }
    std::shared_ptr<const ServiceState> state = log.WaitForRevision(rev);
    ASSERT_NE(state, nullptr) << "step " << step;
    // Everything from scratch.
    std::vector<const model::Pod*> all;
    for (const auto& [k, p] : pods) all.push_back(&p);
    ASSERT_EQ(state->services.size(), services.size()) << "step " << step;
    for (const auto& [k, s] : services) {
      const model::ServiceEntry* e = state->services.Find(s.meta.Key());
      ASSERT_NE(e, nullptr);
      EXPECT_EQ(*e->endpoints, model::DeriveEndpoints(s, all))
          << "step " << step << " service " << s.meta.Key();
    }
    // `changed` against the previous snapshot seen (states in between are folded in).
    if (previous && !state->full) {
      std::set<std::string> differ;
      for (const model::ServiceEntry& e : previous->services) {
        const model::ServiceEntry* now = state->services.Find(e.key());
        if (now == nullptr || !(*now->service == *e.service) ||
            !(*now->endpoints == *e.endpoints)) {
          differ.insert(e.key());
        }
        // Unchanged objects are shared, never copied.
        if (now != nullptr && *now->service == *e.service) {
          EXPECT_EQ(now->service, e.service) << "step " << step << " " << e.key();
        }
        if (now != nullptr && *now->endpoints == *e.endpoints) {
          EXPECT_EQ(now->endpoints, e.endpoints) << "step " << step << " " << e.key();
        }
      }
      for (const model::ServiceEntry& e : state->services) {
        if (previous->services.Find(e.key()) == nullptr) differ.insert(e.key());
      }
      // Union of the `changed` of every snapshot after `previous`.
      std::set<std::string> reported;
      bool after_previous = false;
      for (const auto& st : log.All()) {
        if (after_previous) reported.insert(st->changed.begin(), st->changed.end());
        if (st == previous) after_previous = true;
      }
      for (const std::string& k : differ) EXPECT_TRUE(reported.contains(k)) << "step " << step << " " << k;
    }
    previous = state;
  }
  controller.Stop();
}

}  // namespace
}  // namespace loom::agent
