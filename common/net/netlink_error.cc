#include "common/net/netlink_error.h"

#include <netlink/errno.h>

#include <cstdlib>
#include <cstring>
#include <string>

#include "common/status.h"
#include "common/strings.h"

namespace loom::net {

absl::Status NetlinkErrorToStatus(int nle_code, std::string_view context, int kernel_errno,
                                  std::string_view kernel_message) {
  int code = std::abs(nle_code);
  if (code == NLE_SUCCESS) return absl::OkStatus();
  // The kernel's own words are the most precise ("File exists", "No such device").
  std::string message = StrCat(
      context, ": ", kernel_errno != 0 ? std::strerror(kernel_errno) : nl_geterror(code));
  if (!kernel_message.empty()) StrAppend(&message, " (", kernel_message, ")");
  switch (code) {
    case NLE_EXIST:
      return absl::AlreadyExistsError(message);
    case NLE_OBJ_NOTFOUND:
    case NLE_NODEV:
    case NLE_NOADDR:
      return absl::NotFoundError(message);
    case NLE_PERM:
    case NLE_NOACCESS:
      return absl::PermissionDeniedError(message);
    case NLE_INVAL:
    case NLE_RANGE:
    case NLE_MISSING_ATTR:
    case NLE_ATTRSIZE:
    case NLE_MSGSIZE:
      return absl::InvalidArgumentError(message);
    case NLE_OPNOTSUPP:
    case NLE_AF_NOSUPPORT:
    case NLE_MSGTYPE_NOSUPPORT:
      return absl::UnimplementedError(message);
    case NLE_BUSY:
    case NLE_AGAIN:
    case NLE_INTR:
    case NLE_DUMP_INTR:
      return absl::UnavailableError(message);
    case NLE_NOMEM:
      return absl::ResourceExhaustedError(message);
    case NLE_BAD_SOCK:
      // From the kernel, EBADF names a bad fd in the request (a netns fd), not our socket.
      if (kernel_errno != 0) return absl::InvalidArgumentError(message);
      return absl::FailedPreconditionError(message);
    default:
      if (kernel_errno != 0) {
        return absl::Status(ErrnoToStatus(kernel_errno, "").code(), message);
      }
      return absl::InternalError(message);
  }
}

}  // namespace loom::net
