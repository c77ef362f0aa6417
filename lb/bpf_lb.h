// The kernel side of service load balancing: owns the BPF objects of ebpf/prog/
// (sock_lb, tc_lb) and their maps, pinned under a bpffs directory so that a restarted
// owner reuses the very same maps (the data path never sees them empty) and the
// attachments keep running while no owner exists.
//
// Layout of the bpffs directory: one file per map (libbpf pin-by-name, the map's
// name), prog_<name> per program, link_<name> per cgroup attachment. Uninstall()
// removes all of them.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "lb/backend_set.h"

struct sock_lb;
struct tc_lb;
struct bpf_link;

namespace loom::lb {

struct FrontendOptions {
  bool client_ip_affinity = false;
  uint32_t affinity_timeout_s = 10800;  // Kubernetes' default sessionAffinityConfig
  friend bool operator==(const FrontendOptions&, const FrontendOptions&) = default;
};

// File descriptors of the maps (owned by the BpfLoadBalancer), for tests and tools.
struct LbMapFds {
  int services = -1;
  int backends = -1;
  int rev_nat = -1;
  int maglev = -1;
  int affinity = -1;
  int sock_revnat = -1;
  int ct = -1;
  int config = -1;
  int nodeport_nat = -1;
};

class BpfLoadBalancer {
 public:
  // Loads both objects, reusing the maps pinned under `bpffs_dir` (created if missing;
  // it must be on a bpffs) and pinning any that are not, then pins the programs.
  // State already in the maps (frontends, slots, backends) is read back, so a plan
  // computed before a restart applies after it.
  static absl::StatusOr<std::unique_ptr<BpfLoadBalancer>> Open(std::string bpffs_dir);

  // Closes descriptors only: pins and attachments stay (restart without loss).
  ~BpfLoadBalancer();
  BpfLoadBalancer(const BpfLoadBalancer&) = delete;
  BpfLoadBalancer& operator=(const BpfLoadBalancer&) = delete;

  // Attaches the four sock_addr programs to the cgroup2 directory `cgroup_path`
  // through pinned links; links already pinned are switched to this owner's programs.
  absl::Status AttachCgroup(const std::string& cgroup_path);

  // Attaches tc_lb's programs to ingress (from the pod) and egress (to it) of `ifindex` (clsact created if missing,
  // an earlier Loom filter replaced). Netns-aware by the caller: call it inside the
  // interface's namespace (net::RunInNetns).
  absl::Status AttachTc(int ifindex);
  absl::Status DetachTc(int ifindex);

  // NodePort from outside the node: lb_tc_nodeport on the underlay's ingress
  // (`underlay_ifindex`), lb_tc_from_pod on the overlay device's ingress
  // (`overlay_ifindex`, 0 for none: backends on other nodes then answer nothing), and
  // the node's addresses (`node_ip` serves NodePorts; `snat_ip`, this node's overlay
  // address, is the source backends see). Calls in the interfaces' namespace.
  absl::Status AttachNodePort(int underlay_ifindex, int overlay_ifindex, net::Ipv4Address node_ip,
                              net::Ipv4Address snat_ip);

  // Affinity of a frontend: written at once when the frontend resolves, else when its
  // count is first written (Apply).
  absl::Status SetFrontendOptions(const ServiceFrontend& frontend, FrontendOptions options);

  // Executes the plan's operations in order. A frontend's Maglev table is rewritten
  // just before its count is written, or, when only slots changed, before the first
  // deletion: after the new backends and slots exist, before any surplus is deleted.
  absl::Status Apply(const UpdatePlan& plan);

  // Executes several plans (each in order, the plans one after the other) with the
  // Maglev tables of new frontends inserted, and those of removed frontends deleted,
  // by a few threads at once: each update of the outer hash-of-maps waits for an RCU
  // grace period (~10 ms here), and concurrent waiters share grace periods. A new
  // frontend's table is in place (empty) before its slots are written; a removed
  // frontend's table goes after the whole batch, once nothing resolves to it.
  absl::Status ApplyAll(std::span<const UpdatePlan> plans);

  // Deletes the connection entries (lb_ct) whose lifetime ran out (lb_maps.h: 10 s
  // after a TCP flow closed, 60 s after a UDP flow's last packet, ...), so that the
  // LRU map never evicts a live flow's entry to make room while closed ones sit in
  // it. The data path already ignores expired entries. Returns how many went.
  absl::StatusOr<size_t> ExpireFlows();

  // What the maps hold now (read back at Open, kept by Apply): every frontend with
  // its slots' backends, and every backend with its id. A restarted owner rebuilds
  // its allocator and its services' ProgrammedService from this.
  ProgrammedMaps ReadProgrammed() const;

  // Detaches everything this owner attached (tc on the ifindexes it attached in this
  // process, the cgroup links) and removes every pin under the directory, and the
  // directory.
  absl::Status Uninstall();

  // Detaches tc_lb from every interface of the calling thread's network namespace,
  // whoever attached it (found by program name), and removes the clsact qdisc of Loom's
  // pod veths ("lm..."), which only Loom uses. Returns how many filters it removed.
  static absl::StatusOr<int> DetachTcEverywhere();

  LbMapFds map_fds() const;
  int tc_from_pod_fd() const;  // tc ingress of a pod's host veth: DNAT
  int tc_to_pod_fd() const;    // tc egress: reverse NAT
  int tc_nodeport_fd() const;  // the underlay's tc ingress: NodePort DNAT + SNAT
  const std::string& bpffs_dir() const { return dir_; }
  // The frontend's reverse-NAT id, or 0 when it has none.
  uint32_t RevNatId(const ServiceFrontend& frontend) const;

 private:
  struct Frontend {
    uint32_t rev_nat_id = 0;
    uint32_t count = 0;
    FrontendOptions options;
    std::vector<uint32_t> slot_ids;  // slot_ids[i] = backend id of slot i+1
  };

  explicit BpfLoadBalancer(std::string dir) : dir_(std::move(dir)) {}
  absl::Status Load();
  absl::Status PinPrograms();
  absl::Status ReadBackState();
  absl::Status WriteCount(const ServiceFrontend& fe, uint32_t count);
  absl::Status DeleteFrontend(const ServiceFrontend& fe);
  absl::Status FlushMaglev();
  absl::Status WriteMaglev(uint32_t rev_nat_id, const std::vector<uint32_t>& slot_ids);
  absl::Status AssignRevNat(const ServiceFrontend& fe, Frontend& f);
  absl::Status AttachTcHook(int ifindex, int point, int prog_fd);
  absl::Status WriteFrontendValue(const ServiceFrontend& fe, const Frontend& f);
  std::vector<std::string> PinNames() const;

  std::string dir_;
  sock_lb* sock_ = nullptr;
  tc_lb* tc_ = nullptr;
  std::vector<bpf_link*> links_;
  absl::flat_hash_set<int> tc_ifindexes_;
  absl::flat_hash_map<uint64_t, Frontend> frontends_;  // by FrontendKey()
  absl::flat_hash_map<uint64_t, FrontendOptions> options_;
  absl::flat_hash_set<uint64_t> maglev_dirty_;  // slots changed, table not yet rewritten
  absl::flat_hash_map<uint32_t, BackendAddress> backends_;  // by id
  uint32_t next_rev_nat_id_ = 1;
  // Inside ApplyAll: rev-NAT ids whose table and entry are deleted after the batch.
  bool defer_table_deletes_ = false;
  std::vector<uint32_t> deferred_table_deletes_;
};

}  // namespace loom::lb
