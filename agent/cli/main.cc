// loomctl: the Loom command line (see agent/cli/cli.h).
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "agent/cli/cli.h"

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  return loom::cli::RunCli(args, std::getenv("LOOM_SOCKET"), stdout, stderr);
}
