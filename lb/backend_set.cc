#include "lb/backend_set.h"

#include <algorithm>

#include "absl/container/flat_hash_set.h"
#include "common/status.h"
#include "common/strings.h"

namespace loom::lb {

std::string BackendAddress::ToString() const {
  return StrCat(ip.ToString(), ":", port, "/", model::ProtocolName(protocol));
}

std::string ServiceFrontend::ToString() const {
  return StrCat(vip.ToString(), ":", port, "/", model::ProtocolName(protocol));
}

namespace {

void SortUnique(std::vector<BackendAddress>& v) {
  std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());
}

}  // namespace

absl::StatusOr<ServiceBackendSet> BuildBackendSet(const model::Service& service,
                                                  const model::EndpointSet& endpoints) {
  ServiceBackendSet set;
  set.service = service.meta.Key();
  if (endpoints.service != set.service) {
    return absl::InvalidArgumentError(StrCat("endpoints of \"", endpoints.service,
                                             "\" given for service \"", set.service, "\""));
  }
  if (service.cluster_ip.empty() || service.type == model::ServiceType::kHeadless ||
      service.type == model::ServiceType::kExternalName) {
    return set;
  }
  absl::StatusOr<net::Ipv4Address> vip = net::Ipv4Address::Parse(service.cluster_ip);
  if (!vip.ok()) {
    return absl::InvalidArgumentError(
        StrCat("service ", set.service, ": cluster IP \"", service.cluster_ip, "\" is not IPv4"));
  }
  for (size_t i = 0; i < service.ports.size(); ++i) {
    const model::ServicePort& sp = service.ports[i];
    FrontendBackends fe;
    fe.frontend = {*vip, sp.port, sp.protocol};
    fe.port_name = sp.name;
    fe.node_port = sp.node_port;
    for (const model::Endpoint& ep : endpoints.endpoints) {
      if (ep.ports.size() != service.ports.size()) {
        return absl::InvalidArgumentError(StrCat("service ", set.service, ": endpoint ", ep.ip,
                                                 " has ", ep.ports.size(), " ports, not ",
                                                 service.ports.size()));
      }
      if (ep.ports[i] == 0) continue;
      absl::StatusOr<net::Ipv4Address> ip = net::Ipv4Address::Parse(ep.ip);
      if (!ip.ok()) {
        return absl::InvalidArgumentError(
            StrCat("service ", set.service, ": endpoint \"", ep.ip, "\" is not IPv4"));
      }
      (ep.ready ? fe.backends : fe.draining).push_back({*ip, ep.ports[i], sp.protocol});
    }
    SortUnique(fe.backends);
    SortUnique(fe.draining);
    // An address both ready and not (two pods, one IP, during a restart) is ready.
    std::erase_if(fe.draining, [&](const BackendAddress& b) {
      return std::binary_search(fe.backends.begin(), fe.backends.end(), b);
    });
    set.frontends.push_back(std::move(fe));
  }
  std::sort(set.frontends.begin(), set.frontends.end(),
            [](const FrontendBackends& a, const FrontendBackends& b) {
              return a.frontend < b.frontend;
            });
  return set;
}

BackendIdAllocator::BackendIdAllocator(uint32_t first_id, uint32_t max_id)
    : next_fresh_(std::max<uint32_t>(first_id, 1)), max_id_(max_id) {}

absl::StatusOr<BackendIdAllocator::Acquired> BackendIdAllocator::Acquire(
    const BackendAddress& backend) {
  auto it = entries_.find(backend);
  if (it != entries_.end()) {
    ++it->second.refs;
    return Acquired{it->second.id, false};
  }
  uint32_t id;
  if (next_fresh_ <= max_id_) {
    id = static_cast<uint32_t>(next_fresh_++);
  } else if (!released_.empty()) {
    id = released_.front();
    released_.pop_front();
  } else {
    return absl::ResourceExhaustedError(
        StrCat("no backend id left for ", backend.ToString(), " (", entries_.size(), " in use)"));
  }
  entries_.emplace(backend, Entry{id, 1});
  return Acquired{id, true};
}

