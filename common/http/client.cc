#include "common/http/client.h"

#include <sys/un.h>

#include <exception>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "common/strings.h"

namespace loom::http {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;

std::string Reason(const beast::error_code& ec) {
  if (ec == beast::error::timeout) return "timed out";
  return ec.message();
}

// Runs one request on `stream` (already set up with a deadline): connect, write, read.
template <class Protocol>
absl::StatusOr<Response> RoundTrip(asio::io_context& ioc, beast::basic_stream<Protocol>& stream,
                                   const typename Protocol::endpoint& endpoint,
                                   const std::string& name, std::string_view host_header,
                                   std::string_view method, std::string_view target,
                                   std::string_view body, std::string_view content_type,
                                   absl::Duration timeout) {
  auto deadline = std::chrono::steady_clock::now() + absl::ToChronoMilliseconds(timeout);
  beast::error_code ec;
  auto run = [&] {
    ioc.restart();
    ioc.run();
  };
  stream.expires_at(deadline);
  stream.async_connect(endpoint, [&](beast::error_code e) { ec = e; });
  run();
  if (ec) {
    if (ec == beast::error::timeout) {
      return absl::DeadlineExceededError(StrCat("connect to ", name, ": timed out"));
    }
    return absl::UnavailableError(StrCat("cannot connect to ", name, ": ", Reason(ec)));
  }

  bhttp::request<bhttp::string_body> req;
  req.method_string(beast::string_view(method.data(), method.size()));
  req.target(beast::string_view(target.data(), target.size()));
  req.version(11);
  req.set(bhttp::field::host, beast::string_view(host_header.data(), host_header.size()));
  req.set(bhttp::field::user_agent, "loom");
  req.keep_alive(false);
  if (!body.empty() || method == "POST" || method == "PUT") {
    req.set(bhttp::field::content_type,
            beast::string_view(content_type.data(), content_type.size()));
    req.body() = std::string(body);
  }
  req.prepare_payload();
  stream.expires_at(deadline);
  bhttp::async_write(stream, req, [&](beast::error_code e, size_t) { ec = e; });
  run();
  if (ec == beast::error::timeout) {
    return absl::DeadlineExceededError(StrCat(name, ": request timed out"));
  }
  if (ec) return absl::UnavailableError(StrCat(name, ": write request: ", Reason(ec)));

  beast::flat_buffer buffer;
  bhttp::response_parser<bhttp::string_body> parser;
  parser.body_limit(64 * 1024 * 1024);
  stream.expires_at(deadline);
  bhttp::async_read(stream, buffer, parser, [&](beast::error_code e, size_t) { ec = e; });
  run();
  if (ec == beast::error::timeout) {
    return absl::DeadlineExceededError(StrCat(name, ": response timed out"));
  }
  if (ec) return absl::UnavailableError(StrCat(name, ": read response: ", Reason(ec)));
  bhttp::response<bhttp::string_body> res = parser.release();
  Response out;
  out.status = static_cast<int>(res.result_int());
  out.content_type = std::string(res[bhttp::field::content_type]);
  out.body = std::move(res.body());
  beast::error_code ignored;
  stream.socket().shutdown(Protocol::socket::shutdown_both, ignored);
  return out;
}

}  // namespace

HttpClient HttpClient::ForUnixSocket(std::string path, absl::Duration timeout) {
  return HttpClient(true, path, "localhost", 0, timeout);
}

HttpClient HttpClient::ForTcp(std::string host, uint16_t port, absl::Duration timeout) {
  bool v6 = host.find(':') != std::string::npos;
  std::string endpoint = v6 ? StrCat("[", host, "]:", port) : StrCat(host, ":", port);
  return HttpClient(false, endpoint, std::move(host), port, timeout);
}

absl::StatusOr<Response> HttpClient::Get(std::string_view target) const {
  return Send("GET", target);
}

absl::StatusOr<Response> HttpClient::Send(std::string_view method, std::string_view target,
                                          std::string_view body,
                                          std::string_view content_type) const {
  try {
    asio::io_context ioc;
    if (unix_) {
      using local = asio::local::stream_protocol;
      if (endpoint_.size() >= sizeof(sockaddr_un::sun_path)) {
        return absl::InvalidArgumentError(StrCat(endpoint_, ": unix socket path too long"));
      }
      beast::basic_stream<local> stream(ioc);
      return RoundTrip<local>(ioc, stream, local::endpoint(endpoint_), endpoint_, "localhost",
                              method, target, body, content_type, timeout_);
    }
    using tcp = asio::ip::tcp;
    beast::error_code ec;
    asio::ip::address address = asio::ip::make_address(host_, ec);
    if (ec) return absl::InvalidArgumentError(StrCat("\"", host_, "\": not an IP address"));
    beast::basic_stream<tcp> stream(ioc);
    return RoundTrip<tcp>(ioc, stream, tcp::endpoint(address, port_), endpoint_, endpoint_,
                          method, target, body, content_type, timeout_);
  } catch (const std::exception& e) {
    return absl::InternalError(StrCat(endpoint_, ": ", e.what()));
  }
}

}  // namespace loom::http
