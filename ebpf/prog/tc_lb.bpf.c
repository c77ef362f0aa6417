/* tc service load balancing for pods whose sockets the cgroup programs do not see,
 * attached to the host side of a pod's veth: lb_tc_from_pod on tc ingress (packets
 * the pod sends) DNATs new flows to VIP:port to a backend and tracks them;
 * lb_tc_to_pod on tc egress (packets towards the pod) translates replies from a
 * tracked backend back to the VIP. Reverse NAT happens only at the client's own veth:
 * done at the backend's veth, a reply whose source became one of the node's own
 * addresses (NodePort) would be dropped by the kernel as a martian.
 * A frontend without backends drops (TC_ACT_SHOT); anything else passes. */
#include <stddef.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <linux/tcp.h>
#include <linux/udp.h>

#include "lb_common.h"

struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, LB_CT_ENTRIES);
  __type(key, struct lb_ct_key);
  __type(value, struct lb_ct_entry);
  __uint(pinning, LIBBPF_PIN_BY_NAME);
} lb_ct SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct lb_node_config);
  __uint(pinning, LIBBPF_PIN_BY_NAME);
} lb_config SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, LB_NODEPORT_NAT_ENTRIES);
  __type(key, struct lb_nodeport_nat_key);
  __type(value, struct lb_nodeport_nat);
  __uint(pinning, LIBBPF_PIN_BY_NAME);
} lb_nodeport_nat SEC(".maps");

#define LB_TCP_FIN 0x01
#define LB_TCP_SYN 0x02
#define LB_TCP_RST 0x04
#define LB_TCP_ACK 0x10

struct lb_pkt {
  __u32 l3_off;
  __u32 l4_off;
  __u32 csum_off; /* of the L4 checksum */
  __u8 proto;
  __u8 opens; /* a TCP SYN without ACK, or any UDP datagram: may start a flow */
  __u8 tcp_flags; /* TCP: the header's flag byte (LB_TCP_*) */
  __be32 saddr, daddr;
  __be16 sport, dport;
};

static __always_inline int lb_parse(struct __sk_buff *skb, struct lb_pkt *p) {
  void *data = (void *)(long)skb->data;
  void *end = (void *)(long)skb->data_end;
  struct ethhdr *eth = data;
  if ((void *)(eth + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP)) return -1;
  struct iphdr *ip = (void *)(eth + 1);
  if ((void *)(ip + 1) > end || ip->ihl < 5) return -1;
  if (ip->frag_off & bpf_htons(0x3fff)) return -1; /* fragments carry no ports */
  p->proto = ip->protocol;
  p->l3_off = sizeof(*eth);
  p->l4_off = p->l3_off + ip->ihl * 4;
  p->saddr = ip->saddr;
  p->daddr = ip->daddr;
  void *l4 = data + p->l4_off;
  if (p->proto == IPPROTO_TCP) {
    struct tcphdr *th = l4;
    if ((void *)(th + 1) > end) return -1;
    p->sport = th->source;
    p->dport = th->dest;
    p->csum_off = p->l4_off + offsetof(struct tcphdr, check);
    p->tcp_flags = ((__u8 *)th)[13];
    p->opens = (p->tcp_flags & (LB_TCP_SYN | LB_TCP_ACK)) == LB_TCP_SYN;
  } else if (p->proto == IPPROTO_UDP) {
    struct udphdr *uh = l4;
    if ((void *)(uh + 1) > end) return -1;
    p->sport = uh->source;
    p->dport = uh->dest;
    p->csum_off = p->l4_off + offsetof(struct udphdr, check);
    p->opens = 1;
  } else {
    return -1;
  }
  return 0;
}

/* Rewrites the source (reply) or destination (forward) address and port, fixing the
 * IP and L4 checksums (the address is part of the L4 pseudo header). */
static __always_inline int lb_rewrite(struct __sk_buff *skb, const struct lb_pkt *p,
                                      int source, __be32 ip, __be16 port) {
  __be32 old_ip = source ? p->saddr : p->daddr;
  __be16 old_port = source ? p->sport : p->dport;
  __u32 ip_off = p->l3_off + (source ? offsetof(struct iphdr, saddr)
                                     : offsetof(struct iphdr, daddr));
  __u32 port_off = p->l4_off + (source ? 0 : 2); /* TCP and UDP: source, dest */
  __u64 l4_flags = p->proto == IPPROTO_UDP ? BPF_F_MARK_MANGLED_0 : 0;
  if (bpf_l4_csum_replace(skb, p->csum_off, old_ip, ip, l4_flags | BPF_F_PSEUDO_HDR | 4))
    return -1;
  if (bpf_l3_csum_replace(skb, p->l3_off + offsetof(struct iphdr, check), old_ip, ip, 4))
    return -1;
  if (bpf_skb_store_bytes(skb, ip_off, &ip, 4, 0)) return -1;
  if (old_port != port) {
    if (bpf_l4_csum_replace(skb, p->csum_off, old_port, port, l4_flags | 2)) return -1;
    if (bpf_skb_store_bytes(skb, port_off, &port, 2, 0)) return -1;
  }
  return 0;
}

