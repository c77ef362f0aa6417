#include "lb/ingress/proxy.h"

#include <fcntl.h>
#include <string.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <array>
#include <limits>
#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http/basic_parser.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/status.hpp>

#include "absl/time/clock.h"
#include "common/log.h"
#include "common/strings.h"
#include "lb/ingress/endpoint_pool.h"

namespace loom::lb::ingress {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace ssl = boost::asio::ssl;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;

std::string BackendKey(std::string_view ns, const WeightedBackend& b) {
  return b.port.name.empty() ? StrCat(ns, "/", b.service, ":", b.port.number)
                             : StrCat(ns, "/", b.service, ":", b.port.name);
}

namespace {

constexpr size_t kClientRead = 16 * 1024;
constexpr size_t kUpstreamRead = 32 * 1024;
constexpr size_t kMaxResponseHeader = 64 * 1024;
constexpr size_t kMaxResponseFields = 256;
// Bodies are streamed, never held: no limit. (Not boost::none: Boost 1.74 compares
// the content length against the empty optional and fails every body.)
constexpr uint64_t kNoBodyLimit = std::numeric_limits<uint64_t>::max();
constexpr int64_t kTickNs = 100'000'000;
constexpr int64_t kLingerNs = 2'000'000'000;

int64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}
int64_t Ns(absl::Duration d) { return absl::ToInt64Nanoseconds(d); }

bool IEquals(std::string_view a, std::string_view b) {
  return beast::iequals(beast::string_view(a.data(), a.size()), beast::string_view(b.data(), b.size()));
}

void AppendHeader(std::string& out, std::string_view name, std::string_view value) {
  out.append(name).append(": ").append(value).append("\r\n");
}

// What the request header said that the proxy acts on; the head to send upstream
// is written into `head` as the header is parsed (no per-field allocation once the
// strings have grown to their working size).
struct RequestInfo {
  std::string head;
  std::string host, target, method, xff, upgrade;
  int version = 11;
  bool expect_continue = false;
  bool has_host = false;
  size_t fields = 0;
  size_t max_fields = 100;
  bool too_many_fields = false;

  void Reset() {
    head.clear();
    host.clear();
    target.clear();
    method.clear();
    xff.clear();
    upgrade.clear();
    version = 11;
    expect_continue = false;
    has_host = false;
    fields = 0;
    too_many_fields = false;
  }
};

// A parser of the head only: the body is framed by the parser and skipped here (the
// proxy streams bodies itself); subclasses take the start line and the fields.
template <bool isRequest>
class HeadParser : public bhttp::basic_parser<isRequest> {
 protected:
  void on_header_impl(error_code&) override {}
  void on_body_init_impl(const boost::optional<uint64_t>&, error_code&) override {}
  size_t on_body_impl(beast::string_view body, error_code&) override { return body.size(); }
  void on_chunk_header_impl(uint64_t, beast::string_view, error_code&) override {}
  size_t on_chunk_body_impl(uint64_t, beast::string_view body, error_code&) override {
    return body.size();
  }
  void on_finish_impl(error_code&) override {}
};

class RequestParser final : public HeadParser<true> {
 public:
  explicit RequestParser(RequestInfo* info) : info_(info) {}

 private:
  void on_request_impl(bhttp::verb, beast::string_view method, beast::string_view target,
                       int version, error_code& ec) override {
    if (version != 10 && version != 11) {
      ec = bhttp::error::bad_version;
      return;
    }
    info_->version = version;
    info_->method.assign(method.data(), method.size());
    info_->target.assign(target.data(), target.size());
    info_->head.append(method.data(), method.size())
        .append(" ")
        .append(target.data(), target.size())
        .append(version == 11 ? " HTTP/1.1\r\n" : " HTTP/1.0\r\n");
  }
  void on_response_impl(int, beast::string_view, int, error_code&) override {}
  void on_field_impl(bhttp::field name, beast::string_view name_str, beast::string_view value,
                     error_code& ec) override {
    if (++info_->fields > info_->max_fields) {
      info_->too_many_fields = true;
      ec = bhttp::error::header_limit;
      return;
    }
    std::string_view n(name_str.data(), name_str.size()), v(value.data(), value.size());
    switch (name) {
      case bhttp::field::connection:
      case bhttp::field::keep_alive:
      case bhttp::field::proxy_connection:
      case bhttp::field::te:
        return;  // hop-by-hop: this connection's, not the upstream's
      case bhttp::field::upgrade:
        info_->upgrade.assign(v);
        return;
      case bhttp::field::host:
        if (info_->has_host) {  // two Hosts: which one routes is ambiguous (RFC 9112 3.2)
          ec = bhttp::error::bad_value;
          return;
        }
        info_->has_host = true;
        info_->host.assign(v);
        break;
      case bhttp::field::expect:
        if (IEquals(v, "100-continue")) info_->expect_continue = true;
        break;
      case bhttp::field::unknown:
        if (IEquals(n, "x-forwarded-for")) {
          if (!info_->xff.empty()) info_->xff.append(", ");
          info_->xff.append(v);
          return;
        }
        if (IEquals(n, "x-forwarded-proto")) return;  // set by the proxy
        break;
      default:
        break;
    }
    AppendHeader(info_->head, n, v);
  }

  RequestInfo* info_;
};

struct ResponseInfo {
  std::string head;
  int status = 0;
  size_t fields = 0;
  void Reset() {
    head.clear();
    status = 0;
    fields = 0;
  }
};

class ResponseParser final : public HeadParser<false> {
 public:
  explicit ResponseParser(ResponseInfo* info) : info_(info) {}

 private:
  void on_request_impl(bhttp::verb, beast::string_view, beast::string_view, int,
                       error_code&) override {}
  void on_response_impl(int code, beast::string_view reason, int, error_code&) override {
    info_->status = code;
    info_->head.append("HTTP/1.1 ").append(std::to_string(code)).append(" ");
    info_->head.append(reason.data(), reason.size()).append("\r\n");
  }
  void on_field_impl(bhttp::field name, beast::string_view name_str, beast::string_view value,
                     error_code& ec) override {
    if (++info_->fields > kMaxResponseFields) {
      ec = bhttp::error::header_limit;
      return;
    }
    // A 101 keeps Connection and Upgrade: they are what the client switches on.
    if (info_->status != 101 &&
        (name == bhttp::field::connection || name == bhttp::field::keep_alive ||
         name == bhttp::field::proxy_connection)) {
      return;
    }
    AppendHeader(info_->head, std::string_view(name_str.data(), name_str.size()),
                 std::string_view(value.data(), value.size()));
  }

  ResponseInfo* info_;
};

// Metrics of one route (ingress, host, path), kept across snapshots.
struct RouteStats {
  metrics::Family<metrics::Counter>* requests = nullptr;
  std::vector<std::string> labels;  // ingress, host, path
  std::array<std::atomic<metrics::Counter*>, 600> by_code{};
  metrics::Histogram* latency = nullptr;
  metrics::Counter* connect_errors = nullptr;
  metrics::Counter* timeouts = nullptr;
  metrics::Counter* resets = nullptr;

