#include "dns/cluster_zone.h"

#include <arpa/inet.h>

#include <algorithm>
#include <atomic>
#include <bitset>
#include <ctime>
#include <map>

#include "absl/container/flat_hash_set.h"
#include "common/status.h"
#include "common/strings.h"

namespace loom::dns {

// The names of the services whose keys hash here, the services themselves (what
// an update of the shard starts from), and the PTR records each of those services
// contributes (so that an update knows which reverse shards a changed service
// touched before).
struct ClusterZone::ForwardShard {
  NameIndex names;
  std::vector<model::ServiceEntry> services;  // sorted by key
  absl::flat_hash_map<std::string, std::vector<std::pair<uint32_t, NamePtr>>> ptrs;
  // Namespaces with at least one name here, and how many services hold names there.
  absl::flat_hash_map<std::string, int> namespaces;
};

// PTR entries of the addresses that hash here (host byte order), with every claim
// on them (what an update of the shard starts from) and their /24 prefixes.
struct ClusterZone::ReverseShard {
  struct Claim {
    uint32_t ip;
    NamePtr target;
    std::shared_ptr<const std::string> owner;  // the key of the claiming service
  };
  absl::flat_hash_map<uint32_t, ZoneEntry> ips;
  std::vector<Claim> claims;  // sorted by address, then owner
  absl::flat_hash_map<uint32_t, uint32_t> prefixes;  // /24 -> addresses here
};

namespace {

std::atomic<uint32_t> g_serial{static_cast<uint32_t>(std::time(nullptr))};

using Shards = std::bitset<ClusterZone::kShards>;
using NameMap = absl::flat_hash_map<std::string, ZoneEntry>;

bool ParseIpv4(const std::string& text, uint32_t* out) {
  in_addr a;
  if (inet_pton(AF_INET, text.c_str(), &a) != 1) return false;
  *out = ntohl(a.s_addr);
  return true;
}

std::array<uint8_t, 4> Octets(uint32_t ip) {
  return {static_cast<uint8_t>(ip >> 24), static_cast<uint8_t>(ip >> 16),
          static_cast<uint8_t>(ip >> 8), static_cast<uint8_t>(ip)};
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

// FNV-1a over the lower-cased service name and namespace: the same for the
// labels of a query as for the service object.
int ShardOf(std::string_view name, std::string_view ns) {
  uint32_t h = 2166136261u;
  auto mix = [&h](std::string_view s) {
    for (char c : s) {
      h ^= static_cast<uint8_t>((c >= 'A' && c <= 'Z') ? c + 32 : c);
      h *= 16777619u;
    }
  };
  mix(name);
  h ^= 0xff;  // never part of a label
  h *= 16777619u;
  mix(ns);
  return static_cast<int>(h % ClusterZone::kShards);
}

int ShardOfKey(std::string_view key) {  // "ns/name"
  size_t slash = key.find('/');
  if (slash == std::string_view::npos) return ShardOf(key, "");
  return ShardOf(key.substr(slash + 1), key.substr(0, slash));
}

int ShardOfIp(uint32_t ip) { return static_cast<int>((ip * 2654435761u) >> 24); }

// A label of decimal digits 0..255 without leading zeros.
bool ParseOctet(std::string_view label, uint32_t* out) {
  if (label.empty() || label.size() > 3 || (label.size() > 1 && label[0] == '0')) return false;
  uint32_t v = 0;
  for (char c : label) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<uint32_t>(c - '0');
  }
  if (v > 255) return false;
  *out = v;
  return true;
}

Name ReverseName(uint32_t ip, int octets) {
  std::array<uint8_t, 4> o = Octets(ip);
  std::string text;
  for (int i = octets - 1; i >= 0; --i) StrAppend(&text, o[i], ".");
  return *Name::FromText(StrCat(text, "in-addr.arpa"));  // always valid
}

// Adds one service's names to its shard.
class ShardWriter {
 public:
  // Names go to `names` (keyed by lower-cased wire form; frozen into the shard's
  // index once every service of the shard is in), PTRs and namespaces to `shard`.
  ShardWriter(ClusterZone::ForwardShard* shard, NameMap* names, const std::string& domain)
      : shard_(shard), names_(names), domain_(domain) {}