/* Notes in `e` what a TCP packet tells of its flow (`reply`: sent by the backend).
 * Returns 1 when that changed the entry. */
static __always_inline int lb_ct_note(struct lb_ct_entry *e, const struct lb_pkt *p, int reply) {
  if (p->proto != IPPROTO_TCP) return 0;
  int changed = 0;
  if (reply && !e->seen_reply) {
    e->seen_reply = 1;
    changed = 1;
  }
  if ((p->tcp_flags & LB_TCP_RST) && !e->rst) {
    e->rst = 1;
    changed = 1;
  }
  if (p->tcp_flags & LB_TCP_FIN) {
    __u8 *fin = reply ? &e->fin_reply : &e->fin_forward;
    if (!*fin) {
      *fin = 1;
      changed = 1;
    }
  }
  return changed;
}

/* The same note in the flow's other entry (`key`), when there is one. */
static __always_inline void lb_ct_note_peer(const struct lb_ct_key *key, const struct lb_pkt *p,
                                            int reply) {
  struct lb_ct_entry *peer = bpf_map_lookup_elem(&lb_ct, key);
  if (peer) lb_ct_note(peer, p, reply);
}

struct lb_dest {
  __be32 ip;
  __be16 port;
};

/* Where the flow `key` (a forward or NodePort entry of lb_ct) goes, in `d`. A tracked
 * flow keeps its backend: a TCP flow for its whole life, even after the backend left
 * the service (as a connected socket of the socket path does); a UDP flow while the
 * backend exists (draining ones too). A new flow is placed and tracked, and so are a
 * UDP flow whose backend left, a SYN that reuses the tuple of a closed flow or of one
 * whose backend left, and a flow whose entry expired. Forward flows also get the reply
 * entry their client's veth translates back. Returns -1 when there is no backend. */
static __always_inline int lb_flow_dest(const struct lb_pkt *p, const struct lb_ct_key *key,
                                        const struct lb_service_key *skey,
                                        const struct lb_service *svc, __u64 now,
                                        struct lb_dest *d) {
  struct lb_ct_entry *ct = bpf_map_lookup_elem(&lb_ct, key);
  if (ct && lb_ct_alive(p->proto, ct, now)) {
    __u32 id = ct->backend_id;
    int present = bpf_map_lookup_elem(&lb_backends, &id) != 0;
    int keep = present;
    if (p->proto == IPPROTO_TCP) keep = p->opens ? present && !lb_ct_closed(ct) : 1;
    if (keep) {
      ct->last_seen_ns = now;
      d->ip = ct->backend_ip;
      d->port = ct->backend_port;
      if (lb_ct_note(ct, p, 0) && key->dir == LB_CT_FORWARD) {
        struct lb_ct_key reply = {.saddr = d->ip, .daddr = p->saddr, .sport = d->port,
                                  .dport = p->sport, .proto = p->proto, .dir = LB_CT_REPLY};
        lb_ct_note_peer(&reply, p, 0);
      }
      return 0;
    }
  }
  __u64 tuple = ((__u64)p->saddr << 32) ^ ((__u64)p->sport << 16) ^ p->dport ^
                ((__u64)p->proto << 48);
  __u32 id = lb_pick_backend(skey, svc, lb_mix64(tuple), p->saddr);
  if (id == 0) return -1;
  struct lb_backend *b = bpf_map_lookup_elem(&lb_backends, &id);
  if (!b) return -1;
  d->ip = b->ip;
  d->port = b->port;
  /* A TCP packet other than a SYN belongs to a flow already under way (its entry
   * expired or was evicted): established. */
  struct lb_ct_entry entry = {.backend_id = id, .rev_nat_id = svc->rev_nat_id,
                              .last_seen_ns = now, .backend_ip = b->ip,
                              .backend_port = b->port,
                              .seen_reply = p->proto == IPPROTO_TCP && !p->opens};
  lb_ct_note(&entry, p, 0);
  bpf_map_update_elem(&lb_ct, key, &entry, BPF_ANY);
  if (key->dir == LB_CT_FORWARD) {
    struct lb_ct_key reply = {.saddr = b->ip, .daddr = p->saddr, .sport = b->port,
                              .dport = p->sport, .proto = p->proto, .dir = LB_CT_REPLY};
    bpf_map_update_elem(&lb_ct, &reply, &entry, BPF_ANY);
  }
  return 0;
}

