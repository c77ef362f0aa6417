#include "agent/daemon/underlay.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/route.h>
#include <netinet/in.h>

#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <sstream>

#include "absl/strings/str_split.h"
#include "common/status.h"
#include "common/strings.h"

namespace loom::agent {

absl::StatusOr<std::string> DefaultRouteInterface(std::string_view proc_net_route) {
  // Iface Destination Gateway Flags RefCnt Use Metric Mask MTU Window IRTT (hex fields)
  std::string best;
  long best_metric = std::numeric_limits<long>::max();
  bool header = true;
  for (absl::string_view line : absl::StrSplit(ToAbsl(proc_net_route), '\n')) {
    if (header) {
      header = false;
      continue;
    }
    std::vector<absl::string_view> f =
        absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty());
    if (f.size() < 8) continue;
    unsigned long flags = std::strtoul(std::string(f[3]).c_str(), nullptr, 16);
    long metric = std::strtol(std::string(f[6]).c_str(), nullptr, 10);
    if (f[1] == "00000000" && f[7] == "00000000" && (flags & RTF_UP) && metric < best_metric) {
      best = std::string(f[0]);
      best_metric = metric;
    }
  }
  if (best.empty()) return absl::NotFoundError("no IPv4 default route");
  return best;
}

absl::StatusOr<std::string> FirstIpv4Address(std::string_view iface) {
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return ErrnoToStatus(errno, "getifaddrs");
  std::string found;
  bool exists = false;
  for (ifaddrs* a = list; a != nullptr; a = a->ifa_next) {
    if (a->ifa_name == nullptr || iface != a->ifa_name) continue;
    exists = true;
    if (a->ifa_addr != nullptr && a->ifa_addr->sa_family == AF_INET) {
      char buf[INET_ADDRSTRLEN];
      auto* sin = reinterpret_cast<sockaddr_in*>(a->ifa_addr);
      inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof buf);
      found = buf;
      break;
    }
  }
  freeifaddrs(list);
  if (!found.empty()) return found;
  if (!exists) return absl::NotFoundError(StrCat("interface ", iface, " does not exist"));
  return absl::NotFoundError(StrCat("interface ", iface, " has no IPv4 address"));
}

absl::StatusOr<Underlay> ResolveUnderlay(std::string_view iface,
                                         const std::string& proc_net_route_path) {
  Underlay out;
  if (iface.empty()) {
    std::ifstream in(proc_net_route_path);
    if (!in) {
      return absl::NotFoundError(StrCat("cannot read ", proc_net_route_path,
                                        " to find the default route; pass --underlay-iface"));
    }
    std::stringstream text;
    text << in.rdbuf();
    absl::StatusOr<std::string> name = DefaultRouteInterface(text.str());
    if (!name.ok()) {
      return absl::NotFoundError(
          "no IPv4 default route to pick the underlay interface from; pass --underlay-iface");
    }
    out.iface = *name;
  } else {
    out.iface = std::string(iface);
  }
  absl::StatusOr<std::string> ip = FirstIpv4Address(out.iface);
  if (!ip.ok()) {
    return absl::Status(ip.status().code(),
                        StrCat("underlay interface: ", ip.status().message(),
                               iface.empty() ? "; pass --underlay-iface" : ""));
  }
  out.ip = *ip;
  return out;
}

}  // namespace loom::agent
