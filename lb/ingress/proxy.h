// The ingress proxy: HTTP/1.1 and HTTPS (SNI) listeners that route each request by
// host and path (Router) straight to a ready endpoint of the matched service.
//
//   IngressProxy proxy(options);
//   RETURN_IF_ERROR(proxy.Start());         // binds, one io_context thread per worker
//   proxy.Update(config);                   // any time, from any thread
//   proxy.Stop();
//
// The data path (docs/ingress.md has the details):
//   * keep-alive on both sides; upstream connections pooled per endpoint and worker;
//   * bodies streamed as they arrive (Content-Length, chunked, close-delimited), the
//     framing forwarded as received once the parser has validated it; Expect:
//     100-continue passed through; upgrades (WebSocket) spliced both ways after 101;
//   * X-Forwarded-For appended, X-Forwarded-Proto set, Host kept, hop-by-hop headers
//     (Connection, Keep-Alive, Proxy-Connection, TE, Upgrade) not forwarded;
//   * 404 no route, 503 no ready endpoint, 502 connect/upstream failure, 504 upstream
//     timeout, 400 malformed request (request line, header, chunk sizes), 431 header
//     too large or too many fields, 408 header/body not received in time (slowloris);
//   * endpoints picked round-robin or least-request; an endpoint that refuses a
//     connection is ejected for a back-off (1s doubling to 30s) and tried again after;
//     connect failures are retried on another endpoint (the route's `retries`).
// Update() swaps an immutable snapshot: requests in flight finish on the snapshot
// they started with, open connections and tunnels are never closed by an update.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "common/metrics/metrics.h"
#include "lb/ingress/router.h"

namespace loom::lb::ingress {

struct ProxyOptions {
  // Listen addresses (IP literals); port 0 picks a free port (see http_port()).
  std::string http_host = "0.0.0.0";
  uint16_t http_port = 80;
  bool https = true;
  std::string https_host = "0.0.0.0";
  uint16_t https_port = 443;
  int workers = 1;  // threads, each with its own io_context and SO_REUSEPORT listeners

  size_t max_header_bytes = 16 * 1024;  // request line + fields; more is 431
  size_t max_header_fields = 100;       // more is 431
  absl::Duration header_timeout = absl::Seconds(10);  // first byte to end of header, else 408
  absl::Duration body_timeout = absl::Seconds(30);    // client silent mid-body, else 408
  absl::Duration idle_timeout = absl::Seconds(60);    // keep-alive between requests
  absl::Duration connect_timeout = absl::Seconds(3);
  // Request sent to response header (504), and the longest silence within a
  // response; a route's timeoutSeconds overrides it.
  absl::Duration upstream_timeout = absl::Seconds(60);
  absl::Duration tunnel_idle_timeout = absl::Hours(1);  // upgraded connections
  absl::Duration pool_idle_timeout = absl::Seconds(30);
  size_t max_idle_per_endpoint = 128;  // per worker
  absl::Duration eject_base = absl::Seconds(1);
  absl::Duration eject_max = absl::Seconds(30);

  std::string access_log;  // "": none, "-": stderr, else a file appended to
  metrics::Registry* metrics = nullptr;  // optional
};

struct BackendAddress {
  std::string ip;
  uint16_t port = 0;
  friend bool operator==(const BackendAddress&, const BackendAddress&) = default;
};

struct Certificate {
  std::string cert_pem;  // the chain, leaf first
  std::string key_pem;
  friend bool operator==(const Certificate&, const Certificate&) = default;
};

// The key of a backend in ProxyConfig::backends: "<ns>/<service>:<port number or name>".
std::string BackendKey(std::string_view ns, const WeightedBackend& backend);

// What the proxy serves. Built by the agent from the store's ingresses and services.
struct ProxyConfig {
  std::shared_ptr<const Router> router;
  // Ready endpoints by BackendKey; a backend without an entry has none (503).
  absl::flat_hash_map<std::string, std::vector<BackendAddress>> backends;
  // By "<ns>/<secretName>", as Router::CertificateFor names them.
  absl::flat_hash_map<std::string, Certificate> certificates;
};

struct ProxyStats {
  uint64_t connections = 0;  // accepted, both listeners
  uint64_t requests = 0;
  uint64_t open_connections = 0;
  uint64_t upstream_connects = 0;  // new upstream connections (not reused ones)
  uint64_t generation = 0;         // Update() calls applied
};

class IngressProxy {
 public:
  explicit IngressProxy(ProxyOptions options);
  ~IngressProxy();  // Stop()
  IngressProxy(const IngressProxy&) = delete;
  IngressProxy& operator=(const IngressProxy&) = delete;

  // Binds every worker's listeners and starts the threads. Errors name the address.
  absl::Status Start();
  // Closes listeners and connections and joins the threads. Idempotent.
  void Stop();

  // Swaps in a new configuration. Certificates that fail to load are left out (their
  // hosts then fail the handshake) and reported, one message each; the rest applies.
  std::vector<std::string> Update(const ProxyConfig& config);

  uint16_t http_port() const;
  uint16_t https_port() const;
  ProxyStats stats() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace loom::lb::ingress
