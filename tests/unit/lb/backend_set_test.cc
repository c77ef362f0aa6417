#include "lb/backend_set.h"

#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "common/strings.h"
#include "tests/testing/status_matchers.h"

namespace loom::lb {
namespace {

using ::loom::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using Kind = MapOp::Kind;

model::Service WebService() {
  model::Service svc;
  svc.meta.name = "web";
  svc.cluster_ip = "10.96.0.10";
  svc.ports = {{.name = "http", .port = 80, .target_port = 8080},
               {.name = "dns", .port = 53, .target_port = 5353, .protocol = model::Protocol::kUdp}};
  return svc;
}

model::Endpoint Ep(std::string ip, bool ready, std::vector<uint16_t> ports = {8080, 5353}) {
  return {.ip = std::move(ip), .pod = "default/p", .node = "n1", .ready = ready,
          .ports = std::move(ports)};
}

BackendAddress Addr(uint8_t last, uint16_t port = 8080,
                    model::Protocol proto = model::Protocol::kTcp) {
  return {net::Ipv4Address(10, 244, 0, last), port, proto};
}

const ServiceFrontend kHttp{net::Ipv4Address(10, 96, 0, 10), 80, model::Protocol::kTcp};

TEST(BuildBackendSetTest, ReadyEndpointsPerPort) {
  model::EndpointSet eps{"default/web",
                         {Ep("10.244.0.3", true), Ep("10.244.0.2", true), Ep("10.244.0.4", false),
                          Ep("10.244.0.5", true, {8080, 0})}};
  ASSERT_OK_AND_ASSIGN(ServiceBackendSet set, BuildBackendSet(WebService(), eps));
  EXPECT_EQ(set.service, "default/web");
  ASSERT_EQ(set.frontends.size(), 2u);
  // Sorted by frontend: port 53 first.
  const FrontendBackends& dns = set.frontends[0];
  EXPECT_EQ(dns.frontend.ToString(), "10.96.0.10:53/UDP");
  EXPECT_EQ(dns.port_name, "dns");
  EXPECT_THAT(dns.backends, ElementsAre(Addr(2, 5353, model::Protocol::kUdp),
                                        Addr(3, 5353, model::Protocol::kUdp)));
  const FrontendBackends& http = set.frontends[1];
  EXPECT_EQ(http.frontend, kHttp);
  // Unready (and terminating) 10.244.0.4 has no slot; 10.244.0.5 lacks the dns port only.
  EXPECT_THAT(http.backends, ElementsAre(Addr(2), Addr(3), Addr(5)));
  EXPECT_THAT(http.draining, ElementsAre(Addr(4)));
  EXPECT_THAT(dns.draining, ElementsAre(Addr(4, 5353, model::Protocol::kUdp)));
  EXPECT_EQ(http.backends[0].ToString(), "10.244.0.2:8080/TCP");
}

TEST(BuildBackendSetTest, NoFrontendWithoutClusterIp) {
  model::Service svc = WebService();
  svc.cluster_ip = "";
  ASSERT_OK_AND_ASSIGN(ServiceBackendSet set, BuildBackendSet(svc, {"default/web", {}}));
  EXPECT_TRUE(set.frontends.empty());
  svc = WebService();
  svc.type = model::ServiceType::kHeadless;
  ASSERT_OK_AND_ASSIGN(set, BuildBackendSet(svc, {"default/web", {}}));
  EXPECT_TRUE(set.frontends.empty());
}

TEST(BuildBackendSetTest, NoReadyEndpointStillHasFrontend) {
  ASSERT_OK_AND_ASSIGN(ServiceBackendSet set,
                       BuildBackendSet(WebService(), {"default/web", {Ep("10.244.0.2", false)}}));
  ASSERT_EQ(set.frontends.size(), 2u);
  EXPECT_TRUE(set.frontends[0].backends.empty());
}

TEST(BuildBackendSetTest, Errors) {
  EXPECT_THAT(BuildBackendSet(WebService(), {"default/other", {}}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("default/other")));
  EXPECT_THAT(BuildBackendSet(WebService(), {"default/web", {Ep("nope", true)}}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("\"nope\" is not IPv4")));
  EXPECT_THAT(BuildBackendSet(WebService(), {"default/web", {Ep("10.244.0.2", true, {1})}}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("has 1 ports, not 2")));
  model::Service svc = WebService();
  svc.cluster_ip = "10.96.0";
  EXPECT_THAT(BuildBackendSet(svc, {"default/web", {}}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("cluster IP")));
}

TEST(BackendIdAllocatorTest, StableIdsReusedOnlyAfterRelease) {
  BackendIdAllocator ids(1, 3);
  ASSERT_OK_AND_ASSIGN(auto a, ids.Acquire(Addr(1)));
  EXPECT_EQ(a.id, 1u);
  EXPECT_TRUE(a.is_new);
  ASSERT_OK_AND_ASSIGN(auto a2, ids.Acquire(Addr(1)));
  EXPECT_EQ(a2.id, 1u);
  EXPECT_FALSE(a2.is_new);
  ASSERT_OK_AND_ASSIGN(auto b, ids.Acquire(Addr(2)));
  EXPECT_EQ(b.id, 2u);
  EXPECT_FALSE(ids.Release(Addr(1)));  // one reference left
  EXPECT_EQ(ids.Find(Addr(1)), 1u);
  EXPECT_TRUE(ids.Release(Addr(1)));
  EXPECT_EQ(ids.Find(Addr(1)), std::nullopt);
  EXPECT_FALSE(ids.Release(Addr(1)));
  // Fresh ids first, released ones after.
  ASSERT_OK_AND_ASSIGN(auto c, ids.Acquire(Addr(3)));
  EXPECT_EQ(c.id, 3u);
  ASSERT_OK_AND_ASSIGN(auto d, ids.Acquire(Addr(4)));
  EXPECT_EQ(d.id, 1u);
  EXPECT_THAT(ids.Acquire(Addr(5)),
              StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("10.244.0.5:8080/TCP")));
}

// The BPF maps as a reader sees them, with the invariant every reader relies on.
struct FakeMaps {
  std::map<uint32_t, BackendAddress> backends;
  std::map<std::pair<ServiceFrontend, uint32_t>, uint32_t> services;  // slot 0: count

