// The CNI Result (interfaces, ips, routes, dns) and its JSON per spec version:
//   1.0.0, 1.1.0: ips carry no "version"; route mtu/advmss/priority/table/scope and
//                 interface mtu/socketPath/pciID exist only from 1.1.0.
//   0.3.1, 0.4.0: ips carry "version": "4" or "6".
// Empty fields are omitted as the reference plugins omit them; "dns" is always
// present (the Go reference types never omit it).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "cni/protocol/version.h"
#include "common/json.h"

namespace loom::cni {

struct Interface {
  std::string name;
  std::string mac;
  std::optional<int> mtu;  // 1.1.0
  std::string sandbox;     // netns path for interfaces inside the container
  std::string socket_path; // 1.1.0
  std::string pci_id;      // 1.1.0

  bool operator==(const Interface&) const = default;
};

struct IpConfig {
  std::string address;           // CIDR, "10.244.1.5/32"
  std::string gateway;           // optional
  std::optional<int> interface;  // index into Result::interfaces

  bool operator==(const IpConfig&) const = default;
};

struct Route {
  std::string dst;  // CIDR
  std::string gw;   // optional
  std::optional<int> mtu;       // 1.1.0
  std::optional<int> advmss;    // 1.1.0
  std::optional<int> priority;  // 1.1.0
  std::optional<int> table;     // 1.1.0
  std::optional<int> scope;     // 1.1.0

  bool operator==(const Route&) const = default;
};

struct Dns {
  std::vector<std::string> nameservers;
  std::string domain;
  std::vector<std::string> search;
  std::vector<std::string> options;

  bool empty() const {
    return nameservers.empty() && domain.empty() && search.empty() && options.empty();
  }
  bool operator==(const Dns&) const = default;
};

struct Result {
  std::vector<Interface> interfaces;
  std::vector<IpConfig> ips;
  std::vector<Route> routes;
  Dns dns;

  bool operator==(const Result&) const = default;
};

// Encodes `result` in the shape of `version` (a supported version, else code 1).
// Fields the version lacks are dropped; "cniVersion" is `version`.
absl::StatusOr<Json> EncodeResult(const Result& result, const SpecVersion& version);
// Encodes and renders as text (with a trailing newline), ready for stdout.
absl::StatusOr<std::string> ResultText(const Result& result, const SpecVersion& version);

// Decodes a result of any supported shape. Its own "cniVersion", when present, must
// be supported (code 1). Type and value errors are InvalidArgument naming the field
// under `path` ("prevResult.ips[0].address").
absl::StatusOr<Result> DecodeResult(const Json& json, std::string_view path = "");

// Converting is decoding and re-encoding in the target's shape, as libcni's convert
// does: "version" is added for 0.x from the address family and dropped for 1.x; the
// 1.1.0-only fields are dropped below 1.1.0.
absl::StatusOr<Json> ConvertResult(const Json& json, const SpecVersion& to);

// Dns from a {nameservers, domain, search, options} object (also the runtimeConfig one).
absl::StatusOr<Dns> DecodeDns(const Json& json, std::string_view path);
Json EncodeDns(const Dns& dns);

}  // namespace loom::cni
