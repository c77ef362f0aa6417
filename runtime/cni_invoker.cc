#include "runtime/cni_invoker.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>

#include "absl/strings/escaping.h"
#include "cni/protocol/error.h"
#include "cni/protocol/net_conf.h"
#include "common/log.h"
#include "common/status.h"
#include "common/strings.h"
#include "runtime/fs_util.h"

namespace loom::runtime {
namespace {

constexpr size_t kMaxPluginOutput = 4 << 20;

bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// libcni reads disableCheck/disableGC as a bool or the strings "true"/"false".
absl::StatusOr<bool> FlagField(const Json& j, const char* key, std::string_view source) {
  auto it = j.find(key);
  if (it == j.end()) return false;
  if (it->is_boolean()) return it->get<bool>();
  if (it->is_string()) {
    std::string v = it->get<std::string>();
    if (v == "true" || v == "false") return v == "true";
  }
  return absl::InvalidArgumentError(StrCat(source, ": ", key, " must be true or false"));
}

std::string JoinArgs(const std::vector<std::pair<std::string, std::string>>& args) {
  std::string out;
  for (const auto& [k, v] : args) {
    if (!out.empty()) out += ';';
    StrAppend(&out, k, "=", v);
  }
  return out;
}

std::string Tail(std::string s, size_t max) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  if (s.size() > max) s = StrCat("...", s.substr(s.size() - max));
  return s;
}

absl::StatusOr<Json> ParsePluginJson(std::string_view type, std::string_view command,
                                     const std::string& out) {
  absl::StatusOr<Json> j = ParseJson(out);
  if (!j.ok() || !j->is_object()) {
    return cni::CniError(cni::kErrDecode, StrCat("plugin ", type, " ", command,
                                                 ": output is not a JSON object: ",
                                                 Tail(out, 200)));
  }
  return j;
}

}  // namespace

absl::StatusOr<CniNetwork> ParseCniNetwork(std::string_view text, std::string_view source,
                                           bool single) {
  const std::string where = source.empty() ? std::string("CNI config") : std::string(source);
  absl::StatusOr<Json> parsed = ParseJson(text);
  if (!parsed.ok()) return absl::InvalidArgumentError(StrCat(where, ": ", parsed.status().message()));
  const Json& j = *parsed;
  if (!j.is_object()) return absl::InvalidArgumentError(StrCat(where, ": not a JSON object"));
  CniNetwork net;
  net.source = std::string(source);
  net.bytes = std::string(text);
  auto name = j.find("name");
  if (name == j.end() || !name->is_string()) {
    return absl::InvalidArgumentError(StrCat(where, ": \"name\" (a string) is required"));
  }
  net.name = name->get<std::string>();
  if (!cni::IsValidNetworkName(net.name)) {
    return absl::InvalidArgumentError(StrCat(where, ": invalid network name \"", net.name, "\""));
  }
  absl::StatusOr<cni::SpecVersion> version = cni::PickConfigVersion(j);
  if (!version.ok()) return absl::InvalidArgumentError(StrCat(where, ": ", version.status().message()));
  net.version = *version;
  net.cni_version = version->ToString();
  if (j.contains("cniVersion") && j["cniVersion"].is_string() && !j.contains("cniVersions")) {
    net.cni_version = j["cniVersion"].get<std::string>();  // echoed as written, as libcni does
  }
  ASSIGN_OR_RETURN(net.disable_check, FlagField(j, "disableCheck", where));
  ASSIGN_OR_RETURN(net.disable_gc, FlagField(j, "disableGC", where));
  if (single) {
    net.plugins.push_back(j);
  } else {
    auto plugins = j.find("plugins");
    if (plugins == j.end() || !plugins->is_array() || plugins->empty()) {
      return absl::InvalidArgumentError(StrCat(where, ": \"plugins\" must be a non-empty array"));
    }
    for (const Json& p : *plugins) net.plugins.push_back(p);
  }
  for (size_t i = 0; i < net.plugins.size(); ++i) {
    const Json& p = net.plugins[i];
    if (!p.is_object() || !p.contains("type") || !p["type"].is_string() ||
        p["type"].get<std::string>().empty()) {
      return absl::InvalidArgumentError(
          StrCat(where, ": plugins[", i, "] needs a \"type\" naming the plugin"));
    }
    std::string type = p["type"].get<std::string>();
    if (type.find('/') != std::string::npos || type == "." || type == "..") {
      return absl::InvalidArgumentError(
          StrCat(where, ": plugins[", i, "].type \"", type, "\" must be a plain name"));
    }
  }
  return net;
}

