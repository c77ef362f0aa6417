#include "lb/bpf_lb.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <dirent.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <netinet/in.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>

#include <net/if.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <functional>
#include <mutex>
#include <thread>

#include "common/log.h"
#include "common/status.h"
#include "common/strings.h"
#include "lb/maglev.h"
#include "lb_maps.h"
#include "sock_lb.skel.h"
#include "tc_lb.skel.h"

// The layout both sides rely on (ebpf/include/lb_maps.h); bpf_lb_layout_test.cc
// checks the same numbers against the objects' BTF.
static_assert(sizeof(lb_service_key) == 12);
static_assert(offsetof(lb_service_key, vip) == 0 && offsetof(lb_service_key, dport) == 4 &&
              offsetof(lb_service_key, proto) == 6 && offsetof(lb_service_key, slot) == 8);
static_assert(sizeof(lb_service) == 16);
static_assert(offsetof(lb_service, backend_id) == 0 && offsetof(lb_service, rev_nat_id) == 4 &&
              offsetof(lb_service, flags) == 8 && offsetof(lb_service, affinity_timeout_s) == 12);
static_assert(sizeof(lb_backend) == 8);
static_assert(offsetof(lb_backend, ip) == 0 && offsetof(lb_backend, port) == 4 &&
              offsetof(lb_backend, proto) == 6 && offsetof(lb_backend, flags) == 7);
static_assert(sizeof(lb_rev_nat) == 8);
static_assert(offsetof(lb_rev_nat, vip) == 0 && offsetof(lb_rev_nat, port) == 4);
static_assert(sizeof(lb_affinity_key) == 16);
static_assert(offsetof(lb_affinity_key, client) == 0 &&
              offsetof(lb_affinity_key, rev_nat_id) == 8);
static_assert(sizeof(lb_affinity) == 16);
static_assert(offsetof(lb_affinity, backend_id) == 0 &&
              offsetof(lb_affinity, last_used_ns) == 8);
static_assert(sizeof(lb_sock_revnat_key) == 16);
static_assert(offsetof(lb_sock_revnat_key, cookie) == 0 &&
              offsetof(lb_sock_revnat_key, ip) == 8 && offsetof(lb_sock_revnat_key, port) == 12);
static_assert(sizeof(lb_sock_revnat) == 16);
static_assert(offsetof(lb_sock_revnat, vip) == 0 && offsetof(lb_sock_revnat, port) == 4 &&
              offsetof(lb_sock_revnat, rev_nat_id) == 8);
static_assert(sizeof(lb_ct_key) == 16);
static_assert(offsetof(lb_ct_key, saddr) == 0 && offsetof(lb_ct_key, daddr) == 4 &&
              offsetof(lb_ct_key, sport) == 8 && offsetof(lb_ct_key, dport) == 10 &&
              offsetof(lb_ct_key, proto) == 12 && offsetof(lb_ct_key, dir) == 13);
static_assert(sizeof(lb_ct_entry) == 32);
static_assert(offsetof(lb_ct_entry, backend_id) == 0 &&
              offsetof(lb_ct_entry, rev_nat_id) == 4 && offsetof(lb_ct_entry, last_seen_ns) == 8 &&
              offsetof(lb_ct_entry, backend_ip) == 16 && offsetof(lb_ct_entry, backend_port) == 20 &&
              offsetof(lb_ct_entry, seen_reply) == 22 && offsetof(lb_ct_entry, rst) == 23 &&
              offsetof(lb_ct_entry, fin_forward) == 24 && offsetof(lb_ct_entry, fin_reply) == 25);
static_assert(sizeof(lb_node_config) == 8);
static_assert(offsetof(lb_node_config, node_ip) == 0 && offsetof(lb_node_config, snat_ip) == 4);
static_assert(sizeof(lb_nodeport_nat_key) == 12);
static_assert(offsetof(lb_nodeport_nat_key, backend_ip) == 0 &&
              offsetof(lb_nodeport_nat_key, backend_port) == 4 &&
              offsetof(lb_nodeport_nat_key, snat_port) == 6 &&
              offsetof(lb_nodeport_nat_key, proto) == 8);
static_assert(sizeof(lb_nodeport_nat) == 12);
static_assert(offsetof(lb_nodeport_nat, client_ip) == 0 &&
              offsetof(lb_nodeport_nat, client_port) == 4 &&
              offsetof(lb_nodeport_nat, rev_nat_id) == 8);
static_assert(LB_MAGLEV_SIZE == loom::lb::kDefaultMaglevTableSize);