  metrics::Counter& Code(int code) {
    if (code < 100 || code > 599) code = 599;
    metrics::Counter* c = by_code[code].load(std::memory_order_acquire);
    if (c == nullptr) {
      std::vector<std::string> values = labels;
      values.push_back(std::to_string(code));
      c = &requests->WithLabels(std::move(values));
      by_code[code].store(c, std::memory_order_release);
    }
    return *c;
  }
};

struct RouteRuntime {
  const Route* route = nullptr;
  std::vector<EndpointPool*> pools;  // one per backend of the route
  RouteStats* stats = nullptr;
  int64_t timeout_ns = 0;
};

struct Snapshot {
  std::shared_ptr<const Router> router;
  std::vector<std::unique_ptr<EndpointPool>> pools;
  std::vector<RouteRuntime> routes;
  absl::flat_hash_map<std::string, std::shared_ptr<ssl::context>> certs;
};

struct Upstream {
  explicit Upstream(asio::io_context& io) : sock(io) {}
  tcp::socket sock;
  beast::flat_buffer buf;
  std::shared_ptr<EndpointState> endpoint;
  int64_t idle_since = 0;
};

struct Worker;

// A client connection, in the worker's list for the timeout sweep.
struct ConnBase {
  virtual ~ConnBase() = default;
  virtual void OnTick(int64_t) {}
  virtual void Shutdown() {}
  ConnBase* prev = nullptr;
  ConnBase* next = nullptr;
};

// Whether `buf` holds a whole header (up to CRLF CRLF). Beast's parser is only given
// whole headers: fed a header cut right after a CRLF it reports "bad field" (1.74).
// `scanned` keeps the search from starting over on every read.
bool HasHeaderEnd(const beast::flat_buffer& buf, size_t& scanned) {
  const char* p = static_cast<const char*>(buf.data().data());
  size_t size = buf.size();
  size_t from = scanned > 3 ? scanned - 3 : 0;
  scanned = size;
  return from < size && memmem(p + from, size - from, "\r\n\r\n", 4) != nullptr;
}

std::string_view Reason(int code) {
  beast::string_view r = bhttp::obsolete_reason(static_cast<bhttp::status>(code));
  return {r.data(), r.size()};
}

}  // namespace

struct IngressProxy::Impl {
  explicit Impl(ProxyOptions o);
  ~Impl();

  std::shared_ptr<const Snapshot> Current(uint64_t* gen) {
    std::lock_guard<std::mutex> lock(snap_mu);
    *gen = generation.load(std::memory_order_relaxed);
    return snapshot;
  }
  RouteStats* StatsFor(const std::string& ingress, const std::string& host, const std::string& path);
  absl::StatusOr<std::shared_ptr<ssl::context>> MakeContext(const Certificate& cert);

  ProxyOptions options;
  EjectionPolicy ejection;
  std::unique_ptr<metrics::Registry> own_metrics;
  metrics::Registry* metrics;
  metrics::Family<metrics::Counter>* requests_family;
  metrics::Family<metrics::Histogram>* latency_family;
  metrics::Family<metrics::Counter>* upstream_errors_family;
  metrics::Gauge* open_gauge;
  metrics::Counter* tls_errors;
  metrics::Gauge* generation_gauge;
  metrics::Counter* ejections;

  std::mutex snap_mu;
  std::shared_ptr<const Snapshot> snapshot;
  std::atomic<uint64_t> generation{0};

  std::mutex update_mu;  // Update() callers, one at a time
  EndpointRegistry endpoints;
  absl::flat_hash_map<std::string, std::unique_ptr<RouteStats>> route_stats;  // under update_mu
  RouteStats* no_route_stats = nullptr;
  struct CachedCert {
    Certificate pem;
    std::shared_ptr<ssl::context> ctx;
  };
  absl::flat_hash_map<std::string, CachedCert> cert_cache;  // under update_mu

  ssl::context base_tls{ssl::context::tls_server};
  std::vector<std::unique_ptr<Worker>> workers;
  uint16_t http_port = 0, https_port = 0;
  int log_fd = -1;
  bool started = false;

  std::atomic<uint64_t> connections{0}, requests{0}, open{0}, upstream_connects{0};
};

namespace {

thread_local Worker* tls_worker = nullptr;

struct Worker {
  Worker(IngressProxy::Impl* impl, int index) : impl(impl), index(index), rng(0x9E3779B97F4A7C15ull * (index + 1)) {
    head.next = head.prev = &head;
  }

  const Snapshot& Current() {
    if (impl->generation.load(std::memory_order_acquire) != gen) snap = impl->Current(&gen);
    return *snap;
  }
  uint64_t Random() {  // splitmix64
    uint64_t z = (rng += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  void Link(ConnBase* c) {
    c->next = head.next;
    c->prev = &head;
    head.next->prev = c;
    head.next = c;
  }
  static void Unlink(ConnBase* c) {
    if (c->prev == nullptr) return;
    c->prev->next = c->next;
    c->next->prev = c->prev;
    c->prev = c->next = nullptr;
  }

  std::unique_ptr<Upstream> TakeIdle(EndpointState* e, bool check_alive) {
    auto it = idle.find(e);
    if (it == idle.end()) return nullptr;
    auto& list = it->second;
    while (!list.empty()) {
      std::unique_ptr<Upstream> up = std::move(list.back());
      list.pop_back();
      if (check_alive) {
        // A request with a body cannot be replayed: make sure the server has not
        // closed the connection while it sat in the pool.
        char c;
        ssize_t r = ::recv(up->sock.native_handle(), &c, 1, MSG_PEEK | MSG_DONTWAIT);
        if (!(r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))) continue;
      }
      return up;
    }
    return nullptr;
  }
  void ReleaseIdle(std::unique_ptr<Upstream> up, int64_t now) {
    auto& list = idle[up->endpoint.get()];
    if (list.size() >= impl->options.max_idle_per_endpoint) return;
    up->idle_since = now;
    list.push_back(std::move(up));
  }

  void Tick();
  void Accept(tcp::acceptor& acc, bool tls);
  void Log(std::string_view line);
  void FlushLog();

  IngressProxy::Impl* impl;
  int index;
  ConnBase head;  // sentinel of the connection list (outlives io's handlers)
  // Every socket of a worker is created, used and closed on its thread (Stop() posts
  // to it), so the reactor needs no locks; the scheduler keeps them for post().
  asio::io_context io{BOOST_ASIO_CONCURRENCY_HINT_UNSAFE_IO};
  tcp::acceptor http_acc{io};
  tcp::acceptor https_acc{io};
  asio::steady_timer tick{io};
  std::shared_ptr<const Snapshot> snap = std::make_shared<Snapshot>();
  uint64_t gen = 0;
  uint64_t rng;
  absl::flat_hash_map<EndpointState*, std::vector<std::unique_ptr<Upstream>>> idle;
  std::string log_buf;
  std::string log_time;  // refreshed every tick
  std::thread thread;
  bool stopping = false;
};

enum class ClientPhase { kNone, kHandshake, kIdle, kHeader, kBody, kTunnel, kLinger };
enum class UpstreamPhase { kNone, kConnect, kWaiting, kBody };

// One client connection. Stream is tcp::socket or ssl::stream<tcp::socket>.
template <class Stream>
class Session final : public ConnBase, public std::enable_shared_from_this<Session<Stream>> {
 public:
  static constexpr bool kTls = !std::is_same_v<Stream, tcp::socket>;

