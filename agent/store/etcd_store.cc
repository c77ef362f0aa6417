#include "agent/store/etcd_store.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <utility>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/json.h"
#include "common/log.h"
#include "common/status.h"
#include "common/strings.h"

namespace loom::store {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;

std::string B64(std::string_view s) { return absl::Base64Escape(ToAbsl(s)); }

// The end of the range holding every key with `prefix`: the prefix with its last
// byte below 0xff incremented ("\0" = no end when there is none).
std::string PrefixEnd(std::string_view prefix) {
  std::string end(prefix);
  while (!end.empty()) {
    if (static_cast<uint8_t>(end.back()) < 0xff) {
      end.back() = static_cast<char>(static_cast<uint8_t>(end.back()) + 1);
      return end;
    }
    end.pop_back();
  }
  return std::string(1, '\0');
}

int64_t JsonInt(const Json& j, const char* field) {
  auto it = j.find(field);
  if (it == j.end()) return 0;
  if (it->is_number_integer()) return it->get<int64_t>();
  int64_t v = 0;
  if (it->is_string() && absl::SimpleAtoi(it->get<std::string>(), &v)) return v;
  return 0;
}

std::string JsonBytes(const Json& j, const char* field) {
  auto it = j.find(field);
  if (it == j.end() || !it->is_string()) return "";
  std::string out;
  absl::Base64Unescape(it->get<std::string>(), &out);
  return out;
}

KeyValue ParseKv(const Json& j) {
  KeyValue kv;
  kv.key = JsonBytes(j, "key");
  kv.value = JsonBytes(j, "value");
  kv.create_revision = JsonInt(j, "create_revision");
  kv.mod_revision = JsonInt(j, "mod_revision");
  kv.version = JsonInt(j, "version");
  kv.lease = JsonInt(j, "lease");
  return kv;
}

Revision HeaderRevision(const Json& j) {
  auto it = j.find("header");
  return it == j.end() ? 0 : JsonInt(*it, "revision");
}

std::string Lowercase(std::string s) {
  if (!s.empty()) s[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(s[0])));
  return s;
}

// One HTTP/1.1 connection with its own io_context, so a caller can run its
// asynchronous operations to completion (with a deadline) on its own thread.
struct Connection {
  asio::io_context ioc;
  beast::tcp_stream stream{ioc};
  beast::flat_buffer buffer;
  size_t endpoint = 0;

  // Runs the io_context until the started operation completes.
  void Run() {
    ioc.restart();
    ioc.run();
  }
};

absl::Status NetError(const EtcdEndpoint& ep, const beast::error_code& ec, absl::Duration timeout) {
  std::string what = ec == beast::error::timeout
                         ? StrCat("timed out after ", absl::FormatDuration(timeout))
                         : Lowercase(ec.message());
  return absl::UnavailableError(StrCat("etcd at ", ep.ToString(), ": ", what));
}

absl::Status Connect(Connection& c, const EtcdEndpoint& ep, absl::Duration timeout) {
  beast::error_code ec;
  tcp::resolver resolver(c.ioc);
  auto results = resolver.resolve(ep.host, std::to_string(ep.port), ec);
  if (ec) return absl::UnavailableError(StrCat("etcd at ", ep.ToString(), ": ", ec.message()));
  c.stream.expires_after(absl::ToChronoMilliseconds(timeout));
  c.stream.async_connect(results, [&](beast::error_code e, const tcp::endpoint&) { ec = e; });
  c.Run();
  if (ec) return NetError(ep, ec, timeout);
  c.stream.socket().set_option(tcp::no_delay(true), ec);
  return absl::OkStatus();
}

http::request<http::string_body> MakeRequest(const EtcdEndpoint& ep, std::string_view path,
                                             std::string body) {
  http::request<http::string_body> req{http::verb::post, std::string(path), 11};
  req.set(http::field::host, ep.ToString());
  req.set(http::field::content_type, "application/json");
  req.keep_alive(true);
  req.body() = std::move(body);
  req.prepare_payload();
  return req;
}

// The gRPC status in an error body: {"error": "...", "code": 5, "message": "..."}.
absl::Status ErrorFromBody(int http_status, const std::string& body) {
  Json j = Json::parse(body, nullptr, false);
  if (j.is_object()) {
    if (auto err = j.find("error"); err != j.end() && err->is_object()) j = *err;
    int code = static_cast<int>(JsonInt(j, "code"));
    std::string message = j.value("message", j.value("error", std::string()));
    if (code > 0 && code <= 16) {
      return absl::Status(static_cast<absl::StatusCode>(code), StrCat("etcd: ", message));
    }
  }
  return absl::UnavailableError(StrCat("etcd: HTTP ", http_status, ": ", body.substr(0, 200)));
}

