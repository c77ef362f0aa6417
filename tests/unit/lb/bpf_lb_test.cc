// BpfLoadBalancer against the kernel: tc_lb on packets (bpf_prog_test_run_opts), the
// map layout against the objects' BTF, plan execution at 1 / 1,000 / 10,000 services,
// pin reuse across owners and Uninstall.
#include "lb/bpf_lb.h"

#include <cstdlib>
#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <dirent.h>
#include <fcntl.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <netinet/in.h>
#include <sched.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <optional>
#include <cstddef>
#include <cstring>
#include <iostream>
#include <thread>

#include "gtest/gtest.h"
#include "common/strings.h"
#include "lb_maps.h"
#include "sock_destroy.skel.h"
#include "sock_lb.skel.h"
#include "tc_lb.skel.h"
#include "tests/testing/status_matchers.h"
#include "tests/unit/lb/bpf_lb_fixture.h"

namespace loom::lb {
namespace {

using testing::BpfFsFixture;
using testing::Ip;
using testing::OneFrontend;

// ---- packets ----

uint32_t Sum16(const uint8_t* p, size_t n, uint32_t sum = 0) {
  for (size_t i = 0; i + 1 < n; i += 2) sum += (uint32_t{p[i]} << 8) | p[i + 1];
  if (n % 2) sum += uint32_t{p[n - 1]} << 8;
  return sum;
}
uint16_t Fold(uint32_t s) {
  while (s >> 16) s = (s & 0xffff) + (s >> 16);
  return static_cast<uint16_t>(~s & 0xffff);
}

struct Packet {
  std::vector<uint8_t> bytes;
  iphdr* ip() { return reinterpret_cast<iphdr*>(bytes.data() + sizeof(ethhdr)); }
  uint8_t* l4() { return bytes.data() + sizeof(ethhdr) + sizeof(iphdr); }
  size_t l4_len() const { return bytes.size() - sizeof(ethhdr) - sizeof(iphdr); }
  uint16_t sport() { return ntohs(*reinterpret_cast<uint16_t*>(l4())); }
  uint16_t dport() { return ntohs(*reinterpret_cast<uint16_t*>(l4() + 2)); }
  net::Ipv4Address saddr() { return net::Ipv4Address::FromNetworkOrder(ip()->saddr); }
  net::Ipv4Address daddr() { return net::Ipv4Address::FromNetworkOrder(ip()->daddr); }
  size_t csum_off() const { return ip_proto == IPPROTO_TCP ? offsetof(tcphdr, check) : offsetof(udphdr, check); }
  uint32_t Pseudo() {
    uint32_t s = Sum16(reinterpret_cast<uint8_t*>(&ip()->saddr), 8);
    return s + ip_proto + static_cast<uint32_t>(l4_len());
  }
  bool IpChecksumOk() { return Fold(Sum16(reinterpret_cast<uint8_t*>(ip()), sizeof(iphdr))) == 0; }
  bool L4ChecksumOk() { return Fold(Sum16(l4(), l4_len(), Pseudo())) == 0; }
  void FillChecksums() {
    ip()->check = 0;
    ip()->check = htons(Fold(Sum16(reinterpret_cast<uint8_t*>(ip()), sizeof(iphdr))));
    uint16_t* c = reinterpret_cast<uint16_t*>(l4() + csum_off());
    *c = 0;
    *c = htons(Fold(Sum16(l4(), l4_len(), Pseudo())));
  }
  uint8_t ip_proto = IPPROTO_TCP;
};

Packet MakePacket(uint8_t proto, const char* src, uint16_t sport, const char* dst,
                  uint16_t dport) {
  Packet p;
  p.ip_proto = proto;
  size_t l4 = proto == IPPROTO_TCP ? sizeof(tcphdr) : sizeof(udphdr);
  p.bytes.assign(sizeof(ethhdr) + sizeof(iphdr) + l4 + 13, 0xab);
  auto* eth = reinterpret_cast<ethhdr*>(p.bytes.data());
  std::memset(eth, 0, sizeof(*eth));
  eth->h_proto = htons(ETH_P_IP);
  iphdr* ip = p.ip();
  std::memset(ip, 0, sizeof(*ip));
  ip->version = 4;
  ip->ihl = 5;
  ip->ttl = 64;
  ip->protocol = proto;
  ip->tot_len = htons(static_cast<uint16_t>(sizeof(iphdr) + l4 + 13));
  ip->saddr = Ip(src).ToNetworkOrder();
  ip->daddr = Ip(dst).ToNetworkOrder();
  std::memset(p.l4(), 0, l4);
  if (proto == IPPROTO_TCP) {
    auto* th = reinterpret_cast<tcphdr*>(p.l4());
    th->source = htons(sport);
    th->dest = htons(dport);
    th->doff = 5;
    th->syn = 1;
    th->seq = htonl(12345);
  } else {
    auto* uh = reinterpret_cast<udphdr*>(p.l4());
    uh->source = htons(sport);
    uh->dest = htons(dport);
    uh->len = htons(static_cast<uint16_t>(l4 + 13));
  }
  p.FillChecksums();
  return p;
}

// Runs tc_lb on `in`; returns the verdict and the packet as it left.
std::pair<int, Packet> RunTc(int prog_fd, Packet in) {
  Packet out = in;
  LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = in.bytes.data(),
              .data_out = out.bytes.data(),
              .data_size_in = static_cast<__u32>(in.bytes.size()),
              .data_size_out = static_cast<__u32>(out.bytes.size()));
  int err = bpf_prog_test_run_opts(prog_fd, &opts);
  EXPECT_EQ(err, 0) << std::strerror(-err);
  return {static_cast<int>(opts.retval), out};
}

class BpfLbTest : public BpfFsFixture {};

ServiceFrontend Fe(const char* vip, uint16_t port, model::Protocol p = model::Protocol::kTcp) {
  return {Ip(vip), port, p};
}
BackendAddress Be(const char* ip, uint16_t port, model::Protocol p = model::Protocol::kTcp) {
  return {Ip(ip), port, p};
}

TEST_F(BpfLbTest, TcDnatReverseNatRejectAndPass) {
  ASSERT_OK_AND_ASSIGN(auto lb, BpfLoadBalancer::Open(pin_dir_));
  BackendIdAllocator ids;
  for (const ServiceBackendSet& set :
       {OneFrontend("default/web", Fe("10.96.0.10", 80), {Be("10.244.1.5", 8080)}),
        OneFrontend("default/dns", Fe("10.96.0.10", 53, model::Protocol::kUdp),
                    {Be("10.244.1.6", 5353, model::Protocol::kUdp)}),
        OneFrontend("default/empty", Fe("10.96.0.11", 80), {})}) {
    ASSERT_OK_AND_ASSIGN(UpdatePlan plan, PlanServiceUpdate({}, set, ids));
    ASSERT_OK(lb->Apply(plan));
  }
  const int prog = lb->tc_from_pod_fd();
  const int reverse = lb->tc_to_pod_fd();

  // TCP SYN from a pod to the VIP: DNAT to the backend, checksums still valid.
  auto [verdict, syn] = RunTc(prog, MakePacket(IPPROTO_TCP, "10.244.2.7", 40000, "10.96.0.10", 80));
  EXPECT_EQ(verdict, TC_ACT_OK);
  EXPECT_EQ(syn.daddr(), Ip("10.244.1.5"));
  EXPECT_EQ(syn.dport(), 8080);
  EXPECT_EQ(syn.saddr(), Ip("10.244.2.7"));
  EXPECT_EQ(syn.sport(), 40000);
  EXPECT_TRUE(syn.IpChecksumOk());
  EXPECT_TRUE(syn.L4ChecksumOk());

  // The backend's SYN-ACK: source back to VIP:80.
  auto [rverdict, reply] =
      RunTc(reverse, MakePacket(IPPROTO_TCP, "10.244.1.5", 8080, "10.244.2.7", 40000));
  EXPECT_EQ(rverdict, TC_ACT_OK);
  EXPECT_EQ(reply.saddr(), Ip("10.96.0.10"));
  EXPECT_EQ(reply.sport(), 80);
  EXPECT_EQ(reply.daddr(), Ip("10.244.2.7"));
  EXPECT_TRUE(reply.IpChecksumOk());
  EXPECT_TRUE(reply.L4ChecksumOk());

  // A later flow straight to the backend on the same tuple: its SYN drops the stale
  // reply entry, so the backend's answer is not turned into the VIP's.
  Packet direct = MakePacket(IPPROTO_TCP, "10.244.2.7", 40000, "10.244.1.5", 8080);
  auto [dverdict, dpassed] = RunTc(prog, direct);
  EXPECT_EQ(dverdict, TC_ACT_OK);
  EXPECT_EQ(dpassed.bytes, direct.bytes);
  Packet answer = MakePacket(IPPROTO_TCP, "10.244.1.5", 8080, "10.244.2.7", 40000);
  auto [averdict, answered] = RunTc(reverse, answer);
  EXPECT_EQ(averdict, TC_ACT_OK);
  EXPECT_EQ(answered.bytes, answer.bytes);

  // UDP both ways.
  auto [uverdict, udp] = RunTc(prog, MakePacket(IPPROTO_UDP, "10.244.2.7", 41000, "10.96.0.10", 53));
  EXPECT_EQ(uverdict, TC_ACT_OK);
  EXPECT_EQ(udp.daddr(), Ip("10.244.1.6"));
  EXPECT_EQ(udp.dport(), 5353);
  EXPECT_TRUE(udp.IpChecksumOk());
  EXPECT_TRUE(udp.L4ChecksumOk());
  auto [urverdict, ureply] =
      RunTc(reverse, MakePacket(IPPROTO_UDP, "10.244.1.6", 5353, "10.244.2.7", 41000));
  EXPECT_EQ(urverdict, TC_ACT_OK);
  EXPECT_EQ(ureply.saddr(), Ip("10.96.0.10"));
  EXPECT_EQ(ureply.sport(), 53);
  EXPECT_TRUE(ureply.IpChecksumOk());
  EXPECT_TRUE(ureply.L4ChecksumOk());

  // A frontend without backends drops; an address that is no frontend passes untouched.
  auto [sverdict, shot] = RunTc(prog, MakePacket(IPPROTO_TCP, "10.244.2.7", 40001, "10.96.0.11", 80));
  EXPECT_EQ(sverdict, TC_ACT_SHOT);
  Packet other = MakePacket(IPPROTO_TCP, "10.244.2.7", 40002, "10.96.0.99", 80);
  auto [overdict, passed] = RunTc(prog, other);
  EXPECT_EQ(overdict, TC_ACT_OK);
  EXPECT_EQ(passed.bytes, other.bytes);
  Packet wrong_port = MakePacket(IPPROTO_TCP, "10.244.2.7", 40003, "10.96.0.10", 81);
  auto [wverdict, wpassed] = RunTc(prog, wrong_port);
  EXPECT_EQ(wverdict, TC_ACT_OK);
  EXPECT_EQ(wpassed.bytes, wrong_port.bytes);
  ASSERT_OK(lb->Uninstall());
}

TEST_F(BpfLbTest, TcSpreadsFlowsAndReselectsWhenBackendLeaves) {
  ASSERT_OK_AND_ASSIGN(auto lb, BpfLoadBalancer::Open(pin_dir_));
  BackendIdAllocator ids;
  constexpr model::Protocol kUdp = model::Protocol::kUdp;
  auto set = OneFrontend("default/web", Fe("10.96.0.10", 80, kUdp),
                         {Be("10.244.1.1", 80, kUdp), Be("10.244.1.2", 80, kUdp),
                          Be("10.244.1.3", 80, kUdp)});
  ASSERT_OK_AND_ASSIGN(UpdatePlan plan, PlanServiceUpdate({}, set, ids));
  ASSERT_OK(lb->Apply(plan));
  // The Maglev table shares its slots about evenly among the three backend ids.
  uint32_t rev = lb->RevNatId(set.frontends[0].frontend);
  __u32 inner_id = 0;
  ASSERT_EQ(bpf_map_lookup_elem(lb->map_fds().maglev, &rev, &inner_id), 0);
  int inner = bpf_map_get_fd_by_id(inner_id);
  ASSERT_GE(inner, 0);
  std::map<uint32_t, int> owners;
  for (__u32 i = 0; i < LB_MAGLEV_SIZE; ++i) {
    __u32 id = 0;
    ASSERT_EQ(bpf_map_lookup_elem(inner, &i, &id), 0);
    owners[id]++;
  }
  close(inner);
  ASSERT_EQ(owners.size(), 3u);
  for (auto [id, n] : owners) EXPECT_NEAR(n, LB_MAGLEV_SIZE / 3, 100) << id;
  std::map<uint32_t, int> hits;
  for (uint16_t port = 10000; port < 13000; ++port) {
    auto [v, out] = RunTc(lb->tc_from_pod_fd(), MakePacket(IPPROTO_UDP, "10.244.2.7", port, "10.96.0.10", 80));
    ASSERT_EQ(v, TC_ACT_OK);
    hits[out.daddr().ToHostOrder()]++;
  }
  ASSERT_EQ(hits.size(), 3u);
  for (auto [ip, n] : hits) EXPECT_NEAR(n, 1000, 100) << net::Ipv4Address::FromHostOrder(ip).ToString();
  // 10.244.1.3 leaves: a UDP flow tracked to it is placed on another backend.
  uint16_t port = 10000;
  for (; port < 13000; ++port) {
    auto [v, out] = RunTc(lb->tc_from_pod_fd(), MakePacket(IPPROTO_UDP, "10.244.2.7", port, "10.96.0.10", 80));
    if (out.daddr() == Ip("10.244.1.3")) break;
  }
  auto set2 = OneFrontend("default/web", Fe("10.96.0.10", 80, kUdp),
                          {Be("10.244.1.1", 80, kUdp), Be("10.244.1.2", 80, kUdp)});
  ASSERT_OK_AND_ASSIGN(UpdatePlan plan2, PlanServiceUpdate(plan.programmed, set2, ids));
  ASSERT_OK(lb->Apply(plan2));
  auto [v, out] = RunTc(lb->tc_from_pod_fd(), MakePacket(IPPROTO_UDP, "10.244.2.7", port, "10.96.0.10", 80));
  EXPECT_EQ(v, TC_ACT_OK);
  EXPECT_NE(out.daddr(), Ip("10.244.1.3"));
  EXPECT_NE(out.daddr(), Ip("10.96.0.10"));
  ASSERT_OK(lb->Uninstall());
}

// ---- TCP state in the connection map ----

constexpr uint8_t kFin = 0x01, kSyn = 0x02, kRst = 0x04, kAck = 0x10;

Packet Tcp(const char* src, uint16_t sport, const char* dst, uint16_t dport, uint8_t flags) {
  Packet p = MakePacket(IPPROTO_TCP, src, sport, dst, dport);
  p.l4()[13] = flags;
  p.FillChecksums();
  return p;
}

lb_ct_key CtKey(const char* src, uint16_t sport, const char* dst, uint16_t dport, uint8_t dir,
                uint8_t proto = IPPROTO_TCP) {
  lb_ct_key k{};
  k.saddr = Ip(src).ToNetworkOrder();
  k.daddr = Ip(dst).ToNetworkOrder();
  k.sport = htons(sport);
  k.dport = htons(dport);
  k.proto = proto;
  k.dir = dir;
  return k;
}

std::optional<lb_ct_entry> CtEntry(const BpfLoadBalancer& lb, const lb_ct_key& key) {
  lb_ct_entry e{};
  if (bpf_map_lookup_elem(lb.map_fds().ct, &key, &e) != 0) return std::nullopt;
  return e;
}

uint64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1000000000u + uint64_t(ts.tv_nsec);
}