namespace loom::lb {
namespace {

constexpr uint32_t kTcHandle = 0x10c;  // "loom" filter on the clsact hooks
constexpr uint32_t kTcPriority = 1;

// The one place libbpf's -errno results become a Status. Functions returning a
// pointer report through errno: pass -errno.
absl::Status BpfStatus(int ret, std::string_view context) {
  if (ret >= 0) return absl::OkStatus();
  return ErrnoToStatus(-ret, context);
}

uint8_t ProtocolNumber(model::Protocol p) {
  switch (p) {
    case model::Protocol::kTcp: return IPPROTO_TCP;
    case model::Protocol::kUdp: return IPPROTO_UDP;
    case model::Protocol::kSctp: return IPPROTO_SCTP;
  }
  return 0;
}

std::optional<model::Protocol> ProtocolFromNumber(uint8_t n) {
  switch (n) {
    case IPPROTO_TCP: return model::Protocol::kTcp;
    case IPPROTO_UDP: return model::Protocol::kUdp;
    case IPPROTO_SCTP: return model::Protocol::kSctp;
    default: return std::nullopt;
  }
}

uint64_t FrontendKey(const ServiceFrontend& fe) {
  return (uint64_t{fe.vip.ToHostOrder()} << 32) | (uint64_t{fe.port} << 8) |
         ProtocolNumber(fe.protocol);
}

lb_service_key ServiceKey(const ServiceFrontend& fe, uint32_t slot) {
  lb_service_key key{};
  key.vip = fe.vip.ToNetworkOrder();
  key.dport = htons(fe.port);
  key.proto = ProtocolNumber(fe.protocol);
  key.slot = static_cast<__u16>(slot);
  return key;
}

bool Exists(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0;
}

absl::Status Update(int fd, const void* key, const void* value, std::string_view what) {
  return BpfStatus(bpf_map_update_elem(fd, key, value, BPF_ANY), StrCat("update ", what));
}

absl::Status Delete(int fd, const void* key, std::string_view what) {
  int err = bpf_map_delete_elem(fd, key);
  if (err == -ENOENT) return absl::OkStatus();
  return BpfStatus(err, StrCat("delete ", what));
}

ServiceFrontend FrontendFromKey(uint64_t key) {
  return {net::Ipv4Address::FromHostOrder(static_cast<uint32_t>(key >> 32)),
          static_cast<uint16_t>((key >> 8) & 0xffff),
          ProtocolFromNumber(key & 0xff).value_or(model::Protocol::kTcp)};
}

// Runs fn(0..n-1) on up to `max_threads` threads; the first error wins. For calls
// that mostly sleep in the kernel (RCU grace periods), not for CPU work.
absl::Status ParallelFor(size_t n, size_t max_threads, const std::function<absl::Status(size_t)>& fn) {
  if (n == 0) return absl::OkStatus();
  std::atomic<size_t> next{0};
  std::mutex mu;
  absl::Status first;
  auto worker = [&] {
    for (size_t i = next++; i < n; i = next++) {
      absl::Status s = fn(i);
      if (!s.ok()) {
        std::lock_guard<std::mutex> lock(mu);
        first.Update(s);
      }
    }
  };
  size_t threads = std::min(n, max_threads);
  std::vector<std::thread> pool;
  pool.reserve(threads - 1);
  for (size_t t = 1; t < threads; ++t) pool.emplace_back(worker);
  worker();
  for (std::thread& t : pool) t.join();
  return first;
}

// Outer-map updates in flight at once: each sleeps for a grace period, so the number
// bounds threads, not CPU.
constexpr size_t kTableThreads = 64;

// A map pinned by an owner built with another layout (a CT entry that grew) cannot be
// reused: libbpf refuses to load. Such a pin is removed, with a warning, and the map
// is created afresh; loomd writes services and backends again from its first
// snapshot, and tracked flows are placed again (by Maglev: the same backend while the
// backend set is unchanged).
absl::Status DropIncompatiblePins(bpf_object* obj) {
  bpf_map* map;
  bpf_object__for_each_map(map, obj) {
    const char* path = bpf_map__pin_path(map);
    if (path == nullptr) continue;
    int fd = bpf_obj_get(path);
    if (fd < 0) continue;  // not pinned yet
    bpf_map_info info{};
    __u32 len = sizeof(info);
    int err = bpf_obj_get_info_by_fd(fd, &info, &len);
    close(fd);
    if (err != 0) return BpfStatus(err, StrCat("inspect pinned map ", path));
    if (info.type == bpf_map__type(map) && info.key_size == bpf_map__key_size(map) &&
        info.value_size == bpf_map__value_size(map) &&
        info.max_entries == bpf_map__max_entries(map) &&
        info.map_flags == bpf_map__map_flags(map)) {
      continue;
    }
    LOG_WARNING("lb: a pinned map has another layout than this loomd's; replacing it",
                {"map", bpf_map__name(map)}, {"pinned_value_size", info.value_size},
                {"value_size", bpf_map__value_size(map)});
    if (unlink(path) != 0) return ErrnoToStatus(errno, StrCat("unlink ", path));
  }
  return absl::OkStatus();
}

// bpf_ktime_get_ns()'s clock.
uint64_t MonotonicNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1000000000u + uint64_t(ts.tv_nsec);
}

std::vector<bpf_program*> SockPrograms(sock_lb* s) {
  return {s->progs.lb_connect4, s->progs.lb_sendmsg4, s->progs.lb_recvmsg4,
          s->progs.lb_getpeername4};
}

}  // namespace

