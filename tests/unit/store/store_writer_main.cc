// Test helper for the kill -9 test: opens the embedded store under argv[1] and
// puts /k<i> = value-<i> for i in [0, argv[2]), printing "acked k<i>" as soon as
// each Put has returned, then waits to be killed.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "agent/store/embedded_store.h"
#include "common/strings.h"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: store_writer STATE_DIR COUNT\n");
    return 2;
  }
  auto store = loom::store::OpenEmbeddedStore(argv[1]);
  if (!store.ok()) {
    std::fprintf(stderr, "store_writer: %s\n", std::string(store.status().message()).c_str());
    return 1;
  }
  const int count = std::atoi(argv[2]);
  for (int i = 0; i < count; ++i) {
    auto rev = (*store)->Put(loom::StrCat("/k", i), loom::StrCat("value-", i));
    if (!rev.ok()) {
      std::fprintf(stderr, "store_writer: %s\n", std::string(rev.status().message()).c_str());
      return 1;
    }
    // Unbuffered: the line is out before the next write starts.
    std::string line = loom::StrCat("acked k", i, " rev ", *rev, "\n");
    if (::write(STDOUT_FILENO, line.data(), line.size()) < 0) return 1;
  }
  while (true) ::pause();
}
