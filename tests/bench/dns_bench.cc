// Benchmark: dnsperf against loomd's DNS and against knotd serving the same zone of
// 10,000 services, each with one worker thread, in the same run, with the same query
// mix (80% A hits, 10% AAAA, 10% NXDOMAIN).
//
// loomd is the real agent: a one-node harness cluster (etcd in its own namespace),
// the services applied through `loomctl apply`, one ready pod per service written to
// etcd as another node's agent would, so the zone comes from the store watch exactly
// as in production. knotd runs in the same node namespace with the same A records,
// on the same address (another port).
// With two or more CPUs each server's UDP worker thread runs alone on CPU 0 (loomd's
// is named dns-udp-0; knotd's is the thread that does the work of a warm-up burst),
// and every other thread of both servers, etcd, this process and dnsperf run on
// CPU 1: the worker each server answers with has a CPU to itself, as the issue's
// "one worker thread each" asks. The rounds alternate between the servers; the
// figures are medians over the rounds. Each round's latency at the fixed 20k q/s is
// measured in 2 s slices alternating between the servers and pooled per server, so
// that both meet the same moments of the machine. Beside queries/s and p99, for each server
// during its throughput run: its worker's CPU time per answered query (from
// /proc/<pid>/task/<tid>/schedstat) and how often the worker went to sleep (its
// voluntary context switches), the context switches of the whole machine per query,
// the CPU time of the server's other threads, and how busy each CPU was: when
// dnsperf's CPU is what limits throughput, that is where the servers differ.
// --loomd-flag=F passes F to loomd (e.g. --loomd-flag=--dns-udp-coalesce=0s).
//
// Then, with the services loaded: milliseconds from a store write (a new service,
// a pod turning ready and unready) to the changed answer; the resident memory of
// loomd and knotd; and the heap of the zone structure alone at 10k and 100k
// services. --rounds=0 skips the dnsperf rounds, and with them the CPU pinning and
// the warm-up bursts (memory at 100k services: --services=100000 --rounds=0, about 5
// minutes, most of it loomctl apply).
//   bench_dns [--services=10000] [--seconds=10] [--rounds=3] [--loomd-flag=F]...
#include <malloc.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <random>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "agent/store/store.h"
#include "common/json.h"
#include "common/model/objects.h"
#include "common/net/netns.h"
#include "common/strings.h"
#include "dns/cluster_zone.h"
#include "tests/testing/cluster.h"
#include "tests/testing/command.h"
#include "tests/testing/dns_client.h"
#include "tests/testing/knot_server.h"
#include "tests/testing/test_pod.h"

