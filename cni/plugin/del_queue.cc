#include "cni/plugin/del_queue.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "common/json.h"
#include "common/status.h"
#include "common/strings.h"

namespace loom::cni {

absl::Status QueueDel(const std::string& dir, const std::string& container_id,
                      const std::string& ifname) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return absl::InternalError(StrCat("DEL queue ", dir, ": ", ec.message()));
  std::string lock_path = StrCat(dir, "/lock");
  int lock = open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lock < 0) return ErrnoToStatus(errno, lock_path);
  // Bounded wait (10 s, as Cilium) so a stuck holder cannot hang the runtime.
  bool locked = false;
  for (int i = 0; i < 1000 && !locked; ++i) {
    locked = flock(lock, LOCK_EX | LOCK_NB) == 0;
    if (!locked) usleep(10000);
  }
  absl::Status status = [&]() -> absl::Status {
    if (!locked) return absl::UnavailableError(StrCat("DEL queue ", dir, ": lock timeout"));
    int entries = 0;
    for (const fs::directory_entry& e : fs::directory_iterator(dir, ec)) {
      if (e.path().extension() == ".json") ++entries;
    }
    std::string path = StrCat(dir, "/", container_id, ".", ifname, ".json");
    if (entries >= kDelQueueLimit && !fs::exists(path)) {
      return absl::ResourceExhaustedError(
          StrCat("DEL queue ", dir, " is full (", kDelQueueLimit, " entries)"));
    }
    std::string tmp = path + ".tmp";
    {
      std::ofstream out(tmp, std::ios::trunc);
      out << Json{{"containerID", container_id}, {"ifname", ifname}}.dump() << "\n";
      out.flush();
      if (!out) return absl::InternalError(StrCat("cannot write ", tmp));
    }
    if (rename(tmp.c_str(), path.c_str()) != 0) return ErrnoToStatus(errno, StrCat("rename ", tmp));
    return absl::OkStatus();
  }();
  if (locked) flock(lock, LOCK_UN);
  close(lock);
  return status;
}

}  // namespace loom::cni
