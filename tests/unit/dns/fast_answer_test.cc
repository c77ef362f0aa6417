#include "dns/fast_answer.h"

#include <random>

#include "common/strings.h"
#include "dns/zone_answer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace loom::dns {
namespace {

constexpr uint16_t kMaxUdp = 1232;

model::Service Svc(std::string name, std::string ns, model::ServiceType type, std::string ip = "",
                   std::vector<model::ServicePort> ports = {}) {
  model::Service s;
  s.meta.name = std::move(name);
  s.meta.ns = std::move(ns);
  s.type = type;
  s.cluster_ip = std::move(ip);
  s.ports = std::move(ports);
  return s;
}

// What the server writes for a query through the general path.
std::vector<uint8_t> GeneralAnswer(const ClusterZone& zone, const std::vector<uint8_t>& query,
                                   bool tcp) {
  Query q;
  DecodeError err;
  if (!DecodeQuery(query.data(), query.size(), &q, &err)) return {};
  std::vector<uint8_t> out(4096);
  MessageWriter w(out.data(), ResponseCapacity(tcp, out.size(), q.edns, kMaxUdp));
  BeginResponse(q, &w);
  ZoneAnswer a = AnswerFromZone(zone, q, &w);
  if (a.outcome != ZoneOutcome::kAnswered) return {};
  EndResponse(q, kMaxUdp, &w);
  out.resize(w.size());
  return out;
}

struct Ask {
  std::string name;
  uint16_t qtype = type::kA;
  uint16_t qclass = kClassIn;
  std::optional<uint16_t> edns_size;
  uint8_t edns_version = 0;
  bool dnssec_ok = false;
  bool rd = true;
  bool cd = false;
  uint8_t opcode = kOpcodeQuery;
};

std::vector<uint8_t> Wire(const Ask& ask, uint16_t id) {
  std::vector<uint8_t> b(600);
  MessageWriter w(b.data(), b.size());
  Header h;
  h.id = id;
  h.set_rd(ask.rd);
  h.set_cd(ask.cd);
  h.set_opcode(ask.opcode);
  w.SetHeader(h);
  w.AddQuestion(*Name::FromText(ask.name), ask.qtype, ask.qclass);
  if (ask.edns_size) w.AddOpt(*ask.edns_size, 0, ask.edns_version, ask.dnssec_ok);
  b.resize(w.size());
  return b;
}

// A name with its letters in random case.
std::string MixCase(std::string s, std::mt19937& rng) {
  for (char& c : s) {
    if (c >= 'a' && c <= 'z' && rng() % 2) c = static_cast<char>(c - 'a' + 'A');
  }
  return s;
}

class FastAnswerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::vector<model::Service> services;
    for (int i = 0; i < 50; ++i) {
      services.push_back(Svc(StrCat("svc", i), i % 2 ? "default" : "prod",
                             model::ServiceType::kClusterIP, StrCat("10.96.0.", i + 1),
                             {{"http", 80, 8080, "", model::Protocol::kTcp, 0}}));
    }
    services.push_back(Svc("db", "default", model::ServiceType::kHeadless, "",
                           {{"pg", 5432, 5432, "", model::Protocol::kTcp, 0}}));
    services.push_back(Svc("wide", "default", model::ServiceType::kHeadless));
    services.push_back(Svc("none", "default", model::ServiceType::kHeadless));
    services.push_back(Svc("ext", "default", model::ServiceType::kExternalName));
    services.back().external_name = "example.org";
    services.push_back(Svc("alias", "default", model::ServiceType::kExternalName));
    services.back().external_name = "svc1.default.svc.cluster.local";
    model::EndpointSets eps;
    for (int i = 0; i < 3; ++i) {
      model::Endpoint e;
      e.ip = StrCat("10.244.1.", i + 1);
      e.ready = i < 2;
      e.hostname = StrCat("db-", i);
      e.ports = {5432};
      eps["default/db"].endpoints.push_back(e);
    }
    for (int i = 0; i < 300; ++i) {  // more A records than 1232 bytes hold
      model::Endpoint e;
      e.ip = StrCat("10.244.", 10 + i / 250, ".", i % 250 + 1);
      e.ready = true;
      eps["default/wide"].endpoints.push_back(e);
    }
    ASSERT_OK_AND_ASSIGN(zone_,
                         ClusterZone::Build(ZoneOptions{}, model::ServiceTable::Of(services, eps)));
  }

  std::shared_ptr<const ClusterZone> zone_;
};

