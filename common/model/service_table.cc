#include "common/model/service_table.h"

#include <algorithm>

#include "absl/container/flat_hash_set.h"

namespace loom::model {

ServiceEntry ServiceEntry::Make(Service service, EndpointSet endpoints) {
  endpoints.service = service.meta.Key();
  return {std::make_shared<const Service>(std::move(service)),
          std::make_shared<const EndpointSet>(std::move(endpoints))};
}

const ServiceEntry& ServiceTable::Iterator::operator*() const { return (*chunk_)->entries[entry_]; }

ServiceTable::Iterator& ServiceTable::Iterator::operator++() {
  if (++entry_ == (*chunk_)->entries.size()) {
    ++chunk_;
    entry_ = 0;
  }
  return *this;
}

void ServiceTable::AppendChunks(std::vector<ServiceEntry> entries,
                                std::vector<std::shared_ptr<const Chunk>>* out) {
  if (entries.empty()) return;
  if (entries.size() < kChunkSize / 4 && !out->empty()) {
    // Too small to stand alone: one run with the chunk before.
    std::vector<ServiceEntry> joined = out->back()->entries;
    joined.insert(joined.end(), std::make_move_iterator(entries.begin()),
                  std::make_move_iterator(entries.end()));
    entries = std::move(joined);
    out->pop_back();
  }
  if (entries.size() <= 2 * kChunkSize) {
    out->push_back(std::make_shared<const Chunk>(Chunk{std::move(entries)}));
    return;
  }
  // Pieces of about kChunkSize, of sizes differing by one at most.
  size_t pieces = (entries.size() + kChunkSize - 1) / kChunkSize;
  size_t begin = 0;
  for (size_t p = 0; p < pieces; ++p) {
    size_t end = entries.size() * (p + 1) / pieces;
    std::vector<ServiceEntry> piece(std::make_move_iterator(entries.begin() + begin),
                                    std::make_move_iterator(entries.begin() + end));
    out->push_back(std::make_shared<const Chunk>(Chunk{std::move(piece)}));
    begin = end;
  }
}

ServiceTable ServiceTable::From(std::vector<ServiceEntry> entries) {
  std::stable_sort(entries.begin(), entries.end(),
                   [](const ServiceEntry& a, const ServiceEntry& b) { return a.key() < b.key(); });
  // Of equal keys the last one given stands.
  std::vector<ServiceEntry> unique;
  unique.reserve(entries.size());
  for (ServiceEntry& e : entries) {
    if (!unique.empty() && unique.back().key() == e.key()) {
      unique.back() = std::move(e);
    } else {
      unique.push_back(std::move(e));
    }
  }
  ServiceTable table;
  table.size_ = unique.size();
  AppendChunks(std::move(unique), &table.chunks_);
  return table;
}

ServiceTable ServiceTable::Of(const std::vector<Service>& services, const EndpointSets& endpoints) {
  std::vector<ServiceEntry> entries;
  entries.reserve(services.size());
  for (const Service& s : services) {
    auto it = endpoints.find(s.meta.Key());
    entries.push_back(ServiceEntry::Make(s, it == endpoints.end() ? EndpointSet{} : it->second));
  }
  return From(std::move(entries));
}

ServiceTable ServiceTable::With(std::span<const Change> changes) const {
  ServiceTable next;
  next.chunks_.reserve(chunks_.size() + changes.size() / kChunkSize + 1);
  next.size_ = size_;
  size_t c = 0;  // the first change not applied yet
  // Merges the chunk's entries (none for an empty table) with the changes before
  // `limit` (all that are left when there is none).
  auto merge = [&](const std::vector<ServiceEntry>& entries, const std::string* limit) {
    size_t end = c;
    while (end < changes.size() && (limit == nullptr || changes[end].key < *limit)) ++end;
    std::vector<ServiceEntry> merged;
    merged.reserve(entries.size() + (end - c));
    auto e = entries.begin();
    for (; c < end; ++c) {
      const Change& change = changes[c];
      while (e != entries.end() && e->key() < change.key) merged.push_back(*e++);
      bool replaces = e != entries.end() && e->key() == change.key;
      if (replaces) {
        ++e;
        --next.size_;
      }
      if (change.entry.service != nullptr) {
        merged.push_back(change.entry);
        ++next.size_;
      }
    }
    merged.insert(merged.end(), e, entries.end());
    AppendChunks(std::move(merged), &next.chunks_);
  };
  for (size_t i = 0; i < chunks_.size(); ++i) {
    const std::string* limit =
        i + 1 < chunks_.size() ? &chunks_[i + 1]->entries.front().key() : nullptr;
    if (c == changes.size() || (limit != nullptr && !(changes[c].key < *limit))) {
      next.chunks_.push_back(chunks_[i]);  // no change falls in it
      continue;
    }
    merge(chunks_[i]->entries, limit);
  }
  if (chunks_.empty()) merge({}, nullptr);
  return next;
}

const ServiceEntry* ServiceTable::Find(std::string_view key) const {
  // The last chunk whose first key is not after `key`.
  auto chunk = std::upper_bound(chunks_.begin(), chunks_.end(), key,
                                [](std::string_view k, const std::shared_ptr<const Chunk>& c) {
                                  return k < c->entries.front().key();
                                });
  if (chunk == chunks_.begin()) return nullptr;
  const std::vector<ServiceEntry>& entries = (*std::prev(chunk))->entries;
  auto it = std::lower_bound(entries.begin(), entries.end(), key,
                             [](const ServiceEntry& e, std::string_view k) { return e.key() < k; });
  if (it == entries.end() || it->key() != key) return nullptr;
  return &*it;
}

size_t ServiceTable::SharedChunks(const ServiceTable& before, const ServiceTable& after) {
  absl::flat_hash_set<const Chunk*> mine;
  for (const auto& c : before.chunks_) mine.insert(c.get());
  size_t shared = 0;
  for (const auto& c : after.chunks_) shared += mine.contains(c.get()) ? 1 : 0;
  return shared;
}

void ServiceTable::Diff(const ServiceTable& before, const ServiceTable& after,
                        absl::FunctionRef<void(const ServiceEntry*, const ServiceEntry*)> changed) {
  Iterator a = before.begin(), b = after.begin();
  const Iterator a_end = before.end(), b_end = after.end();
  while (a != a_end || b != b_end) {
    // Both at the start of one shared chunk: nothing in it differs.
    if (a != a_end && b != b_end && a.entry_ == 0 && b.entry_ == 0 && *a.chunk_ == *b.chunk_) {
      ++a.chunk_;
      ++b.chunk_;
      continue;
    }
    if (b == b_end || (a != a_end && a->key() < b->key())) {
      changed(&*a++, nullptr);
    } else if (a == a_end || b->key() < a->key()) {
      changed(nullptr, &*b++);
    } else {
      if (!(*a == *b)) changed(&*a, &*b);
      ++a;
      ++b;
    }
  }
}

}  // namespace loom::model
