/* The socket path's reverse-NAT map, shared (pinned by name) by sock_lb.bpf.c and
 * sock_destroy.bpf.c: (socket cookie, backend) -> the VIP the socket addressed. */
#ifndef LOOM_EBPF_LB_SOCK_REVNAT_H_
#define LOOM_EBPF_LB_SOCK_REVNAT_H_

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "lb_maps.h"

struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, LB_SOCK_REVNAT_ENTRIES);
  __type(key, struct lb_sock_revnat_key);
  __type(value, struct lb_sock_revnat);
  __uint(pinning, LIBBPF_PIN_BY_NAME);
} lb_sock_revnat SEC(".maps");

#endif /* LOOM_EBPF_LB_SOCK_REVNAT_H_ */
