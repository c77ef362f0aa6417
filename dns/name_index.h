// The records of zone names and an immutable index over them laid out for the
// query path: a lookup reads one slot (a hash tag and an offset) and one record in a
// byte arena where the name's key and its addresses sit together, so an A query at
// 10k or 100k services touches about two cache lines instead of the five of a node
// map keyed by heap strings (slot, key, record, address vector).
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
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

// The records of a name other than its addresses.
struct ZoneExtra {
  std::vector<SrvRecord> srv;
  NamePtr cname;  // null: none
  NamePtr ptr;
  std::string txt;
  bool has_txt = false;

  bool empty() const { return srv.empty() && !cname && !ptr && !has_txt; }
};

// Everything the zone holds at one name, as it is built. A name with no records of
// any type is an empty non-terminal (it exists: NODATA, not NXDOMAIN).
struct ZoneEntry {
  std::vector<std::array<uint8_t, 4>> a;
  ZoneExtra extra;
};

// A found name's records as the query path reads them.
struct ZoneRecords {
  const uint8_t* a = nullptr;  // a_count IPv4 addresses, 4 bytes each
  uint32_t a_count = 0;
  const ZoneExtra* extra = nullptr;  // never null

  const uint8_t* address(uint32_t i) const { return a + 4 * i; }
  static ZoneRecords Of(const ZoneEntry& e) {
    static_assert(sizeof(std::array<uint8_t, 4>) == 4);
    return {reinterpret_cast<const uint8_t*>(e.a.data()), static_cast<uint32_t>(e.a.size()),
            &e.extra};
  }
};

class NameIndex;

// A lookup about to be made, for prefetching ahead of it.
struct PendingLookup {
  const NameIndex* index = nullptr;
  uint64_t hash = 0;

  // Prefetches the record of the first slot whose tag matches (read the slot, so
  // prefetch it first and do this later).
  void PrefetchRecord() const;
};

// Keys are lower-cased uncompressed wire names.
class NameIndex {
 public:
  NameIndex() = default;
  // Freezes `names` (key: lower-cased wire form) into an index.
  explicit NameIndex(const absl::flat_hash_map<std::string, ZoneEntry>& names);

  static uint64_t Hash(std::string_view lower_wire);
  // The records at `lower_wire` (whose Hash() is `hash`), or nullopt.
  std::optional<ZoneRecords> Find(std::string_view lower_wire, uint64_t hash) const {
    if (slots_.empty()) return std::nullopt;
    const uint32_t tag = static_cast<uint32_t>(hash >> 32);
    for (size_t i = hash & mask_;; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.offset_plus_one == 0) return std::nullopt;
      if (s.tag != tag) continue;
      const uint8_t* r = arena_.data() + s.offset_plus_one - 1;
      Head h;
      std::memcpy(&h, r, sizeof h);
      const uint8_t* key = r + sizeof h;
      if (h.key_size != lower_wire.size() || std::memcmp(key, lower_wire.data(), h.key_size) != 0) {
        continue;
      }
      return ZoneRecords{key + h.key_size, h.a_count,
                         h.extra == kNoExtra ? &kEmptyExtra : &extras_[h.extra]};
    }
  }

  // Prefetches the slot a lookup of `hash` reads first.
  void PrefetchSlot(uint64_t hash) const {
    if (!slots_.empty()) __builtin_prefetch(&slots_[hash & mask_]);
  }
  // Prefetches the record of the first slot that matches `hash`'s tag.
  void PrefetchRecord(uint64_t hash) const {
    if (slots_.empty()) return;
    const uint32_t tag = static_cast<uint32_t>(hash >> 32);
    for (size_t i = hash & mask_;; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.offset_plus_one == 0) return;
      if (s.tag != tag) continue;
      const uint8_t* r = arena_.data() + s.offset_plus_one - 1;
      __builtin_prefetch(r);
      __builtin_prefetch(r + 63);  // a record may cross into the next line
      return;
    }
  }

  size_t size() const { return count_; }
  // Every key and its records, in no order (for dumps and tests).
  template <typename F>
  void ForEach(F f) const {
    for (size_t off = 0; off < arena_.size();) {
      Head h;
      std::memcpy(&h, arena_.data() + off, sizeof h);
      const uint8_t* key = arena_.data() + off + sizeof h;
      f(std::string_view(reinterpret_cast<const char*>(key), h.key_size),
        ZoneRecords{key + h.key_size, h.a_count,
                    h.extra == kNoExtra ? &kEmptyExtra : &extras_[h.extra]});
      off += RecordSize(h);
    }
  }

 private:
  static constexpr uint32_t kNoExtra = ~uint32_t{0};
  static const ZoneExtra kEmptyExtra;
  struct Slot {
    uint32_t tag = 0;             // the hash's upper half
    uint32_t offset_plus_one = 0;  // of the record in arena_; 0: empty
  };
  struct Head {
    uint32_t extra;  // index into extras_, or kNoExtra
    uint32_t a_count;
    uint8_t key_size;
  };
  static size_t RecordSize(const Head& h) {
    size_t n = sizeof(Head) + h.key_size + 4 * size_t{h.a_count};
    return (n + 3) & ~size_t{3};
  }

  std::vector<Slot> slots_;
  size_t mask_ = 0;
  size_t count_ = 0;
  std::vector<uint8_t> arena_;  // per record: Head, key bytes, addresses; 4-aligned
  std::vector<ZoneExtra> extras_;
};

inline void PendingLookup::PrefetchRecord() const {
  if (index != nullptr) index->PrefetchRecord(hash);
}

}  // namespace loom::dns
