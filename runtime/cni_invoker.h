// CNI invocation on the runtime side, as libcni (and so containerd and CRI-O) does it:
//   - the network is the first file of the conf dir in sorted order with extension
//     .conflist, .conf or .json (a single plugin .conf is wrapped into a list);
//   - ADD runs the chain in order, each plugin getting the previous result as
//     prevResult; DEL runs it in reverse with the cached final result; CHECK runs it in
//     order with the cached result (cniVersion >= 0.4.0, unless disableCheck);
//   - every plugin gets the spec's environment (CNI_COMMAND, CNI_CONTAINERID, CNI_NETNS,
//     CNI_IFNAME, CNI_ARGS, CNI_PATH) and its config with the injected name, cniVersion,
//     prevResult and runtimeConfig (only the capabilities it declares);
//   - the result is cached at <cache_dir>/results/<net>-<containerID>-<ifname> (mode 0600,
//     libcni's cniCacheV1 shape) after ADD succeeds and removed after DEL;
//   - GC DELs every cached attachment of the network not in the valid list, then (for
//     cniVersion >= 1.1.0, unless disableGC) sends GC with cni.dev/valid-attachments.
// Plugins run with a timeout (killed with their process group); errors name the
// plugin, the verb and the plugin's CNI code and message.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "cni/protocol/result.h"
#include "cni/protocol/version.h"
#include "common/json.h"

namespace loom::runtime {

// A network configuration list, as loaded from a file.
struct CniNetwork {
  std::string name;
  std::string cni_version;  // the version the list runs with (from cniVersions if given)
  cni::SpecVersion version;
  bool disable_check = false;
  bool disable_gc = false;
  std::vector<Json> plugins;  // each with at least "type"
  std::string source;         // the file it came from ("" when parsed from text)
  std::string bytes;          // the list as JSON text (cached with each result)
};

// Parses a .conflist (with `plugins`) or, when `single` is true, a one-plugin .conf.
// Errors are InvalidArgument naming `source` and the field.
absl::StatusOr<CniNetwork> ParseCniNetwork(std::string_view text, std::string_view source,
                                           bool single);
// A .conflist when the text has "plugins", else a single-plugin .conf (cached configs).
absl::StatusOr<CniNetwork> ParseAnyCniNetwork(std::string_view text, std::string_view source);
// The conf dir's files with extension .conf, .conflist or .json, sorted by name.
absl::StatusOr<std::vector<std::string>> CniConfFiles(const std::string& conf_dir);
// The first network of `conf_dir` (NotFound when the dir has no config file).
absl::StatusOr<CniNetwork> LoadDefaultCniNetwork(const std::string& conf_dir);

// One attachment of a container to the network.
struct CniRuntimeConf {
  std::string container_id;
  std::string netns;  // a path to the namespace; may be empty for DEL
  std::string ifname = "eth0";
  std::vector<std::pair<std::string, std::string>> args;  // CNI_ARGS, in order
  // Capability arguments by name ("portMappings": [...]); each goes into the
  // runtimeConfig of the plugins that declare it in "capabilities".
  Json capability_args = Json::object();
};

// What the cache holds for one attachment.
struct CniCachedAttachment {
  std::string network_name;
  std::string container_id;
  std::string ifname;
  std::string netns;
  std::vector<std::pair<std::string, std::string>> args;
  Json capability_args = Json::object();
  std::string config;  // the list's JSON text at ADD time
  Json result;         // null when the entry has none
  std::string path;    // the cache file
};

struct CniInvokerOptions {
  std::vector<std::string> bin_dirs;  // searched in order; CNI_PATH is them joined by ':'
  std::string cache_dir;              // results/ under it
  absl::Duration plugin_timeout = absl::Seconds(60);
  // PATH for the plugins (they may run iptables, ip, ...); empty: this process's PATH.
  std::string path_env;
};

class CniInvoker {
 public:
  explicit CniInvoker(CniInvokerOptions options);

  // Runs the chain; returns the final result in the list's version and caches it.
  // On failure nothing is cached (the caller runs Del to undo what plugins did).
  absl::StatusOr<cni::Result> Add(const CniNetwork& net, const CniRuntimeConf& rt);
  // Runs the chain in reverse with the cached result as prevResult (when cached),
  // then drops the cache entry. OK when repeated.
  absl::Status Del(const CniNetwork& net, const CniRuntimeConf& rt);
  // CHECK with the cached result. FailedPrecondition when nothing is cached.
  absl::Status Check(const CniNetwork& net, const CniRuntimeConf& rt);
  // DELs (each with its cached config) the attachments of `net` that are cached but not
  // in `valid` (container ID, ifname), then sends GC when the version allows it.
  // Returns the first error after trying everything.
  absl::Status Gc(const CniNetwork& net,
                  const std::vector<std::pair<std::string, std::string>>& valid);

  // The cached result of an attachment (NotFound when none).
  absl::StatusOr<CniCachedAttachment> Cached(std::string_view network_name,
                                             std::string_view container_id,
                                             std::string_view ifname) const;
  // Every cached attachment of `network_name`.
  std::vector<CniCachedAttachment> CachedAttachments(std::string_view network_name) const;

  // The config plugin `index` of `net` gets on stdin (exposed for tests).
  Json PluginConfig(const CniNetwork& net, size_t index, const CniRuntimeConf& rt,
                    const Json& prev_result) const;
  std::string CniPath() const;

 private:
  // Execs the plugin `type` for `command` and returns its stdout.
  absl::StatusOr<std::string> Exec(std::string_view type, std::string_view command,
                                   const CniRuntimeConf& rt, const std::string& stdin_text) const;
  absl::Status DelChain(const CniNetwork& net, const CniRuntimeConf& rt, const Json& prev);
  std::string CachePath(std::string_view net, std::string_view id, std::string_view ifname) const;
  absl::Status WriteCache(const CniNetwork& net, const CniRuntimeConf& rt, const Json& result);

  CniInvokerOptions options_;
};

// /etc/resolv.conf for a container: "nameserver", "search" and "options" lines from
// the result's dns (a "domain" line when only the domain is set).
std::string FormatResolvConf(const cni::Dns& dns);
// /etc/hosts: localhost lines and `hostname` on each of `ips` (bare addresses).
std::string FormatHosts(std::string_view hostname, const std::vector<std::string>& ips);

}  // namespace loom::runtime
