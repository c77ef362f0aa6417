#include "agent/ipam/pod_ipam.h"

#include "absl/container/flat_hash_set.h"
#include "common/status.h"
#include "common/strings.h"

namespace loom::ipam {
namespace {

absl::StatusOr<Allocation> AllocationFromKv(const store::KeyValue& kv, std::string_view prefix) {
  Allocation a;
  ASSIGN_OR_RETURN(a.ip, net::Ipv4Address::Parse(std::string_view(kv.key).substr(prefix.size())));
  ASSIGN_OR_RETURN(Json j, ParseJson(kv.value));
  ASSIGN_OR_RETURN(a.container_id, GetString(j, "containerID", kv.key));
  ASSIGN_OR_RETURN(a.ifname, GetString(j, "ifname", kv.key));
  ASSIGN_OR_RETURN(a.netns, GetStringOr(j, "netns", kv.key, ""));
  ASSIGN_OR_RETURN(a.host_veth, GetStringOr(j, "hostVeth", kv.key, ""));
  return a;
}

std::string AllocationValue(const Allocation& a) {
  return Json{{"containerID", a.container_id},
              {"ifname", a.ifname},
              {"netns", a.netns},
              {"hostVeth", a.host_veth}}
      .dump();
}

}  // namespace

Json AllocationToJson(const Allocation& a) {
  return Json{{"ip", a.ip.ToString()},
              {"containerID", a.container_id},
              {"ifname", a.ifname},
              {"netns", a.netns},
              {"hostVeth", a.host_veth}};
}

PodIpam::PodIpam(store::Store* store, std::string node, net::Ipv4Prefix pod_cidr)
    : store_(store), node_(std::move(node)), pod_cidr_(pod_cidr.network()) {}

std::string PodIpam::KeyPrefix() const { return StrCat("/loom/ipam/", node_, "/"); }
std::string PodIpam::Key(net::Ipv4Address ip) const { return StrCat(KeyPrefix(), ip.ToString()); }

absl::StatusOr<std::vector<Allocation>> PodIpam::ListLocked() {
  const std::string prefix = KeyPrefix();
  ASSIGN_OR_RETURN(store::RangeResult range, store_->Range(prefix));
  std::vector<Allocation> out;
  for (const store::KeyValue& kv : range.kvs) {
    ASSIGN_OR_RETURN(Allocation a, AllocationFromKv(kv, prefix));
    out.push_back(std::move(a));
  }
  return out;
}

absl::StatusOr<std::vector<Allocation>> PodIpam::List() {
  std::lock_guard lock(mu_);
  return ListLocked();
}

absl::StatusOr<std::optional<Allocation>> PodIpam::Find(const AttachmentKey& key) {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(std::vector<Allocation> all, ListLocked());
  for (Allocation& a : all) {
    if (a.container_id == key.container_id && a.ifname == key.ifname) return std::move(a);
  }
  return std::nullopt;
}

absl::StatusOr<Allocation> PodIpam::Allocate(const Allocation& request) {
  std::lock_guard lock(mu_);
  const uint64_t size = pod_cidr_.Size();
  // A few rounds: another allocator may win a CAS between our range and our claim.
  for (int attempt = 0; attempt < 16; ++attempt) {
    ASSIGN_OR_RETURN(std::vector<Allocation> all, ListLocked());
    absl::flat_hash_set<net::Ipv4Address> used;
    for (Allocation& a : all) {
      if (a.container_id == request.container_id && a.ifname == request.ifname) return std::move(a);
      used.insert(a.ip);
    }
    std::optional<uint64_t> pick;
    for (uint64_t step = 1; step <= size; ++step) {
      uint64_t offset = (cursor_ + step) % size;
      if (offset == 0 || offset == size - 1) continue;  // network, broadcast
      if (!used.contains(*pod_cidr_.Nth(offset))) {
        pick = offset;
        break;
      }
    }
    if (!pick) {
      return absl::ResourceExhaustedError(
          StrCat("pod CIDR ", pod_cidr_.ToString(), " has no free address (", all.size(),
                 " allocated)"));
    }
    Allocation a = request;
    a.ip = *pod_cidr_.Nth(*pick);
    store::Txn txn;
    txn.compare.push_back(store::Compare::Absent(Key(a.ip)));
    txn.success.push_back(store::Op::Put(Key(a.ip), AllocationValue(a)));
    ASSIGN_OR_RETURN(store::TxnResult r, store_->Commit(txn));
    if (r.succeeded) {
      cursor_ = *pick;
      return a;
    }
    // Lost to another allocator, which walks the range as this one does: look on from
    // a random place, or the two stay in step and this one loses every round.
    cursor_ = absl::Uniform<uint64_t>(random_, 0, size);
  }
  return absl::UnavailableError("pod address allocation kept losing races; try again");
}

absl::StatusOr<std::optional<Allocation>> PodIpam::Release(const AttachmentKey& key) {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(std::vector<Allocation> all, ListLocked());
  for (Allocation& a : all) {
    if (a.container_id != key.container_id || a.ifname != key.ifname) continue;
    RETURN_IF_ERROR(store_->Delete(Key(a.ip)).status());
    return std::move(a);
  }
  return std::nullopt;
}

absl::StatusOr<std::vector<Allocation>> PodIpam::ReleaseIf(
    const std::function<bool(const Allocation&)>& keep) {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(std::vector<Allocation> all, ListLocked());
  std::vector<Allocation> released;
  for (Allocation& a : all) {
    if (keep(a)) continue;
    RETURN_IF_ERROR(store_->Delete(Key(a.ip)).status());
    released.push_back(std::move(a));
  }
  return released;
}

}  // namespace loom::ipam
