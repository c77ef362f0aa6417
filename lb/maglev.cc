#include "lb/maglev.h"

#include <algorithm>
#include <numeric>

#include "common/strings.h"

namespace loom::lb {
namespace {

// Fixed SipHash keys: part of the table's definition. Changing them reshuffles
// every table on the next loomd upgrade, so they never change. (The ASCII of
// "loom-maglev-off\0" and "loom-maglev-skp\0" read as little-endian words.)
constexpr uint64_t kOffsetKey0 = 0x67616d2d6d6f6f6cULL;
constexpr uint64_t kOffsetKey1 = 0x0066666f2d76656cULL;
constexpr uint64_t kSkipKey0 = 0x67616d2d6d6f6f6cULL;
constexpr uint64_t kSkipKey1 = 0x00706b732d76656cULL;

constexpr uint64_t Rotl(uint64_t x, int b) { return (x << b) | (x >> (64 - b)); }

struct SipState {
  uint64_t v0, v1, v2, v3;
  void Round() {
    v0 += v1; v1 = Rotl(v1, 13); v1 ^= v0; v0 = Rotl(v0, 32);
    v2 += v3; v3 = Rotl(v3, 16); v3 ^= v2;
    v0 += v3; v3 = Rotl(v3, 21); v3 ^= v0;
    v2 += v1; v1 = Rotl(v1, 17); v1 ^= v2; v2 = Rotl(v2, 32);
  }
  void Absorb(uint64_t m) {
    v3 ^= m;
    Round();
    Round();
    v0 ^= m;
  }
};

uint64_t LoadLe64(const unsigned char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

}  // namespace

uint64_t SipHash24(std::string_view data, uint64_t k0, uint64_t k1) {
  SipState s{k0 ^ 0x736f6d6570736575ULL, k1 ^ 0x646f72616e646f6dULL, k0 ^ 0x6c7967656e657261ULL,
             k1 ^ 0x7465646279746573ULL};
  const auto* p = reinterpret_cast<const unsigned char*>(data.data());
  size_t n = data.size();
  size_t whole = n - n % 8;
  for (size_t i = 0; i < whole; i += 8) s.Absorb(LoadLe64(p + i));
  uint64_t last = static_cast<uint64_t>(n & 0xff) << 56;
  for (size_t i = whole; i < n; ++i) last |= static_cast<uint64_t>(p[i]) << (8 * (i - whole));
  s.Absorb(last);
  s.v2 ^= 0xff;
  for (int i = 0; i < 4; ++i) s.Round();
  return s.v0 ^ s.v1 ^ s.v2 ^ s.v3;
}

uint64_t MaglevOffsetHash(std::string_view key) { return SipHash24(key, kOffsetKey0, kOffsetKey1); }
uint64_t MaglevSkipHash(std::string_view key) { return SipHash24(key, kSkipKey0, kSkipKey1); }

bool IsPrime(uint64_t n) {
  if (n < 2) return false;
  if (n % 2 == 0) return n == 2;
  for (uint64_t d = 3; d * d <= n; d += 2) {
    if (n % d == 0) return false;
  }
  return true;
}

absl::StatusOr<std::vector<uint32_t>> BuildMaglevTable(std::span<const MaglevBackend> backends,
                                                       uint32_t table_size) {
  if (table_size < 3 || table_size > kMaxMaglevTableSize || !IsPrime(table_size)) {
    return absl::InvalidArgumentError(StrCat("maglev table size ", table_size,
                                             ": must be a prime in 3..", kMaxMaglevTableSize));
  }
  // Walk backends in key order, so the table does not depend on the caller's order.
  std::vector<uint32_t> order(backends.size());
  std::iota(order.begin(), order.end(), 0u);
  std::sort(order.begin(), order.end(),
            [&](uint32_t a, uint32_t b) { return backends[a].key < backends[b].key; });
  for (size_t i = 0; i < order.size(); ++i) {
    const MaglevBackend& b = backends[order[i]];
    if (b.key.empty()) {
      return absl::InvalidArgumentError(StrCat("maglev backend ", order[i], ": empty key"));
    }
    if (i > 0 && backends[order[i - 1]].key == b.key) {
      return absl::InvalidArgumentError(StrCat("maglev backend \"", b.key, "\": given twice"));
    }
    if (b.weight > kMaxMaglevWeight) {
      return absl::InvalidArgumentError(StrCat("maglev backend \"", b.key, "\": weight ", b.weight,
                                               " must be 0..", kMaxMaglevWeight));
    }
  }
  std::erase_if(order, [&](uint32_t i) { return backends[i].weight == 0; });
  if (order.empty()) return std::vector<uint32_t>{};
  if (order.size() > table_size) {
    return absl::InvalidArgumentError(StrCat(order.size(), " maglev backends do not fit a table of ",
                                             table_size, " slots"));
  }

  struct Walk {
    uint64_t offset, skip, next = 0, credit = 0, weight;
  };
  std::vector<Walk> walks;
  walks.reserve(order.size());
  uint64_t max_weight = 0;
  for (uint32_t i : order) {
    const MaglevBackend& b = backends[i];
    walks.push_back({MaglevOffsetHash(b.key) % table_size,
                     MaglevSkipHash(b.key) % (table_size - 1) + 1, 0, 0, b.weight});
    max_weight = std::max<uint64_t>(max_weight, b.weight);
  }

  // The paper's population loop, with weights as Katran's second version does them:
  // each turn a backend earns its weight in credit and claims one slot per
  // max_weight of credit, so with equal weights every backend claims one per turn.
  constexpr uint32_t kEmpty = UINT32_MAX;
  std::vector<uint32_t> table(table_size, kEmpty);
  uint32_t filled = 0;
  while (true) {
    for (size_t w = 0; w < walks.size(); ++w) {
      Walk& walk = walks[w];
      walk.credit += walk.weight;
      while (walk.credit >= max_weight) {
        walk.credit -= max_weight;
        // skip < table_size and table_size is prime: the walk visits every slot,
        // so a free one is found while the table is not full.
        uint64_t slot;
        do {
          slot = (walk.offset + walk.next * walk.skip) % table_size;
          ++walk.next;
        } while (table[slot] != kEmpty);
        table[slot] = order[w];
        if (++filled == table_size) return table;
      }
    }
  }
}

}  // namespace loom::lb
