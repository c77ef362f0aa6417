#include "runtime/container.h"

#include <cctype>

#include "absl/strings/str_split.h"
#include "common/strings.h"
#include "runtime/fs_util.h"

namespace loom::runtime {
namespace {

bool IsNameChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-';
}

absl::Status ValidateName(std::string_view what, std::string_view name, size_t max) {
  if (name.empty() || name.size() > max || !std::isalnum(static_cast<unsigned char>(name[0]))) {
    return absl::InvalidArgumentError(
        StrCat(what, " '", name, "' must be 1-", max,
               " characters of [A-Za-z0-9_.-] starting with a letter or digit"));
  }
  for (char c : name) {
    if (!IsNameChar(c)) {
      return absl::InvalidArgumentError(
          StrCat(what, " '", name, "' has an invalid character '", std::string(1, c), "'"));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateContainerPath(std::string_view what, std::string_view path) {
  if (path.empty() || path[0] != '/') {
    return absl::InvalidArgumentError(StrCat(what, " '", path, "' must be an absolute path"));
  }
  absl::StatusOr<std::string> clean = CleanRelativePath(path);
  if (!clean.ok()) return absl::InvalidArgumentError(StrCat(what, ": ", clean.status().message()));
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateContainerId(std::string_view id) { return ValidateName("container id", id, 64); }
absl::Status ValidateVolumeName(std::string_view name) { return ValidateName("volume name", name, 128); }

std::string_view ContainerStateName(ContainerState state) {
  switch (state) {
    case ContainerState::kRunning:
      return "running";
    case ContainerState::kExited:
      return "exited";
    case ContainerState::kLost:
      return "lost";
  }
  return "unknown";
}

absl::StatusOr<MountSpec> ParseMountSpec(std::string_view text) {
  std::vector<std::string> parts = absl::StrSplit(ToAbsl(text), ':');
  if (parts.size() < 2 || parts.size() > 3) {
    return absl::InvalidArgumentError(
        StrCat("mount '", text, "': expected SOURCE:DESTINATION[:ro|:rw]"));
  }
  MountSpec m;
  m.source = parts[0];
  m.destination = parts[1];
  if (parts.size() == 3) {
    if (parts[2] == "ro") {
      m.read_only = true;
    } else if (parts[2] != "rw") {
      return absl::InvalidArgumentError(
          StrCat("mount '", text, "': option '", parts[2], "' is not ro or rw"));
    }
  }
  m.type = !m.source.empty() && m.source[0] == '/' ? MountSpec::Type::kBind : MountSpec::Type::kVolume;
  if (m.type == MountSpec::Type::kVolume) {
    absl::Status s = ValidateVolumeName(m.source);
    if (!s.ok()) return absl::InvalidArgumentError(StrCat("mount '", text, "': ", s.message()));
  }
  absl::Status s = ValidateContainerPath("mount destination", m.destination);
  if (!s.ok()) return absl::InvalidArgumentError(StrCat("mount '", text, "': ", s.message()));
  return m;
}

absl::Status ValidateContainerSpec(const ContainerSpec& spec) {
  absl::Status s = ValidateContainerId(spec.id);
  if (!s.ok()) return s;
  if (spec.image.empty()) return absl::InvalidArgumentError("image is required");
  for (const std::string& e : spec.env) {
    if (e.find('=') == std::string::npos || e[0] == '=') {
      return absl::InvalidArgumentError(StrCat("env '", e, "' is not NAME=value"));
    }
  }
  if (!spec.workdir.empty()) {
    if (s = ValidateContainerPath("workdir", spec.workdir); !s.ok()) return s;
  }
  if (spec.hostname.size() > 64) {
    return absl::InvalidArgumentError(StrCat("hostname '", spec.hostname, "' is over 64 characters"));
  }
  for (const MountSpec& m : spec.mounts) {
    if (m.type == MountSpec::Type::kBind) {
      if (s = ValidateContainerPath("bind mount source", m.source); !s.ok()) return s;
    } else if (s = ValidateVolumeName(m.source); !s.ok()) {
      return s;
    }
    if (s = ValidateContainerPath("mount destination", m.destination); !s.ok()) return s;
  }
  if (spec.cpus < 0) return absl::InvalidArgumentError("cpus must not be negative");
  if (spec.memory_bytes < 0) return absl::InvalidArgumentError("memory must not be negative");
  if (spec.memory_bytes > 0 && spec.memory_bytes < (4 << 20)) {
    return absl::InvalidArgumentError("memory limit must be at least 4 MiB");
  }
  if (spec.pids_limit < 0) return absl::InvalidArgumentError("pids limit must not be negative");
  if (spec.log_max_bytes < 4096) return absl::InvalidArgumentError("log_max_bytes must be at least 4096");
  for (const std::string* p : {&spec.netns_path, &spec.stdout_log, &spec.stderr_log}) {
    if (!p->empty() && (*p)[0] != '/') {
      return absl::InvalidArgumentError(StrCat("path '", *p, "' must be absolute"));
    }
  }
  return absl::OkStatus();
}

}  // namespace loom::runtime
