// The node's pod address allocator. Every allocation is a store key
//   /loom/ipam/<node>/<ip>  ->  {"containerID", "ifname", "netns", "hostVeth"}
// claimed by a compare-and-swap on its absence, so two allocators (two loomd on one
// etcd by mistake, or a restart racing a replay) never hand out one address twice.
// Allocation is keyed by (containerID, ifname): the same key gets the same address.
// Addresses go round-robin from the last one handed out, so a released address is
// not reused at once; the network and broadcast addresses are never handed out.
#pragma once

#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/random/random.h"
#include "absl/status/statusor.h"
#include "agent/store/store.h"
#include "common/json.h"
#include "common/net/ip.h"

namespace loom::ipam {

struct AttachmentKey {
  std::string container_id;
  std::string ifname;
  friend bool operator==(const AttachmentKey&, const AttachmentKey&) = default;
};

struct Allocation {
  net::Ipv4Address ip;
  std::string container_id;
  std::string ifname;
  std::string netns;      // the container's netns path at ADD (may vanish later)
  std::string host_veth;  // the host side of the pod's veth
  friend bool operator==(const Allocation&, const Allocation&) = default;
};
Json AllocationToJson(const Allocation& a);

class PodIpam {
 public:
  // `pod_cidr` must be /30 or shorter.
  PodIpam(store::Store* store, std::string node, net::Ipv4Prefix pod_cidr);

  const net::Ipv4Prefix& pod_cidr() const { return pod_cidr_; }
  std::string KeyPrefix() const;  // "/loom/ipam/<node>/"

  // The allocation of the request's (containerID, ifname) if there is one (netns and
  // hostVeth are kept from the first call), else a new one. ResourceExhausted when
  // the pod CIDR is full.
  absl::StatusOr<Allocation> Allocate(const Allocation& request);
  // Releases the key's address; nullopt (OK) when it had none.
  absl::StatusOr<std::optional<Allocation>> Release(const AttachmentKey& key);
  absl::StatusOr<std::optional<Allocation>> Find(const AttachmentKey& key);
  absl::StatusOr<std::vector<Allocation>> List();
  // Releases every allocation for which `keep` is false; returns what it released.
  absl::StatusOr<std::vector<Allocation>> ReleaseIf(
      const std::function<bool(const Allocation&)>& keep);

 private:
  std::string Key(net::Ipv4Address ip) const;
  absl::StatusOr<std::vector<Allocation>> ListLocked();

  store::Store* const store_;
  const std::string node_;
  const net::Ipv4Prefix pod_cidr_;
  std::mutex mu_;  // one allocation at a time in this process; the CAS guards the rest
  uint64_t cursor_ = 0;  // offset in the CIDR of the last address handed out
  absl::BitGen random_;  // where to look next after losing a race
};

}  // namespace loom::ipam