class TcTcpStateTest : public BpfLbTest {
 protected:
  void SetUp() override {
    BpfLbTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    ASSERT_OK_AND_ASSIGN(lb_, BpfLoadBalancer::Open(pin_dir_));
    set_ = OneFrontend("default/web", Fe("10.96.0.10", 80),
                       {Be("10.244.1.1", 8080), Be("10.244.1.2", 8080)});
    ASSERT_OK_AND_ASSIGN(UpdatePlan plan, PlanServiceUpdate({}, set_, ids_));
    ASSERT_OK(lb_->Apply(plan));
    programmed_ = plan.programmed;
  }
  void TearDown() override {
    if (lb_ != nullptr) {
      EXPECT_OK(lb_->Uninstall());
    }
    BpfLbTest::TearDown();
  }
  // Client 10.244.2.7:`port` -> VIP: the verdict and the backend the packet went to.
  std::pair<int, std::string> Forward(uint16_t port, uint8_t flags) {
    auto [v, out] = RunTc(lb_->tc_from_pod_fd(), Tcp("10.244.2.7", port, "10.96.0.10", 80, flags));
    return {v, StrCat(out.daddr().ToString(), ":", out.dport())};
  }
  // Backend `ip`:8080 -> the client: the source the client sees.
  std::string Reply(const char* ip, uint16_t port, uint8_t flags) {
    auto [v, out] = RunTc(lb_->tc_to_pod_fd(), Tcp(ip, 8080, "10.244.2.7", port, flags));
    EXPECT_EQ(v, TC_ACT_OK);
    return StrCat(out.saddr().ToString(), ":", out.sport());
  }
  lb_ct_key ForwardKey(uint16_t port) {
    return CtKey("10.244.2.7", port, "10.96.0.10", 80, LB_CT_FORWARD);
  }
  lb_ct_key ReplyKey(const std::string& backend, uint16_t port) {
    return CtKey(backend.substr(0, backend.find(':')).c_str(), 8080, "10.244.2.7", port,
                 LB_CT_REPLY);
  }
  static std::string Other(const std::string& backend) {
    return backend == "10.244.1.1:8080" ? "10.244.1.2:8080" : "10.244.1.1:8080";
  }
  // Points the tracked flow on `port` at `backend`, both entries (as if it had been
  // placed there).
  void Retarget(uint16_t port, const std::string& backend) {
    lb_ct_entry e = *CtEntry(*lb_, ForwardKey(port));
    e.backend_ip = Ip(backend.substr(0, backend.find(':')).c_str()).ToNetworkOrder();
    e.backend_id = *ids_.Find(Be(backend.substr(0, backend.find(':')).c_str(), 8080));
    lb_ct_key key = ForwardKey(port);
    ASSERT_EQ(bpf_map_update_elem(lb_->map_fds().ct, &key, &e, BPF_ANY), 0);
    key = ReplyKey(backend, port);
    ASSERT_EQ(bpf_map_update_elem(lb_->map_fds().ct, &key, &e, BPF_ANY), 0);
  }