namespace loom::dns {
namespace {

constexpr char kDnsIp[] = "169.254.20.10";
constexpr int kKnotPort = 5300;

struct Result {
  double qps = 0;
  double worker_us = 0;  // CPU time of the server's UDP worker per answered query
  double avg_ms = 0;
  double fixed_rate_waits = 0;  // loomd's coalescing waits during the fixed-rate run
  double p50_ms = 0;  // these three at the fixed rate
  double p90_ms = 0;
  double p99_ms = 0;
  double others_ms = 0;       // CPU time of the server's other threads meanwhile
  double sleeps_per_kq = 0;   // times the worker went to sleep, per 1000 queries
  double switches_per_q = 0;  // context switches on the whole machine, per query
  double busy[2] = {0, 0};    // % of CPU 0 and CPU 1 not idle during the throughput run
  std::string lost;
};

std::string LoadAverage() {
  std::ifstream in("/proc/loadavg");
  std::string a, b, c;
  in >> a >> b >> c;
  return StrCat(a, " ", b, " ", c);
}

double Field(const std::string& out, const std::string& label) {
  size_t p = out.find(label);
  if (p == std::string::npos) return 0;
  return std::strtod(out.c_str() + p + label.size(), nullptr);
}

// dnsperf, pinned to `cpu` when given.
std::vector<std::string> Dnsperf(int cpu, const std::string& ip, int port,
                                 std::vector<std::string> args) {
  std::vector<std::string> argv;
  if (cpu >= 0) argv = {"taskset", "-c", std::to_string(cpu)};
  for (std::string a : {"dnsperf", "-s"}) argv.push_back(a);
  argv.push_back(ip);
  argv.push_back("-p");
  argv.push_back(std::to_string(port));
  argv.insert(argv.end(), args.begin(), args.end());
  return argv;
}

// Nanoseconds thread `tid` of `pid` has run (0 when unknown).
uint64_t ThreadCpuNs(pid_t pid, pid_t tid) {
  if (tid <= 0) return 0;
  std::ifstream in(StrCat("/proc/", pid, "/task/", tid, "/schedstat"));
  uint64_t ns = 0;
  in >> ns;
  return ns;
}

// The threads of `pid` and the CPU time (ticks) each has used so far.
std::map<pid_t, long> ThreadTicks(pid_t pid) {
  std::map<pid_t, long> out;
  std::error_code ec;
  for (const auto& task : std::filesystem::directory_iterator(StrCat("/proc/", pid, "/task"), ec)) {
    std::ifstream in(task.path() / "stat");
    std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    size_t paren = stat.rfind(')');
    if (paren == std::string::npos) continue;
    std::istringstream fields(stat.substr(paren + 2));
    std::string f;
    long utime = 0, stime = 0;
    for (int i = 3; i <= 15 && fields >> f; ++i) {  // field 3 is the state
      if (i == 14) utime = std::atol(f.c_str());
      if (i == 15) stime = std::atol(f.c_str());
    }
    out[static_cast<pid_t>(std::atol(task.path().filename().c_str()))] = utime + stime;
  }
  return out;
}

// The `field` line of /proc/<path> ("ctxt" of stat, "voluntary_ctxt_switches:" of a
// task's status), 0 when absent.
uint64_t ProcCounter(const std::string& path, const std::string& field) {
  std::ifstream in(StrCat("/proc/", path));
  std::string key;
  uint64_t v = 0;
  while (in >> key) {
    if (key == field && in >> v) return v;
  }
  return 0;
}

// Busy and total jiffies of CPU `cpu` so far (from /proc/stat).
std::pair<uint64_t, uint64_t> CpuJiffies(int cpu) {
  std::ifstream in("/proc/stat");
  std::string line;
  const std::string label = StrCat("cpu", cpu, " ");
  while (std::getline(in, line)) {
    if (line.rfind(label, 0) != 0) continue;
    std::istringstream f(line.substr(label.size()));
    uint64_t v = 0, total = 0, idle = 0;
    for (int i = 0; f >> v; ++i) {
      total += v;
      if (i == 3 || i == 4) idle += v;  // idle, iowait
    }
    return {total - idle, total};
  }
  return {0, 0};
}

// Throughput (as fast as the server answers), then latency at a fixed rate, with
// per-query timings.
// loomd's loom_dns_udp_coalesce_waits_total (0 when unreadable).
double CoalesceWaits() {
  auto m = testing::RunCommand({"curl", "-s", "http://127.0.0.1:9464/metrics"});
  return m.ok() ? Field(m->out, "\nloom_dns_udp_coalesce_waits_total ") : 0;
}

Result Measure(int cpu, const std::string& ip, int port, const std::string& queries,
               int seconds, pid_t pid, pid_t worker) {
  Result r;
  const uint64_t cpu_before = ThreadCpuNs(pid, worker);
  const std::map<pid_t, long> ticks_before = ThreadTicks(pid);
  const std::string worker_status = StrCat(pid, "/task/", worker, "/status");
  const uint64_t sleeps_before = ProcCounter(worker_status, "voluntary_ctxt_switches:");
  const uint64_t switches_before = ProcCounter("stat", "ctxt");
  const std::pair<uint64_t, uint64_t> jiffies_before[2] = {CpuJiffies(0), CpuJiffies(1)};
  auto tp = testing::RunCommand(Dnsperf(cpu, ip, port,
                                        {"-d", queries, "-c", "4", "-T", "1", "-l",
                                         std::to_string(seconds), "-q", "200"}),
                                absl::Seconds(seconds + 30));
  if (!tp.ok()) return r;
  const double switches = static_cast<double>(ProcCounter("stat", "ctxt") - switches_before);
  for (int c = 0; c < 2; ++c) {
    auto [busy, total] = CpuJiffies(c);
    if (total > jiffies_before[c].second) {
      r.busy[c] = 100.0 * static_cast<double>(busy - jiffies_before[c].first) /
                  static_cast<double>(total - jiffies_before[c].second);
    }
  }
  const double sleeps =
      static_cast<double>(ProcCounter(worker_status, "voluntary_ctxt_switches:") - sleeps_before);
  for (const auto& [tid, ticks] : ThreadTicks(pid)) {
    auto before = ticks_before.find(tid);
    if (tid == worker) continue;
    r.others_ms += static_cast<double>(ticks - (before == ticks_before.end() ? 0 : before->second)) *
                   1000 / static_cast<double>(sysconf(_SC_CLK_TCK));
  }
  r.qps = Field(tp->out, "Queries per second:");
  double completed = Field(tp->out, "Queries completed:");
  if (worker > 0 && completed > 0) {
    r.worker_us = static_cast<double>(ThreadCpuNs(pid, worker) - cpu_before) / 1000 / completed;
    r.sleeps_per_kq = sleeps * 1000 / completed;
    r.switches_per_q = switches / completed;
  }
  r.avg_ms = Field(tp->out, "Average Latency (s):") * 1000;
  size_t lost = tp->out.find("Queries lost:");
  if (lost != std::string::npos) {
    r.lost = tp->out.substr(lost + 13, tp->out.find('\n', lost) - lost - 13);
  }
  return r;
}

// Per-query latencies (seconds) of `seconds` at a fixed 20k q/s.
std::vector<double> FixedRate(int cpu, const std::string& ip, int port,
                              const std::string& queries, int seconds) {
  std::vector<double> samples;
  auto lat = testing::RunCommand(Dnsperf(cpu, ip, port,
                                         {"-d", queries, "-c", "4", "-T", "1", "-l",
                                          std::to_string(seconds), "-Q", "20000", "-v"}),
                                 absl::Seconds(seconds + 30));
  if (!lat.ok()) return samples;
  std::istringstream in(lat->out);
  std::string line;
  while (std::getline(in, line)) {
    if (line.size() < 2 || line[0] != '>') continue;
    size_t sp = line.rfind(' ');
    double v = 0;
    if (absl::SimpleAtod(ToAbsl(std::string_view(line).substr(sp + 1)), &v)) samples.push_back(v);
  }
  return samples;
}

// p50, p90 and p99 of `samples` into `r`.
void Percentiles(std::vector<double> samples, Result* r) {
  if (samples.empty()) return;
  std::sort(samples.begin(), samples.end());
  r->p50_ms = samples[samples.size() / 2] * 1000;
  r->p90_ms = samples[samples.size() * 9 / 10] * 1000;
  r->p99_ms = samples[samples.size() * 99 / 100] * 1000;
}

Result Median(const std::vector<Result>& rs) {
  auto mid = [&](auto field) {
    std::vector<double> v;
    for (const Result& r : rs) v.push_back(field(r));
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  Result m;
  m.qps = mid([](const Result& r) { return r.qps; });
  m.worker_us = mid([](const Result& r) { return r.worker_us; });
  m.avg_ms = mid([](const Result& r) { return r.avg_ms; });
  m.p99_ms = mid([](const Result& r) { return r.p99_ms; });
  m.others_ms = mid([](const Result& r) { return r.others_ms; });
  m.sleeps_per_kq = mid([](const Result& r) { return r.sleeps_per_kq; });
  m.switches_per_q = mid([](const Result& r) { return r.switches_per_q; });
  m.lost = rs.back().lost;
  return m;
}

std::string ThreadName(pid_t pid, pid_t tid) {
  std::ifstream in(StrCat("/proc/", pid, "/task/", tid, "/comm"));
  std::string name;
  std::getline(in, name);
  return name;
}

bool PinThread(pid_t tid, int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  return sched_setaffinity(tid, sizeof set, &set) == 0;
}

// Pins `worker` alone on CPU 0 and every other thread of `pid` on CPU 1.
void PinWorker(pid_t pid, pid_t worker) {
  for (const auto& [tid, ticks] : ThreadTicks(pid)) PinThread(tid, tid == worker ? 0 : 1);
}

// The thread of `pid` that used the most CPU while `load` ran.
pid_t BusiestThread(pid_t pid, const std::function<void()>& load) {
  std::map<pid_t, long> before = ThreadTicks(pid);
  load();
  pid_t best = -1;
  long most = -1;
  for (const auto& [tid, ticks] : ThreadTicks(pid)) {
    long used = ticks - before[tid];
    if (used > most) {
      most = used;
      best = tid;
    }
  }
  return best;
}

long RssKb(pid_t pid) {
  std::ifstream in(pid == 0 ? "/proc/self/statm" : StrCat("/proc/", pid, "/statm"));
  long pages = 0, rss = 0;
  in >> pages >> rss;
  return rss * sysconf(_SC_PAGESIZE) / 1024;
}

// Bytes the heap holds now.
size_t HeapBytes() {
  struct mallinfo2 m = mallinfo2();
  return m.uordblks + m.hblkhd;  // in arenas, and mmapped
}

// The i-th address after `base` (host byte order), dotted: unique and valid for any i
// the benchmark uses (10.96.0.0/12 holds a million services, 10.244.100.0 up a
// million pods).
std::string Address(uint32_t base, int i) {
  uint32_t a = base + 1 + static_cast<uint32_t>(i);
  return StrCat(a >> 24, ".", (a >> 16) & 255, ".", (a >> 8) & 255, ".", a & 255);
}

model::ServiceTable ZoneServices(int n) {
  std::vector<model::Service> out;
  out.reserve(n);
  for (int i = 0; i < n; ++i) {
    model::Service s;
    s.meta.name = StrCat("svc", i);
    s.cluster_ip = Address(0x0A600000, i);
    s.selector = {{"app", s.meta.name}};
    s.ports = {{"http", 80, 8080, "", model::Protocol::kTcp, 0}};
    out.push_back(std::move(s));
  }
  return model::ServiceTable::Of(out);
}

std::string PodJson(const std::string& name, const std::string& app, const std::string& ip,
                    bool ready) {
  return model::PodToJson(testing::TestPod(name, app, {ip}, ready)).dump();
}

// Milliseconds until `want` holds for the A records of `name` (5000 if never).
double TimeUntil(testing::DnsClient& client, absl::Time since, const std::string& name,
                 size_t want) {
  absl::Time deadline = since + absl::Seconds(5);
  while (absl::Now() < deadline) {
    if (client.A(name).size() == want) return absl::ToDoubleMilliseconds(absl::Now() - since);
    absl::SleepFor(absl::Microseconds(500));
  }
  return 5000;
}

int Main(int argc, char** argv) {
  int n = 10000, seconds = 10, rounds = 3;
  std::vector<std::string> loomd_flags = {"--dns-workers=1", "--dns-ttl=5s"};
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind("--services=", 0) == 0) n = std::max(1, std::atoi(a.c_str() + 11));
    if (a.rfind("--seconds=", 0) == 0) seconds = std::max(1, std::atoi(a.c_str() + 10));
    if (a.rfind("--rounds=", 0) == 0) rounds = std::max(0, std::atoi(a.c_str() + 9));
    if (a.rfind("--loomd-flag=", 0) == 0) loomd_flags.push_back(a.substr(13));
  }
  if (geteuid() != 0) {
    std::fprintf(stderr, "bench_dns: needs root (namespaces)\n");
    return 77;
  }
  testing::SweepStaleNamespaces();
  testing::ClusterOptions co;
  co.nodes = 1;
  co.extra_loomd_flags = loomd_flags;
  auto cluster_or = testing::Cluster::Create(co);
  if (!cluster_or.ok()) {
    std::fprintf(stderr, "cluster: %s\n", cluster_or.status().ToString().c_str());
    return 1;
  }
  std::unique_ptr<testing::Cluster> cluster = *std::move(cluster_or);
  const testing::Cluster::Node& node = cluster->node(0);
  // From here on this process lives in the node's namespace: the etcd client, knotd,
  // dnsperf and the polling client all see what loomd sees. It goes back before the
  // cluster is torn down (the teardown kills whatever runs in the node's namespace).
  auto home = net::NetnsFd::OpenCurrent();
  auto ns = net::NetnsFd::OpenNamed(node.netns);
  if (!home.ok() || !ns.ok() || setns(ns->get(), CLONE_NEWNET) != 0) {
    std::fprintf(stderr, "cannot enter %s\n", node.netns.c_str());
    return 1;
  }
  struct GoHome {
    int fd;
    ~GoHome() { (void)setns(fd, CLONE_NEWNET); }
  } go_home{home->get()};
  auto store_or = store::OpenStore(cluster->StoreUrl(), StrCat(node.dir, "/bench-store"));
  if (!store_or.ok()) {
    std::fprintf(stderr, "etcd: %s\n", store_or.status().ToString().c_str());
    return 1;
  }
  std::unique_ptr<store::Store> store = *std::move(store_or);

