#include "dns/forwarder.h"

#include <ares.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <fstream>
#include <random>
#include <sstream>

#include "common/log.h"
#include "common/status.h"
#include "common/strings.h"
#include "dns/zone_answer.h"

namespace loom::dns {
namespace {

constexpr size_t kMaxResponse = 65535;

std::string CacheKey(const Query& q) {
  Name lower = q.question.name.Lowered();
  std::string key(reinterpret_cast<const char*>(lower.wire()), lower.wire_size());
  key.push_back(static_cast<char>(q.question.qtype >> 8));
  key.push_back(static_cast<char>(q.question.qtype));
  key.push_back(static_cast<char>(q.question.qclass >> 8));
  key.push_back(static_cast<char>(q.question.qclass));
  key.push_back(static_cast<char>((q.edns && q.edns->dnssec_ok ? 1 : 0) | (q.header.cd() ? 2 : 0)));
  return key;
}

// A response for `q` from a decoded message, TTLs lowered by `age` seconds, or
// all set to `fixed_ttl` when that is non-zero (stale answers).
std::vector<uint8_t> Render(const Message& m, const Query& q, uint32_t age, uint32_t fixed_ttl) {
  std::vector<uint8_t> out(kMaxResponse);
  MessageWriter w(out.data(), out.size());
  BeginResponse(q, &w);  // the same header and question as zone answers
  Header h = w.header();
  h.set_ad(m.header.ad());
  h.set_rcode(m.header.rcode());
  w.SetHeader(h);
  auto emit = [&](Section s, const std::vector<ResourceRecord>& rrs) {
    for (const ResourceRecord& rr : rrs) {
      ResourceRecord copy = rr;
      copy.ttl = fixed_ttl != 0 ? fixed_ttl : (rr.ttl > age ? rr.ttl - age : 0);
      if (!w.AddRecord(s, copy)) {
        w.set_tc(true);
        return false;
      }
    }
    return true;
  };
  if (emit(Section::kAnswer, m.answers) && emit(Section::kAuthority, m.authority)) {
    emit(Section::kAdditional, m.additional);
  }
  EndResponse(q, 1232, &w);
  out.resize(w.size());
  return out;
}

// How long a response may be cached: 0 for not at all.
uint32_t CacheTtl(const Message& m, uint32_t max_ttl, uint32_t max_negative_ttl) {
  if (m.header.tc()) return 0;
  Rcode rc = m.header.rcode();
  if (rc == Rcode::kNoError && !m.answers.empty()) {
    uint32_t ttl = max_ttl;
    for (const ResourceRecord& rr : m.answers) ttl = std::min(ttl, rr.ttl);
    return ttl;
  }
  if (rc == Rcode::kNxDomain || rc == Rcode::kNoError) {
    for (const ResourceRecord& rr : m.authority) {
      if (rr.rtype != type::kSoa || rr.rdata.size() < 20) continue;
      const auto* p = reinterpret_cast<const uint8_t*>(rr.rdata.data()) + rr.rdata.size() - 4;
      uint32_t minimum = (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
      return std::min({rr.ttl, minimum, max_negative_ttl});
    }
  }
  return 0;
}

std::vector<uint8_t> BuildQuery(const Name& name, uint16_t qtype, uint16_t id) {
  std::vector<uint8_t> q(512);
  MessageWriter w(q.data(), q.size());
  Header h;
  h.id = id;
  h.set_rd(true);
  w.SetHeader(h);
  w.AddQuestion(name, qtype, kClassIn);
  q.resize(w.size());
  return q;
}

std::once_flag g_ares_init;

}  // namespace

absl::StatusOr<std::vector<std::string>> ReadResolvConf(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(StrCat("resolv.conf ", path, ": cannot be read"));
  std::vector<std::string> servers;
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::string word, addr;
    ls >> word >> addr;
    if (word != "nameserver" || addr.empty()) continue;
    if (addr.find(':') != std::string::npos) continue;  // IPv6: not yet
    servers.push_back(addr);
  }
  if (servers.empty()) {
    return absl::NotFoundError(StrCat("resolv.conf ", path, ": no IPv4 nameserver"));
  }
  return servers;
}

struct Forwarder::UpstreamState {
  std::string addr;  // ip:port
  ares_channel channel = nullptr;
  int fails = 0;
  bool healthy = true;
  bool check_inflight = false;
  absl::Time next_check;

