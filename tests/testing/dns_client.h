// A raw UDP DNS client for tests and benchmarks: one socket (opened in a named
// network namespace, or the caller's), one query at a time, short timeouts, so a
// test can poll a server in a tight loop without forking dig.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace loom::testing {

class DnsClient {
 public:
  // `netns`: a named namespace to open the socket in ("" for the caller's).
  DnsClient(const std::string& netns, std::string server_ip, uint16_t port = 53);
  ~DnsClient();
  DnsClient(const DnsClient&) = delete;
  DnsClient& operator=(const DnsClient&) = delete;

  bool ok() const { return fd_ >= 0; }
  // The A records of `name`, in answer order; empty on NXDOMAIN, NODATA or no answer
  // within 50 ms.
  std::vector<std::string> A(const std::string& name);

 private:
  int fd_ = -1;
  std::string server_ip_;
  uint16_t port_;
  uint16_t id_ = 0;
};

}  // namespace loom::testing