  // The services, through loomctl (loomd allocates each ClusterIP by CAS), plus a
  // headless "db" whose pod readiness the update test flips.
  std::string manifests = StrCat(node.dir, "/services.yaml");
  {
    std::ofstream m(manifests);
    for (int i = 0; i < n; ++i) {
      m << "kind: Service\nmetadata: {name: svc" << i << "}\nspec:\n  selector: {app: svc" << i
        << "}\n  ports: [{name: http, port: 80, targetPort: 8080}]\n---\n";
    }
    m << "kind: Service\nmetadata: {name: db}\nspec:\n  clusterIP: None\n  selector: {app: db}\n";
  }
  absl::Time t0 = absl::Now();
  auto applied = testing::RunCommand(
      {StrCat(LOOM_BIN_DIR, "/loomctl"), StrCat("--socket=", node.api_socket), "apply", "-f",
       manifests},
      absl::Minutes(10));
  if (!applied.ok() || applied->exit_code != 0) {
    std::fprintf(stderr, "apply: %s\n", applied.ok() ? applied->err.c_str()
                                                     : applied.status().ToString().c_str());
    return 1;
  }
  double apply_s = absl::ToDoubleSeconds(absl::Now() - t0);
  // One ready pod per service, 100 to a transaction.
  t0 = absl::Now();
  for (int i = 0; i < n; i += 100) {
    store::Txn txn;
    for (int j = i; j < std::min(n, i + 100); ++j) {
      txn.success.push_back(store::Op::Put(
          StrCat("/loom/pods/node1/c-svc", j, "-0"),
          PodJson(StrCat("svc", j, "-0"), StrCat("svc", j), Address(0x0AF46400, j), true)));
    }
    if (!store->Commit(txn).ok()) {
      std::fprintf(stderr, "writing pods failed\n");
      return 1;
    }
  }
  for (int j = 0; j < 3; ++j) {
    (void)store->Put(StrCat("/loom/pods/node1/c-db-", j),
                     PodJson(StrCat("db-", j), "db", StrCat("10.244.99.", j + 1), j < 2));
  }
  double pods_s = absl::ToDoubleSeconds(absl::Now() - t0);