  ~UpstreamState() {
    if (channel) ares_destroy(channel);
  }
};

struct Forwarder::Pending {
  struct Waiter {
    Query query;
    ResolveCallback done;
  };
  std::vector<uint8_t> query;
  std::string key;
  std::vector<Waiter> waiters;
  size_t attempts = 0;
};

namespace {
struct SendContext {
  Forwarder* forwarder;
  std::shared_ptr<void> pending;
  size_t upstream;
  size_t attempt;
};
}  // namespace

Forwarder::Forwarder(ForwarderOptions options) : options_(std::move(options)) {}

Forwarder::~Forwarder() { Stop(); }

absl::Status Forwarder::Start() {
  if (options_.upstreams.empty()) {
    return absl::InvalidArgumentError("dns upstream: no upstream server configured");
  }
  std::call_once(g_ares_init, [] { ares_library_init(ARES_LIB_INIT_ALL); });
  for (const std::string& u : options_.upstreams) {
    auto st = std::make_unique<UpstreamState>();
    st->addr = u.find(':') == std::string::npos ? StrCat(u, ":53") : u;
    ares_options opts{};
    opts.flags = ARES_FLAG_NOCHECKRESP | ARES_FLAG_STAYOPEN;
    opts.tries = 1;
    opts.timeout = static_cast<int>(absl::ToInt64Milliseconds(options_.upstream_timeout));
    int rc = ares_init_options(&st->channel, &opts,
                               ARES_OPT_FLAGS | ARES_OPT_TRIES | ARES_OPT_TIMEOUTMS);
    if (rc != ARES_SUCCESS) {
      return absl::InternalError(StrCat("dns upstream ", u, ": ", ares_strerror(rc)));
    }
    rc = ares_set_servers_ports_csv(st->channel, st->addr.c_str());
    if (rc != ARES_SUCCESS) {
      return absl::InvalidArgumentError(
          StrCat("dns upstream \"", u, "\": not an ip[:port] (", ares_strerror(rc), ")"));
    }
    upstreams_.push_back(std::move(st));
  }
  wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake_fd_ < 0) return ErrnoToStatus(errno, "dns forwarder eventfd");
  thread_ = std::thread([this] { Loop(); });
  return absl::OkStatus();
}

void Forwarder::Stop() {
  if (!thread_.joinable()) return;
  stop_.store(true);
  uint64_t one = 1;
  (void)!write(wake_fd_, &one, sizeof one);
  thread_.join();
  close(wake_fd_);
  wake_fd_ = -1;
}

std::vector<std::string> Forwarder::HealthyUpstreams() const {
  std::vector<std::string> out;
  for (const auto& u : upstreams_) {
    if (u->healthy) out.push_back(u->addr);
  }
  return out;
}

size_t Forwarder::cache_size() const {
  std::lock_guard<std::mutex> lock(cache_mu_);
  return cache_.size();
}

void Forwarder::Resolve(std::vector<uint8_t> query, ResolveCallback done) {
  Query q;
  DecodeError err;
  if (!DecodeQuery(query.data(), query.size(), &q, &err)) {
    done(absl::InvalidArgumentError(err.reason));
    return;
  }
  if (options_.detect_loops && !probe_names_.empty()) {
    std::string name = q.question.name.Lowered().ToText();
    for (const std::string& probe : probe_names_) {
      if (name == probe && !loop_detected_.exchange(true)) {
        LOG_ERROR("forwarding loop detected: an upstream sends loomd's own probe back to it; "
                  "forwarding stops (answers SERVFAIL) until loomd restarts",
                  {"probe", name});
      }
    }
  }
  if (loop_detected_.load()) {
    done(absl::FailedPreconditionError("forwarding loop detected"));
    return;
  }
  std::string key = CacheKey(q);
  std::vector<uint8_t> out;
  if (AnswerFromCache(q, key, /*allow_stale=*/false, &out)) {
    stats_.cache_hits.fetch_add(1, std::memory_order_relaxed);
    done(std::move(out));
    return;
  }
  stats_.cache_misses.fetch_add(1, std::memory_order_relaxed);
  auto p = std::make_shared<Pending>();
  p->query = std::move(query);
  p->key = std::move(key);
  p->waiters.push_back({q, std::move(done)});
  {
    std::lock_guard<std::mutex> lock(queue_mu_);
    queue_.push_back(std::move(p));
  }
  uint64_t one = 1;
  (void)!write(wake_fd_, &one, sizeof one);
}

bool Forwarder::AnswerFromCache(const Query& q, const std::string& key, bool allow_stale,
                                std::vector<uint8_t>* out) {
  std::lock_guard<std::mutex> lock(cache_mu_);
  auto it = cache_.find(key);
  if (it == cache_.end()) return false;
  CacheEntry& e = it->second;
  absl::Duration age = options_.now() - e.stored;
  int64_t age_s = std::max<int64_t>(0, absl::ToInt64Seconds(age));
  if (age_s < e.ttl) {
    lru_.splice(lru_.begin(), lru_, e.lru);
    *out = Render(e.message, q, static_cast<uint32_t>(age_s), 0);
    return true;
  }
  if (age > absl::Seconds(e.ttl) + options_.serve_stale_for) {
    lru_.erase(e.lru);
    cache_.erase(it);
    return false;
  }
  if (!allow_stale) return false;
  stats_.stale_served.fetch_add(1, std::memory_order_relaxed);
  *out = Render(e.message, q, 0, options_.stale_ttl);
  return true;
}

