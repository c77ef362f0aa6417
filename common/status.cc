#include "common/status.h"

#include <cstring>
#include <string>

#include "common/strings.h"

namespace loom {

absl::Status ErrnoToStatus(int err, std::string_view context) {
  std::string message = StrCat(context, ": ", std::strerror(err));
  switch (err) {
    case ENOENT:
    case ESRCH:
    case ENODEV:
    case ENXIO:
      return absl::NotFoundError(message);
    case EEXIST:
    case EADDRINUSE:
      return absl::AlreadyExistsError(message);
    case EACCES:
    case EPERM:
    case EROFS:
      return absl::PermissionDeniedError(message);
    case EINVAL:
    case ENAMETOOLONG:
    case ERANGE:
      return absl::InvalidArgumentError(message);
    case EAGAIN:
    case EBUSY:
    case ECONNREFUSED:
    case ECONNRESET:
    case EHOSTUNREACH:
    case ENETUNREACH:
      return absl::UnavailableError(message);
    case ETIMEDOUT:
      return absl::DeadlineExceededError(message);
    case ENOSPC:
    case ENOMEM:
    case EMFILE:
    case ENFILE:
      return absl::ResourceExhaustedError(message);
    case EOPNOTSUPP:
    case ENOSYS:
      return absl::UnimplementedError(message);
    default:
      return absl::InternalError(message);
  }
}

absl::Status Annotate(const absl::Status& status, std::string_view context) {
  if (status.ok()) return status;
  return absl::Status(status.code(), StrCat(context, ": ", status.message()));
}

}  // namespace loom