  // The ClusterIPs loomd allocated, for Knot's copy of the zone.
  auto listed = testing::RunCommand({StrCat(LOOM_BIN_DIR, "/loomctl"),
                                     StrCat("--socket=", node.api_socket), "get", "services",
                                     "-o", "json"},
                                    absl::Minutes(2));
  auto list = listed.ok() ? ParseJson(listed->out) : absl::StatusOr<Json>(listed.status());
  if (!list.ok()) {
    std::fprintf(stderr, "get services: %s\n", list.status().ToString().c_str());
    return 1;
  }
  std::string zone = "$TTL 5\n@ SOA ns.dns.cluster.local. hostmaster.cluster.local. 1 7200 1800 "
                     "86400 5\n@ NS ns.dns\nns.dns A 10.96.0.10\ndns-version TXT \"1.1.0\"\n"
                     "db.default.svc A 10.244.99.1\ndb.default.svc A 10.244.99.2\n";
  int with_ip = 0;
  for (const Json& item : (*list)["items"]) {
    std::string ip = item["spec"].value("clusterIP", "");
    std::string name = item["metadata"].value("name", "");
    if (ip.empty() || ip == "None") continue;
    StrAppend(&zone, name, ".default.svc A ", ip, "\n");
    ++with_ip;
  }
  testing::DnsClient client("", kDnsIp);
  // Loaded once the last service answers and db has its two ready endpoints.
  if (TimeUntil(client, absl::Now(), StrCat("svc", n - 1, ".default.svc.cluster.local"), 1) >= 5000 ||
      TimeUntil(client, absl::Now(), "db.default.svc.cluster.local", 2) >= 5000) {
    std::fprintf(stderr, "loomd never answered for the loaded services\n");
    return 1;
  }

