#include "agent/lb/lb_reconciler.h"

#include <algorithm>

#include "absl/container/flat_hash_set.h"
#include "common/log.h"
#include "common/status.h"
#include "common/strings.h"

namespace loom::agent {

LbReconciler::LbReconciler(lb::ProgrammedMaps recovered, std::optional<net::Ipv4Address> node_ip)
    : node_ip_(node_ip), unclaimed_(std::move(recovered.frontends)) {
  absl::flat_hash_map<lb::BackendAddress, uint32_t> refs;
  for (const auto& f : unclaimed_) {
    for (const lb::BackendAddress& b : f.slots) ++refs[b];
  }
  for (const auto& [id, backend] : recovered.backends) {
    auto it = refs.find(backend);
    absl::Status s = ids_.Restore(backend, id, it == refs.end() ? 0 : it->second);
    if (!s.ok()) LOG_WARNING("lb: recovered backend skipped", {"error", s.message()});
  }
  if (!unclaimed_.empty()) {
    LOG_INFO("lb: recovered the pinned maps", {"frontends", unclaimed_.size()},
             {"backends", recovered.backends.size()});
  }
}

absl::StatusOr<lb::ServiceBackendSet> LbReconciler::DesiredSet(
    const model::Service& service, const model::EndpointSet& endpoints,
    std::optional<net::Ipv4Address> node_ip) {
  ASSIGN_OR_RETURN(lb::ServiceBackendSet set, lb::BuildBackendSet(service, endpoints));
  if (node_ip && service.type == model::ServiceType::kNodePort) {
    size_t n = set.frontends.size();
    for (size_t i = 0; i < n; ++i) {
      if (set.frontends[i].node_port == 0) continue;
      lb::FrontendBackends copy = set.frontends[i];
      copy.frontend = {*node_ip, copy.node_port, copy.frontend.protocol};
      set.frontends.push_back(std::move(copy));
    }
    std::sort(set.frontends.begin(), set.frontends.end(),
              [](const auto& a, const auto& b) { return a.frontend < b.frontend; });
  }
  return set;
}

absl::StatusOr<LbReconcileStats> LbReconciler::Reconcile(const ServiceState& state,
                                                        ServiceLbWriter& writer) {
  LbReconcileStats stats;
  std::vector<lb::UpdatePlan> plans;
  std::vector<FrontendOptionsUpdate> options;
  // Only what differs from the table applied last (its shared chunks are skipped),
  // and the services whose plan failed last time.
  absl::flat_hash_set<std::string> retry = std::move(unplanned_);
  unplanned_.clear();
  std::vector<const model::ServiceEntry*> present;
  std::vector<std::string> gone;
  auto differs = [&](const model::ServiceEntry* before, const model::ServiceEntry* after) {
    if (after != nullptr) {
      retry.erase(after->key());
      present.push_back(after);
    } else {
      retry.erase(before->key());
      gone.push_back(before->key());
    }
  };
  model::ServiceTable::Diff(applied_table_, state.services, differs);
  for (const std::string& key : retry) {
    if (const model::ServiceEntry* e = state.services.Find(key)) present.push_back(e);
  }
  for (const model::ServiceEntry* entry : present) {
    const model::Service& svc = *entry->service;
    const std::string& key = entry->key();
    absl::StatusOr<lb::ServiceBackendSet> desired = DesiredSet(svc, *entry->endpoints, node_ip_);
    if (!desired.ok()) {
      ++stats.errors;
      LOG_WARNING("lb: service skipped", {"service", key}, {"error", desired.status().message()});
      continue;
    }
    auto [it, is_new] = applied_.try_emplace(key);
    Applied& a = it->second;
    if (is_new && !restored_) {
      // Claim the frontends the pinned maps already hold for this service.
      for (const lb::FrontendBackends& f : desired->frontends) {
        auto u = std::find_if(unclaimed_.begin(), unclaimed_.end(),
                              [&](const auto& r) { return r.frontend == f.frontend; });
        if (u == unclaimed_.end()) continue;
        a.programmed.frontends.push_back(std::move(*u));
        unclaimed_.erase(u);
      }
    }
    bool options_changed = is_new || a.affinity != svc.client_ip_affinity ||
                           a.affinity_timeout_s != svc.affinity_timeout_seconds;
    if (!options_changed && a.set == *desired) continue;
    absl::StatusOr<lb::UpdatePlan> plan = lb::PlanServiceUpdate(a.programmed, *desired, ids_);
    if (!plan.ok()) {
      ++stats.errors;
      LOG_WARNING("lb: service not programmed", {"service", key}, {"error", plan.status().message()});
      unplanned_.insert(key);  // tried again with the next state (backend ids may free up)
      if (is_new && a.programmed.frontends.empty()) applied_.erase(it);
      continue;
    }
    for (const lb::FrontendBackends& f : desired->frontends) {
      options.push_back({f.frontend, svc.client_ip_affinity, svc.affinity_timeout_seconds});
    }
    a.set = *std::move(desired);
    a.programmed = std::move(plan->programmed);
    a.affinity = svc.client_ip_affinity;
    a.affinity_timeout_s = svc.affinity_timeout_seconds;
    ++stats.services_changed;
    plans.push_back(*std::move(plan));
  }
  for (const std::string& key : gone) {
    auto it = applied_.find(key);
    if (it == applied_.end()) continue;
    lb::ServiceBackendSet removed;
    removed.service = it->first;
    absl::StatusOr<lb::UpdatePlan> plan =
        lb::PlanServiceUpdate(it->second.programmed, removed, ids_);
    if (plan.ok()) plans.push_back(*std::move(plan));  // removal acquires nothing: cannot fail
    ++stats.services_removed;
    applied_.erase(it);
  }
  applied_table_ = state.services;
  if (!restored_) {
    // Frontends of services that no longer exist, then backends nothing names.
    restored_ = true;
    if (!unclaimed_.empty()) {
      LOG_INFO("lb: removing recovered frontends no service claims", {"frontends", unclaimed_.size()});
      lb::ProgrammedService orphans;
      orphans.frontends = std::move(unclaimed_);
      unclaimed_.clear();
      lb::ServiceBackendSet gone;
      absl::StatusOr<lb::UpdatePlan> plan = lb::PlanServiceUpdate(orphans, gone, ids_);
      if (plan.ok()) plans.push_back(*std::move(plan));
    }
    lb::UpdatePlan sweep;
    for (const auto& [backend, id] : ids_.TakeUnreferenced()) {
      sweep.ops.push_back({.kind = lb::MapOp::Kind::kDeleteBackend, .backend_id = id});
    }
    if (!sweep.ops.empty()) plans.push_back(std::move(sweep));
  }
  for (const lb::UpdatePlan& p : plans) stats.ops += p.ops.size();
  for (const FrontendOptionsUpdate& o : options) {
    if (absl::Status s = writer.SetFrontendOptions(o); !s.ok()) {
      ++stats.errors;
      LOG_WARNING("lb: frontend options", {"frontend", o.frontend.ToString()}, {"error", s.message()});
    }
  }
  if (!plans.empty()) RETURN_IF_ERROR(writer.ApplyAll(plans));
  return stats;
}

}  // namespace loom::agent