// Unary calls to the JSON gateway, over a small pool of kept-alive connections,
// failing over between endpoints.
class EtcdClient {
 public:
  EtcdClient(std::vector<EtcdEndpoint> endpoints, EtcdStoreOptions options)
      : endpoints_(std::move(endpoints)), options_(options) {}

  const std::vector<EtcdEndpoint>& endpoints() const { return endpoints_; }
  const EtcdStoreOptions& options() const { return options_; }

  size_t preferred() {
    std::lock_guard<std::mutex> lock(mu_);
    return preferred_;
  }

  // Opens a connection to the first endpoint that answers, starting with the one
  // that worked last; the error names every endpoint when none does.
  absl::StatusOr<std::unique_ptr<Connection>> Dial() {
    const size_t start = preferred();
    std::vector<std::string> errors;
    for (size_t i = 0; i < endpoints_.size(); ++i) {
      const size_t idx = (start + i) % endpoints_.size();
      auto c = std::make_unique<Connection>();
      c->endpoint = idx;
      absl::Status s = Connect(*c, endpoints_[idx], options_.connect_timeout);
      if (s.ok()) {
        std::lock_guard<std::mutex> lock(mu_);
        preferred_ = idx;
        return c;
      }
      errors.emplace_back(s.message());
    }
    return absl::UnavailableError(absl::StrJoin(errors, "; "));
  }

  // POSTs `body` to `path`; returns the parsed JSON reply or the etcd error.
  // `idempotent` calls are retried on another connection after a transport error.
  absl::StatusOr<Json> Call(std::string_view path, const Json& body, bool idempotent) {
    const std::string payload = body.dump();
    absl::Status last;
    size_t fresh_failures = 0;
    for (int attempt = 0; attempt < 8; ++attempt) {
      bool reused = false;
      std::unique_ptr<Connection> c = TakeIdle();
      if (c != nullptr) {
        reused = true;
      } else {
        ASSIGN_OR_RETURN(c, Dial());
      }
      bool sent = false;
      http::response<http::string_body> res;
      absl::Status s = RoundTrip(*c, path, payload, &res, &sent);
      if (s.ok()) {
        if (res.keep_alive()) PutIdle(std::move(c));
        if (res.result() != http::status::ok) {
          return ErrorFromBody(res.result_int(), res.body());
        }
        Json j = Json::parse(res.body(), nullptr, false);
        if (j.is_discarded()) {
          return absl::InternalError(StrCat("etcd: malformed reply to ", path, ": ",
                                            res.body().substr(0, 200)));
        }
        return j;
      }
      last = s;
      // A kept-alive connection the server has since closed fails before the
      // request is served: safe to resend on a fresh one.
      if (reused) continue;
      // A request that may have been applied is not repeated unless idempotent.
      if (sent && !idempotent) break;
      MarkFailed(c->endpoint);
      if (++fresh_failures >= endpoints_.size()) break;
    }
    return last;
  }

 private:
  absl::Status RoundTrip(Connection& c, std::string_view path, const std::string& payload,
                         http::response<http::string_body>* res, bool* sent) {
    const EtcdEndpoint& ep = endpoints_[c.endpoint];
    auto req = MakeRequest(ep, path, payload);
    beast::error_code ec;
    c.stream.expires_after(absl::ToChronoMilliseconds(options_.request_timeout));
    http::async_write(c.stream, req, [&](beast::error_code e, size_t) { ec = e; });
    c.Run();
    if (ec) return NetError(ep, ec, options_.request_timeout);
    *sent = true;
    http::response_parser<http::string_body> parser;
    parser.body_limit(64 << 20);
    http::async_read(c.stream, c.buffer, parser, [&](beast::error_code e, size_t) { ec = e; });
    c.Run();
    if (ec) return NetError(ep, ec, options_.request_timeout);
    *res = parser.release();
    return absl::OkStatus();
  }

  std::unique_ptr<Connection> TakeIdle() {
    std::lock_guard<std::mutex> lock(mu_);
    if (idle_.empty()) return nullptr;
    std::unique_ptr<Connection> c = std::move(idle_.back());
    idle_.pop_back();
    return c;
  }

