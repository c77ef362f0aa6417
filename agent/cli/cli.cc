#include "agent/cli/cli.h"

#include <algorithm>

#include "common/strings.h"

namespace loom::cli {
namespace {

void Usage(FILE* f) {
  std::fprintf(f, "usage: loomctl [--socket PATH] COMMAND [ARGS]\n\ncommands:\n");
  for (const Command& c : Commands()) {
    std::fprintf(f, "  %-28s %s\n", c.usage.c_str(), c.summary.c_str());
  }
  std::fprintf(f,
               "\nloomd's socket: --socket, else $LOOM_SOCKET, else %s\n",
               std::string(kDefaultSocket).c_str());
}

}  // namespace

const std::vector<Command>& Commands() {
  static const auto* commands = new std::vector<Command>{
      {"status", "status [-o json|yaml]", "Show this node's loomd (store, readiness, DNS, component health) and every node's health.",
       StatusCommand},
      {"apply", "apply -f FILE|-", "Create or update the objects in FILE (YAML or JSON).",
       ApplyCommand},
      {"get", "get nodes|apps|pods|services|endpoints|ingresses [NAME] [-n NS|-A] [-o json|yaml] [--show-secrets]",
       "List or show objects.", GetCommand},
      {"delete", "delete service|app|ingress NAME [-n NS] | -f FILE", "Delete objects.", DeleteCommand},
      {"run",
       "run [-d] [--rm] [--name N] [-e K=V] [-v SRC:DST[:ro]] [--cpus N] [--memory M] "
       "[-p [IP:]HOST:CTR[/PROTO]] [-l K=V] [--hostname H] [--network default|none] IMAGE [CMD...]",
       "Run a container (without -d: stream its output, exit with its code; 125: not started).",
       RunContainerCommand},
      {"ps", "ps [-a] [-o json|yaml]", "List running containers (-a: all).", PsCommand},
      {"logs", "logs [-f] NAME", "Print a container's output (-f: follow).", LogsCommand},
      {"stop", "stop [-t SECS] NAME...", "SIGTERM, then SIGKILL after SECS (10).", StopCommand},
      {"rm", "rm [-f] NAME...", "Remove containers (-f: also running ones).", RmCommand},
      {"exec", "exec [-e K=V] NAME CMD [ARGS...]", "Run a command in a running container.",
       ExecCommand},
      {"volume", "volume ls | rm NAME...", "List or remove named volumes.", VolumeCommand},
      {"image", "image import PATH NAME | ls | rm NAME...",
       "Import (rootfs dir, tarball, OCI layout, docker save), list, remove images.",
       ImageCommand},
      {"scale", "scale [app/]NAME --replicas N [-n NS]", "Set an App's replica count.",
       ScaleCommand},
      {"rollout", "rollout status|history|undo [app/]NAME [-n NS] [--to-revision N] [--timeout D]",
       "Follow, list or roll back an App's rollouts.", RolloutCommand},
      {"events", "events [[app/]NAME] [-n NS] [-o json|yaml]",
       "What the reconcilers did: starts, readiness, exits, removals.", EventsCommand},
      {"describe", "describe [app/]NAME [-n NS]",
       "An App in full: spec, rollout, replicas and their nodes, recent events.", DescribeCommand},
  };
  return *commands;
}

std::string ResolveSocket(std::string_view flag, const char* env) {
  if (!flag.empty()) return std::string(flag);
  if (env != nullptr && *env != '\0') return env;
  return std::string(kDefaultSocket);
}

int RunCli(const std::vector<std::string>& all_args, const char* env_socket, FILE* out,
           FILE* err) {
  // --socket is global: accepted before or after the command.
  std::string socket_flag;
  std::vector<std::string> args;
  for (size_t j = 0; j < all_args.size(); ++j) {
    const std::string& a = all_args[j];
    if (a == "--socket") {
      if (j + 1 >= all_args.size()) {
        std::fprintf(err, "loomctl: --socket needs a value\n");
        return 2;
      }
      socket_flag = all_args[++j];
    } else if (a.rfind("--socket=", 0) == 0) {
      socket_flag = a.substr(9);
    } else {
      args.push_back(a);
    }
  }
  size_t i = 0;
  for (; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "-h" || a == "--help" || a == "help") {
      Usage(out);
      return 0;
    } else if (!a.empty() && a[0] == '-') {
      std::fprintf(err, "loomctl: unknown option %s (see loomctl --help)\n", a.c_str());
      return 2;
    } else {
      break;
    }
  }
  if (i >= args.size()) {
    Usage(err);
    return 2;
  }
  const std::string& name = args[i];
  auto it = std::find_if(Commands().begin(), Commands().end(),
                         [&](const Command& c) { return c.name == name; });
  if (it == Commands().end()) {
    std::fprintf(err, "loomctl: unknown command \"%s\" (see loomctl --help)\n", name.c_str());
    return 2;
  }
  Context ctx{ResolveSocket(socket_flag, env_socket), out, err};
  std::vector<std::string> rest(args.begin() + static_cast<long>(i) + 1, args.end());
  return it->run(ctx, rest);
}