  absl::Status Add(const model::Service& svc, const model::EndpointSet& eps) {
    auto parsed = Name::FromText(StrCat(svc.meta.name, ".", svc.meta.ns, ".svc.", domain_));
    if (!parsed.ok()) return Annotate(parsed.status(), svc.meta.Key());
    NamePtr svc_name = std::make_shared<const Name>(*parsed);
    svc_name_ = svc_name.get();
    added_ = false;
    std::vector<std::pair<uint32_t, NamePtr>> ptrs;

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
        uint32_t ip;
        if (svc.cluster_ip.empty() || !ParseIpv4(svc.cluster_ip, &ip)) break;  // not allocated yet
        At(*svc_name).a.push_back(Octets(ip));
        ptrs.emplace_back(ip, svc_name);
        for (const model::ServicePort& port : svc.ports) {
          if (port.name.empty()) continue;
          At(srv_name(port)).extra.srv.push_back({0, 100, port.port, svc_name});
        }
        break;
      }
      case model::ServiceType::kHeadless: {
        for (const model::Endpoint& ep : eps.endpoints) {
          uint32_t ip;
          if (!ep.ready || !ParseIpv4(ep.ip, &ip)) continue;
          Name host_name = *svc_name;
          if (!host_name.Prepend(ep.hostname.empty() ? DashedIp(ep.ip) : ep.hostname)) continue;
          NamePtr host = std::make_shared<const Name>(host_name);
          At(*svc_name).a.push_back(Octets(ip));
          At(*host).a.push_back(Octets(ip));
          ptrs.emplace_back(ip, host);
          for (size_t i = 0; i < svc.ports.size(); ++i) {
            const model::ServicePort& port = svc.ports[i];
            uint16_t target = i < ep.ports.size() ? ep.ports[i] : 0;
            if (port.name.empty() || target == 0) continue;
            At(srv_name(port)).extra.srv.push_back({0, 0, target, host});
          }
        }
        break;
      }
      case model::ServiceType::kExternalName: {
        auto target = Name::FromText(svc.external_name);
        if (!target.ok()) return Annotate(target.status(), svc.meta.Key());
        At(*svc_name).extra.cname = std::make_shared<const Name>(*target);
        break;
      }
    }
    if (added_) ++shard_->namespaces[svc.meta.ns];
    if (!ptrs.empty()) shard_->ptrs[svc.meta.Key()] = std::move(ptrs);
    return absl::OkStatus();
  }

 private:
  // The entry at `name`, created with its ancestors up to the service's name (the
  // empty non-terminals of SRV names).
  ZoneEntry& At(const Name& name) {
    added_ = true;
    auto [it, inserted] = names_->try_emplace(Key(name));
    if (inserted) {
      std::optional<Name> up = Parent(name);
      while (up && up->IsSubdomainOf(*svc_name_)) {
        if (!names_->try_emplace(Key(*up)).second) break;
        up = Parent(*up);
      }
      it = names_->find(Key(name));
    }
    return it->second;
  }

  ClusterZone::ForwardShard* shard_;
  NameMap* names_;
  const std::string& domain_;
  const Name* svc_name_ = nullptr;
  bool added_ = false;
};

void AppendEntry(const std::string& owner, const ZoneRecords& records,
                 std::vector<std::string>* out) {
  size_t before = out->size();
  for (uint32_t i = 0; i < records.a_count; ++i) {
    const uint8_t* a = records.address(i);
    out->push_back(StrCat(owner, " A ", a[0], ".", a[1], ".", a[2], ".", a[3]));
  }
  const ZoneExtra& e = *records.extra;
  for (const SrvRecord& r : e.srv) {
    out->push_back(StrCat(owner, " SRV ", r.priority, " ", r.weight, " ", r.port, " ",
                          r.target->ToText()));
  }
  if (e.cname) out->push_back(StrCat(owner, " CNAME ", e.cname->ToText()));
  if (e.ptr) out->push_back(StrCat(owner, " PTR ", e.ptr->ToText()));
  if (e.has_txt) out->push_back(StrCat(owner, " TXT \"", e.txt, "\""));
  if (out->size() == before) out->push_back(StrCat(owner, " -"));
}

std::string KeyText(std::string_view key) {
  Name n;
  Name::FromWire(reinterpret_cast<const uint8_t*>(key.data()), key.size(), &n);
  return n.ToText();
}

}  // namespace

absl::StatusOr<std::shared_ptr<const ClusterZone>> ClusterZone::Build(
    const ZoneOptions& options, const model::ServiceTable& services) {
  return Update(nullptr, options, services, {});
}

