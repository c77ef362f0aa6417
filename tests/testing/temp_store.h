// An embedded store in a fresh temporary folder, for unit tests: Open() makes both;
// the destructor closes the store, then removes the folder. As a fixture member,
// declare it before whatever uses the store, so that goes first.
#pragma once

#include <stdlib.h>

#include <cerrno>
#include <filesystem>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "agent/store/store.h"
#include "common/status.h"

namespace loom::testing {

class TempStore {
 public:
  TempStore() = default;
  ~TempStore() {
    store_.reset();
    std::error_code ec;
    if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
  }
  TempStore(const TempStore&) = delete;
  TempStore& operator=(const TempStore&) = delete;

  // A folder /tmp/<name>-XXXXXX with an embedded store in it.
  absl::Status Open(const std::string& name) {
    std::string tmpl = "/tmp/" + name + "-XXXXXX";
    if (mkdtemp(tmpl.data()) == nullptr) return ErrnoToStatus(errno, "mkdtemp");
    dir_ = tmpl;
    ASSIGN_OR_RETURN(store_, store::OpenStore("embedded", dir_));
    return absl::OkStatus();
  }

  store::Store* get() const { return store_.get(); }
  store::Store* operator->() const { return store_.get(); }
  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
  std::unique_ptr<store::Store> store_;
};

}  // namespace loom::testing
