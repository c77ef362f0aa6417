// What the server hands a name outside the cluster zone to: the forwarder (c-ares,
// cache, health checks) implements it; tests use a fake.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "absl/status/statusor.h"

namespace loom::dns {

using ResolveCallback = std::function<void(absl::StatusOr<std::vector<uint8_t>>)>;

class Upstream {
 public:
  virtual ~Upstream() = default;
  // Resolves one query, given as a whole DNS message. `done` runs exactly once, on
  // any thread, with a whole response message whose ID and question match the
  // query, or with an error (the server then answers SERVFAIL).
  virtual void Resolve(std::vector<uint8_t> query, ResolveCallback done) = 0;
};

}  // namespace loom::dns