  std::string queries = StrCat(node.dir, "/queries.txt");
  {
    std::ofstream q(queries);
    std::mt19937 rng(42);
    for (int i = 0; i < 100000; ++i) {
      int k = static_cast<int>(rng() % 10);
      int svc = static_cast<int>(rng() % n);
      if (k < 8) q << "svc" << svc << ".default.svc.cluster.local A\n";
      else if (k == 8) q << "svc" << svc << ".default.svc.cluster.local AAAA\n";
      else q << "nosuch" << svc << ".default.svc.cluster.local A\n";
    }
  }
  testing::KnotOptions ko;
  ko.listen_ip = kDnsIp;  // the same address as loomd's (a /32 on lo), another port
  ko.port = kKnotPort;
  ko.zones["cluster.local"] = zone;
  auto knot = testing::KnotServer::Start(ko);
  if (!knot.ok()) {
    std::fprintf(stderr, "knotd: %s\n", knot.status().ToString().c_str());
    return 1;
  }
  {
    // loomd's DNS port skips connection tracking (Loom's nft table, with the overlay);
    // knotd's port gets the same exemption, so both pay the same per packet. The table
    // goes with the node's namespace.
    std::string rules = StrCat(node.dir, "/knot-notrack.nft");
    std::ofstream(rules) << "table ip loombench {\n"
                         << "  chain in { type filter hook prerouting priority raw; policy accept;\n"
                         << "    ip daddr " << kDnsIp << " udp dport " << kKnotPort << " notrack\n  }\n"
                         << "  chain out { type filter hook output priority raw; policy accept;\n"
                         << "    ip saddr " << kDnsIp << " udp sport " << kKnotPort << " notrack\n"
                         << "    ip daddr " << kDnsIp << " udp dport " << kKnotPort << " notrack\n  }\n}\n";
    absl::StatusOr<std::string> added = cluster->ExecInNode(0, {"nft", "-f", rules});
    if (!added.ok()) {
      std::fprintf(stderr, "nft (knotd notrack): %s\n", std::string(added.status().message()).c_str());
      return 1;
    }
  }
  const pid_t loomd_pid = node.loomd->pid();
  const pid_t knot_pid = (*knot)->pid();
  int client_cpu = -1;
  pid_t knot_worker = -1;
  pid_t loomd_worker = -1;
  std::string pinning = rounds > 0 ? "unpinned (one CPU)" : "unpinned (no rounds)";
  // Pinning, and the warm-up bursts that find the workers, serve the rounds only.
  if (rounds > 0 && sysconf(_SC_NPROCESSORS_ONLN) >= 2) {
    client_cpu = 1;
    PinThread(0, 1);  // this process (and what it starts from now on)
    if (cluster->etcd_pid() > 0) PinWorker(cluster->etcd_pid(), -1);
    // A warm-up burst for each server: caches filled, and knotd's worker found.
    auto burst = [&](const std::string& ip, int port) {
      return [&, ip, port] {
        (void)testing::RunCommand(Dnsperf(client_cpu, ip, port,
                                          {"-d", queries, "-c", "4", "-T", "1", "-l", "2"}),
                                  absl::Seconds(30));
      };
    };
    knot_worker = BusiestThread(knot_pid, burst(kDnsIp, kKnotPort));
    for (const auto& [tid, ticks] : ThreadTicks(loomd_pid)) {
      if (ThreadName(loomd_pid, tid) == "dns-udp-0") loomd_worker = tid;
    }
    pid_t busiest = BusiestThread(loomd_pid, burst(kDnsIp, 53));
    if (loomd_worker < 0 || knot_worker < 0) {
      std::fprintf(stderr, "cannot find the UDP worker threads (loomd %d, knotd %d)\n",
                   loomd_worker, knot_worker);
      return 1;
    }
    if (busiest != loomd_worker) {
      std::fprintf(stderr, "loomd's busiest thread under load is %d (%s), not dns-udp-0 (%d)\n",
                   busiest, ThreadName(loomd_pid, busiest).c_str(), loomd_worker);
      return 1;
    }
    PinWorker(loomd_pid, loomd_worker);
    PinWorker(knot_pid, knot_worker);
    pinning = StrCat("CPU 0: loomd's dns-udp-0 (tid ", loomd_worker, ") or knotd's UDP worker (tid ",
                     knot_worker, "), nothing else; CPU 1: dnsperf, every other thread of loomd (",
                     ThreadTicks(loomd_pid).size() - 1, ") and knotd (",
                     ThreadTicks(knot_pid).size() - 1, "), etcd, the bench");
  }

