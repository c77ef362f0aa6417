// Socket-level load balancing for real: a child process in a fresh network namespace
// and in a cgroup2 carrying the sock_lb programs connects to VIPs that exist nowhere
// and reaches backends listening on 127.0.0.2-4; and the UDP socket terminator ends
// the child's socket connected to a VIP once its backend left.
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

#include <cstdlib>
#include <cstring>
#include <map>
#include <fstream>
#include <sstream>

#include "gtest/gtest.h"
#include "lb/bpf_lb.h"
#include "lb/udp_socket_terminator.h"
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

// Moves the calling (child) process into `cgroup` and a new network namespace with lo
// up. "" on success, else what failed.
std::string EnterCgroupAndNewNetns(const std::string& cgroup) {
  {
    std::ofstream procs(cgroup + "/cgroup.procs");
    procs << getpid() << std::endl;
    if (!procs) return "joining cgroup";
  }
  if (unshare(CLONE_NEWNET) != 0) return "unshare";
  int ctl = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  ifreq ifr{};
  std::strcpy(ifr.ifr_name, "lo");
  ifr.ifr_flags = IFF_UP;
  int rc = ioctl(ctl, SIOCSIFFLAGS, &ifr);
  close(ctl);
  return rc == 0 ? "" : "lo up";
}

// "key v1 v2 ..." lines as the children write them.
std::map<std::string, std::vector<int>> ParseReport(const std::string& text) {
  std::istringstream in(text);
  std::map<std::string, std::vector<int>> values;
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream l(line);
    std::string key;
    l >> key;
    int v;
    while (l >> v) values[key].push_back(v);
  }
  return values;
}

std::string ReadAllFd(int fd) {
  std::string text;
  char buf[512];
  ssize_t n;
  while ((n = read(fd, buf, sizeof(buf))) > 0) text.append(buf, n);
  return text;
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
  if (std::string e = EnterCgroupAndNewNetns(cgroup); !e.empty()) {
    return finish((report << "error " << e << "\n", 2));
  }

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
  std::string text = ReadAllFd(pipefd[0]);
  close(pipefd[0]);
  int wstatus = 0;
  ASSERT_EQ(waitpid(pid, &wstatus, 0), pid);
  ASSERT_TRUE(WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0) << text;
  std::map<std::string, std::vector<int>> values = ParseReport(text);
  ASSERT_EQ(values["hits"].size(), 3u) << text;
  for (int h : values["hits"]) EXPECT_NEAR(h, kConnections / 3, kConnections / 30) << text;
  EXPECT_EQ(values["peer_is_vip"], std::vector<int>{kConnections}) << text;
  EXPECT_EQ(values["affinity_max"], std::vector<int>{kAffinityConnections}) << text;
  EXPECT_EQ(values["udp_replies_from_vip"], std::vector<int>{kDatagrams}) << text;
  std::cout << text;
  ASSERT_OK(lb->Uninstall());
}