/* Sends the (rewritten) packet out of wherever the FIB routes its destination,
 * bypassing the local stack: its source is one of this node's own addresses (the
 * NodePort or the SNAT address), which the kernel's input path would drop as a
 * martian on a packet arriving from outside. */
static __always_inline int lb_redirect_routed(struct __sk_buff *skb, __be32 saddr,
                                              __be32 daddr) {
  /* An input-path lookup (from where the packet came in); an output lookup would bind
   * the route to that interface. */
  struct bpf_fib_lookup fib = {};
  fib.family = 2; /* AF_INET */
  fib.ipv4_src = saddr;
  fib.ipv4_dst = daddr;
  fib.ifindex = skb->ingress_ifindex;
  int rc = bpf_fib_lookup(skb, &fib, sizeof(fib), 0);
  if (rc != BPF_FIB_LKUP_RET_SUCCESS && rc != BPF_FIB_LKUP_RET_NO_NEIGH) return TC_ACT_SHOT;
  return bpf_redirect_neigh(fib.ifindex, 0, 0, 0);
}

/* A backend's reply to a SNATed NodePort flow (on the backend's veth, or on the
 * overlay device from a backend on another node): back to the external client, from
 * NodePort. Returns -1 when the packet is no such reply. */
static __always_inline int lb_nodeport_reply(struct __sk_buff *skb, struct lb_pkt *p) {
  __u32 zero = 0;
  struct lb_node_config *cfg = bpf_map_lookup_elem(&lb_config, &zero);
  if (!cfg || cfg->snat_ip == 0 || p->daddr != cfg->snat_ip) return -1;
  struct lb_nodeport_nat_key nk = {.backend_ip = p->saddr, .backend_port = p->sport,
                                   .snat_port = p->dport, .proto = p->proto};
  struct lb_nodeport_nat *nat = bpf_map_lookup_elem(&lb_nodeport_nat, &nk);
  if (!nat) return -1;
  __u32 rev_id = nat->rev_nat_id;
  struct lb_rev_nat *rev = bpf_map_lookup_elem(&lb_rev_nat, &rev_id);
  if (!rev) return TC_ACT_SHOT;
  __be32 client_ip = nat->client_ip;
  __be16 client_port = nat->client_port;
  __be32 node_ip = rev->vip;
  if (p->proto == IPPROTO_TCP) {
    struct lb_ct_key flow = {.saddr = client_ip, .daddr = node_ip, .sport = client_port,
                             .dport = rev->port, .proto = p->proto, .dir = LB_CT_NODEPORT};
    lb_ct_note_peer(&flow, p, 1);
  }
  if (lb_rewrite(skb, p, 1, node_ip, rev->port)) return TC_ACT_SHOT;
  p->saddr = node_ip;
  if (lb_rewrite(skb, p, 0, client_ip, client_port)) return TC_ACT_SHOT;
  return lb_redirect_routed(skb, node_ip, client_ip);
}

/* Towards the pod: a reply from a backend of a tracked flow goes back to the VIP. */
SEC("tc")
int lb_tc_to_pod(struct __sk_buff *skb) {
  struct lb_pkt p = {};
  if (lb_parse(skb, &p)) return TC_ACT_OK;
  struct lb_ct_key key = {.saddr = p.saddr, .daddr = p.daddr, .sport = p.sport,
                          .dport = p.dport, .proto = p.proto, .dir = LB_CT_REPLY};
  struct lb_ct_entry *ct = bpf_map_lookup_elem(&lb_ct, &key);
  __u64 now = bpf_ktime_get_ns();
  if (!ct || !lb_ct_alive(p.proto, ct, now)) return TC_ACT_OK;
  __u32 rev_id = ct->rev_nat_id;
  struct lb_rev_nat *rev = bpf_map_lookup_elem(&lb_rev_nat, &rev_id);
  if (!rev) return TC_ACT_OK;
  ct->last_seen_ns = now;
  __be32 vip = rev->vip;
  __be16 vport = rev->port;
  if (lb_ct_note(ct, &p, 1)) {
    struct lb_ct_key forward = {.saddr = p.daddr, .daddr = vip, .sport = p.dport,
                                .dport = vport, .proto = p.proto, .dir = LB_CT_FORWARD};
    lb_ct_note_peer(&forward, &p, 1);
  }
  return lb_rewrite(skb, &p, 1, vip, vport) ? TC_ACT_SHOT : TC_ACT_OK;
}

