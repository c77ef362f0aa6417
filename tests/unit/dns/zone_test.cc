#include "dns/cluster_zone.h"
#include "dns/zone_answer.h"

#include <map>
#include <random>

#include "common/strings.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace loom::dns {
namespace {

using ::testing::ElementsAre;
using ::testing::UnorderedElementsAre;

Name N(std::string_view t) { return *Name::FromText(t); }

model::Service Svc(std::string name, model::ServiceType type, std::string ip = "",
                   std::vector<model::ServicePort> ports = {}) {
  model::Service s;
  s.meta.name = std::move(name);
  s.meta.ns = "default";
  s.type = type;
  s.cluster_ip = std::move(ip);
  s.selector = {{"app", s.meta.name}};
  s.ports = std::move(ports);
  return s;
}

model::Endpoint Ep(std::string ip, bool ready, std::string hostname = "",
                   std::vector<uint16_t> ports = {8080}) {
  model::Endpoint e;
  e.ip = std::move(ip);
  e.ready = ready;
  e.hostname = std::move(hostname);
  e.ports = std::move(ports);
  return e;
}

class ZoneTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::vector<model::Service> services = {
        Svc("web", model::ServiceType::kClusterIP, "10.96.0.10",
            {{"http", 80, 8080, "", model::Protocol::kTcp, 0},
             {"", 81, 81, "", model::Protocol::kTcp, 0}}),
        Svc("db", model::ServiceType::kHeadless, "", {{"pg", 5432, 5432, "", model::Protocol::kTcp, 0}}),
        Svc("empty", model::ServiceType::kHeadless),
        Svc("ext", model::ServiceType::kExternalName),
        Svc("alias", model::ServiceType::kExternalName),
    };
    services[3].external_name = "example.org";
    services[3].selector.clear();
    services[4].external_name = "web.default.svc.cluster.local";
    services[4].selector.clear();
    absl::flat_hash_map<std::string, model::EndpointSet> eps;
    eps["default/db"].endpoints = {Ep("10.244.1.5", true, "db-0", {5432}),
                                   Ep("10.244.2.7", true, "", {5432}),
                                   Ep("10.244.2.8", false, "db-2", {5432})};
    eps["default/empty"].endpoints = {Ep("10.244.1.9", false)};
    auto zone = ClusterZone::Build(ZoneOptions{}, model::ServiceTable::Of(services, eps));
    ASSERT_TRUE(zone.ok()) << zone.status();
    zone_ = *zone;
  }

  // Sends `name`/`qtype` through the answerer and decodes the response.
  Message Ask(std::string_view name, uint16_t qtype, ZoneAnswer* answer = nullptr,
              size_t capacity = 4096, bool edns = false) {
    uint8_t qbuf[512];
    MessageWriter qw(qbuf, sizeof qbuf);
    Header qh;
    qh.id = 99;
    qh.set_rd(true);
    qw.SetHeader(qh);
    qw.AddQuestion(N(name), qtype, kClassIn);
    if (edns) qw.AddOpt(1232);
    Query q;
    DecodeError err;
    EXPECT_TRUE(DecodeQuery(qbuf, qw.size(), &q, &err)) << err.reason;
    std::vector<uint8_t> out(capacity);
    MessageWriter w(out.data(), capacity);
    BeginResponse(q, &w);
    ZoneAnswer a = AnswerFromZone(*zone_, q, &w);
    EndResponse(q, 1232, &w);
    if (answer) *answer = a;
    auto m = DecodeMessage(out.data(), w.size());
    EXPECT_TRUE(m.ok()) << m.status();
    return m.ok() ? *m : Message();
  }

  static std::vector<std::string> As(const Message& m) {
    std::vector<std::string> out;
    for (const auto& rr : m.answers) {
      if (rr.rtype != type::kA) continue;
      const auto* b = reinterpret_cast<const uint8_t*>(rr.rdata.data());
      out.push_back(std::to_string(b[0]) + "." + std::to_string(b[1]) + "." +
                    std::to_string(b[2]) + "." + std::to_string(b[3]));
    }
    return out;
  }

  std::shared_ptr<const ClusterZone> zone_;
};

TEST_F(ZoneTest, ClusterIpServiceMixedCase) {
  Message m = Ask("WEB.Default.svc.Cluster.Local", type::kA);
  EXPECT_EQ(m.header.rcode(), Rcode::kNoError);
  EXPECT_TRUE(m.header.aa());
  EXPECT_TRUE(m.header.qr());
  EXPECT_EQ(m.header.id, 99);
  EXPECT_THAT(As(m), ElementsAre("10.96.0.10"));
  // The question's case is kept in the answer.
  EXPECT_EQ(m.answers[0].name.ToText(), "WEB.Default.svc.Cluster.Local.");
  EXPECT_EQ(m.answers[0].ttl, 5u);
}

