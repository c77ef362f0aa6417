// Firewall through the `nft` binary, in the namespace loomd runs in, plus
// net.ipv4.ip_forward=1 (the node forwards pod traffic).
#pragma once

#include <memory>
#include <string>

#include "overlay/firewall.h"

namespace loom::overlay {

// `nft_path`: the nft binary ("nft": looked up in PATH).
std::unique_ptr<Firewall> NewNftFirewall(std::string nft_path = "nft");

// Writes 1 to /proc/sys/net/ipv4/ip_forward unless it already is 1.
absl::Status EnableIpForwarding();

}  // namespace loom::overlay
