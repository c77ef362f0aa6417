// The one place where libnl's NLE_* error codes become absl::Status.
#pragma once

#include <string_view>

#include "absl/status/status.h"

namespace loom::net {

// `nle_code` is a libnl error (NLE_EXIST or -NLE_EXIST; 0 is OK). `kernel_errno` is the
// errno the kernel put in its NLMSG_ERROR (0 when the error was local to libnl), and
// `kernel_message` its extended-ack text, if any. The message names the operation:
//   "add route 10.244.2.0/24 via 10.244.2.0 dev loom.1: File exists".
// Codes: NLE_EXIST -> AlreadyExists; NLE_OBJ_NOTFOUND, NLE_NODEV, NLE_NOADDR -> NotFound;
// NLE_PERM, NLE_NOACCESS -> PermissionDenied; NLE_INVAL, NLE_RANGE, NLE_MISSING_ATTR,
// NLE_ATTRSIZE, NLE_MSGSIZE -> InvalidArgument; NLE_OPNOTSUPP, NLE_AF_NOSUPPORT,
// NLE_MSGTYPE_NOSUPPORT -> Unimplemented; NLE_BUSY, NLE_AGAIN, NLE_INTR, NLE_DUMP_INTR ->
// Unavailable; NLE_NOMEM -> ResourceExhausted; NLE_BAD_SOCK -> FailedPrecondition (from
// libnl) or InvalidArgument (EBADF from the kernel: a bad fd in the request);
// anything else (libnl's NLE_FAILURE covers many errnos) -> by the kernel errno as
// loom::ErrnoToStatus maps it, else Internal.
absl::Status NetlinkErrorToStatus(int nle_code, std::string_view context, int kernel_errno = 0,
                                  std::string_view kernel_message = {});

}  // namespace loom::net