absl::StatusOr<CniNetwork> ParseAnyCniNetwork(std::string_view text, std::string_view source) {
  absl::StatusOr<Json> j = ParseJson(text);
  bool list = j.ok() && j->is_object() && j->contains("plugins");
  return ParseCniNetwork(text, source, !list);
}

absl::StatusOr<std::vector<std::string>> CniConfFiles(const std::string& conf_dir) {
  DIR* dir = ::opendir(conf_dir.c_str());
  if (dir == nullptr) {
    if (errno == ENOENT) return std::vector<std::string>{};
    return ErrnoToStatus(errno, StrCat("CNI conf dir ", conf_dir));
  }
  std::vector<std::string> files;
  while (struct dirent* e = ::readdir(dir)) {
    std::string n = e->d_name;
    if (n[0] == '.') continue;
    if (EndsWith(n, ".conf") || EndsWith(n, ".conflist") || EndsWith(n, ".json")) {
      files.push_back(StrCat(conf_dir, "/", n));
    }
  }
  ::closedir(dir);
  std::sort(files.begin(), files.end());
  return files;
}

absl::StatusOr<CniNetwork> LoadDefaultCniNetwork(const std::string& conf_dir) {
  ASSIGN_OR_RETURN(std::vector<std::string> files, CniConfFiles(conf_dir));
  if (files.empty()) {
    return absl::NotFoundError(StrCat("no CNI network config (.conflist, .conf, .json) in ", conf_dir));
  }
  ASSIGN_OR_RETURN(std::string text, ReadFileToString(files[0]));
  return ParseCniNetwork(text, files[0], !EndsWith(files[0], ".conflist"));
}

CniInvoker::CniInvoker(CniInvokerOptions options) : options_(std::move(options)) {
  if (options_.path_env.empty()) {
    const char* path = std::getenv("PATH");
    options_.path_env = path != nullptr ? path : "/usr/sbin:/usr/bin:/sbin:/bin";
  }
}

std::string CniInvoker::CniPath() const {
  std::string out;
  for (const std::string& d : options_.bin_dirs) {
    if (!out.empty()) out += ':';
    out += d;
  }
  return out;
}

Json CniInvoker::PluginConfig(const CniNetwork& net, size_t index, const CniRuntimeConf& rt,
                              const Json& prev_result) const {
  Json conf = net.plugins[index];
  conf["name"] = net.name;
  conf["cniVersion"] = net.cni_version;
  if (prev_result.is_null()) {
    conf.erase("prevResult");
  } else {
    conf["prevResult"] = prev_result;
  }
  Json rc = Json::object();
  auto caps = conf.find("capabilities");
  if (caps != conf.end() && caps->is_object()) {
    for (const auto& [cap, enabled] : caps->items()) {
      if (enabled.is_boolean() && enabled.get<bool>() && rt.capability_args.contains(cap)) {
        rc[cap] = rt.capability_args[cap];
      }
    }
  }
  if (!rc.empty()) conf["runtimeConfig"] = rc;
  return conf;
}

