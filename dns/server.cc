#include "dns/server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <pthread.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>

#include "absl/container/flat_hash_map.h"
#include "common/log.h"
#include "common/status.h"
#include "common/strings.h"
#include "dns/fast_answer.h"
#include "dns/zone_answer.h"

namespace loom::dns {
namespace {

constexpr int kBatch = 32;
// Load, for ServerOptions::udp_coalesce: a worker starts waiting on its timer when it
// used the CPU for at least half of each of the last kLoadWindows windows of
// kLoadWindowNs (or more), and goes on while each wait brings at least kCoalesceStay
// queries. Clients at a moderate rate never meet the timer, even when they catch up
// in a burst.
constexpr int64_t kLoadWindowNs = 2'000'000;
constexpr int kLoadWindows = 2;
constexpr int kCoalesceStay = 2;
constexpr size_t kMaxQuery = 4096;
constexpr size_t kMaxTcpMessage = 65535;

absl::StatusOr<sockaddr_in> ParseListen(const std::string& listen) {
  size_t colon = listen.rfind(':');
  if (colon == std::string::npos) {
    return absl::InvalidArgumentError(StrCat("dns listen address \"", listen, "\": want ip:port"));
  }
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  std::string ip = listen.substr(0, colon);
  if (inet_pton(AF_INET, ip.c_str(), &sa.sin_addr) != 1) {
    return absl::InvalidArgumentError(
        StrCat("dns listen address \"", listen, "\": \"", ip, "\" is not an IPv4 address"));
  }
  char* end = nullptr;
  long port = std::strtol(listen.c_str() + colon + 1, &end, 10);
  if (end == listen.c_str() + colon + 1 || *end != '\0' || port < 0 || port > 65535) {
    return absl::InvalidArgumentError(StrCat("dns listen address \"", listen, "\": bad port"));
  }
  sa.sin_port = htons(static_cast<uint16_t>(port));
  return sa;
}

void WriteFormErr(const uint8_t* query, size_t size, uint8_t* out, size_t cap, size_t* len) {
  // Only the header is trusted: echo the ID and opcode, no question.
  Query q;
  q.header.id = static_cast<uint16_t>((query[0] << 8) | query[1]);
  q.header.flags = static_cast<uint16_t>((query[2] << 8) | query[3]);
  (void)size;
  MessageWriter w(out, cap);
  WriteErrorResponse(q, false, Rcode::kFormErr, 0, &w);
  *len = w.size();
}

// A response for the client's limit: over UDP, one that does not fit is cut to
// the header and question with TC set, so the client retries over TCP.
std::vector<uint8_t> FitForClient(std::vector<uint8_t> response, const Query& q, size_t capacity) {
  if (response.size() <= capacity) return response;
  std::vector<uint8_t> out(capacity);
  MessageWriter w(out.data(), capacity);
  BeginResponse(q, &w);
  Header h = w.header();
  uint16_t upstream_flags = static_cast<uint16_t>((response[2] << 8) | response[3]);
  h.set_rcode(static_cast<Rcode>(upstream_flags & 0xF));
  h.set_tc(true);
  w.SetHeader(h);
  EndResponse(q, static_cast<uint16_t>(capacity), &w);
  out.resize(w.size());
  return out;
}

int64_t MonotonicNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

// The CPU time the calling thread has used.
int64_t ThreadCpuNs() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

// A UDP worker's load (ServerOptions::udp_coalesce), in windows of kLoadWindowNs: how
// many in a row it used the CPU for at least half of.
class LoadWindows {
 public:
  explicit LoadWindows(int64_t now) { Restart(now); }

  // A new first window from `now`.
  void Restart(int64_t now) {
    start_ = now;
    cpu_ = ThreadCpuNs();
    loaded_ = 0;
  }
  // After a read at `now`: whether the last kLoadWindows windows were each loaded
  // (then counting starts over).
  bool Loaded(int64_t now) {
    if (now - start_ < kLoadWindowNs) return false;
    const int64_t cpu = ThreadCpuNs();
    loaded_ = (cpu - cpu_) * 2 >= now - start_ ? loaded_ + 1 : 0;
    start_ = now;
    cpu_ = cpu;
    if (loaded_ < kLoadWindows) return false;
    loaded_ = 0;
    return true;
  }

