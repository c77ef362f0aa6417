// loomctl: global options, then a subcommand with its own arguments:
//   loomctl [--socket PATH] status [-o json|yaml]
// Each subcommand is a Command in the table that Commands() returns; a new one
// (apply, get, delete, run, ps, logs...) is one more entry and one more file.
// Exit codes: 0 success, 1 the operation failed (loomd unreachable, an error reply),
// 2 bad usage.
#pragma once

#include <cstdio>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/http/client.h"
#include "common/json.h"

namespace loom::cli {

inline constexpr std::string_view kDefaultSocket = "/run/loom/loomd.sock";

enum class OutputFormat { kTable, kJson, kYaml };

// What every command gets.
struct Context {
  std::string socket;  // loomd's API socket
  FILE* out = stdout;
  FILE* err = stderr;
};

struct Command {
  std::string name;
  std::string usage;    // "status [-o json|yaml]"
  std::string summary;  // one line
  std::function<int(Context&, const std::vector<std::string>& args)> run;
};

const std::vector<Command>& Commands();

// The socket: --socket, else $LOOM_SOCKET, else the default.
std::string ResolveSocket(std::string_view flag, const char* env);

// Runs loomctl with argv-style arguments (without the program name).
int RunCli(const std::vector<std::string>& args, const char* env_socket, FILE* out, FILE* err);

// Helpers for commands.
// Parses "-o FMT", "-o=FMT", "--output FMT", "--output=FMT" out of `args` (removing them).
absl::StatusOr<OutputFormat> TakeOutputFormat(std::vector<std::string>& args);
// GETs `target` from loomd and parses the JSON reply. Errors are printed to ctx.err as
// one line ("cannot reach loomd at /run/loom/loomd.sock: ..."); returns the exit code
// in `exit_code` when it fails.
absl::StatusOr<Json> GetJson(Context& ctx, std::string_view target);
// A reply from loomd: the HTTP status and the parsed body (null when not JSON).
struct Reply {
  int status = 0;
  Json body;
  std::string raw;
  // The "error" of an error reply, else the raw body, without a trailing newline.
  std::string ErrorText() const;
};
// Sends one request; fails (printing nothing) only when loomd cannot be reached.
absl::StatusOr<Reply> Request(Context& ctx, std::string_view method, std::string_view target,
                              std::string_view body = "",
                              absl::Duration timeout = absl::Seconds(10));
// Prints "loomctl COMMAND: MESSAGE" on ctx.err and returns `code` (1 failed, 2 usage).
int Fail(Context& ctx, std::string_view command, std::string_view message, int code = 1);
// Prints the one-line "cannot reach loomd" error for a failed Request.
void PrintUnreachable(Context& ctx, const absl::Status& status);
// Prints `value` as JSON or YAML.
void PrintStructured(Context& ctx, const Json& value, OutputFormat format);
// Lays out rows (the first is the header) in columns separated by three spaces.
std::string FormatTable(const std::vector<std::vector<std::string>>& rows);
// "3d4h", "2h5m", "1m2s", "7s".
std::string FormatAge(int64_t seconds);

// The commands.
int StatusCommand(Context& ctx, const std::vector<std::string>& args);
int ApplyCommand(Context& ctx, const std::vector<std::string>& args);
int GetCommand(Context& ctx, const std::vector<std::string>& args);
int DeleteCommand(Context& ctx, const std::vector<std::string>& args);
// Containers (container_commands.cc).
int RunContainerCommand(Context& ctx, const std::vector<std::string>& args);
int PsCommand(Context& ctx, const std::vector<std::string>& args);
int LogsCommand(Context& ctx, const std::vector<std::string>& args);
int StopCommand(Context& ctx, const std::vector<std::string>& args);
int RmCommand(Context& ctx, const std::vector<std::string>& args);
int ExecCommand(Context& ctx, const std::vector<std::string>& args);
int VolumeCommand(Context& ctx, const std::vector<std::string>& args);
int ImageCommand(Context& ctx, const std::vector<std::string>& args);
// Apps (app_commands.cc).
int ScaleCommand(Context& ctx, const std::vector<std::string>& args);
int RolloutCommand(Context& ctx, const std::vector<std::string>& args);
int EventsCommand(Context& ctx, const std::vector<std::string>& args);
int DescribeCommand(Context& ctx, const std::vector<std::string>& args);
std::string FormatContainersTable(const Json& items, int64_t now_unix);
std::string FormatServicesTable(const Json& items, int64_t now_unix);
std::string FormatAppsTable(const Json& items);
std::string FormatEndpointsTable(const Json& items);
std::string FormatIngressesTable(const Json& items, int64_t now_unix);
std::string FormatStatusTable(const Json& status);

}  // namespace loom::cli
