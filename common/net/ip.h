// Value types for IPv4 addresses, IPv4 prefixes and MAC addresses. No kernel
// dependencies: these are shared by the netlink wrapper, the CNI plugin, the overlay
// and the model, and are unit-tested without root.
//
// Parsing is strict: dotted quads with exactly four decimal octets, no leading zeros
// ("010.0.0.1" is rejected, since inet_aton would read it as octal), no spaces.
#pragma once

#include <array>
#include <compare>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <ostream>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace loom::net {

class Ipv4Address {
 public:
  // 0.0.0.0.
  constexpr Ipv4Address() = default;
  constexpr Ipv4Address(uint8_t a, uint8_t b, uint8_t c, uint8_t d)
      : value_((uint32_t{a} << 24) | (uint32_t{b} << 16) | (uint32_t{c} << 8) | d) {}

  // "10.0.0.1".
  static absl::StatusOr<Ipv4Address> Parse(std::string_view text);
  static constexpr Ipv4Address FromHostOrder(uint32_t value) { return Ipv4Address(value); }
  // As stored in in_addr.s_addr and on the wire.
  static Ipv4Address FromNetworkOrder(uint32_t value);
  static constexpr Ipv4Address FromBytes(const std::array<uint8_t, 4>& b) {
    return Ipv4Address(b[0], b[1], b[2], b[3]);
  }

  constexpr uint32_t ToHostOrder() const { return value_; }
  uint32_t ToNetworkOrder() const;
  constexpr std::array<uint8_t, 4> ToBytes() const {
    return {static_cast<uint8_t>(value_ >> 24), static_cast<uint8_t>(value_ >> 16),
            static_cast<uint8_t>(value_ >> 8), static_cast<uint8_t>(value_)};
  }
  std::string ToString() const;

  constexpr bool IsUnspecified() const { return value_ == 0; }
  constexpr bool IsLoopback() const { return (value_ >> 24) == 127; }
  constexpr bool IsLinkLocal() const { return (value_ >> 16) == 0xa9fe; }  // 169.254/16
  constexpr bool IsMulticast() const { return (value_ >> 28) == 0xe; }     // 224/4

  friend constexpr auto operator<=>(const Ipv4Address&, const Ipv4Address&) = default;

  template <typename H>
  friend H AbslHashValue(H h, const Ipv4Address& a) {
    return H::combine(std::move(h), a.value_);
  }

 private:
  explicit constexpr Ipv4Address(uint32_t host_order) : value_(host_order) {}
  uint32_t value_ = 0;
};

std::ostream& operator<<(std::ostream& os, const Ipv4Address& a);

class Ipv4Prefix;

// The subnets of length `new_length` of a prefix, in address order, indexable and
// iterable without materialising them: Ipv4Prefix("10.0.0.0/8").Subnets(30) is 4M of them.
class SubnetRange {
 public:
  class Iterator {
   public:
    using iterator_category = std::forward_iterator_tag;
    using value_type = Ipv4Prefix;
    using difference_type = std::ptrdiff_t;
    using pointer = void;
    using reference = Ipv4Prefix;

    Iterator() = default;
    Ipv4Prefix operator*() const;
    Iterator& operator++() {
      ++index_;
      return *this;
    }
    Iterator operator++(int) {
      Iterator old = *this;
      ++index_;
      return old;
    }
    friend bool operator==(const Iterator& a, const Iterator& b) { return a.index_ == b.index_; }

   private:
    friend class SubnetRange;
    Iterator(const SubnetRange* range, uint64_t index) : range_(range), index_(index) {}
    const SubnetRange* range_ = nullptr;
    uint64_t index_ = 0;
  };

  uint64_t size() const { return count_; }
  int new_length() const { return new_length_; }
  // index < size(); otherwise the result wraps (use At for a checked lookup).
  Ipv4Prefix operator[](uint64_t index) const;
  absl::StatusOr<Ipv4Prefix> At(uint64_t index) const;
  Iterator begin() const { return Iterator(this, 0); }
  Iterator end() const { return Iterator(this, count_); }

 private:
  friend class Ipv4Prefix;
  SubnetRange(uint32_t base, int new_length, uint64_t count)
      : base_(base), new_length_(new_length), count_(count) {}
  uint32_t base_;
  int new_length_;
  uint64_t count_;
};

