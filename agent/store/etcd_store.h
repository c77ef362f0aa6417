// The etcd store: the etcd v3 API through its JSON gateway (HTTP/1.1, Boost.Beast).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "agent/store/store.h"

namespace loom::store {

struct EtcdEndpoint {
  std::string host;
  uint16_t port = 0;
  std::string ToString() const;
};

// Parses "etcd://host:port[,host:port...]"; InvalidArgument naming what is wrong.
absl::StatusOr<std::vector<EtcdEndpoint>> ParseEtcdUrl(std::string_view url);

struct EtcdStoreOptions {
  absl::Duration connect_timeout = absl::Seconds(2);
  absl::Duration request_timeout = absl::Seconds(5);
};

// Connects and checks that etcd answers; fails within a few seconds with
// "etcd at 127.0.0.1:2379: connection refused" when none of the endpoints does.
absl::StatusOr<std::unique_ptr<Store>> OpenEtcdStore(std::string_view url,
                                                     EtcdStoreOptions options = {});

}  // namespace loom::store