  template <class... Args>
  Session(Worker& w, tcp::socket sock, Args&&... args)
      : w_(w), o_(w.impl->options), stream_(std::move(sock), std::forward<Args>(args)...) {
    error_code ec;
    tcp::endpoint remote = Lowest().remote_endpoint(ec);
    client_ip_ = ec ? "-" : remote.address().to_string();
    if (!ec && remote.address().is_v6() && remote.address().to_v6().is_v4_mapped()) {
      client_ip_ = asio::ip::make_address_v4(asio::ip::v4_mapped, remote.address().to_v6()).to_string();
    }
    ri_.max_fields = o_.max_header_fields;
    ri_.head.reserve(1024);
    rsi_.head.reserve(1024);
    w_.Link(this);
    w_.impl->open.fetch_add(1, std::memory_order_relaxed);
    w_.impl->open_gauge->Add(1);
  }
  ~Session() override {
    Worker::Unlink(this);
    w_.impl->open.fetch_sub(1, std::memory_order_relaxed);
    w_.impl->open_gauge->Add(-1);
    if (endpoint_ != nullptr) endpoint_->active.fetch_sub(1, std::memory_order_relaxed);
  }

  void Start() {
    if constexpr (kTls) {
      SetClientDeadline(ClientPhase::kHandshake, o_.header_timeout);
      stream_.async_handshake(ssl::stream_base::server,
                              [self = this->shared_from_this()](const error_code& ec) {
                                if (self->closed_) return;
                                if (ec) {
                                  self->w_.impl->tls_errors->Increment();
                                  return self->Close();
                                }
                                self->BeginRequest();
                              });
    } else {
      BeginRequest();
    }
  }

  void Shutdown() override { Close(); }

  void OnTick(int64_t now) override {
    if (closed_) return;
    if (client_deadline_ != 0 && now >= client_deadline_) {
      client_deadline_ = 0;
      switch (client_phase_) {
        case ClientPhase::kHeader:
          return Respond(408, true);
        case ClientPhase::kBody:
          if (!resp_started_ && !client_writing_) {
            DropUpstream();
            return Respond(408, true);
          }
          return Close();
        default:
          return Close();
      }
    }
    if (upstream_deadline_ != 0 && now >= upstream_deadline_) {
      upstream_deadline_ = 0;
      if (up_phase_ == UpstreamPhase::kConnect) {
        error_code ignored;
        up_->sock.close(ignored);  // the connect handler counts it as a failure
        return;
      }
      if (route_ != nullptr) route_->stats->timeouts->Increment();
      if (!resp_started_ && !client_writing_) {
        DropUpstream();
        return Respond(504, true);
      }
      Close();
    }
  }

 private:
  tcp::socket& Lowest() {
    if constexpr (kTls) {
      return stream_.next_layer();
    } else {
      return stream_;
    }
  }
  std::shared_ptr<Session> Self() { return this->shared_from_this(); }

  // Reads from the client for the request (head or body). A local response being
  // written or a lingering close takes over whatever the read brings.
  template <class F>
  void ReadClient(F&& f) {
    client_reading_ = true;
    stream_.async_read_some(in_.prepare(kClientRead), [self = Self(), f = std::forward<F>(f)](
                                                          const error_code& ec, size_t n) mutable {
      self->client_reading_ = false;
      if (self->closed_) return;
      if (self->lingering_) {
        if (ec) return self->Close();
        return self->Linger();
      }
      if (self->responding_) return;
      f(ec, n);
    });
  }

  void SetClientDeadline(ClientPhase phase, absl::Duration d) { SetClientDeadlineNs(phase, Ns(d)); }
  void SetClientDeadlineNs(ClientPhase phase, int64_t ns) {
    client_phase_ = phase;
    client_deadline_ = NowNs() + ns;
  }

  // ---- request head ----

  void BeginRequest() {
    ri_.Reset();
    req_.emplace(&ri_);
    req_->header_limit(static_cast<uint32_t>(o_.max_header_bytes));
    req_->body_limit(kNoBodyLimit);
    route_ = nullptr;
    req_done_ = resp_started_ = resp_done_ = close_after_ = tunnel_ = false;
    head_pending_ = responding_ = false;
    head_scanned_ = 0;
    stale_retried_ = false;
    attempts_ = 0;
    resp_bytes_ = 0;
    status_ = 0;
    if (in_.size() > 0) {
      SetClientDeadline(ClientPhase::kHeader, o_.header_timeout);
    } else {
      SetClientDeadline(ClientPhase::kIdle, o_.idle_timeout);
    }
    ParseHead();
  }

  void ParseHead() {
    if (in_.size() > 0 && !HasHeaderEnd(in_, head_scanned_)) {
      if (in_.size() >= o_.max_header_bytes) return Respond(431, true);
    } else if (in_.size() > 0) {
      error_code ec;
      size_t n = req_->put(in_.data(), ec);
      if (ec == bhttp::error::need_more) {
        if (in_.size() >= o_.max_header_bytes) return Respond(431, true);
      } else if (ec) {
        bool too_big = ec == bhttp::error::header_limit;
        return Respond(too_big ? 431 : 400, true);
      } else {
        in_.consume(n);
        if (req_->is_header_done()) return OnRequestHead();
      }
    }
    ReadClient([this](const error_code& ec, size_t n) {
      if (ec) return Close();
      in_.commit(n);
      if (client_phase_ == ClientPhase::kIdle) SetClientDeadline(ClientPhase::kHeader, o_.header_timeout);
      ParseHead();
    });
  }