/* From the pod: new flows to a frontend are placed on a backend and DNATed. Also on
 * the overlay device's ingress, for NodePort replies from other nodes' backends. */
SEC("tc")
int lb_tc_from_pod(struct __sk_buff *skb) {
  struct lb_pkt p = {};
  if (lb_parse(skb, &p)) return TC_ACT_OK;
  int verdict = lb_nodeport_reply(skb, &p);
  if (verdict >= 0) return verdict;
  __u64 now = bpf_ktime_get_ns();
  struct lb_ct_key key = {.saddr = p.saddr, .daddr = p.daddr, .sport = p.sport,
                          .dport = p.dport, .proto = p.proto, .dir = LB_CT_FORWARD};
  struct lb_service_key skey = {.vip = p.daddr, .dport = p.dport, .proto = p.proto};
  struct lb_service *svc = bpf_map_lookup_elem(&lb_services, &skey);
  if (!svc) {
    /* A flow that goes straight to an address may reuse the tuple of an earlier flow
     * to a VIP that this backend served: its reply entry would turn the new flow's
     * replies into the VIP's. An entry outlives its flow by up to its lifetime (10 s
     * once closed, 60 s for UDP), so the stale one goes when the new flow starts. */
    if (p.opens) {
      struct lb_ct_key stale = {.saddr = p.daddr, .daddr = p.saddr, .sport = p.dport,
                                .dport = p.sport, .proto = p.proto, .dir = LB_CT_REPLY};
      bpf_map_delete_elem(&lb_ct, &stale);
    }
    return TC_ACT_OK;
  }

  struct lb_dest d = {};
  if (lb_flow_dest(&p, &key, &skey, svc, now, &d)) return TC_ACT_SHOT;
  return lb_rewrite(skb, &p, 0, d.ip, d.port) ? TC_ACT_SHOT : TC_ACT_OK;
}

/* The underlay's ingress: a flow from outside to NodePort on this node's address is
 * placed on a backend (any node), DNATed to it and SNATed to the node's overlay
 * address (keeping the client's port), so that the reply comes back through this
 * node, where lb_nodeport_reply restores both. */
SEC("tc")
int lb_tc_nodeport(struct __sk_buff *skb) {
  struct lb_pkt p = {};
  if (lb_parse(skb, &p)) return TC_ACT_OK;
  __u32 zero = 0;
  struct lb_node_config *cfg = bpf_map_lookup_elem(&lb_config, &zero);
  if (!cfg || cfg->node_ip == 0 || cfg->snat_ip == 0 || p.daddr != cfg->node_ip)
    return TC_ACT_OK;
  struct lb_service_key skey = {.vip = p.daddr, .dport = p.dport, .proto = p.proto};
  struct lb_service *svc = bpf_map_lookup_elem(&lb_services, &skey);
  if (!svc) return TC_ACT_OK;
  __u64 now = bpf_ktime_get_ns();
  struct lb_ct_key key = {.saddr = p.saddr, .daddr = p.daddr, .sport = p.sport,
                          .dport = p.dport, .proto = p.proto, .dir = LB_CT_NODEPORT};
  struct lb_dest d = {};
  if (lb_flow_dest(&p, &key, &skey, svc, now, &d)) return TC_ACT_SHOT;
  struct lb_nodeport_nat_key nk = {.backend_ip = d.ip, .backend_port = d.port,
                                   .snat_port = p.sport, .proto = p.proto};
  struct lb_nodeport_nat nat = {.client_ip = p.saddr, .client_port = p.sport,
                                .rev_nat_id = svc->rev_nat_id};
  bpf_map_update_elem(&lb_nodeport_nat, &nk, &nat, BPF_ANY);
  __be32 backend_ip = d.ip;
  __be16 backend_port = d.port;
  __be32 snat_ip = cfg->snat_ip;
  if (lb_rewrite(skb, &p, 0, backend_ip, backend_port)) return TC_ACT_SHOT;
  p.daddr = backend_ip;
  p.dport = backend_port;
  if (lb_rewrite(skb, &p, 1, snat_ip, p.sport)) return TC_ACT_SHOT;
  return lb_redirect_routed(skb, snat_ip, backend_ip);
}

char LICENSE[] SEC("license") = "GPL";