 private:
  int64_t start_ = 0;  // when the window began
  int64_t cpu_ = 0;    // the CPU time the worker had used by then
  int loaded_ = 0;     // loaded windows in a row
};

std::vector<uint8_t> ErrorBytes(const Query& q, Rcode rcode, uint16_t udp_size) {
  std::vector<uint8_t> out(512);
  MessageWriter w(out.data(), out.size());
  WriteErrorResponse(q, true, rcode, udp_size, &w);
  out.resize(w.size());
  return out;
}

}  // namespace

// ---- ZoneHolder ---------------------------------------------------------------

void ZoneHolder::Set(std::shared_ptr<const ClusterZone> zone) {
  std::lock_guard<std::mutex> lock(mu_);
  zone_ = std::move(zone);
  version_.fetch_add(1, std::memory_order_release);
}

std::shared_ptr<const ClusterZone> ZoneHolder::Get() const {
  std::lock_guard<std::mutex> lock(mu_);
  return zone_;
}

// ---- Counters -----------------------------------------------------------------

// One thread's counters. A worker or the TCP thread owns one and bumps it with a
// plain load and store, no locked instruction per query; forwarded answers complete
// on other threads and count into a shared one with atomic adds. stats() reads them
// all from any thread.
class alignas(64) DnsServer::Counters {
 public:
  explicit Counters(bool shared) : shared_(shared) {}

  void Bump(std::atomic<uint64_t>& c, uint64_t n = 1) {
    if (shared_) {
      c.fetch_add(n, std::memory_order_relaxed);
    } else {
      c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
    }
  }
  void Answered(uint16_t qtype, Rcode rcode) {
    Bump(qtype_[ServerStats::QtypeSlot(qtype)]);
    Bump(rcode_[static_cast<uint8_t>(rcode) & 0xF]);
  }
  void CountRcode(uint8_t rcode) { Bump(rcode_[rcode & 0xF]); }
  void CountQtype(uint16_t qtype) { Bump(qtype_[ServerStats::QtypeSlot(qtype)]); }
  // `count` answers that each took `ns`.
  void Latency(uint64_t ns, uint64_t count) {
    Bump(latency_[ServerStats::LatencyBucket(ns)], count);
    Bump(latency_sum_ns_, ns * count);
  }

  void AddTo(ServerStats* s) const {
    auto get = [](const std::atomic<uint64_t>& c) { return c.load(std::memory_order_relaxed); };
    s->queries_udp += get(queries_udp);
    s->queries_tcp += get(queries_tcp);
    s->dropped += get(dropped);
    s->udp_waits += get(udp_waits);
    s->forwarded += get(forwarded);
    s->truncated += get(truncated);
    for (size_t i = 0; i < 16; ++i) s->rcode[i] += get(rcode_[i]);
    for (size_t i = 0; i < ServerStats::kQtypeSlots; ++i) s->qtype[i] += get(qtype_[i]);
    for (size_t i = 0; i < ServerStats::kLatencyBuckets; ++i) s->latency[i] += get(latency_[i]);
    s->latency_sum_ns += get(latency_sum_ns_);
  }

  std::atomic<uint64_t> queries_udp{0};
  std::atomic<uint64_t> queries_tcp{0};
  std::atomic<uint64_t> dropped{0};
  std::atomic<uint64_t> forwarded{0};
  std::atomic<uint64_t> truncated{0};
  std::atomic<uint64_t> udp_waits{0};

 private:
  const bool shared_;
  std::atomic<uint64_t> rcode_[16] = {};
  std::atomic<uint64_t> qtype_[ServerStats::kQtypeSlots] = {};
  std::atomic<uint64_t> latency_[ServerStats::kLatencyBuckets] = {};
  std::atomic<uint64_t> latency_sum_ns_{0};
};

// ---- Workers ------------------------------------------------------------------

struct DnsServer::Worker {
  int fd = -1;
  int index = 0;
  std::thread thread;
  Counters* counters = nullptr;
  ZoneCache zone;
  uint8_t in[kBatch][kMaxQuery];
  uint8_t out[kBatch][kMaxQuery];
  sockaddr_in addr[kBatch];
  mmsghdr in_msgs[kBatch];
  iovec in_iov[kBatch];
  mmsghdr out_msgs[kBatch];
  iovec out_iov[kBatch];
  PendingLookup lookups[kBatch];