absl::StatusOr<std::unique_ptr<BpfLoadBalancer>> BpfLoadBalancer::Open(std::string bpffs_dir) {
  if (bpffs_dir.empty() || bpffs_dir[0] != '/') {
    return absl::InvalidArgumentError(
        StrCat("bpffs dir must be an absolute path, got \"", bpffs_dir, "\""));
  }
  if (mkdir(bpffs_dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return ErrnoToStatus(errno, StrCat("mkdir ", bpffs_dir));
  }
  struct statfs fs;
  if (statfs(bpffs_dir.c_str(), &fs) != 0) return ErrnoToStatus(errno, StrCat("statfs ", bpffs_dir));
  if (fs.f_type != BPF_FS_MAGIC) {
    return absl::FailedPreconditionError(StrCat(bpffs_dir, " is not on a bpf filesystem"));
  }
  std::unique_ptr<BpfLoadBalancer> lb(new BpfLoadBalancer(std::move(bpffs_dir)));
  RETURN_IF_ERROR(lb->Load());
  RETURN_IF_ERROR(lb->PinPrograms());
  RETURN_IF_ERROR(lb->ReadBackState());
  return lb;
}

BpfLoadBalancer::~BpfLoadBalancer() {
  for (bpf_link* link : links_) bpf_link__destroy(link);  // pinned: stays attached
  if (sock_ != nullptr) sock_lb__destroy(sock_);
  if (tc_ != nullptr) tc_lb__destroy(tc_);
}

absl::Status BpfLoadBalancer::Load() {
  // Pin-by-name maps: the first object pins them, the second (and every later
  // owner) reuses the pinned ones.
  LIBBPF_OPTS(bpf_object_open_opts, opts, .pin_root_path = dir_.c_str());
  sock_ = sock_lb__open_opts(&opts);
  if (sock_ == nullptr) return BpfStatus(-errno, "open sock_lb");
  RETURN_IF_ERROR(DropIncompatiblePins(sock_->obj));
  RETURN_IF_ERROR(BpfStatus(sock_lb__load(sock_), "load sock_lb"));
  tc_ = tc_lb__open_opts(&opts);
  if (tc_ == nullptr) return BpfStatus(-errno, "open tc_lb");
  RETURN_IF_ERROR(DropIncompatiblePins(tc_->obj));
  return BpfStatus(tc_lb__load(tc_), "load tc_lb");
}

absl::Status BpfLoadBalancer::PinPrograms() {
  std::vector<bpf_program*> progs = SockPrograms(sock_);
  progs.push_back(tc_->progs.lb_tc_from_pod);
  progs.push_back(tc_->progs.lb_tc_to_pod);
  progs.push_back(tc_->progs.lb_tc_nodeport);
  for (bpf_program* prog : progs) {
    std::string path = StrCat(dir_, "/prog_", bpf_program__name(prog));
    if (unlink(path.c_str()) != 0 && errno != ENOENT) {
      return ErrnoToStatus(errno, StrCat("unlink ", path));
    }
    RETURN_IF_ERROR(BpfStatus(bpf_program__pin(prog, path.c_str()), StrCat("pin ", path)));
  }
  return absl::OkStatus();
}

absl::Status BpfLoadBalancer::ReadBackState() {
  LbMapFds fds = map_fds();
  lb_service_key key{}, next{};
  const void* prev = nullptr;
  while (bpf_map_get_next_key(fds.services, prev, &next) == 0) {
    key = next;
    prev = &key;
    lb_service value{};
    if (bpf_map_lookup_elem(fds.services, &key, &value) != 0) continue;
    std::optional<model::Protocol> proto = ProtocolFromNumber(key.proto);
    if (!proto) continue;
    ServiceFrontend fe{net::Ipv4Address::FromNetworkOrder(key.vip), ntohs(key.dport), *proto};
    Frontend& f = frontends_[FrontendKey(fe)];
    if (key.slot == 0) {
      f.rev_nat_id = value.rev_nat_id;
      f.count = value.backend_id;
      f.options = {(value.flags & LB_SVC_AFFINITY) != 0, value.affinity_timeout_s};
      options_[FrontendKey(fe)] = f.options;
      next_rev_nat_id_ = std::max(next_rev_nat_id_, value.rev_nat_id + 1);
    } else {
      if (f.slot_ids.size() < key.slot) f.slot_ids.resize(key.slot);
      f.slot_ids[key.slot - 1] = value.backend_id;
    }
  }
  __u32 id = 0, next_id = 0;
  const void* prev_id = nullptr;
  while (bpf_map_get_next_key(fds.backends, prev_id, &next_id) == 0) {
    id = next_id;
    prev_id = &id;
    lb_backend b{};
    if (bpf_map_lookup_elem(fds.backends, &id, &b) != 0) continue;
    std::optional<model::Protocol> proto = ProtocolFromNumber(b.proto);
    if (!proto) continue;
    backends_[id] = {net::Ipv4Address::FromNetworkOrder(b.ip), ntohs(b.port), *proto};
  }
  return absl::OkStatus();
}

absl::Status BpfLoadBalancer::AttachCgroup(const std::string& cgroup_path) {
  int cg = open(cgroup_path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (cg < 0) return ErrnoToStatus(errno, StrCat("open cgroup ", cgroup_path));
  absl::Status status;
  for (bpf_program* prog : SockPrograms(sock_)) {
    std::string path = StrCat(dir_, "/link_", bpf_program__name(prog));
    bpf_link* link = nullptr;
    if (Exists(path)) {  // attached by an earlier owner: switch it to our program
      link = bpf_link__open(path.c_str());
      if (link == nullptr) {
        status = BpfStatus(-errno, StrCat("open link ", path));
        break;
      }
      int err = bpf_link__update_program(link, prog);
      if (err != 0) {
        bpf_link__destroy(link);
        status = BpfStatus(err, StrCat("update link ", path));
        break;
      }
    } else {
      link = bpf_program__attach_cgroup(prog, cg);
      if (link == nullptr) {
        status = BpfStatus(-errno, StrCat("attach ", bpf_program__name(prog), " to ", cgroup_path));
        break;
      }
      int err = bpf_link__pin(link, path.c_str());
      if (err != 0) {
        bpf_link__destroy(link);
        status = BpfStatus(err, StrCat("pin ", path));
        break;
      }
    }
    links_.push_back(link);
  }
  close(cg);
  return status;
}

absl::Status BpfLoadBalancer::AttachTcHook(int ifindex, int point, int prog_fd) {
  LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex,
              .attach_point = static_cast<bpf_tc_attach_point>(point));
  int err = bpf_tc_hook_create(&hook);
  if (err != 0 && err != -EEXIST) {
    return BpfStatus(err, StrCat("create clsact on ifindex ", ifindex));
  }
  LIBBPF_OPTS(bpf_tc_opts, opts, .prog_fd = prog_fd, .flags = BPF_TC_F_REPLACE,
              .handle = kTcHandle, .priority = kTcPriority);
  RETURN_IF_ERROR(
      BpfStatus(bpf_tc_attach(&hook, &opts), StrCat("attach tc_lb to ifindex ", ifindex)));
  tc_ifindexes_.insert(ifindex);
  return absl::OkStatus();
}

absl::Status BpfLoadBalancer::AttachTc(int ifindex) {
  RETURN_IF_ERROR(AttachTcHook(ifindex, BPF_TC_INGRESS, tc_from_pod_fd()));
  return AttachTcHook(ifindex, BPF_TC_EGRESS, tc_to_pod_fd());
}

absl::Status BpfLoadBalancer::AttachNodePort(int underlay_ifindex, int overlay_ifindex,
                                             net::Ipv4Address node_ip,
                                             net::Ipv4Address snat_ip) {
  lb_node_config cfg{};
  cfg.node_ip = node_ip.ToNetworkOrder();
  cfg.snat_ip = snat_ip.ToNetworkOrder();
  __u32 zero = 0;
  RETURN_IF_ERROR(Update(map_fds().config, &zero, &cfg, "node config"));
  if (overlay_ifindex > 0) {
    RETURN_IF_ERROR(AttachTcHook(overlay_ifindex, BPF_TC_INGRESS, tc_from_pod_fd()));
  }
  return AttachTcHook(underlay_ifindex, BPF_TC_INGRESS, tc_nodeport_fd());
}

absl::Status BpfLoadBalancer::DetachTc(int ifindex) {
  for (bpf_tc_attach_point point : {BPF_TC_INGRESS, BPF_TC_EGRESS}) {
    LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = point);
    LIBBPF_OPTS(bpf_tc_opts, opts, .handle = kTcHandle, .priority = kTcPriority);
    int err = bpf_tc_detach(&hook, &opts);
    if (err != 0 && err != -ENOENT && err != -ENODEV && err != -EINVAL) {
      return BpfStatus(err, StrCat("detach tc_lb from ifindex ", ifindex));
    }
  }
  tc_ifindexes_.erase(ifindex);
  return absl::OkStatus();
}

