// loomctl run, ps, logs, stop, rm, exec, volume and image: containers on this node,
// through loomd's /v1/containers, /v1/volumes and /v1/images (docs/loomd.md).
#include <limits.h>
#include <stdlib.h>

#include <cstring>
#include <functional>
#include <map>
#include <thread>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "agent/cli/cli.h"
#include "common/strings.h"

namespace loom::cli {
namespace {

// Run, stop and friends wait for CNI plugins and grace periods: a long deadline.
constexpr absl::Duration kLongCall = absl::Minutes(5);
constexpr absl::Duration kPollEvery = absl::Milliseconds(100);
// What `run` answers when loomd refused the run itself (as docker run does), so that it
// is not mistaken for the container's own exit code.
constexpr int kRunFailed = 125;

int Usage(Context& ctx, std::string_view cmd, std::string_view msg) { return Fail(ctx, cmd, msg, 2); }

// One request, retried while loomd says it is busy with other container operations.
absl::StatusOr<Reply> Call(Context& ctx, std::string_view method, std::string_view target,
                           std::string_view body = "") {
  absl::Time deadline = absl::Now() + absl::Minutes(1);
  for (;;) {
    absl::StatusOr<Reply> r = Request(ctx, method, target, body, kLongCall);
    if (!r.ok() || r->status != 503 || r->ErrorText().find("busy") == std::string::npos ||
        absl::Now() > deadline) {
      return r;
    }
    absl::SleepFor(absl::Milliseconds(200));
  }
}

// Call, printing the error; the reply body when the status is 2xx.
absl::StatusOr<Json> CallOk(Context& ctx, std::string_view cmd, std::string_view method,
                            std::string_view target, std::string_view body = "") {
  absl::StatusOr<Reply> r = Call(ctx, method, target, body);
  if (!r.ok()) {
    PrintUnreachable(ctx, r.status());
    return r.status();
  }
  if (r->status / 100 != 2) {
    Fail(ctx, cmd, r->ErrorText());
    return absl::InternalError(r->ErrorText());
  }
  return r->body;
}

// One call per name (`target_of(name)`), printing each name that succeeded; 1 if any failed.
int ForEachName(Context& ctx, std::string_view cmd, std::string_view method,
                const std::vector<std::string>& names,
                const std::function<std::string(const std::string&)>& target_of,
                const std::string& body = "") {
  int rc = 0;
  for (const std::string& name : names) {
    if (CallOk(ctx, cmd, method, target_of(name), body).ok()) {
      std::fprintf(ctx.out, "%s\n", name.c_str());
    } else {
      rc = 1;
    }
  }
  return rc;
}

// "64m", "1g", "512k", "1048576" (bytes).
absl::StatusOr<int64_t> ParseBytes(std::string_view text) {
  std::string s(text);
  int64_t mult = 1;
  while (!s.empty() && (s.back() == 'b' || s.back() == 'B')) s.pop_back();
  if (!s.empty()) {
    switch (s.back()) {
      case 'k': case 'K': mult = int64_t{1} << 10; s.pop_back(); break;
      case 'm': case 'M': mult = int64_t{1} << 20; s.pop_back(); break;
      case 'g': case 'G': mult = int64_t{1} << 30; s.pop_back(); break;
      default: break;
    }
  }
  int64_t n = 0;
  if (!absl::SimpleAtoi(s, &n) || n <= 0 || n > (int64_t{1} << 50) / mult) {
    return absl::InvalidArgumentError(StrCat("memory '", text, "': want a size such as 64m or 1g"));
  }
  return n * mult;
}

std::string Decode(const Json& j, const char* key) {
  std::string out;
  if (j.contains(key) && j[key].is_string()) absl::Base64Unescape(j[key].get<std::string>(), &out);
  return out;
}

// Copies the container's log to ctx.out from `offset` until it has exited (follow) or
// until the end (not follow). Returns false when loomd failed us.
bool CopyLogs(Context& ctx, std::string_view cmd, const std::string& ref, bool follow) {
  int64_t offset = 0;
  for (;;) {
    absl::StatusOr<Json> chunk = CallOk(ctx, cmd, "GET", StrCat("/v1/containers/", ref, "/logs?offset=", offset));
    if (!chunk.ok()) return false;
    std::string data = Decode(*chunk, "data");
    if (!data.empty()) {
      std::fwrite(data.data(), 1, data.size(), ctx.out);
      std::fflush(ctx.out);
    }
    offset = chunk->value("next", int64_t{0});
    if (!data.empty()) continue;
    if (!follow || !chunk->value("running", false)) return true;
    absl::SleepFor(kPollEvery);
  }
}

std::string StatusText(const Json& c, int64_t now) {
  std::string state = c.value("state", "");
  if (state == "running") return StrCat("Up ", FormatAge(now - c.value("startedAt", now)));
  if (state == "exited") {
    std::string s = StrCat("Exited (", c.value("exitCode", -1), ") ",
                           FormatAge(now - c.value("finishedAt", now)), " ago");
    if (c.value("oomKilled", false)) s += " (OOM killed)";
    return s;
  }
  return state.empty() ? "-" : state;
}

std::string PortsText(const Json& c) {
  std::vector<std::string> out;
  for (const Json& p : c.value("ports", Json::array())) {
    out.push_back(StrCat(p.value("hostIP", ""), p.contains("hostIP") ? ":" : "", p.value("hostPort", 0),
                         "->", p.value("containerPort", 0), "/", p.value("protocol", "tcp")));
  }
  return absl::StrJoin(out, ",");
}

}  // namespace

std::string FormatContainersTable(const Json& items, int64_t now) {
  std::vector<std::vector<std::string>> rows = {
      {"CONTAINER ID", "NAME", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "IP"}};
  for (const Json& c : items) {
    std::string command = absl::StrJoin(c.value("command", std::vector<std::string>{}), " ");
    if (command.size() > 22) command = command.substr(0, 19) + "...";
    std::string ip;
    for (const Json& a : c.value("ips", Json::array())) {
      if (a.is_string()) ip = a.get<std::string>().substr(0, a.get<std::string>().find('/'));
    }
    if (!c.value("attached", false)) ip = "";
    rows.push_back({c.value("id", ""), c.value("name", ""), c.value("image", ""),
                    StrCat("\"", command, "\""), StrCat(FormatAge(now - c.value("createdAt", now)), " ago"),
                    StatusText(c, now), PortsText(c), ip.empty() ? "-" : ip});
  }
  return FormatTable(rows);
}

int RunContainerCommand(Context& ctx, const std::vector<std::string>& args) {
  Json req = {{"env", Json::array()}, {"volumes", Json::array()}, {"ports", Json::array()},
              {"labels", Json::object()}, {"command", Json::array()}};
  bool detach = false, remove = false;
  size_t i = 0;
  // Options come before the image; everything after it is the command.
  for (; i < args.size() && !args[i].empty() && args[i][0] == '-'; ++i) {
    std::string a = args[i], value;
    bool has_value = false;
    if (size_t eq = a.find('='); a.rfind("--", 0) == 0 && eq != std::string::npos) {
      value = a.substr(eq + 1);
      a = a.substr(0, eq);
      has_value = true;
    }
    auto next = [&]() -> bool {
      if (has_value) return true;
      if (i + 1 >= args.size()) return false;
      value = args[++i];
      return true;
    };
    if (a == "-d" || a == "--detach") {
      detach = true;
    } else if (a == "--rm") {
      remove = true;
    } else if (a == "--name" || a == "--hostname" || a == "--network" || a == "-e" || a == "--env" ||
               a == "-v" || a == "--volume" || a == "-p" || a == "--publish" || a == "-l" ||
               a == "--label" || a == "--cpus" || a == "-m" || a == "--memory") {
      if (!next()) return Usage(ctx, "run", StrCat(a, " needs a value"));
      if (a == "--name") {
        req["name"] = value;
      } else if (a == "--hostname") {
        req["hostname"] = value;
      } else if (a == "--network") {
        if (value != "none" && value != "default") {
          return Usage(ctx, "run", StrCat("--network '", value, "': want default (the CNI conf dir's network) or none"));
        }
        req["network"] = value == "default";
      } else if (a == "-e" || a == "--env") {
        if (value.find('=') == std::string::npos) {
          const char* from_env = std::getenv(value.c_str());
          if (from_env == nullptr) continue;  // docker: an unset NAME is skipped
          value = StrCat(value, "=", from_env);
        }
        req["env"].push_back(value);
      } else if (a == "-v" || a == "--volume") {
        req["volumes"].push_back(value);
      } else if (a == "-p" || a == "--publish") {
        // Parsed by loomd too; here for an early, local error.
        std::string proto = "tcp", spec = value;
        if (size_t slash = spec.rfind('/'); slash != std::string::npos) {
          proto = spec.substr(slash + 1);
          spec = spec.substr(0, slash);
        }
        std::vector<std::string> parts = absl::StrSplit(spec, ':');
        int host = 0, container = 0;
        if ((parts.size() != 2 && parts.size() != 3) ||
            !absl::SimpleAtoi(parts[parts.size() - 2], &host) ||
            !absl::SimpleAtoi(parts.back(), &container)) {
          return Usage(ctx, "run", StrCat("-p '", value, "': want [hostIP:]hostPort:containerPort[/tcp|udp]"));
        }
        Json p = {{"hostPort", host}, {"containerPort", container}, {"protocol", proto}};
        if (parts.size() == 3) p["hostIP"] = parts[0];
        req["ports"].push_back(p);
      } else if (a == "-l" || a == "--label") {
        size_t eq = value.find('=');
        if (eq == std::string::npos || eq == 0) return Usage(ctx, "run", StrCat("label '", value, "': want KEY=VALUE"));
        req["labels"][value.substr(0, eq)] = value.substr(eq + 1);
      } else if (a == "--cpus") {
        double cpus = 0;
        if (!absl::SimpleAtod(value, &cpus) || cpus <= 0) {
          return Usage(ctx, "run", StrCat("--cpus '", value, "': want a positive number such as 0.5"));
        }
        req["cpus"] = cpus;
      } else {
        absl::StatusOr<int64_t> bytes = ParseBytes(value);
        if (!bytes.ok()) return Usage(ctx, "run", ToStd(bytes.status().message()));
        req["memoryBytes"] = *bytes;
      }
    } else {
      return Usage(ctx, "run", StrCat("unknown option ", a));
    }
  }
  if (i >= args.size()) return Usage(ctx, "run", "an IMAGE is required");
  req["image"] = args[i];
  for (++i; i < args.size(); ++i) req["command"].push_back(args[i]);
  if (detach && remove) return Usage(ctx, "run", "--rm needs the foreground (no -d)");

  absl::StatusOr<Json> created = CallOk(ctx, "run", "POST", "/v1/containers", req.dump());
  if (!created.ok()) return kRunFailed;
  const std::string id = created->value("id", "");
  if (detach) {
    std::fprintf(ctx.out, "%s\n", id.c_str());
    return 0;
  }
  if (!CopyLogs(ctx, "run", id, /*follow=*/true)) return kRunFailed;
  absl::StatusOr<Json> done = CallOk(ctx, "run", "GET", StrCat("/v1/containers/", id));
  if (!done.ok()) return kRunFailed;
  int code = done->value("exitCode", kRunFailed);
  if (done->value("oomKilled", false)) std::fprintf(ctx.err, "loomctl run: %s was OOM killed\n", id.c_str());
  if (remove && !CallOk(ctx, "run", "DELETE", StrCat("/v1/containers/", id, "?force=1")).ok()) return kRunFailed;
  return code;
}

int PsCommand(Context& ctx, const std::vector<std::string>& args) {
  std::vector<std::string> rest = args;
  absl::StatusOr<OutputFormat> format = TakeOutputFormat(rest);
  if (!format.ok()) return Usage(ctx, "ps", ToStd(format.status().message()));
  bool all = false;
  for (const std::string& a : rest) {
    if (a == "-a" || a == "--all") {
      all = true;
    } else {
      return Usage(ctx, "ps", StrCat("unexpected argument \"", a, "\""));
    }
  }
  absl::StatusOr<Json> list = GetJson(ctx, all ? "/v1/containers?all=1" : "/v1/containers");
  if (!list.ok()) return 1;
  if (*format == OutputFormat::kTable) {
    std::fputs(FormatContainersTable((*list)["items"], absl::ToUnixSeconds(absl::Now())).c_str(), ctx.out);
  } else {
    PrintStructured(ctx, *list, *format);
  }
  return 0;
}

int LogsCommand(Context& ctx, const std::vector<std::string>& args) {
  bool follow = false;
  std::string ref;
  for (const std::string& a : args) {
    if (a == "-f" || a == "--follow") {
      follow = true;
    } else if (!a.empty() && a[0] == '-') {
      return Usage(ctx, "logs", StrCat("unknown option ", a));
    } else if (ref.empty()) {
      ref = a;
    } else {
      return Usage(ctx, "logs", "one container at a time");
    }
  }
  if (ref.empty()) return Usage(ctx, "logs", "a container NAME is required");
  return CopyLogs(ctx, "logs", ref, follow) ? 0 : 1;
}

int StopCommand(Context& ctx, const std::vector<std::string>& args) {
  int64_t grace = 10;
  std::vector<std::string> refs;
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "-t" || args[i] == "--time") {
      if (i + 1 >= args.size() || !absl::SimpleAtoi(args[i + 1], &grace) || grace < 0) {
        return Usage(ctx, "stop", "-t wants a number of seconds");
      }
      ++i;
    } else if (!args[i].empty() && args[i][0] == '-') {
      return Usage(ctx, "stop", StrCat("unknown option ", args[i]));
    } else {
      refs.push_back(args[i]);
    }
  }
  if (refs.empty()) return Usage(ctx, "stop", "a container NAME is required");
  return ForEachName(ctx, "stop", "POST", refs,
                     [](const std::string& ref) { return StrCat("/v1/containers/", ref, "/stop"); },
                     Json{{"graceSeconds", grace}}.dump());
}

