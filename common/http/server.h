// An HTTP/1.1 server on unix sockets and TCP, over Boost.Beast, run on its own
// io_context thread(s). Keep-alive, request size limits, idle timeouts; a handler that
// throws yields a 500 (the exception stops at this edge).
//
//   HttpServer server([&](const Request& r) { return router.Dispatch(r); });
//   RETURN_IF_ERROR(server.ListenUnix("/run/loom/loomd.sock"));
//   ASSIGN_OR_RETURN(uint16_t port, server.ListenTcp("127.0.0.1", 9464));
//   RETURN_IF_ERROR(server.Start());
//   ...
//   server.Stop();  // closes the listeners, removes the socket file, joins
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/http/router.h"

namespace loom::http {

struct ServerOptions {
  size_t max_header_bytes = 16 * 1024;
  size_t max_body_bytes = 4 * 1024 * 1024;
  // A connection with no complete request for this long is closed.
  absl::Duration idle_timeout = absl::Seconds(60);
  int threads = 1;
};

class HttpServer {
 public:
  explicit HttpServer(Handler handler, ServerOptions options = {});
  ~HttpServer();  // Stop()
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Listens on a unix socket created with mode 0600. A stale socket file (nobody
  // accepting) is replaced; a socket another process accepts on fails with
  // FailedPrecondition "<path>: in use by another process"; any other file there fails.
  absl::Status ListenUnix(const std::string& path);
  // Listens on TCP host:port (IPv4 or IPv6 literal); returns the bound port.
  absl::StatusOr<uint16_t> ListenTcp(std::string_view host, uint16_t port);

  // Starts accepting on every listener. Call once, after the Listen calls.
  absl::Status Start();
  // Closes the listeners and connections, joins the threads and removes the unix
  // socket files this server created. Idempotent.
  void Stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace loom::http