absl::Status BpfLoadBalancer::SetFrontendOptions(const ServiceFrontend& frontend,
                                                 FrontendOptions options) {
  uint64_t key = FrontendKey(frontend);
  options_[key] = options;
  auto it = frontends_.find(key);
  if (it == frontends_.end() || it->second.rev_nat_id == 0 || it->second.options == options) {
    return absl::OkStatus();
  }
  it->second.options = options;
  return WriteFrontendValue(frontend, it->second);
}

absl::Status BpfLoadBalancer::WriteFrontendValue(const ServiceFrontend& fe, const Frontend& f) {
  lb_service_key key = ServiceKey(fe, 0);
  lb_service value{};
  value.backend_id = f.count;
  value.rev_nat_id = f.rev_nat_id;
  value.flags = f.options.client_ip_affinity ? LB_SVC_AFFINITY : 0;
  value.affinity_timeout_s = f.options.affinity_timeout_s;
  return Update(map_fds().services, &key, &value, StrCat("service ", fe.ToString()));
}

absl::Status BpfLoadBalancer::AssignRevNat(const ServiceFrontend& fe, Frontend& f) {
  f.rev_nat_id = next_rev_nat_id_++;
  if (next_rev_nat_id_ == 0) next_rev_nat_id_ = 1;
  lb_rev_nat rev{};
  rev.vip = fe.vip.ToNetworkOrder();
  rev.port = htons(fe.port);
  return Update(map_fds().rev_nat, &f.rev_nat_id, &rev, "rev_nat");
}

