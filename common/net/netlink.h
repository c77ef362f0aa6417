// A thin wrapper over libnl-route (NETLINK_ROUTE): links, IPv4 addresses, routes,
// neighbours and bridge/VXLAN FDB entries. Every call returns absl::Status or StatusOr,
// with messages that name the object: "add route 10.244.2.0/24 via 10.244.2.0 dev
// loom.1 onlink: File exists".
//
// A Netlink talks to the network namespace that was current on the creating thread
// when Create() ran, for its whole life, whatever thread later uses it. To act in
// another namespace, create one inside RunInNetns (common/net/netns.h).
//
// Not thread-safe: one Netlink per thread, or a lock around it.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/net/ip.h"

struct rtnl_link;  // libnl

namespace loom::net {

// A link named or numbered: "loom.1" or ifindex 7. Converts implicitly from either, so
// SetLinkUp("eth0") and SetLinkUp(7) both read well. When both are set (as in results)
// the index wins.
struct LinkRef {
  LinkRef() = default;
  LinkRef(std::string_view link_name) : name(link_name) {}
  LinkRef(const char* link_name) : name(link_name) {}
  LinkRef(const std::string& link_name) : name(link_name) {}
  LinkRef(int link_index) : index(link_index) {}

  bool empty() const { return index <= 0 && name.empty(); }
  // The name when known, else "ifindex 7".
  std::string ToString() const;
  friend bool operator==(const LinkRef&, const LinkRef&) = default;

  std::string name;
  int index = 0;
};
std::ostream& operator<<(std::ostream& os, const LinkRef& link);

// rtm_scope / ifa_scope values.
enum class Scope : uint8_t {
  kUniverse = 0,
  kSite = 200,
  kLink = 253,
  kHost = 254,
  kNowhere = 255,
};

inline constexpr uint32_t kAllTables = 0;  // RT_TABLE_UNSPEC, a ListRoutes filter
inline constexpr uint32_t kMainTable = 254;
inline constexpr uint32_t kLocalTable = 255;
inline constexpr uint8_t kProtoKernel = 2;  // routes the kernel adds for addresses
inline constexpr uint8_t kProtoBoot = 3;    // what `ip route add` uses
inline constexpr uint8_t kProtoStatic = 4;
inline constexpr uint8_t kRouteTypeUnicast = 1;
inline constexpr uint8_t kRouteTypeLocal = 2;
inline constexpr uint8_t kRouteTypeBlackhole = 6;

struct VxlanInfo {
  uint32_t vni = 0;
  uint16_t port = 0;
  std::optional<Ipv4Address> local;
  bool learning = false;
  int underlay_index = 0;  // 0: none
};

struct LinkInfo {
  int index = 0;
  std::string name;
  // "veth", "vxlan", "bridge", "dummy"...; empty for loopback and physical devices.
  std::string kind;
  uint32_t mtu = 0;
  std::optional<MacAddress> mac;  // absent for links without a 6-byte hardware address
  bool up = false;                // administratively up (IFF_UP)
  bool running = false;           // IFF_RUNNING: up with carrier
  int master_index = 0;           // the bridge it is a port of; 0 for none
  int link_index = 0;             // IFLA_LINK: a veth's peer (maybe in another namespace)
  std::optional<VxlanInfo> vxlan;  // for kind == "vxlan"
};

struct VethSpec {
  std::string name;
  std::string peer_name;
  // Creates the peer directly in this namespace (an fd from NetnsFd::get()).
  std::optional<int> peer_netns_fd;
  std::optional<uint32_t> mtu;  // both ends
  std::optional<MacAddress> mac;
  std::optional<MacAddress> peer_mac;
};

struct VxlanSpec {
  std::string name;
  uint32_t vni = 1;
  uint16_t port = 4789;
  std::optional<Ipv4Address> local;
  std::optional<LinkRef> underlay;  // the link to send encapsulated packets from
  bool learning = false;
  std::optional<uint32_t> mtu;
  std::optional<MacAddress> mac;
};

// An IPv4 address on a link: local keeps host bits ("10.244.1.1/24").
struct InterfaceAddress {
  Ipv4Prefix local;
  std::optional<Ipv4Address> peer;  // point-to-point peer
  Scope scope = Scope::kUniverse;
  std::string ToString() const;
  friend bool operator==(const InterfaceAddress&, const InterfaceAddress&) = default;
};

struct Route {
  Ipv4Prefix dst;
  std::optional<Ipv4Address> gateway;
  std::optional<LinkRef> oif;
  bool onlink = false;
  // Unset: link scope for a route without gateway, universe with one (as iproute2).
  std::optional<Scope> scope;
  uint32_t table = kMainTable;
  std::optional<Ipv4Address> src;  // preferred source address
  // Tags who owns the route. Unset: kProtoBoot when adding, any when deleting.
  std::optional<uint8_t> protocol;
  uint32_t metric = 0;
  uint8_t type = kRouteTypeUnicast;