TEST_F(ZoneTest, NodataHasSoaAndNxdomainToo) {
  Message aaaa = Ask("web.default.svc.cluster.local", type::kAaaa);
  EXPECT_EQ(aaaa.header.rcode(), Rcode::kNoError);
  EXPECT_TRUE(aaaa.answers.empty());
  ASSERT_EQ(aaaa.authority.size(), 1u);
  EXPECT_EQ(aaaa.authority[0].rtype, type::kSoa);
  EXPECT_EQ(aaaa.authority[0].name.ToText(), "cluster.local.");

  Message nx = Ask("nope.default.svc.cluster.local", type::kA);
  EXPECT_EQ(nx.header.rcode(), Rcode::kNxDomain);
  ASSERT_EQ(nx.authority.size(), 1u);
  EXPECT_EQ(nx.authority[0].rtype, type::kSoa);

  // Empty non-terminals exist.
  EXPECT_EQ(Ask("default.svc.cluster.local", type::kA).header.rcode(), Rcode::kNoError);
  EXPECT_EQ(Ask("svc.cluster.local", type::kA).header.rcode(), Rcode::kNoError);
}

TEST_F(ZoneTest, SrvForNamedPortsOnly) {
  Message m = Ask("_http._tcp.web.default.svc.cluster.local", type::kSrv);
  ASSERT_EQ(m.answers.size(), 1u);
  auto srv = RdataSrv(m.answers[0]);
  ASSERT_TRUE(srv);
  EXPECT_EQ(srv->port, 80);
  EXPECT_EQ(srv->target.ToText(), "web.default.svc.cluster.local.");
  // The target's address rides along in the additional section.
  ASSERT_EQ(m.additional.size(), 1u);
  EXPECT_EQ(m.additional[0].rtype, type::kA);
  EXPECT_EQ(Ask("_81._tcp.web.default.svc.cluster.local", type::kSrv).header.rcode(),
            Rcode::kNxDomain);
  EXPECT_EQ(Ask("_http._udp.web.default.svc.cluster.local", type::kSrv).header.rcode(),
            Rcode::kNxDomain);
}

TEST_F(ZoneTest, HeadlessAnswersReadyEndpoints) {
  EXPECT_THAT(As(Ask("db.default.svc.cluster.local", type::kA)),
              UnorderedElementsAre("10.244.1.5", "10.244.2.7"));
  EXPECT_THAT(As(Ask("db-0.db.default.svc.cluster.local", type::kA)), ElementsAre("10.244.1.5"));
  // Without a hostname, the endpoint is named by its dashed address.
  EXPECT_THAT(As(Ask("10-244-2-7.db.default.svc.cluster.local", type::kA)),
              ElementsAre("10.244.2.7"));
  EXPECT_EQ(Ask("db-2.db.default.svc.cluster.local", type::kA).header.rcode(), Rcode::kNxDomain);
  Message srv = Ask("_pg._tcp.db.default.svc.cluster.local", type::kSrv);
  ASSERT_EQ(srv.answers.size(), 2u);
  std::vector<std::string> targets;
  for (const auto& rr : srv.answers) targets.push_back(RdataSrv(rr)->target.ToText());
  EXPECT_THAT(targets, UnorderedElementsAre("db-0.db.default.svc.cluster.local.",
                                            "10-244-2-7.db.default.svc.cluster.local."));
  EXPECT_EQ(srv.additional.size(), 2u);
  // No ready endpoint: NXDOMAIN, as the specification says.
  EXPECT_EQ(Ask("empty.default.svc.cluster.local", type::kA).header.rcode(), Rcode::kNxDomain);
}

TEST_F(ZoneTest, PtrForServiceAndEndpointAddresses) {
  Message svc = Ask("10.0.96.10.in-addr.arpa", type::kPtr);
  ASSERT_EQ(svc.answers.size(), 1u);
  EXPECT_EQ(RdataName(svc.answers[0])->ToText(), "web.default.svc.cluster.local.");
  Message ep = Ask("5.1.244.10.in-addr.arpa", type::kPtr);
  ASSERT_EQ(ep.answers.size(), 1u);
  EXPECT_EQ(RdataName(ep.answers[0])->ToText(), "db-0.db.default.svc.cluster.local.");
  ZoneAnswer a;
  Ask("1.0.0.127.in-addr.arpa", type::kPtr, &a);
  EXPECT_EQ(a.outcome, ZoneOutcome::kNotAuthoritative);
}

