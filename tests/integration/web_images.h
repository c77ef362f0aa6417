// Images of a tiny web app for the App tests and benchmarks, built from the host's
// static busybox: web:v1 and web:v2 serve /www (index.html says "v1"/"v2", the CGI
// script /cgi-bin/id prints the replica's hostname) with `busybox httpd`; web:bad has
// no /www, so httpd exits and a readiness probe on /index.html never passes.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "tests/testing/cluster.h"

namespace loom::testing {

// Builds the three images under `dir` and imports them into every node of `cluster`.
absl::Status ImportWebImages(const std::string& dir, Cluster& cluster);

// An App of `replicas` replicas of `image` (httpd on 8080, readiness on /index.html
// every second, maxSurge 1, maxUnavailable 0, labels app=web).
std::string WebAppYaml(const std::string& image, int replicas);

// A ClusterIP Service `web` (port 80 -> 8080) and a headless one `web-pods`, both
// selecting app=web.
inline constexpr char kWebServicesYaml[] = R"(kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
kind: Service
metadata: {name: web-pods}
spec:
  type: Headless
  selector: {app: web}
  ports: [{name: http, port: 8080}]
)";

}  // namespace loom::testing
