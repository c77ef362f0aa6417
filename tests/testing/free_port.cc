#include "tests/testing/free_port.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/status.h"

namespace loom::testing {

absl::StatusOr<int> PickFreePort(const std::string& ip) {
  for (int attempt = 0; attempt < 20; ++attempt) {
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    inet_pton(AF_INET, ip.c_str(), &sa.sin_addr);
    int tcp = socket(AF_INET, SOCK_STREAM, 0);
    if (tcp < 0) return ErrnoToStatus(errno, "socket");
    if (bind(tcp, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
      close(tcp);
      return ErrnoToStatus(errno, "bind " + ip);
    }
    socklen_t len = sizeof sa;
    getsockname(tcp, reinterpret_cast<sockaddr*>(&sa), &len);
    int udp = socket(AF_INET, SOCK_DGRAM, 0);
    bool ok = bind(udp, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0;
    close(udp);
    close(tcp);
    if (ok) return ntohs(sa.sin_port);
  }
  return absl::UnavailableError("no free port found");
}

}  // namespace loom::testing
