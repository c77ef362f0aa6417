#include "common/http/server.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <exception>
#include <mutex>
#include <optional>
#include <algorithm>
#include <thread>
#include <vector>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "common/log.h"
#include "common/status.h"
#include "common/strings.h"

namespace loom::http {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;

// What every session needs, shared so that sessions outliving Stop() stay valid.
struct Core {
  Handler handler;
  ServerOptions options;
};

Request ToRequest(bhttp::request<bhttp::string_body>&& req) {
  Request out;
  out.method = std::string(req.method_string());
  out.target = std::string(req.target());
  size_t q = out.target.find('?');
  out.path = out.target.substr(0, q);
  if (q != std::string::npos) out.query = out.target.substr(q + 1);
  for (const auto& field : req) {
    out.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
  }
  out.body = std::move(req.body());
  return out;
}

Response CallHandler(const Core& core, const Request& request) {
  try {
    return core.handler(request);
  } catch (const std::exception& e) {
    LOG_ERROR("http handler threw", {"path", request.path}, {"error", e.what()});
  } catch (...) {
    LOG_ERROR("http handler threw", {"path", request.path}, {"error", "unknown exception"});
  }
  return Response::Error(500, "internal error");
}

template <class Protocol>
class Session : public std::enable_shared_from_this<Session<Protocol>> {
 public:
  Session(typename Protocol::socket socket, std::shared_ptr<const Core> core)
      : stream_(std::move(socket)), core_(std::move(core)) {}

  void Run() {
    asio::dispatch(stream_.get_executor(),
                   beast::bind_front_handler(&Session::Read, this->shared_from_this()));
  }

 private:
  void Read() {
    parser_.emplace();
    parser_->header_limit(static_cast<uint32_t>(core_->options.max_header_bytes));
    parser_->body_limit(core_->options.max_body_bytes);
    stream_.expires_after(absl::ToChronoMilliseconds(core_->options.idle_timeout));
    bhttp::async_read(stream_, buffer_, *parser_,
                      beast::bind_front_handler(&Session::OnRead, this->shared_from_this()));
  }

  void OnRead(beast::error_code ec, size_t) {
    if (ec == bhttp::error::end_of_stream || ec == beast::error::timeout ||
        ec == asio::error::operation_aborted || ec == asio::error::connection_reset ||
        ec == asio::error::eof) {
      Close();
      return;
    }
    if (ec == bhttp::error::body_limit) {
      Reply(Response::Error(413, "request body too large"), false);
      return;
    }
    if (ec == bhttp::error::header_limit) {
      Reply(Response::Error(431, "request header too large"), false);
      return;
    }
    if (ec) {
      Reply(Response::Error(400, StrCat("bad request: ", ec.message())), false);
      return;
    }
    bhttp::request<bhttp::string_body> req = parser_->release();
    bool keep_alive = req.keep_alive();
    unsigned version = req.version();
    Request request = ToRequest(std::move(req));
    Reply(CallHandler(*core_, request), keep_alive, version);
  }

  void Reply(Response response, bool keep_alive, unsigned version = 11) {
    res_ = {};
    res_.version(version);
    res_.result(static_cast<unsigned>(response.status));
    res_.set(bhttp::field::server, "loom");
    res_.set(bhttp::field::content_type, response.content_type);
    res_.body() = std::move(response.body);
    res_.keep_alive(keep_alive);
    res_.prepare_payload();
    stream_.expires_after(absl::ToChronoMilliseconds(core_->options.idle_timeout));
    bhttp::async_write(stream_, res_,
                       beast::bind_front_handler(&Session::OnWrite, this->shared_from_this()));
  }

  void OnWrite(beast::error_code ec, size_t) {
    if (ec || !res_.keep_alive()) {
      Close();
      return;
    }
    Read();
  }

  void Close() {
    beast::error_code ignored;
    stream_.socket().shutdown(Protocol::socket::shutdown_send, ignored);
    stream_.socket().close(ignored);
  }