TEST_F(FastAnswerTest, WritesWhatTheGeneralPathWritesOrDeclines) {
  std::vector<std::string> names = {
      "db.default.svc.cluster.local",          "db-0.db.default.svc.cluster.local",
      "db-2.db.default.svc.cluster.local",     "_pg._tcp.db.default.svc.cluster.local",
      "_tcp.db.default.svc.cluster.local",     "wide.default.svc.cluster.local",
      "none.default.svc.cluster.local",        "ext.default.svc.cluster.local",
      "alias.default.svc.cluster.local",       "default.svc.cluster.local",
      "svc.cluster.local",                     "cluster.local",
      "dns-version.cluster.local",             "nosuch.default.svc.cluster.local",
      "a.b.c.nosuch.default.svc.cluster.local", "svc1.nosuch.svc.cluster.local",
      "svc1.default.pod.cluster.local",        "x.ns.dns.cluster.local",
      "1.0.96.10.in-addr.arpa",                "example.org",
      "svc1.default.svc.cluster.local.example.org",
  };
  for (int i = 0; i < 50; ++i) {
    names.push_back(StrCat("svc", i, i % 2 ? ".default" : ".prod", ".svc.cluster.local"));
    names.push_back(StrCat("_http._tcp.svc", i, i % 2 ? ".default" : ".prod", ".svc.cluster.local"));
    names.push_back(StrCat("svc", i, ".kube-system.svc.cluster.local"));
  }
  const uint16_t kTypes[] = {type::kA, type::kA, type::kAaaa, type::kSrv, type::kAny,
                             type::kCname, type::kPtr, type::kTxt, type::kSoa};
  std::mt19937 rng(7);
  int answered = 0, hits = 0, nodata = 0, nxdomain = 0;
  for (int i = 0; i < 20000; ++i) {
    Ask ask;
    ask.name = MixCase(names[rng() % names.size()], rng);
    ask.qtype = kTypes[rng() % std::size(kTypes)];
    if (rng() % 20 == 0) ask.qclass = kClassAny;
    if (rng() % 3 != 0) {
      const uint16_t sizes[] = {0, 512, 1232, 4096, 600};
      ask.edns_size = sizes[rng() % std::size(sizes)];
      ask.edns_version = rng() % 10 == 0 ? 1 : 0;
      ask.dnssec_ok = rng() % 2;
    }
    ask.rd = rng() % 2;
    ask.cd = rng() % 4 == 0;
    if (rng() % 30 == 0) ask.opcode = 2;
    bool tcp = rng() % 4 == 0;
    std::vector<uint8_t> query = Wire(ask, static_cast<uint16_t>(i));
    std::vector<uint8_t> out(4096);
    FastAnswer fast = AnswerFast(*zone_, query.data(), query.size(), out.data(), out.size(),
                                 kMaxUdp, tcp);
    if (fast.size == 0) continue;
    ++answered;
    out.resize(fast.size);
    ASSERT_EQ(out, GeneralAnswer(*zone_, query, tcp))
        << ask.name << " type " << ask.qtype << " edns " << ask.edns_size.value_or(0)
        << (tcp ? " tcp" : " udp");
    EXPECT_EQ(fast.qtype, ask.qtype);
    EXPECT_EQ(static_cast<Rcode>(out[3] & 0xF), fast.rcode);
    uint16_t ancount = static_cast<uint16_t>(out[6] << 8 | out[7]);
    if (fast.rcode == Rcode::kNxDomain) {
      ++nxdomain;
    } else if (ancount == 0) {
      ++nodata;
    } else {
      ++hits;
    }
  }
  // The fast path takes the common queries: hits, NODATA and NXDOMAIN.
  EXPECT_GT(answered, 3000);
  EXPECT_GT(hits, 1000);
  EXPECT_GT(nodata, 500);
  EXPECT_GT(nxdomain, 500);
}

