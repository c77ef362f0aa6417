#include "lb/udp_socket_terminator.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <netinet/in.h>
#include <unistd.h>

#include <cerrno>

#include "common/status.h"
#include "common/strings.h"
#include "lb_maps.h"
#include "sock_destroy.skel.h"

static_assert(sizeof(lb_destroy_target) == 12);
static_assert(offsetof(lb_destroy_target, rev_nat_id) == 0 &&
              offsetof(lb_destroy_target, ip) == 4 && offsetof(lb_destroy_target, port) == 8);

namespace loom::lb {
namespace {

lb_destroy_target Key(const UdpSocketTerminator::Target& t) {
  lb_destroy_target key{};
  key.rev_nat_id = t.rev_nat_id;
  key.ip = t.backend.ip.ToNetworkOrder();
  key.port = htons(t.backend.port);
  return key;
}

// Reads the iterator once, in the calling thread's network namespace (the iterator
// walks the sockets of the namespace it was created in).
absl::Status RunIterator(bpf_link* link) {
  int fd = bpf_iter_create(bpf_link__fd(link));
  if (fd < 0) return ErrnoToStatus(-fd, "create udp socket iterator");
  char buf[64];
  ssize_t n;
  while ((n = read(fd, buf, sizeof(buf))) > 0) {
  }
  int err = n < 0 ? errno : 0;
  close(fd);
  if (err != 0) return ErrnoToStatus(err, "read udp socket iterator");
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<UdpSocketTerminator>> UdpSocketTerminator::Open(
    const std::string& bpffs_dir) {
  std::unique_ptr<UdpSocketTerminator> t(new UdpSocketTerminator());
  LIBBPF_OPTS(bpf_object_open_opts, opts, .pin_root_path = bpffs_dir.c_str());
  t->skel_ = sock_destroy__open_opts(&opts);
  if (t->skel_ == nullptr) return ErrnoToStatus(errno, "open sock_destroy");
  int err = sock_destroy__load(t->skel_);
  if (err != 0) {
    return absl::FailedPreconditionError(
        StrCat("cannot load the UDP socket terminator (bpf_sock_destroy needs Linux 6.5 "
               "with BTF): ",
               ErrnoToStatus(-err, "load sock_destroy").message()));
  }
  t->link_ = bpf_program__attach_iter(t->skel_->progs.lb_udp_destroy, nullptr);
  if (t->link_ == nullptr) {
    return absl::FailedPreconditionError(
        StrCat("cannot attach the udp socket iterator: ",
               ErrnoToStatus(errno, "attach iter/udp").message()));
  }
  return t;
}

UdpSocketTerminator::~UdpSocketTerminator() {
  if (link_ != nullptr) bpf_link__destroy(link_);
  if (skel_ != nullptr) sock_destroy__destroy(skel_);
}

absl::StatusOr<uint64_t> UdpSocketTerminator::Terminate(std::span<const Target> targets,
                                                        std::span<const net::NetnsFd> namespaces) {
  if (targets.size() > LB_DESTROY_TARGETS) {
    return absl::InvalidArgumentError(StrCat(targets.size(), " sockets targets, at most ",
                                             LB_DESTROY_TARGETS, " at once"));
  }
  if (targets.empty() || namespaces.empty()) return 0;
  const int map = bpf_map__fd(skel_->maps.lb_destroy_targets);
  absl::Status status;
  __u8 one = 1;
  for (const Target& t : targets) {
    lb_destroy_target key = Key(t);
    int err = bpf_map_update_elem(map, &key, &one, BPF_ANY);
    if (err != 0) {
      status = ErrnoToStatus(-err, "write socket target");
      break;
    }
  }
  const uint64_t before = skel_->bss->destroyed;
  if (status.ok()) {
    for (const net::NetnsFd& ns : namespaces) {
      // A namespace that went away meanwhile has no socket left to end.
      absl::Status s = net::RunInNetns(ns, [&] { return RunIterator(link_); });
      if (!s.ok()) status.Update(Annotate(s, ns.path()));
    }
  }
  for (const Target& t : targets) {
    lb_destroy_target key = Key(t);
    bpf_map_delete_elem(map, &key);
  }
  uint64_t ended = skel_->bss->destroyed - before;
  if (!status.ok()) return status;
  return ended;
}

}  // namespace loom::lb
