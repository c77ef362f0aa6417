// loom-shim BUNDLE: the per-container shim (see runtime/shim.h). The supervisor passes
// the start report pipe as fd 3.
#include <cstdio>

#include "runtime/shim.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: loom-shim BUNDLE (started by the Loom supervisor)\n");
    return 2;
  }
  return loom::runtime::RunShim(argv[1], loom::runtime::kShimReportFd);
}
