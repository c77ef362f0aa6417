// Service load balancing: new TCP connections per second and p99 connect-to-answer
// latency to a service VIP through Loom's socket programs, against kube-proxy-shaped
// iptables DNAT rules (KUBE-SERVICES -> KUBE-SVC-* -> KUBE-SEP-*, statistic random),
// and against connecting straight to the backend, at 1, 1,000 and 10,000 services with
// the target service last; and one backend change at each scale (Loom: one ordered plan;
// iptables: a full iptables-restore, as kube-proxy writes it). Same topology, same run:
//   client netns (198.51.100.1) -- veth -- backend netns (198.51.100.2, .3)
// The backend is a C++ accept loop in this process (a thread in the backend netns);
// each client run is a forked child in the client netns (in the bench's cgroup for
// Loom), 2 threads, connect / 1 byte / 1 byte / EOF / close, for a few seconds. Loom
// and direct run before the iptables rules are loaded (and the nat table is deleted
// after), so that neither walks kube-proxy's chains.
// Every namespace, mount, cgroup and pin is the bench's own and removed at exit.
//   ctest --test-dir build -L bench -R lb_services -V
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/net/netns.h"
#include "common/strings.h"
#include "lb/backend_set.h"
#include "lb/bpf_lb.h"
#include "tests/testing/command.h"

namespace {

using loom::StrCat;
using loom::lb::BackendAddress;
using loom::lb::ServiceBackendSet;
using loom::lb::ServiceFrontend;
using loom::net::Ipv4Address;
using loom::testing::RunChecked;
using loom::testing::RunCommand;

constexpr char kClientIp[] = "198.51.100.1";
constexpr char kBackendA[] = "198.51.100.2";
constexpr char kBackendB[] = "198.51.100.3";
constexpr int kBackendPort = 8080;
constexpr double kRunSeconds = 3;
constexpr int kClientThreads = 2;

Ipv4Address Ip(const std::string& s) { return *Ipv4Address::Parse(s); }
// Service i's VIP: Loom in 10.96/16, iptables in 10.97/16 (never the same address).
std::string Vip(int base, int i) { return StrCat("10.", base, ".", i / 250, ".", 1 + i % 250); }

struct Result {
  double rate = 0;   // connections per second
  double p99_us = 0;
  long errors = 0;
};

// A forked child: joins `netns` (and `cgroup` if given), runs the client loop, and
// writes "rate p99 errors" to the pipe.
// Each run connects from its own source address: the backend keeps TIME_WAIT for the
// previous runs' tuples, and a client whose timestamps follow another offset (they are
// keyed by the addresses connect() saw: a VIP for iptables, the backend for Loom and
// direct) would have its SYNs refused by PAWS and retried a second later.
int next_source = 0;
constexpr int kSources = 40;
std::string SourceIp(int i) { return StrCat("198.51.100.", 100 + i); }

Result RunClient(const std::string& netns, const std::string& cgroup, const std::string& ip,
                 int port) {
  std::string source = SourceIp(next_source++ % kSources);
  int fds[2];
  if (pipe(fds) != 0) return {};
  pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    int ns = open(StrCat("/run/netns/", netns).c_str(), O_RDONLY);
    if (ns < 0 || setns(ns, CLONE_NEWNET) != 0) _exit(2);
    if (!cgroup.empty()) {
      std::ofstream(cgroup + "/cgroup.procs") << "0";
    }
    sockaddr_in src{};
    src.sin_family = AF_INET;
    inet_pton(AF_INET, source.c_str(), &src.sin_addr);
    sockaddr_in dst{};
    dst.sin_family = AF_INET;
    dst.sin_port = htons(port);
    inet_pton(AF_INET, ip.c_str(), &dst.sin_addr);
    std::atomic<long> errors{0};
    std::vector<std::vector<double>> lat(kClientThreads);
    auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(kRunSeconds);
    std::vector<std::thread> threads;
    for (int t = 0; t < kClientThreads; ++t) {
      threads.emplace_back([&, t] {
        char b = 'x';
        while (std::chrono::steady_clock::now() < end) {
          auto t0 = std::chrono::steady_clock::now();
          int s = socket(AF_INET, SOCK_STREAM, 0);
          int one = 1;
          setsockopt(s, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
          bool ok = bind(s, reinterpret_cast<sockaddr*>(&src), sizeof src) == 0 && connect(s, reinterpret_cast<sockaddr*>(&dst), sizeof dst) == 0 &&
                    write(s, &b, 1) == 1 && read(s, &b, 1) == 1 && read(s, &b, 1) == 0;
          close(s);
          if (!ok) {
            ++errors;
            continue;
          }
          lat[t].push_back(
              std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0)
                  .count());
        }
      });
    }
    for (auto& t : threads) t.join();
    std::vector<double> all;
    for (auto& v : lat) all.insert(all.end(), v.begin(), v.end());
    std::sort(all.begin(), all.end());
    double p99 = all.empty() ? 0 : all[std::min(all.size() - 1, all.size() * 99 / 100)];
    std::string out = StrCat(all.size() / kRunSeconds, " ", p99, " ", errors.load(), "\n");
    (void)!write(fds[1], out.data(), out.size());
    _exit(0);
  }
  close(fds[1]);
  char buf[128] = {};
  ssize_t n = read(fds[0], buf, sizeof buf - 1);
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  Result r;
  if (n > 0) std::sscanf(buf, "%lf %lf %ld", &r.rate, &r.p99_us, &r.errors);
  return r;
}

