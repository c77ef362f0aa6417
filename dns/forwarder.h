// Forwards names outside the cluster zone to upstream servers through c-ares, with
// a bounded LRU cache (positive and negative, TTLs honoured and counted down),
// answers served stale while every upstream fails, in-flight coalescing of equal
// queries, upstream health checks, and detection of a forwarding loop back into
// loomd (a random HINFO probe that must never come back to us).
#pragma once

#include <atomic>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "dns/upstream.h"
#include "dns/wire.h"

namespace loom::dns {

struct ForwarderOptions {
  std::vector<std::string> upstreams;  // "ip" or "ip:port" (port 53 by default)
  size_t cache_entries = 9984;
  uint32_t max_ttl = 3600;
  uint32_t max_negative_ttl = 1800;
  absl::Duration serve_stale_for = absl::Hours(1);
  uint32_t stale_ttl = 30;  // the TTL of a stale answer
  absl::Duration upstream_timeout = absl::Seconds(2);
  int max_fails = 2;
  absl::Duration health_check_interval = absl::Milliseconds(500);
  bool detect_loops = true;
  // The clock; tests move it to expire cache entries.
  std::function<absl::Time()> now = [] { return absl::Now(); };
};

struct ForwarderStats {
  std::atomic<uint64_t> cache_hits{0};
  std::atomic<uint64_t> cache_misses{0};
  std::atomic<uint64_t> stale_served{0};
  std::atomic<uint64_t> upstream_queries{0};
  std::atomic<uint64_t> upstream_failures{0};
  std::atomic<uint64_t> coalesced{0};
};

// Reads the nameservers of a resolv.conf ("nameserver a.b.c.d" lines, IPv4 only).
absl::StatusOr<std::vector<std::string>> ReadResolvConf(const std::string& path);

class Forwarder : public Upstream {
 public:
  explicit Forwarder(ForwarderOptions options);
  ~Forwarder() override;

  absl::Status Start();
  void Stop();

  void Resolve(std::vector<uint8_t> query, ResolveCallback done) override;

  const ForwarderStats& stats() const { return stats_; }
  bool loop_detected() const { return loop_detected_.load(); }
  // Healthy upstreams now (for status and metrics).
  std::vector<std::string> HealthyUpstreams() const;
  size_t cache_size() const;

 private:
  struct UpstreamState;
  struct Pending;
  struct CacheEntry {
    Message message;
    absl::Time stored;
    uint32_t ttl = 0;
    std::list<std::string>::iterator lru;
  };

  void Loop();
  void Send(std::shared_ptr<Pending> p, size_t attempt);
  void OnAnswer(std::shared_ptr<Pending> p, size_t upstream, int status, const uint8_t* abuf,
                int alen);
  void Finish(const std::shared_ptr<Pending>& p, absl::StatusOr<std::vector<uint8_t>> response);
  bool AnswerFromCache(const Query& q, const std::string& key, bool allow_stale,
                       std::vector<uint8_t>* out);
  void Store(const std::string& key, const Message& m);
  void HealthCheck(absl::Time now);
  void SendLoopProbes();

  ForwarderOptions options_;
  ForwarderStats stats_;
  std::vector<std::unique_ptr<UpstreamState>> upstreams_;
  std::atomic<bool> loop_detected_{false};
  std::vector<std::string> probe_names_;  // lower-cased text

  mutable std::mutex cache_mu_;
  absl::flat_hash_map<std::string, CacheEntry> cache_;
  std::list<std::string> lru_;  // front: most recently used

  std::mutex queue_mu_;
  std::vector<std::shared_ptr<Pending>> queue_;
  absl::flat_hash_map<std::string, std::shared_ptr<Pending>> inflight_;  // loop thread only
  int wake_fd_ = -1;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace loom::dns