uint32_t BpfLoadBalancer::RevNatId(const ServiceFrontend& frontend) const {
  auto it = frontends_.find(FrontendKey(frontend));
  return it == frontends_.end() ? 0 : it->second.rev_nat_id;
}

absl::Status BpfLoadBalancer::WriteMaglev(uint32_t rev_nat_id,
                                          const std::vector<uint32_t>& slot_ids) {
  int outer = bpf_map__fd(sock_->maps.lb_maglev);
  std::vector<MaglevBackend> backends;
  std::vector<uint32_t> ids;
  for (uint32_t id : slot_ids) {
    auto it = backends_.find(id);
    if (id == 0 || it == backends_.end()) continue;
    backends.push_back({it->second.ToString(), 1});
    ids.push_back(id);
  }
  // No backend: the count (0) already refuses; an old table stays for the next backends.
  if (backends.empty()) return absl::OkStatus();
  // BuildMaglevTable orders by key; map its indices back through our (unsorted) ids.
  ASSIGN_OR_RETURN(std::vector<uint32_t> table, BuildMaglevTable(backends, LB_MAGLEV_SIZE));
  for (uint32_t& entry : table) entry = ids[entry];
  // An existing table is rewritten in place: each entry flips from a backend that
  // still exists to another that already exists (the plan deletes backends last), so
  // a reader sees a valid table at every moment. Only a new frontend's table is
  // inserted into the outer map: that update waits for an RCU grace period
  // (the kernel's maybe_wait_bpf_programs), about 10 ms, too slow for every change.
  __u32 inner_id = 0;
  int inner = -1;
  bool is_new = bpf_map_lookup_elem(outer, &rev_nat_id, &inner_id) != 0;
  if (is_new) {
    LIBBPF_OPTS(bpf_map_create_opts, create, .map_flags = BPF_F_MMAPABLE);
    inner = bpf_map_create(BPF_MAP_TYPE_ARRAY, "lb_maglev_in", sizeof(__u32), sizeof(__u32),
                           LB_MAGLEV_SIZE, &create);
    if (inner < 0) return BpfStatus(inner, "create maglev table");
  } else {
    inner = bpf_map_get_fd_by_id(inner_id);
    if (inner < 0) return BpfStatus(inner, StrCat("open maglev table ", inner_id));
  }
  // Aligned 32-bit stores: a reader sees each entry old or new, never torn. Array
  // maps space their elements 8 bytes apart (round_up(value_size, 8)).
  constexpr size_t kStride = 8 / sizeof(uint32_t);
  size_t bytes = LB_MAGLEV_SIZE * 8;
  void* mem = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, inner, 0);
  absl::Status status;
  if (mem == MAP_FAILED) {
    status = ErrnoToStatus(errno, "mmap maglev table");
  } else {
    auto* entries = static_cast<volatile uint32_t*>(mem);
    for (uint32_t i = 0; i < LB_MAGLEV_SIZE; ++i) {
      if (entries[i * kStride] != table[i]) entries[i * kStride] = table[i];
    }
    munmap(mem, bytes);
  }
  if (status.ok() && is_new) status = Update(outer, &rev_nat_id, &inner, "maglev table");
  close(inner);
  return status;
}

absl::Status BpfLoadBalancer::FlushMaglev() {
  for (uint64_t key : maglev_dirty_) {
    auto it = frontends_.find(key);
    if (it == frontends_.end() || it->second.rev_nat_id == 0) continue;
    const Frontend& f = it->second;
    std::vector<uint32_t> live(f.slot_ids.begin(),
                               f.slot_ids.begin() + std::min<size_t>(f.count, f.slot_ids.size()));
    RETURN_IF_ERROR(WriteMaglev(f.rev_nat_id, live));
  }
  maglev_dirty_.clear();
  return absl::OkStatus();
}

