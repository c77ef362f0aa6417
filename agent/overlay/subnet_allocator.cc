#include "agent/overlay/subnet_allocator.h"

#include <random>
#include <set>
#include <vector>

#include "common/json.h"
#include "common/log.h"
#include "common/status.h"
#include "common/strings.h"

namespace loom::agent {
namespace {

std::string ClaimOwner(const std::string& value) {
  try {
    Json j = Json::parse(value);
    if (j.is_object() && j.contains("node") && j["node"].is_string()) {
      return j["node"].get<std::string>();
    }
  } catch (const std::exception&) {
  }
  return "";
}

}  // namespace

std::string SubnetKey(const net::Ipv4Prefix& subnet) {
  return StrCat(kSubnetsPrefix, subnet.network().ToString());
}

SubnetAllocator::SubnetAllocator(store::Store* store, SubnetAllocatorOptions options)
    : store_(store), options_(std::move(options)) {
  if (!options_.random) {
    auto gen = std::make_shared<std::mt19937_64>(std::random_device{}());
    options_.random = [gen](uint64_t n) { return (*gen)() % n; };
  }
}

absl::StatusOr<net::Ipv4Prefix> SubnetAllocator::Acquire(std::string_view node,
                                                         std::string_view underlay_ip) {
  const net::Ipv4Prefix cluster = options_.cluster_cidr.network();
  ASSIGN_OR_RETURN(net::SubnetRange range, cluster.Subnets(options_.node_cidr_size));
  for (int attempt = 0; attempt < options_.max_attempts; ++attempt) {
    ASSIGN_OR_RETURN(store::RangeResult claims, store_->Range(kSubnetsPrefix));
    std::set<net::Ipv4Prefix> taken;
    for (const store::KeyValue& kv : claims.kvs) {
      absl::StatusOr<net::Ipv4Prefix> subnet =
          net::Ipv4Prefix::Parse(std::string_view(kv.key).substr(kSubnetsPrefix.size()));
      if (!subnet.ok()) continue;
      if (ClaimOwner(kv.value) == node && subnet->length() == options_.node_cidr_size &&
          cluster.Contains(*subnet)) {
        LOG_INFO("reusing this node's subnet", {"node", node}, {"subnet", subnet->ToString()});
        return *subnet;
      }
      if (cluster.Overlaps(*subnet)) taken.insert(*subnet);
    }
    // Claims of another size (the flag changed) block every subnet they overlap.
    std::vector<net::Ipv4Prefix> odd;
    for (const net::Ipv4Prefix& t : taken) {
      if (t.length() != options_.node_cidr_size) odd.push_back(t);
    }
    auto is_taken = [&](const net::Ipv4Prefix& s) {
      if (taken.count(s)) return true;
      for (const net::Ipv4Prefix& t : odd) {
        if (t.Overlaps(s)) return true;
      }
      return false;
    };
    uint64_t free = 0;
    for (const net::Ipv4Prefix& s : range) free += is_taken(s) ? 0 : 1;
    if (free == 0) {
      return absl::ResourceExhaustedError(
          StrCat("no free /", options_.node_cidr_size, " subnet left in cluster CIDR ",
                 cluster.ToString(), " (", range.size(), " subnets, all claimed)"));
    }
    uint64_t pick = options_.random(free);
    net::Ipv4Prefix chosen;
    for (const net::Ipv4Prefix& s : range) {
      if (is_taken(s)) continue;
      if (pick-- == 0) {
        chosen = s;
        break;
      }
    }
    std::string key = SubnetKey(chosen);
    store::Txn txn;
    txn.compare.push_back(store::Compare::Absent(key));
    txn.success.push_back(store::Op::Put(key, ClaimValue(node, underlay_ip)));
    ASSIGN_OR_RETURN(store::TxnResult result, store_->Commit(txn));
    if (result.succeeded) {
      LOG_INFO("claimed a node subnet", {"node", node}, {"subnet", chosen.ToString()},
               {"attempt", attempt + 1});
      return chosen;
    }
    LOG_INFO("subnet claimed concurrently; retrying", {"subnet", chosen.ToString()});
  }
  return absl::AbortedError(StrCat("could not claim a subnet of ", cluster.ToString(),
                                   " after ", options_.max_attempts, " conflicting attempts"));
}

std::string SubnetAllocator::ClaimValue(std::string_view node, std::string_view underlay_ip) const {
  return Json{{"node", std::string(node)},
              {"underlayIP", std::string(underlay_ip)},
              {"claimed",
               absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", options_.now(), absl::UTCTimeZone())}}
      .dump();
}

absl::Status SubnetAllocator::EnsureClaim(std::string_view node, std::string_view underlay_ip,
                                          const net::Ipv4Prefix& subnet) {
  std::string key = SubnetKey(subnet);
  ASSIGN_OR_RETURN(std::optional<store::KeyValue> kv, store_->Get(key));
  if (!kv) {
    store::Txn txn;
    txn.compare.push_back(store::Compare::Absent(key));
    txn.success.push_back(store::Op::Put(key, ClaimValue(node, underlay_ip)));
    ASSIGN_OR_RETURN(store::TxnResult result, store_->Commit(txn));
    if (result.succeeded) {
      LOG_WARNING("this node's subnet claim was gone; claimed it again", {"node", node},
                  {"subnet", subnet.ToString()});
      return absl::OkStatus();
    }
    ASSIGN_OR_RETURN(kv, store_->Get(key));
    if (!kv) return absl::AbortedError(StrCat("subnet ", subnet.ToString(), " claim raced"));
  }
  std::string owner = ClaimOwner(kv->value);
  if (owner != node) {
    return absl::FailedPreconditionError(StrCat("subnet ", subnet.ToString(), " of node ", node,
                                                " now belongs to node ", owner));
  }
  return absl::OkStatus();
}

absl::StatusOr<int> SubnetSweeper::SweepOnce(absl::Time now) {
  ASSIGN_OR_RETURN(store::RangeResult claims, store_->Range(kSubnetsPrefix));
  ASSIGN_OR_RETURN(store::RangeResult nodes, store_->Range(kOverlayNodesPrefix));
  std::set<std::string> live;
  for (const store::KeyValue& kv : nodes.kvs) live.insert(kv.key.substr(kOverlayNodesPrefix.size()));
  std::map<std::string, absl::Time> still_missing;
  int freed = 0;
  for (const store::KeyValue& kv : claims.kvs) {
    std::string owner = ClaimOwner(kv.value);
    if (owner.empty() || live.count(owner)) continue;
    auto it = missing_since_.find(kv.key);
    absl::Time since = it == missing_since_.end() ? now : it->second;
    if (now - since < grace_) {
      still_missing[kv.key] = since;
      continue;
    }
    // Only if the node is still gone and nobody rewrote the claim meanwhile.
    store::Txn txn;
    txn.compare.push_back(store::Compare::Absent(StrCat(kOverlayNodesPrefix, owner)));
    txn.compare.push_back(store::Compare::ModRevisionIs(kv.key, kv.mod_revision));
    txn.success.push_back(store::Op::Delete(kv.key));
    ASSIGN_OR_RETURN(store::TxnResult result, store_->Commit(txn));
    if (result.succeeded) {
      ++freed;
      LOG_INFO("freed the subnet of a departed node", {"subnet", kv.key}, {"node", owner},
               {"grace", absl::FormatDuration(grace_)});
    }
  }
  missing_since_ = std::move(still_missing);
  return freed;
}

}  // namespace loom::agent
