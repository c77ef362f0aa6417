// Benchmark: where the time goes between a store write and the DNS zone holding the
// change, at a scale (default 100,000 services, one ready pod each, as bench_dns
// loads). An embedded store in a temporary folder, the real ServiceController and
// its subscribers in loomd's order: NodeDns (serving on 127.0.0.1, a free port),
// the load balancer's reconciler on its own thread against a counting writer (as
// LbController runs it; no BPF), and the IngressController (no ingresses, proxy on
// 127.0.0.1). No root, no namespaces.
//
// For each trial (a new service, a pod turning ready, the pod turning unready) it
// prints medians of: the store write call; the watch delivering the write (a second
// watch on the same prefix); write -> the controller publishing the state (debounce,
// endpoint derivation, the snapshot); each subscriber's time on the controller
// thread; write -> NodeDns holding the new zone; and the LB reconcile on its thread.
// Then what a copy of the whole state costs to make and to free.
//   bench_service_state [--services=100000] [--trials=10]
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <map>
#include <mutex>
#include <thread>

#include "absl/strings/str_format.h"
#include "agent/ingress/ingress_controller.h"
#include "agent/lb/lb_reconciler.h"
#include "agent/node_dns/node_dns.h"
#include "agent/services/service_controller.h"
#include "agent/services/service_registry.h"
#include "common/strings.h"
#include "tests/testing/dns_client.h"
#include "tests/testing/temp_store.h"
#include "tests/testing/test_pod.h"

namespace loom::agent {
namespace {

using Clock = std::chrono::steady_clock;

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

// Counts what the reconciler would write to the maps.
class CountingWriter : public ServiceLbWriter {
 public:
  absl::Status SetFrontendOptions(const FrontendOptionsUpdate&) override { return absl::OkStatus(); }
  absl::Status ApplyAll(std::span<const lb::UpdatePlan> plans) override {
    for (const lb::UpdatePlan& p : plans) ops += p.ops.size();
    return absl::OkStatus();
  }
  size_t ops = 0;
};

// The LB reconciler on its own thread, the newest pending state winning (LbController's loop).
class LbWorker {
 public:
  LbWorker() : reconciler_({}, std::nullopt), thread_([this] { Run(); }) {}
  ~LbWorker() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  void OnState(std::shared_ptr<const ServiceState> state) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      pending_ = std::move(state);
    }
    cv_.notify_all();
  }
  // Waits until a state of at least `generation` was applied; its reconcile time in ms.
  double WaitApplied(uint64_t generation) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return applied_ >= generation; });
    return last_ms_;
  }

 private:
  void Run() {
    std::unique_lock<std::mutex> lock(mu_);
    while (true) {
      cv_.wait(lock, [&] { return stop_ || pending_ != nullptr; });
      if (stop_) return;
      std::shared_ptr<const ServiceState> state = std::move(pending_);
      pending_ = nullptr;
      lock.unlock();
      auto t0 = Clock::now();
      absl::StatusOr<LbReconcileStats> stats = reconciler_.Reconcile(*state, writer_);
      double ms = Ms(Clock::now() - t0);
      if (!stats.ok()) std::fprintf(stderr, "lb reconcile: %s\n", stats.status().ToString().c_str());
      uint64_t generation = state->generation;
      state.reset();
      lock.lock();
      applied_ = generation;
      last_ms_ = ms;
      cv_.notify_all();
    }
  }

  LbReconciler reconciler_;
  CountingWriter writer_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::shared_ptr<const ServiceState> pending_;
  uint64_t applied_ = 0;
  double last_ms_ = 0;
  bool stop_ = false;
  std::thread thread_;
};

// When each published state reached each point, by generation.
struct Marks {
  Clock::time_point published, dns_done, lb_posted, ingress_done;
  store::Revision revision = 0;
  uint64_t generation = 0;
};

class Timeline {
 public:
  void Mark(const ServiceState& s, Clock::time_point Marks::*field) {
    std::lock_guard<std::mutex> lock(mu_);
    Marks& m = marks_[s.generation];
    m.revision = s.revision;
    m.generation = s.generation;
    m.*field = Clock::now();
    cv_.notify_all();
  }
  // The marks of the first state holding `revision`, once every subscriber ran.
  Marks WaitFor(store::Revision revision) {
    std::unique_lock<std::mutex> lock(mu_);
    Marks found;
    cv_.wait_for(lock, std::chrono::seconds(30), [&] {
      for (const auto& [gen, m] : marks_) {
        if (m.revision >= revision && m.ingress_done != Clock::time_point()) {
          found = m;
          return true;
        }
      }
      return false;
    });
    return found;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<uint64_t, Marks> marks_;
};

// The time the second watch saw each revision.
class Deliveries {
 public:
  void Saw(store::Revision revision) {
    std::lock_guard<std::mutex> lock(mu_);
    seen_.emplace(revision, Clock::now());
  }
  Clock::time_point When(store::Revision revision) {
    for (int i = 0; i < 30000; ++i) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        auto it = seen_.lower_bound(revision);
        if (it != seen_.end()) return it->second;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return Clock::time_point();
  }