absl::StatusOr<std::string> CniInvoker::Exec(std::string_view type, std::string_view command,
                                             const CniRuntimeConf& rt,
                                             const std::string& stdin_text) const {
  std::string binary;
  for (const std::string& dir : options_.bin_dirs) {
    std::string candidate = StrCat(dir, "/", type);
    if (::access(candidate.c_str(), X_OK) == 0) {
      binary = candidate;
      break;
    }
  }
  if (binary.empty()) {
    return absl::NotFoundError(StrCat("CNI plugin \"", type, "\" not found in ", CniPath()));
  }
  std::vector<std::string> env = {StrCat("CNI_COMMAND=", command), StrCat("CNI_PATH=", CniPath()),
                                  StrCat("PATH=", options_.path_env)};
  if (command != "GC" && command != "STATUS") {
    env.push_back(StrCat("CNI_CONTAINERID=", rt.container_id));
    env.push_back(StrCat("CNI_NETNS=", rt.netns));
    env.push_back(StrCat("CNI_IFNAME=", rt.ifname));
    env.push_back(StrCat("CNI_ARGS=", JoinArgs(rt.args)));
  }
  std::vector<char*> envp;
  for (std::string& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  char* argv[] = {binary.data(), nullptr};

  int in[2], out[2], err[2];
  if (::pipe2(in, O_CLOEXEC) != 0) return ErrnoToStatus(errno, "pipe");
  UniqueFd in_r(in[0]), in_w(in[1]);
  if (::pipe2(out, O_CLOEXEC) != 0) return ErrnoToStatus(errno, "pipe");
  UniqueFd out_r(out[0]), out_w(out[1]);
  if (::pipe2(err, O_CLOEXEC) != 0) return ErrnoToStatus(errno, "pipe");
  UniqueFd err_r(err[0]), err_w(err[1]);
  const absl::Time start = absl::Now();
  pid_t pid = ::fork();
  if (pid < 0) return ErrnoToStatus(errno, "fork");
  if (pid == 0) {
    // Only async-signal-safe calls: the parent is multi-threaded.
    ::setpgid(0, 0);  // its own group, so a timeout kills what it started too
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    if (::dup2(in_r.get(), 0) < 0 || ::dup2(out_w.get(), 1) < 0 || ::dup2(err_w.get(), 2) < 0) {
      ::_exit(127);
    }
    ::close_range(3, ~0U, 0);
    ::execve(argv[0], argv, envp.data());
    ::_exit(127);
  }
  ::setpgid(pid, pid);
  in_r.reset();
  out_w.reset();
  err_w.reset();
  ::fcntl(in_w.get(), F_SETFL, O_NONBLOCK);
  std::string stdout_text, stderr_text;
  size_t written = 0;
  if (stdin_text.empty()) in_w.reset();
  const absl::Time deadline = start + options_.plugin_timeout;
  bool timed_out = false;
  while (out_r.valid() || err_r.valid() || in_w.valid()) {
    struct pollfd fds[3];
    UniqueFd* owners[3];
    int n = 0;
    if (in_w.valid()) {
      owners[n] = &in_w;
      fds[n++] = {in_w.get(), POLLOUT, 0};
    }
    if (out_r.valid()) {
      owners[n] = &out_r;
      fds[n++] = {out_r.get(), POLLIN, 0};
    }
    if (err_r.valid()) {
      owners[n] = &err_r;
      fds[n++] = {err_r.get(), POLLIN, 0};
    }
    if (PollUntil(fds, static_cast<size_t>(n), deadline) <= 0) {
      timed_out = true;
      break;
    }
    for (int k = 0; k < n; ++k) {
      if (fds[k].revents == 0) continue;
      UniqueFd* fd = owners[k];
      if (fd == &in_w) {
        ssize_t w = ::write(in_w.get(), stdin_text.data() + written, stdin_text.size() - written);
        if (w > 0) written += static_cast<size_t>(w);
        if ((w < 0 && errno != EAGAIN && errno != EINTR) || written == stdin_text.size()) in_w.reset();
        continue;
      }
      char buf[16384];
      ssize_t got = ::read(fd->get(), buf, sizeof(buf));
      if (got > 0) {
        std::string& sink = fd == &out_r ? stdout_text : stderr_text;
        if (sink.size() < kMaxPluginOutput) sink.append(buf, static_cast<size_t>(got));
      } else if (got == 0 || (errno != EINTR && errno != EAGAIN)) {
        fd->reset();
      }
    }
  }
  if (timed_out) ::kill(-pid, SIGKILL);
  int ws = 0;
  while (::waitpid(pid, &ws, 0) < 0 && errno == EINTR) {
  }
  if (!stderr_text.empty()) {
    LOG_DEBUG("CNI plugin stderr", {"plugin", type}, {"command", command},
              {"stderr", Tail(stderr_text, 2000)});
  }
  if (timed_out) {
    return absl::DeadlineExceededError(StrCat("plugin ", type, " ", command, ": timed out after ",
                                              absl::FormatDuration(options_.plugin_timeout),
                                              " (killed)"));
  }
  if (WIFEXITED(ws) && WEXITSTATUS(ws) == 0) return stdout_text;
  absl::StatusOr<Json> e = ParseJson(stdout_text);
  if (e.ok() && e->is_object() && e->contains("code") && (*e)["code"].is_number_integer()) {
    int code = (*e)["code"].get<int>();
    std::string msg = e->value("msg", std::string());
    std::string details = e->contains("details") && (*e)["details"].is_string()
                              ? (*e)["details"].get<std::string>()
                              : "";
    return cni::CniError(code,
                         StrCat("plugin ", type, " ", command, ": CNI error ", code, ": ", msg,
                                details.empty() ? "" : StrCat(" (", details, ")")),
                         details);
  }
  std::string why = WIFEXITED(ws) ? StrCat("exit status ", WEXITSTATUS(ws))
                                  : StrCat("killed by signal ", WTERMSIG(ws));
  std::string said = Tail(stderr_text.empty() ? stdout_text : stderr_text, 500);
  return cni::CniError(cni::kErrInternal, StrCat("plugin ", type, " ", command, " failed (", why,
                                                 ")", said.empty() ? "" : StrCat(": ", said)));
}

std::string CniInvoker::CachePath(std::string_view net, std::string_view id,
                                  std::string_view ifname) const {
  return StrCat(options_.cache_dir, "/results/", net, "-", id, "-", ifname);
}

absl::Status CniInvoker::WriteCache(const CniNetwork& net, const CniRuntimeConf& rt,
                                    const Json& result) {
  Json args = Json::array();
  for (const auto& [k, v] : rt.args) args.push_back(Json::array({k, v}));
  // libcni's cniCacheV1; "config" is a Go []byte, hence base64.
  Json j = {{"kind", "cniCacheV1"},
            {"containerId", rt.container_id},
            {"config", absl::Base64Escape(net.bytes)},
            {"ifName", rt.ifname},
            {"networkName", net.name},
            {"netns", rt.netns},
            {"cniArgs", args},
            {"capabilityArgs", rt.capability_args},
            {"result", result}};
  RETURN_IF_ERROR(MakeDirs(StrCat(options_.cache_dir, "/results"), true));
  return WriteFileAtomic(CachePath(net.name, rt.container_id, rt.ifname), j.dump(), 0600);
}

absl::StatusOr<CniCachedAttachment> CniInvoker::Cached(std::string_view network_name,
                                                       std::string_view container_id,
                                                       std::string_view ifname) const {
  CniCachedAttachment a;
  a.path = CachePath(network_name, container_id, ifname);
  absl::StatusOr<std::string> text = ReadFileToString(a.path);
  if (!text.ok()) {
    if (absl::IsNotFound(text.status())) {
      return absl::NotFoundError(StrCat("no cached CNI result for ", container_id, "/", ifname,
                                        " on network ", network_name));
    }
    return text.status();
  }
  absl::StatusOr<Json> j = ParseJson(*text);
  if (!j.ok() || !j->is_object() || j->value("kind", "") != "cniCacheV1") {
    return absl::DataLossError(StrCat(a.path, ": not a cniCacheV1 entry"));
  }
  a.network_name = j->value("networkName", "");
  a.container_id = j->value("containerId", "");
  a.ifname = j->value("ifName", "");
  a.netns = j->value("netns", "");
  if (j->contains("cniArgs") && (*j)["cniArgs"].is_array()) {
    for (const Json& kv : (*j)["cniArgs"]) {
      if (kv.is_array() && kv.size() == 2 && kv[0].is_string() && kv[1].is_string()) {
        a.args.emplace_back(kv[0].get<std::string>(), kv[1].get<std::string>());
      }
    }
  }
  if (j->contains("capabilityArgs") && (*j)["capabilityArgs"].is_object()) {
    a.capability_args = (*j)["capabilityArgs"];
  }
  std::string decoded;
  if (absl::Base64Unescape(j->value("config", ""), &decoded)) a.config = decoded;
  a.result = j->contains("result") ? (*j)["result"] : Json();
  return a;
}

std::vector<CniCachedAttachment> CniInvoker::CachedAttachments(std::string_view network_name) const {
  std::vector<CniCachedAttachment> out;
  const std::string dir = StrCat(options_.cache_dir, "/results");
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return out;
  std::vector<std::string> names;
  while (struct dirent* e = ::readdir(d)) names.emplace_back(e->d_name);
  ::closedir(d);
  std::sort(names.begin(), names.end());
  const std::string prefix = StrCat(network_name, "-");
  for (const std::string& n : names) {
    if (n.rfind(prefix, 0) != 0) continue;
    absl::StatusOr<std::string> text = ReadFileToString(StrCat(dir, "/", n));
    if (!text.ok()) continue;
    absl::StatusOr<Json> j = ParseJson(*text);
    // The file name alone is ambiguous ("a-b" + "c" vs "a" + "b-c"): trust the content.
    if (!j.ok() || !j->is_object() || j->value("networkName", "") != network_name) continue;
    absl::StatusOr<CniCachedAttachment> a =
        Cached(network_name, j->value("containerId", ""), j->value("ifName", ""));
    if (a.ok()) out.push_back(*std::move(a));
  }
  return out;
}

absl::StatusOr<cni::Result> CniInvoker::Add(const CniNetwork& net, const CniRuntimeConf& rt) {
  Json prev;
  for (size_t i = 0; i < net.plugins.size(); ++i) {
    const std::string type = net.plugins[i]["type"].get<std::string>();
    ASSIGN_OR_RETURN(std::string out, Exec(type, "ADD", rt, PluginConfig(net, i, rt, prev).dump()));
    ASSIGN_OR_RETURN(Json result, ParsePluginJson(type, "ADD", out));
    absl::StatusOr<Json> converted = cni::ConvertResult(result, net.version);
    if (!converted.ok()) {
      return cni::CniError(cni::kErrDecode, StrCat("plugin ", type, " ADD: bad result: ",
                                                   converted.status().message()));
    }
    prev = *std::move(converted);
  }
  ASSIGN_OR_RETURN(cni::Result result, cni::DecodeResult(prev));
  RETURN_IF_ERROR(Annotate(WriteCache(net, rt, prev), "cache CNI result"));
  return result;
}

absl::Status CniInvoker::DelChain(const CniNetwork& net, const CniRuntimeConf& rt, const Json& prev) {
  for (size_t i = net.plugins.size(); i-- > 0;) {
    const std::string type = net.plugins[i]["type"].get<std::string>();
    RETURN_IF_ERROR(Exec(type, "DEL", rt, PluginConfig(net, i, rt, prev).dump()).status());
  }
  return absl::OkStatus();
}

absl::Status CniInvoker::Del(const CniNetwork& net, const CniRuntimeConf& rt) {
  Json prev;
  absl::StatusOr<CniCachedAttachment> cached = Cached(net.name, rt.container_id, rt.ifname);
  if (cached.ok() && net.version >= cni::kVersion040) prev = cached->result;
  RETURN_IF_ERROR(DelChain(net, rt, prev));
  if (cached.ok() && ::unlink(cached->path.c_str()) != 0 && errno != ENOENT) {
    return ErrnoToStatus(errno, StrCat("remove ", cached->path));
  }
  return absl::OkStatus();
}

absl::Status CniInvoker::Check(const CniNetwork& net, const CniRuntimeConf& rt) {
  if (net.version < cni::kVersion040) {
    return absl::FailedPreconditionError(
        StrCat("network ", net.name, ": cniVersion ", net.cni_version, " has no CHECK"));
  }
  if (net.disable_check) return absl::OkStatus();
  ASSIGN_OR_RETURN(CniCachedAttachment cached, Cached(net.name, rt.container_id, rt.ifname));
  if (cached.result.is_null()) {
    return absl::FailedPreconditionError(StrCat("no cached result to CHECK for ", rt.container_id));
  }
  for (size_t i = 0; i < net.plugins.size(); ++i) {
    const std::string type = net.plugins[i]["type"].get<std::string>();
    RETURN_IF_ERROR(Exec(type, "CHECK", rt, PluginConfig(net, i, rt, cached.result).dump()).status());
  }
  return absl::OkStatus();
}

absl::Status CniInvoker::Gc(const CniNetwork& net,
                            const std::vector<std::pair<std::string, std::string>>& valid) {
  absl::Status first;
  auto note = [&](const absl::Status& s) {
    if (!s.ok() && first.ok()) first = s;
  };
  for (const CniCachedAttachment& a : CachedAttachments(net.name)) {
    if (std::find(valid.begin(), valid.end(), std::make_pair(a.container_id, a.ifname)) !=
        valid.end()) {
      continue;
    }
    // DEL with the config the attachment was made with, as libcni does.
    absl::StatusOr<CniNetwork> old = ParseAnyCniNetwork(a.config, a.path);
    const CniNetwork& with = old.ok() ? *old : net;
    CniRuntimeConf rt{a.container_id, a.netns, a.ifname, a.args, a.capability_args};
    absl::Status s = DelChain(with, rt, with.version >= cni::kVersion040 ? a.result : Json());
    if (s.ok() && ::unlink(a.path.c_str()) != 0 && errno != ENOENT) s = ErrnoToStatus(errno, a.path);
    if (!s.ok()) LOG_WARNING("CNI GC: DEL of a stale attachment failed", {"container", a.container_id}, {"error", s});
    note(s);
  }
  if (net.version < cni::kVersion110 || net.disable_gc) return first;
  Json attachments = Json::array();
  for (const auto& [id, ifname] : valid) {
    attachments.push_back({{"containerID", id}, {"ifname", ifname}});
  }
  for (size_t i = 0; i < net.plugins.size(); ++i) {
    const std::string type = net.plugins[i]["type"].get<std::string>();
    Json conf = PluginConfig(net, i, CniRuntimeConf{}, Json());
    conf["cni.dev/valid-attachments"] = attachments;
    conf["cni.dev/attachments"] = attachments;
    note(Exec(type, "GC", CniRuntimeConf{}, conf.dump()).status());
  }
  return first;
}

std::string FormatResolvConf(const cni::Dns& dns) {
  std::string out;
  for (const std::string& ns : dns.nameservers) StrAppend(&out, "nameserver ", ns, "\n");
  if (!dns.search.empty()) {
    out += "search";
    for (const std::string& s : dns.search) StrAppend(&out, " ", s);
    out += "\n";
  } else if (!dns.domain.empty()) {
    StrAppend(&out, "domain ", dns.domain, "\n");
  }
  if (!dns.options.empty()) {
    out += "options";
    for (const std::string& o : dns.options) StrAppend(&out, " ", o);
    out += "\n";
  }
  return out;
}

std::string FormatHosts(std::string_view hostname, const std::vector<std::string>& ips) {
  std::string out =
      "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
      "fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\n"
      "ff02::2\tip6-allrouters\n";
  for (const std::string& ip : ips) StrAppend(&out, ip, "\t", hostname, "\n");
  return out;
}

}  // namespace loom::runtime
