#include "common/net/netlink.h"

#include <linux/if.h>
#include <linux/if_link.h>
#include <linux/neighbour.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <netlink/attr.h>
#include <netlink/cache.h>
#include <netlink/errno.h>
#include <netlink/handlers.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/link/veth.h>
#include <netlink/route/link/vxlan.h>
#include <netlink/route/neighbour.h>
#include <netlink/route/nexthop.h>
#include <netlink/route/route.h>
#include <netlink/socket.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "absl/container/flat_hash_map.h"
#include "common/net/netlink_error.h"
#include "common/status.h"
#include "common/strings.h"

#ifndef SOL_NETLINK
#define SOL_NETLINK 270
#endif

namespace loom::net {
namespace {

// Owning pointers for libnl objects.
struct LinkPut {
  void operator()(rtnl_link* p) const { rtnl_link_put(p); }
};
struct AddrPut {
  void operator()(nl_addr* p) const { nl_addr_put(p); }
};
struct RoutePut {
  void operator()(rtnl_route* p) const { rtnl_route_put(p); }
};
struct NeighPut {
  void operator()(rtnl_neigh* p) const { rtnl_neigh_put(p); }
};
struct IfAddrPut {
  void operator()(rtnl_addr* p) const { rtnl_addr_put(p); }
};
struct ObjectPut {
  void operator()(nl_object* p) const { nl_object_put(p); }
};
using LinkPtr = std::unique_ptr<rtnl_link, LinkPut>;
using AddrPtr = std::unique_ptr<nl_addr, AddrPut>;
using RoutePtr = std::unique_ptr<rtnl_route, RoutePut>;
using NeighPtr = std::unique_ptr<rtnl_neigh, NeighPut>;
using IfAddrPtr = std::unique_ptr<rtnl_addr, IfAddrPut>;
using ObjectPtr = std::unique_ptr<nl_object, ObjectPut>;

constexpr size_t kMaxLinkName = IFNAMSIZ - 1;

absl::Status OutOfMemory(std::string_view what) {
  return absl::ResourceExhaustedError(StrCat(what, ": out of memory"));
}

AddrPtr ToNlAddr(Ipv4Address ip, int prefix_len = 32) {
  uint32_t be = ip.ToNetworkOrder();
  AddrPtr addr(nl_addr_build(AF_INET, &be, sizeof(be)));
  if (addr) nl_addr_set_prefixlen(addr.get(), prefix_len);
  return addr;
}

AddrPtr ToNlAddr(const MacAddress& mac) {
  return AddrPtr(nl_addr_build(AF_LLC, mac.bytes().data(), mac.bytes().size()));
}

std::optional<Ipv4Address> FromNlIpv4(nl_addr* addr) {
  if (addr == nullptr || nl_addr_get_family(addr) != AF_INET || nl_addr_get_len(addr) != 4) {
    return std::nullopt;
  }
  uint32_t be;
  std::memcpy(&be, nl_addr_get_binary_addr(addr), sizeof(be));
  return Ipv4Address::FromNetworkOrder(be);
}

std::optional<MacAddress> FromNlMac(nl_addr* addr) {
  if (addr == nullptr || nl_addr_get_len(addr) != 6) return std::nullopt;
  std::array<uint8_t, 6> bytes;
  std::memcpy(bytes.data(), nl_addr_get_binary_addr(addr), bytes.size());
  return MacAddress(bytes);
}

absl::Status ValidateLinkName(std::string_view name, std::string_view what) {
  if (name.empty() || name.size() > kMaxLinkName || name.find('/') != std::string_view::npos ||
      name.find(' ') != std::string_view::npos) {
    return absl::InvalidArgumentError(StrCat(what, ": invalid link name \"", name,
                                             "\" (1 to 15 bytes, no '/' or spaces)"));
  }
  return absl::OkStatus();
}

LinkInfo ToLinkInfo(rtnl_link* link) {
  LinkInfo info;
  info.index = rtnl_link_get_ifindex(link);
  if (const char* name = rtnl_link_get_name(link)) info.name = name;
  if (const char* kind = rtnl_link_get_type(link)) info.kind = kind;
  info.mtu = rtnl_link_get_mtu(link);
  info.mac = FromNlMac(rtnl_link_get_addr(link));
  unsigned flags = rtnl_link_get_flags(link);
  info.up = (flags & IFF_UP) != 0;
  info.running = (flags & IFF_RUNNING) != 0;
  info.master_index = rtnl_link_get_master(link);
  info.link_index = rtnl_link_get_link(link);
  if (rtnl_link_is_vxlan(link)) {
    VxlanInfo vx;
    uint32_t value = 0;
    if (rtnl_link_vxlan_get_id(link, &value) == 0) vx.vni = value;
    if (rtnl_link_vxlan_get_port(link, &value) == 0) vx.port = static_cast<uint16_t>(value);
    nl_addr* local = nullptr;
    if (rtnl_link_vxlan_get_local(link, &local) == 0) {
      AddrPtr owned(local);
      vx.local = FromNlIpv4(local);
      if (vx.local && vx.local->IsUnspecified()) vx.local.reset();
    }
    vx.learning = rtnl_link_vxlan_get_learning(link) > 0;
    if (rtnl_link_vxlan_get_link(link, &value) == 0) vx.underlay_index = static_cast<int>(value);
    info.vxlan = vx;
  }
  return info;
}

// Records the kernel's errno and extended-ack message from an NLMSG_ERROR; returning
// NL_STOP lets libnl turn the errno into its NLE_* code as usual.
struct KernelError {
  int errno_value = 0;
  std::string message;
};

int CaptureKernelError(sockaddr_nl*, nlmsgerr* err, void* arg) {
  auto* out = static_cast<KernelError*>(arg);
  out->errno_value = -err->error;
  out->message.clear();
  const auto* hdr = reinterpret_cast<const nlmsghdr*>(reinterpret_cast<const char*>(err) -
                                                      NLMSG_HDRLEN);
  if ((hdr->nlmsg_flags & NLM_F_ACK_TLVS) == 0) return NL_STOP;
  size_t offset = NLMSG_HDRLEN + sizeof(nlmsgerr);
  if ((hdr->nlmsg_flags & NLM_F_CAPPED) == 0) {
    offset += NLMSG_ALIGN(err->msg.nlmsg_len) - NLMSG_HDRLEN;
  }
  if (hdr->nlmsg_len <= offset) return NL_STOP;
  auto* attrs = reinterpret_cast<nlattr*>(
      const_cast<char*>(reinterpret_cast<const char*>(hdr) + offset));
  nlattr* msg = nla_find(attrs, static_cast<int>(hdr->nlmsg_len - offset), NLMSGERR_ATTR_MSG);
  if (msg != nullptr && nla_len(msg) > 0) {
    const char* text = static_cast<const char*>(nla_data(msg));
    out->message.assign(text, strnlen(text, static_cast<size_t>(nla_len(msg))));
  }
  return NL_STOP;
}

struct DumpContext {
  std::vector<ObjectPtr>* objects;
};

void CollectObject(nl_object* obj, void* arg) {
  nl_object_get(obj);
  static_cast<DumpContext*>(arg)->objects->emplace_back(obj);
}

int OnDumpMessage(nl_msg* msg, void* arg) {
  // Messages libnl cannot parse (none expected) are skipped.
  nl_msg_parse(msg, &CollectObject, arg);
  return NL_OK;
}

std::string ScopeName(Scope scope) {
  switch (scope) {
    case Scope::kUniverse:
      return "global";
    case Scope::kSite:
      return "site";
    case Scope::kLink:
      return "link";
    case Scope::kHost:
      return "host";
    case Scope::kNowhere:
      return "nowhere";
  }
  return StrCat(static_cast<int>(scope));
}

}  // namespace

std::string LinkRef::ToString() const {
  if (!name.empty()) return name;
  return StrCat("ifindex ", index);
}

std::ostream& operator<<(std::ostream& os, const LinkRef& link) { return os << link.ToString(); }

std::string InterfaceAddress::ToString() const {
  std::string out = local.ToString();
  if (peer) StrAppend(&out, " peer ", peer->ToString());
  if (scope != Scope::kUniverse) StrAppend(&out, " scope ", ScopeName(scope));
  return out;
}

std::string Route::ToString() const {
  std::string out = dst.ToString();
  if (type != kRouteTypeUnicast) out = StrCat("type ", type, " ", out);
  if (gateway) StrAppend(&out, " via ", gateway->ToString());
  if (oif) StrAppend(&out, " dev ", oif->ToString());
  if (onlink) StrAppend(&out, " onlink");
  if (table != kMainTable) StrAppend(&out, " table ", table);
  if (protocol) StrAppend(&out, " proto ", int{*protocol});
  if (scope) StrAppend(&out, " scope ", ScopeName(*scope));
  if (src) StrAppend(&out, " src ", src->ToString());
  if (metric != 0) StrAppend(&out, " metric ", metric);
  return out;
}

std::ostream& operator<<(std::ostream& os, const Route& route) { return os << route.ToString(); }

std::string Neighbour::ToString() const {
  return StrCat(ip.ToString(), " lladdr ", mac.ToString(), " dev ", link.ToString(),
                permanent ? " permanent" : "");
}

std::string FdbEntry::ToString() const {
  std::string out = StrCat(mac.ToString(), " dev ", link.ToString());
  if (dst) StrAppend(&out, " dst ", dst->ToString());
  if (self) StrAppend(&out, " self");
  if (permanent) StrAppend(&out, " permanent");
  return out;
}

struct Netlink::State {
  nl_sock* sock = nullptr;
  KernelError kernel_error;