  ~Worker() {
    if (fd >= 0) close(fd);
  }
};

// The TCP side: one epoll loop for every connection.
class DnsServer::TcpLoop {
 public:
  TcpLoop(DnsServer* server, int listen_fd, Counters* counters)
      : server_(server), listen_fd_(listen_fd), counters_(counters) {}
  ~TcpLoop() {
    Stop();
    for (auto& [id, c] : conns_) close(c.fd);
    if (listen_fd_ >= 0) close(listen_fd_);
    if (epoll_fd_ >= 0) close(epoll_fd_);
    if (wake_fd_ >= 0) close(wake_fd_);
  }

  absl::Status Start() {
    epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
    wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (epoll_fd_ < 0 || wake_fd_ < 0) return ErrnoToStatus(errno, "dns tcp: epoll");
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = kListenId;
    epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, listen_fd_, &ev);
    ev.data.u64 = kWakeId;
    epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &ev);
    thread_ = std::thread([this] { Loop(); });
    pthread_setname_np(thread_.native_handle(), "dns-tcp");
    return absl::OkStatus();
  }

  void Stop() {
    if (!thread_.joinable()) return;
    stop_.store(true);
    uint64_t one = 1;
    (void)!write(wake_fd_, &one, sizeof one);
    thread_.join();
  }

  // From any thread: a response that completes later.
  void Deliver(uint64_t conn_id, std::vector<uint8_t> response) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      pending_.emplace_back(conn_id, std::move(response));
    }
    uint64_t one = 1;
    (void)!write(wake_fd_, &one, sizeof one);
  }

 private:
  static constexpr uint64_t kListenId = 0;
  static constexpr uint64_t kWakeId = 1;

  struct Conn {
    int fd = -1;
    std::vector<uint8_t> in;
    std::vector<uint8_t> out;
    size_t out_sent = 0;
    absl::Time last_active;
    bool want_write = false;
  };

  void Loop() {
    epoll_event events[64];
    std::vector<uint8_t> answer(kMaxTcpMessage);
    absl::Time last_sweep = absl::Now();
    while (!stop_.load()) {
      int n = epoll_wait(epoll_fd_, events, 64, 500);
      for (int i = 0; i < n; ++i) {
        uint64_t id = events[i].data.u64;
        if (id == kListenId) {
          Accept();
        } else if (id == kWakeId) {
          uint64_t v;
          (void)!read(wake_fd_, &v, sizeof v);
          DrainPending();
        } else {
          auto it = conns_.find(id);
          if (it == conns_.end()) continue;
          bool alive = true;
          if (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) alive = Read(id, it->second, answer);
          if (alive && (events[i].events & EPOLLOUT)) alive = Flush(id, it->second);
          if (!alive) CloseConn(id);
        }
      }
      absl::Time now = absl::Now();
      if (now - last_sweep > absl::Seconds(1)) {
        last_sweep = now;
        std::vector<uint64_t> idle;
        for (auto& [id, c] : conns_) {
          if (now - c.last_active > server_->options_.tcp_idle_timeout) idle.push_back(id);
        }
        for (uint64_t id : idle) CloseConn(id);
      }
    }
  }

  void Accept() {
    while (true) {
      int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) return;
      if (static_cast<int>(conns_.size()) >= server_->options_.max_tcp_connections) {
        close(fd);
        continue;
      }
      int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      uint64_t id = next_id_++;
      Conn& c = conns_[id];
      c.fd = fd;
      c.last_active = absl::Now();
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.u64 = id;
      epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev);
    }
  }

  bool Read(uint64_t id, Conn& c, std::vector<uint8_t>& answer) {
    uint8_t buf[16384];
    while (true) {
      ssize_t r = read(c.fd, buf, sizeof buf);
      if (r > 0) {
        c.in.insert(c.in.end(), buf, buf + r);
        c.last_active = absl::Now();
        if (c.in.size() > 4 * kMaxTcpMessage) return false;  // a client that never reads
        continue;
      }
      if (r == 0) return false;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      if (errno == EINTR) continue;
      return false;
    }
    size_t pos = 0;
    while (c.in.size() - pos >= 2) {
      size_t len = (size_t{c.in[pos]} << 8) | c.in[pos + 1];
      if (len < kHeaderSize) return false;
      if (c.in.size() - pos - 2 < len) break;
      const uint8_t* q = c.in.data() + pos + 2;
      int64_t start = MonotonicNs();
      counters_->Bump(counters_->queries_tcp);
      ReplyTo reply_to;
      reply_to.tcp = this;
      reply_to.tcp_conn = id;
      server_->Refresh(&zone_);
      int out = server_->Handle(q, len, answer.data(), answer.size(), /*tcp=*/true, zone_,
                                reply_to, counters_, start);
      if (out > 0) {
        counters_->Latency(static_cast<uint64_t>(MonotonicNs() - start), 1);
        Append(c, answer.data(), static_cast<size_t>(out));
      }
      pos += 2 + len;
    }
    c.in.erase(c.in.begin(), c.in.begin() + static_cast<long>(pos));
    return Flush(id, c);
  }

  void Append(Conn& c, const uint8_t* data, size_t len) {
    c.out.push_back(static_cast<uint8_t>(len >> 8));
    c.out.push_back(static_cast<uint8_t>(len));
    c.out.insert(c.out.end(), data, data + len);
  }

  bool Flush(uint64_t id, Conn& c) {
    while (c.out_sent < c.out.size()) {
      ssize_t w = send(c.fd, c.out.data() + c.out_sent, c.out.size() - c.out_sent, MSG_NOSIGNAL);
      if (w > 0) {
        c.out_sent += static_cast<size_t>(w);
        continue;
      }
      if (w < 0 && errno == EINTR) continue;
      if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
      return false;
    }
    if (c.out_sent == c.out.size()) {
      c.out.clear();
      c.out_sent = 0;
    }
    bool want = !c.out.empty();
    if (want != c.want_write) {
      c.want_write = want;
      epoll_event ev{};
      ev.events = want ? (EPOLLIN | EPOLLOUT) : EPOLLIN;
      ev.data.u64 = id;
      epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, c.fd, &ev);
    }
    return true;
  }

  void DrainPending() {
    std::vector<std::pair<uint64_t, std::vector<uint8_t>>> pending;
    {
      std::lock_guard<std::mutex> lock(mu_);
      pending.swap(pending_);
    }
    for (auto& [id, bytes] : pending) {
      auto it = conns_.find(id);
      if (it == conns_.end()) continue;  // the client went away meanwhile
      Append(it->second, bytes.data(), bytes.size());
      if (!Flush(id, it->second)) CloseConn(id);
    }
  }

  void CloseConn(uint64_t id) {
    auto it = conns_.find(id);
    if (it == conns_.end()) return;
    epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, it->second.fd, nullptr);
    close(it->second.fd);
    conns_.erase(it);
  }

  DnsServer* server_;
  int listen_fd_;
  Counters* counters_;
  int epoll_fd_ = -1;
  int wake_fd_ = -1;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  uint64_t next_id_ = 2;
  absl::flat_hash_map<uint64_t, Conn> conns_;
  ZoneCache zone_;
  std::mutex mu_;
  std::vector<std::pair<uint64_t, std::vector<uint8_t>>> pending_;
};

