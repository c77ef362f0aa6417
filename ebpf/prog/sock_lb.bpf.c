/* Socket-level service load balancing (cgroup sock_addr hooks): a socket addressing
 * VIP:port is pointed at a backend once, at connect() (or per datagram for unconnected
 * UDP), so no packet ever carries the VIP. recvmsg4 and getpeername4 translate the
 * backend back to the VIP the application asked for. */
#include "lb_common.h"
#include "lb_sock_revnat.h"

/* Rewrites the destination of `ctx` when it is a frontend. Returns 0 to refuse (a
 * frontend without backends), 1 otherwise. */
static __always_inline int lb_sock_translate(struct bpf_sock_addr *ctx) {
  __u8 proto = ctx->protocol;
  if (proto != IPPROTO_TCP && proto != IPPROTO_UDP) return 1;
  struct lb_service_key key = {
      .vip = ctx->user_ip4, .dport = (__be16)ctx->user_port, .proto = proto, .slot = 0};
  struct lb_service *svc = bpf_map_lookup_elem(&lb_services, &key);
  if (!svc) return 1;
  __u64 cookie = bpf_get_socket_cookie(ctx);
  __u32 id = lb_pick_backend(&key, svc, lb_mix64(cookie), bpf_get_netns_cookie(ctx));
  if (id == 0) return 0;
  struct lb_backend *b = bpf_map_lookup_elem(&lb_backends, &id);
  if (!b) return 0;
  struct lb_sock_revnat_key rkey = {.cookie = cookie, .ip = b->ip, .port = b->port};
  struct lb_sock_revnat rev = {
      .vip = key.vip, .port = key.dport, .rev_nat_id = svc->rev_nat_id};
  bpf_map_update_elem(&lb_sock_revnat, &rkey, &rev, BPF_ANY);
  ctx->user_ip4 = b->ip;
  ctx->user_port = b->port;
  return 1;
}

/* Shows the VIP instead of the backend the socket really talks to. */
static __always_inline void lb_sock_reverse(struct bpf_sock_addr *ctx) {
  struct lb_sock_revnat_key rkey = {.cookie = bpf_get_socket_cookie(ctx),
                                    .ip = ctx->user_ip4,
                                    .port = (__be16)ctx->user_port};
  struct lb_sock_revnat *rev = bpf_map_lookup_elem(&lb_sock_revnat, &rkey);
  if (!rev) return;
  /* The frontend is gone: leave the backend visible rather than a dead VIP. */
  if (!bpf_map_lookup_elem(&lb_rev_nat, &rev->rev_nat_id)) return;
  ctx->user_ip4 = rev->vip;
  ctx->user_port = rev->port;
}

SEC("cgroup/connect4")
int lb_connect4(struct bpf_sock_addr *ctx) { return lb_sock_translate(ctx); }

SEC("cgroup/sendmsg4")
int lb_sendmsg4(struct bpf_sock_addr *ctx) { return lb_sock_translate(ctx); }

SEC("cgroup/recvmsg4")
int lb_recvmsg4(struct bpf_sock_addr *ctx) {
  lb_sock_reverse(ctx);
  return 1;
}

SEC("cgroup/getpeername4")
int lb_getpeername4(struct bpf_sock_addr *ctx) {
  lb_sock_reverse(ctx);
  return 1;
}

char LICENSE[] SEC("license") = "GPL";