absl::StatusOr<std::shared_ptr<const ClusterZone>> ClusterZone::Update(
    const std::shared_ptr<const ClusterZone>& previous, const ZoneOptions& options,
    const model::ServiceTable& services, const std::vector<std::string>& changed) {
  std::shared_ptr<ClusterZone> zone(new ClusterZone());
  const bool full = previous == nullptr || !(previous->options_ == options);
  if (full) {
    ASSIGN_OR_RETURN(Name origin, Name::FromText(options.domain));
    zone->origin_ = origin.Lowered();
    zone->reverse_origin_ = *Name::FromText("in-addr.arpa");
    zone->mname_ = *Name::FromText(StrCat("ns.dns.", options.domain));
    zone->rname_ = *Name::FromText(StrCat("hostmaster.", options.domain));
  } else {
    zone->origin_ = previous->origin_;
    zone->reverse_origin_ = previous->reverse_origin_;
    zone->mname_ = previous->mname_;
    zone->rname_ = previous->rname_;
    zone->forward_ = previous->forward_;
    zone->reverse_ = previous->reverse_;
  }
  zone->options_ = options;
  zone->serial_ = g_serial.fetch_add(1);

  // Which shards to rebuild: the forward shards of the changed services, and the
  // reverse shards of the addresses they had (from the previous snapshot) and have.
  Shards dirty_forward, dirty_reverse;
  if (full) {
    dirty_forward.set();
    dirty_reverse.set();
  } else {
    for (const std::string& key : changed) {
      int f = ShardOfKey(key);
      dirty_forward.set(f);
      const ForwardShard* old = previous->forward_[f].get();
      auto it = old->ptrs.find(key);
      if (it == old->ptrs.end()) continue;
      for (const auto& [ip, target] : it->second) dirty_reverse.set(ShardOfIp(ip));
    }
  }

  // The services of each forward shard to rebuild: from the previous shard, but
  // for what changed (a full build sorts the whole table out).
  absl::flat_hash_set<absl::string_view> changed_keys(changed.begin(), changed.end());
  std::array<std::vector<model::ServiceEntry>, kShards> members;
  if (full) {
    for (const model::ServiceEntry& entry : services) {
      members[ShardOf(entry.service->meta.name, entry.service->meta.ns)].push_back(entry);
    }
  } else {
    for (int i = 0; i < kShards; ++i) {
      if (!dirty_forward.test(i)) continue;
      for (const model::ServiceEntry& entry : previous->forward_[i]->services) {
        if (!changed_keys.contains(entry.key())) members[i].push_back(entry);
      }
    }
    for (absl::string_view key : changed_keys) {
      if (const model::ServiceEntry* entry = services.Find(ToStd(key))) {
        members[ShardOfKey(ToStd(key))].push_back(*entry);
      }
    }
    for (int i = 0; i < kShards; ++i) {
      std::sort(members[i].begin(), members[i].end(),
                [](const auto& a, const auto& b) { return a.key() < b.key(); });
    }
  }

  std::array<std::shared_ptr<ForwardShard>, kShards> fresh;
  std::array<NameMap, kShards> fresh_names;  // frozen into the shards' indexes below
  for (int i = 0; i < kShards; ++i) {
    if (!dirty_forward.test(i)) continue;
    fresh[i] = std::make_shared<ForwardShard>();
    ShardWriter writer(fresh[i].get(), &fresh_names[i], options.domain);
    for (const model::ServiceEntry& entry : members[i]) {
      RETURN_IF_ERROR(writer.Add(*entry.service, *entry.endpoints));
    }
    fresh[i]->services = std::move(members[i]);
  }
  for (int i = 0; i < kShards; ++i) {
    if (!fresh[i]) continue;
    // SRV weights split 100 between the records of a name, as CoreDNS does.
    for (auto& [name, entry] : fresh_names[i]) {
      std::vector<SrvRecord>& srv = entry.extra.srv;
      if (srv.empty()) continue;
      uint16_t weight = static_cast<uint16_t>(std::max<size_t>(1, 100 / srv.size()));
      for (SrvRecord& r : srv) r.weight = weight;
    }
    fresh[i]->names = NameIndex(fresh_names[i]);
    fresh_names[i] = NameMap();
    zone->forward_[i] = fresh[i];
  }
  for (absl::string_view key : changed_keys) {
    const ForwardShard& shard = *zone->forward_[ShardOfKey(ToStd(key))];
    auto it = shard.ptrs.find(key);
    if (it == shard.ptrs.end()) continue;
    for (const auto& [ip, target] : it->second) dirty_reverse.set(ShardOfIp(ip));
  }

  // The claims on the addresses of each reverse shard to rebuild: the previous
  // shard's, but for the changed services, and the changed services' new ones.
  std::array<std::vector<ReverseShard::Claim>, kShards> claims;
  auto claim = [&](const ForwardShard& shard, const model::ServiceEntry& entry) {
    auto it = shard.ptrs.find(entry.key());
    if (it == shard.ptrs.end()) return;
    auto owner = std::shared_ptr<const std::string>(entry.endpoints, &entry.key());
    for (const auto& [ip, target] : it->second) {
      int r = ShardOfIp(ip);
      if (dirty_reverse.test(r)) claims[r].push_back({ip, target, owner});
    }
  };
  if (full) {
    for (const auto& shard : zone->forward_) {
      for (const model::ServiceEntry& entry : shard->services) claim(*shard, entry);
    }
  } else {
    for (int i = 0; i < kShards; ++i) {
      if (!dirty_reverse.test(i)) continue;
      for (const ReverseShard::Claim& c : previous->reverse_[i]->claims) {
        if (!changed_keys.contains(*c.owner)) claims[i].push_back(c);
      }
    }
    for (absl::string_view key : changed_keys) {
      if (const model::ServiceEntry* entry = services.Find(ToStd(key))) {
        claim(*zone->forward_[ShardOfKey(ToStd(key))], *entry);
      }
    }
  }
  // When several services claim one address, the service whose key sorts first
  // names it (of one service's claims on it, the last).
  for (int i = 0; i < kShards; ++i) {
    if (!dirty_reverse.test(i)) continue;
    auto shard = std::make_shared<ReverseShard>();
    std::stable_sort(claims[i].begin(), claims[i].end(), [](const auto& a, const auto& b) {
      return a.ip != b.ip ? a.ip < b.ip : *a.owner < *b.owner;
    });
    const std::vector<ReverseShard::Claim>& all = claims[i];
    for (size_t c = 0; c < all.size();) {
      const uint32_t ip = all[c].ip;
      size_t last = c;  // the last claim of the first owner
      while (last + 1 < all.size() && all[last + 1].ip == ip &&
             *all[last + 1].owner == *all[c].owner) {
        ++last;
      }
      shard->ips[ip].extra.ptr = all[last].target;
      ++shard->prefixes[ip & 0xFFFFFF00u];
      c = last + 1;
      while (c < all.size() && all[c].ip == ip) ++c;
    }
    shard->claims = std::move(claims[i]);
    zone->reverse_[i] = std::move(shard);
  }
  // The /24s holding addresses: the previous snapshot's, corrected for the shards
  // rebuilt.
  if (full) {
    for (const auto& shard : zone->reverse_) {
      for (const auto& [prefix, count] : shard->prefixes) zone->prefixes_[prefix] += count;
    }
  } else {
    zone->prefixes_ = previous->prefixes_;
    for (int i = 0; i < kShards; ++i) {
      if (!dirty_reverse.test(i)) continue;
      for (const auto& [prefix, count] : previous->reverse_[i]->prefixes) {
        auto it = zone->prefixes_.find(prefix);
        if ((it->second -= count) == 0) zone->prefixes_.erase(it);
      }
      for (const auto& [prefix, count] : zone->reverse_[i]->prefixes) {
        zone->prefixes_[prefix] += count;
      }
    }
  }

  // The top: apex, dns-version, svc, namespaces, reverse prefixes.
  zone->top_.try_emplace(Key(zone->origin_));
  zone->top_.try_emplace(Key(zone->reverse_origin_));
  ZoneEntry& version = zone->top_[Key(*Name::FromText(StrCat("dns-version.", options.domain)))];
  version.extra.txt = "1.1.0";
  version.extra.has_txt = true;
  absl::flat_hash_set<std::string> namespaces;
  size_t names = 0;
  for (const auto& shard : zone->forward_) {
    names += shard->names.size();
    for (const auto& [ns, count] : shard->namespaces) namespaces.insert(ns);
  }
  if (!namespaces.empty()) zone->top_.try_emplace(Key(*Name::FromText(StrCat("svc.", options.domain))));
  for (const std::string& ns : namespaces) {
    ASSIGN_OR_RETURN(Name n, Name::FromText(StrCat(ns, ".svc.", options.domain)));
    zone->top_.try_emplace(Key(n));
  }
  for (const auto& shard : zone->reverse_) names += shard->ips.size();
  for (const auto& [p, count] : zone->prefixes_) {
    for (int octets = 3; octets >= 1; --octets) {
      if (!zone->top_.try_emplace(Key(ReverseName(p, octets))).second) break;
    }
  }
  zone->name_count_ = names + zone->top_.size();
  zone->rebuilt_shards_ = static_cast<int>(dirty_forward.count() + dirty_reverse.count());
  return std::shared_ptr<const ClusterZone>(std::move(zone));
}

