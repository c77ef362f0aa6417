// loomctl scale, rollout and events: Apps through loomd's /v1/apps and /v1/events.
//   loomctl scale [app/]NAME --replicas N [-n NS]
//   loomctl rollout status [app/]NAME [-n NS] [--timeout 5m]   waits until complete
//   loomctl rollout history [app/]NAME [-n NS]
//   loomctl rollout undo [app/]NAME [-n NS] [--to-revision N]
//   loomctl events [[app/]NAME] [-n NS] [-o json|yaml]
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

int Fail(Context& ctx, std::string_view cmd, std::string_view msg, int code = 1) {
  std::fprintf(ctx.err, "loomctl %.*s: %.*s\n", static_cast<int>(cmd.size()), cmd.data(),
               static_cast<int>(msg.size()), msg.data());
  return code;
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

}  // namespace loom::cli
