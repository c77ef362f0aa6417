// Test images built from the host's static busybox (Debian busybox-static): a rootfs
// folder, that folder packed as a tarball, and an OCI image layout of two layers where
// the second one deletes a file (whiteout) and empties a folder (opaque whiteout).
#pragma once

#include <string>

#include "absl/status/status.h"

namespace loom::runtime::testing {

inline constexpr char kHostBusybox[] = "/bin/busybox";

// bin/busybox, a symlink per applet, etc/passwd and etc/group, empty proc, sys, dev, tmp.
absl::Status MakeBusyboxRootfs(const std::string& dir);
// tar -C dir -c[z]f out .
absl::Status PackTar(const std::string& dir, const std::string& out, bool gzip);
// An OCI image layout at `out` (a folder): layer 1 = `rootfs` plus etc/removed-by-layer2
// and opaque/lower-file; layer 2 = etc/.wh.removed-by-layer2, opaque/.wh..wh..opq,
// opaque/upper-file and etc/added-by-layer2. The config sets Env FROM_IMAGE=oci and
// Cmd ["sh", "-c", "echo from-image-cmd"]; the index annotates the manifest with `ref`.
absl::Status MakeOciLayout(const std::string& rootfs, const std::string& out,
                           const std::string& ref);

// The same two layers as a `docker save` archive (manifest.json naming the config and
// the layer files, tagged `tag`), packed as a tarball at `out`.
absl::Status MakeDockerArchive(const std::string& rootfs, const std::string& out,
                               const std::string& tag);

}  // namespace loom::runtime::testing
