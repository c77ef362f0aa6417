#include "cni/protocol/error.h"

#include <optional>

#include "absl/strings/cord.h"
#include "absl/strings/numbers.h"
#include "common/strings.h"

namespace loom::cni {
namespace {

constexpr char kCodePayload[] = "loom.dev/cni-code";
constexpr char kDetailsPayload[] = "loom.dev/cni-details";

absl::StatusCode StatusCodeFor(int code) {
  switch (code) {
    case kErrIncompatibleVersion:
      return absl::StatusCode::kFailedPrecondition;
    case kErrUnsupportedField:
      return absl::StatusCode::kUnimplemented;
    case kErrUnknownContainer:
      return absl::StatusCode::kNotFound;
    case kErrInvalidEnvironment:
    case kErrDecode:
    case kErrInvalidConfig:
      return absl::StatusCode::kInvalidArgument;
    case kErrTryAgainLater:
    case kErrNotAvailable:
    case kErrNotAvailableDegraded:
      return absl::StatusCode::kUnavailable;
    case kErrInternal:
      return absl::StatusCode::kInternal;
    default:
      return absl::StatusCode::kUnknown;
  }
}

}  // namespace

Json ErrorToJson(const Error& error, std::string_view cni_version) {
  Json out = {{"cniVersion", std::string(cni_version)}, {"code", error.code}, {"msg", error.msg}};
  if (!error.details.empty()) out["details"] = error.details;
  return out;
}

absl::Status CniError(int code, std::string_view msg, std::string_view details) {
  absl::Status status(StatusCodeFor(code), ToAbsl(msg));
  status.SetPayload(kCodePayload, absl::Cord(absl::StrCat(code)));
  if (!details.empty()) status.SetPayload(kDetailsPayload, absl::Cord(ToAbsl(details)));
  return status;
}

std::optional<int> CniCode(const absl::Status& status) {
  absl::optional<absl::Cord> payload = status.GetPayload(kCodePayload);
  int code = 0;
  if (!payload.has_value() || !absl::SimpleAtoi(std::string(*payload), &code)) {
    return std::nullopt;
  }
  return code;
}

Error ErrorFromStatus(const absl::Status& status) {
  Error error;
  error.msg = std::string(status.message());
  if (std::optional<int> code = CniCode(status); code.has_value()) {
    error.code = *code;
    if (auto details = status.GetPayload(kDetailsPayload); details.has_value()) {
      error.details = std::string(*details);
    }
    return error;
  }
  switch (status.code()) {
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
      error.code = kErrTryAgainLater;
      break;
    default:
      error.code = kErrInternal;
  }
  return error;
}

}  // namespace loom::cni
