// The App object (DESIGN.md "Objects"): a declared set of identical replicas, shaped
// like a Kubernetes Deployment with a flat, template-free spec.
//
//   kind: App
//   metadata: {name: web, namespace: default, labels: {app: web}}
//   spec:
//     replicas: 3
//     image: web                         # a name in the node's image store
//     command: [httpd, -f, -p, "8080"]
//     env: [{name: MODE, value: prod}]
//     workingDir: /srv
//     ports: [{name: http, containerPort: 8080, protocol: TCP}]
//     resources: {limits: {cpu: 500m, memory: 64Mi, pids: 256}}
//     readinessProbe: {httpGet: {path: /healthz, port: 8080}, periodSeconds: 1}
//     livenessProbe: {tcpSocket: {port: 8080}, failureThreshold: 3}
//     strategy: {type: RollingUpdate, rollingUpdate: {maxSurge: 1, maxUnavailable: 0}}
//     configFiles: [{path: /etc/web/web.conf, content: "..."}]
//     secretFiles: [{path: /run/secrets/token, content: "...", mode: 0400}]
//
// The App's pods carry metadata.labels (a Service selects them by those). Parsing
// checks every field and errors name it ("spec.readinessProbe.httpGet.port: ...").
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/json.h"
#include "common/model/objects.h"

namespace loom::model {

struct EnvVar {
  std::string name;
  std::string value;
  friend bool operator==(const EnvVar&, const EnvVar&) = default;
};

struct Probe {
  enum class Kind { kHttpGet, kTcpSocket, kExec };
  Kind kind = Kind::kTcpSocket;
  std::string http_path = "/";  // httpGet
  uint16_t port = 0;            // httpGet, tcpSocket
  std::vector<std::string> command;  // exec
  int initial_delay_seconds = 0;
  int period_seconds = 10;
  int timeout_seconds = 1;
  int success_threshold = 1;
  int failure_threshold = 3;
  friend bool operator==(const Probe&, const Probe&) = default;
};

// maxSurge / maxUnavailable: an absolute count or a percentage of replicas.
struct IntOrPercent {
  int value = 0;
  bool percent = false;
  // Resolved against `replicas` (percentages round up for surge, down for
  // unavailable, as Kubernetes does).
  int Resolve(int replicas, bool round_up) const;
  friend bool operator==(const IntOrPercent&, const IntOrPercent&) = default;
};

struct AppFile {
  std::string path;     // absolute, inside the container
  std::string content;  // the file's bytes
  uint32_t mode = 0644;
  friend bool operator==(const AppFile&, const AppFile&) = default;
};

// The label every App replica's pod carries (its App's name).
inline constexpr char kAppPodLabel[] = "loom.io/app";

struct App {
  ObjectMeta meta;
  int replicas = 1;
  std::string image;
  std::vector<std::string> command;  // empty: the image's
  std::vector<EnvVar> env;
  std::string working_dir;
  std::vector<ContainerPort> ports;
  double cpus = 0;           // resources.limits.cpu; 0: unlimited
  int64_t memory_bytes = 0;  // resources.limits.memory; 0: unlimited
  int64_t pids = 0;          // resources.limits.pids; 0: unlimited
  std::optional<Probe> readiness;
  std::optional<Probe> liveness;
  IntOrPercent max_surge{25, true};
  IntOrPercent max_unavailable{25, true};
  std::vector<AppFile> config_files;
  std::vector<AppFile> secret_files;  // stored 0600, never logged, hidden by get
  // Removing a replica (scale down, rollout, move, delete): it first leaves the
  // endpoints (pod not ready: DNS, LB and ingress stop picking it, open connections
  // drain) for drainSeconds, then gets SIGTERM, and SIGKILL after
  // terminationGracePeriodSeconds. Neither changes the template hash.
  int drain_seconds = 2;
  int termination_grace_seconds = 30;

  friend bool operator==(const App&, const App&) = default;
};

// "500m" -> 0.5, "2" -> 2, 1.5 -> 1.5.
absl::StatusOr<double> ParseCpuQuantity(const Json& value, std::string_view field);
// "64Mi", "1G", "512k", 1048576 -> bytes.
absl::StatusOr<int64_t> ParseMemoryQuantity(const Json& value, std::string_view field);

absl::StatusOr<App> AppFromManifest(const Json& manifest);
// The manifest back; secret file contents are replaced by "<hidden>" unless
// `show_secrets`.
Json AppToManifest(const App& app, bool show_secrets = false);

// A digest of everything that makes a replica what it is (image, command, env,
// ports, resources, probes, files; not replicas or strategy): a spec change that
// needs new containers changes it. Hex, 16 characters.
std::string AppTemplateHash(const App& app);

}  // namespace loom::model