  beast::basic_stream<Protocol> stream_;
  beast::flat_buffer buffer_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  bhttp::response<bhttp::string_body> res_;
  std::shared_ptr<const Core> core_;
};

template <class Protocol>
class Listener : public std::enable_shared_from_this<Listener<Protocol>> {
 public:
  Listener(asio::io_context& ioc, typename Protocol::acceptor acceptor,
           std::shared_ptr<const Core> core)
      : ioc_(ioc), acceptor_(std::move(acceptor)), core_(std::move(core)) {}

  void Accept() {
    acceptor_.async_accept(asio::make_strand(ioc_),
                           beast::bind_front_handler(&Listener::OnAccept,
                                                     this->shared_from_this()));
  }

  void Close() {
    beast::error_code ignored;
    acceptor_.close(ignored);
  }

 private:
  void OnAccept(beast::error_code ec, typename Protocol::socket socket) {
    if (ec == asio::error::operation_aborted || !acceptor_.is_open()) return;
    if (ec) {
      LOG_WARNING("http accept failed", {"error", ec.message()});
    } else {
      std::make_shared<Session<Protocol>>(std::move(socket), core_)->Run();
    }
    Accept();
  }

  asio::io_context& ioc_;
  typename Protocol::acceptor acceptor_;
  std::shared_ptr<const Core> core_;
};

// Whether a process accepts connections on the unix socket at `path`.
bool SocketAccepting(const std::string& path) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.data(), path.size());
  bool accepting = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  close(fd);
  return accepting;
}

struct OwnedSocketFile {
  std::string path;
  dev_t dev = 0;
  ino_t ino = 0;
};

}  // namespace

struct HttpServer::Impl {
  // A pointer so that Stop() can destroy it, which closes every open connection.
  std::unique_ptr<asio::io_context> ioc_owner = std::make_unique<asio::io_context>();
  asio::io_context& ioc = *ioc_owner;
  std::shared_ptr<const Core> core;
  std::vector<std::shared_ptr<Listener<asio::ip::tcp>>> tcp;
  std::vector<std::shared_ptr<Listener<asio::local::stream_protocol>>> unix;
  std::vector<OwnedSocketFile> socket_files;
  std::vector<std::thread> threads;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
  std::mutex mu;
  bool started = false;
  bool stopped = false;
};

HttpServer::HttpServer(Handler handler, ServerOptions options) : impl_(std::make_unique<Impl>()) {
  impl_->core = std::make_shared<const Core>(Core{std::move(handler), options});
}

HttpServer::~HttpServer() { Stop(); }

absl::Status HttpServer::ListenUnix(const std::string& path) {
  using local = asio::local::stream_protocol;
  if (impl_->started || impl_->stopped) {
    return absl::FailedPreconditionError("ListenUnix after Start or Stop");
  }
  if (path.empty()) return absl::InvalidArgumentError("unix socket path is empty");
  // bind() into a temporary name first: sun_path holds 107 bytes plus NUL.
  std::string tmp = StrCat(path, ".", getpid(), ".tmp");
  if (tmp.size() >= sizeof(sockaddr_un::sun_path)) {
    return absl::InvalidArgumentError(
        StrCat(path, ": unix socket path too long (at most ",
               sizeof(sockaddr_un::sun_path) - 1 - (tmp.size() - path.size()), " bytes)"));
  }
  struct stat st;
  if (lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      return absl::FailedPreconditionError(StrCat(path, ": exists and is not a socket"));
    }
    if (SocketAccepting(path)) {
      return absl::FailedPreconditionError(StrCat(path, ": in use by another process"));
    }
    if (unlink(path.c_str()) != 0 && errno != ENOENT) {
      return ErrnoToStatus(errno, StrCat("remove stale socket ", path));
    }
    LOG_INFO("removed stale socket", {"path", path});
  }
  unlink(tmp.c_str());
  // The socket appears under its final name already 0600 (bind, chmod, rename), so
  // nobody can connect through a wider mode in between.
  local::acceptor acceptor(impl_->ioc);
  beast::error_code ec;
  acceptor.open(local(), ec);
  if (!ec) acceptor.bind(local::endpoint(tmp), ec);
  if (ec) return ErrnoToStatus(ec.value(), StrCat("bind ", path));
  auto fail = [&](std::string_view what) {
    absl::Status status = ErrnoToStatus(errno, StrCat(what, " ", path));
    unlink(tmp.c_str());
    return status;
  };
  if (chmod(tmp.c_str(), 0600) != 0) return fail("chmod");
  acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    unlink(tmp.c_str());
    return ErrnoToStatus(ec.value(), StrCat("listen ", path));
  }
  if (rename(tmp.c_str(), path.c_str()) != 0) return fail("rename socket to");
  if (lstat(path.c_str(), &st) != 0) return fail("stat");
  impl_->socket_files.push_back({path, st.st_dev, st.st_ino});
  impl_->unix.push_back(std::make_shared<Listener<local>>(impl_->ioc, std::move(acceptor),
                                                          impl_->core));
  return absl::OkStatus();
}

