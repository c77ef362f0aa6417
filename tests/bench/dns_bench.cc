// Benchmark: dnsperf against Loom's DNS server and against knotd serving the same
// zone of 10,000 services, each with one worker thread, in the same run, with the
// same query mix (80% A hits, 10% AAAA, 10% NXDOMAIN). Prints queries per second,
// latency, and Loom's ratio to Knot; then the memory a 10k and a 100k zone take.
//   bench_dns [--services=10000] [--seconds=10] [--rounds=3]
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <regex>
#include <sstream>

#include "absl/strings/numbers.h"
#include "common/strings.h"
#include "dns/server.h"
#include "tests/testing/command.h"
#include "tests/testing/knot_server.h"

namespace loom::dns {
namespace {

struct Result {
  double qps = 0;
  double avg_ms = 0;
  double p99_ms = 0;
  std::string lost;
};

std::vector<model::Service> Services(int n) {
  std::vector<model::Service> out;
  out.reserve(n);
  for (int i = 0; i < n; ++i) {
    model::Service s;
    s.meta.name = StrCat("svc", i);
    s.cluster_ip = StrCat("10.96.", i / 250, ".", i % 250 + 1);
    s.selector = {{"app", s.meta.name}};
    s.ports = {{"http", 80, 8080, "", model::Protocol::kTcp, 0}};
    out.push_back(std::move(s));
  }
  return out;
}

long RssKb() {
  std::ifstream in("/proc/self/statm");
  long pages = 0, rss = 0;
  in >> pages >> rss;
  return rss * sysconf(_SC_PAGESIZE) / 1024;
}

double Field(const std::string& out, const std::string& label) {
  size_t p = out.find(label);
  if (p == std::string::npos) return 0;
  return std::strtod(out.c_str() + p + label.size(), nullptr);
}

// Throughput run, then a latency run at a fixed rate with per-query timings.
Result Measure(int port, const std::string& queries, int seconds) {
  Result r;
  auto tp = testing::RunCommand({"dnsperf", "-s", "127.0.0.1", "-p", std::to_string(port), "-d",
                                 queries, "-c", "4", "-T", "1", "-l", std::to_string(seconds), "-q",
                                 "200"},
                                absl::Seconds(seconds + 30));
  if (!tp.ok()) return r;
  r.qps = Field(tp->out, "Queries per second:");
  r.avg_ms = Field(tp->out, "Average Latency (s):") * 1000;
  size_t lost = tp->out.find("Queries lost:");
  if (lost != std::string::npos) r.lost = tp->out.substr(lost + 13, tp->out.find('\n', lost) - lost - 13);
  auto lat = testing::RunCommand({"dnsperf", "-s", "127.0.0.1", "-p", std::to_string(port), "-d",
                                  queries, "-c", "4", "-T", "1", "-l", "3", "-Q", "20000", "-v"},
                                 absl::Seconds(40));
  if (!lat.ok()) return r;
  std::vector<double> samples;
  std::istringstream in(lat->out);
  std::string line;
  while (std::getline(in, line)) {
    if (line.size() < 2 || line[0] != '>') continue;
    size_t sp = line.rfind(' ');
    double v = 0;
    if (absl::SimpleAtod(ToAbsl(std::string_view(line).substr(sp + 1)), &v)) samples.push_back(v);
  }
  if (!samples.empty()) {
    std::sort(samples.begin(), samples.end());
    r.p99_ms = samples[samples.size() * 99 / 100] * 1000;
  }
  return r;
}

Result Median(std::vector<Result> rs) {
  auto mid = [&](auto field) {
    std::vector<double> v;
    for (const Result& r : rs) v.push_back(field(r));
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  Result m;
  m.qps = mid([](const Result& r) { return r.qps; });
  m.avg_ms = mid([](const Result& r) { return r.avg_ms; });
  m.p99_ms = mid([](const Result& r) { return r.p99_ms; });
  m.lost = rs.back().lost;
  return m;
}

int Main(int argc, char** argv) {
  int n = 10000, seconds = 10, rounds = 3;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind("--services=", 0) == 0) n = std::atoi(a.c_str() + 11);
    if (a.rfind("--seconds=", 0) == 0) seconds = std::atoi(a.c_str() + 10);
    if (a.rfind("--rounds=", 0) == 0) rounds = std::max(1, std::atoi(a.c_str() + 9));
  }
  std::vector<model::Service> services = Services(n);
  char dir_tmpl[] = "/tmp/loom-dnsbench-XXXXXX";
  std::string dir = mkdtemp(dir_tmpl);