  std::printf("DNS benchmark: %d services (%d with a ClusterIP) in loomd (etcd store) and knotd; "
              "dnsperf -c4 -T1, %d alternating rounds of %d s per server, one UDP worker each; "
              "medians\npinning: %s\n",
              n, with_ip, rounds, seconds, pinning.c_str());
  std::printf("loading: apply of %d services %.1f s, %d pods %.1f s\n", n + 1, apply_s, n + 3,
              pods_s);
  std::printf("load average before the rounds: %s\n", LoadAverage().c_str());
  std::vector<Result> ks, ls;
  for (int r = 0; r < rounds; ++r) {
    ks.push_back(
        Measure(client_cpu, kDnsIp, kKnotPort, queries, seconds, knot_pid, knot_worker));
    ls.push_back(
        Measure(client_cpu, kDnsIp, 53, queries, seconds, loomd_pid, loomd_worker));
    // Latency at the fixed rate in slices that alternate between the servers, so that
    // both meet the same moments of the machine; each server's slices pooled.
    std::vector<double> k_samples, l_samples;
    const int slices = std::max(1, seconds / 2);
    const int slice_s = std::max(1, seconds / slices);
    const double waits_before = CoalesceWaits();
    for (int i = 0; i < slices; ++i) {
      std::vector<double> k = FixedRate(client_cpu, kDnsIp, kKnotPort, queries, slice_s);
      k_samples.insert(k_samples.end(), k.begin(), k.end());
      std::vector<double> l = FixedRate(client_cpu, kDnsIp, 53, queries, slice_s);
      l_samples.insert(l_samples.end(), l.begin(), l.end());
    }
    ls.back().fixed_rate_waits = CoalesceWaits() - waits_before;
    Percentiles(std::move(k_samples), &ks.back());
    Percentiles(std::move(l_samples), &ls.back());
    auto line = [](const Result& x) {
      return absl::StrFormat("%.0f q/s, p50/90/99 %.3f/%.3f/%.3f ms, worker %.2f us/q, "
                             "%.1f sleeps/kq, CPU busy %.0f%%/%.0f%%",
                             x.qps, x.p50_ms, x.p90_ms, x.p99_ms, x.worker_us, x.sleeps_per_kq,
                             x.busy[0], x.busy[1]);
    };
    std::printf("  round %d: knotd %s; loomd %s, %.0f coalescing waits at 20k q/s\n", r + 1,
                line(ks.back()).c_str(), line(ls.back()).c_str(), ls.back().fixed_rate_waits);
    std::fflush(stdout);
  }
  if (rounds > 0) {
    Result k = Median(ks);
    Result l = Median(ls);
    std::printf("%-8s %10s %8s %8s %9s %9s %11s %11s  %s\n", "server", "queries/s", "avg ms",
                "p99 ms", "worker us", "sleeps", "switches", "others ms", "lost");
    std::printf("%-8s %10s %8s %8s %9s %9s %11s %11s\n", "", "", "", "", "/query", "/1k q",
                "/query", "in a run");
    for (const auto& [name, x] : {std::pair<const char*, const Result&>{"knotd", k}, {"loomd", l}}) {
      std::printf("%-8s %10.0f %8.3f %8.3f %9.2f %9.1f %11.3f %11.0f  %s\n", name, x.qps, x.avg_ms,
                  x.p99_ms, x.worker_us, x.sleeps_per_kq, x.switches_per_q, x.others_ms,
                  x.lost.c_str());
    }
    std::printf("ratio loomd/knotd: %.2fx queries/s, p99 %.2fx (at 20k q/s), worker CPU per "
                "query %.2fx\n",
                k.qps > 0 ? l.qps / k.qps : 0, k.p99_ms > 0 ? l.p99_ms / k.p99_ms : 0,
                k.worker_us > 0 ? l.worker_us / k.worker_us : 0);
    std::printf("load average after the rounds: %s\n", LoadAverage().c_str());
  }
  std::printf("resident memory with %d services: knotd %ld MiB (the zone's %d A records); "
              "loomd %ld MiB (everything: store cache, %d pods, controllers, zone)\n",
              n, RssKb(knot_pid) / 1024, with_ip, RssKb(loomd_pid) / 1024, n + 3);
  knot->reset();