  ~State() {
    if (sock != nullptr) nl_socket_free(sock);  // closes the fd
  }

  void Reset() {
    kernel_error.errno_value = 0;
    kernel_error.message.clear();
  }

  absl::Status Check(int rc, std::string_view what) const {
    if (rc >= 0) return absl::OkStatus();
    return NetlinkErrorToStatus(rc, what, kernel_error.errno_value, kernel_error.message);
  }

  // Sends a dump request and collects every object libnl parses from the answer,
  // retrying when the kernel says the dump was interrupted by a concurrent change.
  absl::StatusOr<std::vector<ObjectPtr>> Dump(int type, const void* header, size_t header_len,
                                              std::string_view what) {
    constexpr int kAttempts = 5;
    int rc = 0;
    for (int attempt = 0; attempt < kAttempts; ++attempt) {
      std::vector<ObjectPtr> objects;
      DumpContext context{&objects};
      Reset();
      rc = nl_send_simple(sock, type, NLM_F_DUMP, const_cast<void*>(header), header_len);
      if (rc < 0) return Check(rc, what);
      nl_cb* base = nl_socket_get_cb(sock);
      nl_cb* cb = nl_cb_clone(base);
      nl_cb_put(base);
      if (cb == nullptr) return OutOfMemory(what);
      nl_cb_set(cb, NL_CB_VALID, NL_CB_CUSTOM, &OnDumpMessage, &context);
      rc = nl_recvmsgs(sock, cb);
      nl_cb_put(cb);
      if (rc >= 0) return objects;
      if (rc != -NLE_DUMP_INTR) break;
    }
    return Check(rc, what);
  }

