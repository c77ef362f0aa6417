#include "dns/cluster_zone.h"

#include <arpa/inet.h>

#include <atomic>
#include <ctime>

#include "common/status.h"
#include "common/strings.h"

namespace loom::dns {
namespace {

std::atomic<uint32_t> g_serial{static_cast<uint32_t>(std::time(nullptr))};

bool ParseIpv4(const std::string& text, std::array<uint8_t, 4>* out) {
  in_addr a;
  if (inet_pton(AF_INET, text.c_str(), &a) != 1) return false;
  std::memcpy(out->data(), &a.s_addr, 4);
  return true;
}

Name ReverseName(const std::array<uint8_t, 4>& ip) {
  auto n = Name::FromText(StrCat(ip[3], ".", ip[2], ".", ip[1], ".", ip[0], ".in-addr.arpa"));
  return *n;  // always valid
}

std::string DashedIp(const std::string& ip) {
  std::string out = ip;
  for (char& c : out) {
    if (c == '.') c = '-';
  }
  return out;
}

std::string ProtoLabel(model::Protocol p) {
  switch (p) {
    case model::Protocol::kTcp: return "_tcp";
    case model::Protocol::kUdp: return "_udp";
    case model::Protocol::kSctp: return "_sctp";
  }
  return "_tcp";
}

// The name one label up, or nullopt at the root.
std::optional<Name> Parent(const Name& n) {
  if (n.is_root()) return std::nullopt;
  Name parent;
  size_t skip = 1 + n.wire()[0];
  Name::FromWire(n.wire() + skip, n.wire_size() - skip, &parent);
  return parent;
}

std::string Key(const Name& n) {
  Name lower = n.Lowered();
  return std::string(reinterpret_cast<const char*>(lower.wire()), lower.wire_size());
}

}  // namespace

ZoneEntry& ClusterZone::At(const Name& name) {
  auto [it, inserted] = names_.try_emplace(Key(name));
  if (inserted) {
    // Every ancestor inside the zone exists too (empty non-terminals).
    const Name& apex = name.IsSubdomainOf(origin_) ? origin_ : reverse_origin_;
    std::optional<Name> up = Parent(name);
    while (up && up->IsSubdomainOf(apex)) {
      if (!names_.try_emplace(Key(*up)).second) break;
      up = Parent(*up);
    }
    it = names_.find(Key(name));
  }
  return it->second;
}

absl::StatusOr<std::shared_ptr<const ClusterZone>> ClusterZone::Build(
    const ZoneOptions& options, const std::vector<model::Service>& services,
    const absl::flat_hash_map<std::string, model::EndpointSet>& endpoints) {
  std::shared_ptr<ClusterZone> zone(new ClusterZone());
  ASSIGN_OR_RETURN(Name origin, Name::FromText(options.domain));
  zone->origin_ = origin.Lowered();
  zone->reverse_origin_ = *Name::FromText("in-addr.arpa");
  zone->mname_ = *Name::FromText(StrCat("ns.dns.", options.domain));
  zone->rname_ = *Name::FromText(StrCat("hostmaster.", options.domain));
  zone->ttl_ = options.ttl;
  zone->serial_ = g_serial.fetch_add(1);
  zone->names_.reserve(services.size() * 3 + 8);
  zone->names_.try_emplace(Key(zone->origin_));
  zone->names_.try_emplace(Key(zone->reverse_origin_));

  ZoneEntry& version = zone->At(*Name::FromText(StrCat("dns-version.", options.domain)));
  version.txt = "1.1.0";
  version.has_txt = true;

  static const model::EndpointSet kNoEndpoints;
  for (const model::Service& svc : services) {
    auto parsed = Name::FromText(StrCat(svc.meta.name, ".", svc.meta.ns, ".svc.", options.domain));
    if (!parsed.ok()) return Annotate(parsed.status(), svc.meta.Key());
    NamePtr svc_name = std::make_shared<const Name>(*parsed);
    auto ep_it = endpoints.find(svc.meta.Key());
    const model::EndpointSet& eps = ep_it == endpoints.end() ? kNoEndpoints : ep_it->second;

    // Named ports give SRV records at _<port>._<proto>.<service name>.
    auto srv_name = [&](const model::ServicePort& port) {
      Name n = *svc_name;
      n.Prepend(ProtoLabel(port.protocol));
      n.Prepend(StrCat("_", port.name));
      return n;
    };

    switch (svc.type) {
      case model::ServiceType::kClusterIP:
      case model::ServiceType::kNodePort: {
        std::array<uint8_t, 4> ip;
        if (svc.cluster_ip.empty() || !ParseIpv4(svc.cluster_ip, &ip)) break;  // not allocated yet
        zone->At(*svc_name).a.push_back(ip);
        zone->At(ReverseName(ip)).ptr = svc_name;
        for (const model::ServicePort& port : svc.ports) {
          if (port.name.empty()) continue;
          zone->At(srv_name(port)).srv.push_back({0, 100, port.port, svc_name});
        }
        break;
      }
      case model::ServiceType::kHeadless: {
        for (const model::Endpoint& ep : eps.endpoints) {
          std::array<uint8_t, 4> ip;
          if (!ep.ready || !ParseIpv4(ep.ip, &ip)) continue;
          Name host_name = *svc_name;
          if (!host_name.Prepend(ep.hostname.empty() ? DashedIp(ep.ip) : ep.hostname)) continue;
          NamePtr host = std::make_shared<const Name>(host_name);
          zone->At(*svc_name).a.push_back(ip);
          zone->At(*host).a.push_back(ip);
          zone->At(ReverseName(ip)).ptr = host;
          for (size_t i = 0; i < svc.ports.size(); ++i) {
            const model::ServicePort& port = svc.ports[i];
            uint16_t target = i < ep.ports.size() ? ep.ports[i] : 0;
            if (port.name.empty() || target == 0) continue;
            zone->At(srv_name(port)).srv.push_back({0, 0, target, host});
          }
        }
        break;
      }
      case model::ServiceType::kExternalName: {
        auto target = Name::FromText(svc.external_name);
        if (!target.ok()) return Annotate(target.status(), svc.meta.Key());
        zone->At(*svc_name).cname = std::make_shared<const Name>(*target);
        break;
      }
    }
  }
  // SRV weights split 100 between the records of a name, as CoreDNS does.
  for (auto& [name, entry] : zone->names_) {
    if (entry.srv.empty()) continue;
    uint16_t weight = static_cast<uint16_t>(std::max<size_t>(1, 100 / entry.srv.size()));
    for (SrvRecord& r : entry.srv) r.weight = weight;
  }
  return std::shared_ptr<const ClusterZone>(std::move(zone));
}

bool ClusterZone::Covers(const Name& name) const {
  if (name.IsSubdomainOf(origin_)) return true;
  // Reverse names: only those the zone holds (or their parents); other reverse
  // lookups go upstream.
  return name.IsSubdomainOf(reverse_origin_) && Find(name) != nullptr;
}

const ZoneEntry* ClusterZone::Find(const Name& name) const {
  uint8_t lower[kMaxNameWire];
  const uint8_t* w = name.wire();
  for (size_t i = 0; i < name.wire_size(); ++i) {
    lower[i] = (w[i] >= 'A' && w[i] <= 'Z') ? static_cast<uint8_t>(w[i] + 32) : w[i];
  }
  auto it = names_.find(absl::string_view(reinterpret_cast<const char*>(lower), name.wire_size()));
  return it == names_.end() ? nullptr : &it->second;
}

}  // namespace loom::dns