  void PutIdle(std::unique_ptr<Connection> c) {
    std::lock_guard<std::mutex> lock(mu_);
    if (idle_.size() < kMaxIdle) idle_.push_back(std::move(c));
  }

  void MarkFailed(size_t endpoint) {
    std::lock_guard<std::mutex> lock(mu_);
    if (preferred_ == endpoint) preferred_ = (endpoint + 1) % endpoints_.size();
    // Connections to a failed endpoint are likely dead too.
    idle_.erase(std::remove_if(idle_.begin(), idle_.end(),
                               [endpoint](const auto& c) { return c->endpoint == endpoint; }),
                idle_.end());
  }

  static constexpr size_t kMaxIdle = 8;
  const std::vector<EtcdEndpoint> endpoints_;
  const EtcdStoreOptions options_;
  std::mutex mu_;
  size_t preferred_ = 0;
  std::vector<std::unique_ptr<Connection>> idle_;
};

absl::StatusOr<RangeResult> RangePrefix(EtcdClient& client, std::string_view prefix) {
  Json req = {{"key", B64(prefix.empty() ? std::string(1, '\0') : std::string(prefix))},
              {"range_end", B64(PrefixEnd(prefix))}};
  ASSIGN_OR_RETURN(Json res, client.Call("/v3/kv/range", req, true));
  RangeResult out;
  out.revision = HeaderRevision(res);
  if (auto kvs = res.find("kvs"); kvs != res.end() && kvs->is_array()) {
    for (const Json& kv : *kvs) out.kvs.push_back(ParseKv(kv));
  }
  return out;
}

// A watch: one thread holding a streaming POST /v3/watch, resuming after the
// last delivered revision on another connection when the stream breaks, and
// resyncing from a range when etcd says the history it needs is compacted.
class EtcdWatch : public Watch {
 public:
  EtcdWatch(std::shared_ptr<EtcdClient> client, std::string prefix, Revision after,
            WatchCallback callback)
      : client_(std::move(client)),
        prefix_(std::move(prefix)),
        callback_(std::move(callback)),
        next_revision_(after + 1),
        need_resync_(after <= 0) {
    thread_ = std::thread([this] { Run(); });
  }

