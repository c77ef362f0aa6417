#include "common/http/router.h"

#include <strings.h>

#include "common/strings.h"

namespace loom::http {

std::string Request::Header(std::string_view name) const {
  for (const auto& [key, value] : headers) {
    if (key.size() == name.size() && strncasecmp(key.data(), name.data(), name.size()) == 0) {
      return value;
    }
  }
  return "";
}

Response Response::Error(int status, std::string_view message) {
  return JsonBody(status, Json{{"error", std::string(message)}});
}

void Router::Handle(std::string_view method, std::string_view path, Handler handler) {
  exact_[std::string(path)][std::string(method)] = std::move(handler);
}

void Router::HandlePrefix(std::string_view method, std::string_view prefix, Handler handler) {
  prefix_[std::string(prefix)][std::string(method)] = std::move(handler);
}

namespace {

Response MethodNotAllowed(const Request& request,
                          const std::map<std::string, Handler>& methods) {
  std::string allowed;
  for (const auto& [method, handler] : methods) {
    if (!allowed.empty()) allowed += ", ";
    allowed += method;
  }
  return Response::Error(
      405, StrCat("method ", request.method, " not allowed on ", request.path, " (allowed: ",
                  allowed, ")"));
}

}  // namespace

Response Router::Dispatch(const Request& request) const {
  if (auto it = exact_.find(request.path); it != exact_.end()) {
    auto handler = it->second.find(request.method);
    if (handler == it->second.end()) return MethodNotAllowed(request, it->second);
    return handler->second(request);
  }
  // Longest matching prefix: walk the sorted prefixes backwards from the path.
  const std::map<std::string, Handler>* best = nullptr;
  size_t best_len = 0;
  for (const auto& [prefix, methods] : prefix_) {
    if (request.path.size() >= prefix.size() &&
        request.path.compare(0, prefix.size(), prefix) == 0 && prefix.size() >= best_len) {
      best = &methods;
      best_len = prefix.size();
    }
  }
  if (best == nullptr) return Response::Error(404, StrCat("no route for ", request.path));
  auto handler = best->find(request.method);
  if (handler == best->end()) return MethodNotAllowed(request, *best);
  Request with_tail = request;
  with_tail.path_tail = request.path.substr(best_len);
  return handler->second(with_tail);
}

}  // namespace loom::http