TEST_F(FastAnswerTest, DeclinesWhatItDoesNotAnswer) {
  std::vector<uint8_t> out(65535);
  auto fast = [&](const Ask& ask, bool tcp = false) {
    std::vector<uint8_t> q = Wire(ask, 1);
    return AnswerFast(*zone_, q.data(), q.size(), out.data(), out.size(), kMaxUdp, tcp).size;
  };
  Ask plain{"svc1.default.svc.cluster.local"};
  EXPECT_GT(fast(plain), 0u);
  // What the batch prefetch looks up: the fast path's lookups, nothing for others.
  auto pending = [&](const Ask& ask) {
    std::vector<uint8_t> q = Wire(ask, 1);
    return PrefetchAnswer(*zone_, q.data(), q.size()).index;
  };
  EXPECT_NE(pending(plain), nullptr);
  EXPECT_NE(pending(Ask{"nosuch.default.svc.cluster.local"}), nullptr);
  EXPECT_EQ(pending(Ask{"default.svc.cluster.local"}), nullptr);
  EXPECT_EQ(pending(Ask{"example.org"}), nullptr);
  for (std::string name : {"ext.default.svc.cluster.local",      // CNAME
                           "alias.default.svc.cluster.local",    // CNAME chased inside
                           "default.svc.cluster.local",          // not a service name
                           "1.0.96.10.in-addr.arpa", "example.org"}) {
    EXPECT_EQ(fast(Ask{name}), 0u) << name;
  }
  Ask srv = plain;
  srv.qtype = type::kSrv;
  EXPECT_EQ(fast(srv), 0u);
  Ask chaos = plain;
  chaos.qclass = kClassChaos;
  EXPECT_EQ(fast(chaos), 0u);
  Ask badvers = plain;
  badvers.edns_size = 1232;
  badvers.edns_version = 1;
  EXPECT_EQ(fast(badvers), 0u);
  Ask notify = plain;
  notify.opcode = 4;
  EXPECT_EQ(fast(notify), 0u);
  // 300 addresses do not fit over UDP (TC from the general path); over TCP they do.
  Ask wide{"wide.default.svc.cluster.local"};
  wide.edns_size = 4096;
  EXPECT_EQ(fast(wide), 0u);
  EXPECT_GT(fast(wide, /*tcp=*/true), 300u * 16);

  // Malformed or unusual packets: never read past the end, always declined.
  std::vector<uint8_t> q = Wire(plain, 1);
  for (size_t cut = 0; cut < q.size(); ++cut) {
    EXPECT_EQ(AnswerFast(*zone_, q.data(), cut, out.data(), out.size(), kMaxUdp, false).size, 0u)
        << cut;
  }
  std::vector<uint8_t> trailing = q;
  trailing.push_back(0);
  EXPECT_EQ(AnswerFast(*zone_, trailing.data(), trailing.size(), out.data(), out.size(), kMaxUdp,
                       false).size,
            0u);
  std::vector<uint8_t> response = q;
  response[2] |= 0x80;  // QR
  EXPECT_EQ(AnswerFast(*zone_, response.data(), response.size(), out.data(), out.size(), kMaxUdp,
                       false).size,
            0u);
  std::vector<uint8_t> pointer = {0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xC0, 0x0C, 0, 1, 0, 1};
  EXPECT_EQ(AnswerFast(*zone_, pointer.data(), pointer.size(), out.data(), out.size(), kMaxUdp,
                       false).size,
            0u);
}

// A label holding the bytes of the zone's name must not pass for it.
TEST_F(FastAnswerTest, TheZoneNameMustStartOnALabel) {
  std::vector<uint8_t> q = {0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0};
  const std::string fake = "\x03" "svc" "\x01" "a" "\x03" "svc" "\x09" "x\x07" "cluster";
  q.insert(q.end(), fake.begin(), fake.end());
  for (uint8_t c : std::string("\x05" "local" "\x00" "\x00\x01\x00\x01", 11)) q.push_back(c);
  Query decoded;
  DecodeError err;
  ASSERT_TRUE(DecodeQuery(q.data(), q.size(), &decoded, &err)) << err.reason;
  ASSERT_FALSE(decoded.question.name.IsSubdomainOf(zone_->origin()));
  std::vector<uint8_t> out(4096);
  EXPECT_EQ(AnswerFast(*zone_, q.data(), q.size(), out.data(), out.size(), kMaxUdp, false).size,
            0u);
}

}  // namespace
}  // namespace loom::dns