  std::unique_ptr<BpfLoadBalancer> lb_;
  BackendIdAllocator ids_;
  ServiceBackendSet set_;
  ProgrammedService programmed_;
};

TEST_F(TcTcpStateTest, EntriesFollowTheHandshakeAndTheCloseBothWays) {
  auto [v, backend] = Forward(40000, kSyn);
  ASSERT_EQ(v, TC_ACT_OK);
  auto fwd = CtEntry(*lb_, ForwardKey(40000));
  ASSERT_TRUE(fwd.has_value());
  EXPECT_EQ(StrCat(net::Ipv4Address::FromNetworkOrder(fwd->backend_ip).ToString(), ":",
                   ntohs(fwd->backend_port)),
            backend);
  EXPECT_EQ(fwd->seen_reply, 0);
  EXPECT_EQ(lb_ct_lifetime_s(IPPROTO_TCP, &*fwd), uint32_t{LB_CT_LIFETIME_TCP_SYN_S});

  // The SYN-ACK establishes both entries.
  EXPECT_EQ(Reply(backend.substr(0, backend.find(':')).c_str(), 40000, kSyn | kAck),
            "10.96.0.10:80");
  fwd = CtEntry(*lb_, ForwardKey(40000));
  auto rev = CtEntry(*lb_, ReplyKey(backend, 40000));
  ASSERT_TRUE(fwd && rev);
  EXPECT_EQ(fwd->seen_reply, 1);
  EXPECT_EQ(rev->seen_reply, 1);
  EXPECT_EQ(lb_ct_lifetime_s(IPPROTO_TCP, &*fwd), uint32_t{LB_CT_LIFETIME_TCP_S});

  // The client half-closes: still established (the backend may go on sending).
  EXPECT_EQ(Forward(40000, kFin | kAck).second, backend);
  fwd = CtEntry(*lb_, ForwardKey(40000));
  rev = CtEntry(*lb_, ReplyKey(backend, 40000));
  EXPECT_EQ(fwd->fin_forward, 1);
  EXPECT_EQ(rev->fin_forward, 1);
  EXPECT_EQ(lb_ct_lifetime_s(IPPROTO_TCP, &*fwd), uint32_t{LB_CT_LIFETIME_TCP_S});
  // The backend's FIN closes the flow: both entries get the short lifetime.
  Reply(backend.substr(0, backend.find(':')).c_str(), 40000, kFin | kAck);
  fwd = CtEntry(*lb_, ForwardKey(40000));
  rev = CtEntry(*lb_, ReplyKey(backend, 40000));
  EXPECT_EQ(lb_ct_lifetime_s(IPPROTO_TCP, &*fwd), uint32_t{LB_CT_LIFETIME_TCP_CLOSED_S});
  EXPECT_EQ(lb_ct_lifetime_s(IPPROTO_TCP, &*rev), uint32_t{LB_CT_LIFETIME_TCP_CLOSED_S});
  // The last ACK still goes to the backend.
  EXPECT_EQ(Forward(40000, kAck).second, backend);

  // A RST from either side closes a flow too.
  auto [v2, backend2] = Forward(40001, kSyn);
  ASSERT_EQ(v2, TC_ACT_OK);
  Reply(backend2.substr(0, backend2.find(':')).c_str(), 40001, kSyn | kAck);
  Reply(backend2.substr(0, backend2.find(':')).c_str(), 40001, kRst);
  fwd = CtEntry(*lb_, ForwardKey(40001));
  EXPECT_EQ(fwd->rst, 1);
  EXPECT_EQ(lb_ct_lifetime_s(IPPROTO_TCP, &*fwd), uint32_t{LB_CT_LIFETIME_TCP_CLOSED_S});
}