  void OnRequestHead() {
    client_deadline_ = 0;
    client_phase_ = ClientPhase::kNone;
    start_ns_ = NowNs();
    w_.impl->requests.fetch_add(1, std::memory_order_relaxed);
    keep_alive_ = req_->keep_alive();
    upgrade_ = req_->upgrade() && !ri_.upgrade.empty() && req_->is_done();
    head_request_ = ri_.method == "HEAD";
    req_done_ = req_->is_done();
    bodyless_ = req_done_;
    if (ri_.version == 11 && !ri_.has_host) return Respond(400, true);  // RFC 9112 3.2

    // The rest of the upstream head.
    ri_.head.append("X-Forwarded-For: ");
    if (!ri_.xff.empty()) ri_.head.append(ri_.xff).append(", ");
    ri_.head.append(client_ip_).append(kTls ? "\r\nX-Forwarded-Proto: https\r\n"
                                            : "\r\nX-Forwarded-Proto: http\r\n");
    if (upgrade_) {
      ri_.head.append("Connection: upgrade\r\nUpgrade: ").append(ri_.upgrade).append("\r\n");
    } else if (ri_.version == 10) {
      ri_.head.append("Connection: keep-alive\r\n");
    }
    ri_.head.append("\r\n");

    const Snapshot& snap = w_.Current();
    snap_ = w_.snap;  // held while the request uses its routes
    const Route* route = snap.router ? snap.router->Match(ri_.host, ri_.target) : nullptr;
    if (route == nullptr) return Respond(404, !req_done_);
    route_ = &snap.routes[route->index];
    PickAndSend();
  }

  // ---- upstream ----

  void PickAndSend() {
    const Route& r = *route_->route;
    const WeightedBackend* b = r.Pick(w_.Random());
    EndpointPool* pool = b == nullptr ? nullptr : route_->pools[b - r.backends.data()];
    int64_t now = NowNs();
    EndpointState* e = pool == nullptr ? nullptr : pool->Pick(r.balance, now, w_.Random());
    if (e == nullptr) return Respond(503, !req_done_);
    SetEndpoint(e);
    if (auto up = w_.TakeIdle(e, !req_done_)) {
      up_ = std::move(up);
      reused_ = true;
      return SendHead();
    }
    Connect();
  }

  void SetEndpoint(EndpointState* e) {
    if (endpoint_ != nullptr) endpoint_->active.fetch_sub(1, std::memory_order_relaxed);
    endpoint_ = e;
    if (e != nullptr) e->active.fetch_add(1, std::memory_order_relaxed);
  }

  void Connect() {
    up_ = std::make_unique<Upstream>(w_.io);
    up_->endpoint = endpoint_->shared_from_this();
    reused_ = false;
    error_code ec;
    asio::ip::address addr = asio::ip::make_address(endpoint_->ip, ec);
    if (ec) return ConnectFailed();
    tcp::endpoint target(addr, endpoint_->port);
    up_->sock.open(target.protocol(), ec);
    if (ec) return ConnectFailed();
    up_->sock.set_option(tcp::no_delay(true), ec);
    up_phase_ = UpstreamPhase::kConnect;
    upstream_deadline_ = NowNs() + Ns(o_.connect_timeout);
    w_.impl->upstream_connects.fetch_add(1, std::memory_order_relaxed);
    up_->sock.async_connect(target, [self = Self(), g = ++up_gen_](const error_code& ec) {
      if (self->closed_ || g != self->up_gen_) return;
      self->up_phase_ = UpstreamPhase::kNone;
      self->upstream_deadline_ = 0;
      if (ec) return self->ConnectFailed();
      ReportConnectSuccess(*self->endpoint_);
      self->Reregister();
      self->SendHead();
    });
  }

  // Asio leaves EPOLLOUT registered once a connect waited for it; on an edge-triggered
  // epoll every ACK of a request sent upstream then wakes the loop and costs a failed
  // read. A fresh descriptor for the same connection is registered for reading only.
  void Reregister() {
    int fd = ::dup(up_->sock.native_handle());
    if (fd < 0) return;
    error_code ec;
    tcp::endpoint local = up_->sock.local_endpoint(ec);
    up_->sock.close(ec);
    up_->sock.assign(local.protocol(), fd, ec);
    if (ec) ::close(fd);
  }

  void ConnectFailed() {
    int64_t now = NowNs();
    bool was_healthy = endpoint_->ejected_until.load(std::memory_order_relaxed) <= now;
    ReportConnectFailure(*endpoint_, now, w_.impl->ejection);
    if (was_healthy) w_.impl->ejections->Increment();
    route_->stats->connect_errors->Increment();
    DropUpstream();
    if (attempts_++ < static_cast<int>(route_->route->retries)) return PickAndSend();
    Respond(502, !req_done_);
  }

  // Closes the upstream connection (never to be reused); pending handlers of it
  // are ignored (generation).
  void DropUpstream() {
    ++up_gen_;
    up_phase_ = UpstreamPhase::kNone;
    upstream_deadline_ = 0;
    if (up_) {
      error_code ignored;
      up_->sock.close(ignored);
      up_.reset();
    }
  }

  // The head and the body bytes already here, in one write.
  void SendHead() {
    size_t body = 0;
    if (!req_done_ && in_.size() > 0) {
      error_code ec;
      req_->eager(true);
      body = req_->put(in_.data(), ec);
      if (ec && ec != bhttp::error::need_more) {
        DropUpstream();
        return Respond(400, true);
      }
    }
    std::array<asio::const_buffer, 2> bufs = {asio::buffer(ri_.head),
                                              asio::buffer(in_.data().data(), body)};
    up_phase_ = UpstreamPhase::kWaiting;
    upstream_deadline_ = NowNs() + route_->timeout_ns;
    uint64_t g = ++up_gen_;
    asio::async_write(up_->sock, bufs, [self = Self(), g, body](const error_code& ec, size_t) {
      if (self->closed_ || g != self->up_gen_) return;
      if (ec) return self->UpstreamFailed(ec);
      self->in_.consume(body);
      self->OnRequestBytesSent();
    });
    resp_.emplace(&rsi_);
    rsi_.Reset();
    resp_scanned_ = 0;
    resp_->header_limit(kMaxResponseHeader);
    resp_->body_limit(kNoBodyLimit);
    if (head_request_) resp_->skip(true);
    ReadResponse();
  }

  void OnRequestBytesSent() {
    if (req_->is_done()) {
      req_done_ = true;
      client_phase_ = ClientPhase::kNone;
      client_deadline_ = 0;
      return MaybeFinish();
    }
    PumpRequestBody();
  }

  void PumpRequestBody() {
    size_t n = 0;
    if (in_.size() > 0) {
      error_code ec;
      n = req_->put(in_.data(), ec);
      if (ec && ec != bhttp::error::need_more) {
        if (!resp_started_ && !client_writing_) {
          DropUpstream();
          return Respond(400, true);
        }
        return Close();
      }
    }
    if (n == 0) {
      SetClientDeadline(ClientPhase::kBody, o_.body_timeout);
      ReadClient([this](const error_code& ec, size_t n) {
        if (resp_done_) return;
        if (ec) return Close();  // the client gave up mid-body
        in_.commit(n);
        PumpRequestBody();
      });
      return;
    }
    client_phase_ = ClientPhase::kNone;
    client_deadline_ = 0;
    asio::async_write(up_->sock, asio::buffer(in_.data().data(), n),
                      [self = Self(), g = up_gen_, n](const error_code& ec, size_t) {
                        if (self->closed_ || g != self->up_gen_) return;
                        if (ec) return self->UpstreamFailed(ec);
                        self->in_.consume(n);
                        self->OnRequestBytesSent();
                      });
  }

