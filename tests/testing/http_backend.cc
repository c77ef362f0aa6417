#include "tests/testing/http_backend.h"

#include <sys/socket.h>

#include <list>
#include <mutex>
#include <thread>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "common/strings.h"

namespace loom::testing {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;

struct HttpBackend::Impl {
  asio::io_context io;
  tcp::acceptor acceptor{io};
  std::thread accept_thread;
  std::mutex mu;
  std::list<std::pair<std::shared_ptr<tcp::socket>, std::thread>> conns;
  std::atomic<bool> stopping{false};
};

namespace {

std::string Field(const bhttp::request_parser<bhttp::string_body>& p, std::string_view name) {
  auto it = p.get().find(beast::string_view(name.data(), name.size()));
  return it == p.get().end() ? "" : std::string(it->value());
}

void Serve(const std::string& name, tcp::socket& sock, std::atomic<uint64_t>& requests) {
  beast::error_code ec;
  beast::flat_buffer buf;
  for (;;) {
    bhttp::request_parser<bhttp::string_body> parser;
    parser.body_limit(1ull << 30);
    parser.header_limit(1 << 20);
    bhttp::read_header(sock, buf, parser, ec);
    if (ec) return;
    const auto& req = parser.get();
    std::string target(req.target());
    if (beast::iequals(Field(parser, "Expect"), "100-continue")) {
      bhttp::response<bhttp::empty_body> cont{bhttp::status::continue_, 11};
      bhttp::write(sock, cont, ec);
      if (ec) return;
    }
    if (!parser.is_done()) bhttp::read(sock, buf, parser, ec);
    if (ec) return;
    requests.fetch_add(1);
    if (parser.upgrade()) {
      std::string resp = StrCat("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: ",
                                Field(parser, "Upgrade"), "\r\nX-Backend: ", name, "\r\n\r\n");
      asio::write(sock, asio::buffer(resp), ec);
      if (buf.size() > 0) {
        asio::write(sock, buf.data(), ec);
        buf.clear();
      }
      char data[16384];
      for (;;) {
        size_t n = sock.read_some(asio::buffer(data), ec);
        if (ec) return;
        asio::write(sock, asio::buffer(data, n), ec);
        if (ec) return;
      }
    }
    std::string body;
    if (target.starts_with("/echo")) {
      body = req.body();
    } else {
      body = StrCat(name, " ", std::string(req.method_string()), " ", target, "\n");
    }
    if (target.starts_with("/slow")) {
      size_t at = target.find("ms=");
      int ms = at == std::string::npos ? 100 : std::atoi(target.c_str() + at + 3);
      std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    }
    std::string head = StrCat("HTTP/1.1 200 OK\r\nX-Backend: ", name, "\r\nX-Seen-Host: ", Field(parser, "Host"),
                              "\r\nX-Seen-Xff: ", Field(parser, "X-Forwarded-For"), "\r\nX-Seen-Proto: ",
                              Field(parser, "X-Forwarded-Proto"), "\r\nContent-Type: text/plain\r\n");
    if (!parser.keep_alive()) head += "Connection: close\r\n";
    std::string out;
    if (target.starts_with("/chunked")) {
      size_t third = body.size() / 3;
      out = head + "Transfer-Encoding: chunked\r\n\r\n";
      for (std::string_view part : {std::string_view(body).substr(0, third),
                                    std::string_view(body).substr(third, third),
                                    std::string_view(body).substr(2 * third)}) {
        char size[32];
        snprintf(size, sizeof(size), "%zx\r\n", part.size());
        out.append(size).append(part).append("\r\n");
      }
      out += "0\r\n\r\n";
    } else {
      out = StrCat(head, "Content-Length: ", body.size(), "\r\n\r\n", body);
    }
    if (req.method() == bhttp::verb::head) out = head + StrCat("Content-Length: ", body.size(), "\r\n\r\n");
    asio::write(sock, asio::buffer(out), ec);
    if (ec || !parser.keep_alive()) return;
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<HttpBackend>> HttpBackend::Start(std::string name, std::string ip, int port) {
  std::unique_ptr<HttpBackend> b(new HttpBackend());
  b->name_ = std::move(name);
  b->ip_ = ip;
  b->impl_ = std::make_unique<Impl>();
  beast::error_code ec;
  tcp::endpoint ep(asio::ip::make_address(ip, ec), static_cast<uint16_t>(port));
  if (ec) return absl::InvalidArgumentError(StrCat("backend ip ", ip));
  auto& acc = b->impl_->acceptor;
  acc.open(ep.protocol(), ec);
  if (!ec) acc.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) acc.bind(ep, ec);
  if (!ec) acc.listen(1024, ec);
  if (ec) return absl::UnavailableError(StrCat("backend listen ", ip, ":", port, ": ", ec.message()));
  b->port_ = acc.local_endpoint().port();
  HttpBackend* self = b.get();
  b->impl_->accept_thread = std::thread([self] {
    Impl& im = *self->impl_;
    for (;;) {
      auto sock = std::make_shared<tcp::socket>(im.io);
      beast::error_code ec;
      im.acceptor.accept(*sock, ec);
      if (im.stopping) return;
      if (ec) continue;
      sock->set_option(tcp::no_delay(true), ec);
      self->connections_.fetch_add(1);
      std::lock_guard<std::mutex> lock(im.mu);
      im.conns.emplace_back(sock, std::thread([self, sock] { Serve(self->name_, *sock, self->requests_); }));
    }
  });
  return b;
}

void HttpBackend::Stop() {
  if (!impl_ || impl_->stopping.exchange(true)) return;
  ::shutdown(impl_->acceptor.native_handle(), SHUT_RDWR);
  beast::error_code ec;
  impl_->acceptor.close(ec);
  if (impl_->accept_thread.joinable()) impl_->accept_thread.join();
  std::lock_guard<std::mutex> lock(impl_->mu);
  for (auto& [sock, thread] : impl_->conns) ::shutdown(sock->native_handle(), SHUT_RDWR);
  for (auto& [sock, thread] : impl_->conns) thread.join();
  impl_->conns.clear();
}

HttpBackend::~HttpBackend() { Stop(); }

}  // namespace loom::testing
