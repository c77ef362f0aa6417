#include "agent/lb/lb_controller.h"

#include <linux/magic.h>
#include <net/if.h>
#include <sys/mount.h>
#include <sys/statfs.h>

#include <chrono>

#include "common/log.h"
#include "lb_maps.h"
#include "common/status.h"
#include "common/strings.h"

namespace loom::agent {
namespace {

// The canonical bpffs mount point is mounted when it is not (as Cilium does): a fresh
// /sys (a container, `ip netns exec`) has none. Other parents are the operator's.
absl::Status EnsureBpffs(const std::string& dir) {
  constexpr char kBpffs[] = "/sys/fs/bpf";
  if (dir.rfind(StrCat(kBpffs, "/"), 0) != 0) return absl::OkStatus();
  struct statfs fs;
  if (statfs(kBpffs, &fs) != 0) return ErrnoToStatus(errno, StrCat("statfs ", kBpffs));
  if (fs.f_type == BPF_FS_MAGIC) return absl::OkStatus();
  if (mount("bpffs", kBpffs, "bpf", 0, nullptr) != 0) {
    return ErrnoToStatus(errno, StrCat("mount bpffs on ", kBpffs));
  }
  LOG_WARNING("lb: mounted bpffs; pins live as long as this mount (in a mount namespace "
              "of its own, loomd loses them at exit: give it the host's /sys/fs/bpf)",
              {"path", kBpffs});
  return absl::OkStatus();
}

// Loom's pod veths, as the CNI plugin names them ("lm" + 11 hex digits).
bool IsPodVeth(std::string_view name) {
  if (name.size() != 13 || name.substr(0, 2) != "lm") return false;
  return name.substr(2).find_first_not_of("0123456789abcdef") == std::string_view::npos;
}

}  // namespace

class LbController::Writer : public ServiceLbWriter {
 public:
  explicit Writer(LbController* owner) : owner_(owner), lb_(owner->lb_.get()) {}
  absl::Status SetFrontendOptions(const FrontendOptionsUpdate& o) override {
    return lb_->SetFrontendOptions(o.frontend, {o.client_ip_affinity, o.affinity_timeout_s});
  }
  // UDP backends that lost their slot: the connected sockets pointed at them are ended
  // once the maps no longer offer them (their frontends' ids read before the plans
  // run: a deleted frontend loses its id).
  absl::Status ApplyAll(std::span<const lb::UpdatePlan> plans) override {
    std::vector<lb::UdpSocketTerminator::Target> targets;
    if (owner_->terminator_ != nullptr) {
      for (const lb::UpdatePlan& plan : plans) {
        for (const auto& [frontend, backend] : plan.departed) {
          if (backend.protocol != model::Protocol::kUdp) continue;
          if (uint32_t rev = lb_->RevNatId(frontend); rev != 0) targets.push_back({rev, backend});
        }
      }
    }
    RETURN_IF_ERROR(lb_->ApplyAll(plans));
    if (!targets.empty()) owner_->EndUdpSockets(targets);
    return absl::OkStatus();
  }

