// CNI spec versions: parsing and comparing "X.Y.Z", the versions Loom speaks, the
// VERSION answer, and picking a version from a conflist's `cniVersions` (runtime side).
#pragma once

#include <compare>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "common/json.h"

namespace loom::cni {

struct SpecVersion {
  int major = 0;
  int minor = 0;
  int patch = 0;

  auto operator<=>(const SpecVersion&) const = default;
  std::string ToString() const;  // "1.1.0"
};

inline constexpr SpecVersion kVersion031{0, 3, 1};
inline constexpr SpecVersion kVersion040{0, 4, 0};
inline constexpr SpecVersion kVersion100{1, 0, 0};
inline constexpr SpecVersion kVersion110{1, 1, 0};
inline constexpr SpecVersion kLatestVersion = kVersion110;

// The spec versions Loom speaks, oldest first.
const std::vector<SpecVersion>& SupportedVersions();
bool IsSupported(const SpecVersion& version);

// "1", "1.1" or "1.1.0" (missing parts are 0, as libcni's ParseVersion reads them);
// digits only. Errors are InvalidArgument naming the text.
absl::StatusOr<SpecVersion> ParseVersion(std::string_view text);

// The VERSION answer: {"cniVersion": "1.1.0", "supportedVersions": [...]}.
Json VersionInfoJson();

// Plugin side: the single `cniVersion` of the config it was given. Code 1 when it is
// absent (libcni reads that as 0.1.0), unparseable or not supported; code 7 when not a string.
absl::StatusOr<SpecVersion> ConfigVersion(const Json& conf);

// Runtime side: the version to run a conflist with. With `cniVersions` present, the
// highest listed version Loom supports (code 1 if none); else `cniVersion` (code 1 if
// unsupported, code 7 if not a string).
absl::StatusOr<SpecVersion> PickConfigVersion(const Json& conf_list);

}  // namespace loom::cni
