// The Loom version every binary reports (--version, /v1/status, loom_build_info).
#pragma once

#include <string_view>

namespace loom {

inline constexpr std::string_view kVersion = "0.1.0-dev";

}  // namespace loom
