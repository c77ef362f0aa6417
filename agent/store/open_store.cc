#include "agent/store/embedded_store.h"
#include "agent/store/etcd_store.h"
#include "agent/store/store.h"
#include "common/strings.h"

namespace loom::store {

absl::StatusOr<std::unique_ptr<Store>> OpenStore(std::string_view url,
                                                 const std::string& state_dir) {
  if (url == "embedded") return OpenEmbeddedStore(state_dir);
  if (url.substr(0, 7) == "etcd://") return OpenEtcdStore(url);
  return absl::InvalidArgumentError(
      StrCat("store URL \"", url, "\": want \"embedded\" or \"etcd://host:port[,host:port]\""));
}

}  // namespace loom::store
