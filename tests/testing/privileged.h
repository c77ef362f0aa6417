// Privileged tests need root (namespaces, netlink, BPF). Outside CI they skip when
// they lack it; under CI=true they fail instead, so a CI run never passes by skipping.
#pragma once

#include <cstdlib>
#include <string>
#include <unistd.h>

#include "gtest/gtest.h"

namespace loom::testing {

inline bool InCi() {
  const char* ci = std::getenv("CI");
  return ci != nullptr && std::string(ci) == "true";
}

}  // namespace loom::testing

// Use at the top of a test body or SetUp().
#define LOOM_REQUIRE_ROOT()                                                  \
  do {                                                                       \
    if (geteuid() != 0) {                                                    \
      if (::loom::testing::InCi()) FAIL() << "this test needs root (CI=true)"; \
      GTEST_SKIP() << "this test needs root";                               \
    }                                                                        \
  } while (false)

// For a requirement other than root (a binary, a kernel feature): `what` names it.
#define LOOM_REQUIRE(cond, what)                                             \
  do {                                                                       \
    if (!(cond)) {                                                           \
      if (::loom::testing::InCi()) FAIL() << "missing under CI=true: " << what; \
      GTEST_SKIP() << "missing: " << what;                                  \
    }                                                                        \
  } while (false)
