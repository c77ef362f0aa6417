#include "cni/protocol/version.h"

#include <algorithm>
#include <optional>

#include "absl/strings/numbers.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "cni/protocol/error.h"
#include "common/strings.h"

namespace loom::cni {
namespace {

std::string SupportedText() {
  std::vector<std::string> supported;
  for (const SpecVersion& v : SupportedVersions()) supported.push_back(v.ToString());
  return absl::StrJoin(supported, ", ");
}

}  // namespace

std::string SpecVersion::ToString() const { return absl::StrCat(major, ".", minor, ".", patch); }

const std::vector<SpecVersion>& SupportedVersions() {
  static const std::vector<SpecVersion> kVersions = {kVersion031, kVersion040, kVersion100,
                                                     kVersion110};
  return kVersions;
}

bool IsSupported(const SpecVersion& version) {
  const auto& all = SupportedVersions();
  return std::find(all.begin(), all.end(), version) != all.end();
}

absl::StatusOr<SpecVersion> ParseVersion(std::string_view text) {
  std::vector<absl::string_view> parts = absl::StrSplit(ToAbsl(text), '.');
  if (text.empty() || parts.size() > 3) {
    return absl::InvalidArgumentError(StrCat("invalid version \"", text, "\": want X.Y.Z"));
  }
  int values[3] = {0, 0, 0};
  for (size_t i = 0; i < parts.size(); ++i) {
    bool digits = !parts[i].empty() && parts[i].size() <= 9 &&
                  std::all_of(parts[i].begin(), parts[i].end(),
                              [](char c) { return c >= '0' && c <= '9'; });
    if (!digits || !absl::SimpleAtoi(parts[i], &values[i])) {
      return absl::InvalidArgumentError(
          StrCat("invalid version \"", text, "\": \"", ToStd(parts[i]), "\" is not a number"));
    }
  }
  return SpecVersion{values[0], values[1], values[2]};
}

Json VersionInfoJson() {
  Json versions = Json::array();
  for (const SpecVersion& v : SupportedVersions()) versions.push_back(v.ToString());
  return {{"cniVersion", kLatestVersion.ToString()}, {"supportedVersions", versions}};
}

absl::StatusOr<SpecVersion> ConfigVersion(const Json& conf) {
  if (!conf.is_object()) return CniError(kErrDecode, "network configuration must be a JSON object");
  auto it = conf.find("cniVersion");
  if (it != conf.end() && !it->is_null() && !it->is_string()) {
    return CniError(kErrInvalidConfig, "cniVersion: must be a string");
  }
  std::string text = it == conf.end() || it->is_null() ? "" : it->get<std::string>();
  absl::StatusOr<SpecVersion> v = ParseVersion(text);
  if (!v.ok() || !IsSupported(*v)) {
    return CniError(kErrIncompatibleVersion,
                    StrCat("incompatible CNI versions: cniVersion \"", text, "\" is not supported"),
                    StrCat("supported versions: ", SupportedText()));
  }
  return *v;
}

absl::StatusOr<SpecVersion> PickConfigVersion(const Json& conf_list) {
  if (!conf_list.is_object()) {
    return CniError(kErrDecode, "network configuration list must be a JSON object");
  }
  if (auto it = conf_list.find("cniVersions"); it != conf_list.end() && !it->is_null()) {
    if (!it->is_array()) {
      return CniError(kErrInvalidConfig, "cniVersions: must be a list of version strings");
    }
    std::optional<SpecVersion> best;
    for (size_t i = 0; i < it->size(); ++i) {
      const Json& item = (*it)[i];
      if (!item.is_string()) {
        return CniError(kErrInvalidConfig, StrCat("cniVersions[", i, "]: must be a string"));
      }
      // Versions Loom cannot parse or does not speak are skipped, as libcni skips them.
      absl::StatusOr<SpecVersion> v = ParseVersion(item.get<std::string>());
      if (v.ok() && IsSupported(*v) && (!best.has_value() || *v > *best)) best = *v;
    }
    if (best.has_value()) return *best;
    if (!it->empty()) {
      return CniError(kErrIncompatibleVersion,
                      StrCat("incompatible CNI versions: no version in cniVersions ", it->dump(),
                             " is supported"),
                      StrCat("supported versions: ", SupportedText()));
    }
  }
  return ConfigVersion(conf_list);
}

}  // namespace loom::cni