  absl::StatusOr<LinkPtr> GetKernelLink(const LinkRef& ref, std::string_view what) {
    if (ref.index <= 0) RETURN_IF_ERROR(ValidateLinkName(ref.name, what));
    rtnl_link* link = nullptr;
    Reset();
    int rc = rtnl_link_get_kernel(sock, ref.index > 0 ? ref.index : 0,
                                  ref.index > 0 ? nullptr : ref.name.c_str(), &link);
    if (rc < 0) return Check(rc, StrCat(what, ": link ", ref.ToString()));
    return LinkPtr(link);
  }

  absl::StatusOr<int> Index(const LinkRef& ref, std::string_view what) {
    if (ref.index > 0) return ref.index;
    ASSIGN_OR_RETURN(LinkPtr link, GetKernelLink(ref, what));
    return rtnl_link_get_ifindex(link.get());
  }

  absl::StatusOr<absl::flat_hash_map<int, std::string>> LinkNames(std::string_view what) {
    ifinfomsg ifi{};
    ifi.ifi_family = AF_UNSPEC;
    ASSIGN_OR_RETURN(std::vector<ObjectPtr> objects, Dump(RTM_GETLINK, &ifi, sizeof(ifi), what));
    absl::flat_hash_map<int, std::string> names;
    for (const ObjectPtr& obj : objects) {
      auto* link = reinterpret_cast<rtnl_link*>(obj.get());
      if (const char* name = rtnl_link_get_name(link)) {
        names[rtnl_link_get_ifindex(link)] = name;
      }
    }
    return names;
  }
};

Netlink::Netlink(std::unique_ptr<State> state) : state_(std::move(state)) {}
Netlink::Netlink(Netlink&&) noexcept = default;
Netlink& Netlink::operator=(Netlink&&) noexcept = default;
Netlink::~Netlink() = default;

absl::StatusOr<Netlink> Netlink::Create() {
  auto state = std::make_unique<State>();
  state->sock = nl_socket_alloc();
  if (state->sock == nullptr) return OutOfMemory("allocate netlink socket");
  int rc = nl_connect(state->sock, NETLINK_ROUTE);
  if (rc < 0) return NetlinkErrorToStatus(rc, "connect NETLINK_ROUTE socket", errno);
  int fd = nl_socket_get_fd(state->sock);
  int one = 1;
  // Extended acks carry the kernel's reason ("Nexthop has invalid gateway"); older
  // kernels lack them, which only makes messages shorter.
  setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof(one));
  setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof(one));
  // Large dumps (many routes) must not be truncated.
  nl_socket_enable_msg_peek(state->sock);
  rc = nl_socket_modify_err_cb(state->sock, NL_CB_CUSTOM, &CaptureKernelError,
                               &state->kernel_error);
  if (rc < 0) return NetlinkErrorToStatus(rc, "set netlink error handler");
  return Netlink(std::move(state));
}

// --- Links -------------------------------------------------------------------

absl::Status Netlink::AddLink(rtnl_link* link, std::string_view what) {
  state_->Reset();
  return state_->Check(rtnl_link_add(state_->sock, link, NLM_F_CREATE | NLM_F_EXCL), what);
}

absl::Status Netlink::CreateVeth(std::string_view name, std::string_view peer_name,
                                 std::optional<int> peer_netns_fd) {
  VethSpec spec;
  spec.name = std::string(name);
  spec.peer_name = std::string(peer_name);
  spec.peer_netns_fd = peer_netns_fd;
  return CreateVeth(spec);
}

