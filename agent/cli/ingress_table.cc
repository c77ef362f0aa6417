// `loomctl get ingresses`: one row per ingress.
#include <algorithm>

#include "absl/time/time.h"
#include "agent/cli/cli.h"
#include "common/strings.h"

namespace loom::cli {
namespace {

// "web:80", "web:http", or "api:80(70),api-v2:80(30)" for weighted backends.
std::string BackendsText(const Json& path) {
  auto port = [](const Json& p) -> std::string {
    if (p.is_object()) return p.contains("number") ? p["number"].dump() : p.value("name", "?");
    return p.is_string() ? p.get<std::string>() : p.dump();
  };
  if (path.contains("backend")) {
    Json svc = path["backend"].value("service", Json::object());
    return StrCat(svc.value("name", "?"), ":", port(svc.value("port", Json::object())));
  }
  std::string out;
  for (const Json& b : path.value("weightedBackends", Json::array())) {
    if (!out.empty()) out += ",";
    out += StrCat(b.value("service", "?"), ":", port(b.value("port", Json())), "(", b.value("weight", 1), ")");
  }
  return out;
}

}  // namespace

std::string FormatIngressesTable(const Json& items, int64_t now_unix) {
  std::vector<std::vector<std::string>> rows = {{"NAMESPACE", "NAME", "HOSTS", "PATHS", "TLS", "AGE"}};
  for (const Json& ing : items) {
    Json meta = ing.value("metadata", Json::object());
    Json spec = ing.value("spec", Json::object());
    std::vector<std::string> hosts;
    std::string paths;
    for (const Json& rule : spec.value("rules", Json::array())) {
      std::string host = rule.value("host", "*");
      if (std::find(hosts.begin(), hosts.end(), host) == hosts.end()) hosts.push_back(host);
      for (const Json& p : rule.value("http", Json::object()).value("paths", Json::array())) {
        if (!paths.empty()) paths += " ";
        paths += StrCat(rule.value("host", ""), p.value("path", "/"), "->", BackendsText(p));
      }
    }
    if (spec.contains("defaultBackend")) {
      if (!paths.empty()) paths += " ";
      paths += StrCat("default->", BackendsText({{"backend", spec["defaultBackend"]}}));
    }
    std::string host_text;
    for (const std::string& h : hosts) {
      if (!host_text.empty()) host_text.append(",");
      host_text.append(h);
    }
    std::string tls;
    for (const Json& t : spec.value("tls", Json::array())) {
      if (!tls.empty()) tls.append(",");
      tls.append(t.value("secretName", ""));
    }
    std::string age = "-";
    absl::Time created;
    std::string err;
    if (absl::ParseTime(absl::RFC3339_full, ing.value("status", Json::object()).value("createdAt", ""), &created,
                        &err)) {
      age = FormatAge(std::max<int64_t>(0, now_unix - absl::ToUnixSeconds(created)));
    }
    rows.push_back({meta.value("namespace", "default"), meta.value("name", ""),
                    host_text.empty() ? "*" : host_text, paths.empty() ? "<none>" : paths,
                    tls.empty() ? "<none>" : tls, age});
  }
  return FormatTable(rows);
}

}  // namespace loom::cli