  // The upstream connection failed (write error, reset, EOF) before a response.
  void UpstreamFailed(const error_code& ec) {
    if (resp_started_) return Close();
    // A pooled connection the server closed meanwhile: replay once on a new one,
    // when nothing of the request body has been consumed.
    if (reused_ && !stale_retried_ && bodyless_ && !upgrade_) {
      stale_retried_ = true;
      DropUpstream();
      return Connect();
    }
    (void)ec;
    route_->stats->resets->Increment();
    DropUpstream();
    if (client_writing_) return Close();
    Respond(502, !req_done_);
  }

  void ReadResponse() {
    up_->sock.async_read_some(up_->buf.prepare(kUpstreamRead),
                              [self = Self(), g = up_gen_](const error_code& ec, size_t n) {
                                if (self->closed_ || g != self->up_gen_) return;
                                self->up_->buf.commit(n);
                                if (ec) return self->OnUpstreamReadError(ec);
                                self->ParseResponse();
                              });
  }

  void OnUpstreamReadError(const error_code& ec) {
    if (ec == asio::error::eof && resp_->is_header_done() && resp_->need_eof()) {
      // A close-delimited body ends here.
      error_code pec;
      resp_->put_eof(pec);
      if (!pec) return ForwardResponseBody(0);
    }
    if (!resp_started_ && rsi_.status == 0 && up_->buf.size() == 0) return UpstreamFailed(ec);
    if (!resp_started_ && !client_writing_) {
      route_->stats->resets->Increment();
      DropUpstream();
      return Respond(502, true);
    }
    route_->stats->resets->Increment();
    Close();
  }

  void ParseResponse() {
    if (!resp_->is_header_done()) {
      if (!HasHeaderEnd(up_->buf, resp_scanned_)) {
        if (up_->buf.size() < kMaxResponseHeader) return ReadResponse();
        route_->stats->resets->Increment();
        DropUpstream();
        return Respond(502, true);
      }
      error_code ec;
      size_t n = resp_->put(up_->buf.data(), ec);
      if (ec == bhttp::error::need_more) return ReadResponse();
      if (ec) {

        route_->stats->resets->Increment();
        DropUpstream();
        return Respond(502, true);
      }
      up_->buf.consume(n);
      return OnResponseHead();
    }
    ForwardResponseBody(0);
  }

  void OnResponseHead() {
    int status = rsi_.status;
    upstream_deadline_ = NowNs() + route_->timeout_ns;
    if (status == 101) {
      if (!upgrade_) {
        DropUpstream();
        return Respond(502, true);
      }
      rsi_.head.append("\r\n");
      return StartTunnel();
    }
    if (status >= 100 && status < 200) {
      // 100 Continue (and other interim responses): forward, then the final one.
      rsi_.head.append("\r\n");
      client_writing_ = true;
      asio::async_write(stream_, asio::buffer(rsi_.head),
                        [self = Self(), g = up_gen_](const error_code& ec, size_t n) {
                          self->client_writing_ = false;
                          if (self->closed_ || g != self->up_gen_) return;
                          if (ec) return self->Close();
                          self->resp_bytes_ += n;
                          self->resp_.emplace(&self->rsi_);
                          self->rsi_.Reset();
                          self->resp_scanned_ = 0;
                          self->resp_->header_limit(kMaxResponseHeader);
                          self->resp_->body_limit(kNoBodyLimit);
                          if (self->head_request_) self->resp_->skip(true);
                          if (self->up_->buf.size() > 0) return self->ParseResponse();
                          self->ReadResponse();
                        });
      return;
    }
    resp_started_ = true;
    status_ = status;
    close_after_ = !keep_alive_ || resp_->need_eof();
    if (close_after_) {
      rsi_.head.append("Connection: close\r\n");
    } else if (ri_.version == 10) {
      rsi_.head.append("Connection: keep-alive\r\n");
    }
    rsi_.head.append("\r\n");
    head_pending_ = true;
    resp_->eager(true);
    ForwardResponseBody(0);
  }

  // Parses what the buffer holds of the body and writes it (after the head, if not
  // yet written) to the client; reads more until the response is complete.
  void ForwardResponseBody(size_t) {
    size_t n = 0;
    if (!resp_->is_done() && up_->buf.size() > 0) {
      error_code ec;
      n = resp_->put(up_->buf.data(), ec);
      if (ec && ec != bhttp::error::need_more) {
        route_->stats->resets->Increment();
        return Close();
      }
    }
    bool done = resp_->is_done();
    if (n == 0 && !head_pending_) {
      if (done) return OnResponseDone();
      return ReadResponse();
    }
    std::array<asio::const_buffer, 2> bufs = {
            head_pending_ ? asio::const_buffer(asio::buffer(rsi_.head)) : asio::const_buffer(),
        asio::buffer(up_->buf.data().data(), n)};
    if constexpr (kTls) {
      // One TLS record for a small response rather than two.
      if (head_pending_ && n > 0 && n <= 16 * 1024) {
        rsi_.head.append(static_cast<const char*>(up_->buf.data().data()), n);
        bufs = {asio::buffer(rsi_.head), asio::const_buffer()};
      }
    }
    head_pending_ = false;
    client_writing_ = true;
    asio::async_write(stream_, bufs, [self = Self(), g = up_gen_, n, done](const error_code& ec, size_t w) {
      self->client_writing_ = false;
      if (self->closed_ || g != self->up_gen_) return;
      if (ec) return self->Close();
      self->resp_bytes_ += w;
      self->up_->buf.consume(n);
      if (done) return self->OnResponseDone();
      self->upstream_deadline_ = NowNs() + self->route_->timeout_ns;
      self->ForwardResponseBody(0);
    });
  }

  void OnResponseDone() {
    resp_done_ = true;
    up_phase_ = UpstreamPhase::kNone;
    upstream_deadline_ = 0;
    MaybeFinish();
  }

  void MaybeFinish() {
    if (!resp_done_) return;
    if (!req_done_) {
      // The upstream answered before the request body ended: neither connection
      // is in a known state any more.
      Record(status_);
      DropUpstream();
      return Close();
    }
    Record(status_);
    if (up_ && !close_after_ && resp_->keep_alive() && up_->buf.size() == 0) {
      ++up_gen_;
      w_.ReleaseIdle(std::move(up_), NowNs());
    } else {
      DropUpstream();
    }
    SetEndpoint(nullptr);
    if (close_after_) return GracefulClose();
    BeginRequest();
  }

  // ---- upgraded connections ----

