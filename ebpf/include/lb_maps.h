/* Service load-balancing maps: every key and value, declared once for the BPF C
 * (ebpf/prog/) and the C++ owner (lb/bpf_lb.h). No includes beyond the kernel's
 * __u32/__be16 types, so both sides read the same layout; lb/bpf_lb.cc checks it with
 * static_asserts and tests/unit/lb/bpf_lb_layout_test.cc against the skeleton's BTF.
 * Every struct is padded explicitly: no hidden holes, keys hash the same everywhere. */
#ifndef LOOM_EBPF_LB_MAPS_H_
#define LOOM_EBPF_LB_MAPS_H_

#include <linux/types.h>

/* Slots per Maglev table (prime; lb::kDefaultMaglevTableSize). */
#define LB_MAGLEV_SIZE 16381
#define LB_MAX_SERVICES 65536   /* frontends (VIP, port, protocol) */
#define LB_MAX_BACKENDS 65536
#define LB_MAX_SLOTS (LB_MAX_SERVICES * 8)
#define LB_AFFINITY_ENTRIES 65536
#define LB_SOCK_REVNAT_ENTRIES 262144
#define LB_CT_ENTRIES 262144

/* lb_service.flags */
#define LB_SVC_AFFINITY 0x1u /* ClientIP session affinity */

/* lb_backend.flags */
#define LB_BACKEND_DRAINING 0x1u

/* CT entry direction (lb_ct_key.dir). */
#define LB_CT_FORWARD 0
#define LB_CT_REPLY 1
#define LB_CT_NODEPORT 2 /* from outside, to a NodePort on the underlay */
#define LB_NODEPORT_NAT_ENTRIES 65536

/* services: (VIP, port, protocol, slot). Slot 0 holds the frontend (count, rev-NAT id,
 * flags); slots 1..count hold backend ids (lb::PlanServiceUpdate's layout). */
struct lb_service_key {
  __be32 vip;
  __be16 dport;
  __u8 proto; /* IPPROTO_TCP / IPPROTO_UDP */
  __u8 pad0;
  __u16 slot;
  __u16 pad1;
};

struct lb_service {
  __u32 backend_id; /* slot >= 1: the backend; slot 0: the backend count */
  __u32 rev_nat_id; /* slot 0: the frontend's id (rev_nat and maglev keys) */
  __u32 flags;      /* slot 0: LB_SVC_* */
  __u32 affinity_timeout_s; /* slot 0, with LB_SVC_AFFINITY */
};

/* backends: id -> where it listens. */
struct lb_backend {
  __be32 ip;
  __be16 port;
  __u8 proto;
  __u8 flags; /* LB_BACKEND_* */
};

/* rev_nat: rev-NAT id -> the frontend replies must come from. */
struct lb_rev_nat {
  __be32 vip;
  __be16 port;
  __u16 pad;
};

/* affinity (LRU): (client, frontend) -> the backend it was given. The client is the
 * source IPv4 address on the tc path and the netns cookie on the socket path (a socket
 * has no source address at connect time; Cilium does the same). */
struct lb_affinity_key {
  __u64 client;
  __u32 rev_nat_id;
  __u32 pad;
};

struct lb_affinity {
  __u32 backend_id;
  __u32 pad;
  __u64 last_used_ns; /* bpf_ktime_get_ns() */
};

/* sock_revnat (LRU): (socket cookie, backend) -> the VIP the socket addressed, for
 * recvmsg4 / getpeername4. */
struct lb_sock_revnat_key {
  __u64 cookie;
  __be32 ip;
  __be16 port;
  __u16 pad;
};

struct lb_sock_revnat {
  __be32 vip;
  __be16 port;
  __u16 pad;
  __u32 rev_nat_id;
  __u32 pad1;
};

/* destroy_targets (sock_destroy.bpf.c): a backend that left a frontend, whose connected
 * UDP sockets are ended. */
#define LB_DESTROY_TARGETS 4096
struct lb_destroy_target {
  __u32 rev_nat_id;
  __be32 ip;
  __be16 port;
  __u16 pad;
};