// The backend: accept, read one byte, answer one, close (the server closes first, so
// TIME_WAIT stays on its side and the client never runs out of ports).
class Backend {
 public:
  explicit Backend(const std::string& netns) {
    for (int t = 0; t < 2; ++t) {
      threads_.emplace_back([this, netns] {
        int ns = open(StrCat("/run/netns/", netns).c_str(), O_RDONLY);
        if (ns < 0 || setns(ns, CLONE_NEWNET) != 0) return;
        close(ns);
        int ls = socket(AF_INET, SOCK_STREAM, 0);
        int one = 1;
        setsockopt(ls, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_port = htons(kBackendPort);
        if (bind(ls, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || listen(ls, 4096) != 0) return;
        timeval tv{0, 200000};
        setsockopt(ls, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        while (!stop_) {
          int c = accept(ls, nullptr, nullptr);
          if (c < 0) continue;
          char b;
          if (read(c, &b, 1) == 1) (void)!write(c, &b, 1);
          close(c);
        }
        close(ls);
      });
    }
  }
  ~Backend() {
    stop_ = true;
    for (auto& t : threads_) t.join();
  }

 private:
  std::atomic<bool> stop_{false};
  std::vector<std::thread> threads_;
};

ServiceBackendSet Service(int i, bool target) {
  ServiceBackendSet s;
  s.service = StrCat("bench/svc", i);
  loom::lb::FrontendBackends f;
  f.frontend = {Ip(Vip(96, i)), 80, loom::model::Protocol::kTcp};
  if (target) {
    f.backends = {{Ip(kBackendA), kBackendPort, loom::model::Protocol::kTcp},
                  {Ip(kBackendB), kBackendPort, loom::model::Protocol::kTcp}};
  } else {  // never addressed: backends that do not exist
    f.backends = {{Ip(StrCat("10.201.", i / 250, ".", 1 + i % 250)), 80, loom::model::Protocol::kTcp},
                  {Ip(StrCat("10.202.", i / 250, ".", 1 + i % 250)), 80, loom::model::Protocol::kTcp}};
  }
  std::sort(f.backends.begin(), f.backends.end());
  s.frontends.push_back(f);
  return s;
}

// kube-proxy's iptables shape for `services` services, the target last.
std::string KubeProxyRules(int services, const std::string& target_backend_b) {
  std::ostringstream r;
  r << "*nat\n:KUBE-SERVICES - [0:0]\n";
  for (int i = 0; i < services; ++i) r << ":KUBE-SVC-" << i << " - [0:0]\n:KUBE-SEP-" << i << "A - [0:0]\n:KUBE-SEP-" << i << "B - [0:0]\n";
  r << "-A OUTPUT -j KUBE-SERVICES\n";
  for (int i = 0; i < services; ++i) {
    bool target = i == services - 1;
    std::string a = target ? kBackendA : StrCat("10.201.", i / 250, ".", 1 + i % 250);
    std::string b = target ? target_backend_b : StrCat("10.202.", i / 250, ".", 1 + i % 250);
    int port = target ? kBackendPort : 80;
    r << "-A KUBE-SERVICES -d " << Vip(97, i) << "/32 -p tcp -m tcp --dport 80 -j KUBE-SVC-" << i << "\n"
      << "-A KUBE-SVC-" << i << " -m statistic --mode random --probability 0.5 -j KUBE-SEP-" << i << "A\n"
      << "-A KUBE-SVC-" << i << " -j KUBE-SEP-" << i << "B\n"
      << "-A KUBE-SEP-" << i << "A -p tcp -m tcp -j DNAT --to-destination " << a << ":" << port << "\n"
      << "-A KUBE-SEP-" << i << "B -p tcp -m tcp -j DNAT --to-destination " << b << ":" << port << "\n";
  }
  r << "COMMIT\n";
  return r.str();
}

double Ms(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

int main() {
  if (geteuid() != 0) {
    std::fprintf(stderr, "lb bench needs root\n");
    return 77;
  }
  std::string id = StrCat("lmb", getpid());
  std::string client_ns = id + "-c", backend_ns = id + "-b";
  char tmpl[] = "/tmp/loom-lb-bench-XXXXXX";
  std::string tmp = mkdtemp(tmpl);
  std::string bpffs = tmp + "/bpf", cg_root = tmp + "/cgroup2", cgroup = cg_root + "/" + id;
  auto cleanup = [&] {
    (void)RunCommand({"ip", "netns", "delete", client_ns});
    (void)RunCommand({"ip", "netns", "delete", backend_ns});
    rmdir(cgroup.c_str());
    umount2(cg_root.c_str(), MNT_DETACH);
    umount2(bpffs.c_str(), MNT_DETACH);
    rmdir(cg_root.c_str());
    rmdir(bpffs.c_str());
    unlink((tmp + "/rules").c_str());
    rmdir(tmp.c_str());
  };
  auto fail = [&](const std::string& what) {
    std::fprintf(stderr, "lb bench: %s\n", what.c_str());
    cleanup();
    return 1;
  };
  for (const std::vector<std::string>& cmd : std::vector<std::vector<std::string>>{
           {"ip", "netns", "add", client_ns},
           {"ip", "netns", "add", backend_ns},
           {"ip", "-n", client_ns, "link", "set", "lo", "up"},
           {"ip", "-n", backend_ns, "link", "set", "lo", "up"},
           {"ip", "-n", client_ns, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0",
            "netns", backend_ns},
           {"ip", "-n", client_ns, "addr", "add", StrCat(kClientIp, "/24"), "dev", "eth0"},
           {"ip", "-n", backend_ns, "addr", "add", StrCat(kBackendA, "/24"), "dev", "eth0"},
           {"ip", "-n", backend_ns, "addr", "add", StrCat(kBackendB, "/24"), "dev", "eth0"},
           {"ip", "-n", client_ns, "link", "set", "eth0", "up"},
           {"ip", "-n", backend_ns, "link", "set", "eth0", "up"},
           // VIPs route towards the backend side (iptables DNATs after routing once).
           {"ip", "-n", client_ns, "route", "add", "default", "via", kBackendA},
       }) {
    auto r = RunChecked(cmd);
    if (!r.ok()) return fail(std::string(r.status().message()));
  }
  for (int i = 0; i < kSources; ++i) {
    auto r = RunChecked({"ip", "-n", client_ns, "addr", "add", StrCat(SourceIp(i), "/32"), "dev", "eth0"});
    if (!r.ok()) return fail(std::string(r.status().message()));
  }
  mkdir(bpffs.c_str(), 0700);
  mkdir(cg_root.c_str(), 0700);
  if (mount("bpffs", bpffs.c_str(), "bpf", 0, nullptr) != 0) return fail("mount bpffs");
  if (mount("cgroup2", cg_root.c_str(), "cgroup2", 0, nullptr) != 0) return fail("mount cgroup2");
  if (mkdir(cgroup.c_str(), 0755) != 0) return fail("mkdir cgroup");
  Backend backend(backend_ns);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));

  std::printf("machine: %s", RunCommand({"uptime"})->out.c_str());
  std::printf("%-8s %-9s %12s %10s %7s %14s\n", "services", "path", "conn/s", "p99_us",
              "errors", "change_ms");
  std::map<int, Result> loom_at, ipt_at, direct_at;
  for (int services : {1, 1000, 10000}) {
    // Loom: the maps loaded in one batch, as loomd does at start.
    std::string pins = StrCat(bpffs, "/s", services);
    auto lb = loom::lb::BpfLoadBalancer::Open(pins);
    if (!lb.ok()) return fail(std::string(lb.status().message()));
    if (auto s = (*lb)->AttachCgroup(cgroup); !s.ok()) return fail(std::string(s.message()));
    loom::lb::BackendIdAllocator ids;
    std::vector<loom::lb::UpdatePlan> plans;
    for (int i = 0; i < services; ++i) {
      plans.push_back(*loom::lb::PlanServiceUpdate({}, Service(i, i == services - 1), ids));
    }
    auto t0 = std::chrono::steady_clock::now();
    if (auto s = (*lb)->ApplyAll(plans); !s.ok()) return fail(std::string(s.message()));
    double load_ms = Ms(t0);
    // One backend of the target replaced and back (best of 3).
    double change_ms = 1e9;
    loom::lb::ProgrammedService state = plans.back().programmed;
    for (int round = 0; round < 3; ++round) {
      ServiceBackendSet next = Service(services - 1, true);
      if (round % 2 == 0) next.frontends[0].backends[1].ip = Ip("198.51.100.4");
      std::sort(next.frontends[0].backends.begin(), next.frontends[0].backends.end());
      auto t1 = std::chrono::steady_clock::now();
      auto plan = loom::lb::PlanServiceUpdate(state, next, ids);
      if (!plan.ok() || !(*lb)->Apply(*plan).ok()) return fail("backend change");
      change_ms = std::min(change_ms, Ms(t1));
      state = plan->programmed;
    }
    ServiceBackendSet back = Service(services - 1, true);
    auto plan = loom::lb::PlanServiceUpdate(state, back, ids);
    if (!plan.ok() || !(*lb)->Apply(*plan).ok()) return fail("restore target");

    // Loom and direct first, with no nat table in the client netns (a node with Loom
    // has no kube-proxy rules for conntrack to walk); best of 2 interleaved rounds.
    Result best_loom, best_ipt, best_direct;
    auto keep = [](Result& best, const Result& r) {
      if (r.rate > best.rate) best = r;
    };
    for (int round = 0; round < 2; ++round) {
      keep(best_direct, RunClient(client_ns, "", kBackendA, kBackendPort));
      keep(best_loom, RunClient(client_ns, cgroup, Vip(96, services - 1), 80));
    }
    // iptables: the same services in the client netns's nat table.
    std::string rules_path = StrCat(tmp, "/rules");
    std::ofstream(rules_path) << KubeProxyRules(services, kBackendB);
    auto t2 = std::chrono::steady_clock::now();
    auto restore = RunChecked({"ip", "netns", "exec", client_ns, "sh", "-c",
                               StrCat("iptables-restore < ", rules_path)}, absl::Seconds(300));
    if (!restore.ok()) return fail(std::string(restore.status().message()));
    double ipt_load_ms = Ms(t2);
    // kube-proxy rewrites the whole table for a change: one backend replaced.
    std::ofstream(rules_path) << KubeProxyRules(services, "198.51.100.4");
    auto t3 = std::chrono::steady_clock::now();
    restore = RunChecked({"ip", "netns", "exec", client_ns, "sh", "-c",
                          StrCat("iptables-restore < ", rules_path)}, absl::Seconds(300));
    double ipt_change_ms = Ms(t3);
    std::ofstream(rules_path) << KubeProxyRules(services, kBackendB);
    restore = RunChecked({"ip", "netns", "exec", client_ns, "sh", "-c",
                          StrCat("iptables-restore < ", rules_path)}, absl::Seconds(300));
    if (!restore.ok()) return fail(std::string(restore.status().message()));

    for (int round = 0; round < 2; ++round) {
      keep(best_ipt, RunClient(client_ns, "", Vip(97, services - 1), 80));
    }
    loom_at[services] = best_loom;
    ipt_at[services] = best_ipt;
    direct_at[services] = best_direct;
    std::printf("%-8d %-9s %12.0f %10.0f %7ld %14s\n", services, "direct", best_direct.rate,
                best_direct.p99_us, best_direct.errors, "-");
    std::printf("%-8d %-9s %12.0f %10.0f %7ld %8.3f (load %.0f ms)\n", services, "loom",
                best_loom.rate, best_loom.p99_us, best_loom.errors, change_ms, load_ms);
    std::printf("%-8d %-9s %12.0f %10.0f %7ld %8.1f (load %.0f ms)\n", services, "iptables",
                best_ipt.rate, best_ipt.p99_us, best_ipt.errors, ipt_change_ms, ipt_load_ms);
    std::printf("%-8d ratios: loom/iptables rate %.2fx, loom/direct rate %.2f, "
                "iptables change / loom change %.0fx\n",
                services, best_loom.rate / std::max(1.0, best_ipt.rate),
                best_loom.rate / std::max(1.0, best_direct.rate), ipt_change_ms / change_ms);
    (void)(*lb)->Uninstall();
    (void)RunCommand({"ip", "netns", "exec", client_ns, "nft", "delete", "table", "ip", "nat"});
  }
  std::printf("loom p99 at 10000 / at 1: %.2f\n",
              loom_at[10000].p99_us / std::max(1.0, loom_at[1].p99_us));
  std::printf("machine: %s", RunCommand({"uptime"})->out.c_str());
  cleanup();
  return 0;
}