  // Store write -> answer, with the 10k services loaded.
  constexpr int kTrials = 10;
  std::vector<double> fresh, ready, unready;
  for (int i = 0; i < kTrials; ++i) {
    std::string name = StrCat("fresh", i);
    std::string file = StrCat(node.dir, "/", name, ".yaml");
    std::ofstream(file) << "kind: Service\nmetadata: {name: " << name
                        << "}\nspec: {ports: [{port: 80}]}\n";
    auto r = testing::RunCommand({StrCat(LOOM_BIN_DIR, "/loomctl"),
                                  StrCat("--socket=", node.api_socket), "apply", "-f", file});
    absl::Time written = absl::Now();  // loomctl returns once the store holds it
    if (!r.ok() || r->exit_code != 0) return 1;
    fresh.push_back(TimeUntil(client, written, StrCat(name, ".default.svc.cluster.local"), 1));
    (void)store->Put("/loom/pods/node1/c-db-2", PodJson("db-2", "db", "10.244.99.3", true));
    written = absl::Now();
    ready.push_back(TimeUntil(client, written, "db.default.svc.cluster.local", 3));
    (void)store->Put("/loom/pods/node1/c-db-2", PodJson("db-2", "db", "10.244.99.3", false));
    written = absl::Now();
    unready.push_back(TimeUntil(client, written, "db.default.svc.cluster.local", 2));
  }
  auto summary = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return absl::StrFormat("median %.1f ms, max %.1f ms", v[v.size() / 2], v.back());
  };
  std::printf("store write -> answer at %d services (%d trials): new service %s; pod ready %s; "
              "pod unready %s\n",
              n, kTrials, summary(fresh).c_str(), summary(ready).c_str(), summary(unready).c_str());

  // The zone structure alone: the heap it holds (the services it is built from are
  // the controller's, shared with the state, and not counted).
  for (int count : {10000, 100000}) {
    model::ServiceTable svcs = ZoneServices(count);
    size_t before = HeapBytes();
    auto z = ClusterZone::Build(ZoneOptions{}, svcs);
    size_t used = HeapBytes() - before;
    std::printf("zone memory: %d services: %.1f MiB (%zu names)\n", count,
                static_cast<double>(used) / (1 << 20), z.ok() ? (*z)->name_count() : 0);
  }
  return 0;
}

}  // namespace
}  // namespace loom::dns

int main(int argc, char** argv) { return loom::dns::Main(argc, argv); }