absl::Status BpfLoadBalancer::WriteCount(const ServiceFrontend& fe, uint32_t count) {
  uint64_t fkey = FrontendKey(fe);
  Frontend& f = frontends_[fkey];
  if (auto it = options_.find(fkey); it != options_.end()) f.options = it->second;
  if (f.rev_nat_id == 0) RETURN_IF_ERROR(AssignRevNat(fe, f));
  f.count = count;
  std::vector<uint32_t> live(f.slot_ids.begin(),
                             f.slot_ids.begin() + std::min<size_t>(count, f.slot_ids.size()));
  RETURN_IF_ERROR(WriteMaglev(f.rev_nat_id, live));
  maglev_dirty_.erase(fkey);
  return WriteFrontendValue(fe, f);
}

absl::Status BpfLoadBalancer::DeleteFrontend(const ServiceFrontend& fe) {
  LbMapFds fds = map_fds();
  auto it = frontends_.find(FrontendKey(fe));
  lb_service_key key = ServiceKey(fe, 0);
  RETURN_IF_ERROR(Delete(fds.services, &key, StrCat("service ", fe.ToString())));
  if (it == frontends_.end() || it->second.rev_nat_id == 0) return absl::OkStatus();
  uint32_t rev = it->second.rev_nat_id;
  if (defer_table_deletes_) {
    deferred_table_deletes_.push_back(rev);
  } else {
    RETURN_IF_ERROR(Delete(fds.maglev, &rev, "maglev table"));
    RETURN_IF_ERROR(Delete(fds.rev_nat, &rev, "rev_nat"));
  }
  it->second.rev_nat_id = 0;
  it->second.count = 0;
  if (it->second.slot_ids.empty()) frontends_.erase(it);
  return absl::OkStatus();
}

absl::Status BpfLoadBalancer::Apply(const UpdatePlan& plan) {
  LbMapFds fds = map_fds();
  for (const MapOp& op : plan.ops) {
    absl::Status status;
    // Slots rewritten under an unchanged count: their tables before any deletion.
    bool is_delete = op.kind == MapOp::Kind::kDeleteService ||
                     op.kind == MapOp::Kind::kDeleteSlot ||
                     op.kind == MapOp::Kind::kDeleteBackend;
    if (is_delete && !maglev_dirty_.empty()) RETURN_IF_ERROR(FlushMaglev());
    switch (op.kind) {
      case MapOp::Kind::kPutBackend: {
        lb_backend b{};
        b.ip = op.backend.ip.ToNetworkOrder();
        b.port = htons(op.backend.port);
        b.proto = ProtocolNumber(op.backend.protocol);
        status = Update(fds.backends, &op.backend_id, &b, "backend");
        if (status.ok()) backends_[op.backend_id] = op.backend;
        break;
      }
      case MapOp::Kind::kPutSlot: {
        lb_service_key key = ServiceKey(op.frontend, op.slot);
        lb_service value{};
        value.backend_id = op.backend_id;
        status = Update(fds.services, &key, &value, "slot");
        if (status.ok()) {
          Frontend& f = frontends_[FrontendKey(op.frontend)];
          if (f.slot_ids.size() < op.slot) f.slot_ids.resize(op.slot);
          f.slot_ids[op.slot - 1] = op.backend_id;
          maglev_dirty_.insert(FrontendKey(op.frontend));
        }
        break;
      }
      case MapOp::Kind::kPutServiceCount:
        status = WriteCount(op.frontend, op.count);
        break;
      case MapOp::Kind::kDeleteService:
        status = DeleteFrontend(op.frontend);
        break;
      case MapOp::Kind::kDeleteSlot: {
        lb_service_key key = ServiceKey(op.frontend, op.slot);
        status = Delete(fds.services, &key, "slot");
        auto it = frontends_.find(FrontendKey(op.frontend));
        if (status.ok() && it != frontends_.end()) {
          std::vector<uint32_t>& ids = it->second.slot_ids;
          if (op.slot <= ids.size()) ids[op.slot - 1] = 0;
          while (!ids.empty() && ids.back() == 0) ids.pop_back();
          if (ids.empty() && it->second.rev_nat_id == 0) frontends_.erase(it);
        }
        break;
      }
      case MapOp::Kind::kDeleteBackend:
        status = Delete(fds.backends, &op.backend_id, "backend");
        if (status.ok()) backends_.erase(op.backend_id);
        break;
    }
    if (!status.ok()) return Annotate(status, op.ToString());
  }
  return FlushMaglev();
}