/* ct (LRU, tc path): forward entries keyed by the client's tuple (client -> VIP) and
 * reply entries keyed by the backend's (backend -> client). */
struct lb_ct_key {
  __be32 saddr;
  __be32 daddr;
  __be16 sport;
  __be16 dport;
  __u8 proto;
  __u8 dir; /* LB_CT_FORWARD / LB_CT_REPLY */
  __u16 pad;
};

struct lb_ct_entry {
  __u32 backend_id; /* forward and NodePort entries: the backend the flow was given */
  __u32 rev_nat_id;
  __u64 last_seen_ns; /* bpf_ktime_get_ns() of the last packet in this entry's direction */
  __be32 backend_ip;  /* forward and NodePort entries: where the flow goes; a TCP flow */
  __be16 backend_port; /* keeps going there after its backend left the service */
  /* What the tc programs saw of a TCP flow, in both of its entries. One byte each:
   * two CPUs setting different ones cannot undo each other (BPF has no 8-bit OR). */
  __u8 seen_reply;  /* the backend answered: established */
  __u8 rst;         /* either side sent RST */
  __u8 fin_forward; /* the client sent FIN */
  __u8 fin_reply;   /* the backend sent FIN */
  __u16 pad;
  __u32 pad1;
};

/* How long an entry lives after its last packet (seconds), as Cilium's CT: a TCP flow
 * until it is answered, while established, once closed (RST, or FIN both ways), and
 * any other (UDP) flow. An expired entry counts as absent for the data path, and
 * loomd's collector deletes it (BpfLoadBalancer::ExpireConnections). */
#define LB_CT_LIFETIME_TCP_SYN_S 60
#define LB_CT_LIFETIME_TCP_S 21600
#define LB_CT_LIFETIME_TCP_CLOSED_S 10
#define LB_CT_LIFETIME_OTHER_S 60

/* A TCP entry that saw RST, or FIN both ways. */
static inline int lb_ct_closed(const struct lb_ct_entry *e) {
  return e->rst || (e->fin_forward && e->fin_reply);
}

/* The lifetime of an entry of protocol `proto`, in seconds: the tc programs and
 * loomd's collector expire entries alike. */
static inline __u32 lb_ct_lifetime_s(__u8 proto, const struct lb_ct_entry *e) {
  if (proto != 6 /* IPPROTO_TCP */) return LB_CT_LIFETIME_OTHER_S;
  if (lb_ct_closed(e)) return LB_CT_LIFETIME_TCP_CLOSED_S;
  return e->seen_reply ? LB_CT_LIFETIME_TCP_S : LB_CT_LIFETIME_TCP_SYN_S;
}

/* Whether an entry last seen at `last_seen_ns` is still alive at `now_ns`
 * (CLOCK_MONOTONIC). A stamp after `now_ns` (written by another CPU meanwhile) is. */
static inline int lb_ct_alive(__u8 proto, const struct lb_ct_entry *e, __u64 now_ns) {
  __u64 seen = e->last_seen_ns;
  return seen >= now_ns || now_ns - seen <= (__u64)lb_ct_lifetime_s(proto, e) * 1000000000ULL;
}

/* config (array, one entry): what the NodePort path needs to know about the node. */
struct lb_node_config {
  __be32 node_ip; /* the underlay address NodePorts are served on (0: no NodePort) */
  __be32 snat_ip; /* the source NodePort flows get towards backends: the overlay's
                   * address of this node (the pod CIDR's .0), which every backend's
                   * node routes back through the overlay, unmasqueraded */
};

/* nodeport_nat (LRU): a backend's reply to a SNATed NodePort flow, keyed by what the
 * reply carries (backend address and port, the SNAT port = the client's port), ->
 * the external client and the frontend the reply must come from. */
struct lb_nodeport_nat_key {
  __be32 backend_ip;
  __be16 backend_port;
  __be16 snat_port;
  __u8 proto;
  __u8 pad0;
  __u16 pad1;
};

struct lb_nodeport_nat {
  __be32 client_ip;
  __be16 client_port;
  __u16 pad;
  __u32 rev_nat_id;
};

#endif /* LOOM_EBPF_LB_MAPS_H_ */