absl::Status Netlink::CreateVeth(const VethSpec& spec) {
  std::string what = StrCat("create veth ", spec.name, " peer ", spec.peer_name);
  RETURN_IF_ERROR(ValidateLinkName(spec.name, what));
  RETURN_IF_ERROR(ValidateLinkName(spec.peer_name, what));
  LinkPtr link(rtnl_link_veth_alloc());
  if (!link) return OutOfMemory(what);
  LinkPtr peer(rtnl_link_veth_get_peer(link.get()));  // a reference of our own
  rtnl_link_set_name(link.get(), spec.name.c_str());
  rtnl_link_set_name(peer.get(), spec.peer_name.c_str());
  if (spec.peer_netns_fd) rtnl_link_set_ns_fd(peer.get(), *spec.peer_netns_fd);
  if (spec.mtu) {
    rtnl_link_set_mtu(link.get(), *spec.mtu);
    rtnl_link_set_mtu(peer.get(), *spec.mtu);
  }
  if (spec.mac) rtnl_link_set_addr(link.get(), ToNlAddr(*spec.mac).get());
  if (spec.peer_mac) rtnl_link_set_addr(peer.get(), ToNlAddr(*spec.peer_mac).get());
  return AddLink(link.get(), what);
}

absl::Status Netlink::CreateVxlan(const VxlanSpec& spec) {
  std::string what = StrCat("create vxlan ", spec.name, " vni ", spec.vni, " port ", spec.port);
  RETURN_IF_ERROR(ValidateLinkName(spec.name, what));
  if (spec.vni == 0 || spec.vni > VXLAN_ID_MAX) {
    return absl::InvalidArgumentError(StrCat(what, ": VNI must be 1 to ", VXLAN_ID_MAX));
  }
  if (spec.port == 0) return absl::InvalidArgumentError(StrCat(what, ": port must not be 0"));
  LinkPtr link(rtnl_link_vxlan_alloc());
  if (!link) return OutOfMemory(what);
  rtnl_link_set_name(link.get(), spec.name.c_str());
  rtnl_link_vxlan_set_id(link.get(), spec.vni);
  rtnl_link_vxlan_set_port(link.get(), spec.port);
  if (spec.local) {
    StrAppend(&what, " local ", spec.local->ToString());
    rtnl_link_vxlan_set_local(link.get(), ToNlAddr(*spec.local).get());
  }
  if (spec.underlay) {
    StrAppend(&what, " dev ", spec.underlay->ToString());
    ASSIGN_OR_RETURN(int underlay, state_->Index(*spec.underlay, what));
    rtnl_link_vxlan_set_link(link.get(), static_cast<uint32_t>(underlay));
  }
  rtnl_link_vxlan_set_learning(link.get(), spec.learning ? 1 : 0);
  if (spec.mtu) rtnl_link_set_mtu(link.get(), *spec.mtu);
  if (spec.mac) rtnl_link_set_addr(link.get(), ToNlAddr(*spec.mac).get());
  return AddLink(link.get(), what);
}

absl::Status Netlink::CreateDummy(std::string_view name) {
  std::string what = StrCat("create dummy ", name);
  RETURN_IF_ERROR(ValidateLinkName(name, what));
  LinkPtr link(rtnl_link_alloc());
  if (!link) return OutOfMemory(what);
  rtnl_link_set_name(link.get(), std::string(name).c_str());
  state_->Reset();
  RETURN_IF_ERROR(state_->Check(rtnl_link_set_type(link.get(), "dummy"), what));
  return AddLink(link.get(), what);
}

absl::Status Netlink::CreateBridge(std::string_view name) {
  std::string what = StrCat("create bridge ", name);
  RETURN_IF_ERROR(ValidateLinkName(name, what));
  LinkPtr link(rtnl_link_alloc());
  if (!link) return OutOfMemory(what);
  rtnl_link_set_name(link.get(), std::string(name).c_str());
  state_->Reset();
  RETURN_IF_ERROR(state_->Check(rtnl_link_set_type(link.get(), "bridge"), what));
  return AddLink(link.get(), what);
}

absl::Status Netlink::DeleteLink(const LinkRef& ref) {
  std::string what = StrCat("delete link ", ref.ToString());
  if (ref.index <= 0) RETURN_IF_ERROR(ValidateLinkName(ref.name, what));
  LinkPtr link(rtnl_link_alloc());
  if (!link) return OutOfMemory(what);
  if (ref.index > 0) {
    rtnl_link_set_ifindex(link.get(), ref.index);
  } else {
    rtnl_link_set_name(link.get(), ref.name.c_str());
  }
  state_->Reset();
  return state_->Check(rtnl_link_delete(state_->sock, link.get()), what);
}

absl::Status Netlink::DeleteLinkIfExists(const LinkRef& ref) {
  absl::Status status = DeleteLink(ref);
  if (absl::IsNotFound(status)) return absl::OkStatus();
  return status;
}