bool ClusterZone::Covers(const Name& name) const {
  if (name.IsSubdomainOf(origin_)) return true;
  // Reverse names: only those the zone holds (or their parents); other reverse
  // lookups go upstream.
  return name.IsSubdomainOf(reverse_origin_) && Find(name).has_value();
}

std::optional<ZoneRecords> ClusterZone::Find(const Name& name) const {
  Name lower = name.Lowered();
  std::optional<ZoneRecords> found;
  if (lower.IsSubdomainOf(origin_)) {
    found = FindForward(lower);
  } else if (lower.IsSubdomainOf(reverse_origin_)) {
    found = FindReverse(lower);
  }
  if (found) return found;
  auto it = top_.find(absl::string_view(reinterpret_cast<const char*>(lower.wire()), lower.wire_size()));
  if (it == top_.end()) return std::nullopt;
  return ZoneRecords::Of(it->second);
}

std::optional<ZoneRecords> ClusterZone::FindServiceName(std::string_view lower_wire,
                                                        std::string_view service,
                                                        std::string_view ns) const {
  return forward_[ShardOf(service, ns)]->names.Find(lower_wire, NameIndex::Hash(lower_wire));
}

PendingLookup ClusterZone::PrefetchServiceName(std::string_view lower_wire,
                                               std::string_view service,
                                               std::string_view ns) const {
  PendingLookup lookup{&forward_[ShardOf(service, ns)]->names, NameIndex::Hash(lower_wire)};
  lookup.index->PrefetchSlot(lookup.hash);
  return lookup;
}

