// A tc program used only to prove the BPF build chain end to end: clang -target bpf,
// bpftool gen skeleton, load through libbpf, run with bpf_prog_test_run_opts.
// It counts IPv4 packets and bytes and returns the verdict set before load.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct packet_count {
  __u64 packets;
  __u64 bytes;
};

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct packet_count);
} counts SEC(".maps");

const volatile int verdict = TC_ACT_OK;

SEC("tc")
int count_ipv4(struct __sk_buff *skb) {
  if (skb->protocol != bpf_htons(ETH_P_IP)) return TC_ACT_OK;
  __u32 key = 0;
  struct packet_count *c = bpf_map_lookup_elem(&counts, &key);
  if (c) {
    __sync_fetch_and_add(&c->packets, 1);
    __sync_fetch_and_add(&c->bytes, skb->len);
  }
  return verdict;
}

char LICENSE[] SEC("license") = "GPL";
