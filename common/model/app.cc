#include "common/model/app.h"

#include <cmath>
#include <cstdio>
#include <set>

#include "common/model/manifest.h"
#include "common/model/validation.h"
#include "common/status.h"
#include "common/strings.h"

namespace loom::model {
namespace {

absl::Status Invalid(std::string_view field, std::string_view what) {
  return absl::InvalidArgumentError(StrCat(field, ": ", what));
}

absl::StatusOr<std::vector<std::string>> ParseStringList(const Json& obj, std::string_view key,
                                                         std::string_view path) {
  std::vector<std::string> out;
  auto it = obj.find(std::string(key));
  if (it == obj.end() || it->is_null()) return out;
  std::string field = FieldPath(path, key);
  if (!it->is_array()) return Invalid(field, "must be a list of strings");
  for (size_t i = 0; i < it->size(); ++i) {
    if (!(*it)[i].is_string()) return Invalid(StrCat(field, "[", i, "]"), "must be a string");
    out.push_back((*it)[i].get<std::string>());
  }
  return out;
}

absl::StatusOr<int> ParseSmallInt(const Json& obj, std::string_view key, std::string_view path,
                                  int fallback, int min, int max) {
  ASSIGN_OR_RETURN(int64_t v, GetIntOr(obj, key, path, fallback));
  if (v < min || v > max) {
    return Invalid(FieldPath(path, key), StrCat(v, " must be ", min, "..", max));
  }
  return static_cast<int>(v);
}

absl::StatusOr<Probe> ParseProbe(const Json& p, std::string_view path) {
  if (!p.is_object()) return Invalid(path, "must be an object");
  RETURN_IF_ERROR(OnlyKnownKeys(p, path,
                                {"httpGet", "tcpSocket", "exec", "initialDelaySeconds",
                                 "periodSeconds", "timeoutSeconds", "successThreshold",
                                 "failureThreshold"}));
  Probe probe;
  int handlers = 0;
  if (p.contains("httpGet")) {
    ++handlers;
    std::string field = FieldPath(path, "httpGet");
    const Json& h = p["httpGet"];
    if (!h.is_object()) return Invalid(field, "must be an object");
    RETURN_IF_ERROR(OnlyKnownKeys(h, field, {"path", "port"}));
    probe.kind = Probe::Kind::kHttpGet;
    ASSIGN_OR_RETURN(probe.http_path, GetStringOr(h, "path", field, "/"));
    if (probe.http_path.empty() || probe.http_path[0] != '/') {
      return Invalid(FieldPath(field, "path"), StrCat("\"", probe.http_path, "\" must start with /"));
    }
    ASSIGN_OR_RETURN(probe.port, ParsePortNumber(h, "port", field, true));
  }
  if (p.contains("tcpSocket")) {
    ++handlers;
    std::string field = FieldPath(path, "tcpSocket");
    const Json& t = p["tcpSocket"];
    if (!t.is_object()) return Invalid(field, "must be an object");
    RETURN_IF_ERROR(OnlyKnownKeys(t, field, {"port"}));
    probe.kind = Probe::Kind::kTcpSocket;
    ASSIGN_OR_RETURN(probe.port, ParsePortNumber(t, "port", field, true));
  }
  if (p.contains("exec")) {
    ++handlers;
    std::string field = FieldPath(path, "exec");
    const Json& e = p["exec"];
    if (!e.is_object()) return Invalid(field, "must be an object");
    RETURN_IF_ERROR(OnlyKnownKeys(e, field, {"command"}));
    probe.kind = Probe::Kind::kExec;
    ASSIGN_OR_RETURN(probe.command, ParseStringList(e, "command", field));
    if (probe.command.empty()) return Invalid(FieldPath(field, "command"), "required");
  }
  if (handlers != 1) return Invalid(path, "needs exactly one of httpGet, tcpSocket or exec");
  ASSIGN_OR_RETURN(probe.initial_delay_seconds,
                   ParseSmallInt(p, "initialDelaySeconds", path, 0, 0, 3600));
  ASSIGN_OR_RETURN(probe.period_seconds, ParseSmallInt(p, "periodSeconds", path, 10, 1, 3600));
  ASSIGN_OR_RETURN(probe.timeout_seconds, ParseSmallInt(p, "timeoutSeconds", path, 1, 1, 3600));
  ASSIGN_OR_RETURN(probe.success_threshold, ParseSmallInt(p, "successThreshold", path, 1, 1, 100));
  ASSIGN_OR_RETURN(probe.failure_threshold, ParseSmallInt(p, "failureThreshold", path, 3, 1, 100));
  return probe;
}

Json ProbeToJson(const Probe& p) {
  Json j = Json::object();
  switch (p.kind) {
    case Probe::Kind::kHttpGet: j["httpGet"] = {{"path", p.http_path}, {"port", p.port}}; break;
    case Probe::Kind::kTcpSocket: j["tcpSocket"] = {{"port", p.port}}; break;
    case Probe::Kind::kExec: j["exec"] = {{"command", p.command}}; break;
  }
  j["initialDelaySeconds"] = p.initial_delay_seconds;
  j["periodSeconds"] = p.period_seconds;
  j["timeoutSeconds"] = p.timeout_seconds;
  j["successThreshold"] = p.success_threshold;
  j["failureThreshold"] = p.failure_threshold;
  return j;
}

absl::StatusOr<IntOrPercent> ParseIntOrPercent(const Json& obj, std::string_view key,
                                               std::string_view path, IntOrPercent fallback) {
  auto it = obj.find(std::string(key));
  if (it == obj.end() || it->is_null()) return fallback;
  std::string field = FieldPath(path, key);
  IntOrPercent v;
  if (it->is_number_integer()) {
    v.value = static_cast<int>(it->get<int64_t>());
    if (it->get<int64_t>() < 0 || it->get<int64_t>() > 100000) {
      return Invalid(field, "must be 0 or more (a count or a percentage like \"25%\")");
    }
    return v;
  }
  if (it->is_string()) {
    std::string s = it->get<std::string>();
    int n = 0;
    char pct = 0;
    char extra = 0;
    if (std::sscanf(s.c_str(), "%d%c%c", &n, &pct, &extra) == 2 && pct == '%' && n >= 0 &&
        n <= 100) {
      return IntOrPercent{n, true};
    }
  }
  return Invalid(field, StrCat(it->dump(), " must be a count or a percentage like \"25%\""));
}

Json IntOrPercentToJson(const IntOrPercent& v) {
  return v.percent ? Json(StrCat(v.value, "%")) : Json(v.value);
}

absl::StatusOr<std::vector<AppFile>> ParseFiles(const Json& spec, std::string_view key,
                                                uint32_t default_mode) {
  std::vector<AppFile> out;
  auto it = spec.find(std::string(key));
  if (it == spec.end() || it->is_null()) return out;
  std::string field = FieldPath("spec", key);
  if (!it->is_array()) return Invalid(field, "must be a list of {path, content}");
  std::set<std::string> paths;
  for (size_t i = 0; i < it->size(); ++i) {
    const Json& f = (*it)[i];
    std::string path = StrCat(field, "[", i, "]");
    if (!f.is_object()) return Invalid(path, "must be an object");
    RETURN_IF_ERROR(OnlyKnownKeys(f, path, {"path", "content", "mode"}));
    AppFile file;
    ASSIGN_OR_RETURN(file.path, GetString(f, "path", path));
    if (file.path.size() < 2 || file.path[0] != '/' || file.path.back() == '/' ||
        file.path.find("/../") != std::string::npos || file.path.ends_with("/..") ||
        file.path.find('\0') != std::string::npos) {
      return Invalid(FieldPath(path, "path"),
                     StrCat("\"", file.path, "\" must be an absolute file path without .."));
    }
    if (!paths.insert(file.path).second) {
      return Invalid(FieldPath(path, "path"), StrCat("\"", file.path, "\" is listed twice"));
    }
    ASSIGN_OR_RETURN(file.content, GetStringOr(f, "content", path, ""));
    if (file.content.size() > 1024 * 1024) {
      return Invalid(FieldPath(path, "content"), "larger than 1 MiB");
    }
    // A number (decimal, as JSON has no octal), or an octal string: "0755".
    int64_t mode = default_mode;
    if (auto m = f.find("mode"); m != f.end() && m->is_string()) {
      std::string text = m->get<std::string>();
      char* end = nullptr;
      mode = std::strtoll(text.c_str(), &end, 8);
      if (text.empty() || *end != '\0') {
        return Invalid(FieldPath(path, "mode"), StrCat("\"", text, "\" is not an octal mode like \"0644\""));
      }
    } else {
      ASSIGN_OR_RETURN(mode, GetIntOr(f, "mode", path, default_mode));
    }
    if (mode < 0 || mode > 0777) return Invalid(FieldPath(path, "mode"), "must be 0..0777 (octal 0 to 0777)");
    file.mode = static_cast<uint32_t>(mode);
    out.push_back(std::move(file));
  }
  return out;
}

Json FilesToJson(const std::vector<AppFile>& files, bool hide) {
  Json out = Json::array();
  for (const AppFile& f : files) {
    out.push_back({{"path", f.path}, {"content", hide ? "<hidden>" : f.content}, {"mode", f.mode}});
  }
  return out;
}

}  // namespace

int IntOrPercent::Resolve(int replicas, bool round_up) const {
  if (!percent) return value;
  double v = static_cast<double>(replicas) * value / 100.0;
  return static_cast<int>(round_up ? std::ceil(v) : std::floor(v));
}

absl::StatusOr<double> ParseCpuQuantity(const Json& value, std::string_view field) {
  double cpus = -1;
  if (value.is_number()) {
    cpus = value.get<double>();
  } else if (value.is_string()) {
    std::string s = value.get<std::string>();
    char* end = nullptr;
    double v = std::strtod(s.c_str(), &end);
    if (end != s.c_str() && *end == 'm' && end[1] == '\0') {
      cpus = v / 1000;
    } else if (end != s.c_str() && *end == '\0') {
      cpus = v;
    }
  }
  if (!(cpus > 0) || cpus > 1024) {
    return Invalid(field, StrCat(value.dump(), " must be a CPU count like 0.5, \"500m\" or \"2\""));
  }
  return cpus;
}

absl::StatusOr<int64_t> ParseMemoryQuantity(const Json& value, std::string_view field) {
  auto bad = [&] {
    return Invalid(field, StrCat(value.dump(), " must be bytes, or a quantity like \"64Mi\" or \"1G\""));
  };
  if (value.is_number_integer()) {
    if (value.get<int64_t>() <= 0) return bad();
    return value.get<int64_t>();
  }
  if (!value.is_string()) return bad();
  std::string s = value.get<std::string>();
  char* end = nullptr;
  double v = std::strtod(s.c_str(), &end);
  if (end == s.c_str() || !(v > 0)) return bad();
  std::string unit(end);
  static const std::pair<const char*, double> kUnits[] = {
      {"", 1},       {"k", 1e3},          {"K", 1e3},          {"M", 1e6},
      {"G", 1e9},    {"T", 1e12},         {"Ki", 1024.0},      {"Mi", 1048576.0},
      {"Gi", 1073741824.0}, {"Ti", 1099511627776.0}};
  for (const auto& [name, factor] : kUnits) {
    if (unit == name) {
      double bytes = v * factor;
      if (bytes < 1 || bytes > 9e18) return bad();
      return static_cast<int64_t>(bytes);
    }
  }
  return bad();
}

absl::StatusOr<App> AppFromManifest(const Json& manifest) {
  RETURN_IF_ERROR(CheckManifestKind(manifest, "App"));
  App app;
  ASSIGN_OR_RETURN(app.meta, ParseMeta(manifest));
  RETURN_IF_ERROR(ValidateDns1035Label(app.meta.name, "metadata.name"));
  if (app.meta.name.size() > 50) {
    return Invalid("metadata.name", "at most 50 characters (pod names add a suffix)");
  }
  auto spec_it = manifest.find("spec");
  if (spec_it == manifest.end() || !spec_it->is_object()) return Invalid("spec", "required");
  const Json& spec = *spec_it;
  RETURN_IF_ERROR(OnlyKnownKeys(spec, "spec",
                                {"replicas", "image", "command", "env", "workingDir", "ports",
                                 "resources", "readinessProbe", "livenessProbe", "strategy",
                                 "configFiles", "secretFiles", "drainSeconds",
                                 "terminationGracePeriodSeconds"}));
  ASSIGN_OR_RETURN(app.replicas, ParseSmallInt(spec, "replicas", "spec", 1, 0, 10000));
  ASSIGN_OR_RETURN(app.drain_seconds, ParseSmallInt(spec, "drainSeconds", "spec", 2, 0, 600));
  ASSIGN_OR_RETURN(app.termination_grace_seconds,
                   ParseSmallInt(spec, "terminationGracePeriodSeconds", "spec", 30, 0, 3600));
  ASSIGN_OR_RETURN(app.image, GetString(spec, "image", "spec"));
  if (app.image.empty()) return Invalid("spec.image", "required");
  ASSIGN_OR_RETURN(app.command, ParseStringList(spec, "command", "spec"));
  ASSIGN_OR_RETURN(app.working_dir, GetStringOr(spec, "workingDir", "spec", ""));
  if (!app.working_dir.empty() && app.working_dir[0] != '/') {
    return Invalid("spec.workingDir", StrCat("\"", app.working_dir, "\" must be absolute"));
  }

  if (auto env = spec.find("env"); env != spec.end() && !env->is_null()) {
    if (!env->is_array()) return Invalid("spec.env", "must be a list of {name, value}");
    std::set<std::string> names;
    for (size_t i = 0; i < env->size(); ++i) {
      const Json& e = (*env)[i];
      std::string path = StrCat("spec.env[", i, "]");
      if (!e.is_object()) return Invalid(path, "must be an object");
      RETURN_IF_ERROR(OnlyKnownKeys(e, path, {"name", "value"}));
      EnvVar var;
      ASSIGN_OR_RETURN(var.name, GetString(e, "name", path));
      if (var.name.empty() || var.name.find('=') != std::string::npos ||
          var.name.find('\0') != std::string::npos) {
        return Invalid(FieldPath(path, "name"), StrCat("\"", var.name, "\" is not a variable name"));
      }
      if (!names.insert(var.name).second) {
        return Invalid(FieldPath(path, "name"), StrCat("\"", var.name, "\" is set twice"));
      }
      ASSIGN_OR_RETURN(var.value, GetStringOr(e, "value", path, ""));
      app.env.push_back(std::move(var));
    }
  }

  if (auto ports = spec.find("ports"); ports != spec.end() && !ports->is_null()) {
    if (!ports->is_array()) return Invalid("spec.ports", "must be a list");
    std::set<std::string> names;
    std::set<std::pair<uint16_t, Protocol>> numbers;
    for (size_t i = 0; i < ports->size(); ++i) {
      const Json& p = (*ports)[i];
      std::string path = StrCat("spec.ports[", i, "]");
      if (!p.is_object()) return Invalid(path, "must be an object");
      RETURN_IF_ERROR(OnlyKnownKeys(p, path, {"name", "containerPort", "protocol"}));
      ContainerPort cp;
      ASSIGN_OR_RETURN(cp.name, GetStringOr(p, "name", path, ""));
      if (!cp.name.empty()) {
        RETURN_IF_ERROR(ValidatePortName(cp.name, FieldPath(path, "name")));
        if (!names.insert(cp.name).second) {
          return Invalid(FieldPath(path, "name"), StrCat("\"", cp.name, "\" is used twice"));
        }
      }
      ASSIGN_OR_RETURN(cp.port, ParsePortNumber(p, "containerPort", path, true));
      ASSIGN_OR_RETURN(std::string proto, GetStringOr(p, "protocol", path, "TCP"));
      ASSIGN_OR_RETURN(cp.protocol, ParseProtocol(proto, FieldPath(path, "protocol")));
      if (!numbers.insert({cp.port, cp.protocol}).second) {
        return Invalid(FieldPath(path, "containerPort"), StrCat(cp.port, "/", proto, " is listed twice"));
      }
      app.ports.push_back(std::move(cp));
    }
  }

  if (auto res = spec.find("resources"); res != spec.end() && !res->is_null()) {
    if (!res->is_object()) return Invalid("spec.resources", "must be an object");
    RETURN_IF_ERROR(OnlyKnownKeys(*res, "spec.resources", {"limits"}));
    if (auto lim = res->find("limits"); lim != res->end() && !lim->is_null()) {
      if (!lim->is_object()) return Invalid("spec.resources.limits", "must be an object");
      RETURN_IF_ERROR(OnlyKnownKeys(*lim, "spec.resources.limits", {"cpu", "memory", "pids"}));
      if (lim->contains("cpu")) {
        ASSIGN_OR_RETURN(app.cpus, ParseCpuQuantity((*lim)["cpu"], "spec.resources.limits.cpu"));
      }
      if (lim->contains("memory")) {
        ASSIGN_OR_RETURN(app.memory_bytes,
                         ParseMemoryQuantity((*lim)["memory"], "spec.resources.limits.memory"));
      }
      ASSIGN_OR_RETURN(app.pids, GetIntOr(*lim, "pids", "spec.resources.limits", 0));
      if (app.pids < 0) return Invalid("spec.resources.limits.pids", "must be 0 or more");
    }
  }

  for (auto [key, slot] : {std::pair{"readinessProbe", &app.readiness},
                           std::pair{"livenessProbe", &app.liveness}}) {
    auto it = spec.find(key);
    if (it == spec.end() || it->is_null()) continue;
    ASSIGN_OR_RETURN(*slot, ParseProbe(*it, FieldPath("spec", key)));
  }

  if (auto st = spec.find("strategy"); st != spec.end() && !st->is_null()) {
    if (!st->is_object()) return Invalid("spec.strategy", "must be an object");
    RETURN_IF_ERROR(OnlyKnownKeys(*st, "spec.strategy", {"type", "rollingUpdate"}));
    ASSIGN_OR_RETURN(std::string type, GetStringOr(*st, "type", "spec.strategy", "RollingUpdate"));
    if (type != "RollingUpdate") {
      return Invalid("spec.strategy.type", StrCat("\"", type, "\" must be RollingUpdate"));
    }
    if (auto ru = st->find("rollingUpdate"); ru != st->end() && !ru->is_null()) {
      if (!ru->is_object()) return Invalid("spec.strategy.rollingUpdate", "must be an object");
      RETURN_IF_ERROR(
          OnlyKnownKeys(*ru, "spec.strategy.rollingUpdate", {"maxSurge", "maxUnavailable"}));
      ASSIGN_OR_RETURN(app.max_surge, ParseIntOrPercent(*ru, "maxSurge",
                                                        "spec.strategy.rollingUpdate", app.max_surge));
      ASSIGN_OR_RETURN(app.max_unavailable,
                       ParseIntOrPercent(*ru, "maxUnavailable", "spec.strategy.rollingUpdate",
                                         app.max_unavailable));
    }
  }
  if (app.max_surge.Resolve(std::max(app.replicas, 1), true) == 0 &&
      app.max_unavailable.Resolve(std::max(app.replicas, 1), false) == 0) {
    return Invalid("spec.strategy.rollingUpdate",
                   "maxSurge and maxUnavailable cannot both be 0 (the rollout could never move)");
  }

  ASSIGN_OR_RETURN(app.config_files, ParseFiles(spec, "configFiles", 0644));
  ASSIGN_OR_RETURN(app.secret_files, ParseFiles(spec, "secretFiles", 0600));
  for (size_t i = 0; i < app.secret_files.size(); ++i) {
    for (const AppFile& c : app.config_files) {
      if (c.path == app.secret_files[i].path) {
        return Invalid(StrCat("spec.secretFiles[", i, "].path"),
                       StrCat("\"", c.path, "\" is also a config file"));
      }
    }
  }
  return app;
}

Json AppToManifest(const App& app, bool show_secrets) {
  Json spec = {{"replicas", app.replicas}, {"image", app.image}};
  if (!app.command.empty()) spec["command"] = app.command;
  if (!app.env.empty()) {
    Json env = Json::array();
    for (const EnvVar& e : app.env) env.push_back({{"name", e.name}, {"value", e.value}});
    spec["env"] = env;
  }
  if (!app.working_dir.empty()) spec["workingDir"] = app.working_dir;
  if (!app.ports.empty()) {
    Json ports = Json::array();
    for (const ContainerPort& p : app.ports) {
      Json j = {{"containerPort", p.port}, {"protocol", ProtocolName(p.protocol)}};
      if (!p.name.empty()) j["name"] = p.name;
      ports.push_back(j);
    }
    spec["ports"] = ports;
  }
  Json limits = Json::object();
  if (app.cpus > 0) limits["cpu"] = app.cpus;
  if (app.memory_bytes > 0) limits["memory"] = app.memory_bytes;
  if (app.pids > 0) limits["pids"] = app.pids;
  if (!limits.empty()) spec["resources"] = {{"limits", limits}};
  if (app.readiness) spec["readinessProbe"] = ProbeToJson(*app.readiness);
  if (app.liveness) spec["livenessProbe"] = ProbeToJson(*app.liveness);
  spec["strategy"] = {{"type", "RollingUpdate"},
                      {"rollingUpdate",
                       {{"maxSurge", IntOrPercentToJson(app.max_surge)},
                        {"maxUnavailable", IntOrPercentToJson(app.max_unavailable)}}}};
  if (!app.config_files.empty()) spec["configFiles"] = FilesToJson(app.config_files, false);
  if (!app.secret_files.empty()) spec["secretFiles"] = FilesToJson(app.secret_files, !show_secrets);
  spec["drainSeconds"] = app.drain_seconds;
  spec["terminationGracePeriodSeconds"] = app.termination_grace_seconds;
  return {{"apiVersion", "loom/v1"}, {"kind", "App"}, {"metadata", MetaToJson(app.meta)},
          {"spec", spec}};
}

std::string AppTemplateHash(const App& app) {
  Json t = AppToManifest(app, true)["spec"];
  t.erase("replicas");
  t.erase("strategy");
  t.erase("drainSeconds");
  t.erase("terminationGracePeriodSeconds");
  t["labels"] = app.meta.labels;
  std::string text = t.dump();
  uint64_t h = 14695981039346656037ull;  // FNV-1a 64: stable across nodes and restarts
  for (unsigned char c : text) {
    h ^= c;
    h *= 1099511628211ull;
  }
  char out[17];
  std::snprintf(out, sizeof out, "%016llx", static_cast<unsigned long long>(h));
  return out;
}

}  // namespace loom::model