 private:
  LbController* owner_;
  lb::BpfLoadBalancer* lb_;
};

void LbController::EndUdpSockets(std::span<const lb::UdpSocketTerminator::Target> targets) {
  absl::StatusOr<std::vector<net::NetnsFd>> namespaces = NetnsOfCgroupTree(cgroup_.dir);
  absl::Status status = namespaces.status();
  uint64_t ended = 0;
  for (size_t i = 0; status.ok() && i < targets.size(); i += LB_DESTROY_TARGETS) {
    absl::StatusOr<uint64_t> n = terminator_->Terminate(
        targets.subspan(i, std::min<size_t>(LB_DESTROY_TARGETS, targets.size() - i)),
        *namespaces);
    status = n.status();
    if (n.ok()) ended += *n;
  }
  if (!status.ok()) {
    LOG_WARNING("lb: ending UDP sockets of departed backends failed",
                {"error", status.message()});
    if (errors_ != nullptr) errors_->Increment();
  }
  if (ended > 0) {
    LOG_INFO("lb: ended connected UDP sockets whose backend left", {"sockets", ended});
  }
  if (udp_sockets_ended_ != nullptr) udp_sockets_ended_->Increment(static_cast<double>(ended));
}

absl::StatusOr<std::unique_ptr<LbController>> LbController::Start(
    const LbControllerOptions& options) {
  ASSIGN_OR_RETURN(Cgroup2Dir cgroup,
                   ResolveLoomCgroup2(options.cgroup2_dir, options.run_dir));
  RETURN_IF_ERROR(EnsureBpffs(options.bpffs_dir));
  absl::StatusOr<std::unique_ptr<lb::BpfLoadBalancer>> lb =
      lb::BpfLoadBalancer::Open(options.bpffs_dir);
  if (!lb.ok()) return Annotate(lb.status(), StrCat("--bpffs-dir ", options.bpffs_dir));
  RETURN_IF_ERROR((*lb)->AttachCgroup(cgroup.dir));
  std::unique_ptr<LbController> c(
      new LbController(*std::move(lb), std::move(cgroup), options.node_ip));
  absl::StatusOr<std::unique_ptr<lb::UdpSocketTerminator>> terminator =
      lb::UdpSocketTerminator::Open(options.bpffs_dir);
  if (terminator.ok()) {
    c->terminator_ = *std::move(terminator);
  } else {
    LOG_WARNING("lb: connected UDP sockets keep a backend that left (no socket terminator)",
                {"error", terminator.status().message()});
  }
  if (options.metrics != nullptr) {
    metrics::Registry& m = *options.metrics;
    c->applies_ = &m.AddCounter("loom_lb_applies_total",
                                "Service state snapshots applied to the BPF maps.").Get();
    c->errors_ = &m.AddCounter("loom_lb_errors_total",
                               "Services skipped or map updates that failed.").Get();
    c->apply_seconds_ = &m.AddGauge("loom_lb_last_apply_seconds",
                                    "How long the last snapshot took to apply.").Get();
    c->services_gauge_ = &m.AddGauge("loom_lb_services", "Services programmed.").Get();
    c->udp_sockets_ended_ = &m.AddCounter("loom_lb_udp_sockets_ended_total",
                                          "Connected UDP sockets ended because their "
                                          "backend left the service.").Get();
    c->flows_expired_ = &m.AddCounter("loom_lb_flows_expired_total",
                                      "tc connection entries deleted once their lifetime "
                                      "ran out.").Get();
  }
  RETURN_IF_ERROR(c->AttachExistingPods());
  if (options.node_ip && options.snat_ip && !options.underlay_iface.empty()) {
    unsigned underlay = if_nametoindex(options.underlay_iface.c_str());
    if (underlay == 0) return ErrnoToStatus(errno, StrCat("underlay ", options.underlay_iface));
    unsigned overlay =
        options.overlay_device.empty() ? 0 : if_nametoindex(options.overlay_device.c_str());
    RETURN_IF_ERROR(c->lb_->AttachNodePort(static_cast<int>(underlay), static_cast<int>(overlay),
                                           *options.node_ip, *options.snat_ip));
  }
  c->thread_ = std::thread([p = c.get()] { p->Loop(); });
  LOG_INFO("lb: started", {"bpffs_dir", options.bpffs_dir}, {"cgroup2_dir", c->cgroup_.dir});
  return c;
}

LbController::LbController(std::unique_ptr<lb::BpfLoadBalancer> lb, Cgroup2Dir cgroup,
                           std::optional<net::Ipv4Address> node_ip)
    : lb_(std::move(lb)),
      writer_(std::make_unique<Writer>(this)),
      cgroup_(std::move(cgroup)),
      reconciler_(lb_->ReadProgrammed(), node_ip) {}

LbController::~LbController() { Stop(); }

absl::Status LbController::AttachExistingPods() {
  struct if_nameindex* names = if_nameindex();
  if (names == nullptr) return ErrnoToStatus(errno, "list interfaces");
  absl::Status first;
  size_t n = 0;
  {
    std::lock_guard<std::mutex> lock(tc_mu_);
    for (struct if_nameindex* i = names; i->if_index != 0; ++i) {
      if (!IsPodVeth(i->if_name)) continue;
      first.Update(lb_->AttachTc(static_cast<int>(i->if_index)));
      ++n;
    }
  }
  if_freenameindex(names);
  std::lock_guard<std::mutex> lock(mu_);
  tc_attached_ += n;
  return first;
}

void LbController::PodAttached(const std::string& host_veth) {
  unsigned index = if_nametoindex(host_veth.c_str());
  if (index == 0) {
    LOG_WARNING("lb: pod veth not found; no tc load balancing for it", {"veth", host_veth});
    return;
  }
  absl::Status s;
  {
    std::lock_guard<std::mutex> lock(tc_mu_);
    s = lb_->AttachTc(static_cast<int>(index));
  }
  if (!s.ok()) {
    LOG_WARNING("lb: tc attach failed", {"veth", host_veth}, {"error", s.message()});
    if (errors_ != nullptr) errors_->Increment();
    return;
  }
  std::lock_guard<std::mutex> lock(mu_);
  ++tc_attached_;
}

void LbController::PodReleased(const std::string& host_veth) {
  // The plugin deletes the veth (its filters go with it) before it tells loomd; a veth
  // still present is detached here.
  unsigned index = if_nametoindex(host_veth.c_str());
  if (index != 0) {
    std::lock_guard<std::mutex> lock(tc_mu_);
    lb_->DetachTc(static_cast<int>(index)).IgnoreError();
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (tc_attached_ > 0) --tc_attached_;
}

void LbController::OnState(std::shared_ptr<const ServiceState> state) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    pending_ = std::move(state);
  }
  cv_.notify_one();
}