  ~EtcdWatch() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
      if (current_ != nullptr) current_->ioc.stop();
    }
    cv_.notify_all();
    thread_.join();
  }

 private:
  bool stopping() {
    std::lock_guard<std::mutex> lock(mu_);
    return stopping_;
  }

  // Sleeps, waking early when the watch is destroyed; false when it is.
  bool Backoff(absl::Duration* delay) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, absl::ToChronoMilliseconds(*delay), [this] { return stopping_; });
    *delay = std::min(*delay * 2, absl::Seconds(1));
    return !stopping_;
  }

  // Runs `c`'s io_context unless the watch is being destroyed.
  bool RunUnlessStopping(Connection& c) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) return false;
      c.ioc.restart();  // under the lock, so a concurrent stop() is never lost
    }
    c.ioc.run();
    return !stopping();
  }

  void Run() {
    absl::Duration delay = absl::Milliseconds(50);
    while (!stopping()) {
      if (need_resync_) {
        absl::StatusOr<RangeResult> range = RangePrefix(*client_, prefix_);
        if (!range.ok()) {
          LOG_WARNING("etcd watch resync failed; retrying", {"prefix", prefix_},
                      {"error", range.status()});
          if (!Backoff(&delay)) return;
          continue;
        }
        WatchBatch batch;
        batch.resync = true;
        batch.snapshot = std::move(range->kvs);
        batch.revision = range->revision;
        if (stopping()) return;
        callback_(batch);
        next_revision_ = range->revision + 1;
        need_resync_ = false;
      }
      absl::Status s = Stream(&delay);
      if (stopping()) return;
      if (!s.ok()) {
        LOG_DEBUG("etcd watch stream ended; resuming", {"prefix", prefix_},
                  {"revision", next_revision_}, {"error", s});
      }
      if (!need_resync_ && !Backoff(&delay)) return;
    }
  }

  // One watch stream, until it breaks or etcd cancels it.
  absl::Status Stream(absl::Duration* delay) {
    ASSIGN_OR_RETURN(std::unique_ptr<Connection> c, client_->Dial());
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) return absl::CancelledError("watch destroyed");
      current_ = c.get();
    }
    absl::Status s = StreamOn(*c, delay);
    std::lock_guard<std::mutex> lock(mu_);
    current_ = nullptr;
    return s;
  }

  // The stream is idle while nothing changes: TCP keep-alives notice a peer that
  // vanished without closing (a partition) in about 10 s, so the watch moves on.
  static void EnableKeepalive(Connection& c) {
    const int fd = c.stream.socket().native_handle();
    int on = 1, idle = 4, interval = 2, count = 3;
    ::setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on));
    ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
    ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof(interval));
    ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof(count));
  }

  absl::Status StreamOn(Connection& c, absl::Duration* delay) {
    const EtcdEndpoint& ep = client_->endpoints()[c.endpoint];
    Json create = {{"create_request",
                    {{"key", B64(prefix_.empty() ? std::string(1, '\0') : prefix_)},
                     {"range_end", B64(PrefixEnd(prefix_))},
                     {"start_revision", std::to_string(next_revision_)}}}};
    auto req = MakeRequest(ep, "/v3/watch", create.dump());
    beast::error_code ec;
    c.stream.expires_after(absl::ToChronoMilliseconds(client_->options().request_timeout));
    http::async_write(c.stream, req, [&](beast::error_code e, size_t) { ec = e; });
    if (!RunUnlessStopping(c)) return absl::CancelledError("watch destroyed");
    if (ec) return NetError(ep, ec, client_->options().request_timeout);

    http::response_parser<http::string_body> parser;
    parser.body_limit(boost::none);
    std::string pending;
    auto on_chunk = [&pending](uint64_t, beast::string_view body, beast::error_code&) {
      pending.append(body.data(), body.size());
      return body.size();
    };
    parser.on_chunk_body(on_chunk);
    http::async_read_header(c.stream, c.buffer, parser, [&](beast::error_code e, size_t) { ec = e; });
    if (!RunUnlessStopping(c)) return absl::CancelledError("watch destroyed");
    if (ec) return NetError(ep, ec, client_->options().request_timeout);
    EnableKeepalive(c);
    if (parser.get().result() != http::status::ok) {
      http::async_read(c.stream, c.buffer, parser, [&](beast::error_code e, size_t) { ec = e; });
      RunUnlessStopping(c);
      return ErrorFromBody(parser.get().result_int(), pending + parser.get().body());
    }
    // The stream stays open for as long as the watch does: no deadline on reads.
    c.stream.expires_never();
    while (true) {
      http::async_read_some(c.stream, c.buffer, parser,
                            [&](beast::error_code e, size_t) { ec = e; });
      if (!RunUnlessStopping(c)) return absl::CancelledError("watch destroyed");
      if (ec) return NetError(ep, ec, client_->options().request_timeout);
      pending += parser.get().body();
      parser.get().body().clear();
      size_t nl;
      while ((nl = pending.find('\n')) != std::string::npos) {
        std::string line = pending.substr(0, nl);
        pending.erase(0, nl + 1);
        if (line.find_first_not_of(" \r\t") == std::string::npos) continue;
        RETURN_IF_ERROR(HandleMessage(line));
        *delay = absl::Milliseconds(50);  // the stream works: reset the backoff
        if (stopping()) return absl::CancelledError("watch destroyed");
      }
      if (parser.is_done()) return absl::UnavailableError("etcd closed the watch stream");
    }
  }

  absl::Status HandleMessage(const std::string& line) {
    Json msg = Json::parse(line, nullptr, false);
    if (!msg.is_object()) return absl::InternalError(StrCat("etcd: malformed watch message: ", line));
    if (auto err = msg.find("error"); err != msg.end()) {
      return ErrorFromBody(200, line);
    }
    auto result_it = msg.find("result");
    if (result_it == msg.end()) return absl::OkStatus();
    const Json& result = *result_it;
    if (JsonInt(result, "compact_revision") > 0) {
      // The history after next_revision_ - 1 is gone: start over from a range.
      need_resync_ = true;
      return absl::OutOfRangeError(
          StrCat("watch history compacted at ", JsonInt(result, "compact_revision")));
    }
    if (result.value("canceled", false)) {
      return absl::UnavailableError(
          StrCat("etcd canceled the watch: ", result.value("cancel_reason", std::string())));
    }
    auto events = result.find("events");
    if (events == result.end() || !events->is_array() || events->empty()) return absl::OkStatus();
    WatchBatch batch;
    for (const Json& e : *events) {
      Event ev;
      ev.type = e.value("type", std::string("PUT")) == "DELETE" ? Event::Type::kDelete
                                                                 : Event::Type::kPut;
      if (auto kv = e.find("kv"); kv != e.end()) ev.kv = ParseKv(*kv);
      // After a reconnect etcd may repeat what was already delivered.
      if (ev.kv.mod_revision < next_revision_) continue;
      batch.events.push_back(std::move(ev));
    }
    if (batch.events.empty()) return absl::OkStatus();
    batch.revision = batch.events.back().kv.mod_revision;
    callback_(batch);
    next_revision_ = batch.revision + 1;
    return absl::OkStatus();
  }

  const std::shared_ptr<EtcdClient> client_;
  const std::string prefix_;
  const WatchCallback callback_;
  // Owned by the watch thread.
  Revision next_revision_;
  bool need_resync_;

  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  Connection* current_ = nullptr;
  std::thread thread_;
};