TEST_F(TcTcpStateTest, ASynReusingAClosedFlowsTupleIsPlacedAgain) {
  auto [v, backend] = Forward(40000, kSyn);
  ASSERT_EQ(v, TC_ACT_OK);
  Reply(backend.substr(0, backend.find(':')).c_str(), 40000, kSyn | kAck);
  // As if this flow had been placed on the other backend (Maglev picks `backend` for
  // the tuple, so a new placement shows).
  Retarget(40000, Other(backend));
  // An open flow keeps its backend, a retransmitted or reused SYN too.
  EXPECT_EQ(Forward(40000, kAck).second, Other(backend));
  EXPECT_EQ(Forward(40000, kSyn).second, Other(backend));
  // Closed (FIN both ways): the next SYN on the tuple is a new flow, placed anew.
  Forward(40000, kFin | kAck);
  Reply(Other(backend).substr(0, Other(backend).find(':')).c_str(), 40000, kFin | kAck);
  EXPECT_EQ(Forward(40000, kSyn).second, backend);
  auto fwd = CtEntry(*lb_, ForwardKey(40000));
  ASSERT_TRUE(fwd.has_value());
  EXPECT_EQ(fwd->fin_forward + fwd->fin_reply + fwd->seen_reply + fwd->rst, 0);
}

