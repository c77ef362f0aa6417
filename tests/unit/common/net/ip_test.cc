#include "common/net/ip.h"

#include <vector>

#include "absl/container/flat_hash_set.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace loom::net {
namespace {

using ::loom::testing::IsOkAndHolds;
using ::loom::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::Eq;
using ::testing::HasSubstr;

Ipv4Address Ip(std::string_view text) { return Ipv4Address::Parse(text).value(); }
Ipv4Prefix Net(std::string_view text) { return Ipv4Prefix::Parse(text).value(); }
Ipv4Prefix HostNet(std::string_view text) { return Ipv4Prefix::ParseHost(text).value(); }

TEST(Ipv4AddressTest, ParsesAndFormats) {
  EXPECT_THAT(Ipv4Address::Parse("10.0.0.1"), IsOkAndHolds(Eq(Ipv4Address(10, 0, 0, 1))));
  EXPECT_EQ(Ip("0.0.0.0").ToString(), "0.0.0.0");
  EXPECT_EQ(Ip("255.255.255.255").ToString(), "255.255.255.255");
  EXPECT_EQ(Ip("192.168.100.200").ToString(), "192.168.100.200");
  EXPECT_EQ(Ipv4Address().ToString(), "0.0.0.0");
}

TEST(Ipv4AddressTest, RejectsMalformed) {
  for (const char* bad : {"", "1", "1.2.3", "1.2.3.4.5", "1.2.3.", ".1.2.3", "1..2.3",
                          "256.0.0.1", "1.2.3.256", "1.2.3.1000", "-1.2.3.4", "+1.2.3.4",
                          " 1.2.3.4", "1.2.3.4 ", "1.2.3.4/32", "a.b.c.d", "0x1.2.3.4",
                          "01.2.3.4", "1.2.3.04", "1.2.3.00", "::1"}) {
    EXPECT_THAT(Ipv4Address::Parse(bad), StatusIs(absl::StatusCode::kInvalidArgument))
        << "\"" << bad << "\"";
  }
  EXPECT_THAT(Ipv4Address::Parse("10.0.0.300"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("octet \"300\"")));
  EXPECT_THAT(Ipv4Address::Parse("010.0.0.1"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("leading zeros")));
}

TEST(Ipv4AddressTest, ByteOrders) {
  Ipv4Address a(10, 1, 2, 3);
  EXPECT_EQ(a.ToHostOrder(), 0x0a010203u);
  EXPECT_EQ(Ipv4Address::FromHostOrder(0x0a010203u), a);
  // Network order: the first octet is the first byte in memory.
  uint32_t be = a.ToNetworkOrder();
  const auto* bytes = reinterpret_cast<const uint8_t*>(&be);
  EXPECT_EQ(bytes[0], 10);
  EXPECT_EQ(bytes[3], 3);
  EXPECT_EQ(Ipv4Address::FromNetworkOrder(be), a);
  EXPECT_EQ(Ipv4Address::FromBytes({10, 1, 2, 3}), a);
  EXPECT_EQ(a.ToBytes(), (std::array<uint8_t, 4>{10, 1, 2, 3}));
}

TEST(Ipv4AddressTest, ComparesAndHashes) {
  EXPECT_LT(Ip("9.255.255.255"), Ip("10.0.0.0"));
  EXPECT_LT(Ip("10.0.0.2"), Ip("10.0.0.10"));  // numeric, not lexical
  EXPECT_EQ(Ip("10.0.0.1"), Ipv4Address(10, 0, 0, 1));
  absl::flat_hash_set<Ipv4Address> set = {Ip("10.0.0.1"), Ip("10.0.0.1"), Ip("10.0.0.2")};
  EXPECT_EQ(set.size(), 2u);
  EXPECT_TRUE(set.contains(Ip("10.0.0.2")));
}

TEST(Ipv4AddressTest, Classes) {
  EXPECT_TRUE(Ip("0.0.0.0").IsUnspecified());
  EXPECT_TRUE(Ip("127.0.0.53").IsLoopback());
  EXPECT_TRUE(Ip("169.254.20.10").IsLinkLocal());
  EXPECT_TRUE(Ip("239.1.1.1").IsMulticast());
  EXPECT_FALSE(Ip("10.0.0.1").IsMulticast());
}

TEST(Ipv4PrefixTest, StrictParse) {
  Ipv4Prefix p = Net("10.244.0.0/16");
  EXPECT_EQ(p.address(), Ip("10.244.0.0"));
  EXPECT_EQ(p.length(), 16);
  EXPECT_EQ(p.ToString(), "10.244.0.0/16");
  EXPECT_EQ(Net("0.0.0.0/0").Size(), uint64_t{1} << 32);
  EXPECT_EQ(Net("10.0.0.1/32").Size(), 1u);
  EXPECT_THAT(Ipv4Prefix::Parse("10.244.1.5/16"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("host bits set (the network is 10.244.0.0/16)")));
}

TEST(Ipv4PrefixTest, HostParseKeepsAddress) {
  Ipv4Prefix p = HostNet("10.244.1.5/24");
  EXPECT_EQ(p.address(), Ip("10.244.1.5"));
  EXPECT_EQ(p.ToString(), "10.244.1.5/24");
  EXPECT_TRUE(p.HasHostBits());
  EXPECT_EQ(p.network(), Net("10.244.1.0/24"));
  EXPECT_EQ(p.NetworkAddress(), Ip("10.244.1.0"));
  EXPECT_EQ(p.Broadcast(), Ip("10.244.1.255"));
  EXPECT_EQ(p.mask(), Ip("255.255.255.0"));
}

TEST(Ipv4PrefixTest, RejectsMalformed) {
  for (const char* bad : {"", "10.0.0.0", "10.0.0.0/", "/8", "10.0.0.0/33", "10.0.0.0/-1",
                          "10.0.0.0/08", "10.0.0.0/100", "10.0.0.0/8/8", "10.0.0/8",
                          "10.0.0.0/ 8", "10.0.0.0/a", "010.0.0.0/8"}) {
    EXPECT_THAT(Ipv4Prefix::ParseHost(bad), StatusIs(absl::StatusCode::kInvalidArgument))
        << "\"" << bad << "\"";
  }
  EXPECT_THAT(Ipv4Prefix::Parse("10.0.0.0/33"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("0 to 32")));
  EXPECT_THAT(Ipv4Prefix::Create(Ip("10.0.0.0"), 33),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(Ipv4Prefix::Create(Ip("10.0.0.0"), -1),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(Ipv4PrefixTest, MasksAtTheEdges) {
  EXPECT_EQ(Net("0.0.0.0/0").mask(), Ip("0.0.0.0"));
  EXPECT_EQ(Net("0.0.0.0/0").Broadcast(), Ip("255.255.255.255"));
  EXPECT_EQ(HostNet("10.1.2.3/32").network(), HostNet("10.1.2.3/32"));
  EXPECT_EQ(HostNet("10.1.2.3/32").Broadcast(), Ip("10.1.2.3"));
  EXPECT_EQ(Net("10.96.0.0/12").Broadcast(), Ip("10.111.255.255"));
  EXPECT_EQ(Ipv4Prefix::Host(Ip("1.2.3.4")).ToString(), "1.2.3.4/32");
}

TEST(Ipv4PrefixTest, Contains) {
  Ipv4Prefix cluster = Net("10.244.0.0/16");
  EXPECT_TRUE(cluster.Contains(Ip("10.244.0.0")));
  EXPECT_TRUE(cluster.Contains(Ip("10.244.255.255")));
  EXPECT_FALSE(cluster.Contains(Ip("10.245.0.0")));
  EXPECT_TRUE(cluster.Contains(Net("10.244.7.0/24")));
  EXPECT_TRUE(cluster.Contains(cluster));
  EXPECT_FALSE(cluster.Contains(Net("10.0.0.0/8")));
  EXPECT_TRUE(Net("0.0.0.0/0").Contains(Ip("203.0.113.9")));
  EXPECT_TRUE(HostNet("10.244.1.5/24").Contains(Ip("10.244.1.200")));
  EXPECT_TRUE(Net("10.0.0.0/8").Overlaps(cluster));
  EXPECT_TRUE(cluster.Overlaps(Net("10.0.0.0/8")));
  EXPECT_FALSE(cluster.Overlaps(Net("10.96.0.0/12")));
}

TEST(Ipv4PrefixTest, Nth) {
  Ipv4Prefix p = HostNet("10.244.1.5/24");
  EXPECT_THAT(p.Nth(0), IsOkAndHolds(Eq(Ip("10.244.1.0"))));
  EXPECT_THAT(p.Nth(1), IsOkAndHolds(Eq(Ip("10.244.1.1"))));
  EXPECT_THAT(p.Nth(255), IsOkAndHolds(Eq(Ip("10.244.1.255"))));
  EXPECT_THAT(p.Nth(256), StatusIs(absl::StatusCode::kOutOfRange, HasSubstr("256")));
  EXPECT_THAT(Net("0.0.0.0/0").Nth(0xffffffffu), IsOkAndHolds(Eq(Ip("255.255.255.255"))));
  EXPECT_THAT(Net("10.0.0.7/32").Nth(0), IsOkAndHolds(Eq(Ip("10.0.0.7"))));
  EXPECT_THAT(Net("10.0.0.7/32").Nth(1), StatusIs(absl::StatusCode::kOutOfRange));
}

TEST(Ipv4PrefixTest, Subnets) {
  auto range = Net("10.244.0.0/16").Subnets(24);
  ASSERT_TRUE(range.ok());
  EXPECT_EQ(range->size(), 256u);
  EXPECT_EQ((*range)[0], Net("10.244.0.0/24"));
  EXPECT_EQ((*range)[255], Net("10.244.255.0/24"));
  EXPECT_THAT(range->At(7), IsOkAndHolds(Eq(Net("10.244.7.0/24"))));
  EXPECT_THAT(range->At(256), StatusIs(absl::StatusCode::kOutOfRange));
  int count = 0;
  Ipv4Prefix last;
  for (Ipv4Prefix subnet : *range) {
    EXPECT_TRUE(Net("10.244.0.0/16").Contains(subnet));
    if (count > 0) {
      EXPECT_LT(last, subnet);
    }
    last = subnet;
    ++count;
  }
  EXPECT_EQ(count, 256);

  // Host bits of the parent do not leak into the subnets.
  auto halves = HostNet("10.1.2.3/24").Subnets(25);
  ASSERT_TRUE(halves.ok());
  EXPECT_THAT(std::vector<Ipv4Prefix>(halves->begin(), halves->end()),
              ElementsAre(Net("10.1.2.0/25"), Net("10.1.2.128/25")));

  auto same = Net("10.1.2.0/24").Subnets(24);
  ASSERT_TRUE(same.ok());
  EXPECT_EQ(same->size(), 1u);
  EXPECT_EQ((*same)[0], Net("10.1.2.0/24"));

  auto all = Net("0.0.0.0/0").Subnets(32);
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->size(), uint64_t{1} << 32);
  EXPECT_EQ((*all)[0xffffffffu], Net("255.255.255.255/32"));

  EXPECT_THAT(Net("10.244.0.0/16").Subnets(15), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(Net("10.244.0.0/16").Subnets(33), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(Ipv4PrefixTest, ComparesAndHashes) {
  EXPECT_NE(HostNet("10.0.0.1/24"), Net("10.0.0.0/24"));
  EXPECT_NE(Net("10.0.0.0/24"), Net("10.0.0.0/25"));
  absl::flat_hash_set<Ipv4Prefix> set = {Net("10.0.0.0/24"), Net("10.0.0.0/24"),
                                         Net("10.0.0.0/25")};
  EXPECT_EQ(set.size(), 2u);
}

TEST(MacAddressTest, ParsesAndFormats) {
  auto mac = MacAddress::Parse("AA:bb:0c:Dd:ee:0F");
  ASSERT_TRUE(mac.ok());
  EXPECT_EQ(mac->ToString(), "aa:bb:0c:dd:ee:0f");
  EXPECT_EQ(mac->bytes(), (std::array<uint8_t, 6>{0xaa, 0xbb, 0x0c, 0xdd, 0xee, 0x0f}));
  EXPECT_TRUE(MacAddress().IsZero());
  EXPECT_TRUE(MacAddress::Parse("ff:ff:ff:ff:ff:ff")->IsBroadcast());
  EXPECT_TRUE(MacAddress::Parse("01:00:5e:00:00:01")->IsMulticast());
}

TEST(MacAddressTest, RejectsMalformed) {
  for (const char* bad : {"", "aa:bb:cc:dd:ee", "aa:bb:cc:dd:ee:ff:00", "aa-bb-cc-dd-ee-ff",
                          "aabb.ccdd.eeff", "a:bb:cc:dd:ee:fff", "gg:bb:cc:dd:ee:ff",
                          "aa:bb:cc:dd:ee:f", " aa:bb:cc:dd:ee:ff", "aa:bb:cc:dd:ee:ff "}) {
    EXPECT_THAT(MacAddress::Parse(bad), StatusIs(absl::StatusCode::kInvalidArgument))
        << "\"" << bad << "\"";
  }
}

TEST(MacAddressTest, RandomLocalIsDeterministicUnicastAndLocal) {
  absl::flat_hash_set<MacAddress> seen;
  for (uint64_t seed = 0; seed < 1000; ++seed) {
    MacAddress mac = MacAddress::RandomLocal(seed);
    EXPECT_TRUE(mac.IsLocallyAdministered()) << mac;
    EXPECT_FALSE(mac.IsMulticast()) << mac;
    EXPECT_EQ(mac, MacAddress::RandomLocal(seed));
    seen.insert(mac);
  }
  EXPECT_EQ(seen.size(), 1000u);
}

}  // namespace
}  // namespace loom::net
