#include "agent/store/etcd_store.h"

#include "common/strings.h"

namespace loom::store {

std::string EtcdEndpoint::ToString() const { return StrCat(host, ":", port); }

absl::StatusOr<std::vector<EtcdEndpoint>> ParseEtcdUrl(std::string_view url) {
  return absl::UnimplementedError(StrCat("etcd store not built yet: ", url));
}

absl::StatusOr<std::unique_ptr<Store>> OpenEtcdStore(std::string_view url, EtcdStoreOptions) {
  return absl::UnimplementedError(StrCat("etcd store not built yet: ", url));
}

}  // namespace loom::store