void Forwarder::Store(const std::string& key, const Message& m) {
  uint32_t ttl = CacheTtl(m, options_.max_ttl, options_.max_negative_ttl);
  if (ttl == 0 || options_.cache_entries == 0) return;
  std::lock_guard<std::mutex> lock(cache_mu_);
  auto it = cache_.find(key);
  if (it != cache_.end()) {
    lru_.splice(lru_.begin(), lru_, it->second.lru);
  } else {
    while (cache_.size() >= options_.cache_entries && !lru_.empty()) {
      cache_.erase(lru_.back());
      lru_.pop_back();
    }
    lru_.push_front(key);
    it = cache_.emplace(key, CacheEntry{}).first;
    it->second.lru = lru_.begin();
  }
  it->second.message = m;
  it->second.stored = options_.now();
  it->second.ttl = ttl;
}

void Forwarder::Send(std::shared_ptr<Pending> p, size_t attempt) {
  std::vector<size_t> candidates;
  for (size_t i = 0; i < upstreams_.size(); ++i) {
    if (upstreams_[i]->healthy) candidates.push_back(i);
  }
  if (candidates.empty()) {
    for (size_t i = 0; i < upstreams_.size(); ++i) candidates.push_back(i);
  }
  size_t idx = candidates[attempt % candidates.size()];
  stats_.upstream_queries.fetch_add(1, std::memory_order_relaxed);
  auto* ctx = new SendContext{this, p, idx, attempt};
  ares_send(
      upstreams_[idx]->channel, p->query.data(), static_cast<int>(p->query.size()),
      [](void* arg, int status, int /*timeouts*/, unsigned char* abuf, int alen) {
        std::unique_ptr<SendContext> c(static_cast<SendContext*>(arg));
        c->forwarder->OnAnswer(std::static_pointer_cast<Pending>(c->pending), c->upstream, status,
                               abuf, alen);
      },
      ctx);
}

void Forwarder::OnAnswer(std::shared_ptr<Pending> p, size_t upstream, int status,
                         const uint8_t* abuf, int alen) {
  if (status == ARES_EDESTRUCTION || stop_.load()) {
    Finish(p, absl::CancelledError("forwarder stopping"));
    return;
  }
  UpstreamState& u = *upstreams_[upstream];
  absl::StatusOr<Message> m = absl::UnavailableError(ares_strerror(status));
  if (status == ARES_SUCCESS && abuf != nullptr && alen >= static_cast<int>(kHeaderSize)) {
    m = DecodeMessage(abuf, static_cast<size_t>(alen));
  }
  bool failed = !m.ok() || m->header.rcode() == Rcode::kServFail ||
                m->header.rcode() == Rcode::kRefused;
  if (!failed) {
    u.fails = 0;
    Store(p->key, *m);
    auto it = inflight_.find(p->key);
    if (it != inflight_.end() && it->second == p) inflight_.erase(it);
    for (auto& w : p->waiters) w.done(Render(*m, w.query, 0, 0));
    p->waiters.clear();
    return;
  }
  stats_.upstream_failures.fetch_add(1, std::memory_order_relaxed);
  if (++u.fails >= options_.max_fails && u.healthy) {
    u.healthy = false;
    u.next_check = options_.now() + options_.health_check_interval;
    LOG_WARNING("dns upstream marked unhealthy", {"upstream", u.addr}, {"fails", u.fails});
  }
  // One more try on another upstream; then stale answers; then the failure.
  if (p->attempts + 1 < std::min<size_t>(2, upstreams_.size())) {
    ++p->attempts;
    Send(p, p->attempts);
    return;
  }
  std::string why = m.ok() ? StrCat("upstream ", u.addr, " answered ", RcodeName(m->header.rcode()))
                           : StrCat("upstream ", u.addr, ": ", m.status().message());
  Finish(p, absl::UnavailableError(why));
}

void Forwarder::Finish(const std::shared_ptr<Pending>& p,
                       absl::StatusOr<std::vector<uint8_t>> response) {
  auto it = inflight_.find(p->key);
  if (it != inflight_.end() && it->second == p) inflight_.erase(it);
  for (auto& w : p->waiters) {
    std::vector<uint8_t> stale;
    if (!response.ok() && AnswerFromCache(w.query, p->key, /*allow_stale=*/true, &stale)) {
      w.done(std::move(stale));
    } else {
      w.done(response);
    }
  }
  p->waiters.clear();
}

