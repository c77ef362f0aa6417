// IPAM delegation as the spec describes it: the plugin named by `ipam.type` is found
// in CNI_PATH and exec'd with the same environment (CNI_COMMAND possibly changed) and
// the whole config on stdin. Its error JSON becomes a CniError with its code.
#pragma once

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "cni/protocol/environment.h"

namespace loom::cni {

// Runs `type` for `command` ("ADD", "DEL", ...) and returns its stdout.
absl::StatusOr<std::string> ExecPlugin(std::string_view type, std::string_view command,
                                       const EnvMap& env, std::string_view stdin_text);

}  // namespace loom::cni