Json OpJson(const Op& op) {
  if (op.type == Op::Type::kPut) {
    Json put = {{"key", B64(op.key)}, {"value", B64(op.value)}};
    if (op.lease != kNoLease) put["lease"] = std::to_string(op.lease);
    return {{"request_put", put}};
  }
  return {{"request_delete_range", {{"key", B64(op.key)}}}};
}

Json CompareJson(const Compare& c) {
  Json j = {{"key", B64(c.key)}, {"result", "EQUAL"}};
  switch (c.target) {
    case Compare::Target::kValue:
      j["target"] = "VALUE";
      j["value"] = B64(c.value);
      break;
    case Compare::Target::kVersion:
      j["target"] = "VERSION";
      j["version"] = std::to_string(c.number);
      break;
    case Compare::Target::kCreateRevision:
      j["target"] = "CREATE";
      j["create_revision"] = std::to_string(c.number);
      break;
    case Compare::Target::kModRevision:
      j["target"] = "MOD";
      j["mod_revision"] = std::to_string(c.number);
      break;
  }
  return j;
}

class EtcdStore : public Store {
 public:
  explicit EtcdStore(std::shared_ptr<EtcdClient> client) : client_(std::move(client)) {}

  absl::StatusOr<std::optional<KeyValue>> Get(std::string_view key) override {
    ASSIGN_OR_RETURN(Json res, client_->Call("/v3/kv/range", {{"key", B64(key)}}, true));
    auto kvs = res.find("kvs");
    if (kvs == res.end() || !kvs->is_array() || kvs->empty()) return std::nullopt;
    return ParseKv((*kvs)[0]);
  }

  absl::StatusOr<RangeResult> Range(std::string_view prefix) override {
    return RangePrefix(*client_, prefix);
  }

  absl::StatusOr<Revision> Put(std::string_view key, std::string_view value,
                               LeaseId lease) override {
    Json req = {{"key", B64(key)}, {"value", B64(value)}};
    if (lease != kNoLease) req["lease"] = std::to_string(lease);
    ASSIGN_OR_RETURN(Json res, client_->Call("/v3/kv/put", req, false));
    return HeaderRevision(res);
  }

  absl::StatusOr<int64_t> Delete(std::string_view key) override {
    ASSIGN_OR_RETURN(Json res, client_->Call("/v3/kv/deleterange", {{"key", B64(key)}}, false));
    return JsonInt(res, "deleted");
  }

  absl::StatusOr<TxnResult> Commit(const Txn& txn) override {
    Json req = {{"compare", Json::array()}, {"success", Json::array()}, {"failure", Json::array()}};
    for (const Compare& c : txn.compare) req["compare"].push_back(CompareJson(c));
    for (const Op& op : txn.success) req["success"].push_back(OpJson(op));
    for (const Op& op : txn.failure) req["failure"].push_back(OpJson(op));
    ASSIGN_OR_RETURN(Json res, client_->Call("/v3/kv/txn", req, false));
    TxnResult result;
    result.succeeded = res.value("succeeded", false);
    result.revision = HeaderRevision(res);
    return result;
  }

  absl::StatusOr<LeaseId> GrantLease(absl::Duration ttl) override {
    int64_t seconds = std::max<int64_t>(1, absl::ToInt64Seconds(absl::Ceil(ttl, absl::Seconds(1))));
    ASSIGN_OR_RETURN(Json res,
                     client_->Call("/v3/lease/grant", {{"TTL", std::to_string(seconds)}}, false));
    LeaseId id = JsonInt(res, "ID");
    if (id == kNoLease) return absl::InternalError("etcd granted no lease id");
    return id;
  }

