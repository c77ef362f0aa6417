// Tar archives (plain, gzip, zstd: whatever libarchive reads) unpacked safely: every
// entry is created relative to an open root directory with openat2(RESOLVE_IN_ROOT), so
// neither "..", absolute names nor symlinks planted by earlier entries can write outside
// it. libarchive only parses; we create the files, which is what makes this safe.
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace loom::runtime {

// "sha256:<64 hex>" of a file's or a string's bytes.
absl::StatusOr<std::string> Sha256File(const std::string& path);
std::string Sha256String(std::string_view data);
// True for "sha256:" followed by 64 lowercase hex digits.
bool IsSha256Digest(std::string_view digest);

// The clean entry names of an archive, in order (for detecting OCI layouts).
absl::StatusOr<std::vector<std::string>> ListArchive(const std::string& archive_path);

// Unpacks `archive_path` into the existing directory `root_dir`. With `whiteouts` (OCI
// and docker layers), `.wh.NAME` deletes NAME and `.wh..wh..opq` empties its directory
// of what lower layers put there; they apply before the layer's other entries, since the
// spec lets whiteouts hide only lower layers. Ownership, modes and times are kept.
absl::Status ExtractArchive(const std::string& archive_path, const std::string& root_dir,
                            bool whiteouts);

}  // namespace loom::runtime