  // The same zone for Knot.
  std::string zone = "$TTL 5\n@ SOA ns.dns.cluster.local. hostmaster.cluster.local. 1 7200 1800 86400 5\n"
                     "@ NS ns.dns\nns.dns A 10.96.0.10\ndns-version TXT \"1.1.0\"\n";
  for (const auto& s : services) StrAppend(&zone, s.meta.name, ".default.svc A ", s.cluster_ip, "\n");
  // The query mix.
  std::string queries = dir + "/queries.txt";
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

  long before = RssKb();
  auto built = ClusterZone::Build(ZoneOptions{}, services, {});
  if (!built.ok()) {
    std::fprintf(stderr, "zone: %s\n", built.status().ToString().c_str());
    return 1;
  }
  long zone_kb = RssKb() - before;
  ZoneHolder holder;
  holder.Set(*built);
  ServerOptions so;
  so.listen = "127.0.0.1:0";
  so.udp_workers = 1;
  DnsServer loom(so, &holder, nullptr);
  if (!loom.Start().ok()) return 1;

  testing::KnotOptions ko;
  ko.zones["cluster.local"] = zone;
  auto knot = testing::KnotServer::Start(ko);
  if (!knot.ok()) {
    std::fprintf(stderr, "knotd: %s\n", knot.status().ToString().c_str());
    return 1;
  }

  std::printf("DNS benchmark: %d services, dnsperf -c4 -T1, %d rounds of %d s per server "
              "(alternating), one worker each; medians\n", n, rounds, seconds);
  // The client shares the 2 cores with the server: alternate rounds and take medians.
  std::vector<Result> ks, ls;
  for (int r = 0; r < rounds; ++r) {
    ks.push_back(Measure((*knot)->port(), queries, seconds));
    ls.push_back(Measure(loom.port(), queries, seconds));
    std::printf("  round %d: knotd %.0f q/s p99 %.3f ms, loom %.0f q/s p99 %.3f ms\n", r + 1,
                ks.back().qps, ks.back().p99_ms, ls.back().qps, ls.back().p99_ms);
  }
  Result k = Median(ks);
  Result l = Median(ls);
  std::printf("%-8s %12s %10s %10s  %s\n", "server", "queries/s", "avg ms", "p99 ms", "lost");
  std::printf("%-8s %12.0f %10.3f %10.3f  %s\n", "knotd", k.qps, k.avg_ms, k.p99_ms, k.lost.c_str());
  std::printf("%-8s %12.0f %10.3f %10.3f  %s\n", "loom", l.qps, l.avg_ms, l.p99_ms, l.lost.c_str());
  std::printf("ratio loom/knotd: %.2fx queries/s, p99 %.2fx\n", k.qps > 0 ? l.qps / k.qps : 0,
              k.p99_ms > 0 ? l.p99_ms / k.p99_ms : 0);
  loom.Stop();
  knot->reset();

  // Memory of the zone itself at 10k and 100k services.
  for (int count : {10000, 100000}) {
    std::vector<model::Service> svcs = Services(count);
    long b = RssKb();
    auto z = ClusterZone::Build(ZoneOptions{}, svcs, {});
    long used = RssKb() - b;
    std::printf("zone memory: %d services: %ld KiB (%zu names)\n", count, used,
                z.ok() ? (*z)->name_count() : 0);
  }
  (void)zone_kb;
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  return 0;
}

}  // namespace
}  // namespace loom::dns

int main(int argc, char** argv) { return loom::dns::Main(argc, argv); }
