#include "common/net/ip.h"

#include <arpa/inet.h>

#include <cstdio>
#include <random>

#include "common/status.h"
#include "common/strings.h"

namespace loom::net {
namespace {

// Parses a decimal number of at most `max_digits` digits with no sign, no spaces and
// no leading zero (other than "0" itself). Returns -1 when malformed.
int64_t ParseDecimal(std::string_view text, size_t max_digits) {
  if (text.empty() || text.size() > max_digits) return -1;
  if (text.size() > 1 && text[0] == '0') return -1;
  int64_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return -1;
    value = value * 10 + (c - '0');
  }
  return value;
}

uint32_t MaskBits(int length) {
  return length == 0 ? 0 : ~uint32_t{0} << (32 - length);
}

absl::Status BadAddress(std::string_view text, std::string_view why) {
  return absl::InvalidArgumentError(StrCat("invalid IPv4 address \"", text, "\": ", why));
}

absl::StatusOr<Ipv4Prefix> ParsePrefix(std::string_view text, bool strict) {
  auto bad = [&](std::string_view why) {
    return absl::InvalidArgumentError(StrCat("invalid IPv4 prefix \"", text, "\": ", why));
  };
  size_t slash = text.find('/');
  if (slash == std::string_view::npos) return bad("missing /length");
  auto address = Ipv4Address::Parse(text.substr(0, slash));
  if (!address.ok()) return bad(ToStd(address.status().message()));
  std::string_view len_text = text.substr(slash + 1);
  int64_t length = ParseDecimal(len_text, 2);
  if (length < 0 || length > 32) {
    return bad(StrCat("prefix length \"", len_text, "\" is not a number from 0 to 32"));
  }
  ASSIGN_OR_RETURN(Ipv4Prefix prefix, Ipv4Prefix::Create(*address, static_cast<int>(length)));
  if (strict && prefix.HasHostBits()) {
    return bad(StrCat("host bits set (the network is ", prefix.network().ToString(), ")"));
  }
  return prefix;
}

}  // namespace

absl::StatusOr<Ipv4Address> Ipv4Address::Parse(std::string_view text) {
  std::array<uint8_t, 4> octets{};
  size_t pos = 0;
  for (int i = 0; i < 4; ++i) {
    size_t end = i < 3 ? text.find('.', pos) : text.size();
    if (end == std::string_view::npos) return BadAddress(text, "expected four octets");
    std::string_view part = text.substr(pos, end - pos);
    if (i == 3 && part.find('.') != std::string_view::npos) {
      return BadAddress(text, "expected four octets");
    }
    int64_t value = ParseDecimal(part, 3);
    if (value < 0 || value > 255) {
      return BadAddress(text, StrCat("octet \"", part,
                                     "\" is not a decimal from 0 to 255 without leading zeros"));
    }
    octets[i] = static_cast<uint8_t>(value);
    pos = end + 1;
  }
  return FromBytes(octets);
}

Ipv4Address Ipv4Address::FromNetworkOrder(uint32_t value) { return Ipv4Address(ntohl(value)); }

uint32_t Ipv4Address::ToNetworkOrder() const { return htonl(value_); }

std::string Ipv4Address::ToString() const {
  std::array<uint8_t, 4> b = ToBytes();
  return StrCat(int{b[0]}, ".", int{b[1]}, ".", int{b[2]}, ".", int{b[3]});
}

std::ostream& operator<<(std::ostream& os, const Ipv4Address& a) { return os << a.ToString(); }

Ipv4Prefix SubnetRange::Iterator::operator*() const { return (*range_)[index_]; }

Ipv4Prefix SubnetRange::operator[](uint64_t index) const {
  uint32_t step_shift = 32 - new_length_;
  uint32_t offset = step_shift == 32 ? 0 : static_cast<uint32_t>(index << step_shift);
  return Ipv4Prefix::Create(Ipv4Address::FromHostOrder(base_ + offset), new_length_).value();
}

absl::StatusOr<Ipv4Prefix> SubnetRange::At(uint64_t index) const {
  if (index >= count_) {
    return absl::OutOfRangeError(
        StrCat("subnet index ", index, " out of range: there are ", count_, " /", new_length_));
  }
  return (*this)[index];
}

absl::StatusOr<Ipv4Prefix> Ipv4Prefix::Parse(std::string_view text) {
  return ParsePrefix(text, /*strict=*/true);
}

absl::StatusOr<Ipv4Prefix> Ipv4Prefix::ParseHost(std::string_view text) {
  return ParsePrefix(text, /*strict=*/false);
}

