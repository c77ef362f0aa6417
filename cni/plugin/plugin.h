// The `loom` plugin's verbs over the protocol layer's skel (cni/protocol/skel.h):
// loomd allocates and registers (loomd_client.h), the plugin plumbs (plumbing.h).
//   ADD   allocate (or delegate to ipam.type) -> veth -> register; any failure undoes
//         everything already done (veth deleted, address released, IPAM DEL).
//   DEL   delete the host veth; release in loomd, or queue the DEL when loomd is down.
//   CHECK the interface, address and routes against loomd's record.
//   STATUS loomd's readiness (50 when unreachable or not ready).
//   GC    release every attachment not in cni.dev/valid-attachments.
#pragma once

#include "cni/protocol/environment.h"
#include "cni/protocol/skel.h"

namespace loom::cni {

// `env` is the whole process environment (IPAM plugins get it unchanged).
Handlers LoomHandlers(const EnvMap& env);

}  // namespace loom::cni
