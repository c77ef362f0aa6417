#include "agent/services/service_registry.h"

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
    ASSIGN_OR_RETURN(store::TxnResult result, store_->Commit(txn));
    if (result.succeeded) {
      stored.service.meta.revision = result.revision;
      return ApplyResult{existing ? ApplyOutcome::kConfigured : ApplyOutcome::kCreated,
                         std::move(stored)};
    }
    // Lost a race: on the service key (retry with what is there now), or on the IP.
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
    ASSIGN_OR_RETURN(store::TxnResult result, store_->Commit(txn));
    if (result.succeeded) return stored;
  }
  return absl::AbortedError(
      StrCat("service ", ns, "/", name, ": the store kept changing; try again"));
}

}  // namespace loom::agent
