// Backend sets, what the service load balancer's data path needs from a Service
// and its endpoints, and the ordered map updates that move the BPF maps from one
// backend set to the next without a reader ever seeing a half-written service.
//
// The maps are modelled as Cilium's (pkg/maps/lbmap): a backends map (id ->
// address) and a services map keyed by frontend and slot, where slot 0 holds the
// backend count and slots 1..count hold backend ids. Plans are lists of abstract
// map operations that the BPF map writer executes in order.
#pragma once

#include <compare>
#include <cstdint>
#include <deque>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "common/model/endpoints.h"
#include "common/model/objects.h"
#include "common/net/ip.h"

namespace loom::lb {

// Where a backend listens: the identity a backend id stands for.
struct BackendAddress {
  net::Ipv4Address ip;
  uint16_t port = 0;
  model::Protocol protocol = model::Protocol::kTcp;

  std::string ToString() const;  // "10.244.1.5:8080/TCP", also the Maglev key
  friend auto operator<=>(const BackendAddress&, const BackendAddress&) = default;
  template <typename H>
  friend H AbslHashValue(H h, const BackendAddress& b) {
    return H::combine(std::move(h), b.ip, b.port, b.protocol);
  }
};

// What clients address: the service's virtual IP, a service port and its protocol.
struct ServiceFrontend {
  net::Ipv4Address vip;
  uint16_t port = 0;
  model::Protocol protocol = model::Protocol::kTcp;

  std::string ToString() const;  // "10.96.0.10:53/UDP"
  friend auto operator<=>(const ServiceFrontend&, const ServiceFrontend&) = default;
};

struct FrontendBackends {
  ServiceFrontend frontend;
  std::string port_name;   // the service port's name ("" for a single unnamed port)
  uint16_t node_port = 0;  // NodePort services: also reachable on every node here
  std::vector<BackendAddress> backends;  // ready ones only, sorted, no duplicates
  // Endpoints that exist but are not ready (unready or terminating), sorted: they get
  // no slot, so no new connection, but keep their backend entry while they exist, so
  // connections already tracked to them (tc path) still translate.
  std::vector<BackendAddress> draining;

  friend bool operator==(const FrontendBackends&, const FrontendBackends&) = default;
};

struct ServiceBackendSet {
  std::string service;  // "<namespace>/<name>"
  std::vector<FrontendBackends> frontends;  // one per service port, sorted by frontend

  friend bool operator==(const ServiceBackendSet&, const ServiceBackendSet&) = default;
};

// The backend set of `service` from its derived endpoints: for each service port,
// the ready endpoints with that port's target port. Endpoints that are not ready
// (unready or terminating) are draining: no slot. An endpoint whose pod lacks
// a named target port. Services without a cluster IP (Headless, ExternalName, or
// not yet allocated) have no frontend. Errors: an unparsable cluster or endpoint IP,
// an endpoint set of another service, an endpoint without one port per service port.
absl::StatusOr<ServiceBackendSet> BuildBackendSet(const model::Service& service,
                                                  const model::EndpointSet& endpoints);

// Backend ids for the backends map, shared by every service on the node: one id per
// address, counted by reference (one reference per frontend that uses it). An id is
// reused only after it was released, and fresh ids go first, so a released id stays
// unused as long as possible (a packet that read it late still finds no other backend).
class BackendIdAllocator {
 public:
  // Ids are first_id..max_id; 0 is never handed out (the data path's "no backend").
  explicit BackendIdAllocator(uint32_t first_id = 1, uint32_t max_id = UINT32_MAX - 1);

  struct Acquired {
    uint32_t id;
    bool is_new;  // the first reference: the backend must be written to the map
  };
  absl::StatusOr<Acquired> Acquire(const BackendAddress& backend);
  // Drops one reference; true when it was the last and the id is now free.
  // Releasing an address that holds no id is a no-op returning false.
  bool Release(const BackendAddress& backend);
  std::optional<uint32_t> Find(const BackendAddress& backend) const;
  size_t size() const { return entries_.size(); }