  void StartTunnel() {
    resp_started_ = true;
    tunnel_ = true;
    status_ = 101;
    Record(101);
    SetEndpoint(nullptr);
    up_phase_ = UpstreamPhase::kNone;
    upstream_deadline_ = 0;
    SetClientDeadline(ClientPhase::kTunnel, o_.tunnel_idle_timeout);
    // The 101 and whatever the upstream sent after it, then bytes both ways.
    std::array<asio::const_buffer, 2> bufs = {asio::buffer(rsi_.head), up_->buf.data()};
    size_t n = up_->buf.size();
    asio::async_write(stream_, bufs, [self = Self(), n](const error_code& ec, size_t) {
      if (self->closed_) return;
      if (ec) return self->Close();
      self->up_->buf.consume(n);
      self->TunnelUpToClient();
    });
    TunnelClientToUp();
  }

  void TunnelClientToUp() {
    if (in_.size() > 0) {
      size_t n = in_.size();
      asio::async_write(up_->sock, in_.data(), [self = Self(), n](const error_code& ec, size_t) {
        if (self->closed_) return;
        if (ec) return self->Close();
        self->in_.consume(n);
        self->TunnelTouch();
        self->TunnelClientToUp();
      });
      return;
    }
    stream_.async_read_some(in_.prepare(kClientRead), [self = Self()](const error_code& ec, size_t n) {
      if (self->closed_) return;
      if (ec) return self->Close();
      self->in_.commit(n);
      self->TunnelClientToUp();
    });
  }

  void TunnelUpToClient() {
    up_->sock.async_read_some(up_->buf.prepare(kUpstreamRead), [self = Self()](const error_code& ec, size_t n) {
      if (self->closed_) return;
      if (ec) return self->Close();
      self->up_->buf.commit(n);
      asio::async_write(self->stream_, self->up_->buf.data(), [self, n](const error_code& ec, size_t) {
        if (self->closed_) return;
        if (ec) return self->Close();
        self->up_->buf.consume(n);
        self->TunnelTouch();
        self->TunnelUpToClient();
      });
    });
  }

  void TunnelTouch() { client_deadline_ = NowNs() + Ns(o_.tunnel_idle_timeout); }

  // ---- local responses, the end of a request, closing ----

  void Respond(int code, bool close) {
    if (!req_.has_value() || !req_->is_done()) close = true;
    close = close || !keep_alive_;
    client_phase_ = ClientPhase::kNone;
    client_deadline_ = 0;
    status_ = code;
    std::string_view reason = Reason(code);
    rsi_.Reset();
    rsi_.head.append("HTTP/1.1 ").append(std::to_string(code)).append(" ").append(reason);
    rsi_.head.append("\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ");
    rsi_.head.append(std::to_string(reason.size() + 1)).append("\r\n");
    if (close) rsi_.head.append("Connection: close\r\n");
    rsi_.head.append("\r\n").append(reason).append("\n");
    if (start_ns_ == 0) start_ns_ = NowNs();
    closing_response_ = close;
    responding_ = true;
    client_writing_ = true;
    asio::async_write(stream_, asio::buffer(rsi_.head), [self = Self(), code](const error_code& ec, size_t n) {
      self->client_writing_ = false;
      if (self->closed_) return;
      self->resp_bytes_ = n;
      self->Record(code);
      self->SetEndpoint(nullptr);
      if (ec) return self->Close();
      if (self->closing_response_) return self->GracefulClose();
      self->responding_ = false;
      self->BeginRequest();
    });
  }

  void Record(int code) {
    if (recorded_for_ == start_ns_ && start_ns_ != 0) return;
    recorded_for_ = start_ns_;
    RouteStats* stats = route_ != nullptr ? route_->stats : w_.impl->no_route_stats;
    stats->Code(code).Increment();
    int64_t end = NowNs();
    stats->latency->Observe(static_cast<double>(end - start_ns_) / 1e9);
    if (w_.impl->log_fd >= 0) {
      std::string& l = w_.log_buf;
      l.append(w_.log_time).append(" ").append(client_ip_);
      if (ri_.method.empty()) {  // no request line parsed
        l.append(" \"-\" ");
      } else {
        l.append(" \"").append(ri_.method).append(" ").append(ri_.target);
        l.append(ri_.version == 10 ? " HTTP/1.0\" " : " HTTP/1.1\" ");
      }
      l.append(std::to_string(code));
      l.append(" ").append(std::to_string(resp_bytes_)).append(" ");
      char dur[32];
      snprintf(dur, sizeof(dur), "%.6f", static_cast<double>(end - start_ns_) / 1e9);
      l.append(dur).append(" ").append(ri_.host.empty() ? "-" : ri_.host).append(" ");
      l.append(endpoint_ != nullptr ? std::string_view(endpoint_->label) : std::string_view("-"));
      l.append(" ").append(route_ != nullptr ? std::string_view(route_->route->ingress) : "-");
      l.append(kTls ? " https\n" : " http\n");
      if (l.size() > 32 * 1024) w_.FlushLog();
    }
    start_ns_ = 0;
  }

  // Half-close, then read and drop what the client still sends for a moment, so
  // that a reset does not destroy the response in flight (nginx's lingering close).
  void GracefulClose() {
    if constexpr (kTls) {
      return Close();
    } else {
      error_code ignored;
      stream_.shutdown(tcp::socket::shutdown_send, ignored);
      DropUpstream();
      SetClientDeadlineNs(ClientPhase::kLinger, kLingerNs);
      lingering_ = true;
      if (!client_reading_) Linger();
    }
  }
  void Linger() {
    in_.clear();
    ReadClient([](const error_code&, size_t) {});
  }

  void Close() {
    if (closed_) return;
    closed_ = true;
    client_deadline_ = upstream_deadline_ = 0;
    error_code ignored;
    Lowest().close(ignored);
    DropUpstream();
    SetEndpoint(nullptr);
  }

  Worker& w_;
  const ProxyOptions& o_;
  Stream stream_;
  std::string client_ip_;
  beast::flat_buffer in_;
  RequestInfo ri_;
  std::optional<RequestParser> req_;
  ResponseInfo rsi_;
  std::optional<ResponseParser> resp_;
  std::unique_ptr<Upstream> up_;
  uint64_t up_gen_ = 0;
  std::shared_ptr<const Snapshot> snap_;
  const RouteRuntime* route_ = nullptr;
  EndpointState* endpoint_ = nullptr;  // counted in its `active` while set

  ClientPhase client_phase_ = ClientPhase::kNone;
  int64_t client_deadline_ = 0;
  UpstreamPhase up_phase_ = UpstreamPhase::kNone;
  int64_t upstream_deadline_ = 0;