absl::Status Netlink::ChangeLink(const LinkRef& ref, std::string_view what,
                                 const std::function<void(rtnl_link*)>& change) {
  ASSIGN_OR_RETURN(LinkPtr orig, state_->GetKernelLink(ref, what));
  LinkPtr changes(rtnl_link_alloc());
  if (!changes) return OutOfMemory(what);
  change(changes.get());
  state_->Reset();
  return state_->Check(rtnl_link_change(state_->sock, orig.get(), changes.get(), 0), what);
}

absl::Status Netlink::SetLinkUp(const LinkRef& link) {
  return ChangeLink(link, StrCat("set link ", link.ToString(), " up"),
                    [](rtnl_link* c) { rtnl_link_set_flags(c, IFF_UP); });
}

absl::Status Netlink::SetLinkDown(const LinkRef& link) {
  return ChangeLink(link, StrCat("set link ", link.ToString(), " down"),
                    [](rtnl_link* c) { rtnl_link_unset_flags(c, IFF_UP); });
}

absl::Status Netlink::SetMtu(const LinkRef& link, uint32_t mtu) {
  return ChangeLink(link, StrCat("set link ", link.ToString(), " mtu ", mtu),
                    [mtu](rtnl_link* c) { rtnl_link_set_mtu(c, mtu); });
}

absl::Status Netlink::SetMacAddress(const LinkRef& link, const MacAddress& mac) {
  std::string what = StrCat("set link ", link.ToString(), " address ", mac.ToString());
  AddrPtr addr = ToNlAddr(mac);
  if (!addr) return OutOfMemory(what);
  return ChangeLink(link, what, [&](rtnl_link* c) { rtnl_link_set_addr(c, addr.get()); });
}

absl::Status Netlink::SetMaster(const LinkRef& link, const LinkRef& bridge) {
  std::string what = StrCat("set link ", link.ToString(), " master ", bridge.ToString());
  ASSIGN_OR_RETURN(int master, state_->Index(bridge, what));
  return ChangeLink(link, what, [master](rtnl_link* c) { rtnl_link_set_master(c, master); });
}

absl::Status Netlink::SetNoMaster(const LinkRef& link) {
  return ChangeLink(link, StrCat("set link ", link.ToString(), " nomaster"),
                    [](rtnl_link* c) { rtnl_link_set_master(c, 0); });
}

absl::Status Netlink::MoveToNetns(const LinkRef& link, int netns_fd) {
  return ChangeLink(link, StrCat("move link ", link.ToString(), " to netns fd ", netns_fd),
                    [netns_fd](rtnl_link* c) { rtnl_link_set_ns_fd(c, netns_fd); });
}

absl::StatusOr<LinkInfo> Netlink::GetLink(const LinkRef& link) {
  ASSIGN_OR_RETURN(LinkPtr found, state_->GetKernelLink(link, "get link"));
  return ToLinkInfo(found.get());
}

absl::StatusOr<int> Netlink::LinkIndex(const LinkRef& link) {
  return state_->Index(link, "get link index");
}

absl::StatusOr<std::vector<LinkInfo>> Netlink::ListLinks() {
  ifinfomsg ifi{};
  ifi.ifi_family = AF_UNSPEC;
  ASSIGN_OR_RETURN(std::vector<ObjectPtr> objects,
                   state_->Dump(RTM_GETLINK, &ifi, sizeof(ifi), "list links"));
  std::vector<LinkInfo> links;
  links.reserve(objects.size());
  for (const ObjectPtr& obj : objects) {
    links.push_back(ToLinkInfo(reinterpret_cast<rtnl_link*>(obj.get())));
  }
  return links;
}

// --- Addresses ---------------------------------------------------------------

namespace {

absl::StatusOr<IfAddrPtr> BuildAddress(int index, const InterfaceAddress& address,
                                       std::string_view what) {
  IfAddrPtr addr(rtnl_addr_alloc());
  AddrPtr local = ToNlAddr(address.local.address(), address.local.length());
  if (!addr || !local) return OutOfMemory(what);
  rtnl_addr_set_ifindex(addr.get(), index);
  rtnl_addr_set_family(addr.get(), AF_INET);
  int rc = rtnl_addr_set_local(addr.get(), local.get());
  if (rc == 0 && address.peer) {
    AddrPtr peer = ToNlAddr(*address.peer, address.local.length());
    if (!peer) return OutOfMemory(what);
    rc = rtnl_addr_set_peer(addr.get(), peer.get());
  }
  if (rc < 0) return NetlinkErrorToStatus(rc, what);
  rtnl_addr_set_prefixlen(addr.get(), address.local.length());
  rtnl_addr_set_scope(addr.get(), static_cast<int>(address.scope));
  return addr;
}

}  // namespace