TEST_F(TcTcpStateTest, AnEstablishedFlowKeepsItsBackendAfterTheBackendLeaves) {
  // Established flows on both backends, and a SYN to 10.244.1.1 not yet answered.
  std::map<std::string, uint16_t> port_of;
  uint16_t pending = 0;
  for (uint16_t port = 41000; port < 41100 && (port_of.size() < 2 || pending == 0); ++port) {
    auto [v, backend] = Forward(port, kSyn);
    ASSERT_EQ(v, TC_ACT_OK);
    if (port_of.contains(backend) && backend == "10.244.1.1:8080" && pending == 0) {
      pending = port;
      continue;
    }
    Reply(backend.substr(0, backend.find(':')).c_str(), port, kSyn | kAck);
    port_of.emplace(backend, port);
  }
  ASSERT_EQ(port_of.size(), 2u);
  ASSERT_NE(pending, 0);
  // 10.244.1.1 goes terminating (no slot, entry kept), then leaves the service.
  ServiceBackendSet draining = OneFrontend("default/web", Fe("10.96.0.10", 80), {Be("10.244.1.2", 8080)});
  draining.frontends[0].draining = {Be("10.244.1.1", 8080)};
  ASSERT_OK_AND_ASSIGN(UpdatePlan plan, PlanServiceUpdate(programmed_, draining, ids_));
  ASSERT_OK(lb_->Apply(plan));
  uint16_t leaving = port_of["10.244.1.1:8080"];
  EXPECT_EQ(Forward(leaving, kAck).second, "10.244.1.1:8080");
  ASSERT_OK_AND_ASSIGN(UpdatePlan gone,
                       PlanServiceUpdate(plan.programmed,
                                         OneFrontend("default/web", Fe("10.96.0.10", 80),
                                                     {Be("10.244.1.2", 8080)}),
                                         ids_));
  ASSERT_OK(lb_->Apply(gone));
  ASSERT_FALSE(ids_.Find(Be("10.244.1.1", 8080)).has_value());  // no backend entry now
  // Its established flow still goes there, both ways, to its end.
  EXPECT_EQ(Forward(leaving, kAck).second, "10.244.1.1:8080");
  EXPECT_EQ(Reply("10.244.1.1", leaving, kAck), "10.96.0.10:80");
  EXPECT_EQ(Forward(leaving, kFin | kAck).second, "10.244.1.1:8080");
  EXPECT_EQ(Reply("10.244.1.1", leaving, kFin | kAck), "10.96.0.10:80");
  // A new connection reusing its tuple goes to a backend of the service.
  EXPECT_EQ(Forward(leaving, kSyn).second, "10.244.1.2:8080");
  // So does the SYN retransmitted for a connection its backend left before answering.
  EXPECT_EQ(Forward(pending, kSyn).second, "10.244.1.2:8080");
  // The other backend's flow never moved.
  EXPECT_EQ(Forward(port_of["10.244.1.2:8080"], kAck).second, "10.244.1.2:8080");
}

TEST_F(TcTcpStateTest, ExpiredEntriesAreIgnoredAndCollected) {
  auto [v, backend] = Forward(40000, kSyn);
  ASSERT_EQ(v, TC_ACT_OK);
  Reply(backend.substr(0, backend.find(':')).c_str(), 40000, kSyn | kAck);
  auto [v2, backend2] = Forward(40001, kSyn);
  ASSERT_EQ(v2, TC_ACT_OK);
  Reply(backend2.substr(0, backend2.find(':')).c_str(), 40001, kSyn | kAck);
  Forward(40001, kFin | kAck);
  Reply(backend2.substr(0, backend2.find(':')).c_str(), 40001, kFin | kAck);
  // The closed flow's entries were last seen 11 s ago: past their lifetime.
  for (lb_ct_key key : {ForwardKey(40001), ReplyKey(backend2, 40001)}) {
    lb_ct_entry e = *CtEntry(*lb_, key);
    e.last_seen_ns = NowNs() - 11ull * 1000000000u;
    ASSERT_EQ(bpf_map_update_elem(lb_->map_fds().ct, &key, &e, BPF_ANY), 0);
  }
  // A late packet from its backend is no longer turned into the VIP's.
  EXPECT_EQ(Reply(backend2.substr(0, backend2.find(':')).c_str(), 40001, kAck),
            StrCat(backend2.substr(0, backend2.find(':')), ":8080"));
  ASSERT_OK_AND_ASSIGN(size_t expired, lb_->ExpireFlows());
  EXPECT_EQ(expired, 2u);
  EXPECT_FALSE(CtEntry(*lb_, ForwardKey(40001)).has_value());
  EXPECT_FALSE(CtEntry(*lb_, ReplyKey(backend2, 40001)).has_value());
  // The open flow stays.
  EXPECT_TRUE(CtEntry(*lb_, ForwardKey(40000)).has_value());
  EXPECT_TRUE(CtEntry(*lb_, ReplyKey(backend, 40000)).has_value());
  ASSERT_OK_AND_ASSIGN(expired, lb_->ExpireFlows());
  EXPECT_EQ(expired, 0u);
}

// loomd sweeps every 15 s: a map of 200,000 entries, half of them expired, in one pass.
TEST_F(BpfLbTest, ExpireFlowsSweepsALargeTable) {
  ASSERT_OK_AND_ASSIGN(auto lb, BpfLoadBalancer::Open(pin_dir_));
  constexpr uint32_t kEntries = 200000;
  std::vector<lb_ct_key> keys(kEntries);
  std::vector<lb_ct_entry> values(kEntries);
  uint64_t now = NowNs();
  for (uint32_t i = 0; i < kEntries; ++i) {
    keys[i].saddr = htonl(0x0af40000u + i / 60000);
    keys[i].daddr = htonl(0x0a600001u);
    keys[i].sport = htons(static_cast<uint16_t>(1024 + i % 60000));
    keys[i].dport = htons(80);
    keys[i].proto = IPPROTO_TCP;
    keys[i].dir = LB_CT_FORWARD;
    values[i].seen_reply = 1;
    if (i % 2 == 0) {  // closed 11 s ago
      values[i].fin_forward = values[i].fin_reply = 1;
      values[i].last_seen_ns = now - 11ull * 1000000000u;
    } else {
      values[i].last_seen_ns = now;
    }
  }
  __u32 count = kEntries;
  LIBBPF_OPTS(bpf_map_batch_opts, opts);
  ASSERT_EQ(bpf_map_update_batch(lb->map_fds().ct, keys.data(), values.data(), &count, &opts), 0);
  auto t0 = std::chrono::steady_clock::now();
  ASSERT_OK_AND_ASSIGN(size_t expired, lb->ExpireFlows());
  double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(expired, kEntries / 2);
  lb_ct_entry e{};
  EXPECT_NE(bpf_map_lookup_elem(lb->map_fds().ct, &keys[0], &e), 0);
  EXPECT_EQ(bpf_map_lookup_elem(lb->map_fds().ct, &keys[1], &e), 0);
  std::cout << "ExpireFlows: " << kEntries << " entries, " << expired << " expired, " << ms
            << " ms\n";
  ASSERT_OK(lb->Uninstall());
}

