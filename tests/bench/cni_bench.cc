// ADD and DEL latency of the `loom` plugin (with loomd in a node namespace) against the
// reference bridge + host-local, in the same run, interleaved, each exec'd as a
// runtime execs it. Prints p50/p99 per verb and the loom/reference ratio.
//   ctest --test-dir build -L bench -R cni -V
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "common/json.h"
#include "tests/integration/cni_node.h"

namespace {

using loom::Json;

double Percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * v.size()))];
}

}  // namespace

int main(int argc, char** argv) {
  int iterations = argc > 1 ? std::atoi(argv[1]) : 100;
  if (geteuid() != 0) {
    std::fprintf(stderr, "cni bench needs root\n");
    return 77;
  }
  const std::string ref_dir = "/usr/lib/cni";
  if (access((ref_dir + "/bridge").c_str(), X_OK) != 0) {
    std::fprintf(stderr, "missing %s/bridge\n", ref_dir.c_str());
    return 77;
  }
  absl::StatusOr<std::unique_ptr<loom::testing::CniNode>> node = loom::testing::CniNode::Create();
  if (!node.ok()) {
    std::fprintf(stderr, "node: %s\n", std::string(node.status().message()).c_str());
    return 1;
  }
  absl::StatusOr<std::string> c = (*node)->AddContainer();
  if (!c.ok()) return 1;
  const std::string path = std::string(LOOM_BIN_DIR) + ":" + ref_dir;
  Json loom_conf = {{"cniVersion", "1.0.0"}, {"name", "loomnet"}, {"type", "loom"},
                    {"socket", (*node)->socket()}, {"delQueueDir", (*node)->del_queue_dir()}};
  Json ref_conf = {{"cniVersion", "1.0.0"}, {"name", "refnet"}, {"type", "bridge"},
                   {"bridge", "lmbr0"}, {"isGateway", true},
                   {"ipam", {{"type", "host-local"}, {"subnet", "10.244.200.0/24"},
                             {"dataDir", (*node)->dir() + "/host-local"}}}};
  struct Side {
    std::string name, binary;
    Json conf;
    std::vector<double> add_ms, del_ms;
  };
  std::vector<Side> sides = {{"loom", std::string(LOOM_BIN_DIR) + "/loom", loom_conf, {}, {}},
                             {"bridge+host-local", ref_dir + "/bridge", ref_conf, {}, {}}};
  for (int i = 0; i < iterations + 5; ++i) {  // 5 warm-up rounds are not counted
    for (Side& s : sides) {
      for (const char* verb : {"ADD", "DEL"}) {
        std::map<std::string, std::string> env = {{"CNI_COMMAND", verb},
                                                  {"CNI_CONTAINERID", "bench" + std::to_string(i)},
                                                  {"CNI_NETNS", *c},
                                                  {"CNI_IFNAME", "eth0"},
                                                  {"CNI_PATH", path}};
        absl::Time start = absl::Now();
        absl::StatusOr<loom::testing::PluginRun> r = (*node)->ExecPlugin(s.binary, env, s.conf.dump());
        double ms = absl::ToDoubleMilliseconds(absl::Now() - start);
        if (!r.ok() || r->exit_code != 0) {
          std::fprintf(stderr, "%s %s failed: %s\n", s.name.c_str(), verb,
                       r.ok() ? r->out.c_str() : std::string(r.status().message()).c_str());
          return 1;
        }
        if (i >= 5) (std::string(verb) == "ADD" ? s.add_ms : s.del_ms).push_back(ms);
      }
    }
  }
  std::printf("CNI latency, %d iterations each (ms)\n", iterations);
  std::printf("%-20s %9s %9s %9s %9s\n", "plugin", "ADD p50", "ADD p99", "DEL p50", "DEL p99");
  for (const Side& s : sides) {
    std::printf("%-20s %9.2f %9.2f %9.2f %9.2f\n", s.name.c_str(), Percentile(s.add_ms, 0.5),
                Percentile(s.add_ms, 0.99), Percentile(s.del_ms, 0.5), Percentile(s.del_ms, 0.99));
  }
  std::printf("loom / reference: ADD p50 %.2fx, DEL p50 %.2fx (goal: ADD <= 0.5x)\n",
              Percentile(sides[0].add_ms, 0.5) / Percentile(sides[1].add_ms, 0.5),
              Percentile(sides[0].del_ms, 0.5) / Percentile(sides[1].del_ms, 0.5));
  return 0;
}
