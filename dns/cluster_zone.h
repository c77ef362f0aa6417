// The cluster zone of the Kubernetes DNS specification (schema 1.1.0), built from
// services and their endpoint sets into an immutable snapshot: queries read a
// snapshot without locks or allocation; updates build a new one and swap it in.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "common/model/endpoints.h"
#include "common/model/objects.h"
#include "dns/wire.h"

namespace loom::dns {

// Names are 256 bytes inline; records share one copy of each target name.
using NamePtr = std::shared_ptr<const Name>;

struct SrvRecord {
  uint16_t priority = 0;
  uint16_t weight = 0;
  uint16_t port = 0;
  NamePtr target;
};

// Everything the zone holds at one name. A name with no records of any type is an
// empty non-terminal (it exists: NODATA, not NXDOMAIN).
struct ZoneEntry {
  std::vector<std::array<uint8_t, 4>> a;
  std::vector<SrvRecord> srv;
  NamePtr cname;  // null: none
  NamePtr ptr;
  std::string txt;
  bool has_txt = false;
};

struct ZoneOptions {
  std::string domain = "cluster.local";
  uint32_t ttl = 5;
};

class ClusterZone {
 public:
  // Builds a snapshot. `endpoints` is indexed by service key ("ns/name"); services
  // with no entry have no endpoints.
  static absl::StatusOr<std::shared_ptr<const ClusterZone>> Build(
      const ZoneOptions& options, const std::vector<model::Service>& services,
      const absl::flat_hash_map<std::string, model::EndpointSet>& endpoints);

  const Name& origin() const { return origin_; }
  uint32_t ttl() const { return ttl_; }
  // The zone apex used for answers about PTR names (in-addr.arpa).
  const Name& reverse_origin() const { return reverse_origin_; }

  // Whether this snapshot is authoritative for `name` (the cluster domain, or the
  // reverse names of addresses it holds).
  bool Covers(const Name& name) const;
  // The entry at `name` (any case), or nullptr when the name does not exist.
  const ZoneEntry* Find(const Name& name) const;
  // The SOA serial: bumped on every build.
  uint32_t serial() const { return serial_; }
  size_t name_count() const { return names_.size(); }

  // The SOA fields (mname and rname are fixed names under the origin).
  const Name& soa_mname() const { return mname_; }
  const Name& soa_rname() const { return rname_; }

 private:
  ClusterZone() = default;
  ZoneEntry& At(const Name& name);

  Name origin_;
  Name reverse_origin_;
  Name mname_;
  Name rname_;
  uint32_t ttl_ = 5;
  uint32_t serial_ = 1;
  // Keyed by the lower-cased wire form; looked up through a string_view of a
  // lower-cased copy on the stack, so a query allocates nothing.
  absl::flat_hash_map<std::string, ZoneEntry> names_;
};

}  // namespace loom::dns