// ---- layout: lb_maps.h as compiled into the objects ----

struct Member {
  const char* name;
  size_t offset;
};

void ExpectLayout(const btf* b, const char* type, size_t size, std::vector<Member> members) {
  int id = btf__find_by_name_kind(b, type, BTF_KIND_STRUCT);
  ASSERT_GT(id, 0) << type << " missing from BTF";
  const btf_type* t = btf__type_by_id(b, id);
  EXPECT_EQ(t->size, size) << type;
  const btf_member* m = btf_members(t);
  std::map<std::string, size_t> offsets;
  for (int i = 0; i < btf_vlen(t); ++i) {
    offsets[btf__name_by_offset(b, m[i].name_off)] = btf_member_bit_offset(t, i) / 8;
  }
  for (const Member& want : members) {
    ASSERT_TRUE(offsets.contains(want.name)) << type << "." << want.name;
    EXPECT_EQ(offsets[want.name], want.offset) << type << "." << want.name;
  }
}

#define LOOM_MEMBER(type, field) Member{#field, offsetof(type, field)}

void ExpectSharedLayouts(const btf* b) {
  ExpectLayout(b, "lb_service_key", sizeof(lb_service_key),
               {LOOM_MEMBER(lb_service_key, vip), LOOM_MEMBER(lb_service_key, dport),
                LOOM_MEMBER(lb_service_key, proto), LOOM_MEMBER(lb_service_key, slot)});
  ExpectLayout(b, "lb_service", sizeof(lb_service),
               {LOOM_MEMBER(lb_service, backend_id), LOOM_MEMBER(lb_service, rev_nat_id),
                LOOM_MEMBER(lb_service, flags), LOOM_MEMBER(lb_service, affinity_timeout_s)});
  ExpectLayout(b, "lb_backend", sizeof(lb_backend),
               {LOOM_MEMBER(lb_backend, ip), LOOM_MEMBER(lb_backend, port),
                LOOM_MEMBER(lb_backend, proto), LOOM_MEMBER(lb_backend, flags)});
  ExpectLayout(b, "lb_rev_nat", sizeof(lb_rev_nat),
               {LOOM_MEMBER(lb_rev_nat, vip), LOOM_MEMBER(lb_rev_nat, port)});
  ExpectLayout(b, "lb_affinity_key", sizeof(lb_affinity_key),
               {LOOM_MEMBER(lb_affinity_key, client), LOOM_MEMBER(lb_affinity_key, rev_nat_id)});
  ExpectLayout(b, "lb_affinity", sizeof(lb_affinity),
               {LOOM_MEMBER(lb_affinity, backend_id), LOOM_MEMBER(lb_affinity, last_used_ns)});
}

TEST(BpfLbLayout, MapStructsMatchObjectsBtf) {
  sock_lb* sock = sock_lb__open();
  ASSERT_NE(sock, nullptr);
  const btf* sb = bpf_object__btf(sock->obj);
  ASSERT_NE(sb, nullptr);
  ExpectSharedLayouts(sb);
  ExpectLayout(sb, "lb_sock_revnat_key", sizeof(lb_sock_revnat_key),
               {LOOM_MEMBER(lb_sock_revnat_key, cookie), LOOM_MEMBER(lb_sock_revnat_key, ip),
                LOOM_MEMBER(lb_sock_revnat_key, port)});
  ExpectLayout(sb, "lb_sock_revnat", sizeof(lb_sock_revnat),
               {LOOM_MEMBER(lb_sock_revnat, vip), LOOM_MEMBER(lb_sock_revnat, port),
                LOOM_MEMBER(lb_sock_revnat, rev_nat_id)});
  sock_lb__destroy(sock);

  tc_lb* tc = tc_lb__open();
  ASSERT_NE(tc, nullptr);
  const btf* tb = bpf_object__btf(tc->obj);
  ASSERT_NE(tb, nullptr);
  ExpectSharedLayouts(tb);
  ExpectLayout(tb, "lb_ct_key", sizeof(lb_ct_key),
               {LOOM_MEMBER(lb_ct_key, saddr), LOOM_MEMBER(lb_ct_key, daddr),
                LOOM_MEMBER(lb_ct_key, sport), LOOM_MEMBER(lb_ct_key, dport),
                LOOM_MEMBER(lb_ct_key, proto), LOOM_MEMBER(lb_ct_key, dir)});
  ExpectLayout(tb, "lb_ct_entry", sizeof(lb_ct_entry),
               {LOOM_MEMBER(lb_ct_entry, backend_id), LOOM_MEMBER(lb_ct_entry, rev_nat_id),
                LOOM_MEMBER(lb_ct_entry, last_seen_ns), LOOM_MEMBER(lb_ct_entry, backend_ip),
                LOOM_MEMBER(lb_ct_entry, backend_port), LOOM_MEMBER(lb_ct_entry, seen_reply),
                LOOM_MEMBER(lb_ct_entry, rst), LOOM_MEMBER(lb_ct_entry, fin_forward),
                LOOM_MEMBER(lb_ct_entry, fin_reply)});
  ExpectLayout(tb, "lb_node_config", sizeof(lb_node_config),
               {LOOM_MEMBER(lb_node_config, node_ip), LOOM_MEMBER(lb_node_config, snat_ip)});
  ExpectLayout(tb, "lb_nodeport_nat_key", sizeof(lb_nodeport_nat_key),
               {LOOM_MEMBER(lb_nodeport_nat_key, backend_ip),
                LOOM_MEMBER(lb_nodeport_nat_key, backend_port),
                LOOM_MEMBER(lb_nodeport_nat_key, snat_port),
                LOOM_MEMBER(lb_nodeport_nat_key, proto)});
  ExpectLayout(tb, "lb_nodeport_nat", sizeof(lb_nodeport_nat),
               {LOOM_MEMBER(lb_nodeport_nat, client_ip), LOOM_MEMBER(lb_nodeport_nat, client_port),
                LOOM_MEMBER(lb_nodeport_nat, rev_nat_id)});
  tc_lb__destroy(tc);

  sock_destroy* sd = sock_destroy__open();
  ASSERT_NE(sd, nullptr);
  const btf* db = bpf_object__btf(sd->obj);
  ASSERT_NE(db, nullptr);
  ExpectLayout(db, "lb_destroy_target", sizeof(lb_destroy_target),
               {LOOM_MEMBER(lb_destroy_target, rev_nat_id), LOOM_MEMBER(lb_destroy_target, ip),
                LOOM_MEMBER(lb_destroy_target, port)});
  ExpectLayout(db, "lb_sock_revnat", sizeof(lb_sock_revnat),
               {LOOM_MEMBER(lb_sock_revnat, vip), LOOM_MEMBER(lb_sock_revnat, port),
                LOOM_MEMBER(lb_sock_revnat, rev_nat_id)});
  sock_destroy__destroy(sd);
}

