// Proves the BPF build chain: the object compiled by loom_bpf_object() loads through
// its generated skeleton, its const volatile configuration is applied, and it runs
// on a packet through bpf_prog_test_run_opts.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <netinet/in.h>

#include <cstring>

#include "gtest/gtest.h"
#include "packet_counter.skel.h"
#include "tests/testing/privileged.h"

namespace {

struct PacketCount {
  __u64 packets;
  __u64 bytes;
};

std::vector<unsigned char> Ipv4Frame(size_t payload) {
  std::vector<unsigned char> frame(sizeof(ethhdr) + sizeof(iphdr) + payload, 0);
  auto* eth = reinterpret_cast<ethhdr*>(frame.data());
  eth->h_proto = htons(ETH_P_IP);
  auto* ip = reinterpret_cast<iphdr*>(frame.data() + sizeof(ethhdr));
  ip->version = 4;
  ip->ihl = 5;
  ip->ttl = 64;
  ip->protocol = IPPROTO_UDP;
  ip->tot_len = htons(static_cast<uint16_t>(sizeof(iphdr) + payload));
  return frame;
}

TEST(BpfToolchain, SkeletonLoadsAndRuns) {
  LOOM_REQUIRE_ROOT();
  packet_counter* skel = packet_counter__open();
  ASSERT_NE(skel, nullptr) << "open: " << std::strerror(errno);
  skel->rodata->verdict = TC_ACT_SHOT;
  int err = packet_counter__load(skel);
  ASSERT_EQ(err, 0) << "load: " << std::strerror(-err);

  std::vector<unsigned char> frame = Ipv4Frame(64);
  LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame.data(),
              .data_size_in = static_cast<__u32>(frame.size()), .repeat = 3);
  err = bpf_prog_test_run_opts(bpf_program__fd(skel->progs.count_ipv4), &opts);
  EXPECT_EQ(err, 0) << std::strerror(-err);
  EXPECT_EQ(opts.retval, static_cast<__u32>(TC_ACT_SHOT));

  __u32 key = 0;
  PacketCount count{};
  ASSERT_EQ(bpf_map_lookup_elem(bpf_map__fd(skel->maps.counts), &key, &count), 0);
  EXPECT_EQ(count.packets, 3u);
  EXPECT_EQ(count.bytes, 3u * frame.size());
  packet_counter__destroy(skel);
}

}  // namespace