void Forwarder::HealthCheck(absl::Time now) {
  static const Name kRoot;
  for (size_t i = 0; i < upstreams_.size(); ++i) {
    UpstreamState& u = *upstreams_[i];
    if (u.healthy || u.check_inflight || now < u.next_check) continue;
    u.check_inflight = true;
    std::vector<uint8_t> q = BuildQuery(kRoot, type::kNs, 0);
    ares_send(
        u.channel, q.data(), static_cast<int>(q.size()),
        [](void* arg, int status, int, unsigned char*, int alen) {
          auto* self = static_cast<std::pair<Forwarder*, size_t>*>(arg);
          Forwarder* f = self->first;
          UpstreamState& up = *f->upstreams_[self->second];
          delete self;
          if (status == ARES_EDESTRUCTION) return;
          up.check_inflight = false;
          if (status == ARES_SUCCESS && alen >= static_cast<int>(kHeaderSize)) {
            up.healthy = true;
            up.fails = 0;
            LOG_INFO("dns upstream healthy again", {"upstream", up.addr});
          } else {
            up.next_check = f->options_.now() + f->options_.health_check_interval;
          }
        },
        new std::pair<Forwarder*, size_t>(this, i));
  }
}

void Forwarder::SendLoopProbes() {
  std::mt19937_64 rng(std::random_device{}());
  for (size_t i = 0; i < upstreams_.size(); ++i) {
    std::string name = StrCat(rng() % 1000000000, ".", rng() % 1000000000, ".loop-detect.loom.");
    probe_names_.push_back(name);
    std::vector<uint8_t> q = BuildQuery(*Name::FromText(name), type::kHinfo, 0);
    ares_send(upstreams_[i]->channel, q.data(), static_cast<int>(q.size()),
              [](void*, int, int, unsigned char*, int) {}, nullptr);
  }
}

void Forwarder::Loop() {
  if (options_.detect_loops) SendLoopProbes();
  while (!stop_.load()) {
    std::vector<std::shared_ptr<Pending>> batch;
    {
      std::lock_guard<std::mutex> lock(queue_mu_);
      batch.swap(queue_);
    }
    for (auto& p : batch) {
      auto it = inflight_.find(p->key);
      if (it != inflight_.end()) {
        stats_.coalesced.fetch_add(1, std::memory_order_relaxed);
        for (auto& w : p->waiters) it->second->waiters.push_back(std::move(w));
        continue;
      }
      inflight_[p->key] = p;
      Send(p, 0);
    }
    HealthCheck(options_.now());

    std::vector<pollfd> pfds = {{wake_fd_, POLLIN, 0}};
    std::vector<size_t> owner = {0};
    timeval max_tv{0, 100 * 1000};
    int timeout_ms = 100;
    for (size_t i = 0; i < upstreams_.size(); ++i) {
      ares_socket_t socks[ARES_GETSOCK_MAXNUM];
      int bits = ares_getsock(upstreams_[i]->channel, socks, ARES_GETSOCK_MAXNUM);
      for (int j = 0; j < ARES_GETSOCK_MAXNUM; ++j) {
        short events = 0;
        if (ARES_GETSOCK_READABLE(bits, j)) events |= POLLIN;
        if (ARES_GETSOCK_WRITABLE(bits, j)) events |= POLLOUT;
        if (events == 0) continue;
        pfds.push_back({socks[j], events, 0});
        owner.push_back(i);
      }
      timeval tv;
      timeval* t = ares_timeout(upstreams_[i]->channel, &max_tv, &tv);
      timeout_ms = std::min<int>(timeout_ms, static_cast<int>(t->tv_sec * 1000 + t->tv_usec / 1000));
    }
    int n = poll(pfds.data(), pfds.size(), std::max(timeout_ms, 1));
    if (n > 0 && (pfds[0].revents & POLLIN)) {
      uint64_t v;
      (void)!read(wake_fd_, &v, sizeof v);
    }
    for (size_t k = 1; n > 0 && k < pfds.size(); ++k) {
      if (pfds[k].revents == 0) continue;
      ares_socket_t r = (pfds[k].revents & (POLLIN | POLLERR | POLLHUP)) ? pfds[k].fd : ARES_SOCKET_BAD;
      ares_socket_t w = (pfds[k].revents & POLLOUT) ? pfds[k].fd : ARES_SOCKET_BAD;
      ares_process_fd(upstreams_[owner[k]]->channel, r, w);
    }
    for (auto& u : upstreams_) ares_process_fd(u->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
  }
  // Pending queries end with ARES_EDESTRUCTION as the channels go.
  for (auto& u : upstreams_) {
    ares_destroy(u->channel);
    u->channel = nullptr;
  }
  std::vector<std::shared_ptr<Pending>> left;
  {
    std::lock_guard<std::mutex> lock(queue_mu_);
    left.swap(queue_);
  }
  for (auto& p : left) Finish(p, absl::CancelledError("forwarder stopping"));
}

}  // namespace loom::dns