TEST_F(ZoneTest, ExternalNameIsACnameChasedInsideTheZone) {
  ZoneAnswer a;
  Message ext = Ask("ext.default.svc.cluster.local", type::kA, &a);
  EXPECT_EQ(a.outcome, ZoneOutcome::kExternalCname);
  EXPECT_EQ(a.external_target.ToText(), "example.org.");
  ASSERT_EQ(ext.answers.size(), 1u);
  EXPECT_EQ(ext.answers[0].rtype, type::kCname);

  Message alias = Ask("alias.default.svc.cluster.local", type::kA, &a);
  EXPECT_EQ(a.outcome, ZoneOutcome::kAnswered);
  ASSERT_EQ(alias.answers.size(), 2u);
  EXPECT_EQ(alias.answers[0].rtype, type::kCname);
  EXPECT_THAT(As(alias), ElementsAre("10.96.0.10"));
}

TEST_F(ZoneTest, SchemaVersionAndOutsideNames) {
  Message v = Ask("dns-version.cluster.local", type::kTxt);
  ASSERT_EQ(v.answers.size(), 1u);
  EXPECT_THAT(RdataTxt(v.answers[0]), ElementsAre("1.1.0"));
  ZoneAnswer a;
  Ask("example.org", type::kA, &a);
  EXPECT_EQ(a.outcome, ZoneOutcome::kNotAuthoritative);
  Ask("xcluster.local", type::kA, &a);
  EXPECT_EQ(a.outcome, ZoneOutcome::kNotAuthoritative);
}

TEST(ZoneTruncation, ManyEndpointsSetTcOverUdpAndFitOverTcp) {
  model::Service svc = Svc("big", model::ServiceType::kHeadless);
  absl::flat_hash_map<std::string, model::EndpointSet> eps;
  for (int i = 0; i < 300; ++i) {
    eps["default/big"].endpoints.push_back(
        Ep("10.244." + std::to_string(i / 200) + "." + std::to_string(i % 200 + 1), true));
  }
  auto zone = ClusterZone::Build(ZoneOptions{}, model::ServiceTable::Of({svc}, eps));
  ASSERT_TRUE(zone.ok());
  uint8_t qbuf[512];
  MessageWriter qw(qbuf, sizeof qbuf);
  qw.AddQuestion(N("big.default.svc.cluster.local"), type::kA, kClassIn);
  qw.AddOpt(1232);
  Query q;
  DecodeError err;
  ASSERT_TRUE(DecodeQuery(qbuf, qw.size(), &q, &err));

  std::vector<uint8_t> udp(1232);
  MessageWriter uw(udp.data(), udp.size());
  BeginResponse(q, &uw);
  ZoneAnswer ua = AnswerFromZone(**zone, q, &uw);
  EndResponse(q, 1232, &uw);
  EXPECT_TRUE(ua.truncated);
  ASSERT_OK_AND_ASSIGN(Message um, DecodeMessage(udp.data(), uw.size()));
  EXPECT_TRUE(um.header.tc());
  EXPECT_LE(uw.size(), 1232u);
  EXPECT_TRUE(um.edns.has_value());

  std::vector<uint8_t> tcp(65535);
  MessageWriter tw(tcp.data(), tcp.size());
  BeginResponse(q, &tw);
  ZoneAnswer ta = AnswerFromZone(**zone, q, &tw);
  EndResponse(q, 1232, &tw);
  EXPECT_FALSE(ta.truncated);
  ASSERT_OK_AND_ASSIGN(Message tm, DecodeMessage(tcp.data(), tw.size()));
  EXPECT_FALSE(tm.header.tc());
  EXPECT_EQ(tm.answers.size(), 300u);
}