  // After a restart: `backend` already holds `id` in the maps, with `refs` references
  // (the recovered frontends whose slots name it; 0 for one only kept for draining).
  // Fresh ids continue above every restored one. Ids come from the backends map's keys,
  // so they are distinct; an address restored twice is an error.
  absl::Status Restore(const BackendAddress& backend, uint32_t id, uint32_t refs);
  // Removes and returns the restored entries no plan referenced since (their ids are
  // released), so that the caller deletes them from the maps.
  std::vector<std::pair<BackendAddress, uint32_t>> TakeUnreferenced();

 private:
  struct Entry {
    uint32_t id;
    uint32_t refs;
  };
  absl::flat_hash_map<BackendAddress, Entry> entries_;
  std::deque<uint32_t> released_;  // oldest release first
  uint64_t next_fresh_;
  uint32_t max_id_;
};

// One write or delete on the maps.
struct MapOp {
  enum class Kind {
    kPutBackend,        // backends[backend_id] = backend
    kPutSlot,           // services[frontend, slot] = backend_id (slot >= 1)
    kPutServiceCount,   // services[frontend, 0] = count
    kDeleteService,     // delete services[frontend, 0]: the frontend stops resolving
    kDeleteSlot,        // delete services[frontend, slot]
    kDeleteBackend,     // delete backends[backend_id]
  };
  Kind kind;
  ServiceFrontend frontend;  // slot and service operations
  uint32_t slot = 0;
  uint32_t count = 0;        // kPutServiceCount
  uint32_t backend_id = 0;   // kPutBackend, kPutSlot, kDeleteBackend
  BackendAddress backend;    // kPutBackend

  std::string ToString() const;
  friend bool operator==(const MapOp&, const MapOp&) = default;
};

// What the maps hold for one service after a plan: per frontend, the backend in
// each slot (slots[0] is slot 1). Start from an empty one.
struct ProgrammedService {
  struct Frontend {
    ServiceFrontend frontend;
    std::vector<BackendAddress> slots;
    std::vector<BackendAddress> retained;  // draining backends whose entry is kept
    friend bool operator==(const Frontend&, const Frontend&) = default;
  };
  std::vector<Frontend> frontends;  // sorted by frontend
  friend bool operator==(const ProgrammedService&, const ProgrammedService&) = default;
};

// Everything the maps hold, service names aside (the maps do not know them): what a
// restarted owner starts from.
struct ProgrammedMaps {
  std::vector<ProgrammedService::Frontend> frontends;  // sorted by frontend
  std::vector<std::pair<uint32_t, BackendAddress>> backends;  // sorted by id
};

struct UpdatePlan {
  std::vector<MapOp> ops;
  ProgrammedService programmed;  // the state once `ops` ran: the next plan's `current`
  // Backends that lost their slot in a frontend (removed, draining, or the frontend
  // deleted): flows placed on them before keep them, new ones go elsewhere. Sorted.
  std::vector<std::pair<ServiceFrontend, BackendAddress>> departed;
};

// The ordered operations that take one service's maps from `current` to `desired`
// (an empty `desired` removes the service). The order keeps every intermediate
// state valid for a concurrent reader:
//   1. new backends are written;
//   2. changed slots are written (a backend that stays keeps its slot if it fits);
//   3. each frontend's count is written, or the frontend deleted (count first);
//   4. slots beyond the new count are deleted;
//   5. backends no frontend uses any more are deleted.
// A draining backend keeps its backend entry if it had one (no slot), and loses it
// once it leaves the endpoints; a draining backend never seen before is not written.
// So a reader never sees a count beyond the written slots, nor a slot naming a
// missing backend. Plans from one allocator must run in the order they were made.
// On error (ids exhausted) the allocator is left as it was.
absl::StatusOr<UpdatePlan> PlanServiceUpdate(const ProgrammedService& current,
                                             const ServiceBackendSet& desired,
                                             BackendIdAllocator& ids);

}  // namespace loom::lb
