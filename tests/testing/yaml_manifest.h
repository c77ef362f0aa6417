// The first document of a YAML text, for tests that write manifests inline: a parse
// error is a test failure (and the result null).
#pragma once

#include <string_view>

#include "common/json.h"
#include "gtest/gtest.h"

namespace loom::testing {

inline Json FirstYamlDocument(std::string_view text) {
  absl::StatusOr<std::vector<Json>> docs = ParseYamlDocuments(text);
  EXPECT_TRUE(docs.ok()) << docs.status();
  return docs.ok() && !docs->empty() ? (*docs)[0] : Json();
}

}  // namespace loom::testing
