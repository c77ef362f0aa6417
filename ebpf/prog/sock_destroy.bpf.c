/* Ends connected UDP sockets whose backend left their frontend, as Cilium does: a
 * socket connect()ed to a VIP was pointed at a backend once (sock_lb's connect4) and
 * would go on sending to it. loomd fills lb_destroy_targets with (frontend, backend)
 * pairs, then reads this iterator inside each network namespace of Loom's cgroup; a
 * matching socket gets bpf_sock_destroy(): the kernel aborts it (ECONNABORTED) and
 * disconnects it, and the application connects again, to a live backend.
 *
 * Kernel types come from the running kernel's BTF (CO-RE): only the fields used are
 * declared, with preserve_access_index. Needs Linux 6.5 (bpf_sock_destroy). */
#include <linux/bpf.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>

#include "lb_maps.h"
#include "lb_sock_revnat.h"

#define AF_INET 2
#define TCP_ESTABLISHED 1 /* a UDP socket's state once connect()ed */

struct sock_common {
  unsigned short skc_family;
  volatile unsigned char skc_state;
  __be32 skc_daddr;
  __be16 skc_dport;
} __attribute__((preserve_access_index));

struct sock {
  struct sock_common __sk_common;
} __attribute__((preserve_access_index));

struct udp_sock;
struct bpf_iter_meta;

struct bpf_iter__udp {
  struct bpf_iter_meta *meta;
  struct udp_sock *udp_sk;
  __u32 uid;
  int bucket;
} __attribute__((preserve_access_index));

extern int bpf_sock_destroy(struct sock_common *sk) __ksym;

/* What to end: (frontend's rev-NAT id, backend). Private to this object. */
struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, LB_DESTROY_TARGETS);
  __type(key, struct lb_destroy_target);
  __type(value, __u8);
} lb_destroy_targets SEC(".maps");

__u64 destroyed = 0; /* sockets ended, for loomd's log and metrics */

SEC("iter/udp")
int lb_udp_destroy(struct bpf_iter__udp *ctx) {
  struct sock *sk = (struct sock *)ctx->udp_sk;
  if (!sk) return 0;
  if (sk->__sk_common.skc_family != AF_INET ||
      sk->__sk_common.skc_state != TCP_ESTABLISHED)
    return 0; /* unconnected sockets are translated per datagram (sendmsg4) */
  __be32 ip = sk->__sk_common.skc_daddr;
  __be16 port = sk->__sk_common.skc_dport;
  struct lb_sock_revnat_key rkey = {.cookie = bpf_get_socket_cookie(sk), .ip = ip, .port = port};
  struct lb_sock_revnat *rev = bpf_map_lookup_elem(&lb_sock_revnat, &rkey);
  if (!rev) return 0; /* not pointed there from a VIP */
  struct lb_destroy_target target = {.rev_nat_id = rev->rev_nat_id, .ip = ip, .port = port};
  if (!bpf_map_lookup_elem(&lb_destroy_targets, &target)) return 0;
  if (bpf_sock_destroy((struct sock_common *)sk) == 0) __sync_fetch_and_add(&destroyed, 1);
  return 0;
}

char LICENSE[] SEC("license") = "GPL";