absl::StatusOr<OutputFormat> TakeOutputFormat(std::vector<std::string>& args) {
  OutputFormat format = OutputFormat::kTable;
  std::vector<std::string> rest;
  for (size_t i = 0; i < args.size(); ++i) {
    std::string value;
    const std::string& a = args[i];
    if (a == "-o" || a == "--output") {
      if (i + 1 >= args.size()) return absl::InvalidArgumentError(StrCat(a, " needs a value"));
      value = args[++i];
    } else if (a.rfind("-o=", 0) == 0) {
      value = a.substr(3);
    } else if (a.rfind("--output=", 0) == 0) {
      value = a.substr(9);
    } else {
      rest.push_back(a);
      continue;
    }
    if (value == "json") format = OutputFormat::kJson;
    else if (value == "yaml") format = OutputFormat::kYaml;
    else if (value == "table" || value == "wide") format = OutputFormat::kTable;
    else return absl::InvalidArgumentError(StrCat("output format \"", value, "\": want json or yaml"));
  }
  args = std::move(rest);
  return format;
}

std::string Reply::ErrorText() const {
  std::string detail = body.is_object() && body.contains("error") && body["error"].is_string()
                           ? body["error"].get<std::string>()
                           : raw;
  while (!detail.empty() && detail.back() == '\n') detail.pop_back();
  return detail;
}

absl::StatusOr<Reply> Request(Context& ctx, std::string_view method, std::string_view target,
                              std::string_view body, absl::Duration timeout) {
  http::HttpClient client = http::HttpClient::ForUnixSocket(ctx.socket, timeout);
  absl::StatusOr<http::Response> response = client.Send(method, target, body);
  if (!response.ok()) {
    std::string reason(response.status().message());
    // The client names the socket itself; say it once.
    std::string prefix = StrCat("cannot connect to ", ctx.socket, ": ");
    if (reason.rfind(prefix, 0) == 0) reason = reason.substr(prefix.size());
    return absl::UnavailableError(StrCat("cannot reach loomd at ", ctx.socket, ": ", reason));
  }
  Reply reply;
  reply.status = response->status;
  reply.raw = response->body;
  absl::StatusOr<Json> parsed = ParseJson(response->body);
  if (parsed.ok()) reply.body = *std::move(parsed);
  return reply;
}

int Fail(Context& ctx, std::string_view command, std::string_view message, int code) {
  std::fprintf(ctx.err, "loomctl %.*s: %.*s\n", static_cast<int>(command.size()), command.data(),
               static_cast<int>(message.size()), message.data());
  return code;
}

void PrintUnreachable(Context& ctx, const absl::Status& status) {
  std::fprintf(ctx.err, "loomctl: %s\n", std::string(status.message()).c_str());
}

absl::StatusOr<Json> GetJson(Context& ctx, std::string_view target) {
  absl::StatusOr<Reply> reply = Request(ctx, "GET", target);
  if (!reply.ok()) {
    PrintUnreachable(ctx, reply.status());
    return reply.status();
  }
  if (reply->status != 200) {
    std::string message = StrCat("loomd answered ", reply->status, ": ", reply->ErrorText());
    std::fprintf(ctx.err, "loomctl: %s\n", message.c_str());
    return absl::InternalError(message);
  }
  if (reply->body.is_null()) {
    absl::Status parse = ParseJson(reply->raw).status();
    std::string message = StrCat("loomd sent malformed JSON: ", parse.message());
    std::fprintf(ctx.err, "loomctl: %s\n", message.c_str());
    return absl::InvalidArgumentError(message);
  }
  return reply->body;
}

void PrintStructured(Context& ctx, const Json& value, OutputFormat format) {
  std::string text = format == OutputFormat::kYaml ? ToYaml(value) : value.dump(2) + "\n";
  if (!text.empty() && text.back() != '\n') text += '\n';
  std::fputs(text.c_str(), ctx.out);
}

std::string FormatTable(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> widths;
  for (const auto& row : rows) {
    if (widths.size() < row.size()) widths.resize(row.size(), 0);
    for (size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], row[i].size());
  }
  std::string out;
  for (const auto& row : rows) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line += std::string(widths[i] - row[i].size() + 3, ' ');
    }
    out += line + "\n";
  }
  return out;
}

std::string FormatAge(int64_t s) {
  if (s < 60) return StrCat(s, "s");
  if (s < 3600) return StrCat(s / 60, "m", s % 60, "s");
  if (s < 86400) return StrCat(s / 3600, "h", s % 3600 / 60, "m");
  return StrCat(s / 86400, "d", s % 86400 / 3600, "h");
}

}  // namespace loom::cli