// ---- plans at scale ----

ServiceBackendSet NumberedService(int i, int first_backend) {
  std::vector<BackendAddress> backends;
  for (int k = 0; k < 3; ++k) {
    backends.push_back({net::Ipv4Address::FromHostOrder(0x0af40000u + first_backend + k), 8080,
                        model::Protocol::kTcp});
  }
  return OneFrontend(StrCat("default/s", i),
                     {net::Ipv4Address::FromHostOrder(0x0a600000u + i + 1), 80,
                      model::Protocol::kTcp},
                     backends);
}

// Functional at small sizes in the default run; the bench label runs it at 1, 1,000
// and 10,000 services (LOOM_LB_SCALE) and the figures go to docs/benchmarks.md.
std::vector<int> ScaleSizes() {
  std::vector<int> sizes;
  const char* env = std::getenv("LOOM_LB_SCALE");
  std::string text = env != nullptr ? env : "1,100";
  size_t start = 0;
  while (start < text.size()) {
    size_t comma = text.find(',', start);
    sizes.push_back(std::atoi(text.substr(start, comma - start).c_str()));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return sizes;
}

TEST_F(BpfLbTest, BackendChangeAtScale) {
  for (int services : ScaleSizes()) {
    std::string dir = StrCat(pin_dir_, services);
    ASSERT_OK_AND_ASSIGN(auto lb, BpfLoadBalancer::Open(dir));
    BackendIdAllocator ids;
    std::vector<ProgrammedService> state(services);
    // The initial load as loomd does it: one batch (ApplyAll), whose outer-map updates
    // run from several threads.
    auto start = std::chrono::steady_clock::now();
    std::vector<UpdatePlan> plans;
    for (int i = 0; i < services; ++i) {
      ASSERT_OK_AND_ASSIGN(UpdatePlan plan, PlanServiceUpdate({}, NumberedService(i, i * 3), ids));
      state[i] = plan.programmed;
      plans.push_back(std::move(plan));
    }
    ASSERT_OK(lb->ApplyAll(plans));
    double load_ms = std::chrono::duration<double, std::milli>(
                         std::chrono::steady_clock::now() - start).count();
    // Every service resolves, with its Maglev table in place.
    for (int i : {0, services / 2, services - 1}) {
      uint32_t rev = lb->RevNatId(state[i].frontends[0].frontend);
      ASSERT_NE(rev, 0u) << i;
      __u32 inner_id = 0;
      ASSERT_EQ(bpf_map_lookup_elem(lb->map_fds().maglev, &rev, &inner_id), 0) << i;
    }
    // One backend of the last service replaced (a fresh address), best of 5 rounds.
    double best_us = 1e9, worst_us = 0;
    for (int round = 0; round < 5; ++round) {
      auto t0 = std::chrono::steady_clock::now();
      ServiceBackendSet next = NumberedService(services - 1, (services - 1) * 3);
      next.frontends[0].backends[2].ip =
          net::Ipv4Address::FromHostOrder(0x0af50000u + round);
      ASSERT_OK_AND_ASSIGN(UpdatePlan plan, PlanServiceUpdate(state.back(), next, ids));
      ASSERT_OK(lb->Apply(plan));
      state.back() = plan.programmed;
      double us = std::chrono::duration<double, std::micro>(
                      std::chrono::steady_clock::now() - t0).count();
      best_us = std::min(best_us, us);
      worst_us = std::max(worst_us, us);
    }
    // Every service removed in one batch.
    auto t0 = std::chrono::steady_clock::now();
    plans.clear();
    for (int i = 0; i < services; ++i) {
      ASSERT_OK_AND_ASSIGN(UpdatePlan plan, PlanServiceUpdate(state[i], {}, ids));
      plans.push_back(std::move(plan));
    }
    ASSERT_OK(lb->ApplyAll(plans));
    double remove_ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    __u32 key = 0;
    EXPECT_NE(bpf_map_get_next_key(lb->map_fds().maglev, nullptr, &key), 0);  // no table left
    EXPECT_NE(bpf_map_get_next_key(lb->map_fds().services, nullptr, &key), 0);
    std::cout << "services=" << services << " initial_load_ms=" << load_ms
              << " backend_change_us best=" << best_us << " worst=" << worst_us
              << " remove_all_ms=" << remove_ms << "\n";
    RecordProperty(StrCat("backend_change_us_", services), static_cast<int>(best_us));
    ASSERT_OK(lb->Uninstall());
  }
}

// ---- lifecycle ----

std::vector<uint32_t> MapIds(const LbMapFds& fds) {
  std::vector<uint32_t> out;
  for (int fd : {fds.services, fds.backends, fds.rev_nat, fds.maglev, fds.affinity,
                 fds.sock_revnat, fds.ct}) {
    bpf_map_info info{};
    __u32 len = sizeof(info);
    EXPECT_EQ(bpf_obj_get_info_by_fd(fd, &info, &len), 0);
    out.push_back(info.id);
  }
  return out;
}

std::vector<std::string> List(const std::string& dir) {
  std::vector<std::string> names;
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return names;
  while (dirent* e = readdir(d)) {
    if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0) names.push_back(e->d_name);
  }
  closedir(d);
  return names;
}