absl::StatusOr<Ipv4Prefix> Ipv4Prefix::Create(Ipv4Address address, int length) {
  if (length < 0 || length > 32) {
    return absl::InvalidArgumentError(
        StrCat("invalid IPv4 prefix length ", length, " for ", address.ToString(),
               ": must be 0 to 32"));
  }
  return Ipv4Prefix(address, length);
}

Ipv4Address Ipv4Prefix::mask() const { return Ipv4Address::FromHostOrder(MaskBits(length_)); }

Ipv4Prefix Ipv4Prefix::network() const {
  return Ipv4Prefix(Ipv4Address::FromHostOrder(address_.ToHostOrder() & MaskBits(length_)),
                    length_);
}

Ipv4Address Ipv4Prefix::Broadcast() const {
  return Ipv4Address::FromHostOrder(address_.ToHostOrder() | ~MaskBits(length_));
}

bool Ipv4Prefix::Contains(Ipv4Address address) const {
  uint32_t mask = MaskBits(length_);
  return (address.ToHostOrder() & mask) == (address_.ToHostOrder() & mask);
}

bool Ipv4Prefix::Contains(const Ipv4Prefix& other) const {
  return other.length_ >= length_ && Contains(other.address_);
}

bool Ipv4Prefix::Overlaps(const Ipv4Prefix& other) const {
  return Contains(other) || other.Contains(*this);
}

absl::StatusOr<Ipv4Address> Ipv4Prefix::Nth(uint64_t i) const {
  if (i >= Size()) {
    return absl::OutOfRangeError(StrCat("address index ", i, " out of range for ", ToString(),
                                        " (", Size(), " addresses)"));
  }
  return Ipv4Address::FromHostOrder(NetworkAddress().ToHostOrder() + static_cast<uint32_t>(i));
}

absl::StatusOr<SubnetRange> Ipv4Prefix::Subnets(int new_length) const {
  if (new_length < length_ || new_length > 32) {
    return absl::InvalidArgumentError(StrCat("cannot split ", ToString(), " into /", new_length,
                                             ": the length must be ", length_, " to 32"));
  }
  return SubnetRange(NetworkAddress().ToHostOrder(), new_length,
                     uint64_t{1} << (new_length - length_));
}

std::string Ipv4Prefix::ToString() const { return StrCat(address_.ToString(), "/", length_); }

std::ostream& operator<<(std::ostream& os, const Ipv4Prefix& p) { return os << p.ToString(); }

absl::StatusOr<MacAddress> MacAddress::Parse(std::string_view text) {
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  // Exactly "xx:xx:xx:xx:xx:xx".
  if (text.size() != 17) {
    return absl::InvalidArgumentError(
        StrCat("invalid MAC address \"", text, "\": expected six hex pairs like aa:bb:cc:dd:ee:ff"));
  }
  std::array<uint8_t, 6> bytes{};
  for (size_t i = 0; i < 6; ++i) {
    size_t at = i * 3;
    int hi = hex(text[at]);
    int lo = hex(text[at + 1]);
    if (hi < 0 || lo < 0 || (i < 5 && text[at + 2] != ':')) {
      return absl::InvalidArgumentError(StrCat(
          "invalid MAC address \"", text, "\": expected six hex pairs like aa:bb:cc:dd:ee:ff"));
    }
    bytes[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return MacAddress(bytes);
}

MacAddress MacAddress::RandomLocal(uint64_t seed) {
  std::mt19937_64 engine(seed);
  uint64_t bits = engine();
  std::array<uint8_t, 6> bytes{};
  for (size_t i = 0; i < 6; ++i) bytes[i] = static_cast<uint8_t>(bits >> (8 * i));
  // Locally administered (bit 1 set), unicast (bit 0 clear).
  bytes[0] = static_cast<uint8_t>((bytes[0] & 0xfc) | 0x02);
  return MacAddress(bytes);
}

std::string MacAddress::ToString() const {
  char buf[18];
  std::snprintf(buf, sizeof(buf), "%02x:%02x:%02x:%02x:%02x:%02x", bytes_[0], bytes_[1],
                bytes_[2], bytes_[3], bytes_[4], bytes_[5]);
  return buf;
}

bool MacAddress::IsZero() const { return *this == MacAddress(); }

bool MacAddress::IsBroadcast() const {
  return *this == MacAddress({0xff, 0xff, 0xff, 0xff, 0xff, 0xff});
}

std::ostream& operator<<(std::ostream& os, const MacAddress& m) { return os << m.ToString(); }

}  // namespace loom::net