  size_t head_scanned_ = 0;
  size_t resp_scanned_ = 0;
  int attempts_ = 0;
  bool reused_ = false;
  bool stale_retried_ = false;
  bool bodyless_ = false;
  bool responding_ = false;
  bool lingering_ = false;
  bool client_reading_ = false;
  bool keep_alive_ = true;
  bool upgrade_ = false;
  bool head_request_ = false;
  bool req_done_ = false;
  bool resp_started_ = false;  // the final response's head is (being) written to the client
  bool head_pending_ = false;
  bool resp_done_ = false;
  bool close_after_ = false;
  bool closing_response_ = false;
  bool client_writing_ = false;
  bool tunnel_ = false;
  bool closed_ = false;
  int status_ = 0;
  uint64_t resp_bytes_ = 0;
  int64_t start_ns_ = 0;
  int64_t recorded_for_ = -1;
};

void Worker::Accept(tcp::acceptor& acc, bool tls) {
  acc.async_accept(io, [this, &acc, tls](const error_code& ec, tcp::socket sock) {
    if (stopping) return;
    if (ec) {
      if (ec == asio::error::operation_aborted) return;
      // EMFILE and friends: back off a little rather than spin.
      auto timer = std::make_shared<asio::steady_timer>(io, std::chrono::milliseconds(50));
      timer->async_wait([this, &acc, tls, timer](const error_code&) {
        if (!stopping) Accept(acc, tls);
      });
      return;
    }
    impl->connections.fetch_add(1, std::memory_order_relaxed);
    error_code ignored;
    sock.set_option(tcp::no_delay(true), ignored);
    if (tls) {
      std::make_shared<Session<ssl::stream<tcp::socket>>>(*this, std::move(sock), impl->base_tls)->Start();
    } else {
      std::make_shared<Session<tcp::socket>>(*this, std::move(sock))->Start();
    }
    Accept(acc, tls);
  });
}

void Worker::Tick() {
  tick.expires_after(std::chrono::nanoseconds(kTickNs));
  tick.async_wait([this](const error_code& ec) {
    if (ec || stopping) return;
    int64_t now = NowNs();
    for (ConnBase* c = head.next; c != &head;) {
      ConnBase* next = c->next;
      c->OnTick(now);
      c = next;
    }
    int64_t max_idle = Ns(impl->options.pool_idle_timeout);
    for (auto it = idle.begin(); it != idle.end();) {
      auto& list = it->second;
      std::erase_if(list, [&](const std::unique_ptr<Upstream>& up) { return now - up->idle_since > max_idle; });
      if (list.empty()) {
        idle.erase(it++);
      } else {
        ++it;
      }
    }
    if (impl->log_fd >= 0) {
      log_time = absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::Now(), absl::UTCTimeZone());
      FlushLog();
    }
    Tick();
  });
}

void Worker::FlushLog() {
  if (log_buf.empty() || impl->log_fd < 0) return;
  // One write: O_APPEND keeps the lines of several workers whole.
  ssize_t r = ::write(impl->log_fd, log_buf.data(), log_buf.size());
  (void)r;
  log_buf.clear();
}

int ServerNameCallback(SSL* ssl, int* alert, void*) {
  Worker* w = tls_worker;
  const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  const Snapshot& snap = w->Current();
  const std::string* secret =
      snap.router ? snap.router->CertificateFor(name != nullptr ? std::string_view(name) : "") : nullptr;
  if (secret != nullptr) {
    auto it = snap.certs.find(*secret);
    if (it != snap.certs.end()) {
      SSL_set_SSL_CTX(ssl, it->second->native_handle());
      return SSL_TLSEXT_ERR_OK;
    }
  }
  *alert = SSL_AD_UNRECOGNIZED_NAME;
  return SSL_TLSEXT_ERR_ALERT_FATAL;
}

void HardenContext(ssl::context& ctx) {
  ctx.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                  ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 |
                  ssl::context::single_dh_use);
  SSL_CTX_set_session_cache_mode(ctx.native_handle(), SSL_SESS_CACHE_SERVER);
  static const unsigned char kSid[] = "loom-ingress";
  SSL_CTX_set_session_id_context(ctx.native_handle(), kSid, sizeof(kSid) - 1);
}

absl::StatusOr<tcp::acceptor*> Bind(tcp::acceptor& acc, const std::string& host, uint16_t port) {
  error_code ec;
  asio::ip::address addr = asio::ip::make_address(host, ec);
  if (ec) return absl::InvalidArgumentError(StrCat("\"", host, "\" is not an IP address"));
  tcp::endpoint ep(addr, port);
  std::string where = StrCat(addr.is_v6() ? StrCat("[", host, "]") : host, ":", port);
  acc.open(ep.protocol(), ec);
  if (!ec) acc.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) {
    int one = 1;
    if (setsockopt(acc.native_handle(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) {
      ec = error_code(errno, boost::system::system_category());
    }
  }
  if (!ec) acc.bind(ep, ec);
  if (!ec) acc.listen(1024, ec);
  if (ec) return absl::UnavailableError(StrCat("listen on ", where, ": ", ec.message()));
  return &acc;
}

}  // namespace

IngressProxy::Impl::Impl(ProxyOptions o) : options(std::move(o)) {
  ejection.base_ns = Ns(options.eject_base);
  ejection.max_ns = Ns(options.eject_max);
  if (options.metrics == nullptr) own_metrics = std::make_unique<metrics::Registry>();
  metrics = options.metrics != nullptr ? options.metrics : own_metrics.get();
  requests_family = &metrics->AddCounter("loom_ingress_requests_total",
                                         "Ingress requests by route and response status.",
                                         {"ingress", "host", "path", "code"});
  latency_family = &metrics->AddHistogram(
      "loom_ingress_request_duration_seconds",
      "Time from a request's header to its response's end, by route.", {"ingress", "host", "path"},
      {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30});
  upstream_errors_family = &metrics->AddCounter(
      "loom_ingress_upstream_errors_total",
      "Upstream failures by route: connect (refused or timed out), timeout (no response in "
      "time), reset (closed or malformed response).",
      {"ingress", "host", "path", "reason"});
  open_gauge = &metrics->AddGauge("loom_ingress_open_connections", "Open client connections.").Get();
  tls_errors = &metrics->AddCounter("loom_ingress_tls_handshake_errors_total",
                                    "TLS handshakes that failed (no certificate for the name, "
                                    "protocol errors, timeouts).")
                    .Get();
  generation_gauge = &metrics->AddGauge("loom_ingress_config_generation",
                                        "Configurations applied since start.")
                          .Get();
  ejections = &metrics->AddCounter("loom_ingress_endpoint_ejections_total",
                                   "Endpoints ejected after a failed connect.")
                   .Get();
  no_route_stats = StatsFor("", "", "");
  HardenContext(base_tls);
  SSL_CTX_set_tlsext_servername_callback(base_tls.native_handle(), ServerNameCallback);
  snapshot = std::make_shared<Snapshot>();
}

IngressProxy::Impl::~Impl() {
  if (log_fd > 2) close(log_fd);
}

RouteStats* IngressProxy::Impl::StatsFor(const std::string& ingress, const std::string& host,
                                         const std::string& path) {
  std::string key = StrCat(ingress, "\n", host, "\n", path);
  auto& slot = route_stats[key];
  if (!slot) {
    slot = std::make_unique<RouteStats>();
    slot->requests = requests_family;
    slot->labels = {ingress, host, path};
    slot->latency = &latency_family->WithLabels(slot->labels);
    auto err = [&](const char* reason) {
      return &upstream_errors_family->WithLabels({ingress, host, path, reason});
    };
    slot->connect_errors = err("connect");
    slot->timeouts = err("timeout");
    slot->resets = err("reset");
  }
  return slot.get();
}

