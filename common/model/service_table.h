// The services of one snapshot of the cluster with their derived endpoints, sorted by
// key ("<namespace>/<name>"): an immutable value that snapshots share.
//
// Services and endpoint sets are held by shared pointers to const objects, never
// copied: a service that did not change is the same object in every snapshot. The
// entries live in chunks of a few hundred, and a table made from another by a few
// changes (With) shares every chunk the changes do not fall in. So making the next
// snapshot, copying one and freeing one cost in proportion to the changes and to the
// number of chunks (about 400 at 100,000 services), not to the number of services;
// and Diff finds what differs between two tables by skipping the chunks they share.
//
//   ServiceTable next = table.With(changes);   // changes sorted by key
//   for (const ServiceEntry& e : next) use(*e.service, *e.endpoints);
//   if (const ServiceEntry* e = next.Find("default/web")) ...
#pragma once

#include <cstddef>
#include <iterator>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/function_ref.h"
#include "common/model/endpoints.h"
#include "common/model/objects.h"

namespace loom::model {

// A service and its endpoints as a snapshot holds them.
struct ServiceEntry {
  std::shared_ptr<const Service> service;
  // Never null in a table; its `service` field is the entry's key.
  std::shared_ptr<const EndpointSet> endpoints;

  // A new entry owning `service` and `endpoints` (whose `service` field it sets).
  static ServiceEntry Make(Service service, EndpointSet endpoints = {});
  const std::string& key() const { return endpoints->service; }
  // Identity: the same objects (what snapshots compare; equal copies are not the same).
  friend bool operator==(const ServiceEntry&, const ServiceEntry&) = default;
};

// Endpoint sets by service key, for building tables from plain values (tests, tools).
using EndpointSets = absl::flat_hash_map<std::string, EndpointSet>;

class ServiceTable {
  struct Chunk;

 public:
  // Entries per chunk that With() aims at (it keeps chunks between a quarter of and
  // twice this).
  static constexpr size_t kChunkSize = 256;

  class Iterator {
   public:
    using iterator_category = std::forward_iterator_tag;
    using value_type = ServiceEntry;
    using difference_type = std::ptrdiff_t;
    using pointer = const ServiceEntry*;
    using reference = const ServiceEntry&;

    Iterator() = default;
    reference operator*() const;
    pointer operator->() const { return &**this; }
    Iterator& operator++();
    Iterator operator++(int) {
      Iterator before = *this;
      ++*this;
      return before;
    }
    friend bool operator==(const Iterator& a, const Iterator& b) {
      return a.chunk_ == b.chunk_ && a.entry_ == b.entry_;
    }

   private:
    friend class ServiceTable;
    Iterator(const std::shared_ptr<const Chunk>* chunk, size_t entry)
        : chunk_(chunk), entry_(entry) {}
    const std::shared_ptr<const Chunk>* chunk_ = nullptr;
    size_t entry_ = 0;
  };

  // One change for With(): sets the entry of `key` (`entry.key()` must equal it), or
  // removes `key` when `entry.service` is null.
  struct Change {
    std::string_view key;
    ServiceEntry entry;
  };

  ServiceTable() = default;
  // From entries in any order; of entries with one key, the last is kept.
  static ServiceTable From(std::vector<ServiceEntry> entries);
  // New objects copied from `services`, each with its set in `endpoints` (by key) or
  // an empty one: for tests and tools.
  static ServiceTable Of(const std::vector<Service>& services, const EndpointSets& endpoints = {});

  // This table with `changes` applied; `changes` sorted by key, one per key. Every
  // chunk no change falls in is shared with this table.
  ServiceTable With(std::span<const Change> changes) const;

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  Iterator begin() const { return Iterator(chunks_.data(), 0); }
  Iterator end() const { return Iterator(chunks_.data() + chunks_.size(), 0); }
  // The entry of `key` ("ns/name"), or null.
  const ServiceEntry* Find(std::string_view key) const;
  // How many chunks hold the entries, and how many of `after`'s are `before`'s
  // (for tests and logs).
  size_t chunk_count() const { return chunks_.size(); }
  static size_t SharedChunks(const ServiceTable& before, const ServiceTable& after);

  // Calls `changed(before_entry, after_entry)`, in key order, for every key whose
  // entry is not the same (operator==) in both tables: null `before_entry` for a key
  // only `after` has, null `after_entry` for one only `before` has. Chunks the tables
  // share are skipped without reading them.
  static void Diff(const ServiceTable& before, const ServiceTable& after,
                   absl::FunctionRef<void(const ServiceEntry*, const ServiceEntry*)> changed);

 private:
  struct Chunk {
    std::vector<ServiceEntry> entries;  // sorted by key, never empty
  };
  // Appends `entries` (sorted) to `out` as chunks of a good size, merging a small run
  // into the chunk before it.
  static void AppendChunks(std::vector<ServiceEntry> entries,
                           std::vector<std::shared_ptr<const Chunk>>* out);

  std::vector<std::shared_ptr<const Chunk>> chunks_;
  size_t size_ = 0;
};

}  // namespace loom::model