void LbController::Loop() {
  auto next_sweep = std::chrono::steady_clock::now() + kFlowSweepInterval;
  while (true) {
    std::shared_ptr<const ServiceState> state;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait_until(lock, next_sweep, [&] { return stop_ || pending_ != nullptr; });
      if (stop_) return;
      state = std::move(pending_);
      pending_ = nullptr;
    }
    if (std::chrono::steady_clock::now() >= next_sweep) {
      SweepFlows();
      next_sweep = std::chrono::steady_clock::now() + kFlowSweepInterval;
    }
    if (state != nullptr) ApplyState(*state);
  }
}

void LbController::SweepFlows() {
  absl::StatusOr<size_t> expired = lb_->ExpireFlows();
  if (!expired.ok()) {
    LOG_WARNING("lb: expiring connection entries failed", {"error", expired.status().message()});
    if (errors_ != nullptr) errors_->Increment();
    return;
  }
  if (flows_expired_ != nullptr) flows_expired_->Increment(static_cast<double>(*expired));
}

void LbController::ApplyState(const ServiceState& state) {
  auto start = std::chrono::steady_clock::now();
  absl::StatusOr<LbReconcileStats> stats = reconciler_.Reconcile(state, *writer_);
  double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (!stats.ok()) {
    LOG_ERROR("lb: applying the service state failed", {"generation", state.generation},
              {"error", stats.status().message()});
    if (errors_ != nullptr) errors_->Increment();
  } else {
    if (stats->services_changed + stats->services_removed > 0) {
      LOG_DEBUG("lb: applied", {"generation", state.generation},
                {"changed", stats->services_changed}, {"removed", stats->services_removed},
                {"ops", stats->ops}, {"seconds", seconds});
    }
    if (errors_ != nullptr && stats->errors > 0) errors_->Increment(stats->errors);
  }
  if (applies_ != nullptr) {
    applies_->Increment();
    apply_seconds_->Set(seconds);
    services_gauge_->Set(static_cast<double>(reconciler_.services()));
  }
  std::lock_guard<std::mutex> lock(mu_);
  applied_generation_ = state.generation;
  services_ = reconciler_.services();
  backends_ = reconciler_.backends();
}

void LbController::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_one();
  if (thread_.joinable()) thread_.join();
}

uint64_t LbController::applied_generation() const {
  std::lock_guard<std::mutex> lock(mu_);
  return applied_generation_;
}

Json LbController::StatusJson() const {
  std::lock_guard<std::mutex> lock(mu_);
  return Json{{"bpffsDir", lb_->bpffs_dir()},
              {"cgroup2Dir", cgroup_.dir},
              {"services", services_},
              {"backends", backends_},
              {"podVeths", tc_attached_},
              {"appliedGeneration", applied_generation_},
              {"udpSocketTermination", terminator_ != nullptr}};
}

}  // namespace loom::agent