// An address with a prefix length. A prefix may keep host bits ("10.244.1.5/24", an
// interface address, from ParseHost or Create) or not ("10.244.0.0/16", a network,
// from Parse); network() clears them.
class Ipv4Prefix {
 public:
  // 0.0.0.0/0.
  constexpr Ipv4Prefix() = default;

  // Strict: "10.244.0.0/16"; host bits set ("10.244.1.5/16") is an error.
  static absl::StatusOr<Ipv4Prefix> Parse(std::string_view text);
  // Keeps the address as written: "10.244.1.5/24" (an interface address).
  static absl::StatusOr<Ipv4Prefix> ParseHost(std::string_view text);
  // Keeps host bits; length must be 0..32.
  static absl::StatusOr<Ipv4Prefix> Create(Ipv4Address address, int length);
  // address/32.
  static constexpr Ipv4Prefix Host(Ipv4Address address) { return Ipv4Prefix(address, 32); }

  constexpr Ipv4Address address() const { return address_; }
  constexpr int length() const { return length_; }
  Ipv4Address mask() const;
  // The prefix with host bits cleared.
  Ipv4Prefix network() const;
  Ipv4Address NetworkAddress() const { return network().address(); }
  // The last address of the prefix (the directed broadcast for /0../30).
  Ipv4Address Broadcast() const;
  bool HasHostBits() const { return address_ != NetworkAddress(); }

  bool Contains(Ipv4Address address) const;
  // True if `other` lies entirely inside this prefix (a prefix contains itself).
  bool Contains(const Ipv4Prefix& other) const;
  bool Overlaps(const Ipv4Prefix& other) const;
  // Number of addresses: 2^(32 - length).
  uint64_t Size() const { return uint64_t{1} << (32 - length_); }
  // The i-th address of the prefix counting from the network address (Nth(0));
  // OutOfRange when i >= Size().
  absl::StatusOr<Ipv4Address> Nth(uint64_t i) const;
  // The subnets of length new_length (length() <= new_length <= 32).
  absl::StatusOr<SubnetRange> Subnets(int new_length) const;

  // "10.244.1.5/24", the address as stored.
  std::string ToString() const;

  friend constexpr auto operator<=>(const Ipv4Prefix&, const Ipv4Prefix&) = default;

  template <typename H>
  friend H AbslHashValue(H h, const Ipv4Prefix& p) {
    return H::combine(std::move(h), p.address_, p.length_);
  }

 private:
  constexpr Ipv4Prefix(Ipv4Address address, int length) : address_(address), length_(length) {}
  Ipv4Address address_;
  int length_ = 0;
};

std::ostream& operator<<(std::ostream& os, const Ipv4Prefix& p);

class MacAddress {
 public:
  // 00:00:00:00:00:00.
  constexpr MacAddress() = default;
  constexpr explicit MacAddress(const std::array<uint8_t, 6>& bytes) : bytes_(bytes) {}

  // "aa:bb:cc:dd:ee:ff", hex digits in either case, exactly two per group.
  static absl::StatusOr<MacAddress> Parse(std::string_view text);
  // A unicast, locally administered address derived deterministically from `seed`
  // (the same seed gives the same address), as a node's VTEP MAC or a veth's.
  static MacAddress RandomLocal(uint64_t seed);

  constexpr const std::array<uint8_t, 6>& bytes() const { return bytes_; }
  // Lower case: "aa:bb:cc:dd:ee:ff".
  std::string ToString() const;

  bool IsZero() const;
  bool IsBroadcast() const;
  constexpr bool IsMulticast() const { return (bytes_[0] & 0x01) != 0; }
  constexpr bool IsLocallyAdministered() const { return (bytes_[0] & 0x02) != 0; }

  friend constexpr auto operator<=>(const MacAddress&, const MacAddress&) = default;

  template <typename H>
  friend H AbslHashValue(H h, const MacAddress& m) {
    return H::combine(std::move(h), m.bytes_);
  }

 private:
  std::array<uint8_t, 6> bytes_{};
};

std::ostream& operator<<(std::ostream& os, const MacAddress& m);

}  // namespace loom::net