absl::StatusOr<uint16_t> HttpServer::ListenTcp(std::string_view host, uint16_t port) {
  using tcp = asio::ip::tcp;
  if (impl_->started || impl_->stopped) {
    return absl::FailedPreconditionError("ListenTcp after Start or Stop");
  }
  beast::error_code ec;
  asio::ip::address address = asio::ip::make_address(std::string(host), ec);
  if (ec) return absl::InvalidArgumentError(StrCat("\"", host, "\": not an IP address"));
  tcp::endpoint endpoint(address, port);
  std::string name = address.is_v6() ? StrCat("[", host, "]:", port) : StrCat(host, ":", port);
  tcp::acceptor acceptor(impl_->ioc);
  acceptor.open(endpoint.protocol(), ec);
  if (!ec) acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor.bind(endpoint, ec);
  if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return ErrnoToStatus(ec.value(), StrCat("listen on ", name));
  uint16_t bound = acceptor.local_endpoint().port();
  impl_->tcp.push_back(std::make_shared<Listener<tcp>>(impl_->ioc, std::move(acceptor),
                                                       impl_->core));
  return bound;
}

absl::Status HttpServer::Start() {
  std::lock_guard<std::mutex> lock(impl_->mu);
  if (impl_->started) return absl::FailedPreconditionError("http server already started");
  if (impl_->stopped) return absl::FailedPreconditionError("http server stopped");
  impl_->started = true;
  for (auto& l : impl_->tcp) l->Accept();
  for (auto& l : impl_->unix) l->Accept();
  impl_->work.emplace(impl_->ioc.get_executor());
  int threads = std::max(1, impl_->core->options.threads);
  for (int i = 0; i < threads; ++i) {
    impl_->threads.emplace_back([this] {
      for (;;) {
        try {
          impl_->ioc.run();
          return;
        } catch (const std::exception& e) {
          // Handlers catch their own; this is a last resort so one bad connection does
          // not end the server.
          LOG_ERROR("http server loop", {"error", e.what()});
        }
      }
    });
  }
  return absl::OkStatus();
}

void HttpServer::Stop() {
  std::lock_guard<std::mutex> lock(impl_->mu);
  if (impl_->stopped) return;
  impl_->stopped = true;
  // Stop the loop first so nothing runs concurrently with closing the acceptors;
  // destroying the io_context then closes every open connection.
  impl_->work.reset();
  impl_->ioc.stop();
  for (auto& t : impl_->threads) t.join();
  impl_->threads.clear();
  for (auto& l : impl_->tcp) l->Close();
  for (auto& l : impl_->unix) l->Close();
  impl_->tcp.clear();
  impl_->unix.clear();
  impl_->ioc_owner.reset();
  // Only remove a socket file that is still the one we created.
  for (const OwnedSocketFile& f : impl_->socket_files) {
    struct stat st;
    if (lstat(f.path.c_str(), &st) == 0 && st.st_dev == f.dev && st.st_ino == f.ino) {
      unlink(f.path.c_str());
    }
  }
  impl_->socket_files.clear();
}

}  // namespace loom::http
