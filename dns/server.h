// The DNS server: UDP workers on SO_REUSEPORT sockets (one thread each, batched
// with recvmmsg/sendmmsg) and one TCP thread (epoll; length-prefixed, pipelined
// queries). Cluster names are answered from the current zone snapshot without
// allocating or locking; other names go to the Upstream, asynchronously.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "dns/cluster_zone.h"
#include "dns/upstream.h"

namespace loom::dns {

struct ServerOptions {
  std::string listen = "169.254.20.10:53";  // ip:port; port 0 picks a free one
  int udp_workers = 1;
  uint16_t max_udp_size = 1232;  // answers above this (or the client's EDNS size) set TC
  absl::Duration tcp_idle_timeout = absl::Seconds(10);
  int max_tcp_connections = 1024;
};

// Query latency (receipt to answer sent or handed back), in lock-free buckets.
struct LatencyHistogram {
  // Upper bounds in microseconds; one more bucket counts everything above.
  static constexpr uint64_t kBoundsUs[] = {50, 100, 250, 500, 1000, 2500, 5000, 10000,
                                           25000, 50000, 100000, 250000, 500000, 1000000};
  static constexpr size_t kBuckets = sizeof(kBoundsUs) / sizeof(kBoundsUs[0]) + 1;
  std::atomic<uint64_t> buckets[kBuckets] = {};  // per bucket, not cumulative
  std::atomic<uint64_t> sum_ns{0};

  void Observe(uint64_t ns) {
    size_t i = 0;
    while (i + 1 < kBuckets && ns > kBoundsUs[i] * 1000) ++i;
    buckets[i].fetch_add(1, std::memory_order_relaxed);
    sum_ns.fetch_add(ns, std::memory_order_relaxed);
  }
};

struct ServerStats {
  std::atomic<uint64_t> queries_udp{0};
  std::atomic<uint64_t> queries_tcp{0};
  std::atomic<uint64_t> dropped{0};
  std::atomic<uint64_t> forwarded{0};
  std::atomic<uint64_t> truncated{0};
  std::atomic<uint64_t> rcode[16] = {};
  // Decoded queries by QTYPE: the types of kCountedTypes, then every other type.
  static constexpr uint16_t kCountedTypes[] = {1, 28, 33, 12, 16, 5, 6, 2, 255};
  static constexpr size_t kQtypeSlots = sizeof(kCountedTypes) / sizeof(kCountedTypes[0]) + 1;
  std::atomic<uint64_t> qtype[kQtypeSlots] = {};
  LatencyHistogram latency;

  void CountQtype(uint16_t t) {
    size_t i = 0;
    while (i + 1 < kQtypeSlots && kCountedTypes[i] != t) ++i;
    qtype[i].fetch_add(1, std::memory_order_relaxed);
  }
};

// Holds the current zone snapshot; Set() from the store watch, read by workers.
class ZoneHolder {
 public:
  void Set(std::shared_ptr<const ClusterZone> zone);
  // The snapshot now; cheap when nothing changed since `cached` was taken.
  std::shared_ptr<const ClusterZone> Get() const;
  uint64_t version() const { return version_.load(std::memory_order_acquire); }

 private:
  mutable std::mutex mu_;
  std::shared_ptr<const ClusterZone> zone_;
  std::atomic<uint64_t> version_{0};
};

// A reader's cached snapshot: refreshed only when the holder's version moved.
struct ZoneCache {
  std::shared_ptr<const ClusterZone> zone;
  uint64_t version = ~uint64_t{0};
};

class DnsServer {
 public:
  // `upstream` may be null: names outside the zone are then REFUSED.
  DnsServer(ServerOptions options, const ZoneHolder* zones, Upstream* upstream);
  ~DnsServer();

  absl::Status Start();
  void Stop();
  // The bound port (useful with port 0).
  uint16_t port() const { return port_; }
  const ServerStats& stats() const { return stats_; }

 private:
  struct Worker;
  class TcpLoop;

  // Answers one query. Returns the response length written into `out`, 0 when
  // the packet is dropped, or -1 when the answer will come later via `async`.
  int Handle(const uint8_t* query, size_t size, uint8_t* out, size_t out_capacity, bool tcp,
             ZoneCache* zone, std::function<void(std::vector<uint8_t>)> async);
  int HandleTimed(const uint8_t* query, size_t size, uint8_t* out, size_t out_capacity, bool tcp,
                  ZoneCache* zone, std::function<void(std::vector<uint8_t>)> async,
                  int64_t start_ns);
  void UdpLoop(Worker* worker);

  ServerOptions options_;
  const ZoneHolder* zones_;
  Upstream* upstream_;
  ServerStats stats_;
  uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  std::vector<std::unique_ptr<Worker>> workers_;
  std::unique_ptr<TcpLoop> tcp_;
};

}  // namespace loom::dns