bool BackendIdAllocator::Release(const BackendAddress& backend) {
  auto it = entries_.find(backend);
  if (it == entries_.end()) return false;
  if (--it->second.refs > 0) return false;
  released_.push_back(it->second.id);
  entries_.erase(it);
  return true;
}

std::optional<uint32_t> BackendIdAllocator::Find(const BackendAddress& backend) const {
  auto it = entries_.find(backend);
  if (it == entries_.end()) return std::nullopt;
  return it->second.id;
}

absl::Status BackendIdAllocator::Restore(const BackendAddress& backend, uint32_t id,
                                         uint32_t refs) {
  if (id == 0 || id > max_id_) {
    return absl::InvalidArgumentError(StrCat("restored backend id ", id, " out of range"));
  }
  if (!entries_.emplace(backend, Entry{id, refs}).second) {
    return absl::AlreadyExistsError(StrCat("backend ", backend.ToString(), " restored twice"));
  }
  std::erase(released_, id);
  next_fresh_ = std::max<uint64_t>(next_fresh_, uint64_t{id} + 1);
  return absl::OkStatus();
}

std::vector<std::pair<BackendAddress, uint32_t>> BackendIdAllocator::TakeUnreferenced() {
  std::vector<std::pair<BackendAddress, uint32_t>> out;
  for (auto it = entries_.begin(); it != entries_.end();) {
    if (it->second.refs == 0) {
      out.emplace_back(it->first, it->second.id);
      released_.push_back(it->second.id);
      entries_.erase(it++);
    } else {
      ++it;
    }
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.second < b.second; });
  return out;
}

std::string MapOp::ToString() const {
  switch (kind) {
    case Kind::kPutBackend:
      return StrCat("put backend ", backend_id, " = ", backend.ToString());
    case Kind::kPutSlot:
      return StrCat("put slot ", frontend.ToString(), " #", slot, " = ", backend_id);
    case Kind::kPutServiceCount:
      return StrCat("put count ", frontend.ToString(), " = ", count);
    case Kind::kDeleteService:
      return StrCat("delete service ", frontend.ToString());
    case Kind::kDeleteSlot:
      return StrCat("delete slot ", frontend.ToString(), " #", slot);
    case Kind::kDeleteBackend:
      return StrCat("delete backend ", backend_id);
  }
  return "?";
}

namespace {

using Frontend = ProgrammedService::Frontend;

const Frontend* FindFrontend(const ProgrammedService& state, const ServiceFrontend& key) {
  for (const Frontend& f : state.frontends) {
    if (f.frontend == key) return &f;
  }
  return nullptr;
}

bool Desired(const ServiceBackendSet& desired, const ServiceFrontend& key) {
  for (const FrontendBackends& f : desired.frontends) {
    if (f.frontend == key) return true;
  }
  return false;
}

// Backends that stay keep their slot when it is within the new count, so only
// the slots that really change are written; newcomers fill the gaps in order.
std::vector<BackendAddress> LayOutSlots(const std::vector<BackendAddress>& old_slots,
                                        const std::vector<BackendAddress>& wanted) {
  const size_t n = wanted.size();
  std::vector<std::optional<BackendAddress>> slots(n);
  absl::flat_hash_set<BackendAddress> placed;
  absl::flat_hash_set<BackendAddress> wanted_set(wanted.begin(), wanted.end());
  for (size_t j = 0; j < std::min(n, old_slots.size()); ++j) {
    if (wanted_set.contains(old_slots[j]) && placed.insert(old_slots[j]).second) {
      slots[j] = old_slots[j];
    }
  }
  size_t gap = 0;
  for (const BackendAddress& b : wanted) {
    if (placed.contains(b)) continue;
    while (slots[gap].has_value()) ++gap;
    slots[gap] = b;
  }
  std::vector<BackendAddress> out;
  out.reserve(n);
  for (auto& s : slots) out.push_back(*s);
  return out;
}

}  // namespace

