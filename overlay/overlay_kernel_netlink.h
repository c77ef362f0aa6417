// OverlayKernel over common/net's Netlink, in the namespace current when Create() ran.
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "overlay/overlay_kernel.h"

namespace loom::overlay {

absl::StatusOr<std::unique_ptr<OverlayKernel>> NewNetlinkOverlayKernel();

}  // namespace loom::overlay
