// A map of decoded objects kept up to date from a watch: ApplyWatchBatch applies one
// WatchBatch (a resync replaces everything) to `objects`, keyed by store key. `decode`
// returns the object, or nullopt for a value to skip (the key is then dropped, so a
// value that stopped decoding does not leave its old object behind).
#pragma once

#include <map>
#include <optional>
#include <string>

#include "agent/store/store.h"

namespace loom::store {

template <typename T, typename Decode>
void ApplyWatchBatch(const WatchBatch& batch, std::map<std::string, T>& objects, Decode decode) {
  auto put = [&](const KeyValue& kv) {
    std::optional<T> obj = decode(kv);
    if (obj) {
      objects[kv.key] = *std::move(obj);
    } else {
      objects.erase(kv.key);
    }
  };
  if (batch.resync) {
    objects.clear();
    for (const KeyValue& kv : batch.snapshot) put(kv);
  }
  for (const Event& e : batch.events) {
    if (e.type == Event::Type::kPut) {
      put(e.kv);
    } else {
      objects.erase(e.kv.key);
    }
  }
}

}  // namespace loom::store