absl::Status Netlink::AddAddress(const LinkRef& link, const InterfaceAddress& address) {
  std::string what = StrCat("add address ", address.ToString(), " dev ", link.ToString());
  ASSIGN_OR_RETURN(int index, state_->Index(link, what));
  ASSIGN_OR_RETURN(IfAddrPtr addr, BuildAddress(index, address, what));
  state_->Reset();
  return state_->Check(rtnl_addr_add(state_->sock, addr.get(), NLM_F_EXCL), what);
}

absl::Status Netlink::DeleteAddress(const LinkRef& link, const InterfaceAddress& address) {
  std::string what = StrCat("delete address ", address.ToString(), " dev ", link.ToString());
  ASSIGN_OR_RETURN(int index, state_->Index(link, what));
  ASSIGN_OR_RETURN(IfAddrPtr addr, BuildAddress(index, address, what));
  state_->Reset();
  return state_->Check(rtnl_addr_delete(state_->sock, addr.get(), 0), what);
}

absl::StatusOr<std::vector<InterfaceAddress>> Netlink::ListAddresses(const LinkRef& link) {
  std::string what = StrCat("list addresses dev ", link.ToString());
  ASSIGN_OR_RETURN(int index, state_->Index(link, what));
  ifaddrmsg ifa{};
  ifa.ifa_family = AF_INET;
  ASSIGN_OR_RETURN(std::vector<ObjectPtr> objects,
                   state_->Dump(RTM_GETADDR, &ifa, sizeof(ifa), what));
  std::vector<InterfaceAddress> out;
  for (const ObjectPtr& obj : objects) {
    auto* addr = reinterpret_cast<rtnl_addr*>(obj.get());
    if (rtnl_addr_get_family(addr) != AF_INET || rtnl_addr_get_ifindex(addr) != index) continue;
    std::optional<Ipv4Address> local = FromNlIpv4(rtnl_addr_get_local(addr));
    if (!local) continue;
    InterfaceAddress entry;
    entry.local = Ipv4Prefix::Create(*local, rtnl_addr_get_prefixlen(addr)).value();
    std::optional<Ipv4Address> peer = FromNlIpv4(rtnl_addr_get_peer(addr));
    if (peer && *peer != *local) entry.peer = peer;
    entry.scope = static_cast<Scope>(rtnl_addr_get_scope(addr));
    out.push_back(entry);
  }
  return out;
}

// --- Routes ------------------------------------------------------------------

absl::Status Netlink::ChangeRoute(const Route& r, Op op, std::string_view verb) {
  std::string what = StrCat(verb, " route ", r.ToString());
  const bool deleting = op == Op::kDelete;
  RoutePtr route(rtnl_route_alloc());
  AddrPtr dst = ToNlAddr(r.dst.address(), r.dst.length());
  if (!route || !dst) return OutOfMemory(what);
  rtnl_route_set_family(route.get(), AF_INET);
  state_->Reset();
  RETURN_IF_ERROR(state_->Check(rtnl_route_set_dst(route.get(), dst.get()), what));
  rtnl_route_set_table(route.get(), r.table);
  rtnl_route_set_type(route.get(), r.type);
  rtnl_route_set_priority(route.get(), r.metric);
  // Deleting with protocol 0 and scope nowhere matches any, as `ip route del` does.
  rtnl_route_set_protocol(route.get(), r.protocol ? *r.protocol : (deleting ? 0 : kProtoBoot));
  if (r.scope) {
    rtnl_route_set_scope(route.get(), static_cast<uint8_t>(*r.scope));
  } else if (deleting) {
    rtnl_route_set_scope(route.get(), RT_SCOPE_NOWHERE);
  }
  if (r.src) {
    AddrPtr src = ToNlAddr(*r.src);
    if (!src) return OutOfMemory(what);
    RETURN_IF_ERROR(state_->Check(rtnl_route_set_pref_src(route.get(), src.get()), what));
  }
  if (r.gateway || r.oif) {
    rtnl_nexthop* nh = rtnl_route_nh_alloc();
    if (nh == nullptr) return OutOfMemory(what);
    rtnl_route_add_nexthop(route.get(), nh);  // the route owns it now
    if (r.oif) {
      ASSIGN_OR_RETURN(int oif, state_->Index(*r.oif, what));
      rtnl_route_nh_set_ifindex(nh, oif);
    }
    if (r.gateway) {
      AddrPtr gw = ToNlAddr(*r.gateway);
      if (!gw) return OutOfMemory(what);
      rtnl_route_nh_set_gateway(nh, gw.get());
    }
    if (r.onlink) rtnl_route_nh_set_flags(nh, RTNH_F_ONLINK);
  }
  // A single-nexthop route carries its nexthop flags in rtm_flags.
  if (r.onlink) rtnl_route_set_flags(route.get(), RTNH_F_ONLINK);
  state_->Reset();
  int rc;
  if (deleting) {
    rc = rtnl_route_delete(state_->sock, route.get(), 0);
  } else {
    rc = rtnl_route_add(state_->sock, route.get(),
                        op == Op::kReplace ? NLM_F_REPLACE : NLM_F_EXCL);
  }
  return state_->Check(rc, what);
}