  void Apply(const MapOp& op) {
    switch (op.kind) {
      case Kind::kPutBackend: backends[op.backend_id] = op.backend; break;
      case Kind::kPutSlot: ASSERT_GE(op.slot, 1u); services[{op.frontend, op.slot}] = op.backend_id; break;
      case Kind::kPutServiceCount: services[{op.frontend, 0}] = op.count; break;
      case Kind::kDeleteService: ASSERT_EQ(services.erase({op.frontend, 0}), 1u); break;
      case Kind::kDeleteSlot: ASSERT_EQ(services.erase({op.frontend, op.slot}), 1u); break;
      case Kind::kDeleteBackend: ASSERT_EQ(backends.erase(op.backend_id), 1u); break;
    }
  }

  // Every count points at written slots, and every slot a reader can reach names
  // an existing backend.
  void CheckReadable(const std::string& when) const {
    for (const auto& [key, value] : services) {
      if (key.second != 0) continue;
      for (uint32_t s = 1; s <= value; ++s) {
        auto slot = services.find({key.first, s});
        ASSERT_NE(slot, services.end()) << when << ": " << key.first.ToString() << " count "
                                        << value << " but no slot " << s;
        ASSERT_TRUE(backends.contains(slot->second))
            << when << ": slot " << s << " names missing backend " << slot->second;
      }
    }
  }

