#include "tests/testing/loom_cleanup.h"

namespace loom::testing {

void DeleteAllApps(const Loomctl& ctl) {
  absl::StatusOr<Json> apps = ParseJson(ctl({"get", "apps", "-A", "-o", "json"}).out);
  if (!apps.ok() || !apps->contains("items")) return;
  for (const Json& a : (*apps)["items"]) {
    ctl({"delete", "app", a["metadata"].value("name", ""), "-n", a["metadata"].value("namespace", "default")});
  }
}

std::optional<std::vector<Json>> ListContainers(const Loomctl& ctl) {
  absl::StatusOr<Json> list = ParseJson(ctl({"ps", "-a", "-o", "json"}).out);
  if (!list.ok() || !list->contains("items") || !(*list)["items"].is_array()) return std::nullopt;
  return (*list)["items"].get<std::vector<Json>>();
}

bool IsAppReplica(const Json& container) {
  return container.value("labels", Json::object()).contains("loom.io/app");
}

void RemoveContainers(const Loomctl& ctl, const std::vector<Json>& containers) {
  for (const Json& c : containers) ctl({"rm", "-f", c.value("id", "")});
}

}  // namespace loom::testing