__u32 CgroupProgCount(const std::string& cgroup, bpf_attach_type type) {
  int fd = open(cgroup.c_str(), O_RDONLY | O_DIRECTORY);
  __u32 count = 0;
  EXPECT_EQ(bpf_prog_query(fd, type, 0, nullptr, nullptr, &count), 0);
  close(fd);
  return count;
}

// An older loomd pinned lb_ct with 16-byte entries: a new one replaces that map
// instead of failing to load.
TEST_F(BpfLbTest, APinnedMapOfAnotherLayoutIsReplaced) {
  ASSERT_EQ(mkdir(pin_dir_.c_str(), 0700), 0);
  int old = bpf_map_create(BPF_MAP_TYPE_LRU_HASH, "lb_ct", sizeof(lb_ct_key), 16, LB_CT_ENTRIES,
                           nullptr);
  ASSERT_GE(old, 0);
  ASSERT_EQ(bpf_obj_pin(old, StrCat(pin_dir_, "/lb_ct").c_str()), 0);
  close(old);
  ASSERT_OK_AND_ASSIGN(auto lb, BpfLoadBalancer::Open(pin_dir_));
  bpf_map_info info{};
  __u32 len = sizeof(info);
  ASSERT_EQ(bpf_obj_get_info_by_fd(lb->map_fds().ct, &info, &len), 0);
  EXPECT_EQ(info.value_size, sizeof(lb_ct_entry));
  ASSERT_OK(lb->Uninstall());
}

TEST_F(BpfLbTest, RestartReusesPinsAndUninstallRemovesEverything) {
  std::string cgroup = MakeCgroup();
  std::vector<uint32_t> first_ids;
  ServiceFrontend fe = Fe("10.96.0.10", 80);
  BackendIdAllocator ids;
  uint32_t rev = 0;
  {
    ASSERT_OK_AND_ASSIGN(auto lb, BpfLoadBalancer::Open(pin_dir_));
    first_ids = MapIds(lb->map_fds());
    ASSERT_OK_AND_ASSIGN(UpdatePlan plan,
                         PlanServiceUpdate({}, OneFrontend("default/web", fe, {Be("10.244.1.5", 80)}), ids));
    ASSERT_OK(lb->Apply(plan));
    rev = lb->RevNatId(fe);
    ASSERT_NE(rev, 0u);
    ASSERT_OK(lb->AttachCgroup(cgroup));
    EXPECT_EQ(CgroupProgCount(cgroup, BPF_CGROUP_INET4_CONNECT), 1u);
  }  // no Uninstall: everything stays
  EXPECT_EQ(CgroupProgCount(cgroup, BPF_CGROUP_INET4_CONNECT), 1u);
  EXPECT_EQ(CgroupProgCount(cgroup, BPF_CGROUP_UDP4_RECVMSG), 1u);

  ASSERT_OK_AND_ASSIGN(auto lb, BpfLoadBalancer::Open(pin_dir_));
  EXPECT_EQ(MapIds(lb->map_fds()), first_ids);
  EXPECT_EQ(lb->RevNatId(fe), rev);  // read back from the maps
  lb_service_key key{};
  key.vip = fe.vip.ToNetworkOrder();
  key.dport = htons(80);
  key.proto = IPPROTO_TCP;
  lb_service svc{};
  EXPECT_EQ(bpf_map_lookup_elem(lb->map_fds().services, &key, &svc), 0);
  EXPECT_EQ(svc.backend_id, 1u);
  ASSERT_OK(lb->AttachCgroup(cgroup));  // switches the pinned links, no second attachment
  EXPECT_EQ(CgroupProgCount(cgroup, BPF_CGROUP_INET4_CONNECT), 1u);

  // tc on lo of a private network namespace (this thread's only).
  absl::Status tc_status;
  int attached_ingress = -1, after_uninstall = -1;
  std::thread([&] {
    if (unshare(CLONE_NEWNET) != 0) {
      tc_status = absl::InternalError("unshare");
      return;
    }
    tc_status = lb->AttachTc(1);
    LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = 1, .attach_point = BPF_TC_INGRESS);
    LIBBPF_OPTS(bpf_tc_opts, q, .handle = 0x10c, .priority = 1);
    attached_ingress = bpf_tc_query(&hook, &q);
    if (tc_status.ok()) tc_status = lb->Uninstall();
    LIBBPF_OPTS(bpf_tc_opts, q2, .handle = 0x10c, .priority = 1);
    after_uninstall = bpf_tc_query(&hook, &q2);
  }).join();
  ASSERT_OK(tc_status);
  EXPECT_EQ(attached_ingress, 0);
  EXPECT_NE(after_uninstall, 0);
  EXPECT_EQ(List(pin_dir_), std::vector<std::string>{});
  EXPECT_EQ(CgroupProgCount(cgroup, BPF_CGROUP_INET4_CONNECT), 0u);
  EXPECT_EQ(CgroupProgCount(cgroup, BPF_CGROUP_INET4_GETPEERNAME), 0u);
}

}  // namespace
}  // namespace loom::lb
