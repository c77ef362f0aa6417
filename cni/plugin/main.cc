// loom: the CNI plugin. Reads the environment and stdin, runs the verb, writes the
// result or the error JSON to stdout (logs go to stderr, which libcni keeps as logs).
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <iterator>
#include <string>

#include "cni/plugin/plugin.h"
#include "cni/protocol/skel.h"
#include "common/log.h"

extern char** environ;

int main() {
  signal(SIGPIPE, SIG_IGN);
  loom::SetLogLevel(loom::LogLevel::kWarning);
  loom::cni::EnvMap env = loom::cni::EnvFromArray(environ);
  std::string input;
  if (auto it = env.find("CNI_COMMAND"); it == env.end() || it->second != "VERSION") {
    input.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  }
  loom::cni::Output out = loom::cni::Run(env, input, loom::cni::LoomHandlers(env));
  std::fwrite(out.stdout_text.data(), 1, out.stdout_text.size(), stdout);
  std::fflush(stdout);
  return out.exit_code;
}
