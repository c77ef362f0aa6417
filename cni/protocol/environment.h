// The CNI_* environment a runtime execs a plugin with, validated per verb as the spec
// and libcni's skel do. The environment comes in as a map so that tests inject it.
#pragma once

#include <map>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace loom::cni {

enum class Command { kAdd, kDel, kCheck, kStatus, kGc, kVersion };

std::string_view CommandName(Command command);  // "ADD", ...

using EnvMap = std::map<std::string, std::string, std::less<>>;

// Builds an EnvMap from a NULL-terminated `environ`-style array (the plugin's main).
EnvMap EnvFromArray(const char* const* envp);

struct Environment {
  Command command = Command::kVersion;
  std::string container_id;  // CNI_CONTAINERID
  std::string netns;         // CNI_NETNS (may be empty for DEL)
  std::string ifname;        // CNI_IFNAME
  std::string args;          // CNI_ARGS, raw; see cni_args.h
  std::string path;          // CNI_PATH, raw (':'-separated)
};

// Reads and validates the environment. Required (an empty value counts as missing):
//   ADD, CHECK: CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME, CNI_PATH
//   DEL:        CNI_CONTAINERID, CNI_IFNAME, CNI_PATH
//   GC, STATUS: CNI_PATH
//   VERSION:    nothing but CNI_COMMAND
// Container ID and interface name are checked where required. Errors are code 4
// naming every missing variable, or the bad variable and why.
absl::StatusOr<Environment> ParseEnvironment(const EnvMap& env);

// Starts with [A-Za-z0-9], then [A-Za-z0-9_.-]. Code 4 naming CNI_CONTAINERID.
absl::Status ValidateContainerId(std::string_view id);
// Non-empty, under 16 characters, no '/', ':' or whitespace, not "." or "..".
// Code 4 naming CNI_IFNAME.
absl::Status ValidateInterfaceName(std::string_view name);

}  // namespace loom::cni
