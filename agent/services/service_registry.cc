#include "agent/services/service_registry.h"

#include <cctype>
#include <random>

#include "absl/container/flat_hash_set.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/net/ip.h"
#include "common/status.h"
#include "common/strings.h"

namespace loom::agent {
namespace {

std::string IpToString(uint32_t host_order) {
  return net::Ipv4Address::FromHostOrder(host_order).ToString();
}

std::optional<uint32_t> ParseIp(const std::string& text) {
  absl::StatusOr<net::Ipv4Address> a = net::Ipv4Address::Parse(text);
  if (!a.ok()) return std::nullopt;
  return a->ToHostOrder();
}

bool NeedsClusterIp(model::ServiceType t) {
  return t == model::ServiceType::kClusterIP || t == model::ServiceType::kNodePort;
}

std::string ObjectName(const model::Service& s) { return StrCat("service/", s.meta.name); }

}  // namespace

std::string ServiceKey(std::string_view ns, std::string_view name) {
  return StrCat(kServicesPrefix, ns, "/", name);
}

std::string ServiceIpKey(std::string_view ip) { return StrCat(kServiceIpsPrefix, ip); }

std::string NodePortKey(model::Protocol protocol, uint16_t port) {
  std::string proto = model::ProtocolName(protocol);
  for (char& c : proto) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return StrCat(kNodePortsPrefix, proto, "/", port);
}

Json StoredService::ToJson() const {
  Json j = model::ServiceToManifest(service);
  j["status"] = Json::object();
  if (!created_at.empty()) j["status"]["createdAt"] = created_at;
  if (!service.cluster_ip.empty()) j["status"]["clusterIP"] = service.cluster_ip;
  return j;
}

absl::StatusOr<StoredService> StoredServiceFromJson(std::string_view value, int64_t revision) {
  ASSIGN_OR_RETURN(Json j, ParseJson(value));
  StoredService out;
  ASSIGN_OR_RETURN(out.service, model::ServiceFromManifest(j));
  out.service.meta.revision = revision;
  if (j.contains("status") && j["status"].is_object()) {
    out.created_at = j["status"].value("createdAt", "");
  }
  return out;
}

std::string_view ApplyOutcomeName(ApplyOutcome outcome) {
  switch (outcome) {
    case ApplyOutcome::kCreated: return "created";
    case ApplyOutcome::kConfigured: return "configured";
    case ApplyOutcome::kUnchanged: return "unchanged";
  }
  return "created";
}

ServiceRegistry::ServiceRegistry(store::Store* store, ServiceRegistryOptions options)
    : store_(store), options_(std::move(options)) {}

bool ServiceRegistry::Usable(uint32_t ip) const {
  uint32_t size = options_.cidr.prefix_len == 0 ? 0 : uint32_t{1} << (32 - options_.cidr.prefix_len);
  uint32_t offset = ip - options_.cidr.network;
  if (offset == 0) return false;                     // the network address
  if (size >= 4 && offset == size - 1) return false;  // the broadcast address
  for (uint32_t r : options_.reserved) {
    if (r == ip) return false;
  }
  return true;
}

absl::StatusOr<std::string> ServiceRegistry::CheckRequestedIp(const std::string& text) const {
  std::optional<uint32_t> ip = ParseIp(text);
  uint32_t mask = options_.cidr.prefix_len == 0 ? 0 : ~uint32_t{0} << (32 - options_.cidr.prefix_len);
  std::string cidr = StrCat(IpToString(options_.cidr.network), "/", options_.cidr.prefix_len);
  if (!ip || (*ip & mask) != options_.cidr.network) {
    return absl::InvalidArgumentError(
        StrCat("spec.clusterIP: \"", text, "\" is not in the service CIDR ", cidr));
  }
  if (!Usable(*ip)) {
    return absl::InvalidArgumentError(StrCat(
        "spec.clusterIP: \"", text,
        "\" is reserved (the network, broadcast or node-local DNS address of ", cidr, ")"));
  }
  return text;
}

absl::StatusOr<std::string> ServiceRegistry::PickFreeIp() {
  uint64_t size = uint64_t{1} << (32 - options_.cidr.prefix_len);
  std::random_device rd;
  if (!options_.start_offset) {
    // A few random probes, one key read each: with a service CIDR that is mostly
    // free (a /12 holds a million addresses) the first one nearly always hits, so an
    // allocation costs the same at 10 services as at 10,000. The claim itself is
    // still settled by the transaction's compare.
    for (int probe = 0; probe < 8; ++probe) {
      uint32_t ip = options_.cidr.network +
                    static_cast<uint32_t>((uint64_t{rd()} << 32 | rd()) % size);
      if (!Usable(ip)) continue;
      std::string text = IpToString(ip);
      ASSIGN_OR_RETURN(std::optional<store::KeyValue> owner, store_->Get(ServiceIpKey(text)));
      if (!owner) return text;
    }
  }
  // A crowded CIDR (or a fixed start, in tests): read every claim and scan.
  ASSIGN_OR_RETURN(store::RangeResult taken_range, store_->Range(kServiceIpsPrefix));
  absl::flat_hash_set<std::string> taken;
  for (const store::KeyValue& kv : taken_range.kvs) {
    taken.insert(kv.key.substr(kServiceIpsPrefix.size()));
  }
  uint64_t start;
  if (options_.start_offset) {
    start = *options_.start_offset % size;
  } else {
    // Random, so that agents allocating at once rarely collide.
    start = (uint64_t{rd()} << 32 | rd()) % size;
  }
  for (uint64_t i = 0; i < size; ++i) {
    uint32_t ip = options_.cidr.network + static_cast<uint32_t>((start + i) % size);
    if (!Usable(ip)) continue;
    std::string text = IpToString(ip);
    if (!taken.contains(text)) return text;
  }
  return absl::ResourceExhaustedError(
      StrCat("no free ClusterIP left in ", IpToString(options_.cidr.network), "/",
             options_.cidr.prefix_len));
}

namespace {

std::vector<std::string> NodePortClaims(const model::Service* s) {
  std::vector<std::string> out;
  if (s == nullptr || s->type != model::ServiceType::kNodePort) return out;
  for (const model::ServicePort& p : s->ports) {
    if (p.node_port != 0) out.push_back(NodePortKey(p.protocol, p.node_port));
  }
  return out;
}

}  // namespace

absl::StatusOr<std::vector<std::string>> ServiceRegistry::PlanNodePorts(
    model::Service& next, const model::Service* existing, std::vector<std::string>* release) {
  std::vector<std::string> old = NodePortClaims(existing);
  std::vector<std::string> claims;
  if (next.type == model::ServiceType::kNodePort) {
    absl::flat_hash_set<std::string> used;  // this service's, so far
    std::optional<absl::flat_hash_set<std::string>> taken;  // read once, if needed
    for (size_t i = 0; i < next.ports.size(); ++i) {
      model::ServicePort& p = next.ports[i];
      std::string field = StrCat("spec.ports[", i, "].nodePort");
      if (p.node_port != 0 &&
          (p.node_port < options_.node_port_min || p.node_port > options_.node_port_max)) {
        return absl::InvalidArgumentError(StrCat(field, ": ", p.node_port,
                                                 " is outside the node port range ",
                                                 options_.node_port_min, "-",
                                                 options_.node_port_max));
      }
      if (p.node_port == 0 && existing != nullptr) {  // keep what the port had
        for (const model::ServicePort& q : existing->ports) {
          if (q.name == p.name && q.protocol == p.protocol && q.node_port != 0 &&
              !used.contains(NodePortKey(q.protocol, q.node_port))) {
            p.node_port = q.node_port;
            break;
          }
        }
      }
      if (p.node_port == 0) {
        if (!taken) {
          ASSIGN_OR_RETURN(store::RangeResult r, store_->Range(kNodePortsPrefix));
          taken.emplace();
          for (const store::KeyValue& kv : r.kvs) taken->insert(kv.key);
        }
        uint32_t size = options_.node_port_max - options_.node_port_min + 1;
        std::random_device rd;
        uint32_t start = rd() % size;
        for (uint32_t k = 0; k < size && p.node_port == 0; ++k) {
          uint16_t port = static_cast<uint16_t>(options_.node_port_min + (start + k) % size);
          std::string key = NodePortKey(p.protocol, port);
          if (!taken->contains(key) && !used.contains(key)) p.node_port = port;
        }
        if (p.node_port == 0) {
          return absl::ResourceExhaustedError(StrCat(field, ": no free node port left in ",
                                                     options_.node_port_min, "-",
                                                     options_.node_port_max));
        }
      }
      std::string key = NodePortKey(p.protocol, p.node_port);
      if (!used.insert(key).second) {
        return absl::InvalidArgumentError(StrCat(field, ": ", p.node_port, "/",
                                                 model::ProtocolName(p.protocol),
                                                 " is given to two ports of ", ObjectName(next)));
      }
      if (std::find(old.begin(), old.end(), key) == old.end()) claims.push_back(key);
    }
    for (const std::string& k : old) {
      if (!used.contains(k)) release->push_back(k);
    }
  } else {
    *release = old;
  }
  return claims;
}

absl::StatusOr<ApplyResult> ServiceRegistry::Apply(const Json& manifest) {
  ASSIGN_OR_RETURN(model::Service svc, model::ServiceFromManifest(manifest));
  svc.meta.revision = 0;
  const std::string key = ServiceKey(svc.meta.ns, svc.meta.name);
  const std::string requested_ip = svc.cluster_ip;
  if (!requested_ip.empty()) RETURN_IF_ERROR(CheckRequestedIp(requested_ip).status());

  for (int attempt = 0; attempt < options_.max_attempts; ++attempt) {
    ASSIGN_OR_RETURN(std::optional<store::KeyValue> existing_kv, store_->Get(key));
    std::optional<StoredService> existing;
    if (existing_kv) {
      ASSIGN_OR_RETURN(existing, StoredServiceFromJson(existing_kv->value, 0));
    }
    const std::string old_ip = existing ? existing->service.cluster_ip : "";
    model::Service next = svc;
    std::string claim;  // an IP to claim in this transaction
    if (!NeedsClusterIp(next.type)) {
      next.cluster_ip.clear();
    } else if (!old_ip.empty()) {
      if (!requested_ip.empty() && requested_ip != old_ip) {
        return absl::InvalidArgumentError(
            StrCat("spec.clusterIP: \"", requested_ip, "\" cannot replace ", old_ip, " of ",
                   ObjectName(svc), " (a ClusterIP is kept for the service's life; delete "
                   "the service to change it)"));
      }
      next.cluster_ip = old_ip;
    } else if (!requested_ip.empty()) {
      claim = requested_ip;
    } else {
      ASSIGN_OR_RETURN(claim, PickFreeIp());
      next.cluster_ip = claim;
    }

    std::vector<std::string> np_release;
    ASSIGN_OR_RETURN(std::vector<std::string> np_claims,
                     PlanNodePorts(next, existing ? &existing->service : nullptr, &np_release));

    StoredService stored{next, existing ? existing->created_at : ""};
    if (existing && existing->service == next) {
      stored.service.meta.revision = existing_kv->mod_revision;
      return ApplyResult{ApplyOutcome::kUnchanged, std::move(stored)};
    }
    if (stored.created_at.empty()) {
      stored.created_at = absl::FormatTime(absl::RFC3339_sec, absl::Now(), absl::UTCTimeZone());
    }

    store::Txn txn;
    txn.compare.push_back(existing_kv ? store::Compare::ModRevisionIs(key, existing_kv->mod_revision)
                                      : store::Compare::Absent(key));
    txn.success.push_back(store::Op::Put(key, stored.ToJson().dump()));
    if (!claim.empty()) {
      txn.compare.push_back(store::Compare::Absent(ServiceIpKey(claim)));
      txn.success.push_back(store::Op::Put(ServiceIpKey(claim),
                                           Json{{"service", svc.meta.Key()}}.dump()));
    }
    if (!old_ip.empty() && next.cluster_ip != old_ip) {
      txn.success.push_back(store::Op::Delete(ServiceIpKey(old_ip)));  // type changed
    }
    for (const std::string& k : np_claims) {
      txn.compare.push_back(store::Compare::Absent(k));
      txn.success.push_back(store::Op::Put(k, Json{{"service", svc.meta.Key()}}.dump()));
    }
    for (const std::string& k : np_release) txn.success.push_back(store::Op::Delete(k));
    ASSIGN_OR_RETURN(store::TxnResult result, store_->Commit(txn));
    if (result.succeeded) {
      stored.service.meta.revision = result.revision;
      return ApplyResult{existing ? ApplyOutcome::kConfigured : ApplyOutcome::kCreated,
                         std::move(stored)};
    }
    // Lost a race: on the service key (retry with what is there now), on the IP, or
    // on a node port the manifest named.
    for (size_t i = 0; i < svc.ports.size(); ++i) {
      if (svc.ports[i].node_port == 0) continue;
      std::string k = NodePortKey(svc.ports[i].protocol, svc.ports[i].node_port);
      if (std::find(np_claims.begin(), np_claims.end(), k) == np_claims.end()) continue;
      ASSIGN_OR_RETURN(std::optional<store::KeyValue> owner, store_->Get(k));
      if (!owner) continue;
      absl::StatusOr<Json> o = ParseJson(owner->value);
      std::string who = o.ok() && o->is_object() ? o->value("service", "?") : "?";
      if (who != svc.meta.Key()) {
        return absl::AlreadyExistsError(StrCat("spec.ports[", i, "].nodePort: ",
                                               svc.ports[i].node_port, " is already allocated "
                                               "to service ", who));
      }
    }
    if (!claim.empty() && claim == requested_ip) {
      ASSIGN_OR_RETURN(std::optional<store::KeyValue> owner, store_->Get(ServiceIpKey(claim)));
      if (owner) {
        absl::StatusOr<Json> o = ParseJson(owner->value);
        std::string who = o.ok() && o->is_object() ? o->value("service", "?") : "?";
        if (who != svc.meta.Key()) {
          return absl::AlreadyExistsError(StrCat("spec.clusterIP: \"", claim,
                                                 "\" is already allocated to service ", who));
        }
      }
    }
  }
  return absl::AbortedError(StrCat(ObjectName(svc), ": the store kept changing under ",
                                   options_.max_attempts, " attempts; try again"));
}

absl::StatusOr<StoredService> ServiceRegistry::Get(std::string_view ns, std::string_view name) {
  ASSIGN_OR_RETURN(std::optional<store::KeyValue> kv, store_->Get(ServiceKey(ns, name)));
  if (!kv) return absl::NotFoundError(StrCat("service ", ns, "/", name, " not found"));
  return StoredServiceFromJson(kv->value, kv->mod_revision);
}

absl::StatusOr<std::vector<StoredService>> ServiceRegistry::List(std::string_view ns) {
  std::string prefix(kServicesPrefix);
  if (!ns.empty()) prefix = StrCat(prefix, ns, "/");
  ASSIGN_OR_RETURN(store::RangeResult range, store_->Range(prefix));
  std::vector<StoredService> out;
  for (const store::KeyValue& kv : range.kvs) {
    absl::StatusOr<StoredService> s = StoredServiceFromJson(kv.value, kv.mod_revision);
    if (!s.ok()) return Annotate(s.status(), kv.key);
    out.push_back(*std::move(s));
  }
  return out;
}

absl::StatusOr<StoredService> ServiceRegistry::Delete(std::string_view ns, std::string_view name) {
  const std::string key = ServiceKey(ns, name);
  for (int attempt = 0; attempt < options_.max_attempts; ++attempt) {
    ASSIGN_OR_RETURN(std::optional<store::KeyValue> kv, store_->Get(key));
    if (!kv) return absl::NotFoundError(StrCat("service ", ns, "/", name, " not found"));
    ASSIGN_OR_RETURN(StoredService stored, StoredServiceFromJson(kv->value, kv->mod_revision));
    store::Txn txn;
    txn.compare.push_back(store::Compare::ModRevisionIs(key, kv->mod_revision));
    txn.success.push_back(store::Op::Delete(key));
    if (!stored.service.cluster_ip.empty()) {
      txn.success.push_back(store::Op::Delete(ServiceIpKey(stored.service.cluster_ip)));
    }
    for (const std::string& k : NodePortClaims(&stored.service)) {
      txn.success.push_back(store::Op::Delete(k));
    }
    ASSIGN_OR_RETURN(store::TxnResult result, store_->Commit(txn));
    if (result.succeeded) return stored;
  }
  return absl::AbortedError(
      StrCat("service ", ns, "/", name, ": the store kept changing; try again"));
}

}  // namespace loom::agent