  absl::Status KeepAlive(LeaseId lease) override {
    ASSIGN_OR_RETURN(Json res, client_->Call("/v3/lease/keepalive",
                                             {{"ID", std::to_string(lease)}}, true));
    const Json& result = res.contains("result") ? res["result"] : res;
    if (JsonInt(result, "TTL") <= 0) return absl::NotFoundError(StrCat("lease ", lease, " not found"));
    return absl::OkStatus();
  }

  absl::Status RevokeLease(LeaseId lease) override {
    absl::StatusOr<Json> res =
        client_->Call("/v3/kv/lease/revoke", {{"ID", std::to_string(lease)}}, true);
    if (!res.ok() && !absl::IsNotFound(res.status())) return res.status();
    return absl::OkStatus();
  }

  absl::Status Compact(Revision revision) override {
    absl::StatusOr<Json> res = client_->Call(
        "/v3/kv/compaction", {{"revision", std::to_string(revision)}, {"physical", true}}, true);
    if (!res.ok() && res.status().message().find("has been compacted") != std::string::npos) {
      return absl::OkStatus();  // already done, as in the embedded store
    }
    return res.status();
  }

  absl::StatusOr<std::unique_ptr<Watch>> WatchPrefix(std::string_view prefix,
                                                     Revision after_revision,
                                                     WatchCallback callback) override {
    if (!callback) return absl::InvalidArgumentError("watch needs a callback");
    return std::unique_ptr<Watch>(
        new EtcdWatch(client_, std::string(prefix), after_revision, std::move(callback)));
  }

 private:
  std::shared_ptr<EtcdClient> client_;
};

}  // namespace

std::string EtcdEndpoint::ToString() const {
  if (host.find(':') != std::string::npos) return StrCat("[", host, "]:", port);
  return StrCat(host, ":", port);
}

absl::StatusOr<std::vector<EtcdEndpoint>> ParseEtcdUrl(std::string_view url) {
  auto bad = [url](std::string_view why) {
    return absl::InvalidArgumentError(
        StrCat("store URL \"", url, "\": ", why, " (want etcd://host:port[,host:port...])"));
  };
  constexpr std::string_view kScheme = "etcd://";
  if (url.substr(0, kScheme.size()) != kScheme) return bad("not an etcd:// URL");
  std::string_view rest = url.substr(kScheme.size());
  if (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  if (rest.empty()) return bad("no endpoints");
  std::vector<EtcdEndpoint> out;
  for (absl::string_view part_absl : absl::StrSplit(ToAbsl(rest), ',')) {
    std::string_view part = ToStd(part_absl);
    EtcdEndpoint ep;
    std::string_view port;
    if (!part.empty() && part[0] == '[') {
      size_t close = part.find(']');
      if (close == std::string_view::npos || close + 1 >= part.size() || part[close + 1] != ':') {
        return bad(StrCat("endpoint \"", part, "\" is not [ipv6]:port"));
      }
      ep.host = std::string(part.substr(1, close - 1));
      port = part.substr(close + 2);
    } else {
      size_t colon = part.rfind(':');
      if (colon == std::string_view::npos) return bad(StrCat("endpoint \"", part, "\" has no port"));
      ep.host = std::string(part.substr(0, colon));
      port = part.substr(colon + 1);
    }
    if (ep.host.empty()) return bad(StrCat("endpoint \"", part, "\" has no host"));
    if (ep.host.find_first_of("/?#@ ") != std::string::npos) {
      return bad(StrCat("endpoint \"", part, "\" has a bad host"));
    }
    int port_number = 0;
    if (!absl::SimpleAtoi(ToAbsl(port), &port_number) || port_number < 1 || port_number > 65535 ||
        port.find_first_not_of("0123456789") != std::string_view::npos) {
      return bad(StrCat("endpoint \"", part, "\" has a bad port"));
    }
    ep.port = static_cast<uint16_t>(port_number);
    out.push_back(std::move(ep));
  }
  return out;
}

absl::StatusOr<std::unique_ptr<Store>> OpenEtcdStore(std::string_view url,
                                                     EtcdStoreOptions options) {
  ASSIGN_OR_RETURN(std::vector<EtcdEndpoint> endpoints, ParseEtcdUrl(url));
  auto client = std::make_shared<EtcdClient>(std::move(endpoints), options);
  // Fail fast and clearly when no endpoint answers.
  RETURN_IF_ERROR(client->Call("/v3/kv/range", {{"key", B64("/")}}, true).status());
  return std::unique_ptr<Store>(new EtcdStore(std::move(client)));
}

}  // namespace loom::store
