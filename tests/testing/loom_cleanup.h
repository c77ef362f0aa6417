// Removing what a test left in a loomd, through loomctl: every App first (or the
// reconciler starts their replicas again), then every container. Used by the
// harnesses' teardowns (Cluster, RuntimeNode).
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "common/json.h"
#include "tests/testing/command.h"

namespace loom::testing {

// loomctl against one loomd (the arguments after the socket).
using Loomctl = std::function<CommandResult(std::vector<std::string>)>;

// Deletes every App in every namespace.
void DeleteAllApps(const Loomctl& ctl);
// `loomctl ps -a` as JSON items; nullopt when loomd did not answer with a list.
std::optional<std::vector<Json>> ListContainers(const Loomctl& ctl);
// Whether a container belongs to an App (carries loom.io/app).
bool IsAppReplica(const Json& container);
// `loomctl rm -f` of every container in `containers`.
void RemoveContainers(const Loomctl& ctl, const std::vector<Json>& containers);

}  // namespace loom::testing