// Incremental updates must give exactly the zone a full build gives, whatever
// changes: services added, removed, retyped, renumbered; endpoints coming, going,
// turning ready or unready; two services claiming one address.
TEST(ZoneUpdateTest, UpdatesEqualAFullBuild) {
  std::mt19937 rng(11);
  auto pick = [&](int n) { return static_cast<int>(rng() % n); };
  std::map<std::string, model::Service> services;
  model::EndpointSets endpoints;
  auto random_service = [&](int i) {
    model::Service s = Svc(StrCat("s", i), model::ServiceType::kClusterIP);
    s.meta.ns = pick(2) == 0 ? "default" : "other";
    switch (pick(4)) {
      case 0:
      case 1:
        s.cluster_ip = StrCat("10.96.0.", 1 + pick(40));
        s.ports = {{"http", 80, 8080, "", model::Protocol::kTcp, 0}};
        break;
      case 2:
        s.type = model::ServiceType::kHeadless;
        s.ports = {{"pg", 5432, 5432, "", model::Protocol::kTcp, 0}};
        break;
      default:
        s.type = model::ServiceType::kExternalName;
        s.external_name = "example.org";
        s.selector.clear();
    }
    return s;
  };
  auto random_endpoints = [&]() {
    model::EndpointSet set;
    int n = pick(4);
    for (int j = 0; j < n; ++j) {
      set.endpoints.push_back(Ep(StrCat("10.244.", pick(3), ".", 1 + pick(30)), pick(3) != 0,
                                 pick(2) == 0 ? StrCat("h", j) : "", {5432}));
    }
    return set;
  };
  auto vector_of = [&]() {
    std::vector<model::Service> v;
    for (const auto& [k, s] : services) v.push_back(s);
    return v;
  };
  ASSERT_OK_AND_ASSIGN(std::shared_ptr<const ClusterZone> zone,
                       ClusterZone::Build(ZoneOptions{}, {}));
  for (int step = 0; step < 400; ++step) {
    std::vector<std::string> changed;
    int edits = 1 + pick(3);
    for (int e = 0; e < edits; ++e) {
      int i = pick(30);
      std::string name = StrCat("s", i);
      // The service of that name, in whichever namespace it is.
      std::string key;
      for (const auto& [k, s] : services) {
        if (s.meta.name == name) key = k;
      }
      int what = pick(4);
      if (what == 0 && !key.empty()) {
        services.erase(key);
        endpoints.erase(key);
        changed.push_back(key);
      } else if (what == 1 && !key.empty()) {
        endpoints[key] = random_endpoints();
        changed.push_back(key);
      } else {
        if (!key.empty()) {
          services.erase(key);
          endpoints.erase(key);
          changed.push_back(key);
        }
        model::Service s = random_service(i);
        services[s.meta.Key()] = s;
        endpoints[s.meta.Key()] = random_endpoints();
        changed.push_back(s.meta.Key());
      }
    }
    model::ServiceTable table = model::ServiceTable::Of(vector_of(), endpoints);
    ASSERT_OK_AND_ASSIGN(std::shared_ptr<const ClusterZone> updated,
                         ClusterZone::Update(zone, ZoneOptions{}, table, changed));
    ASSERT_OK_AND_ASSIGN(std::shared_ptr<const ClusterZone> built,
                         ClusterZone::Build(ZoneOptions{}, table));
    ASSERT_EQ(updated->Dump(), built->Dump()) << "step " << step;
    EXPECT_EQ(updated->name_count(), built->name_count());
    zone = updated;
  }
}

TEST(ZoneUpdateTest, OneChangeRebuildsOnlyItsShards) {
  std::vector<model::Service> services;
  for (int i = 0; i < 10000; ++i) {
    services.push_back(Svc(StrCat("svc", i), model::ServiceType::kClusterIP,
                           StrCat("10.96.", i / 250, ".", i % 250 + 1),
                           {{"http", 80, 8080, "", model::Protocol::kTcp, 0}}));
  }
  ASSERT_OK_AND_ASSIGN(auto zone,
                       ClusterZone::Build(ZoneOptions{}, model::ServiceTable::Of(services)));
  EXPECT_EQ(zone->rebuilt_shards(), 2 * ClusterZone::kShards);
  services.push_back(Svc("fresh", model::ServiceType::kClusterIP, "10.96.200.1"));
  ASSERT_OK_AND_ASSIGN(auto next,
                       ClusterZone::Update(zone, ZoneOptions{}, model::ServiceTable::Of(services),
                                           {"default/fresh"}));
  EXPECT_EQ(next->rebuilt_shards(), 2);  // its forward shard and its address's reverse shard
  EXPECT_TRUE(next->Find(N("fresh.default.svc.cluster.local")).has_value());
  EXPECT_TRUE(next->Find(N("1.200.96.10.in-addr.arpa")).has_value());
  EXPECT_TRUE(next->Find(N("200.96.10.in-addr.arpa")).has_value());  // a new reverse prefix
  EXPECT_FALSE(zone->Find(N("fresh.default.svc.cluster.local")).has_value());  // the old one stands
  EXPECT_TRUE(next->Find(N("svc9999.default.svc.cluster.local")).has_value());
  // Other options: a full build.
  ASSERT_OK_AND_ASSIGN(auto other, ClusterZone::Update(next, ZoneOptions{"cluster.local", 30},
                                                       model::ServiceTable::Of(services), {}));
  EXPECT_EQ(other->rebuilt_shards(), 2 * ClusterZone::kShards);
  EXPECT_EQ(other->ttl(), 30u);
}

}  // namespace
}  // namespace loom::dns
