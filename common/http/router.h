// Routes requests by method and path: exact paths, and path prefixes whose tail is a
// parameter (HandlePrefix("GET", "/v1/apps/", h) serves "/v1/apps/default/web" with
// request.path_tail = "default/web"). Unknown path: 404; known path, other method: 405.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <utility>

#include "common/http/message.h"

namespace loom::http {

using Handler = std::function<Response(const Request&)>;

class Router {
 public:
  void Handle(std::string_view method, std::string_view path, Handler handler);
  void HandlePrefix(std::string_view method, std::string_view prefix, Handler handler);

  // Runs the matching handler; an exact route wins over a prefix route, and a longer
  // prefix over a shorter one.
  Response Dispatch(const Request& request) const;

 private:
  // path (or prefix) -> method -> handler
  std::map<std::string, std::map<std::string, Handler>, std::less<>> exact_;
  std::map<std::string, std::map<std::string, Handler>, std::less<>> prefix_;
};

}  // namespace loom::http