absl::Status Netlink::AddRoute(const Route& route) {
  return ChangeRoute(route, Op::kAdd, "add");
}

absl::Status Netlink::ReplaceRoute(const Route& route) {
  return ChangeRoute(route, Op::kReplace, "replace");
}

absl::Status Netlink::DeleteRoute(const Route& route) {
  return ChangeRoute(route, Op::kDelete, "delete");
}

absl::StatusOr<std::vector<Route>> Netlink::ListRoutes(uint32_t table) {
  std::string what = table == kAllTables ? std::string("list routes")
                                         : StrCat("list routes table ", table);
  rtmsg rtm{};
  rtm.rtm_family = AF_INET;
  ASSIGN_OR_RETURN(std::vector<ObjectPtr> objects,
                   state_->Dump(RTM_GETROUTE, &rtm, sizeof(rtm), what));
  ASSIGN_OR_RETURN(auto names, state_->LinkNames(what));
  std::vector<Route> out;
  for (const ObjectPtr& obj : objects) {
    auto* route = reinterpret_cast<rtnl_route*>(obj.get());
    if (rtnl_route_get_family(route) != AF_INET) continue;
    if (table != kAllTables && rtnl_route_get_table(route) != table) continue;
    nl_addr* dst_addr = rtnl_route_get_dst(route);
    Route r;
    std::optional<Ipv4Address> dst = FromNlIpv4(dst_addr);
    // The default route has an empty destination.
    r.dst = Ipv4Prefix::Create(dst.value_or(Ipv4Address()),
                               dst_addr ? nl_addr_get_prefixlen(dst_addr) : 0)
                .value();
    r.table = rtnl_route_get_table(route);
    r.type = rtnl_route_get_type(route);
    r.protocol = rtnl_route_get_protocol(route);
    r.scope = static_cast<Scope>(rtnl_route_get_scope(route));
    r.metric = rtnl_route_get_priority(route);
    r.src = FromNlIpv4(rtnl_route_get_pref_src(route));
    r.onlink = (rtnl_route_get_flags(route) & RTNH_F_ONLINK) != 0;
    if (rtnl_route_get_nnexthops(route) >= 1) {
      rtnl_nexthop* nh = rtnl_route_nexthop_n(route, 0);
      r.gateway = FromNlIpv4(rtnl_route_nh_get_gateway(nh));
      if (int oif = rtnl_route_nh_get_ifindex(nh); oif > 0) {
        LinkRef ref(oif);
        if (auto it = names.find(oif); it != names.end()) ref.name = it->second;
        r.oif = ref;
      }
      if (rtnl_route_nh_get_flags(nh) & RTNH_F_ONLINK) r.onlink = true;
    }
    out.push_back(std::move(r));
  }
  return out;
}

// --- Neighbours and FDB ------------------------------------------------------

absl::Status Netlink::ChangeNeighbour(const Neighbour& n, Op op, std::string_view verb) {
  std::string what = op == Op::kDelete
                         ? StrCat(verb, " neighbour ", n.ip.ToString(), " dev ", n.link.ToString())
                         : StrCat(verb, " neighbour ", n.ToString());
  ASSIGN_OR_RETURN(int index, state_->Index(n.link, what));
  NeighPtr neigh(rtnl_neigh_alloc());
  AddrPtr dst = ToNlAddr(n.ip);
  AddrPtr lladdr = ToNlAddr(n.mac);
  if (!neigh || !dst || !lladdr) return OutOfMemory(what);
  state_->Reset();
  RETURN_IF_ERROR(state_->Check(rtnl_neigh_set_dst(neigh.get(), dst.get()), what));
  rtnl_neigh_set_ifindex(neigh.get(), index);
  if (op == Op::kDelete) {
    return state_->Check(rtnl_neigh_delete(state_->sock, neigh.get(), 0), what);
  }
  rtnl_neigh_set_lladdr(neigh.get(), lladdr.get());
  rtnl_neigh_set_state(neigh.get(), n.permanent ? NUD_PERMANENT : NUD_REACHABLE);
  int flags = NLM_F_CREATE | (op == Op::kReplace ? NLM_F_REPLACE : NLM_F_EXCL);
  return state_->Check(rtnl_neigh_add(state_->sock, neigh.get(), flags), what);
}

absl::Status Netlink::AddNeighbour(const Neighbour& neighbour) {
  return ChangeNeighbour(neighbour, Op::kAdd, "add");
}

absl::Status Netlink::ReplaceNeighbour(const Neighbour& neighbour) {
  return ChangeNeighbour(neighbour, Op::kReplace, "replace");
}

absl::Status Netlink::DeleteNeighbour(const Neighbour& neighbour) {
  return ChangeNeighbour(neighbour, Op::kDelete, "delete");
}