// ---- DnsServer ----------------------------------------------------------------

DnsServer::DnsServer(ServerOptions options, const ZoneHolder* zones, Upstream* upstream)
    : options_(std::move(options)), zones_(zones), upstream_(upstream) {
  options_.udp_workers = std::max(1, options_.udp_workers);
  // One per UDP worker, one for the TCP thread; kept until destruction so that the
  // counts never go back, even across Stop().
  for (int i = 0; i < options_.udp_workers + 1; ++i) {
    thread_counters_.push_back(std::make_unique<Counters>(/*shared=*/false));
  }
  async_counters_ = std::make_unique<Counters>(/*shared=*/true);
}

ServerStats DnsServer::stats() const {
  ServerStats s;
  for (const auto& c : thread_counters_) c->AddTo(&s);
  async_counters_->AddTo(&s);
  return s;
}

void DnsServer::Refresh(ZoneCache* cache) const {
  uint64_t version = zones_->version();
  if (cache->version != version) {
    cache->zone = zones_->Get();
    cache->version = version;
  }
}

DnsServer::~DnsServer() { Stop(); }

absl::Status DnsServer::Start() {
  ASSIGN_OR_RETURN(sockaddr_in addr, ParseListen(options_.listen));
  const int workers = options_.udp_workers;
  auto fail = [&](int err, std::string_view what) {
    absl::Status st = ErrnoToStatus(err, StrCat("dns ", what, " ", options_.listen));
    workers_.clear();
    tcp_.reset();
    return st;
  };
  for (int i = 0; i < workers; ++i) {
    auto w = std::make_unique<Worker>();
    w->index = i;
    w->counters = thread_counters_[i].get();
    w->fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (w->fd < 0) return fail(errno, "udp socket");
    int one = 1;
    setsockopt(w->fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    timeval tv{0, 200 * 1000};  // wake up to notice Stop()
    setsockopt(w->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (bind(w->fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      return fail(errno, "udp listen");
    }
    if (i == 0) {
      socklen_t len = sizeof addr;
      getsockname(w->fd, reinterpret_cast<sockaddr*>(&addr), &len);
    }
    workers_.push_back(std::move(w));
  }
  port_ = ntohs(addr.sin_port);

  int tfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (tfd < 0) return fail(errno, "tcp socket");
  int one = 1;
  setsockopt(tfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(tfd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || listen(tfd, 512) != 0) {
    int err = errno;
    close(tfd);
    return fail(err, "tcp listen");
  }
  tcp_ = std::make_unique<TcpLoop>(this, tfd, thread_counters_[workers].get());
  RETURN_IF_ERROR(tcp_->Start());
  for (auto& w : workers_) {
    Worker* raw = w.get();
    w->thread = std::thread([this, raw] { UdpLoop(raw); });
    // Named, so that a benchmark or an operator can pin or watch them.
    pthread_setname_np(w->thread.native_handle(), StrCat("dns-udp-", w->index).c_str());
  }
  LOG_INFO("dns server listening", {"addr", options_.listen}, {"port", port_},
           {"udp_workers", workers});
  return absl::OkStatus();
}

void DnsServer::Stop() {
  if (stopping_.exchange(true)) return;
  for (auto& w : workers_) {
    if (w->thread.joinable()) w->thread.join();
  }
  if (tcp_) tcp_->Stop();
  tcp_.reset();
  workers_.clear();
}

void DnsServer::UdpLoop(Worker* w) {
  Counters& counters = *w->counters;
  for (int i = 0; i < kBatch; ++i) {
    w->in_iov[i] = {w->in[i], kMaxQuery};
    std::memset(&w->in_msgs[i], 0, sizeof(mmsghdr));
    w->in_msgs[i].msg_hdr.msg_iov = &w->in_iov[i];
    w->in_msgs[i].msg_hdr.msg_iovlen = 1;
    w->in_msgs[i].msg_hdr.msg_name = &w->addr[i];
  }
  const int64_t coalesce_ns = absl::ToInt64Nanoseconds(options_.udp_coalesce);
  // The timer's own slack would otherwise stretch the wait (50 us by default).
  if (coalesce_ns > 0) prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);
  bool coalescing = false;  // under load: read after a wait on the timer
  bool full = false;        // the last read filled the batch: read again at once
  LoadWindows load(MonotonicNs());
  while (!stopping_.load(std::memory_order_relaxed)) {
    for (int i = 0; i < kBatch; ++i) {
      w->in_msgs[i].msg_hdr.msg_namelen = sizeof(sockaddr_in);
      w->in_msgs[i].msg_hdr.msg_flags = 0;
    }
    const bool waited = coalescing && !full;
    if (waited) {
      timespec wait{coalesce_ns / 1'000'000'000, coalesce_ns % 1'000'000'000};
      clock_nanosleep(CLOCK_MONOTONIC, 0, &wait, nullptr);
      counters.Bump(counters.udp_waits);
    }
    const int n =
        recvmmsg(w->fd, w->in_msgs, kBatch, coalescing ? MSG_DONTWAIT : MSG_WAITFORONE, nullptr);
    // One clock reading per batch, not per query: the batch's start, and the load's.
    const int64_t start = MonotonicNs();
    if (coalescing) {
      // The load is gone when a wait brought fewer than kCoalesceStay queries, or a
      // read right after a full batch found none.
      if (n < kCoalesceStay && (waited || n <= 0)) {
        coalescing = false;
        load.Restart(start);
      }
    } else if (coalesce_ns > 0) {
      coalescing = load.Loaded(start);
    }
    if (n <= 0) {  // a timeout (to check stopping_), EINTR, or nothing to read
      full = false;
      continue;
    }
    full = n == kBatch;
    Refresh(&w->zone);
    counters.Bump(counters.queries_udp, static_cast<uint64_t>(n));
    // The batch's lookups, prefetched in two waves (index slots, then the records
    // they point at), so that their cache misses overlap.
    if (w->zone.zone && n > 1) {
      for (int i = 0; i < n; ++i) {
        w->lookups[i] = PrefetchAnswer(*w->zone.zone, w->in[i], w->in_msgs[i].msg_len);
      }
      for (int i = 0; i < n; ++i) w->lookups[i].PrefetchRecord();
    }
    int out_count = 0;
    for (int i = 0; i < n; ++i) {
      if (w->in_msgs[i].msg_hdr.msg_flags & MSG_TRUNC) {
        counters.Bump(counters.dropped);
        continue;
      }
      ReplyTo reply_to;
      reply_to.udp_fd = w->fd;
      reply_to.udp_client = w->addr[i];
      int len = Handle(w->in[i], w->in_msgs[i].msg_len, w->out[i], kMaxQuery, /*tcp=*/false,
                       w->zone, reply_to, &counters, start);
      if (len <= 0) continue;
      w->out_iov[out_count] = {w->out[i], static_cast<size_t>(len)};
      std::memset(&w->out_msgs[out_count], 0, sizeof(mmsghdr));
      w->out_msgs[out_count].msg_hdr.msg_iov = &w->out_iov[out_count];
      w->out_msgs[out_count].msg_hdr.msg_iovlen = 1;
      w->out_msgs[out_count].msg_hdr.msg_name = &w->addr[i];
      w->out_msgs[out_count].msg_hdr.msg_namelen = sizeof(sockaddr_in);
      ++out_count;
    }
    // Every answer of the batch waited for the batch: from its receipt to the send,
    // counted before the send so that a client holding an answer sees it counted.
    if (out_count > 0) {
      counters.Latency(static_cast<uint64_t>(MonotonicNs() - start),
                       static_cast<uint64_t>(out_count));
    }
    int sent = 0;
    while (sent < out_count) {
      int r = sendmmsg(w->fd, w->out_msgs + sent, static_cast<unsigned>(out_count - sent), 0);
      if (r <= 0) break;
      sent += r;
    }
  }
}

void DnsServer::ReplyTo::Send(std::vector<uint8_t> response) const {
  if (tcp != nullptr) {
    tcp->Deliver(tcp_conn, std::move(response));
  } else {
    sendto(udp_fd, response.data(), response.size(), 0,
           reinterpret_cast<const sockaddr*>(&udp_client), sizeof udp_client);
  }
}

int DnsServer::Handle(const uint8_t* data, size_t size, uint8_t* out, size_t out_capacity,
                      bool tcp, const ZoneCache& zone, const ReplyTo& reply_to,
                      Counters* counters, int64_t start) {
  if (zone.zone) {
    FastAnswer fast =
        AnswerFast(*zone.zone, data, size, out, out_capacity, options_.max_udp_size, tcp);
    if (fast.size > 0) {
      counters->Answered(fast.qtype, fast.rcode);
      return static_cast<int>(fast.size);
    }
  }
  // Only a forwarded query pays for a closure.
  auto async = [reply_to](std::vector<uint8_t> response) { reply_to.Send(std::move(response)); };
  Counters* async_counters = async_counters_.get();
  auto observe = [async_counters, start] {
    async_counters->Latency(static_cast<uint64_t>(MonotonicNs() - start), 1);
  };
  Query q;
  DecodeError err;
  if (!DecodeQuery(data, size, &q, &err)) {
    if (err.kind == DecodeError::Kind::kDrop) {
      counters->Bump(counters->dropped);
      return 0;
    }
    size_t len = 0;
    WriteFormErr(data, size, out, std::min<size_t>(out_capacity, 512), &len);
    counters->CountRcode(static_cast<uint8_t>(Rcode::kFormErr));
    return static_cast<int>(len);
  }
  counters->CountQtype(q.question.qtype);
  size_t capacity = ResponseCapacity(tcp, out_capacity, q.edns, options_.max_udp_size);
  uint16_t reply_udp = options_.max_udp_size;
  MessageWriter w(out, capacity);
  auto finish = [&](Rcode rcode) {
    counters->CountRcode(static_cast<uint8_t>(rcode));
    return static_cast<int>(w.size());
  };

  if (q.edns && q.edns->version > 0) {
    // BADVERS (16): the upper bits of the rcode go in the OPT record.
    BeginResponse(q, &w);
    w.set_capacity(w.size() + 11);
    w.AddOpt(reply_udp, /*extended_rcode=*/1);
    return finish(Rcode::kNoError);
  }
  Rcode refuse = Rcode::kNoError;
  if (q.header.opcode() != kOpcodeQuery) {
    refuse = Rcode::kNotImp;
  } else if (q.question.qclass != kClassIn && q.question.qclass != kClassAny) {
    refuse = Rcode::kRefused;
  } else if (q.question.qtype == type::kAxfr || q.question.qtype == type::kIxfr) {
    refuse = Rcode::kRefused;
  }
  if (refuse != Rcode::kNoError) {
    WriteErrorResponse(q, true, refuse, reply_udp, &w);
    return finish(refuse);
  }

  if (!zone.zone) {
    WriteErrorResponse(q, true, Rcode::kServFail, reply_udp, &w);
    return finish(Rcode::kServFail);
  }

  BeginResponse(q, &w);
  ZoneAnswer a = AnswerFromZone(*zone.zone, q, &w);
  if (a.outcome == ZoneOutcome::kAnswered) {
    if (a.truncated) counters->Bump(counters->truncated);
    EndResponse(q, reply_udp, &w);
    return finish(a.rcode);
  }
  if (upstream_ == nullptr) {
    w = MessageWriter(out, capacity);
    WriteErrorResponse(q, true, Rcode::kRefused, reply_udp, &w);
    return finish(Rcode::kRefused);
  }
  counters->Bump(counters->forwarded);
  size_t client_capacity = capacity;
  if (a.outcome == ZoneOutcome::kNotAuthoritative) {
    std::vector<uint8_t> query(data, data + size);
    upstream_->Resolve(std::move(query), [q, client_capacity, reply_udp, async, observe,
                                          async_counters](absl::StatusOr<std::vector<uint8_t>> r) {
      observe();
      if (!r.ok() || r->size() < kHeaderSize) {
        async_counters->CountRcode(static_cast<uint8_t>(Rcode::kServFail));
        async(ErrorBytes(q, Rcode::kServFail, reply_udp));
        return;
      }
      (*r)[0] = static_cast<uint8_t>(q.header.id >> 8);
      (*r)[1] = static_cast<uint8_t>(q.header.id);
      async_counters->CountRcode((*r)[3] & 0xF);
      async(FitForClient(*std::move(r), q, client_capacity));
    });
    return -1;
  }
  // An ExternalName CNAME to a name outside: resolve the target upstream and
  // append its records after the CNAME.
  std::vector<uint8_t> sub(512);
  MessageWriter sw(sub.data(), sub.size());
  Header sh;
  sh.id = q.header.id;
  sh.set_rd(true);
  sw.SetHeader(sh);
  sw.AddQuestion(a.external_target, q.question.qtype, kClassIn);
  sub.resize(sw.size());
  std::shared_ptr<const ClusterZone> snapshot = zone.zone;
  upstream_->Resolve(std::move(sub), [q, snapshot, client_capacity, reply_udp, async, observe,
                                      async_counters](absl::StatusOr<std::vector<uint8_t>> r) {
    observe();
    std::vector<uint8_t> out(client_capacity);
    MessageWriter w(out.data(), out.size());
    BeginResponse(q, &w);
    AnswerFromZone(*snapshot, q, &w);
    Rcode rcode = Rcode::kServFail;
    if (r.ok()) {
      auto m = DecodeMessage(r->data(), r->size());
      if (m.ok()) {
        rcode = m->header.rcode();
        for (const ResourceRecord& rr : m->answers) {
          if (!w.AddRecord(Section::kAnswer, rr)) {
            w.set_tc(true);
            break;
          }
        }
      }
    }
    w.set_rcode(rcode);
    EndResponse(q, reply_udp, &w);
    out.resize(w.size());
    async_counters->CountRcode(static_cast<uint8_t>(rcode));
    async(std::move(out));
  });
  return -1;
}

}  // namespace loom::dns