absl::StatusOr<std::shared_ptr<ssl::context>> IngressProxy::Impl::MakeContext(const Certificate& cert) {
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_server);
  HardenContext(*ctx);
  error_code ec;
  ctx->use_certificate_chain(asio::buffer(cert.cert_pem), ec);
  if (ec) return absl::InvalidArgumentError(StrCat("certificate: ", ec.message()));
  ctx->use_private_key(asio::buffer(cert.key_pem), ssl::context::pem, ec);
  if (ec) return absl::InvalidArgumentError(StrCat("key: ", ec.message()));
  if (SSL_CTX_check_private_key(ctx->native_handle()) != 1) {
    return absl::InvalidArgumentError("the key does not match the certificate");
  }
  return ctx;
}

IngressProxy::IngressProxy(ProxyOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}

IngressProxy::~IngressProxy() { Stop(); }

absl::Status IngressProxy::Start() {
  Impl& im = *impl_;
  if (im.started) return absl::FailedPreconditionError("ingress proxy already started");
  if (im.options.workers < 1) return absl::InvalidArgumentError("workers must be at least 1");
  if (!im.options.access_log.empty()) {
    if (im.options.access_log == "-") {
      im.log_fd = 2;
    } else {
      im.log_fd = open(im.options.access_log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
      if (im.log_fd < 0) {
        return absl::UnavailableError(StrCat("access log ", im.options.access_log, ": ", strerror(errno)));
      }
    }
  }
  for (int i = 0; i < im.options.workers; ++i) {
    auto w = std::make_unique<Worker>(&im, i);
    // Port 0: the first worker picks, the others share its port (SO_REUSEPORT).
    absl::StatusOr<tcp::acceptor*> a =
        Bind(w->http_acc, im.options.http_host, i == 0 ? im.options.http_port : im.http_port);
    if (!a.ok()) {
      im.workers.clear();
      return a.status();
    }
    if (i == 0) im.http_port = w->http_acc.local_endpoint().port();
    if (im.options.https) {
      a = Bind(w->https_acc, im.options.https_host, i == 0 ? im.options.https_port : im.https_port);
      if (!a.ok()) {
        im.workers.clear();
        return a.status();
      }
      if (i == 0) im.https_port = w->https_acc.local_endpoint().port();
    }
    im.workers.push_back(std::move(w));
  }
  for (auto& w : im.workers) {
    Worker* wp = w.get();
    wp->thread = std::thread([wp] {
      tls_worker = wp;
      wp->log_time = absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::Now(), absl::UTCTimeZone());
      wp->Accept(wp->http_acc, false);
      if (wp->https_acc.is_open()) wp->Accept(wp->https_acc, true);
      wp->Tick();
      for (;;) {
        try {
          wp->io.run();
          break;
        } catch (const std::exception& e) {
          LOG_ERROR("ingress worker: unexpected exception; continuing", {"error", e.what()});
        }
      }
      wp->FlushLog();
    });
  }
  im.started = true;
  return absl::OkStatus();
}

void IngressProxy::Stop() {
  Impl& im = *impl_;
  if (!im.started) return;
  im.started = false;
  for (auto& w : im.workers) {
    Worker* wp = w.get();
    asio::post(wp->io, [wp] {
      wp->stopping = true;
      error_code ignored;
      wp->http_acc.close(ignored);
      wp->https_acc.close(ignored);
      wp->tick.cancel();
      for (ConnBase* c = wp->head.next; c != &wp->head;) {
        ConnBase* next = c->next;
        c->Shutdown();
        c = next;
      }
      wp->idle.clear();
    });
  }
  for (auto& w : im.workers) {
    if (w->thread.joinable()) w->thread.join();
  }
  im.workers.clear();
}

std::vector<std::string> IngressProxy::Update(const ProxyConfig& config) {
  Impl& im = *impl_;
  std::lock_guard<std::mutex> lock(im.update_mu);
  std::vector<std::string> errors;
  auto snap = std::make_shared<Snapshot>();
  snap->router = config.router ? config.router : std::make_shared<Router>();
  absl::flat_hash_map<std::string, EndpointPool*> pools;
  for (const Route& route : snap->router->routes()) {
    RouteRuntime rt;
    rt.route = &route;
    rt.timeout_ns = route.timeout_seconds != 0 ? int64_t{route.timeout_seconds} * 1'000'000'000
                                               : Ns(im.options.upstream_timeout);
    rt.stats = im.StatsFor(route.ingress, route.is_default ? "" : (route.host.empty() ? "*" : route.host),
                           route.is_default ? "(default)" : route.path);
    for (const WeightedBackend& b : route.backends) {
      std::string key = BackendKey(route.ns, b);
      auto [it, inserted] = pools.try_emplace(key, nullptr);
      if (inserted) {
        std::vector<std::shared_ptr<EndpointState>> states;
        if (auto found = config.backends.find(key); found != config.backends.end()) {
          for (const BackendAddress& a : found->second) states.push_back(im.endpoints.Get(a.ip, a.port));
        }
        snap->pools.push_back(std::make_unique<EndpointPool>(std::move(states)));
        it->second = snap->pools.back().get();
      }
      rt.pools.push_back(it->second);
    }
    snap->routes.push_back(std::move(rt));
  }
  for (const auto& [name, cert] : config.certificates) {
    auto cached = im.cert_cache.find(name);
    if (cached != im.cert_cache.end() && cached->second.pem == cert) {
      snap->certs[name] = cached->second.ctx;
      continue;
    }
    absl::StatusOr<std::shared_ptr<ssl::context>> ctx = im.MakeContext(cert);
    if (!ctx.ok()) {
      errors.push_back(StrCat("secret ", name, ": ", ctx.status().message()));
      im.cert_cache.erase(name);
      continue;
    }
    im.cert_cache[name] = {cert, *ctx};
    snap->certs[name] = *ctx;
  }
  absl::erase_if(im.cert_cache, [&](const auto& kv) { return !config.certificates.contains(kv.first); });
  {
    std::lock_guard<std::mutex> snap_lock(im.snap_mu);
    im.snapshot = std::move(snap);
    im.generation.fetch_add(1, std::memory_order_release);
  }
  im.generation_gauge->Set(static_cast<double>(im.generation.load()));
  im.endpoints.Sweep();
  return errors;
}

uint16_t IngressProxy::http_port() const { return impl_->http_port; }
uint16_t IngressProxy::https_port() const { return impl_->https_port; }

ProxyStats IngressProxy::stats() const {
  const Impl& im = *impl_;
  return {im.connections.load(), im.requests.load(), im.open.load(), im.upstream_connects.load(),
          im.generation.load()};
}

}  // namespace loom::lb::ingress
