// Benchmark: wrk (50 connections) against Loom's ingress proxy, haproxy and nginx as
// reverse proxies, each with one worker, in front of the same backend (nginx with one
// worker answering a small static response), in the same run; plain HTTP and TLS.
// The proxies run on CPU 1, the backend and wrk on CPU 0 (taskset), so that each
// proxy gets the same core. Prints req/s, p99 and Loom's ratio to each peer.
//   bench_ingress [--seconds=10] [--rounds=3] [--connections=50] [--targets=loom,haproxy,...]
#include <sched.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>

#include "absl/strings/numbers.h"
#include "common/strings.h"
#include "lb/ingress/proxy.h"
#include "tests/testing/command.h"
#include "tests/testing/free_port.h"
#include "tests/testing/subprocess.h"

namespace loom::lb::ingress {
namespace {

using testing::RunCommand;
using testing::Subprocess;

struct Result {
  double rps = 0;
  double p99_ms = 0;
  uint64_t errors = 0;
};

double ToMs(const std::string& v) {
  double x = std::strtod(v.c_str(), nullptr);
  if (v.find("us") != std::string::npos) return x / 1000;
  if (v.find("ms") != std::string::npos) return x;
  if (v.find('s') != std::string::npos) return x * 1000;
  return x;
}

Result Wrk(const std::string& url, int seconds, int connections) {
  auto r = RunCommand({"taskset", "-c", "0", "wrk", "-t1", StrCat("-c", connections), StrCat("-d", seconds, "s"),
                       "--latency", url},
                      absl::Seconds(seconds + 30));
  Result out;
  if (!r.ok() || r->exit_code != 0) {
    fprintf(stderr, "wrk %s failed: %s\n", url.c_str(), r.ok() ? r->err.c_str() : std::string(r.status().message()).c_str());
    return out;
  }
  const std::string& s = r->out;
  size_t p = s.find("Requests/sec:");
  if (p != std::string::npos) out.rps = std::strtod(s.c_str() + p + 13, nullptr);
  p = s.find(" 99%");
  if (p != std::string::npos) {
    size_t b = s.find_first_not_of(' ', p + 4);
    size_t e = s.find('\n', b);
    out.p99_ms = ToMs(s.substr(b, e - b));
  }
  p = s.find("Non-2xx or 3xx responses:");
  if (p != std::string::npos) out.errors += std::strtoull(s.c_str() + p + 25, nullptr, 10);
  p = s.find("Socket errors:");
  if (p != std::string::npos) out.errors += 1;
  return out;
}

void Write(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

int Port() { return *testing::PickFreePort(); }

int Main(int argc, char** argv) {
  int seconds = 10, rounds = 3, connections = 50;
  std::string only;  // --targets=loom,haproxy-tls,...: run only these
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind("--targets=", 0) == 0) only = "," + a.substr(10) + ",";
    if (a.rfind("--seconds=", 0) == 0) seconds = std::atoi(a.c_str() + 10);
    if (a.rfind("--rounds=", 0) == 0) rounds = std::atoi(a.c_str() + 9);
    if (a.rfind("--connections=", 0) == 0) connections = std::atoi(a.c_str() + 14);
  }
  for (const char* bin : {"wrk", "haproxy", "nginx", "taskset", "openssl"}) {
    auto r = RunCommand({"sh", "-c", StrCat("command -v ", bin)});
    if (!r.ok() || r->exit_code != 0) {
      fprintf(stderr, "skipped: %s is not installed\n", bin);
      return 77;
    }
  }
  char tmpl[] = "/tmp/ingress-bench-XXXXXX";
  std::string dir = mkdtemp(tmpl);
  auto cleanup = [&] { std::filesystem::remove_all(dir); };

