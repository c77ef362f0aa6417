#include "cni/protocol/skel.h"

#include "cni/protocol/error.h"
#include "common/status.h"
#include "common/strings.h"

namespace loom::cni {
namespace {

// The lowest spec version that defines each verb (libcni's skel enforces the same).
SpecVersion MinimumVersion(Command command) {
  switch (command) {
    case Command::kCheck:
      return kVersion040;
    case Command::kStatus:
    case Command::kGc:
      return kVersion110;
    default:
      return kVersion031;
  }
}

absl::StatusOr<std::string> Dispatch(const Environment& env, std::string_view stdin_text,
                                     const Handlers& handlers, std::string& cni_version) {
  if (env.command == Command::kVersion) return VersionInfoJson().dump(4) + "\n";

  ASSIGN_OR_RETURN(Json json, DecodeConfigJson(stdin_text));
  ASSIGN_OR_RETURN(SpecVersion version, ConfigVersion(json));
  cni_version = json.at("cniVersion").get<std::string>();
  if (version < MinimumVersion(env.command)) {
    return CniError(kErrIncompatibleVersion,
                    StrCat("config version does not allow ", CommandName(env.command),
                           ": cniVersion \"", cni_version, "\" is below ",
                           MinimumVersion(env.command).ToString()));
  }
  Request request;
  request.env = env;
  ASSIGN_OR_RETURN(request.conf, NetConfFromJson(json));
  const bool attachment = env.command == Command::kAdd || env.command == Command::kDel ||
                          env.command == Command::kCheck;
  if (attachment) {
    ASSIGN_OR_RETURN(request.args, ParseCniArgs(env.args));
  }

  switch (env.command) {
    case Command::kAdd: {
      if (!handlers.add) return CniError(kErrInternal, "the plugin has no ADD handler");
      ASSIGN_OR_RETURN(Result result, handlers.add(request));
      return ResultText(result, request.conf.version);
    }
    case Command::kDel:
      if (handlers.del) RETURN_IF_ERROR(handlers.del(request));
      return std::string();
    case Command::kCheck:
      if (handlers.check) RETURN_IF_ERROR(handlers.check(request));
      return std::string();
    case Command::kStatus:
      if (handlers.status) {
        absl::Status status = handlers.status(request);
        if (!status.ok() && !CniCode(status).has_value() &&
            status.code() == absl::StatusCode::kUnavailable) {
          return CniError(kErrNotAvailable, ToStd(status.message()));
        }
        RETURN_IF_ERROR(status);
      }
      return std::string();
    case Command::kGc:
      if (handlers.gc) RETURN_IF_ERROR(handlers.gc(request));
      return std::string();
    case Command::kVersion:
      break;
  }
  return std::string();
}

}  // namespace

std::string ErrorText(const Error& error, std::string_view cni_version) {
  return ErrorToJson(error, cni_version).dump(4) + "\n";
}

Output Run(const EnvMap& env_map, std::string_view stdin_text, const Handlers& handlers) {
  // Until the config names its version, errors speak the latest one.
  std::string cni_version = kLatestVersion.ToString();
  absl::StatusOr<std::string> text = [&]() -> absl::StatusOr<std::string> {
    ASSIGN_OR_RETURN(Environment env, ParseEnvironment(env_map));
    return Dispatch(env, stdin_text, handlers, cni_version);
  }();
  if (text.ok()) return Output{*std::move(text), 0};
  return Output{ErrorText(ErrorFromStatus(text.status()), cni_version), 1};
}

}  // namespace loom::cni
