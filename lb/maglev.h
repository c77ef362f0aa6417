// Maglev consistent hashing (Eisenbud et al., NSDI 2016, section 3.4): each
// backend walks its own permutation of the table's slots, and backends take turns
// claiming their next free slot until the table is full. Removing one backend of N
// moves little more than the 1/N of slots it held, so connections that the data
// path re-hashes (no connection-map entry) mostly keep their backend.
//
// Pure and deterministic: the same backends give the same table in every process,
// on every run and on every host, whatever the order they are given in. The
// hashes are SipHash-2-4 with fixed keys (below), never std::hash.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace loom::lb {

// Cilium's default; Katran uses 65537. Must be prime and much larger than the
// number of backends. When one of ten backends leaves, 16381 moves on average 0.5
// points more slots than the ideal 10%, at worst about 3 (rare cascades); 65537 stays
// within 1 point (tests/unit/lb/maglev_test.cc). 16381 keeps a table at 64 KiB.
inline constexpr uint32_t kDefaultMaglevTableSize = 16381;
// Upper bound on the table size we accept (a BPF array of u32 per service).
inline constexpr uint32_t kMaxMaglevTableSize = 1u << 24;
// Weights range as in Gateway API HTTPRoute.
inline constexpr uint32_t kMaxMaglevWeight = 1'000'000;

struct MaglevBackend {
  // The backend's stable identity, the same on every node and across restarts
  // (e.g. "10.244.1.5:8080/TCP"): its hashes place the backend's permutation.
  std::string key;
  // Slots are shared in proportion to weight; 0 means no slot at all.
  uint32_t weight = 1;
};

// SipHash-2-4 (Aumasson and Bernstein) of `data` with the 128-bit key (k0, k1),
// as in the reference implementation (little-endian words).
uint64_t SipHash24(std::string_view data, uint64_t k0, uint64_t k1);

// The two fixed-key hashes Maglev uses for a backend's offset and skip.
uint64_t MaglevOffsetHash(std::string_view key);
uint64_t MaglevSkipHash(std::string_view key);

bool IsPrime(uint64_t n);

// The lookup table: `table_size` entries, each the index into `backends` of the
// backend that owns the slot. Errors: table_size not a prime in 3..kMaxMaglevTableSize,
// an empty or duplicate key, a weight above kMaxMaglevWeight, more weighted
// backends than slots. With no backend of positive weight the table is empty (the
// data path then has nothing to choose and rejects).
absl::StatusOr<std::vector<uint32_t>> BuildMaglevTable(
    std::span<const MaglevBackend> backends, uint32_t table_size = kDefaultMaglevTableSize);

}  // namespace loom::lb