 private:
  std::mutex mu_;
  std::map<store::Revision, Clock::time_point> seen_;
};

std::string ServiceJson(const std::string& name, const std::string& ip, bool headless) {
  model::Service s;
  s.meta.name = name;
  s.type = headless ? model::ServiceType::kHeadless : model::ServiceType::kClusterIP;
  s.cluster_ip = ip;
  s.selector = {{"app", name}};
  s.ports = {{"http", 80, 8080, "", model::Protocol::kTcp, 0}};
  return StoredService{s, "2024-01-01T00:00:00Z"}.ToJson().dump();
}

std::string PodJson(const std::string& name, const std::string& app, const std::string& ip,
                    bool ready) {
  return model::PodToJson(testing::TestPod(name, app, {ip}, ready)).dump();
}

// The i-th address after `base` (host byte order), dotted.
std::string Address(uint32_t base, int i) {
  uint32_t a = base + 1 + static_cast<uint32_t>(i);
  return StrCat(a >> 24, ".", (a >> 16) & 255, ".", (a >> 8) & 255, ".", a & 255);
}
std::string ClusterIp(int i) { return Address(0x0A600000, i); }  // 10.96.0.0/12
std::string PodIp(int i) { return Address(0x0A800000, i); }      // 10.128.0.0/9

struct Trial {
  double put = 0, delivered = 0, published = 0, dns = 0, zone = 0, lb_post = 0, ingress = 0,
         lb = 0;
};

std::string Median(std::vector<Trial> trials, double Trial::*field) {
  std::vector<double> v;
  for (const Trial& t : trials) v.push_back(t.*field);
  std::sort(v.begin(), v.end());
  return absl::StrFormat("%.2f (max %.2f)", v[v.size() / 2], v.back());
}

int Main(int argc, char** argv) {
  int n = 100000, trials = 10;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind("--services=", 0) == 0) n = std::max(1, std::atoi(a.c_str() + 11));
    if (a.rfind("--trials=", 0) == 0) trials = std::max(1, std::atoi(a.c_str() + 9));
  }
  testing::TempStore store;
  if (absl::Status s = store.Open("loom-bench-service-state"); !s.ok()) {
    std::fprintf(stderr, "store: %s\n", s.ToString().c_str());
    return 1;
  }
  // The services and one ready pod each, 100 to a transaction, plus a headless "db"
  // whose third pod the trials flip.
  auto t0 = Clock::now();
  for (int i = 0; i < n; i += 100) {
    store::Txn txn;
    for (int j = i; j < std::min(n, i + 100); ++j) {
      std::string name = StrCat("svc", j);
      txn.success.push_back(store::Op::Put(ServiceKey("default", name), ServiceJson(name, ClusterIp(j), false)));
      txn.success.push_back(store::Op::Put(
          StrCat("/loom/pods/node1/c-", name, "-0"),
          PodJson(StrCat(name, "-0"), name, PodIp(j), true)));
    }
    if (absl::StatusOr<store::TxnResult> r = store->Commit(txn); !r.ok()) {
      std::fprintf(stderr, "loading: %s\n", r.status().ToString().c_str());
      return 1;
    }
  }
  (void)store->Put(ServiceKey("default", "db"), ServiceJson("db", "", true));
  for (int j = 0; j < 3; ++j) {
    (void)store->Put(StrCat("/loom/pods/node1/c-db-", j),
                     PodJson(StrCat("db-", j), "db", StrCat("10.244.99.", j + 1), j < 2));
  }
  double load_s = Ms(Clock::now() - t0) / 1000;

  NodeDnsOptions dno;
  dno.ip = "127.0.0.1";
  dno.port = 0;
  dno.manage_address = false;
  NodeDns dns(dno, nullptr);
  if (absl::Status s = dns.Start(); !s.ok()) {
    std::fprintf(stderr, "dns: %s\n", s.ToString().c_str());
    return 1;
  }
  IngressControllerOptions io;
  io.proxy.http_host = "127.0.0.1";
  io.proxy.http_port = 0;
  io.proxy.https = false;
  IngressController ingress(store.get(), io);
  if (absl::Status s = ingress.Start(); !s.ok()) {
    std::fprintf(stderr, "ingress: %s\n", s.ToString().c_str());
    return 1;
  }
  LbWorker lb;
  Timeline timeline;
  ServiceController controller(store.get());
  controller.Subscribe([&](std::shared_ptr<const ServiceState> s) {
    timeline.Mark(*s, &Marks::published);
    dns.OnState(s);
    timeline.Mark(*s, &Marks::dns_done);
    lb.OnState(s);
    timeline.Mark(*s, &Marks::lb_posted);
    ingress.OnState(s);
    timeline.Mark(*s, &Marks::ingress_done);
  });
  t0 = Clock::now();
  if (absl::Status s = controller.Start(); !s.ok()) {
    std::fprintf(stderr, "controller: %s\n", s.ToString().c_str());
    return 1;
  }
  Deliveries deliveries;
  auto on_batch = [&](const store::WatchBatch& b) { deliveries.Saw(b.revision); };
  auto pods_watch = store->WatchPrefix(kPodsPrefix, 0, on_batch);
  auto services_watch = store->WatchPrefix(kServicesPrefix, 0, on_batch);
  if (!pods_watch.ok() || !services_watch.ok()) return 1;
  absl::StatusOr<store::RangeResult> now = store->Range("/loom/pods/node1/c-db-0");
  if (!now.ok()) return 1;
  Marks first = timeline.WaitFor(now->revision);
  if (first.generation == 0) {
    std::fprintf(stderr, "the first state never came\n");
    return 1;
  }
  double first_ms = Ms(first.ingress_done - t0);
  double first_lb = lb.WaitApplied(first.generation);
  testing::DnsClient client("", "127.0.0.1", dns.port());

  // A write, then the state holding it and each point it reached.
  auto trial = [&](auto write) -> std::optional<Trial> {
    auto start = Clock::now();
    absl::StatusOr<store::Revision> rev = write();
    auto returned = Clock::now();
    if (!rev.ok()) {
      std::fprintf(stderr, "write: %s\n", rev.status().ToString().c_str());
      return std::nullopt;
    }
    Marks m = timeline.WaitFor(*rev);
    if (m.generation == 0) {
      std::fprintf(stderr, "no state holds revision %ld\n", static_cast<long>(*rev));
      return std::nullopt;
    }
    Trial t;
    t.put = Ms(returned - start);
    t.delivered = Ms(deliveries.When(*rev) - start);
    t.published = Ms(m.published - start);
    t.dns = Ms(m.dns_done - m.published);
    t.zone = Ms(m.dns_done - start);
    t.lb_post = Ms(m.lb_posted - m.dns_done);
    t.ingress = Ms(m.ingress_done - m.lb_posted);
    t.lb = lb.WaitApplied(m.generation);
    return t;
  };
  std::vector<Trial> fresh, ready, unready;
  int wrong = 0;
  for (int i = 0; i < trials; ++i) {
    std::string name = StrCat("fresh", i);
    auto t = trial([&] { return store->Put(ServiceKey("default", name), ServiceJson(name, ClusterIp(n + i), false)); });
    if (!t) return 1;
    fresh.push_back(*t);
    if (client.A(StrCat(name, ".default.svc.cluster.local")).size() != 1) ++wrong;
    t = trial([&] {
      return store->Put("/loom/pods/node1/c-db-2", PodJson("db-2", "db", "10.244.99.3", true));
    });
    if (!t) return 1;
    ready.push_back(*t);
    if (client.A("db.default.svc.cluster.local").size() != 3) ++wrong;
    t = trial([&] {
      return store->Put("/loom/pods/node1/c-db-2", PodJson("db-2", "db", "10.244.99.3", false));
    });
    if (!t) return 1;
    unready.push_back(*t);
    if (client.A("db.default.svc.cluster.local").size() != 2) ++wrong;
  }

  // A whole copy of the state: made and freed.
  std::shared_ptr<const ServiceState> current = controller.Current();
  t0 = Clock::now();
  auto copy = std::make_unique<ServiceState>(*current);
  double copy_ms = Ms(Clock::now() - t0);
  t0 = Clock::now();
  copy.reset();
  double free_ms = Ms(Clock::now() - t0);

  std::printf("service state benchmark: %d services + %d pods (embedded store), loaded in %.1f s; "
              "first state (full build, zone, LB, ingress) %.0f ms after start, LB reconcile "
              "%.0f ms\n",
              n + 1, n + 3, load_s, first_ms, first_lb);
  std::printf("milliseconds, medians over %d trials (max)\n", trials);
  std::printf("%-26s %-20s %-20s %-20s\n", "", "new service", "pod ready", "pod unready");
  auto row = [&](const char* what, double Trial::*field) {
    std::printf("%-26s %-20s %-20s %-20s\n", what, Median(fresh, field).c_str(),
                Median(ready, field).c_str(), Median(unready, field).c_str());
  };
  row("store write call", &Trial::put);
  row("write -> watch delivered", &Trial::delivered);
  row("write -> state published", &Trial::published);
  row("NodeDns::OnState", &Trial::dns);
  row("write -> zone holds it", &Trial::zone);
  row("LbController::OnState", &Trial::lb_post);
  row("IngressController::OnState", &Trial::ingress);
  row("LB reconcile (own thread)", &Trial::lb);
  std::printf("a copy of the whole state: %.1f ms to make, %.1f ms to free\n", copy_ms, free_ms);
  if (wrong > 0) {
    std::printf("WRONG: %d answers did not show the change\n", wrong);
    return 1;
  }
  return 0;
}

}  // namespace
}  // namespace loom::agent

int main(int argc, char** argv) { return loom::agent::Main(argc, argv); }
