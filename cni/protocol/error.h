// CNI errors: the spec's well-known codes, the {cniVersion, code, msg, details} JSON
// shape, and the bridge to absl::Status (the CNI code rides as a payload, so fallible
// functions keep returning absl::Status and the skel recovers the exact code).
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "common/json.h"

namespace loom::cni {

// Well-known error codes (SPEC.md "Error" section); 100+ are the plugin's own.
inline constexpr int kErrIncompatibleVersion = 1;
inline constexpr int kErrUnsupportedField = 2;
inline constexpr int kErrUnknownContainer = 3;
inline constexpr int kErrInvalidEnvironment = 4;
inline constexpr int kErrIo = 5;
inline constexpr int kErrDecode = 6;
inline constexpr int kErrInvalidConfig = 7;
inline constexpr int kErrTryAgainLater = 11;
inline constexpr int kErrNotAvailable = 50;          // STATUS only
inline constexpr int kErrNotAvailableDegraded = 51;  // STATUS only
inline constexpr int kErrPluginBase = 100;
inline constexpr int kErrInternal = 999;  // what libcni uses for internal errors

struct Error {
  int code = kErrInternal;
  std::string msg;
  std::string details;  // optional long message; omitted from JSON when empty

  bool operator==(const Error&) const = default;
};

// {"cniVersion": v, "code": n, "msg": "...", "details": "..."} (details only when set).
Json ErrorToJson(const Error& error, std::string_view cni_version);

// A Status that carries `code` (and `details`) for ErrorFromStatus.
absl::Status CniError(int code, std::string_view msg, std::string_view details = "");

// The CNI code a status carries, if it was made by CniError.
std::optional<int> CniCode(const absl::Status& status);

// Maps any non-OK status to a CNI error: the carried code if there is one; else
// Unavailable and DeadlineExceeded become 11 (try again later), anything else 999.
Error ErrorFromStatus(const absl::Status& status);

}  // namespace loom::cni
