#include "overlay/overlay_kernel_netlink.h"

#include "common/status.h"

namespace loom::overlay {
namespace {

// A forwarder. Like Netlink, not thread-safe: the overlay controller makes every call
// under one lock.
class NetlinkOverlayKernel : public OverlayKernel {
 public:
  explicit NetlinkOverlayKernel(net::Netlink nl) : nl_(std::move(nl)) {}

  absl::StatusOr<std::optional<net::LinkInfo>> FindLink(std::string_view name) override {
    absl::StatusOr<net::LinkInfo> link = nl_.GetLink(name);
    if (absl::IsNotFound(link.status())) return std::optional<net::LinkInfo>();
    if (!link.ok()) return link.status();
    return std::optional<net::LinkInfo>(*std::move(link));
  }
  absl::Status CreateVxlan(const net::VxlanSpec& spec) override {
    return nl_.CreateVxlan(spec);
  }
  absl::Status DeleteLink(const net::LinkRef& link) override {
    return nl_.DeleteLink(link);
  }
  absl::Status SetLinkUp(const net::LinkRef& link) override {
    return nl_.SetLinkUp(link);
  }
  absl::Status SetMtu(const net::LinkRef& link, uint32_t mtu) override {
    return nl_.SetMtu(link, mtu);
  }
  absl::Status SetMacAddress(const net::LinkRef& link, const net::MacAddress& mac) override {
    return nl_.SetMacAddress(link, mac);
  }
  absl::StatusOr<std::vector<net::InterfaceAddress>> ListAddresses(
      const net::LinkRef& link) override {
    return nl_.ListAddresses(link);
  }
  absl::Status AddAddress(const net::LinkRef& link, const net::InterfaceAddress& a) override {
    return nl_.AddAddress(link, a);
  }
  absl::Status DeleteAddress(const net::LinkRef& link, const net::InterfaceAddress& a) override {
    return nl_.DeleteAddress(link, a);
  }
  absl::StatusOr<std::vector<net::Neighbour>> ListNeighbours(const net::LinkRef& link) override {
    return nl_.ListNeighbours(link);
  }
  absl::Status ReplaceNeighbour(const net::Neighbour& n) override {
    return nl_.ReplaceNeighbour(n);
  }
  absl::Status DeleteNeighbour(const net::Neighbour& n) override {
    return nl_.DeleteNeighbour(n);
  }
  absl::StatusOr<std::vector<net::FdbEntry>> ListFdbEntries(const net::LinkRef& link) override {
    return nl_.ListFdbEntries(link);
  }
  absl::Status ReplaceFdbEntry(const net::FdbEntry& e) override {
    return nl_.ReplaceFdbEntry(e);
  }
  absl::Status DeleteFdbEntry(const net::FdbEntry& e) override {
    return nl_.DeleteFdbEntry(e);
  }
  absl::StatusOr<std::vector<net::Route>> ListRoutes() override {
    return nl_.ListRoutes(net::kMainTable);
  }
  absl::Status ReplaceRoute(const net::Route& r) override {
    return nl_.ReplaceRoute(r);
  }
  absl::Status DeleteRoute(const net::Route& r) override {
    return nl_.DeleteRoute(r);
  }

 private:
  net::Netlink nl_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<OverlayKernel>> NewNetlinkOverlayKernel() {
  ASSIGN_OR_RETURN(net::Netlink nl, net::Netlink::Create());
  return std::unique_ptr<OverlayKernel>(new NetlinkOverlayKernel(std::move(nl)));
}

}  // namespace loom::overlay
