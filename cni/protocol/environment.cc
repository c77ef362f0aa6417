#include "cni/protocol/environment.h"

#include <array>
#include <vector>

#include "absl/strings/str_join.h"
#include "cni/protocol/error.h"
#include "cni/protocol/fields.h"
#include "common/status.h"
#include "common/strings.h"

namespace loom::cni {
namespace {

constexpr size_t kMaxInterfaceNameLength = 15;  // IFNAMSIZ - 1

struct CommandEntry {
  std::string_view name;
  Command command;
};
constexpr std::array<CommandEntry, 6> kCommands = {{{"ADD", Command::kAdd},
                                                    {"DEL", Command::kDel},
                                                    {"CHECK", Command::kCheck},
                                                    {"STATUS", Command::kStatus},
                                                    {"GC", Command::kGc},
                                                    {"VERSION", Command::kVersion}}};

std::string Lookup(const EnvMap& env, std::string_view name) {
  auto it = env.find(name);
  return it == env.end() ? std::string() : it->second;
}

}  // namespace

std::string_view CommandName(Command command) {
  for (const CommandEntry& e : kCommands) {
    if (e.command == command) return e.name;
  }
  return "UNKNOWN";
}

EnvMap EnvFromArray(const char* const* envp) {
  EnvMap env;
  for (; envp != nullptr && *envp != nullptr; ++envp) {
    std::string_view entry(*envp);
    size_t eq = entry.find('=');
    if (eq == std::string_view::npos) continue;
    env.emplace(std::string(entry.substr(0, eq)), std::string(entry.substr(eq + 1)));
  }
  return env;
}

absl::Status ValidateContainerId(std::string_view id) {
  if (id.empty()) return CniError(kErrInvalidEnvironment, "CNI_CONTAINERID: must not be empty");
  if (!IsIdentifier(id)) {
    return CniError(kErrInvalidEnvironment,
                    StrCat("CNI_CONTAINERID \"", id,
                           "\": must start with a letter or digit, then only letters, digits, "
                           "'_', '.' and '-'"));
  }
  return absl::OkStatus();
}

absl::Status ValidateInterfaceName(std::string_view name) {
  if (name.empty()) return CniError(kErrInvalidEnvironment, "CNI_IFNAME: must not be empty");
  if (name.size() > kMaxInterfaceNameLength) {
    return CniError(kErrInvalidEnvironment,
                    StrCat("CNI_IFNAME \"", name, "\": longer than ", kMaxInterfaceNameLength,
                           " characters"));
  }
  if (name == "." || name == "..") {
    return CniError(kErrInvalidEnvironment, StrCat("CNI_IFNAME \"", name, "\": not allowed"));
  }
  for (char c : name) {
    if (c == '/' || c == ':' || c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' ||
        c == '\f') {
      return CniError(kErrInvalidEnvironment,
                      StrCat("CNI_IFNAME \"", name, "\": must not contain '/', ':' or whitespace"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<Environment> ParseEnvironment(const EnvMap& env) {
  std::string command_text = Lookup(env, "CNI_COMMAND");
  if (command_text.empty()) {
    return CniError(kErrInvalidEnvironment, "required environment variables missing: CNI_COMMAND");
  }
  Environment out;
  bool known = false;
  for (const CommandEntry& e : kCommands) {
    if (e.name == command_text) {
      out.command = e.command;
      known = true;
    }
  }
  if (!known) {
    return CniError(kErrInvalidEnvironment, StrCat("CNI_COMMAND: unknown command \"",
                                                   command_text,
                                                   "\" (want ADD, DEL, CHECK, STATUS, GC or VERSION)"));
  }
  out.container_id = Lookup(env, "CNI_CONTAINERID");
  out.netns = Lookup(env, "CNI_NETNS");
  out.ifname = Lookup(env, "CNI_IFNAME");
  out.args = Lookup(env, "CNI_ARGS");
  out.path = Lookup(env, "CNI_PATH");

  const bool add_or_check = out.command == Command::kAdd || out.command == Command::kCheck;
  const bool attachment = add_or_check || out.command == Command::kDel;
  std::vector<std::string> missing;
  if (attachment && out.container_id.empty()) missing.push_back("CNI_CONTAINERID");
  if (add_or_check && out.netns.empty()) missing.push_back("CNI_NETNS");
  if (attachment && out.ifname.empty()) missing.push_back("CNI_IFNAME");
  if (out.command != Command::kVersion && out.path.empty()) missing.push_back("CNI_PATH");
  if (!missing.empty()) {
    return CniError(kErrInvalidEnvironment, StrCat("required environment variables missing: ",
                                                   absl::StrJoin(missing, ", ")));
  }
  if (attachment) {
    RETURN_IF_ERROR(ValidateContainerId(out.container_id));
    RETURN_IF_ERROR(ValidateInterfaceName(out.ifname));
  }
  return out;
}

}  // namespace loom::cni
