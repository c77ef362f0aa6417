// The network configuration a plugin receives on stdin (one plugin's config, with the
// runtime's injected name, cniVersion, prevResult, runtimeConfig and args).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "cni/protocol/cni_args.h"
#include "cni/protocol/result.h"
#include "cni/protocol/version.h"
#include "common/json.h"

namespace loom::cni {

inline constexpr char kDefaultSocket[] = "/run/loom/loomd.sock";

// CONVENTIONS.md capability arguments, as runtimes pass them in runtimeConfig.
struct PortMapping {
  int host_port = 0;
  int container_port = 0;
  std::string protocol;  // as given ("tcp", "udp", "sctp"); empty when absent
  std::string host_ip;   // optional

  bool operator==(const PortMapping&) const = default;
};

struct Bandwidth {
  int64_t ingress_rate = 0;  // bits per second
  int64_t ingress_burst = 0; // bits
  int64_t egress_rate = 0;
  int64_t egress_burst = 0;

  bool operator==(const Bandwidth&) const = default;
};

struct RuntimeConfig {
  std::vector<PortMapping> port_mappings;
  std::optional<Bandwidth> bandwidth;
  std::vector<std::string> ips;  // "10.0.0.5/24" or a bare address, as requested
  std::string mac;
  std::optional<Dns> dns;
  std::vector<std::string> aliases;
  std::string cgroup_path;
  Json other = Json::object();  // every other key, untouched
};

// One entry of cni.dev/valid-attachments (GC).
struct Attachment {
  std::string container_id;
  std::string ifname;

  bool operator==(const Attachment&) const = default;
};

struct NetConf {
  std::string cni_version;  // exactly as given; results echo it
  SpecVersion version;      // parsed, supported
  std::string name;
  std::string type;
  std::string socket = kDefaultSocket;  // loomd's API socket
  std::optional<int> mtu;
  // ipam: present means delegate to the IPAM plugin `ipam_type`; `ipam` is the object.
  std::optional<Json> ipam;
  std::string ipam_type;
  // args: Loom reads `args.labels` ({"app": "web"}); every key is kept in `args`.
  Labels labels;
  Json args = Json::object();
  RuntimeConfig runtime_config;
  std::optional<Result> prev_result;
  Json capabilities = Json::object();  // name -> bool
  // GC: cni.dev/valid-attachments, else the older cni.dev/attachments; nullopt if absent.
  std::optional<std::vector<Attachment>> valid_attachments;
  Json raw;  // the whole config as received (IPAM delegation sends it on)
};

// Decodes stdin as JSON: code 6 with the parser's message, or when not an object.
absl::StatusOr<Json> DecodeConfigJson(std::string_view text);

// Validates a decoded config. The version comes first (code 1, see ConfigVersion),
// then every field: wrong types and bad values are code 7 naming the field. Unknown
// top-level keys belong to other plugins and are ignored.
absl::StatusOr<NetConf> NetConfFromJson(const Json& json);

// DecodeConfigJson then NetConfFromJson.
absl::StatusOr<NetConf> ParseNetConf(std::string_view text);

// Starts with [A-Za-z0-9], then [A-Za-z0-9_.-] (the spec's network name rule).
bool IsValidNetworkName(std::string_view name);

}  // namespace loom::cni
