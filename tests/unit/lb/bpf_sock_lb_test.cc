// Socket-level load balancing for real: a child process in a fresh network namespace
// and in a cgroup2 carrying the sock_lb programs connects to VIPs that exist nowhere
// and reaches backends listening on 127.0.0.2-4.
#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <sstream>

#include "gtest/gtest.h"
#include "lb/bpf_lb.h"
#include "tests/testing/status_matchers.h"
#include "tests/unit/lb/bpf_lb_fixture.h"

namespace loom::lb {
namespace {

using testing::Ip;
using testing::OneFrontend;

constexpr int kConnections = 3000;
constexpr int kAffinityConnections = 50;
constexpr int kDatagrams = 30;

sockaddr_in Addr(const char* ip, uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  inet_pton(AF_INET, ip, &a.sin_addr);
  return a;
}

bool SameAddr(const sockaddr_in& a, const sockaddr_in& b) {
  return a.sin_addr.s_addr == b.sin_addr.s_addr && a.sin_port == b.sin_port;
}

// Connects `n` times to vip:port; counts which of the listeners accepted each and
// how many getpeername() calls showed the VIP. "" on success, else what failed.
std::string ConnectMany(const char* vip, uint16_t port, int n, const int listeners[3],
                        int hits[3], int* peer_is_vip) {
  sockaddr_in target = Addr(vip, port);
  for (int i = 0; i < n; ++i) {
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (connect(s, reinterpret_cast<sockaddr*>(&target), sizeof(target)) != 0) {
      std::string e = std::string("connect: ") + strerror(errno);
      close(s);
      return e;
    }
    sockaddr_in peer{};
    socklen_t len = sizeof(peer);
    getpeername(s, reinterpret_cast<sockaddr*>(&peer), &len);
    if (SameAddr(peer, target)) ++*peer_is_vip;
    bool accepted = false;
    for (int attempt = 0; attempt < 100 && !accepted; ++attempt) {
      for (int b = 0; b < 3 && !accepted; ++b) {
        int c = accept4(listeners[b], nullptr, nullptr, SOCK_CLOEXEC);
        if (c >= 0) {
          ++hits[b];
          close(c);
          accepted = true;
        }
      }
      if (!accepted) usleep(1000);
    }
    close(s);
    if (!accepted) return "no backend accepted";
  }
  return "";
}

// The child: joins the cgroup and a new network namespace, runs the checks, writes
// "key value" lines to `out`.
int ChildMain(const std::string& cgroup, int out) {
  std::ostringstream report;
  auto finish = [&](int code) {
    std::string text = report.str();
    (void)!write(out, text.data(), text.size());
    return code;
  };
  {
    std::ofstream procs(cgroup + "/cgroup.procs");
    procs << getpid() << std::endl;
    if (!procs) return finish((report << "error joining cgroup\n", 2));
  }
  if (unshare(CLONE_NEWNET) != 0) return finish((report << "error unshare\n", 2));
  int ctl = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  ifreq ifr{};
  std::strcpy(ifr.ifr_name, "lo");
  ifr.ifr_flags = IFF_UP;
  if (ioctl(ctl, SIOCSIFFLAGS, &ifr) != 0) return finish((report << "error lo up\n", 2));
  close(ctl);

  const char* backends[3] = {"127.0.0.2", "127.0.0.3", "127.0.0.4"};
  int listeners[3], udp[3];
  for (int b = 0; b < 3; ++b) {
    listeners[b] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    sockaddr_in a = Addr(backends[b], 8080);
    if (bind(listeners[b], reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 ||
        listen(listeners[b], 4096) != 0) {
      return finish((report << "error listen " << strerror(errno) << "\n", 2));
    }
    udp[b] = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    a = Addr(backends[b], 5353);
    if (bind(udp[b], reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
      return finish((report << "error udp bind\n", 2));
    }
  }

  int hits[3] = {0, 0, 0}, peer_is_vip = 0;
  std::string err = ConnectMany("10.96.0.10", 80, kConnections, listeners, hits, &peer_is_vip);
  if (!err.empty()) return finish((report << "error " << err << "\n", 1));
  report << "hits " << hits[0] << " " << hits[1] << " " << hits[2] << "\n";
  report << "peer_is_vip " << peer_is_vip << "\n";

  int ahits[3] = {0, 0, 0}, apeer = 0;
  err = ConnectMany("10.96.0.11", 80, kAffinityConnections, listeners, ahits, &apeer);
  if (!err.empty()) return finish((report << "error affinity " << err << "\n", 1));
  report << "affinity_max " << std::max({ahits[0], ahits[1], ahits[2]}) << "\n";

  // UDP: unconnected sends to the VIP, replies seen as coming from the VIP.
  int client = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_in vip = Addr("10.96.0.10", 53);
  int replies_from_vip = 0;
  for (int i = 0; i < kDatagrams; ++i) {
    sendto(client, "ping", 4, 0, reinterpret_cast<sockaddr*>(&vip), sizeof(vip));
    bool answered = false;
    for (int attempt = 0; attempt < 100 && !answered; ++attempt) {
      for (int b = 0; b < 3 && !answered; ++b) {
        char buf[16];
        sockaddr_in from{};
        socklen_t len = sizeof(from);
        if (recvfrom(udp[b], buf, sizeof(buf), 0, reinterpret_cast<sockaddr*>(&from), &len) > 0) {
          sendto(udp[b], "pong", 4, 0, reinterpret_cast<sockaddr*>(&from), len);
          answered = true;
        }
      }
      if (!answered) usleep(1000);
    }
    pollfd p{client, POLLIN, 0};
    if (!answered || poll(&p, 1, 1000) != 1) continue;
    char buf[16];
    sockaddr_in from{};
    socklen_t len = sizeof(from);
    if (recvfrom(client, buf, sizeof(buf), 0, reinterpret_cast<sockaddr*>(&from), &len) > 0 &&
        SameAddr(from, vip)) {
      ++replies_from_vip;
    }
  }
  report << "udp_replies_from_vip " << replies_from_vip << "\n";
  return finish(0);
}

class SockLbTest : public testing::BpfFsFixture {};

TEST_F(SockLbTest, ConnectsToVipReachBackendsEvenly) {
  std::string cgroup = MakeCgroup();
  ASSERT_OK_AND_ASSIGN(auto lb, BpfLoadBalancer::Open(pin_dir_));
  BackendIdAllocator ids;
  auto tcp = model::Protocol::kTcp, udp = model::Protocol::kUdp;
  ServiceFrontend sticky{Ip("10.96.0.11"), 80, tcp};
  ASSERT_TRUE(lb->SetFrontendOptions(sticky, {.client_ip_affinity = true, .affinity_timeout_s = 60}).ok());
  for (const ServiceBackendSet& set :
       {OneFrontend("default/web", {Ip("10.96.0.10"), 80, tcp},
                    {{Ip("127.0.0.2"), 8080, tcp}, {Ip("127.0.0.3"), 8080, tcp},
                     {Ip("127.0.0.4"), 8080, tcp}}),
        OneFrontend("default/sticky", sticky,
                    {{Ip("127.0.0.2"), 8080, tcp}, {Ip("127.0.0.3"), 8080, tcp},
                     {Ip("127.0.0.4"), 8080, tcp}}),
        OneFrontend("default/dns", {Ip("10.96.0.10"), 53, udp},
                    {{Ip("127.0.0.2"), 5353, udp}, {Ip("127.0.0.3"), 5353, udp},
                     {Ip("127.0.0.4"), 5353, udp}})}) {
    ASSERT_OK_AND_ASSIGN(UpdatePlan plan, PlanServiceUpdate({}, set, ids));
    ASSERT_OK(lb->Apply(plan));
  }
  ASSERT_OK(lb->AttachCgroup(cgroup));

  int pipefd[2];
  ASSERT_EQ(pipe2(pipefd, O_CLOEXEC), 0);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    close(pipefd[0]);
    _exit(ChildMain(cgroup, pipefd[1]));
  }
  close(pipefd[1]);
  std::string text;
  char buf[512];
  ssize_t n;
  while ((n = read(pipefd[0], buf, sizeof(buf))) > 0) text.append(buf, n);
  close(pipefd[0]);
  int wstatus = 0;
  ASSERT_EQ(waitpid(pid, &wstatus, 0), pid);
  ASSERT_TRUE(WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0) << text;

  std::istringstream in(text);
  std::string key;
  std::map<std::string, std::vector<int>> values;
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream l(line);
    l >> key;
    int v;
    while (l >> v) values[key].push_back(v);
  }
  ASSERT_EQ(values["hits"].size(), 3u) << text;
  for (int h : values["hits"]) EXPECT_NEAR(h, kConnections / 3, kConnections / 30) << text;
  EXPECT_EQ(values["peer_is_vip"], std::vector<int>{kConnections}) << text;
  EXPECT_EQ(values["affinity_max"], std::vector<int>{kAffinityConnections}) << text;
  EXPECT_EQ(values["udp_replies_from_vip"], std::vector<int>{kDatagrams}) << text;
  std::cout << text;
  ASSERT_OK(lb->Uninstall());
}

}  // namespace
}  // namespace loom::lb