absl::StatusOr<UpdatePlan> PlanServiceUpdate(const ProgrammedService& current,
                                             const ServiceBackendSet& desired,
                                             BackendIdAllocator& ids) {
  UpdatePlan plan;
  std::vector<MapOp>& ops = plan.ops;

  // 1. Every backend of the new state holds an id, and new ones are written.
  std::vector<const BackendAddress*> acquired;
  for (const FrontendBackends& f : desired.frontends) {
    for (const BackendAddress& b : f.backends) {
      absl::StatusOr<BackendIdAllocator::Acquired> a = ids.Acquire(b);
      if (!a.ok()) {
        for (const BackendAddress* r : acquired) ids.Release(*r);
        return a.status();
      }
      acquired.push_back(&b);
      if (a->is_new) {
        ops.push_back({.kind = MapOp::Kind::kPutBackend, .backend_id = a->id, .backend = b});
      }
    }
  }

  // Draining backends keep the entry they have; they are never written anew.
  std::vector<std::vector<BackendAddress>> retained(desired.frontends.size());
  for (size_t i = 0; i < desired.frontends.size(); ++i) {
    for (const BackendAddress& b : desired.frontends[i].draining) {
      if (!ids.Find(b)) continue;
      (void)ids.Acquire(b);  // cannot fail: it holds an id
      retained[i].push_back(b);
    }
  }

  // 2. Slots, per frontend.
  static const std::vector<BackendAddress> kNone;
  for (size_t i = 0; i < desired.frontends.size(); ++i) {
    const FrontendBackends& f = desired.frontends[i];
    const Frontend* old = FindFrontend(current, f.frontend);
    const std::vector<BackendAddress>& old_slots = old ? old->slots : kNone;
    Frontend next{f.frontend, LayOutSlots(old_slots, f.backends), std::move(retained[i])};
    for (size_t j = 0; j < next.slots.size(); ++j) {
      if (j < old_slots.size() && old_slots[j] == next.slots[j]) continue;
      ops.push_back({.kind = MapOp::Kind::kPutSlot, .frontend = f.frontend,
                     .slot = static_cast<uint32_t>(j + 1),
                     .backend_id = *ids.Find(next.slots[j])});
    }
    plan.programmed.frontends.push_back(std::move(next));
  }

  // 3. Counts last, once their slots are in place; removed frontends stop resolving.
  for (const Frontend& f : plan.programmed.frontends) {
    const Frontend* old = FindFrontend(current, f.frontend);
    if (old == nullptr || old->slots.size() != f.slots.size()) {
      ops.push_back({.kind = MapOp::Kind::kPutServiceCount, .frontend = f.frontend,
                     .count = static_cast<uint32_t>(f.slots.size())});
    }
  }
  for (const Frontend& f : current.frontends) {
    if (!Desired(desired, f.frontend)) {
      ops.push_back({.kind = MapOp::Kind::kDeleteService, .frontend = f.frontend});
    }
  }

  // 4. Surplus slots, now beyond every count.
  for (const Frontend& f : current.frontends) {
    const Frontend* next = FindFrontend(plan.programmed, f.frontend);
    size_t keep = next ? next->slots.size() : 0;
    for (size_t j = keep; j < f.slots.size(); ++j) {
      ops.push_back({.kind = MapOp::Kind::kDeleteSlot, .frontend = f.frontend,
                     .slot = static_cast<uint32_t>(j + 1)});
    }
  }

  for (const Frontend& f : current.frontends) {
    const Frontend* next = FindFrontend(plan.programmed, f.frontend);
    for (const BackendAddress& b : f.slots) {
      if (next == nullptr || std::find(next->slots.begin(), next->slots.end(), b) == next->slots.end()) {
        plan.departed.emplace_back(f.frontend, b);
      }
    }
  }
  std::sort(plan.departed.begin(), plan.departed.end());

  // 5. Backends that no slot names any more.
  for (const Frontend& f : current.frontends) {
    for (const auto* list : {&f.slots, &f.retained}) {
      for (const BackendAddress& b : *list) {
        std::optional<uint32_t> id = ids.Find(b);
        if (id && ids.Release(b)) {
          ops.push_back({.kind = MapOp::Kind::kDeleteBackend, .backend_id = *id});
        }
      }
    }
  }
  return plan;
}

}  // namespace loom::lb
