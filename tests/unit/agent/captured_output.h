// Captures what a loomctl command prints to its out and err streams.
#pragma once

#include <cstdio>
#include <string>

namespace loom::cli {

struct Captured {
  Captured() : out(tmpfile()), err(tmpfile()) {}
  ~Captured() {
    fclose(out);
    fclose(err);
  }
  Captured(const Captured&) = delete;
  Captured& operator=(const Captured&) = delete;
  static std::string Read(FILE* f) {
    std::string s;
    rewind(f);
    char buf[4096];
    for (size_t n; (n = fread(buf, 1, sizeof buf, f)) > 0;) s.append(buf, n);
    return s;
  }
  std::string Out() { return Read(out); }
  std::string Err() { return Read(err); }
  FILE* out;
  FILE* err;
};

}  // namespace loom::cli