std::optional<ZoneRecords> ClusterZone::FindForward(const Name& lower) const {
  // <...>.<service>.<namespace>.svc.<origin>: the last three labels before the origin.
  const uint8_t* w = lower.wire();
  const size_t end = lower.wire_size() - origin_.wire_size();
  std::string_view last[3];
  int n = 0;
  for (size_t p = 0; p < end; p += 1 + w[p], ++n) {
    last[0] = last[1];
    last[1] = last[2];
    last[2] = std::string_view(reinterpret_cast<const char*>(w + p + 1), w[p]);
  }
  if (n < 3 || last[2] != "svc") return std::nullopt;
  return FindServiceName(std::string_view(reinterpret_cast<const char*>(w), lower.wire_size()),
                         last[0], last[1]);
}

std::optional<ZoneRecords> ClusterZone::FindReverse(const Name& lower) const {
  std::string_view labels[5];
  if (lower.LabelsBefore(reverse_origin_, labels, 5) != 4) return std::nullopt;
  uint32_t ip = 0;
  for (int i = 3; i >= 0; --i) {
    uint32_t octet;
    if (!ParseOctet(labels[i], &octet)) return std::nullopt;
    ip = ip << 8 | octet;
  }
  const ReverseShard& shard = *reverse_[ShardOfIp(ip)];
  auto it = shard.ips.find(ip);
  if (it == shard.ips.end()) return std::nullopt;
  return ZoneRecords::Of(it->second);
}

std::vector<std::string> ClusterZone::Dump() const {
  std::vector<std::string> out;
  for (const auto& [key, entry] : top_) AppendEntry(KeyText(key), ZoneRecords::Of(entry), &out);
  for (const auto& shard : forward_) {
    shard->names.ForEach([&out](std::string_view key, const ZoneRecords& records) {
      AppendEntry(KeyText(key), records, &out);
    });
  }
  for (const auto& shard : reverse_) {
    for (const auto& [ip, entry] : shard->ips) {
      AppendEntry(ReverseName(ip, 4).ToText(), ZoneRecords::Of(entry), &out);
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace loom::dns
