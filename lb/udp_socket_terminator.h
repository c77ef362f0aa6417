// Ends connected UDP sockets whose backend left the frontend they addressed, as
// Cilium does (ebpf/prog/sock_destroy.bpf.c: an iter/udp program calling the
// bpf_sock_destroy kfunc, Linux 6.5+). A socket that connect()ed to a VIP was pointed
// at one backend by sock_lb's connect4 and would go on sending to it after it left;
// once ended, the kernel has aborted and disconnected it, and the application connects
// again (to a live backend). What the application sees is in docs/lb.md.
//
//   ASSIGN_OR_RETURN(auto t, UdpSocketTerminator::Open(bpffs_dir));  // after BpfLoadBalancer::Open
//   t->Terminate({{rev_nat_id, backend}}, namespaces);
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "absl/status/statusor.h"
#include "common/net/netns.h"
#include "lb/backend_set.h"

struct sock_destroy;
struct bpf_link;

namespace loom::lb {

class UdpSocketTerminator {
 public:
  struct Target {
    uint32_t rev_nat_id;    // the frontend the socket addressed (BpfLoadBalancer::RevNatId)
    BackendAddress backend; // where connect4 pointed it
  };

  // Loads the iterator, sharing the socket reverse-NAT map pinned under `bpffs_dir` by
  // BpfLoadBalancer::Open. FailedPrecondition when the kernel cannot do it (no
  // bpf_sock_destroy before Linux 6.5, no BTF): loomd then runs without it.
  static absl::StatusOr<std::unique_ptr<UdpSocketTerminator>> Open(const std::string& bpffs_dir);
  ~UdpSocketTerminator();
  UdpSocketTerminator(const UdpSocketTerminator&) = delete;
  UdpSocketTerminator& operator=(const UdpSocketTerminator&) = delete;

  // Ends, in each of `namespaces`, the connected IPv4 UDP sockets that a VIP of
  // `targets` pointed at that target's backend. Returns how many it ended. At most
  // LB_DESTROY_TARGETS targets per call.
  absl::StatusOr<uint64_t> Terminate(std::span<const Target> targets,
                                     std::span<const net::NetnsFd> namespaces);

 private:
  UdpSocketTerminator() = default;
  sock_destroy* skel_ = nullptr;
  bpf_link* link_ = nullptr;
};

}  // namespace loom::lb