  // The maps hold exactly `state`.
  void CheckEquals(const ProgrammedService& state, const BackendIdAllocator& ids) const {
    size_t entries = 0;
    std::set<uint32_t> used;
    for (const auto& f : state.frontends) {
      auto count = services.find({f.frontend, 0});
      ASSERT_NE(count, services.end());
      ASSERT_EQ(count->second, f.slots.size());
      for (size_t j = 0; j < f.slots.size(); ++j) {
        auto id = ids.Find(f.slots[j]);
        ASSERT_TRUE(id.has_value());
        ASSERT_EQ(services.at({f.frontend, j + 1}), *id);
        ASSERT_EQ(backends.at(*id), f.slots[j]);
        used.insert(*id);
      }
      for (const BackendAddress& b : f.retained) {
        auto id = ids.Find(b);
        ASSERT_TRUE(id.has_value());
        ASSERT_EQ(backends.at(*id), b);
        used.insert(*id);
      }
      entries += 1 + f.slots.size();
    }
    ASSERT_EQ(services.size(), entries);
    ASSERT_EQ(backends.size(), used.size());
  }
};

ServiceBackendSet OnePort(std::vector<uint8_t> lasts) {
  ServiceBackendSet set{"default/web", {{.frontend = kHttp}}};
  for (uint8_t l : lasts) set.frontends[0].backends.push_back(Addr(l));
  std::sort(set.frontends[0].backends.begin(), set.frontends[0].backends.end());
  return set;
}

TEST(PlanServiceUpdateTest, FirstProgramWritesBackendsSlotsThenCount) {
  BackendIdAllocator ids;
  ASSERT_OK_AND_ASSIGN(UpdatePlan plan, PlanServiceUpdate({}, OnePort({2, 3}), ids));
  std::vector<std::string> ops;
  for (const MapOp& op : plan.ops) ops.push_back(op.ToString());
  EXPECT_THAT(ops, ElementsAre("put backend 1 = 10.244.0.2:8080/TCP",
                               "put backend 2 = 10.244.0.3:8080/TCP",
                               "put slot 10.96.0.10:80/TCP #1 = 1",
                               "put slot 10.96.0.10:80/TCP #2 = 2",
                               "put count 10.96.0.10:80/TCP = 2"));
}

TEST(PlanServiceUpdateTest, RemovalFillsTheGapThenShrinksThenDeletes) {
  BackendIdAllocator ids;
  ASSERT_OK_AND_ASSIGN(UpdatePlan first, PlanServiceUpdate({}, OnePort({2, 3, 4}), ids));
  ASSERT_OK_AND_ASSIGN(UpdatePlan plan, PlanServiceUpdate(first.programmed, OnePort({2, 4}), ids));
  std::vector<std::string> ops;
  for (const MapOp& op : plan.ops) ops.push_back(op.ToString());
  EXPECT_THAT(ops, ElementsAre("put slot 10.96.0.10:80/TCP #2 = 3",
                               "put count 10.96.0.10:80/TCP = 2",
                               "delete slot 10.96.0.10:80/TCP #3",
                               "delete backend 2"));
}

// Terminating (or unready) backends get no new connection but keep their entry,
// so tracked connections still translate, until they leave the endpoints.
TEST(PlanServiceUpdateTest, DrainingBackendKeepsItsEntryUntilGone) {
  BackendIdAllocator ids;
  ASSERT_OK_AND_ASSIGN(UpdatePlan first, PlanServiceUpdate({}, OnePort({2, 3}), ids));
  ServiceBackendSet draining = OnePort({2});
  draining.frontends[0].draining = {Addr(3), Addr(9)};  // 9 never had an entry
  ASSERT_OK_AND_ASSIGN(UpdatePlan drain, PlanServiceUpdate(first.programmed, draining, ids));
  std::vector<std::string> ops;
  for (const MapOp& op : drain.ops) ops.push_back(op.ToString());
  EXPECT_THAT(ops, ElementsAre("put count 10.96.0.10:80/TCP = 1", "delete slot 10.96.0.10:80/TCP #2"));
  EXPECT_THAT(drain.programmed.frontends[0].retained, ElementsAre(Addr(3)));
  EXPECT_EQ(ids.Find(Addr(3)), 2u);
  EXPECT_EQ(ids.Find(Addr(9)), std::nullopt);
  ASSERT_OK_AND_ASSIGN(UpdatePlan still, PlanServiceUpdate(drain.programmed, draining, ids));
  EXPECT_TRUE(still.ops.empty());
  // Ready again: back in a slot under the id it kept.
  ASSERT_OK_AND_ASSIGN(UpdatePlan back, PlanServiceUpdate(still.programmed, OnePort({2, 3}), ids));
  ops.clear();
  for (const MapOp& op : back.ops) ops.push_back(op.ToString());
  EXPECT_THAT(ops, ElementsAre("put slot 10.96.0.10:80/TCP #2 = 2", "put count 10.96.0.10:80/TCP = 2"));
  // Draining again, then gone from the endpoints: the entry goes.
  ASSERT_OK_AND_ASSIGN(UpdatePlan drain2, PlanServiceUpdate(back.programmed, draining, ids));
  ASSERT_OK_AND_ASSIGN(UpdatePlan gone, PlanServiceUpdate(drain2.programmed, OnePort({2}), ids));
  ops.clear();
  for (const MapOp& op : gone.ops) ops.push_back(op.ToString());
  EXPECT_THAT(ops, ElementsAre("delete backend 2"));
  EXPECT_EQ(ids.size(), 1u);
}

// What lost its slot, whatever the reason: the UDP sockets connected to those get ended.
TEST(PlanServiceUpdateTest, DepartedListsBackendsThatLostTheirSlot) {
  BackendIdAllocator ids;
  ASSERT_OK_AND_ASSIGN(UpdatePlan first, PlanServiceUpdate({}, OnePort({2, 3, 4}), ids));
  EXPECT_TRUE(first.departed.empty());
  ServiceBackendSet next = OnePort({2, 5});
  next.frontends[0].draining = {Addr(3)};
  ASSERT_OK_AND_ASSIGN(UpdatePlan plan, PlanServiceUpdate(first.programmed, next, ids));
  EXPECT_THAT(plan.departed, ElementsAre(std::pair(kHttp, Addr(3)), std::pair(kHttp, Addr(4))));
  ASSERT_OK_AND_ASSIGN(UpdatePlan gone, PlanServiceUpdate(plan.programmed, {"default/web", {}}, ids));
  EXPECT_THAT(gone.departed, ElementsAre(std::pair(kHttp, Addr(2)), std::pair(kHttp, Addr(5))));
}

TEST(PlanServiceUpdateTest, UnchangedSetIsNoOp) {
  BackendIdAllocator ids;
  ASSERT_OK_AND_ASSIGN(UpdatePlan first, PlanServiceUpdate({}, OnePort({2, 3}), ids));
  ASSERT_OK_AND_ASSIGN(UpdatePlan again, PlanServiceUpdate(first.programmed, OnePort({2, 3}), ids));
  EXPECT_TRUE(again.ops.empty());
  EXPECT_EQ(again.programmed, first.programmed);
  EXPECT_EQ(ids.size(), 2u);
}

TEST(PlanServiceUpdateTest, RemovedServiceStopsResolvingBeforeItsSlotsGo) {
  BackendIdAllocator ids;
  FakeMaps maps;
  ASSERT_OK_AND_ASSIGN(UpdatePlan first, PlanServiceUpdate({}, OnePort({2, 3}), ids));
  for (const MapOp& op : first.ops) maps.Apply(op);
  ASSERT_OK_AND_ASSIGN(UpdatePlan gone, PlanServiceUpdate(first.programmed, {"default/web", {}}, ids));
  ASSERT_FALSE(gone.ops.empty());
  EXPECT_EQ(gone.ops.front().kind, Kind::kDeleteService);
  for (const MapOp& op : gone.ops) {
    maps.Apply(op);
    maps.CheckReadable(op.ToString());
  }
  EXPECT_TRUE(maps.services.empty());
  EXPECT_TRUE(maps.backends.empty());
  EXPECT_EQ(ids.size(), 0u);
}

TEST(PlanServiceUpdateTest, SharedBackendKeepsItsIdAcrossServices) {
  BackendIdAllocator ids;
  ServiceBackendSet a = OnePort({2, 3});
  ServiceBackendSet b = OnePort({3});
  b.service = "default/other";
  b.frontends[0].frontend.vip = net::Ipv4Address(10, 96, 0, 11);
  ASSERT_OK_AND_ASSIGN(UpdatePlan pa, PlanServiceUpdate({}, a, ids));
  ASSERT_OK_AND_ASSIGN(UpdatePlan pb, PlanServiceUpdate({}, b, ids));
  EXPECT_EQ(pb.ops.front().kind, Kind::kPutSlot);  // 10.244.0.3 is already written
  ASSERT_OK_AND_ASSIGN(UpdatePlan gone, PlanServiceUpdate(pa.programmed, {"default/web", {}}, ids));
  std::vector<std::string> ops;
  for (const MapOp& op : gone.ops) ops.push_back(op.ToString());
  EXPECT_THAT(ops, ElementsAre("delete service 10.96.0.10:80/TCP",
                               "delete slot 10.96.0.10:80/TCP #1",
                               "delete slot 10.96.0.10:80/TCP #2",
                               "delete backend 1"));
  EXPECT_EQ(ids.Find(Addr(3)), 2u);
}

TEST(PlanServiceUpdateTest, ExhaustedIdsLeaveAllocatorUnchanged) {
  BackendIdAllocator ids(1, 2);
  ASSERT_OK_AND_ASSIGN(UpdatePlan first, PlanServiceUpdate({}, OnePort({2}), ids));
  EXPECT_THAT(PlanServiceUpdate(first.programmed, OnePort({2, 3, 4}), ids),
              StatusIs(absl::StatusCode::kResourceExhausted));
  EXPECT_EQ(ids.size(), 1u);
  ASSERT_OK_AND_ASSIGN(UpdatePlan again, PlanServiceUpdate(first.programmed, OnePort({2}), ids));
  EXPECT_TRUE(again.ops.empty());
}

// Random scale-ups, scale-downs, replacements and port changes: after every single
// operation of every plan, a reader finds a consistent service; after each plan the
// maps hold exactly the desired state.
TEST(PlanServiceUpdateTest, EveryIntermediateStateIsReadable) {
  std::mt19937 rng(42);
  BackendIdAllocator ids;
  FakeMaps maps;
  ProgrammedService state;
  const ServiceFrontend kDns{net::Ipv4Address(10, 96, 0, 10), 53, model::Protocol::kUdp};
  for (int round = 0; round < 300; ++round) {
    ServiceBackendSet desired{"default/web", {}};
    for (const ServiceFrontend& fe : {kDns, kHttp}) {
      if (rng() % 5 == 0) continue;  // the port comes and goes
      FrontendBackends f{.frontend = fe};
      int n = rng() % 12;
      for (int i = 0; i < n; ++i) {
        f.backends.push_back({net::Ipv4Address(10, 244, 0, 2 + rng() % 20), fe.port, fe.protocol});
      }
      std::sort(f.backends.begin(), f.backends.end());
      f.backends.erase(std::unique(f.backends.begin(), f.backends.end()), f.backends.end());
      for (int i = 0; i < 3; ++i) {  // a few go unready or terminating
        BackendAddress b{net::Ipv4Address(10, 244, 0, 2 + rng() % 20), fe.port, fe.protocol};
        if (!std::binary_search(f.backends.begin(), f.backends.end(), b)) f.draining.push_back(b);
      }
      std::sort(f.draining.begin(), f.draining.end());
      f.draining.erase(std::unique(f.draining.begin(), f.draining.end()), f.draining.end());
      desired.frontends.push_back(std::move(f));
    }
    ASSERT_OK_AND_ASSIGN(UpdatePlan plan, PlanServiceUpdate(state, desired, ids));
    for (const MapOp& op : plan.ops) {
      maps.Apply(op);
      ASSERT_NO_FATAL_FAILURE(maps.CheckReadable(StrCat("round ", round, " after ", op.ToString())));
    }
    ASSERT_NO_FATAL_FAILURE(maps.CheckEquals(plan.programmed, ids)) << "round " << round;
    for (const auto& f : plan.programmed.frontends) {
      std::vector<BackendAddress> slots = f.slots;
      std::sort(slots.begin(), slots.end());
      for (const auto& d : desired.frontends) {
        if (d.frontend == f.frontend) {
          EXPECT_EQ(slots, d.backends);
        }
      }
    }
    state = std::move(plan.programmed);
  }
}

}  // namespace
}  // namespace loom::lb
