#include "agent/overlay/overlay_controller.h"

#include <set>
#include <vector>

#include "common/json.h"
#include "common/log.h"
#include "common/status.h"
#include "common/strings.h"

namespace loom::agent {
namespace {

std::string GetField(const Json& j, const char* name) {
  if (j.contains(name) && j[name].is_string()) return j[name].get<std::string>();
  return "";
}

}  // namespace

OverlayController::OverlayController(store::Store* store,
                                     std::unique_ptr<overlay::OverlayKernel> kernel,
                                     std::unique_ptr<overlay::Firewall> firewall,
                                     OverlayControllerOptions options)
    : store_(store), kernel_(std::move(kernel)), firewall_(std::move(firewall)),
      options_(std::move(options)),
      reconciler_(kernel_.get(), overlay::ReconcilerOptions{options_.direct_routing}),
      allocator_(store, SubnetAllocatorOptions{.cluster_cidr = options_.cluster_cidr,
                                               .node_cidr_size = options_.node_cidr_size}),
      sweeper_(store, options_.subnet_grace) {
  if (options_.metrics != nullptr) {
    metrics::Registry& m = *options_.metrics;
    peers_gauge_ = &m.AddGauge("loom_overlay_peers", "Remote nodes whose overlay neighbour, "
                                                     "FDB and route entries are programmed.")
                        .Get();
    writes_counter_ = &m.AddCounter("loom_overlay_netlink_writes_total",
                                    "Kernel writes (creates, replaces, deletes) by the overlay.")
                           .Get();
    peer_time_gauge_ = &m.AddGauge("loom_overlay_peer_program_seconds",
                                   "Time the last newly programmed peer's entries took.")
                            .Get();
    firewall_writes_ = &m.AddCounter("loom_overlay_nft_writes_total",
                                     "nftables rule sets written by the overlay.")
                            .Get();
    reconcile_errors_ = &m.AddCounter("loom_overlay_reconcile_errors_total",
                                      "Overlay reconciles that failed (retried).")
                             .Get();
  }
}

OverlayController::~OverlayController() { Stop(); }

uint64_t OverlayController::netlink_writes() const {
  absl::MutexLock lock(&worker_mu_);
  return reconciler_.writes();
}

int OverlayController::peers() const {
  absl::MutexLock lock(&worker_mu_);
  return reconciler_.peers_programmed();
}

absl::Status OverlayController::Setup() {
  ASSIGN_OR_RETURN(pod_cidr_,
                   allocator_.Acquire(options_.node_name, options_.underlay_ip.ToString()));
  overlay::DeviceConfig dc;
  dc.vni = options_.vni;
  dc.port = options_.port;
  dc.underlay_iface = options_.underlay_iface;
  dc.underlay_ip = options_.underlay_ip;
  dc.mac = vtep_mac();
  dc.pod_cidr = pod_cidr_;
  ASSIGN_OR_RETURN(store::RangeResult nodes, store_->Range(kOverlayNodesPrefix));
  std::map<std::string, std::string> known;
  for (const store::KeyValue& kv : nodes.kvs) {
    known[kv.key.substr(kOverlayNodesPrefix.size())] = kv.value;
  }
  absl::MutexLock lock(&worker_mu_);
  RETURN_IF_ERROR(Annotate(reconciler_.EnsureDevice(dc), "overlay device"));
  absl::Status st = Reconcile(known);
  if (!st.ok()) LOG_WARNING("initial overlay reconcile incomplete", {"error", st.message()});
  LOG_INFO("overlay set up", {"node", options_.node_name}, {"subnet", pod_cidr_.ToString()},
           {"device", reconciler_.device()}, {"mtu", reconciler_.mtu()},
           {"vtep_mac", vtep_mac().ToString()}, {"peers", reconciler_.peers_programmed()},
           {"netlink_writes", reconciler_.writes()});
  return absl::OkStatus();
}

absl::Status OverlayController::Reconcile(const std::map<std::string, std::string>& nodes) {
  overlay::FirewallRules rules;
  rules.vxlan_port = options_.port;
  rules.cluster_cidr = options_.cluster_cidr;
  rules.masquerade = options_.masquerade;
  rules.dns_ip = options_.dns_ip;
  rules.dns_port = options_.dns_port;
  rules.nodes.insert(options_.underlay_ip);
  std::vector<overlay::Peer> peers;
  for (const auto& [name, value] : nodes) {
    Json j;
    try {
      j = Json::parse(value);
    } catch (const std::exception&) {
      LOG_WARNING("ignoring a node key that is not JSON", {"node", name});
      continue;
    }
    if (!j.is_object()) continue;
    absl::StatusOr<net::Ipv4Address> ip = net::Ipv4Address::Parse(GetField(j, "underlayIP"));
    if (ip.ok()) rules.nodes.insert(*ip);
    if (name == options_.node_name) continue;
    absl::StatusOr<net::Ipv4Prefix> cidr = net::Ipv4Prefix::Parse(GetField(j, "podCIDR"));
    absl::StatusOr<net::MacAddress> mac = net::MacAddress::Parse(GetField(j, "vtepMAC"));
    if (!ip.ok() || !cidr.ok() || !mac.ok()) continue;  // not on the overlay (yet)
    if (cidr->Overlaps(pod_cidr_)) {
      LOG_WARNING("peer's subnet overlaps ours; skipped", {"node", name},
                  {"subnet", cidr->ToString()});
      continue;
    }
    peers.push_back(overlay::Peer{name, *cidr, *ip, *mac});
  }
  // The allow-list first, so a new node's VXLAN is accepted once it is routed to.
  absl::Status fw = firewall_ ? firewall_->Apply(rules) : absl::OkStatus();
  absl::Status st = reconciler_.SetPeers(peers);
  uint64_t writes = reconciler_.writes();
  if (writes_counter_ != nullptr) writes_counter_->Increment(static_cast<double>(writes - reported_writes_));
  reported_writes_ = writes;
  if (firewall_ && firewall_writes_ != nullptr) {
    firewall_writes_->Increment(static_cast<double>(firewall_->writes() - reported_firewall_writes_));
    reported_firewall_writes_ = firewall_->writes();
  }
  if (peers_gauge_ != nullptr) peers_gauge_->Set(reconciler_.peers_programmed());
  if (peer_time_gauge_ != nullptr) {
    peer_time_gauge_->Set(absl::ToDoubleSeconds(reconciler_.last_peer_program_time()));
  }
  if (!fw.ok()) return Annotate(fw, "overlay firewall");
  return st;
}

absl::Status OverlayController::Start() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = false;
  }
  ASSIGN_OR_RETURN(watch_, store_->WatchPrefix(kOverlayNodesPrefix, 0, [this](
                                                   const store::WatchBatch& batch) {
    absl::MutexLock lock(&mu_);
    if (batch.resync) {
      nodes_.clear();
      for (const store::KeyValue& kv : batch.snapshot) {
        nodes_[kv.key.substr(kOverlayNodesPrefix.size())] = kv.value;
      }
    }
    for (const store::Event& e : batch.events) {
      std::string name = e.kv.key.substr(kOverlayNodesPrefix.size());
      if (e.type == store::Event::Type::kPut) {
        nodes_[name] = e.kv.value;
      } else {
        nodes_.erase(name);
      }
    }
    dirty_ = true;
  }));
  worker_ = std::thread([this] { Run(); });
  return absl::OkStatus();
}

