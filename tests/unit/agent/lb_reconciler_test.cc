// The load balancer's reconciler against a recording writer: which plans a service
// state produces, that unchanged state writes nothing, draining keeps backends, a
// restart from the maps' contents writes nothing and sweeps what no service claims,
// and NodePort frontends; and Loom's cgroup2 mount discovery.
#include <algorithm>

#include "agent/lb/cgroup2.h"
#include "agent/lb/lb_reconciler.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace loom::agent {
namespace {

using lb::MapOp;

class RecordingWriter : public ServiceLbWriter {
 public:
  absl::Status SetFrontendOptions(const FrontendOptionsUpdate& o) override {
    options.push_back(o);
    return absl::OkStatus();
  }
  absl::Status ApplyAll(std::span<const lb::UpdatePlan> plans) override {
    for (const lb::UpdatePlan& p : plans) {
      for (const MapOp& op : p.ops) ops.push_back(op);
    }
    ++batches;
    return absl::OkStatus();
  }
  size_t Count(MapOp::Kind kind) const {
    return std::count_if(ops.begin(), ops.end(), [&](const MapOp& o) { return o.kind == kind; });
  }
  void Clear() {
    ops.clear();
    options.clear();
    batches = 0;
  }
  std::vector<MapOp> ops;
  std::vector<FrontendOptionsUpdate> options;
  int batches = 0;
};

model::Service Web(model::ServiceType type = model::ServiceType::kClusterIP) {
  model::Service s;
  s.meta.ns = "default";
  s.meta.name = "web";
  s.type = type;
  s.cluster_ip = "10.96.0.10";
  s.ports = {{"http", 80, 8080, "", model::Protocol::kTcp, 0}};
  if (type == model::ServiceType::kNodePort) s.ports[0].node_port = 30080;
  return s;
}

model::Endpoint Ep(const char* ip, bool ready = true) {
  model::Endpoint e;
  e.ip = ip;
  e.ready = ready;
  e.ports = {8080};
  return e;
}

ServiceState State(const std::vector<model::Service>& services,
                   std::vector<std::vector<model::Endpoint>> endpoints) {
  model::EndpointSets sets;
  for (size_t i = 0; i < services.size(); ++i) {
    sets[services[i].meta.Key()].endpoints = endpoints[i];
  }
  ServiceState s;
  s.services = model::ServiceTable::Of(services, sets);
  return s;
}

TEST(LbReconcilerTest, ProgramsANewServiceOnceAndSkipsUnchangedState) {
  LbReconciler r({}, std::nullopt);
  RecordingWriter w;
  ServiceState s = State({Web()}, {{Ep("10.244.1.5"), Ep("10.244.2.5")}});
  ASSERT_OK_AND_ASSIGN(LbReconcileStats stats, r.Reconcile(s, w));
  EXPECT_EQ(stats.services_changed, 1u);
  EXPECT_EQ(w.Count(MapOp::Kind::kPutBackend), 2u);
  EXPECT_EQ(w.Count(MapOp::Kind::kPutSlot), 2u);
  EXPECT_EQ(w.Count(MapOp::Kind::kPutServiceCount), 1u);
  ASSERT_EQ(w.options.size(), 1u);
  EXPECT_FALSE(w.options[0].client_ip_affinity);

  w.Clear();
  ASSERT_OK_AND_ASSIGN(stats, r.Reconcile(s, w));
  EXPECT_EQ(stats.services_changed, 0u);
  EXPECT_EQ(w.batches, 0);

  // Affinity alone changes the frontend's options, with no map operation.
  model::Service sticky = Web();
  sticky.client_ip_affinity = true;
  s = State({sticky}, {{Ep("10.244.1.5"), Ep("10.244.2.5")}});
  ASSERT_OK_AND_ASSIGN(stats, r.Reconcile(s, w));
  ASSERT_EQ(w.options.size(), 1u);
  EXPECT_TRUE(w.options[0].client_ip_affinity);
  EXPECT_TRUE(w.ops.empty());
}

TEST(LbReconcilerTest, TerminatingBackendKeepsItsEntryAndLeavesWithTheEndpoint) {
  LbReconciler r({}, std::nullopt);
  RecordingWriter w;
  ASSERT_OK(r.Reconcile(State({Web()}, {{Ep("10.244.1.5"), Ep("10.244.2.5")}}), w).status());
  w.Clear();
  ASSERT_OK(r.Reconcile(State({Web()}, {{Ep("10.244.1.5"), Ep("10.244.2.5", false)}}), w).status());
  EXPECT_EQ(w.Count(MapOp::Kind::kDeleteBackend), 0u);  // existing flows still translate
  EXPECT_EQ(w.Count(MapOp::Kind::kDeleteSlot), 1u);     // no new connection
  w.Clear();
  ASSERT_OK(r.Reconcile(State({Web()}, {{Ep("10.244.1.5")}}), w).status());
  EXPECT_EQ(w.Count(MapOp::Kind::kDeleteBackend), 1u);
  w.Clear();
  ASSERT_OK(r.Reconcile(State({}, {}), w).status());
  EXPECT_EQ(w.Count(MapOp::Kind::kDeleteService), 1u);
  EXPECT_EQ(w.Count(MapOp::Kind::kDeleteBackend), 1u);
  EXPECT_EQ(r.services(), 0u);
  EXPECT_EQ(r.backends(), 0u);
}

TEST(LbReconcilerTest, RestartFromTheMapsWritesNothingAndSweepsOrphans) {
  // What a first loomd programmed, as the maps would read back.
  LbReconciler first({}, std::nullopt);
  RecordingWriter w;
  ServiceState s = State({Web()}, {{Ep("10.244.1.5"), Ep("10.244.2.5")}});
  ASSERT_OK(first.Reconcile(s, w).status());
  lb::ProgrammedMaps maps;
  lb::ProgrammedService::Frontend fe;
  fe.frontend = {*net::Ipv4Address::Parse("10.96.0.10"), 80, model::Protocol::kTcp};
  for (const MapOp& op : w.ops) {
    if (op.kind == MapOp::Kind::kPutBackend) maps.backends.emplace_back(op.backend_id, op.backend);
  }
  for (const auto& [id, b] : maps.backends) fe.slots.push_back(b);
  maps.frontends.push_back(fe);
  // A frontend of a service deleted while loomd was down, and a backend only it used.
  lb::ProgrammedService::Frontend gone;
  gone.frontend = {*net::Ipv4Address::Parse("10.96.0.99"), 53, model::Protocol::kUdp};
  lb::BackendAddress old{*net::Ipv4Address::Parse("10.244.3.3"), 53, model::Protocol::kUdp};
  gone.slots.push_back(old);
  maps.frontends.push_back(gone);
  maps.backends.emplace_back(7, old);
  // A backend nothing names (left by an interrupted plan).
  maps.backends.emplace_back(9, lb::BackendAddress{*net::Ipv4Address::Parse("10.244.4.4"), 1,
                                                   model::Protocol::kTcp});

  LbReconciler restarted(maps, std::nullopt);
  w.Clear();
  ASSERT_OK(restarted.Reconcile(s, w).status());
  // web: nothing rewritten; the orphans: removed.
  EXPECT_EQ(w.Count(MapOp::Kind::kPutBackend), 0u);
  EXPECT_EQ(w.Count(MapOp::Kind::kPutSlot), 0u);
  EXPECT_EQ(w.Count(MapOp::Kind::kDeleteService), 1u);
  EXPECT_EQ(w.Count(MapOp::Kind::kDeleteBackend), 2u);
  for (const MapOp& op : w.ops) {
    if (op.kind == MapOp::Kind::kDeleteService) {
      EXPECT_EQ(op.frontend, gone.frontend);
    }
    if (op.kind == MapOp::Kind::kDeleteBackend) {
      EXPECT_TRUE(op.backend_id == 7 || op.backend_id == 9);
    }
  }
  // New backends get ids above the restored ones.
  w.Clear();
  ASSERT_OK(restarted.Reconcile(
      State({Web()}, {{Ep("10.244.1.5"), Ep("10.244.2.5"), Ep("10.244.5.5")}}), w).status());
  ASSERT_EQ(w.Count(MapOp::Kind::kPutBackend), 1u);
  for (const MapOp& op : w.ops) {
    if (op.kind == MapOp::Kind::kPutBackend) {
      EXPECT_GT(op.backend_id, 9u);
    }
  }
}

TEST(LbReconcilerTest, NodePortServicesAlsoListenOnTheNodeAddress) {
  auto node = *net::Ipv4Address::Parse("198.51.100.11");
  model::EndpointSet eps;
  eps.service = "default/web";
  eps.endpoints = {Ep("10.244.1.5")};
  ASSERT_OK_AND_ASSIGN(lb::ServiceBackendSet set,
                       LbReconciler::DesiredSet(Web(model::ServiceType::kNodePort), eps, node));
  ASSERT_EQ(set.frontends.size(), 2u);
  bool found = false;
  for (const auto& f : set.frontends) {
    if (f.frontend.vip == node) {
      found = true;
      EXPECT_EQ(f.frontend.port, 30080);
      EXPECT_EQ(f.backends.size(), 1u);
    }
  }
  EXPECT_TRUE(found);
  // ClusterIP services, or no node address: only the VIP.
  ASSERT_OK_AND_ASSIGN(set, LbReconciler::DesiredSet(Web(), eps, node));
  EXPECT_EQ(set.frontends.size(), 1u);
  ASSERT_OK_AND_ASSIGN(set, LbReconciler::DesiredSet(Web(model::ServiceType::kNodePort), eps,
                                                     std::nullopt));
  EXPECT_EQ(set.frontends.size(), 1u);
}

TEST(LbReconcilerTest, AServiceThatCannotBeBuiltKeepsWhatItHad) {
  LbReconciler r({}, std::nullopt);
  RecordingWriter w;
  ASSERT_OK(r.Reconcile(State({Web()}, {{Ep("10.244.1.5")}}), w).status());
  w.Clear();
  ASSERT_OK_AND_ASSIGN(LbReconcileStats stats,
                       r.Reconcile(State({Web()}, {{Ep("not-an-ip")}}), w));
  EXPECT_EQ(stats.errors, 1u);
  EXPECT_TRUE(w.ops.empty());
  EXPECT_EQ(r.services(), 1u);
}

// Only entries that differ from the last applied state are looked at: a bad service
// is reported once, not again with every state that still holds it.
TEST(LbReconcilerTest, OnlyChangedEntriesAreLookedAt) {
  LbReconciler r({}, std::nullopt);
  RecordingWriter w;
  model::Service api = Web();
  api.meta.name = "api";
  api.cluster_ip = "10.96.0.11";
  ServiceState s = State({Web(), api}, {{Ep("not-an-ip")}, {Ep("10.244.1.6")}});
  ASSERT_OK_AND_ASSIGN(LbReconcileStats stats, r.Reconcile(s, w));
  EXPECT_EQ(stats.errors, 1u);
  EXPECT_EQ(stats.services_changed, 1u);
  // The next state: web as it was (the same entry), api's endpoints changed.
  model::EndpointSet moved;
  moved.service = "default/api";
  moved.endpoints = {Ep("10.244.1.7")};
  const model::ServiceEntry& api_entry = *s.services.Find("default/api");
  ServiceState next;
  next.services = s.services.With(std::vector<model::ServiceTable::Change>{
      {"default/api", {api_entry.service, std::make_shared<const model::EndpointSet>(moved)}}});
  w.Clear();
  ASSERT_OK_AND_ASSIGN(stats, r.Reconcile(next, w));
  EXPECT_EQ(stats.errors, 0u);
  EXPECT_EQ(stats.services_changed, 1u);
  EXPECT_EQ(w.Count(MapOp::Kind::kPutBackend), 1u);
}

// A plan that fails for want of a backend id is planned again with the next state,
// even when the service did not change.
TEST(LbReconcilerTest, AServiceWithoutBackendIdsIsPlannedAgainLater) {
  // After a restart the maps hold a backend with the last id, used only by the
  // frontend of a service that is gone: no fresh id is left until it is swept.
  lb::ProgrammedMaps maps;
  lb::ProgrammedService::Frontend gone;
  gone.frontend = {*net::Ipv4Address::Parse("10.96.0.99"), 53, model::Protocol::kUdp};
  lb::BackendAddress old{*net::Ipv4Address::Parse("10.244.3.3"), 53, model::Protocol::kUdp};
  gone.slots.push_back(old);
  maps.frontends.push_back(gone);
  maps.backends.emplace_back(UINT32_MAX - 1, old);
  LbReconciler r(maps, std::nullopt);
  RecordingWriter w;
  ServiceState s = State({Web()}, {{Ep("10.244.1.5")}});
  ASSERT_OK_AND_ASSIGN(LbReconcileStats stats, r.Reconcile(s, w));
  EXPECT_EQ(stats.errors, 1u);
  EXPECT_EQ(stats.services_changed, 0u);
  EXPECT_EQ(w.Count(MapOp::Kind::kDeleteBackend), 1u);  // the orphan's id is free now
  w.Clear();
  ASSERT_OK_AND_ASSIGN(stats, r.Reconcile(s, w));  // the same state
  EXPECT_EQ(stats.errors, 0u);
  EXPECT_EQ(stats.services_changed, 1u);
  EXPECT_EQ(w.Count(MapOp::Kind::kPutBackend), 1u);
  EXPECT_EQ(r.services(), 1u);
}

TEST(Cgroup2Test, FindsTheCgroup2MountAmongV1Controllers) {
  EXPECT_EQ(FindCgroup2Mount("tmpfs /sys/fs/cgroup tmpfs rw 0 0\n"
                             "cgroup /sys/fs/cgroup/cpu cgroup rw,cpu 0 0\n"
                             "cgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0\n"),
            "/sys/fs/cgroup/unified");
  EXPECT_EQ(FindCgroup2Mount("cgroup2 /sys/fs/cgroup cgroup2 rw,nsdelegate 0 0\n"), "/sys/fs/cgroup");
  EXPECT_EQ(FindCgroup2Mount("none /mnt/my\\040cg cgroup2 rw 0 0\n"), "/mnt/my cg");
  EXPECT_EQ(FindCgroup2Mount("cgroup /sys/fs/cgroup/cpu cgroup rw,cpu 0 0\n"), "");
  EXPECT_EQ(FindCgroup2Mount(""), "");
}

TEST(Cgroup2Test, RejectsARelativeOrNonCgroupDirectory) {
  absl::StatusOr<Cgroup2Dir> d = ResolveLoomCgroup2("loom", "/tmp");
  EXPECT_FALSE(d.ok());
  EXPECT_NE(std::string(d.status().message()).find("--cgroup2-dir"), std::string::npos);
  d = ResolveLoomCgroup2("/tmp/loom-not-a-cgroup/loom", "/tmp");
  EXPECT_FALSE(d.ok());
  EXPECT_NE(std::string(d.status().message()).find("not in a cgroup2 hierarchy"), std::string::npos);
}

}  // namespace
}  // namespace loom::agent
