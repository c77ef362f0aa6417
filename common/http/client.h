// A synchronous HTTP/1.1 client over a unix socket or TCP, one connection per request,
// with an overall deadline per request. Fails with Unavailable naming the endpoint when
// it cannot connect ("cannot connect to /run/loom/loomd.sock: No such file or
// directory"), DeadlineExceeded on timeout.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/http/message.h"

namespace loom::http {

class HttpClient {
 public:
  static HttpClient ForUnixSocket(std::string path, absl::Duration timeout = absl::Seconds(10));
  static HttpClient ForTcp(std::string host, uint16_t port,
                           absl::Duration timeout = absl::Seconds(10));

  absl::StatusOr<Response> Get(std::string_view target) const;
  absl::StatusOr<Response> Send(std::string_view method, std::string_view target,
                                std::string_view body = "",
                                std::string_view content_type = "application/json") const;

  // "/run/loom/loomd.sock" or "127.0.0.1:9464".
  const std::string& endpoint() const { return endpoint_; }

 private:
  HttpClient(bool unix_socket, std::string endpoint, std::string host, uint16_t port,
             absl::Duration timeout)
      : unix_(unix_socket), endpoint_(std::move(endpoint)), host_(std::move(host)),
        port_(port), timeout_(timeout) {}

  bool unix_;
  std::string endpoint_;
  std::string host_;
  uint16_t port_;
  absl::Duration timeout_;
};

}  // namespace loom::http
