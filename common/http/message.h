// The request and response our HTTP handlers see: plain values, no Beast types.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "common/json.h"

namespace loom::http {

struct Request {
  std::string method;  // "GET", "POST", ...
  std::string target;  // path and query, as sent
  std::string path;    // target without the query
  std::string query;   // after '?', undecoded
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  // Set by the router for a prefix route: the path after the prefix.
  std::string path_tail;

  // The first header named `name` (case-insensitive), or "".
  std::string Header(std::string_view name) const;
};

struct Response {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;

  static Response Text(int status, std::string body) {
    return {status, "text/plain; charset=utf-8", std::move(body)};
  }
  static Response JsonBody(int status, const Json& body) {
    return {status, "application/json", body.dump() + "\n"};
  }
  // {"error": message} with `status`.
  static Response Error(int status, std::string_view message);
};

}  // namespace loom::http