int RmCommand(Context& ctx, const std::vector<std::string>& args) {
  bool force = false;
  std::vector<std::string> refs;
  for (const std::string& a : args) {
    if (a == "-f" || a == "--force") {
      force = true;
    } else if (!a.empty() && a[0] == '-') {
      return Usage(ctx, "rm", StrCat("unknown option ", a));
    } else {
      refs.push_back(a);
    }
  }
  if (refs.empty()) return Usage(ctx, "rm", "a container NAME is required");
  return ForEachName(ctx, "rm", "DELETE", refs, [force](const std::string& ref) {
    return StrCat("/v1/containers/", ref, force ? "?force=1" : "");
  });
}

int ExecCommand(Context& ctx, const std::vector<std::string>& args) {
  Json req = {{"command", Json::array()}, {"env", Json::array()}};
  size_t i = 0;
  for (; i < args.size() && !args[i].empty() && args[i][0] == '-'; ++i) {
    if ((args[i] == "-e" || args[i] == "--env") && i + 1 < args.size()) {
      req["env"].push_back(args[++i]);
    } else {
      return Usage(ctx, "exec", StrCat("unknown option ", args[i]));
    }
  }
  if (i + 1 >= args.size()) return Usage(ctx, "exec", "want NAME CMD [ARGS...]");
  const std::string ref = args[i];
  for (++i; i < args.size(); ++i) req["command"].push_back(args[i]);
  absl::StatusOr<Json> r = CallOk(ctx, "exec", "POST", StrCat("/v1/containers/", ref, "/exec"), req.dump());
  if (!r.ok()) return kRunFailed;
  std::string out = Decode(*r, "stdout"), err = Decode(*r, "stderr");
  std::fwrite(out.data(), 1, out.size(), ctx.out);
  std::fwrite(err.data(), 1, err.size(), ctx.err);
  return r->value("exitCode", kRunFailed);
}

