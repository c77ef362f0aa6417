// libFuzzer target for the query fast path, which reads raw packets: whatever the
// bytes, AnswerFast never reads out of bounds, and whatever it answers is byte for
// byte what the general path (DecodeQuery, AnswerFromZone) answers. Inputs with the
// low bit of their first byte set are edits of valid queries (the next byte picks
// one, then (offset, byte) pairs overwrite it), so that near-valid queries, which
// random bytes rarely are, get explored too.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "dns/cluster_zone.h"
#include "dns/fast_answer.h"
#include "dns/zone_answer.h"

namespace {

using namespace loom::dns;
namespace model = loom::model;

std::shared_ptr<const ClusterZone> MakeZone() {
  std::vector<model::Service> services;
  auto add = [&](const char* name, model::ServiceType type, const char* ip) {
    model::Service s;
    s.meta.name = name;
    s.meta.ns = "default";
    s.type = type;
    s.cluster_ip = ip;
    s.ports = {{"http", 80, 8080, "", model::Protocol::kTcp, 0}};
    services.push_back(s);
  };
  add("web", model::ServiceType::kClusterIP, "10.96.0.10");
  add("a", model::ServiceType::kClusterIP, "10.96.0.11");
  add("db", model::ServiceType::kHeadless, "");
  add("ext", model::ServiceType::kExternalName, "");
  services.back().external_name = "web.default.svc.cluster.local";
  model::EndpointSets eps;
  for (int i = 0; i < 3; ++i) {
    model::Endpoint e;
    e.ip = "10.244.1." + std::to_string(i + 1);
    e.ready = true;
    e.ports = {8080};
    eps["default/db"].endpoints.push_back(e);
  }
  auto zone = ClusterZone::Build(ZoneOptions{}, model::ServiceTable::Of(services, eps));
  if (!zone.ok()) std::abort();
  return *zone;
}

// Valid queries: A with EDNS, AAAA without, a miss, a headless name, a CNAME.
std::vector<std::vector<uint8_t>> Templates() {
  std::vector<std::vector<uint8_t>> out;
  auto add = [&](const char* name, uint16_t qtype, bool edns) {
    std::vector<uint8_t> b(512);
    MessageWriter w(b.data(), b.size());
    Header h;
    h.id = 0x1234;
    h.set_rd(true);
    w.SetHeader(h);
    w.AddQuestion(*Name::FromText(name), qtype, kClassIn);
    if (edns) w.AddOpt(1232);
    b.resize(w.size());
    out.push_back(b);
  };
  add("web.default.svc.cluster.local", type::kA, true);
  add("WEB.Default.svc.cluster.local", type::kAaaa, false);
  add("nosuch.default.svc.cluster.local", type::kA, true);
  add("db.default.svc.cluster.local", type::kA, false);
  add("ext.default.svc.cluster.local", type::kA, true);
  add("a.default.svc.cluster.local", type::kA, false);
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::shared_ptr<const ClusterZone> zone = MakeZone();
  static const std::vector<std::vector<uint8_t>> templates = Templates();
  std::vector<uint8_t> bytes(data, data + size);
  if (size >= 2 && (data[0] & 1)) {
    bytes = templates[data[1] % templates.size()];
    for (size_t i = 2; i + 1 < size; i += 2) {
      size_t at = data[i] % (bytes.size() + 1);
      if (at == bytes.size()) {
        bytes.push_back(data[i + 1]);
      } else {
        bytes[at] = data[i + 1];
      }
    }
    if (data[0] & 2) bytes.resize(bytes.size() - data[0] % bytes.size());  // cut the tail
  }
  // A copy of exactly its size, so that reading past it is caught.
  size = bytes.size();
  std::unique_ptr<uint8_t[]> query(new uint8_t[size]);
  if (size > 0) std::memcpy(query.get(), bytes.data(), size);
  for (bool tcp : {false, true}) {
    std::vector<uint8_t> fast(65535);
    FastAnswer a = AnswerFast(*zone, query.get(), size, fast.data(), fast.size(), 1232, tcp);
    if (a.size == 0) continue;
    Query q;
    DecodeError err;
    if (!DecodeQuery(query.get(), size, &q, &err)) std::abort();
    std::vector<uint8_t> general(65535);
    MessageWriter w(general.data(), ResponseCapacity(tcp, general.size(), q.edns, 1232));
    BeginResponse(q, &w);
    if (AnswerFromZone(*zone, q, &w).outcome != ZoneOutcome::kAnswered) std::abort();
    EndResponse(q, 1232, &w);
    if (w.size() != a.size || std::memcmp(general.data(), fast.data(), a.size) != 0) std::abort();
  }
  return 0;
}
