// The plugin's verb dispatcher, as libcni's skel: environment, config, version
// checks, VERSION, then the handler; results and errors rendered for stdout. Pure:
// the caller passes the environment and stdin and writes out what it gets back.
#pragma once

#include <functional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "cni/protocol/cni_args.h"
#include "cni/protocol/environment.h"
#include "cni/protocol/error.h"
#include "cni/protocol/net_conf.h"
#include "cni/protocol/result.h"

namespace loom::cni {

// What a handler gets: the validated environment, the parsed CNI_ARGS (ADD, DEL and
// CHECK only; empty otherwise) and the parsed config.
struct Request {
  Environment env;
  CniArgs args;
  NetConf conf;
};

// A handler's error may carry a CNI code (CniError); otherwise ErrorFromStatus maps it,
// except that STATUS maps Unavailable to 50 (not available). A missing handler
// succeeds with no output, as libcni's skel does, except ADD, which must produce a
// result (999).
struct Handlers {
  std::function<absl::StatusOr<Result>(const Request&)> add;
  std::function<absl::Status(const Request&)> del;
  std::function<absl::Status(const Request&)> check;
  std::function<absl::Status(const Request&)> status;
  std::function<absl::Status(const Request&)> gc;
};

struct Output {
  std::string stdout_text;  // the result, the VERSION answer, or the error JSON
  int exit_code = 0;        // 0, or 1 with an error on stdout
};

// Order of checks: environment (4), config JSON (6), cniVersion (1), the verb's
// minimum version (CHECK 0.4.0, STATUS and GC 1.1.0: 1), config fields (7),
// CNI_ARGS (4), then the handler. VERSION ignores stdin. ADD prints its result in
// the config's cniVersion; errors carry the config's cniVersion when it is known.
Output Run(const EnvMap& env, std::string_view stdin_text, const Handlers& handlers);

// The error JSON for stdout (with a trailing newline).
std::string ErrorText(const Error& error, std::string_view cni_version);

}  // namespace loom::cni