  // The certificate every proxy serves.
  auto cert = RunCommand({"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                          "-nodes", "-days", "1", "-subj", "/CN=bench.test", "-keyout", dir + "/tls.key", "-out",
                          dir + "/tls.crt"});
  if (!cert.ok() || cert->exit_code != 0) {
    fprintf(stderr, "openssl failed\n");
    cleanup();
    return 1;
  }
  auto read = [](const std::string& p) {
    std::ifstream in(p);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  std::string crt = read(dir + "/tls.crt"), key = read(dir + "/tls.key");
  Write(dir + "/combined.pem", crt + key);

  int backend_port = Port();
  // One process (no master): nothing outlives the bench, even when it is killed
  // (the child gets SIGKILL with its parent); the process is the one worker.
  std::string nginx_common =
      StrCat("worker_processes 1;\ndaemon off;\nmaster_process off;\nerror_log ", dir, "/nginx-error.log;\npid ");
  Write(dir + "/backend.conf",
        StrCat(nginx_common, dir, "/backend.pid;\nevents { worker_connections 4096; }\nhttp {\n access_log off;\n",
               " keepalive_requests 1000000;\n client_body_temp_path ", dir, ";\n",
               " server { listen 127.0.0.1:", backend_port, " reuseport;\n",
               "  location / { return 200 \"hello from the backend\\n\"; } }\n}\n"));
  int loom_port = Port(), loom_tls = Port(), ha_port = Port(), ha_tls = Port(), ng_port = Port(), ng_tls = Port();
  Write(dir + "/haproxy.cfg",
        StrCat("global\n  nbthread 1\n  maxconn 4096\n  tune.ssl.default-dh-param 2048\n",
               "defaults\n  mode http\n  timeout connect 5s\n  timeout client 60s\n  timeout server 60s\n",
               "  option http-keep-alive\n  option forwardfor\n  http-reuse always\n",
               "frontend fe\n  bind 127.0.0.1:", ha_port, "\n  bind 127.0.0.1:", ha_tls, " ssl crt ", dir,
               "/combined.pem alpn http/1.1\n  default_backend be\n",
               "backend be\n  server s1 127.0.0.1:", backend_port, "\n"));
  Write(dir + "/proxy.conf",
        StrCat(nginx_common, dir, "/proxy.pid;\nevents { worker_connections 4096; }\nhttp {\n access_log off;\n",
               " keepalive_requests 1000000;\n client_body_temp_path ", dir, ";\n proxy_temp_path ", dir, ";\n",
               " upstream be { server 127.0.0.1:", backend_port, "; keepalive 128; }\n",
               " server { listen 127.0.0.1:", ng_port, ";\n  listen 127.0.0.1:", ng_tls, " ssl;\n",
               "  ssl_certificate ", dir, "/tls.crt;\n  ssl_certificate_key ", dir, "/tls.key;\n",
               "  location / { proxy_pass http://be; proxy_http_version 1.1;\n",
               "   proxy_set_header Connection \"\"; proxy_set_header Host $host;\n",
               "   proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for; } }\n}\n"));

  std::vector<std::unique_ptr<Subprocess>> procs;
  auto start = [&](std::vector<std::string> argv, const std::string& log) {
    auto p = Subprocess::Start(std::move(argv), {dir + "/" + log});
    if (p.ok()) procs.push_back(*std::move(p));
    return p.ok();
  };
  bool ok = start({"taskset", "-c", "0", "nginx", "-c", dir + "/backend.conf", "-p", dir}, "backend.log") &&
            start({"taskset", "-c", "1", "haproxy", "-f", dir + "/haproxy.cfg"}, "haproxy.log") &&
            start({"taskset", "-c", "1", "nginx", "-c", dir + "/proxy.conf", "-p", dir}, "nginx-proxy.log");
  if (!ok) {
    fprintf(stderr, "could not start the peers\n");
    cleanup();
    return 1;
  }

  // Loom's proxy in this process, its worker thread on CPU 1.
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(1, &set);
  sched_setaffinity(0, sizeof(set), &set);
  ProxyOptions o;
  o.http_host = o.https_host = "127.0.0.1";
  o.http_port = loom_port;
  o.https_port = loom_tls;
  o.workers = 1;
  IngressProxy proxy(o);
  if (absl::Status s = proxy.Start(); !s.ok()) {
    fprintf(stderr, "loom: %s\n", std::string(s.message()).c_str());
    cleanup();
    return 1;
  }
  CPU_ZERO(&set);
  CPU_SET(0, &set);
  CPU_SET(1, &set);
  sched_setaffinity(0, sizeof(set), &set);
  auto docs = ParseYamlDocuments(R"(
kind: Ingress
metadata: {name: bench, namespace: default}
spec:
  tls: [{secretName: bench}]
  defaultBackend: {service: {name: backend, port: {number: 80}}}
)");
  auto ing = IngressFromManifest(docs->at(0));
  ProxyConfig config;
  config.router = std::make_shared<Router>(Router::Build(std::vector<Ingress>{*ing}));
  config.backends["default/backend:80"] = {{"127.0.0.1", static_cast<uint16_t>(backend_port)}};
  config.certificates["default/bench"] = {crt, key};
  if (!proxy.Update(config).empty()) fprintf(stderr, "loom: certificate not loaded\n");
  sleep(1);  // the peers bind

  struct Target {
    std::string name, url;
  };
  std::vector<Target> targets = {
      {"loom", StrCat("http://127.0.0.1:", loom_port, "/")},
      {"haproxy", StrCat("http://127.0.0.1:", ha_port, "/")},
      {"nginx", StrCat("http://127.0.0.1:", ng_port, "/")},
      {"loom-tls", StrCat("https://127.0.0.1:", loom_tls, "/")},
      {"haproxy-tls", StrCat("https://127.0.0.1:", ha_tls, "/")},
      {"nginx-tls", StrCat("https://127.0.0.1:", ng_tls, "/")},
  };
  if (!only.empty()) {
    std::erase_if(targets, [&](const Target& t) { return only.find("," + t.name + ",") == std::string::npos; });
  }
  // Interleaved rounds; the median of each.
  std::map<std::string, std::vector<Result>> results;
  for (const Target& t : targets) Wrk(t.url, 2, connections);  // warm up
  for (int r = 0; r < rounds; ++r) {
    double load[1];
    getloadavg(load, 1);
    printf("round %d (load %.2f):", r + 1, load[0]);
    for (const Target& t : targets) {
      Result x = Wrk(t.url, seconds, connections);
      printf(" %s %.0f/%.2fms", t.name.c_str(), x.rps, x.p99_ms);
      fflush(stdout);
      results[t.name].push_back(x);
    }
    printf("\n");
  }
  auto median = [&](const std::string& name) {
    std::vector<Result> v = results[name];
    std::sort(v.begin(), v.end(), [](const Result& a, const Result& b) { return a.rps < b.rps; });
    Result m = v[v.size() / 2];
    std::vector<double> p99;
    for (const Result& x : v) p99.push_back(x.p99_ms);
    std::sort(p99.begin(), p99.end());
    m.p99_ms = p99[p99.size() / 2];
    for (const Result& x : v) m.errors += x.errors;
    return m;
  };
  double load[3];
  getloadavg(load, 3);
  printf("\ningress bench: wrk -t1 -c%d, %d x %ds rounds (median), one worker each; load avg %.2f\n", connections,
         rounds, seconds, load[0]);
  printf("%-12s %12s %10s %8s\n", "proxy", "req/s", "p99 ms", "errors");
  for (const Target& t : targets) {
    Result m = median(t.name);
    printf("%-12s %12.0f %10.2f %8lu\n", t.name.c_str(), m.rps, m.p99_ms, static_cast<unsigned long>(m.errors));
  }
  for (std::string suffix : {"", "-tls"}) {
    if (!results.contains("loom" + suffix) || !results.contains("haproxy" + suffix) ||
        !results.contains("nginx" + suffix)) {
      continue;
    }
    Result l = median("loom" + suffix), h = median("haproxy" + suffix), n = median("nginx" + suffix);
    printf("loom%s / haproxy%s: req/s %.2fx, p99 %.2fx;  loom%s / nginx%s: req/s %.2fx, p99 %.2fx\n",
           suffix.c_str(), suffix.c_str(), l.rps / h.rps, l.p99_ms / h.p99_ms, suffix.c_str(), suffix.c_str(),
           l.rps / n.rps, l.p99_ms / n.p99_ms);
  }
  ProxyStats st = proxy.stats();
  printf("loom: %lu requests, %lu connections, %lu upstream connects\n", static_cast<unsigned long>(st.requests),
         static_cast<unsigned long>(st.connections), static_cast<unsigned long>(st.upstream_connects));
  proxy.Stop();
  for (auto& p : procs) {
    (void)p->Signal(SIGTERM);
    (void)p->Wait(absl::Seconds(5));
  }
  procs.clear();  // SIGKILL whatever is left, and reap
  cleanup();
  return 0;
}

}  // namespace
}  // namespace loom::lb::ingress

int main(int argc, char** argv) { return loom::lb::ingress::Main(argc, argv); }
