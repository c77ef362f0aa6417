// The DNS server: UDP workers on SO_REUSEPORT sockets (one thread each, batched
// with recvmmsg/sendmmsg) and one TCP thread (epoll; length-prefixed, pipelined
// queries). Cluster names are answered from the current zone snapshot without
// allocating or locking; other names go to the Upstream, asynchronously.
#pragma once

#include <netinet/in.h>

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
  // Under load (the worker used the CPU at least half of each of the last two 2 ms
  // windows), a UDP worker whose last read did not fill its batch waits this long on
  // a timer of its own before reading again, instead of sleeping on its socket: the
  // queries sent meanwhile are read and answered in one batch, and the clients' sends
  // do not have to wake it (interrupt coalescing, as NICs do). It stops as soon as a
  // wait brings fewer than two queries. Zero: off.
  absl::Duration udp_coalesce = absl::ZeroDuration();
  absl::Duration tcp_idle_timeout = absl::Seconds(10);
  int max_tcp_connections = 1024;
};

// The server's counters, summed over its threads at one moment (DnsServer::stats()).
struct ServerStats {
  uint64_t queries_udp = 0;
  uint64_t queries_tcp = 0;
  uint64_t dropped = 0;
  uint64_t forwarded = 0;
  uint64_t truncated = 0;
  uint64_t udp_waits = 0;  // waits on a UDP worker's timer (ServerOptions::udp_coalesce)
  uint64_t rcode[16] = {};
  // Decoded queries by QTYPE: the types of kCountedTypes, then every other type.
  static constexpr uint16_t kCountedTypes[] = {1, 28, 33, 12, 16, 5, 6, 2, 255};
  static constexpr size_t kQtypeSlots = sizeof(kCountedTypes) / sizeof(kCountedTypes[0]) + 1;
  uint64_t qtype[kQtypeSlots] = {};
  // Latency from receipt to the answer sent (a UDP batch: from its receipt to its
  // send) or handed back (TCP, forwarded), per bucket, not cumulative.
  static constexpr uint64_t kLatencyBoundsUs[] = {50,    100,   250,    500,    1000,
                                                  2500,  5000,  10000,  25000,  50000,
                                                  100000, 250000, 500000, 1000000};
  // Upper bounds in microseconds; one more bucket counts everything above.
  static constexpr size_t kLatencyBuckets =
      sizeof(kLatencyBoundsUs) / sizeof(kLatencyBoundsUs[0]) + 1;
  uint64_t latency[kLatencyBuckets] = {};
  uint64_t latency_sum_ns = 0;

  static size_t QtypeSlot(uint16_t t) {
    size_t i = 0;
    while (i + 1 < kQtypeSlots && kCountedTypes[i] != t) ++i;
    return i;
  }
  static size_t LatencyBucket(uint64_t ns) {
    size_t i = 0;
    while (i + 1 < kLatencyBuckets && ns > kLatencyBoundsUs[i] * 1000) ++i;
    return i;
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
  // The counters of every thread, added up.
  ServerStats stats() const;

 private:
  struct Worker;
  class TcpLoop;
  class Counters;

  // Where an answer that completes later (a forwarded one) goes. A plain value, so
  // that answering from the zone builds no closure; one is made only to forward.
  struct ReplyTo {
    int udp_fd = -1;
    sockaddr_in udp_client{};
    TcpLoop* tcp = nullptr;
    uint64_t tcp_conn = 0;
    void Send(std::vector<uint8_t> response) const;
  };

  // Answers one query, counting into `counters` (the calling thread's). Returns the
  // response length written into `out`, 0 when the packet is dropped, or -1 when
  // the answer will be sent later to `reply_to`. `zone` must be current.
  int Handle(const uint8_t* query, size_t size, uint8_t* out, size_t out_capacity, bool tcp,
             const ZoneCache& zone, const ReplyTo& reply_to, Counters* counters,
             int64_t start_ns);
  // Refreshes `cache` when a new snapshot was published since it was taken.
  void Refresh(ZoneCache* cache) const;
  void UdpLoop(Worker* worker);

  ServerOptions options_;
  const ZoneHolder* zones_;
  Upstream* upstream_;
  // Each UDP worker's, then the TCP thread's.
  std::vector<std::unique_ptr<Counters>> thread_counters_;
  // Counted by the threads that answer forwarded queries (any thread).
  std::unique_ptr<Counters> async_counters_;
  uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  std::vector<std::unique_ptr<Worker>> workers_;
  std::unique_ptr<TcpLoop> tcp_;
};

}  // namespace loom::dns
