// Structured logging: one logfmt line per event on stderr,
//   ts=2026-11-29T04:40:00.123Z level=info msg="node registered" node=n1 lease=42
// LOG_INFO("node registered", {"node", name}, {"lease", id});
#pragma once

#include <initializer_list>
#include <string>
#include <string_view>

#include "common/strings.h"
#include "absl/status/status.h"

namespace loom {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };

struct LogField {
  template <typename T>
  LogField(std::string_view k, const T& v) : key(k), value(Format(v)) {}

  std::string_view key;
  std::string value;

 private:
  static std::string Format(std::string_view v) { return std::string(v); }
  static std::string Format(const std::string& v) { return v; }
  static std::string Format(const char* v) { return v; }
  static std::string Format(const absl::Status& v) { return v.ToString(); }
  static std::string Format(bool v) { return v ? "true" : "false"; }
  template <typename T>
  static std::string Format(const T& v) {
    return StrCat(v);
  }
};

void SetLogLevel(LogLevel level);
LogLevel GetLogLevel();
// Parses "debug", "info", "warning" or "error".
bool ParseLogLevel(std::string_view text, LogLevel* level);

// Renders one line (without the trailing newline); exposed for tests.
std::string FormatLogLine(LogLevel level, std::string_view msg,
                          std::initializer_list<LogField> fields);
void Log(LogLevel level, std::string_view msg, std::initializer_list<LogField> fields);

}  // namespace loom

#define LOOM_LOG_(level, msg, ...)                                   \
  do {                                                               \
    if (static_cast<int>(level) >= static_cast<int>(::loom::GetLogLevel())) \
      ::loom::Log(level, msg, {__VA_ARGS__});                        \
  } while (false)
#define LOG_DEBUG(msg, ...) LOOM_LOG_(::loom::LogLevel::kDebug, msg, __VA_ARGS__)
#define LOG_INFO(msg, ...) LOOM_LOG_(::loom::LogLevel::kInfo, msg, __VA_ARGS__)
#define LOG_WARNING(msg, ...) LOOM_LOG_(::loom::LogLevel::kWarning, msg, __VA_ARGS__)
#define LOG_ERROR(msg, ...) LOOM_LOG_(::loom::LogLevel::kError, msg, __VA_ARGS__)
