// The containers part of loomd's local API (docs/loomd.md has the shapes):
//   POST   /v1/containers                   run (RunRequest JSON) -> the container, once running
//   GET    /v1/containers[?all=1]           {"items": [...]} (running ones unless all)
//   GET    /v1/containers/<ref>             one container (<ref>: name, id or id prefix)
//   GET    /v1/containers/<ref>/logs?offset=N  {"data" (base64), "next", "running"}
//   POST   /v1/containers/<ref>/stop        {"graceSeconds": 10} -> the container
//   POST   /v1/containers/<ref>/exec        {"command": [...], "env": [...], "timeoutSeconds"}
//                                           -> {"exitCode", "stdout", "stderr"} (base64)
//   POST   /v1/containers/<ref>/check       CNI CHECK of its attachment -> {"ok": true}
//   DELETE /v1/containers/<ref>[?force=1]
//   GET    /v1/volumes, DELETE /v1/volumes/<name>
//   GET    /v1/images, POST /v1/images {"source": "/abs/path", "name": "busybox:1"},
//   DELETE /v1/images/<name|digest>
// Errors are {"error": message} with 400/404/409/500/504. Operations that can block
// (run, stop, remove, exec, check) are limited to two at a time and answer 503 beyond,
// so that the API always keeps threads for the CNI plugin's own calls back into loomd.
#pragma once

#include <functional>

#include "agent/containers/container_manager.h"
#include "common/http/router.h"

namespace loom::containers {

// `manager` returns null until the containers are started, or when they could not be
// (the routes answer 503 with `unavailable()`'s reason).
void RegisterContainerRoutes(http::Router& router, std::function<ContainerManager*()> manager,
                             std::function<std::string()> unavailable);

}  // namespace loom::containers
