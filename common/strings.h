// Debian's Abseil is built with its own absl::string_view (not std::string_view),
// so absl::StrCat and friends do not take std::string_view. Our APIs use the std
// types; these helpers bridge the two.
#pragma once

#include <string>
#include <string_view>
#include <type_traits>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace loom {

inline absl::string_view ToAbsl(std::string_view v) { return {v.data(), v.size()}; }
inline std::string_view ToStd(absl::string_view v) { return {v.data(), v.size()}; }

namespace strings_internal {
template <typename T>
decltype(auto) StrArg(const T& v) {
  if constexpr (std::is_same_v<T, std::string_view>) {
    return ToAbsl(v);
  } else {
    return (v);
  }
}
}  // namespace strings_internal

// absl::StrCat that also takes std::string_view.
template <typename... Args>
std::string StrCat(const Args&... args) {
  return absl::StrCat(strings_internal::StrArg(args)...);
}

template <typename... Args>
void StrAppend(std::string* out, const Args&... args) {
  absl::StrAppend(out, strings_internal::StrArg(args)...);
}

}  // namespace loom
