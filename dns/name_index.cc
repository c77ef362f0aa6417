#include "dns/name_index.h"

#include "absl/hash/hash.h"
#include "common/strings.h"

namespace loom::dns {

const ZoneExtra NameIndex::kEmptyExtra;

uint64_t NameIndex::Hash(std::string_view lower_wire) {
  return absl::Hash<absl::string_view>{}(ToAbsl(lower_wire));
}

NameIndex::NameIndex(const absl::flat_hash_map<std::string, ZoneEntry>& names) {
  count_ = names.size();
  if (count_ == 0) return;
  size_t slots = 8;
  while (slots < 2 * count_) slots *= 2;  // at most half full: probes stay short
  slots_.resize(slots);
  mask_ = slots - 1;
  size_t arena = 0;
  for (const auto& [key, entry] : names) {
    arena += RecordSize(Head{0, static_cast<uint32_t>(entry.a.size()),
                             static_cast<uint8_t>(key.size())});
  }
  arena_.resize(arena);
  size_t off = 0;
  for (const auto& [key, entry] : names) {
    Head h{kNoExtra, static_cast<uint32_t>(entry.a.size()), static_cast<uint8_t>(key.size())};
    if (!entry.extra.empty()) {
      h.extra = static_cast<uint32_t>(extras_.size());
      extras_.push_back(entry.extra);
    }
    uint8_t* r = arena_.data() + off;
    std::memcpy(r, &h, sizeof h);
    std::memcpy(r + sizeof h, key.data(), key.size());
    for (size_t i = 0; i < entry.a.size(); ++i) {
      std::memcpy(r + sizeof h + key.size() + 4 * i, entry.a[i].data(), 4);
    }
    uint64_t hash = Hash(key);
    size_t i = hash & mask_;
    while (slots_[i].offset_plus_one != 0) i = (i + 1) & mask_;
    slots_[i] = Slot{static_cast<uint32_t>(hash >> 32), static_cast<uint32_t>(off + 1)};
    off += RecordSize(h);
  }
}

}  // namespace loom::dns
