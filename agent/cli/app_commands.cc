// loomctl scale, rollout and events: Apps through loomd's /v1/apps and /v1/events.
//   loomctl scale [app/]NAME --replicas N [-n NS]
//   loomctl rollout status [app/]NAME [-n NS] [--timeout 5m]   waits until complete
//   loomctl rollout history [app/]NAME [-n NS]
//   loomctl rollout undo [app/]NAME [-n NS] [--to-revision N]
//   loomctl events [[app/]NAME] [-n NS] [-o json|yaml]
//   loomctl describe [app/]NAME [-n NS]   the spec, rollout state, replicas and events
#include <cstdio>
#include <thread>

#include "absl/strings/numbers.h"
#include "agent/cli/cli.h"
#include "common/strings.h"

namespace loom::cli {
namespace {

struct AppArgs {
  std::string ns = "default";
  std::vector<std::string> positional;
  std::map<std::string, std::string> options;  // --replicas, --to-revision, --timeout
};

// -n NS / --namespace NS and --key VALUE / --key=VALUE for the `known` keys.
absl::StatusOr<AppArgs> ParseAppArgs(const std::vector<std::string>& args,
                                     std::initializer_list<std::string_view> known) {
  AppArgs out;
  for (size_t i = 0; i < args.size(); ++i) {
    std::string a = args[i];
    std::string key, value;
    if (a == "-n" || a == "--namespace") {
      if (i + 1 == args.size()) return absl::InvalidArgumentError(StrCat(a, " needs a value"));
      out.ns = args[++i];
      continue;
    }
    if (a.rfind("--", 0) == 0) {
      size_t eq = a.find('=');
      key = a.substr(2, eq == std::string::npos ? std::string::npos : eq - 2);
      bool ok = false;
      for (std::string_view k : known) ok |= k == key;
      if (!ok) return absl::InvalidArgumentError(StrCat("unknown option ", a));
      if (eq != std::string::npos) {
        value = a.substr(eq + 1);
      } else if (i + 1 < args.size()) {
        value = args[++i];
      } else {
        return absl::InvalidArgumentError(StrCat(a, " needs a value"));
      }
      out.options[key] = value;
      continue;
    }
    if (a.rfind("-", 0) == 0 && a.size() > 1) return absl::InvalidArgumentError(StrCat("unknown option ", a));
    out.positional.push_back(a);
  }
  return out;
}

// "web", "app/web", "apps/web" -> "web"; "" for another kind.
std::string AppName(const std::string& arg) {
  for (std::string_view prefix : {"app/", "apps/"}) {
    if (arg.rfind(prefix, 0) == 0) return arg.substr(prefix.size());
  }
  return arg.find('/') == std::string::npos ? arg : "";
}

// Sends and checks: the body on 200, else prints and returns nullopt (code in *code).
std::optional<Json> Call(Context& ctx, std::string_view cmd, std::string_view method,
                         const std::string& target, const std::string& body, int* code) {
  absl::StatusOr<Reply> reply = Request(ctx, method, target, body);
  if (!reply.ok()) {
    PrintUnreachable(ctx, reply.status());
    *code = 1;
    return std::nullopt;
  }
  if (reply->status != 200) {
    *code = Fail(ctx, cmd, reply->ErrorText());
    return std::nullopt;
  }
  return reply->body;
}

int RolloutStatus(Context& ctx, const AppArgs& a, const std::string& name) {
  absl::Duration timeout = absl::Minutes(5);
  if (a.options.contains("timeout") && !absl::ParseDuration(a.options.at("timeout"), &timeout)) {
    return Fail(ctx, "rollout status", StrCat("--timeout \"", a.options.at("timeout"), "\": want e.g. 90s or 5m"), 2);
  }
  absl::Time deadline = absl::Now() + timeout;
  std::string last;
  int code = 0;
  while (true) {
    std::optional<Json> st =
        Call(ctx, "rollout status", "GET", StrCat("/v1/apps/", a.ns, "/", name, "/rollout"), "", &code);
    if (!st) return code;
    int desired = st->value("desired", 0), updated_ready = st->value("updatedReady", 0),
        total = st->value("total", 0);
    std::string line;
    if (st->value("complete", false)) {
      std::fprintf(ctx.out, "app \"%s\" successfully rolled out (revision %lld, %d/%d ready)\n",
                   name.c_str(), static_cast<long long>(st->value("revision", int64_t{0})), updated_ready,
                   desired);
      return 0;
    }
    line = StrCat("Waiting for app \"", name, "\" rollout to finish: ", updated_ready, " of ", desired,
                  " updated replicas are ready (", total, " running)...");
    if (line != last) {
      std::fprintf(ctx.out, "%s\n", line.c_str());
      std::fflush(ctx.out);
      last = line;
    }
    if (absl::Now() > deadline) {
      return Fail(ctx, "rollout status",
                  StrCat("timed out after ", absl::FormatDuration(timeout),
                         " (the new replicas are not ready: see `loomctl events ", name, "`)"));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
}

}  // namespace

int ScaleCommand(Context& ctx, const std::vector<std::string>& args) {
  absl::StatusOr<AppArgs> a = ParseAppArgs(args, {"replicas"});
  if (!a.ok()) return Fail(ctx, "scale", ToStd(a.status().message()), 2);
  std::vector<std::string> pos = a->positional;
  if (pos.size() == 2 && (pos[0] == "app" || pos[0] == "apps")) pos.erase(pos.begin());
  if (pos.size() != 1 || AppName(pos[0]).empty() || !a->options.contains("replicas")) {
    return Fail(ctx, "scale", "usage: scale [app/]NAME --replicas N [-n NS]", 2);
  }
  int replicas = 0;
  if (!absl::SimpleAtoi(ToAbsl(a->options["replicas"]), &replicas) || replicas < 0) {
    return Fail(ctx, "scale", StrCat("--replicas \"", a->options["replicas"], "\": want a whole number >= 0"), 2);
  }
  std::string name = AppName(pos[0]);
  int code = 0;
  std::optional<Json> r = Call(ctx, "scale", "POST", StrCat("/v1/apps/", a->ns, "/", name, "/scale"),
                               Json{{"replicas", replicas}}.dump(), &code);
  if (!r) return code;
  std::fprintf(ctx.out, "app/%s scaled to %d\n", name.c_str(), replicas);
  return 0;
}

int RolloutCommand(Context& ctx, const std::vector<std::string>& args) {
  absl::StatusOr<AppArgs> a = ParseAppArgs(args, {"to-revision", "timeout"});
  if (!a.ok()) return Fail(ctx, "rollout", ToStd(a.status().message()), 2);
  std::vector<std::string> pos = a->positional;
  if (pos.size() == 3 && (pos[1] == "app" || pos[1] == "apps")) pos.erase(pos.begin() + 1);
  if (pos.size() != 2 || AppName(pos[1]).empty()) {
    return Fail(ctx, "rollout", "usage: rollout status|history|undo [app/]NAME [-n NS]", 2);
  }
  std::string name = AppName(pos[1]);
  int code = 0;
  if (pos[0] == "status") return RolloutStatus(ctx, *a, name);
  if (pos[0] == "history") {
    std::optional<Json> h =
        Call(ctx, "rollout history", "GET", StrCat("/v1/apps/", a->ns, "/", name, "/history"), "", &code);
    if (!h) return code;
    std::vector<std::vector<std::string>> rows = {{"REVISION", "IMAGE", "TEMPLATE", "CREATED", ""}};
    for (const Json& item : h->value("items", Json::array())) {
      rows.push_back({std::to_string(item.value("revision", int64_t{0})), item.value("image", ""),
                      item.value("templateHash", ""), item.value("createdAt", ""),
                      item.value("current", false) ? "(current)" : ""});
    }
    std::fputs(FormatTable(rows).c_str(), ctx.out);
    return 0;
  }
  if (pos[0] == "undo") {
    int64_t revision = 0;
    if (a->options.contains("to-revision") &&
        (!absl::SimpleAtoi(ToAbsl(a->options["to-revision"]), &revision) || revision < 1)) {
      return Fail(ctx, "rollout undo", StrCat("--to-revision \"", a->options["to-revision"], "\": want a revision number"), 2);
    }
    std::optional<Json> r = Call(ctx, "rollout undo", "POST", StrCat("/v1/apps/", a->ns, "/", name, "/undo"),
                                 Json{{"revision", revision}}.dump(), &code);
    if (!r) return code;
    std::fprintf(ctx.out, "app/%s rolled back (now revision %lld)\n", name.c_str(),
                 static_cast<long long>(r->value("revision", int64_t{0})));
    return 0;
  }
  return Fail(ctx, "rollout", StrCat("unknown subcommand \"", pos[0], "\": want status, history or undo"), 2);
}

int EventsCommand(Context& ctx, const std::vector<std::string>& args) {
  std::vector<std::string> rest = args;
  absl::StatusOr<OutputFormat> format = TakeOutputFormat(rest);
  if (!format.ok()) return Fail(ctx, "events", ToStd(format.status().message()), 2);
  absl::StatusOr<AppArgs> a = ParseAppArgs(rest, {});
  if (!a.ok()) return Fail(ctx, "events", ToStd(a.status().message()), 2);
  if (a->positional.size() > 1 || (a->positional.size() == 1 && AppName(a->positional[0]).empty())) {
    return Fail(ctx, "events", "usage: events [[app/]NAME] [-n NS] [-o json|yaml]", 2);
  }
  std::string filter = a->ns;
  if (!a->positional.empty()) StrAppend(&filter, "/", AppName(a->positional[0]));
  absl::StatusOr<Json> body = GetJson(ctx, StrCat("/v1/events?app=", filter));
  if (!body.ok()) return 1;
  if (*format != OutputFormat::kTable) {
    PrintStructured(ctx, *body, *format);
    return 0;
  }
  std::vector<std::vector<std::string>> rows = {{"TIME", "NODE", "APP", "REPLICA", "TYPE", "REASON", "MESSAGE"}};
  for (const Json& e : body->value("items", Json::array())) {
    int ordinal = e.value("ordinal", -1);
    rows.push_back({e.value("time", ""), e.value("node", ""), e.value("app", ""),
                    ordinal < 0 ? "-" : std::to_string(ordinal), e.value("type", ""),
                    e.value("reason", ""), e.value("message", "")});
  }
  std::fputs(FormatTable(rows).c_str(), ctx.out);
  return 0;
}

// A string field, "" when it is missing or not a string.
std::string S(const Json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : "";
}

int DescribeCommand(Context& ctx, const std::vector<std::string>& args) {
  absl::StatusOr<AppArgs> a = ParseAppArgs(args, {});
  if (!a.ok()) return Fail(ctx, "describe", ToStd(a.status().message()), 2);
  std::vector<std::string> pos = a->positional;
  if (pos.size() == 2 && (pos[0] == "app" || pos[0] == "apps")) pos.erase(pos.begin());
  if (pos.size() != 1 || AppName(pos[0]).empty()) {
    return Fail(ctx, "describe", "usage: describe [app/]NAME [-n NS]", 2);
  }
  const std::string name = AppName(pos[0]);
  const std::string base = StrCat("/v1/apps/", a->ns, "/", name);
  int code = 0;
  std::optional<Json> app = Call(ctx, "describe", "GET", base, "", &code);
  if (!app) return code;
  std::optional<Json> rollout = Call(ctx, "describe", "GET", base + "/rollout", "", &code);
  if (!rollout) return code;
  Json spec = app->value("spec", Json::object());
  Json meta = app->value("metadata", Json::object());
  std::string labels;
  const Json meta_labels = meta.value("labels", Json::object());  // items() needs it alive
  for (const auto& [k, v] : meta_labels.items()) {
    StrAppend(&labels, labels.empty() ? "" : ",", k, "=", v.is_string() ? v.get<std::string>() : v.dump());
  }
  std::string command;
  for (const Json& c : spec.value("command", Json::array())) {
    StrAppend(&command, command.empty() ? "" : " ", c.is_string() ? c.get<std::string>() : c.dump());
  }
  auto probe = [](const Json& p) -> std::string {
    if (!p.is_object()) return "<none>";
    std::string what = p.contains("httpGet") ? StrCat("http-get :", p["httpGet"].value("port", 0), p["httpGet"].value("path", "/"))
                       : p.contains("tcpSocket") ? StrCat("tcp :", p["tcpSocket"].value("port", 0))
                                                 : "exec";
    return StrCat(what, " every ", p.value("periodSeconds", 10), "s, fail after ", p.value("failureThreshold", 3));
  };
  Json strategy = spec.value("strategy", Json::object()).value("rollingUpdate", Json::object());
  std::fprintf(ctx.out,
               "Name:         %s\nNamespace:    %s\nLabels:       %s\nImage:        %s\nCommand:      %s\n"
               "Replicas:     %d desired | %d updated | %d total | %d ready | %d updated and ready\n"
               "Revision:     %lld (template %s)%s\nStrategy:     maxSurge %s, maxUnavailable %s\n"
               "Readiness:    %s\nLiveness:     %s\n",
               name.c_str(), a->ns.c_str(), labels.empty() ? "<none>" : labels.c_str(),
               S(spec, "image").c_str(), command.empty() ? "<image default>" : command.c_str(),
               rollout->value("desired", 0), rollout->value("updated", 0), rollout->value("total", 0),
               rollout->value("ready", 0), rollout->value("updatedReady", 0),
               static_cast<long long>(rollout->value("revision", int64_t{0})),
               S(*rollout, "templateHash").c_str(), rollout->value("complete", false) ? ", complete" : ", in progress",
               strategy.value("maxSurge", Json("25%")).dump().c_str(),
               strategy.value("maxUnavailable", Json("25%")).dump().c_str(), probe(spec.value("readinessProbe", Json())).c_str(),
               probe(spec.value("livenessProbe", Json())).c_str());
  absl::StatusOr<Json> pods = GetJson(ctx, StrCat("/v1/pods/", a->ns));
  if (pods.ok()) {
    std::vector<std::vector<std::string>> rows = {{"  POD", "NODE", "IP", "READY", "REPLICA", "TEMPLATE"}};
    for (const Json& p : pods->value("items", Json::array())) {
      Json pl = p.value("metadata", Json::object()).value("labels", Json::object());
      if (S(pl, "loom.io/app") != name) continue;
      std::string ip;
      for (const Json& i : p.value("ips", Json::array())) {
        if (i.is_string()) StrAppend(&ip, ip.empty() ? "" : ",", i.get<std::string>());
      }
      rows.push_back({StrCat("  ", S(p.value("metadata", Json::object()), "name")), S(p, "node"), ip,
                      p.value("ready", false) ? "true" : "false", S(pl, "loom.io/ordinal"),
                      S(pl, "loom.io/template-hash")});
    }
    std::fprintf(ctx.out, "Replicas:\n%s", FormatTable(rows).c_str());
  }
  absl::StatusOr<Json> events = GetJson(ctx, StrCat("/v1/events?app=", a->ns, "/", name));
  if (events.ok()) {
    Json items = events->value("items", Json::array());
    std::vector<std::vector<std::string>> rows = {{"  TIME", "NODE", "REPLICA", "REASON", "MESSAGE"}};
    size_t start = items.size() > 10 ? items.size() - 10 : 0;
    for (size_t i = start; i < items.size(); ++i) {
      const Json& e = items[i];
      int ordinal = e.value("ordinal", -1);
      rows.push_back({StrCat("  ", S(e, "time")), S(e, "node"), ordinal < 0 ? "-" : std::to_string(ordinal),
                      S(e, "reason"), S(e, "message")});
    }
    std::fprintf(ctx.out, "Events (last %zu):\n%s", items.size() - start, FormatTable(rows).c_str());
  }
  return 0;
}

}  // namespace loom::cli