absl::Status BpfLoadBalancer::ApplyAll(std::span<const UpdatePlan> plans) {
  LbMapFds fds = map_fds();
  // New frontends: a rev-NAT id and an empty table each, the tables inserted by
  // several threads. An empty table (all ids 0) sends the data path to the slots, and
  // the frontend does not resolve before its count is written anyway.
  std::vector<uint32_t> new_tables;
  for (const UpdatePlan& plan : plans) {
    for (const MapOp& op : plan.ops) {
      if (op.kind != MapOp::Kind::kPutServiceCount) continue;
      Frontend& f = frontends_[FrontendKey(op.frontend)];
      if (f.rev_nat_id != 0) continue;
      RETURN_IF_ERROR(AssignRevNat(op.frontend, f));
      new_tables.push_back(f.rev_nat_id);
    }
  }
  RETURN_IF_ERROR(ParallelFor(new_tables.size(), kTableThreads, [&](size_t i) -> absl::Status {
    LIBBPF_OPTS(bpf_map_create_opts, create, .map_flags = BPF_F_MMAPABLE);
    int inner = bpf_map_create(BPF_MAP_TYPE_ARRAY, "lb_maglev_in", sizeof(__u32), sizeof(__u32),
                               LB_MAGLEV_SIZE, &create);
    if (inner < 0) return BpfStatus(inner, "create maglev table");
    absl::Status s = Update(fds.maglev, &new_tables[i], &inner, "maglev table");
    close(inner);
    return s;
  }));

  defer_table_deletes_ = true;
  absl::Status status;
  for (const UpdatePlan& plan : plans) {
    status = Apply(plan);
    if (!status.ok()) break;
  }
  defer_table_deletes_ = false;
  std::vector<uint32_t> gone = std::move(deferred_table_deletes_);
  deferred_table_deletes_.clear();
  status.Update(ParallelFor(gone.size(), kTableThreads, [&](size_t i) -> absl::Status {
    RETURN_IF_ERROR(Delete(fds.maglev, &gone[i], "maglev table"));
    return Delete(fds.rev_nat, &gone[i], "rev_nat");
  }));
  return status;
}

absl::StatusOr<size_t> BpfLoadBalancer::ExpireFlows() {
  const int fd = map_fds().ct;
  constexpr __u32 kBatch = 4096;
  std::vector<lb_ct_key> keys(kBatch);
  std::vector<lb_ct_entry> values(kBatch);
  std::vector<lb_ct_key> expired;
  // The kernel's hash-map batch cursor is a bucket index; a key-sized buffer holds it.
  lb_ct_key in{}, out{};
  bool first = true;
  uint64_t now = MonotonicNs();
  while (true) {
    __u32 count = kBatch;
    LIBBPF_OPTS(bpf_map_batch_opts, opts);
    int err = bpf_map_lookup_batch(fd, first ? nullptr : &in, &out, keys.data(), values.data(),
                                   &count, &opts);
    if (err != 0 && err != -ENOENT) return BpfStatus(err, "read lb_ct");
    for (__u32 i = 0; i < count; ++i) {
      if (!lb_ct_alive(keys[i].proto, &values[i], now)) expired.push_back(keys[i]);
    }
    if (err == -ENOENT) break;  // the last batch
    in = out;
    first = false;
  }
  size_t deleted = 0;
  for (const lb_ct_key& key : expired) {
    // Looked at again just before: a packet may have revived the tuple meanwhile.
    lb_ct_entry value{};
    if (bpf_map_lookup_elem(fd, &key, &value) != 0) continue;
    if (lb_ct_alive(key.proto, &value, MonotonicNs())) continue;
    if (bpf_map_delete_elem(fd, &key) == 0) ++deleted;
  }
  return deleted;
}

ProgrammedMaps BpfLoadBalancer::ReadProgrammed() const {
  ProgrammedMaps out;
  for (const auto& [key, f] : frontends_) {
    ProgrammedService::Frontend pf;
    pf.frontend = FrontendFromKey(key);
    for (uint32_t id : f.slot_ids) {
      auto b = backends_.find(id);
      if (id != 0 && b != backends_.end()) pf.slots.push_back(b->second);
    }
    if (f.rev_nat_id == 0 && pf.slots.empty()) continue;
    out.frontends.push_back(std::move(pf));
  }
  std::sort(out.frontends.begin(), out.frontends.end(),
            [](const auto& a, const auto& b) { return a.frontend < b.frontend; });
  for (const auto& [id, b] : backends_) out.backends.emplace_back(id, b);
  std::sort(out.backends.begin(), out.backends.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  return out;
}

namespace {

// While every interface is probed for Loom's tc programs, interfaces without a clsact
// qdisc make the kernel answer "Parent Qdisc doesn't exists", which libbpf prints:
// expected there, so dropped; anything else goes to the previous printer.
libbpf_print_fn_t g_previous_print = nullptr;

int SweepPrint(enum libbpf_print_level level, const char* format, va_list args) {
  if (std::strstr(format, "Kernel error message") != nullptr) {
    va_list copy;
    va_copy(copy, args);
    char text[256];
    std::vsnprintf(text, sizeof text, format, copy);
    va_end(copy);
    if (std::strstr(text, "Parent Qdisc") != nullptr) return 0;
  }
  return g_previous_print != nullptr ? g_previous_print(level, format, args) : 0;
}

}  // namespace

absl::StatusOr<int> BpfLoadBalancer::DetachTcEverywhere() {
  g_previous_print = libbpf_set_print(SweepPrint);
  struct Restore {
    ~Restore() { libbpf_set_print(g_previous_print); }
  } restore;
  struct if_nameindex* names = if_nameindex();
  if (names == nullptr) return ErrnoToStatus(errno, "list interfaces");
  int removed = 0;
  absl::Status first;
  for (struct if_nameindex* n = names; n->if_index != 0; ++n) {
    int ifindex = static_cast<int>(n->if_index);
    for (bpf_tc_attach_point point : {BPF_TC_INGRESS, BPF_TC_EGRESS}) {
      LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = point);
      LIBBPF_OPTS(bpf_tc_opts, query, .handle = kTcHandle, .priority = kTcPriority);
      if (bpf_tc_query(&hook, &query) != 0) continue;
      int prog = bpf_prog_get_fd_by_id(query.prog_id);
      if (prog < 0) continue;
      bpf_prog_info info{};
      __u32 len = sizeof(info);
      bool ours = bpf_obj_get_info_by_fd(prog, &info, &len) == 0 &&
                  std::strncmp(info.name, "lb_tc_", 6) == 0;
      close(prog);
      if (!ours) continue;
      LIBBPF_OPTS(bpf_tc_opts, detach, .handle = kTcHandle, .priority = kTcPriority);
      int err = bpf_tc_detach(&hook, &detach);
      if (err == 0) {
        ++removed;
      } else {
        first.Update(BpfStatus(err, StrCat("detach tc_lb from ", n->if_name)));
      }
    }
    if (std::string_view(n->if_name).substr(0, 2) == "lm") {
      LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex,
                  .attach_point = static_cast<bpf_tc_attach_point>(BPF_TC_INGRESS | BPF_TC_EGRESS));
      bpf_tc_hook_destroy(&hook);  // ENOENT when it has none
    }
  }
  if_freenameindex(names);
  if (!first.ok()) return first;
  return removed;
}

