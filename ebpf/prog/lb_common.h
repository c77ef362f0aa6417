/* Maps and backend selection shared by sock_lb.bpf.c and tc_lb.bpf.c. Every map is
 * pinned by name, so both objects (and a restarted loomd) share one instance. */
#ifndef LOOM_EBPF_LB_COMMON_H_
#define LOOM_EBPF_LB_COMMON_H_

#include <linux/bpf.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "lb_maps.h"

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, LB_MAX_SLOTS);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __type(key, struct lb_service_key);
  __type(value, struct lb_service);
  __uint(pinning, LIBBPF_PIN_BY_NAME);
} lb_services SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, LB_MAX_BACKENDS);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __type(key, __u32);
  __type(value, struct lb_backend);
  __uint(pinning, LIBBPF_PIN_BY_NAME);
} lb_backends SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, LB_MAX_SERVICES);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __type(key, __u32);
  __type(value, struct lb_rev_nat);
  __uint(pinning, LIBBPF_PIN_BY_NAME);
} lb_rev_nat SEC(".maps");

/* Maglev: rev-NAT id -> an array of LB_MAGLEV_SIZE backend ids. */
/* Mmapable: loomd rewrites a table with plain stores (64 KiB) instead of a batch
 * update of 16381 elements (about 3 ms). */
struct lb_maglev_inner {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(map_flags, BPF_F_MMAPABLE);
  __uint(max_entries, LB_MAGLEV_SIZE);
  __type(key, __u32);
  __type(value, __u32);
};

struct {
  __uint(type, BPF_MAP_TYPE_HASH_OF_MAPS);
  __uint(max_entries, LB_MAX_SERVICES);
  __type(key, __u32);
  __uint(pinning, LIBBPF_PIN_BY_NAME);
  __array(values, struct lb_maglev_inner);
} lb_maglev SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, LB_AFFINITY_ENTRIES);
  __type(key, struct lb_affinity_key);
  __type(value, struct lb_affinity);
  __uint(pinning, LIBBPF_PIN_BY_NAME);
} lb_affinity SEC(".maps");

/* murmur3's finaliser: sequential cookies spread over the whole table. */
static __always_inline __u32 lb_mix64(__u64 h) {
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ULL;
  h ^= h >> 33;
  return (__u32)h;
}

/* The backend id for a new flow of `svc` (slot 0 of `key`), or 0 when none. */
static __always_inline __u32 lb_pick_backend(const struct lb_service_key *key,
                                             const struct lb_service *svc, __u32 hash,
                                             __u64 client) {
  if (svc->backend_id == 0) return 0;
  struct lb_affinity_key akey = {.client = client, .rev_nat_id = svc->rev_nat_id};
  __u64 now = bpf_ktime_get_ns();
  if (svc->flags & LB_SVC_AFFINITY) {
    struct lb_affinity *a = bpf_map_lookup_elem(&lb_affinity, &akey);
    if (a && now - a->last_used_ns <= (__u64)svc->affinity_timeout_s * 1000000000ULL &&
        bpf_map_lookup_elem(&lb_backends, &a->backend_id)) {
      a->last_used_ns = now;
      return a->backend_id;
    }
  }
  __u32 id = 0;
  __u32 rev = svc->rev_nat_id;
  void *table = bpf_map_lookup_elem(&lb_maglev, &rev);
  if (table) {
    __u32 index = hash % LB_MAGLEV_SIZE;
    __u32 *b = bpf_map_lookup_elem(table, &index);
    if (b) id = *b;
  }
  if (id == 0) { /* no Maglev table (yet): the slots */
    struct lb_service_key skey = *key;
    skey.slot = (__u16)(hash % svc->backend_id + 1);
    struct lb_service *slot = bpf_map_lookup_elem(&lb_services, &skey);
    if (!slot) return 0;
    id = slot->backend_id;
  }
  if (id && (svc->flags & LB_SVC_AFFINITY)) {
    struct lb_affinity a = {.backend_id = id, .last_used_ns = now};
    bpf_map_update_elem(&lb_affinity, &akey, &a, BPF_ANY);
  }
  return id;
}

#endif /* LOOM_EBPF_LB_COMMON_H_ */
