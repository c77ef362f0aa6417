// Status helpers: the macros later Abseil releases name RETURN_IF_ERROR and
// ASSIGN_OR_RETURN (Debian's Abseil 20220623 has neither), and errno conversion.
#pragma once

#include <cerrno>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace loom {

// Maps an errno value to the closest absl::StatusCode, with `context` and strerror
// in the message: "open /var/lib/loom/wal: Permission denied".
absl::Status ErrnoToStatus(int err, std::string_view context);

// Adds context in front of a status message, keeping its code.
absl::Status Annotate(const absl::Status& status, std::string_view context);

}  // namespace loom

#define LOOM_STATUS_CONCAT_INNER_(a, b) a##b
#define LOOM_STATUS_CONCAT_(a, b) LOOM_STATUS_CONCAT_INNER_(a, b)

#define RETURN_IF_ERROR(expr)                          \
  do {                                                 \
    ::absl::Status loom_status_ = (expr);              \
    if (!loom_status_.ok()) return loom_status_;       \
  } while (false)

#define ASSIGN_OR_RETURN(lhs, rexpr) \
  LOOM_ASSIGN_OR_RETURN_IMPL_(LOOM_STATUS_CONCAT_(loom_statusor_, __LINE__), lhs, rexpr)

#define LOOM_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, rexpr) \
  auto statusor = (rexpr);                                \
  if (!statusor.ok()) return std::move(statusor).status(); \
  lhs = std::move(statusor).value()