std::vector<std::string> BpfLoadBalancer::PinNames() const {
  std::vector<std::string> names;
  bpf_map* map;
  bpf_object__for_each_map(map, sock_->obj) names.push_back(bpf_map__name(map));
  bpf_object__for_each_map(map, tc_->obj) names.push_back(bpf_map__name(map));
  std::vector<bpf_program*> progs = SockPrograms(sock_);
  for (bpf_program* prog : progs) {
    names.push_back(StrCat("prog_", bpf_program__name(prog)));
    names.push_back(StrCat("link_", bpf_program__name(prog)));
  }
  names.push_back(StrCat("prog_", bpf_program__name(tc_->progs.lb_tc_from_pod)));
  names.push_back(StrCat("prog_", bpf_program__name(tc_->progs.lb_tc_to_pod)));
  names.push_back(StrCat("prog_", bpf_program__name(tc_->progs.lb_tc_nodeport)));
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  return names;
}

absl::Status BpfLoadBalancer::Uninstall() {
  absl::Status first;
  std::vector<int> ifindexes(tc_ifindexes_.begin(), tc_ifindexes_.end());
  for (int ifindex : ifindexes) first.Update(DetachTc(ifindex));
  for (bpf_link* link : links_) {
    bpf_link__unpin(link);
    first.Update(BpfStatus(bpf_link__detach(link), "detach cgroup link"));
    bpf_link__destroy(link);
  }
  links_.clear();
  // Unlinking a pinned link that no process holds also detaches it.
  for (const std::string& name : PinNames()) {
    std::string path = StrCat(dir_, "/", name);
    if (unlink(path.c_str()) != 0 && errno != ENOENT) {
      first.Update(ErrnoToStatus(errno, StrCat("unlink ", path)));
    }
  }
  if (rmdir(dir_.c_str()) != 0 && errno != ENOENT) {
    first.Update(ErrnoToStatus(errno, StrCat("rmdir ", dir_)));
  }
  LOG_INFO("lb: uninstalled", {"bpffs_dir", dir_});
  return first;
}

LbMapFds BpfLoadBalancer::map_fds() const {
  LbMapFds fds;
  fds.services = bpf_map__fd(sock_->maps.lb_services);
  fds.backends = bpf_map__fd(sock_->maps.lb_backends);
  fds.rev_nat = bpf_map__fd(sock_->maps.lb_rev_nat);
  fds.maglev = bpf_map__fd(sock_->maps.lb_maglev);
  fds.affinity = bpf_map__fd(sock_->maps.lb_affinity);
  fds.sock_revnat = bpf_map__fd(sock_->maps.lb_sock_revnat);
  fds.ct = bpf_map__fd(tc_->maps.lb_ct);
  fds.config = bpf_map__fd(tc_->maps.lb_config);
  fds.nodeport_nat = bpf_map__fd(tc_->maps.lb_nodeport_nat);
  return fds;
}

int BpfLoadBalancer::tc_from_pod_fd() const {
  return bpf_program__fd(tc_->progs.lb_tc_from_pod);
}
int BpfLoadBalancer::tc_to_pod_fd() const { return bpf_program__fd(tc_->progs.lb_tc_to_pod); }
int BpfLoadBalancer::tc_nodeport_fd() const {
  return bpf_program__fd(tc_->progs.lb_tc_nodeport);
}

}  // namespace loom::lb