// The UDP terminator's child: three UDP backends, a socket connect()ed to the VIP (so
// pointed at one backend by connect4) and one connect()ed straight to that backend.
// Reports "backend <index>", waits for a byte on `go`, then reports what each socket
// shows, and where the VIP socket goes once connected again.
int TerminatorChild(const std::string& cgroup, int out, int go) {
  std::ostringstream report;
  auto flush = [&] {
    std::string text = report.str();
    (void)!write(out, text.data(), text.size());
    report.str("");
  };
  auto finish = [&](int code) {
    flush();
    return code;
  };
  if (std::string e = EnterCgroupAndNewNetns(cgroup); !e.empty()) {
    return finish((report << "error " << e << "\n", 2));
  }
  const char* backends[3] = {"127.0.0.2", "127.0.0.3", "127.0.0.4"};
  int udp[3];
  for (int b = 0; b < 3; ++b) {
    udp[b] = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    sockaddr_in a = Addr(backends[b], 5353);
    if (bind(udp[b], reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
      return finish((report << "error udp bind\n", 2));
    }
  }
  // Which backend a datagram from `s` reached (-1: none).
  auto reached = [&](int s) {
    if (send(s, "ping", 4, 0) != 4) return -1;
    for (int attempt = 0; attempt < 100; ++attempt) {
      for (int b = 0; b < 3; ++b) {
        char buf[16];
        if (recv(udp[b], buf, sizeof(buf), 0) > 0) return b;
      }
      usleep(1000);
    }
    return -1;
  };
  sockaddr_in vip = Addr("10.96.0.20", 53);
  int client = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (connect(client, reinterpret_cast<sockaddr*>(&vip), sizeof(vip)) != 0) {
    return finish((report << "error connect vip\n", 2));
  }
  int first = reached(client);
  if (first < 0) return finish((report << "error no backend\n", 1));
  int direct = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_in target = Addr(backends[first], 5353);
  if (connect(direct, reinterpret_cast<sockaddr*>(&target), sizeof(target)) != 0) {
    return finish((report << "error connect direct\n", 2));
  }
  report << "backend " << first << "\n";
  flush();
  char byte;
  if (read(go, &byte, 1) != 1) return finish((report << "error go\n", 2));

  sockaddr_in peer{};
  socklen_t len = sizeof(peer);
  report << "vip_getpeername_errno "
         << (getpeername(client, reinterpret_cast<sockaddr*>(&peer), &len) == 0 ? 0 : errno)
         << "\n";
  char buf[16];
  report << "vip_recv_errno " << (recv(client, buf, sizeof(buf), MSG_DONTWAIT) < 0 ? errno : 0)
         << "\n";
  len = sizeof(peer);
  report << "direct_getpeername_errno "
         << (getpeername(direct, reinterpret_cast<sockaddr*>(&peer), &len) == 0 ? 0 : errno)
         << "\n";
  report << "direct_reaches " << reached(direct) << "\n";
  if (connect(client, reinterpret_cast<sockaddr*>(&vip), sizeof(vip)) != 0) {
    return finish((report << "error reconnect\n", 2));
  }
  report << "reconnected_reaches " << reached(client) << "\n";
  return finish(0);
}

TEST_F(SockLbTest, ConnectedUdpSocketsOfADepartedBackendAreEnded) {
  std::string cgroup = MakeCgroup();
  ASSERT_OK_AND_ASSIGN(auto lb, BpfLoadBalancer::Open(pin_dir_));
  absl::StatusOr<std::unique_ptr<UdpSocketTerminator>> terminator =
      UdpSocketTerminator::Open(pin_dir_);
  ASSERT_OK(terminator.status());  // Linux 6.5+: CI's kernel has bpf_sock_destroy
  BackendIdAllocator ids;
  auto udp = model::Protocol::kUdp;
  ServiceFrontend fe{Ip("10.96.0.20"), 53, udp};
  std::vector<BackendAddress> backends = {{Ip("127.0.0.2"), 5353, udp},
                                          {Ip("127.0.0.3"), 5353, udp},
                                          {Ip("127.0.0.4"), 5353, udp}};
  ASSERT_OK_AND_ASSIGN(UpdatePlan plan, PlanServiceUpdate({}, OneFrontend("default/dns", fe, backends), ids));
  ASSERT_OK(lb->Apply(plan));
  ASSERT_OK(lb->AttachCgroup(cgroup));

  int report[2], go[2];
  ASSERT_EQ(pipe2(report, O_CLOEXEC), 0);
  ASSERT_EQ(pipe2(go, O_CLOEXEC), 0);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    close(report[0]);
    close(go[1]);
    _exit(TerminatorChild(cgroup, report[1], go[0]));
  }
  close(report[1]);
  close(go[0]);
  // The child's first line names the backend its VIP socket was pointed at.
  std::string first_line;
  char c;
  while (read(report[0], &c, 1) == 1 && c != '\n') first_line += c;
  int first = -1;
  if (first_line.rfind("backend ", 0) == 0) first = std::atoi(first_line.c_str() + 8);
  if (first < 0 || first > 2) {
    close(go[1]);
    waitpid(pid, nullptr, 0);
    FAIL() << first_line << ReadAllFd(report[0]);
  }
  // That backend leaves the service; its connected sockets are ended in the child's
  // namespace.
  std::vector<BackendAddress> rest;
  for (int b = 0; b < 3; ++b) {
    if (b != first) rest.push_back(backends[b]);
  }
  uint32_t rev = lb->RevNatId(fe);
  ASSERT_OK_AND_ASSIGN(UpdatePlan removal,
                       PlanServiceUpdate(plan.programmed, OneFrontend("default/dns", fe, rest), ids));
  ASSERT_EQ(removal.departed.size(), 1u);
  ASSERT_OK(lb->Apply(removal));
  std::vector<net::NetnsFd> namespaces;
  ASSERT_OK_AND_ASSIGN(net::NetnsFd child_ns, net::NetnsFd::OpenPid(pid));
  namespaces.push_back(std::move(child_ns));
  std::vector<UdpSocketTerminator::Target> targets = {{rev, backends[first]}};
  absl::StatusOr<uint64_t> ended = (*terminator)->Terminate(targets, namespaces);
  ASSERT_EQ(write(go[1], "g", 1), 1);
  close(go[1]);
  std::string text = ReadAllFd(report[0]);
  close(report[0]);
  int wstatus = 0;
  ASSERT_EQ(waitpid(pid, &wstatus, 0), pid);
  ASSERT_TRUE(WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0) << text;
  ASSERT_OK(ended.status());
  EXPECT_EQ(*ended, 1u) << text;
  std::map<std::string, std::vector<int>> values = ParseReport(text);
  // The VIP's socket was aborted and disconnected; the one connected straight to the
  // backend was left alone.
  EXPECT_EQ(values["vip_getpeername_errno"], std::vector<int>{ENOTCONN}) << text;
  EXPECT_EQ(values["vip_recv_errno"], std::vector<int>{ECONNABORTED}) << text;
  EXPECT_EQ(values["direct_getpeername_errno"], std::vector<int>{0}) << text;
  EXPECT_EQ(values["direct_reaches"], std::vector<int>{first}) << text;
  // Connected again, it reaches a live backend.
  ASSERT_EQ(values["reconnected_reaches"].size(), 1u) << text;
  EXPECT_GE(values["reconnected_reaches"][0], 0) << text;
  EXPECT_NE(values["reconnected_reaches"][0], first) << text;
  // Nothing left to end (the handle keeps the namespace).
  ASSERT_OK_AND_ASSIGN(uint64_t again, (*terminator)->Terminate(targets, namespaces));
  EXPECT_EQ(again, 0u);
  ASSERT_OK(lb->Uninstall());
}

}  // namespace
}  // namespace loom::lb