absl::StatusOr<std::vector<Neighbour>> Netlink::ListNeighbours(const LinkRef& link) {
  std::string what = StrCat("list neighbours dev ", link.ToString());
  ASSIGN_OR_RETURN(int index, state_->Index(link, what));
  ndmsg ndm{};
  ndm.ndm_family = AF_INET;
  ASSIGN_OR_RETURN(std::vector<ObjectPtr> objects,
                   state_->Dump(RTM_GETNEIGH, &ndm, sizeof(ndm), what));
  std::vector<Neighbour> out;
  for (const ObjectPtr& obj : objects) {
    auto* neigh = reinterpret_cast<rtnl_neigh*>(obj.get());
    if (rtnl_neigh_get_family(neigh) != AF_INET || rtnl_neigh_get_ifindex(neigh) != index) {
      continue;
    }
    std::optional<Ipv4Address> ip = FromNlIpv4(rtnl_neigh_get_dst(neigh));
    std::optional<MacAddress> mac = FromNlMac(rtnl_neigh_get_lladdr(neigh));
    if (!ip || !mac) continue;
    Neighbour n;
    n.ip = *ip;
    n.mac = *mac;
    n.link = link;
    n.link.index = index;
    n.permanent = (rtnl_neigh_get_state(neigh) & NUD_PERMANENT) != 0;
    out.push_back(std::move(n));
  }
  return out;
}

absl::Status Netlink::ChangeFdb(const FdbEntry& entry, Op op, std::string_view verb) {
  std::string what = StrCat(verb, " fdb ", entry.ToString());
  ASSIGN_OR_RETURN(int index, state_->Index(entry.link, what));
  NeighPtr neigh(rtnl_neigh_alloc());
  AddrPtr lladdr = ToNlAddr(entry.mac);
  if (!neigh || !lladdr) return OutOfMemory(what);
  state_->Reset();
  // The IPv4 destination goes in first: libnl takes the family from the first
  // address it is given and would reject it once the family is AF_BRIDGE.
  if (entry.dst) {
    AddrPtr dst = ToNlAddr(*entry.dst);
    if (!dst) return OutOfMemory(what);
    RETURN_IF_ERROR(state_->Check(rtnl_neigh_set_dst(neigh.get(), dst.get()), what));
  }
  rtnl_neigh_set_family(neigh.get(), AF_BRIDGE);
  rtnl_neigh_set_ifindex(neigh.get(), index);
  rtnl_neigh_set_lladdr(neigh.get(), lladdr.get());
  if (entry.self) rtnl_neigh_set_flags(neigh.get(), NTF_SELF);
  rtnl_neigh_set_state(neigh.get(), entry.permanent ? NUD_PERMANENT : NUD_REACHABLE);
  if (op == Op::kDelete) {
    return state_->Check(rtnl_neigh_delete(state_->sock, neigh.get(), 0), what);
  }
  int flags = NLM_F_CREATE | (op == Op::kReplace ? NLM_F_REPLACE : NLM_F_APPEND);
  return state_->Check(rtnl_neigh_add(state_->sock, neigh.get(), flags), what);
}

absl::Status Netlink::AppendFdbEntry(const FdbEntry& entry) {
  return ChangeFdb(entry, Op::kAppend, "append");
}

absl::Status Netlink::ReplaceFdbEntry(const FdbEntry& entry) {
  return ChangeFdb(entry, Op::kReplace, "replace");
}

absl::Status Netlink::DeleteFdbEntry(const FdbEntry& entry) {
  return ChangeFdb(entry, Op::kDelete, "delete");
}

absl::StatusOr<std::vector<FdbEntry>> Netlink::ListFdbEntries(const LinkRef& link) {
  std::string what = StrCat("list fdb dev ", link.ToString());
  ASSIGN_OR_RETURN(int index, state_->Index(link, what));
  ndmsg ndm{};
  ndm.ndm_family = AF_BRIDGE;
  ASSIGN_OR_RETURN(std::vector<ObjectPtr> objects,
                   state_->Dump(RTM_GETNEIGH, &ndm, sizeof(ndm), what));
  std::vector<FdbEntry> out;
  for (const ObjectPtr& obj : objects) {
    auto* neigh = reinterpret_cast<rtnl_neigh*>(obj.get());
    if (rtnl_neigh_get_family(neigh) != AF_BRIDGE || rtnl_neigh_get_ifindex(neigh) != index) {
      continue;
    }
    std::optional<MacAddress> mac = FromNlMac(rtnl_neigh_get_lladdr(neigh));
    if (!mac) continue;
    FdbEntry e;
    e.mac = *mac;
    e.dst = FromNlIpv4(rtnl_neigh_get_dst(neigh));
    e.link = link;
    e.link.index = index;
    e.self = (rtnl_neigh_get_flags(neigh) & NTF_SELF) != 0;
    e.permanent = (rtnl_neigh_get_state(neigh) & NUD_PERMANENT) != 0;
    out.push_back(std::move(e));
  }
  return out;
}

}  // namespace loom::net