void OverlayController::Run() {
  const absl::Duration sweep_every =
      std::max(absl::Seconds(1), std::min(absl::Seconds(30), options_.subnet_grace / 4));
  absl::Time next_resync = absl::Now() + options_.resync_period;
  absl::Time next_sweep = absl::Now();
  absl::Duration backoff = absl::Milliseconds(100);
  bool retry = false;
  for (;;) {
    std::map<std::string, std::string> nodes;
    bool due = false;
    {
      absl::MutexLock lock(&mu_);
      absl::Time wake = std::min(next_resync, next_sweep);
      if (retry) wake = std::min(wake, absl::Now() + backoff);
      auto ready = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return dirty_ || stopping_; };
      mu_.AwaitWithDeadline(absl::Condition(&ready), wake);
      if (stopping_) return;
      nodes = nodes_;
      due = dirty_ || retry || absl::Now() >= next_resync;
      dirty_ = false;
    }
    if (due) {
      absl::MutexLock lock(&worker_mu_);
      uint64_t before = reconciler_.writes();
      absl::Status st = Reconcile(nodes);
      next_resync = absl::Now() + options_.resync_period;
      if (st.ok()) {
        retry = false;
        backoff = absl::Milliseconds(100);
        if (reconciler_.writes() != before) {
          LOG_INFO("overlay peers reconciled", {"peers", reconciler_.peers_programmed()},
                   {"netlink_writes", reconciler_.writes() - before});
        }
      } else {
        retry = true;
        backoff = std::min(backoff * 2, absl::Seconds(5));
        if (reconcile_errors_ != nullptr) reconcile_errors_->Increment();
        LOG_WARNING("overlay reconcile failed; retrying", {"error", st.message()},
                    {"in", absl::FormatDuration(backoff)});
      }
    }
    if (absl::Now() >= next_sweep) {
      next_sweep = absl::Now() + sweep_every;
      absl::StatusOr<int> freed = sweeper_.SweepOnce(absl::Now());
      if (!freed.ok()) LOG_WARNING("subnet sweep failed", {"error", freed.status().message()});
      // Our own claim may have been swept while this node was cut off from the store.
      absl::Status claim = allocator_.EnsureClaim(options_.node_name,
                                                  options_.underlay_ip.ToString(), pod_cidr_);
      if (!claim.ok()) LOG_ERROR("this node's subnet claim", {"error", claim.message()});
    }
  }
}

void OverlayController::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  watch_.reset();
  if (worker_.joinable()) worker_.join();
}

}  // namespace loom::agent
