// The kernel operations the overlay needs, as an interface: the real one goes through
// netlink (overlay_kernel_netlink.h), tests use an in-memory fake (tests/fakes/).
// The shapes are common/net/netlink.h's, so the real implementation is a forwarder.
#pragma once

#include <optional>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/net/netlink.h"

namespace loom::overlay {

class OverlayKernel {
 public:
  virtual ~OverlayKernel() = default;

  // nullopt when there is no such link.
  virtual absl::StatusOr<std::optional<net::LinkInfo>> FindLink(std::string_view name) = 0;
  virtual absl::Status CreateVxlan(const net::VxlanSpec& spec) = 0;
  virtual absl::Status DeleteLink(const net::LinkRef& link) = 0;
  virtual absl::Status SetLinkUp(const net::LinkRef& link) = 0;
  virtual absl::Status SetMtu(const net::LinkRef& link, uint32_t mtu) = 0;
  virtual absl::Status SetMacAddress(const net::LinkRef& link, const net::MacAddress& mac) = 0;

  virtual absl::StatusOr<std::vector<net::InterfaceAddress>> ListAddresses(
      const net::LinkRef& link) = 0;
  virtual absl::Status AddAddress(const net::LinkRef& link,
                                  const net::InterfaceAddress& address) = 0;
  virtual absl::Status DeleteAddress(const net::LinkRef& link,
                                     const net::InterfaceAddress& address) = 0;

  virtual absl::StatusOr<std::vector<net::Neighbour>> ListNeighbours(const net::LinkRef& link) = 0;
  virtual absl::Status ReplaceNeighbour(const net::Neighbour& neighbour) = 0;
  virtual absl::Status DeleteNeighbour(const net::Neighbour& neighbour) = 0;

  virtual absl::StatusOr<std::vector<net::FdbEntry>> ListFdbEntries(const net::LinkRef& link) = 0;
  virtual absl::Status ReplaceFdbEntry(const net::FdbEntry& entry) = 0;
  virtual absl::Status DeleteFdbEntry(const net::FdbEntry& entry) = 0;

  // The main table.
  virtual absl::StatusOr<std::vector<net::Route>> ListRoutes() = 0;
  virtual absl::Status ReplaceRoute(const net::Route& route) = 0;
  virtual absl::Status DeleteRoute(const net::Route& route) = 0;
};

}  // namespace loom::overlay
