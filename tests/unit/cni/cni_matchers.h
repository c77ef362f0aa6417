// Matches a Status (or StatusOr) carrying CNI error `code` with a message matching `m`.
#pragma once

#include <string>

#include "cni/protocol/error.h"
#include "gmock/gmock.h"
#include "tests/testing/status_matchers.h"

namespace loom::cni::testing {

MATCHER_P2(CniErrorIs, code, message_matcher, "carries CNI code and message") {
  const absl::Status& s = ::loom::testing::GetStatus(arg);
  *result_listener << "status is " << s;
  std::optional<int> got = CniCode(s);
  if (!got.has_value()) {
    *result_listener << " (no CNI code)";
    return false;
  }
  if (*got != code) return false;
  return ::testing::ExplainMatchResult(message_matcher, std::string(s.message()),
                                       result_listener);
}

}  // namespace loom::cni::testing
