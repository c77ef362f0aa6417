// A small HTTP/1.1 server for ingress tests and benchmarks: a thread per
// connection, keep-alive, and what a test needs to see what the proxy did:
//   any path        200 "<name> <METHOD> <target>\n", with X-Backend: <name> and the
//                   request's Host, X-Forwarded-For and X-Forwarded-Proto echoed
//                   as X-Seen-Host, X-Seen-Xff, X-Seen-Proto
//   /echo...        200 with the request body as the response body (Expect:
//                   100-continue is answered with a 100 first)
//   /chunked...     the same body as "any path", sent chunked in three chunks
//   /slow?ms=N      answers after N milliseconds
//   Upgrade: websocket   101, then every byte received is echoed back
#pragma once

#include <atomic>
#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace loom::testing {

class HttpBackend {
 public:
  // Listens on ip:port (port 0: a free one).
  static absl::StatusOr<std::unique_ptr<HttpBackend>> Start(std::string name, std::string ip = "127.0.0.1",
                                                            int port = 0);
  ~HttpBackend();  // Stop()
  void Stop();

  const std::string& ip() const { return ip_; }
  int port() const { return port_; }
  uint64_t requests() const { return requests_.load(); }
  uint64_t connections() const { return connections_.load(); }

  struct Impl;

 private:
  HttpBackend() = default;
  std::string name_, ip_;
  int port_ = 0;
  std::atomic<uint64_t> requests_{0}, connections_{0};
  std::unique_ptr<Impl> impl_;
};

}  // namespace loom::testing
