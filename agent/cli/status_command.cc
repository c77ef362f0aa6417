// loomctl status: this node's loomd (store, DNS, each component's health) and the
// health every live node published, from GET /v1/status.
#include "agent/cli/cli.h"
#include "common/strings.h"

namespace loom::cli {

std::string FormatStatusTable(const Json& s) {
  auto str = [](const Json& obj, const char* key) -> std::string {
    if (!obj.is_object() || !obj.contains(key)) return "-";
    const Json& v = obj[key];
    if (v.is_string()) return v.get<std::string>();
    if (v.is_boolean()) return v.get<bool>() ? "yes" : "no";
    return v.dump();
  };
  Json store = s.value("store", Json::object());
  std::string uptime = s.contains("uptimeSeconds") && s["uptimeSeconds"].is_number_integer()
                           ? FormatAge(s["uptimeSeconds"].get<int64_t>())
                           : "-";
  std::string table =
      FormatTable({{"NODE", "VERSION", "STORE", "STORE HEALTHY", "REVISION", "READY", "UPTIME"},
                   {str(s, "node"), str(s, "version"), str(store, "kind"), str(store, "healthy"),
                    str(store, "revision"), str(s, "ready"), uptime}});
  if (s.contains("dns") && s["dns"].is_object()) {
    const Json& dns = s["dns"];
    Json zone = dns.value("zone", Json::object());
    Json fwd = dns.value("forwarding", Json::object());
    std::string upstreams = "none";
    if (fwd.value("enabled", false)) {
      upstreams = StrCat(fwd.value("healthy", Json::array()).size(), "/",
                         fwd.value("upstreams", Json::array()).size(), " healthy");
      if (fwd.value("loopDetected", false)) upstreams += ", LOOP DETECTED";
    }
    table += '\n';
    table += FormatTable({{"DNS", "SERVING", "SERVICES", "NAMES", "UPSTREAMS"},
                                 {str(dns, "address"), str(dns, "serving"), str(zone, "services"),
                                  str(zone, "names"), upstreams}});
  }
  constexpr const char* kComponents[] = {"store", "overlay", "dns", "lb", "ingress", "runtime"};
  if (s.contains("components") && s["components"].is_object()) {
    std::vector<std::vector<std::string>> rows = {{"COMPONENT", "STATE", "DETAIL"}};
    for (const char* name : kComponents) {
      Json c = s["components"].value(name, Json::object());
      rows.push_back({name, c.value("state", "-"), c.value("detail", "")});
    }
    table += '\n';
    table += FormatTable(rows);
  }
  if (s.contains("nodes") && s["nodes"].is_array()) {
    std::vector<std::vector<std::string>> rows = {
        {"NODE", "STORE", "OVERLAY", "DNS", "LB", "INGRESS", "RUNTIME", "SINCE"}};
    for (const Json& n : s["nodes"]) {
      std::vector<std::string> row = {n.value("node", "")};
      Json comps = n.value("components", Json::object());
      for (const char* name : kComponents) row.push_back(comps.value(name, Json::object()).value("state", "-"));
      row.push_back(n.value("since", "-"));
      rows.push_back(std::move(row));
    }
    table += '\n';
    table += FormatTable(rows);
  }
  return table;
}

int StatusCommand(Context& ctx, const std::vector<std::string>& args) {
  std::vector<std::string> rest = args;
  absl::StatusOr<OutputFormat> format = TakeOutputFormat(rest);
  if (!format.ok()) {
    std::fprintf(ctx.err, "loomctl status: %s\n", std::string(format.status().message()).c_str());
    return 2;
  }
  if (!rest.empty()) {
    std::fprintf(ctx.err, "loomctl status: unexpected argument \"%s\"\n", rest[0].c_str());
    return 2;
  }
  absl::StatusOr<Json> status = GetJson(ctx, "/v1/status");
  if (!status.ok()) return 1;
  if (*format == OutputFormat::kTable) {
    std::fputs(FormatStatusTable(*status).c_str(), ctx.out);
  } else {
    PrintStructured(ctx, *status, *format);
  }
  return 0;
}

}  // namespace loom::cli