int VolumeCommand(Context& ctx, const std::vector<std::string>& args) {
  if (args.empty()) return Usage(ctx, "volume", "want ls or rm NAME...");
  if (args[0] == "ls" && args.size() == 1) {
    absl::StatusOr<Json> list = GetJson(ctx, "/v1/volumes");
    if (!list.ok()) return 1;
    std::vector<std::vector<std::string>> rows = {{"VOLUME NAME"}};
    for (const Json& v : (*list)["items"]) rows.push_back({v.get<std::string>()});
    std::fputs(FormatTable(rows).c_str(), ctx.out);
    return 0;
  }
  if (args[0] == "rm" && args.size() > 1) {
    return ForEachName(ctx, "volume rm", "DELETE", {args.begin() + 1, args.end()},
                       [](const std::string& n) { return StrCat("/v1/volumes/", n); });
  }
  return Usage(ctx, "volume", "want ls or rm NAME...");
}

int ImageCommand(Context& ctx, const std::vector<std::string>& args) {
  if (!args.empty() && args[0] == "import" && args.size() == 3) {
    char abs[PATH_MAX];
    if (::realpath(args[1].c_str(), abs) == nullptr) {
      std::fprintf(ctx.err, "loomctl image import: %s: %s\n", args[1].c_str(), std::strerror(errno));
      return 1;
    }
    absl::StatusOr<Json> image = CallOk(ctx, "image import", "POST", "/v1/images",
                                        Json{{"source", abs}, {"name", args[2]}}.dump());
    if (!image.ok()) return 1;
    std::fprintf(ctx.out, "%s %s\n", args[2].c_str(), image->value("digest", "").c_str());
    return 0;
  }
  if (!args.empty() && args[0] == "ls" && args.size() == 1) {
    absl::StatusOr<Json> list = GetJson(ctx, "/v1/images");
    if (!list.ok()) return 1;
    std::vector<std::vector<std::string>> rows = {{"NAME", "DIGEST"}};
    for (const Json& i : (*list)["items"]) {
      std::string digest = i.value("digest", "");
      for (const Json& n : i.value("names", Json::array())) rows.push_back({n.get<std::string>(), digest});
      if (i.value("names", Json::array()).empty()) rows.push_back({"<none>", digest});
    }
    std::fputs(FormatTable(rows).c_str(), ctx.out);
    return 0;
  }
  if (!args.empty() && args[0] == "rm" && args.size() > 1) {
    return ForEachName(ctx, "image rm", "DELETE", {args.begin() + 1, args.end()},
                       [](const std::string& n) { return StrCat("/v1/images/", n); });
  }
  return Usage(ctx, "image", "want import PATH NAME, ls, or rm NAME...");
}

}  // namespace loom::cli