  // "10.244.2.0/24 via 10.244.2.0 dev loom.1 onlink table 100"
  std::string ToString() const;
  friend bool operator==(const Route&, const Route&) = default;
};
std::ostream& operator<<(std::ostream& os, const Route& route);

// An ARP entry.
struct Neighbour {
  Ipv4Address ip;
  MacAddress mac;
  LinkRef link;
  bool permanent = true;  // NUD_PERMANENT, else NUD_REACHABLE
  std::string ToString() const;
};

// A bridge forwarding entry (AF_BRIDGE neighbour); on a VXLAN device, `dst` is the
// remote VTEP for `mac`, as `bridge fdb append MAC dev vxlan0 dst IP`.
struct FdbEntry {
  MacAddress mac;
  std::optional<Ipv4Address> dst;
  LinkRef link;
  bool self = true;  // NTF_SELF: the device's own table (what VXLAN needs)
  bool permanent = true;
  std::string ToString() const;
};

class Netlink {
 public:
  // Opens and connects a NETLINK_ROUTE socket in the calling thread's namespace.
  static absl::StatusOr<Netlink> Create();

  Netlink(Netlink&&) noexcept;
  Netlink& operator=(Netlink&&) noexcept;
  ~Netlink();

  // Links. Names are at most 15 bytes (IFNAMSIZ - 1).
  absl::Status CreateVeth(const VethSpec& spec);
  absl::Status CreateVeth(std::string_view name, std::string_view peer_name,
                          std::optional<int> peer_netns_fd = std::nullopt);
  absl::Status CreateVxlan(const VxlanSpec& spec);
  absl::Status CreateDummy(std::string_view name);
  absl::Status CreateBridge(std::string_view name);
  // NotFound if there is no such link.
  absl::Status DeleteLink(const LinkRef& link);
  // OK if there is no such link.
  absl::Status DeleteLinkIfExists(const LinkRef& link);
  absl::Status SetLinkUp(const LinkRef& link);
  absl::Status SetLinkDown(const LinkRef& link);
  absl::Status SetMtu(const LinkRef& link, uint32_t mtu);
  absl::Status SetMacAddress(const LinkRef& link, const MacAddress& mac);
  absl::Status SetMaster(const LinkRef& link, const LinkRef& bridge);
  absl::Status SetNoMaster(const LinkRef& link);
  // The link disappears from this namespace (and from this Netlink's view).
  absl::Status MoveToNetns(const LinkRef& link, int netns_fd);
  absl::StatusOr<LinkInfo> GetLink(const LinkRef& link);
  absl::StatusOr<int> LinkIndex(const LinkRef& link);
  absl::StatusOr<std::vector<LinkInfo>> ListLinks();

  // IPv4 addresses.
  absl::Status AddAddress(const LinkRef& link, const InterfaceAddress& address);
  absl::Status DeleteAddress(const LinkRef& link, const InterfaceAddress& address);
  absl::StatusOr<std::vector<InterfaceAddress>> ListAddresses(const LinkRef& link);

  // IPv4 routes. AlreadyExists from AddRoute when the route exists; ReplaceRoute
  // creates or overwrites. DeleteRoute matches dst, table, metric and whatever else is
  // set (gateway, oif, protocol, scope); NotFound if nothing matches.
  absl::Status AddRoute(const Route& route);
  absl::Status ReplaceRoute(const Route& route);
  absl::Status DeleteRoute(const Route& route);
  // Routes of one table (kAllTables for every table); oif carries name and index.
  absl::StatusOr<std::vector<Route>> ListRoutes(uint32_t table = kMainTable);

  // ARP entries. DeleteNeighbour uses ip and link only.
  absl::Status AddNeighbour(const Neighbour& neighbour);
  absl::Status ReplaceNeighbour(const Neighbour& neighbour);
  absl::Status DeleteNeighbour(const Neighbour& neighbour);
  // Entries with a link-layer address (incomplete and failed ones are skipped).
  absl::StatusOr<std::vector<Neighbour>> ListNeighbours(const LinkRef& link);

  // FDB entries. Append adds an entry, or another destination for the all-zeros or a
  // multicast MAC (the flooding list; for a unicast MAC the kernel keeps the existing
  // destination and reports success), as `bridge fdb append`. Replace creates or
  // overwrites. Delete with dst removes that destination only.
  absl::Status AppendFdbEntry(const FdbEntry& entry);
  absl::Status ReplaceFdbEntry(const FdbEntry& entry);
  absl::Status DeleteFdbEntry(const FdbEntry& entry);
  // Every AF_BRIDGE entry on the link, including the multicast entries the kernel
  // lists for a device's own addresses.
  absl::StatusOr<std::vector<FdbEntry>> ListFdbEntries(const LinkRef& link);

 private:
  struct State;
  enum class Op { kAdd, kReplace, kAppend, kDelete };
  explicit Netlink(std::unique_ptr<State> state);
  absl::Status AddLink(::rtnl_link* link, std::string_view what);
  absl::Status ChangeLink(const LinkRef& link, std::string_view what,
                          const std::function<void(::rtnl_link*)>& change);
  absl::Status ChangeRoute(const Route& route, Op op, std::string_view verb);
  absl::Status ChangeNeighbour(const Neighbour& neighbour, Op op, std::string_view verb);
  absl::Status ChangeFdb(const FdbEntry& entry, Op op, std::string_view verb);

  std::unique_ptr<State> state_;
};

}  // namespace loom::net
