#include "dns/wire.h"

#include <random>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace loom::dns {
namespace {

using ::loom::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

Name N(std::string_view text) {
  auto n = Name::FromText(text);
  EXPECT_TRUE(n.ok()) << n.status();
  return n.ok() ? *n : Name();
}

// A query as a client would send it, built by hand so the decoder is tested
// against bytes it did not write itself.
std::vector<uint8_t> QueryBytes(std::string_view name, uint16_t qtype, bool edns = false,
                                uint16_t id = 0x1234) {
  std::vector<uint8_t> b = {static_cast<uint8_t>(id >> 8), static_cast<uint8_t>(id), 0x01, 0x00,
                            0, 1, 0, 0, 0, 0, 0, static_cast<uint8_t>(edns ? 1 : 0)};
  Name n = N(name);
  b.insert(b.end(), n.wire(), n.wire() + n.wire_size());
  b.push_back(static_cast<uint8_t>(qtype >> 8));
  b.push_back(static_cast<uint8_t>(qtype));
  b.push_back(0);
  b.push_back(1);
  if (edns) {
    // root, OPT, udp 1232, ext rcode 0, version 0, DO set, rdlength 0
    std::vector<uint8_t> opt = {0, 0, 41, 0x04, 0xD0, 0, 0, 0x80, 0, 0, 0};
    b.insert(b.end(), opt.begin(), opt.end());
  }
  return b;
}

TEST(Name, TextRoundTripAndEscapes) {
  EXPECT_EQ(N("www.Example.com").ToText(), "www.Example.com.");
  EXPECT_EQ(N("www.example.com.").wire_size(), 17u);
  EXPECT_TRUE(N(".").is_root());
  EXPECT_EQ(N("").ToText(), ".");
  EXPECT_EQ(N("a\\.b.c").label_count(), 2);
  EXPECT_EQ(N("a\\.b.c").ToText(), "a\\.b.c.");
  EXPECT_EQ(N("a\\032b.c").ToText(), "a\\032b.c.");
}

TEST(Name, RejectsBadText) {
  EXPECT_THAT(Name::FromText("a..b"), StatusIs(absl::StatusCode::kInvalidArgument,
                                               HasSubstr("empty label")));
  EXPECT_THAT(Name::FromText(std::string(64, 'a') + ".com"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("63")));
  std::string long_name;
  for (int i = 0; i < 5; ++i) long_name += std::string(60, 'a') + ".";
  EXPECT_THAT(Name::FromText(long_name),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("255")));
  EXPECT_THAT(Name::FromText("a\\"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(Name::FromText("a\\999.b"), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(Name, MatchingIsCaseInsensitiveOnLabelBoundaries) {
  Name zone = N("cluster.local");
  EXPECT_TRUE(N("Web.Default.SVC.Cluster.Local").IsSubdomainOf(zone));
  EXPECT_TRUE(N("cluster.local").IsSubdomainOf(zone));
  EXPECT_FALSE(N("xcluster.local").IsSubdomainOf(zone));
  EXPECT_FALSE(N("local").IsSubdomainOf(zone));
  EXPECT_TRUE(N("WWW.example.COM").Equals(N("www.EXAMPLE.com")));
  EXPECT_FALSE(N("www.example.com").Equals(N("www.example.org")));
  EXPECT_EQ(N("A.b").Lowered(), N("a.B").Lowered());

  std::string_view labels[8];
  Name srv = N("_http._TCP.web.default.svc.cluster.local");  // the views point into it
  int n = srv.LabelsBefore(zone, labels, 8);
  ASSERT_EQ(n, 5);
  EXPECT_EQ(labels[0], "_http");
  EXPECT_EQ(labels[1], "_TCP");
  EXPECT_EQ(labels[4], "svc");
}

TEST(Name, Prepend) {
  Name n = N("svc.cluster.local");
  ASSERT_TRUE(n.Prepend("default"));
  EXPECT_EQ(n.ToText(), "default.svc.cluster.local.");
  EXPECT_FALSE(n.Prepend(""));
  EXPECT_FALSE(n.Prepend(std::string(64, 'x')));
}

TEST(DecodeQuery, ReadsQuestionAndEdns) {
  auto b = QueryBytes("Web.Default.svc.cluster.local", type::kA, /*edns=*/true);
  Query q;
  DecodeError err;
  ASSERT_TRUE(DecodeQuery(b.data(), b.size(), &q, &err)) << err.reason;
  EXPECT_EQ(q.header.id, 0x1234);
  EXPECT_TRUE(q.header.rd());
  EXPECT_EQ(q.question.qtype, type::kA);
  EXPECT_EQ(q.question.qclass, kClassIn);
  EXPECT_EQ(q.question.name.ToText(), "Web.Default.svc.cluster.local.");
  ASSERT_TRUE(q.edns.has_value());
  EXPECT_EQ(q.edns->udp_size, 1232);
  EXPECT_TRUE(q.edns->dnssec_ok);
}

TEST(DecodeQuery, DropsWhatCannotBeAnswered) {
  Query q;
  DecodeError err;
  std::vector<uint8_t> short_packet = {0x12, 0x34, 0x01};
  EXPECT_FALSE(DecodeQuery(short_packet.data(), short_packet.size(), &q, &err));
  EXPECT_EQ(err.kind, DecodeError::Kind::kDrop);
  auto response = QueryBytes("a.b", type::kA);
  response[2] |= 0x80;  // QR
  EXPECT_FALSE(DecodeQuery(response.data(), response.size(), &q, &err));
  EXPECT_EQ(err.kind, DecodeError::Kind::kDrop);
}

TEST(DecodeQuery, FormErrOnMalformedBodies) {
  struct Case {
    const char* what;
    std::vector<uint8_t> bytes;
  };
  std::vector<uint8_t> header = {0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0};
  auto with = [&](std::vector<uint8_t> body, uint8_t qd = 1, uint8_t ar = 0) {
    std::vector<uint8_t> b = header;
    b[5] = qd;
    b[11] = ar;
    b.insert(b.end(), body.begin(), body.end());
    return b;
  };
  std::vector<Case> cases = {
      {"no question", with({}, 0)},
      {"two questions", with({1, 'a', 0, 0, 1, 0, 1, 1, 'b', 0, 0, 1, 0, 1}, 2)},
      {"label past end", with({5, 'a', 'b'})},
      {"self pointer", with({0xC0, 12, 0, 1, 0, 1})},
      {"forward pointer", with({0xC0, 20, 0, 1, 0, 1, 0, 0, 0, 0, 1, 'a', 0})},
      {"pointer loop", with({1, 'a', 0xC0, 12, 0, 1, 0, 1})},
      {"extended label type", with({0x41, 'a', 0, 0, 1, 0, 1})},
      {"truncated question", with({1, 'a', 0, 0, 1})},
      {"truncated pointer", with({0xC0})},
      {"truncated OPT", with({1, 'a', 0, 0, 1, 0, 1, 0, 0, 41, 0x10}, 1, 1)},
      {"OPT rdata past end", with({1, 'a', 0, 0, 1, 0, 1, 0, 0, 41, 0x10, 0, 0, 0, 0, 0, 0, 9}, 1, 1)},
      {"two OPT records",
       with({1, 'a', 0, 0, 1, 0, 1, 0, 0, 41, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 41, 0x10, 0, 0, 0, 0, 0,
             0, 0},
            1, 2)},
      {"OPT with owner", with({1, 'a', 0, 0, 1, 0, 1, 1, 'x', 0, 0, 41, 0x10, 0, 0, 0, 0, 0, 0, 0}, 1, 1)},
  };
  for (const Case& c : cases) {
    Query q;
    DecodeError err;
    EXPECT_FALSE(DecodeQuery(c.bytes.data(), c.bytes.size(), &q, &err)) << c.what;
    EXPECT_EQ(err.kind, DecodeError::Kind::kFormErr) << c.what;
  }
}

TEST(DecodeMessage, NameLongerThan255ThroughBackwardPointersIsRejected) {
  // Every pointer points backwards, yet the name they spell grows past 255 bytes:
  // a chain of 63-byte labels, each followed by a pointer to the previous one,
  // carried in the RDATA of a first answer and named by a second.
  std::vector<uint8_t> m = {0, 1, 0x81, 0, 0, 1, 0, 2, 0, 0, 0, 0};
  m.insert(m.end(), {1, 'a', 0, 0, 1, 0, 1});  // question "a." at offset 12
  std::vector<uint8_t> chain;
  std::vector<size_t> starts;
  size_t rdata_at = m.size() + 2 + 10;  // after the first answer's owner and fixed fields
  for (int i = 0; i < 5; ++i) {
    starts.push_back(rdata_at + chain.size());
    chain.push_back(63);
    chain.insert(chain.end(), 63, 'b');
    size_t target = i == 0 ? 12 : starts[i - 1];
    chain.push_back(static_cast<uint8_t>(0xC0 | (target >> 8)));
    chain.push_back(static_cast<uint8_t>(target & 0xFF));
  }
  m.insert(m.end(), {0xC0, 12, 0, 99, 0, 1, 0, 0, 0, 5,
                     static_cast<uint8_t>(chain.size() >> 8), static_cast<uint8_t>(chain.size())});
  m.insert(m.end(), chain.begin(), chain.end());
  size_t last = starts.back();
  m.insert(m.end(), {static_cast<uint8_t>(0xC0 | (last >> 8)), static_cast<uint8_t>(last & 0xFF),
                     0, 1, 0, 1, 0, 0, 0, 5, 0, 4, 1, 2, 3, 4});
  EXPECT_THAT(DecodeMessage(m.data(), m.size()),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("255")));
  // With only two links the same layout is a valid name.
  std::vector<uint8_t> ok = m;
  size_t second = starts[1];
  ok[ok.size() - 16] = static_cast<uint8_t>(0xC0 | (second >> 8));
  ok[ok.size() - 15] = static_cast<uint8_t>(second & 0xFF);
  ASSERT_OK_AND_ASSIGN(Message decoded, DecodeMessage(ok.data(), ok.size()));
  ASSERT_EQ(decoded.answers.size(), 2u);
  EXPECT_EQ(decoded.answers[1].name.label_count(), 3);
}

TEST(MessageWriter, CompressesNamesAndRoundTrips) {
  uint8_t buf[512];
  MessageWriter w(buf, sizeof buf);
  Header h;
  h.id = 7;
  h.set_qr(true);
  h.set_aa(true);
  w.SetHeader(h);
  Name q = N("Web.default.svc.cluster.local");
  ASSERT_TRUE(w.AddQuestion(q, type::kSrv, kClassIn));
  Name srv = N("_http._tcp.web.default.svc.cluster.local");
  uint8_t addr[4] = {10, 96, 0, 10};
  ASSERT_TRUE(w.AddSrv(Section::kAnswer, srv, 5, 0, 100, 80, N("web.default.svc.cluster.local")));
  ASSERT_TRUE(w.AddA(Section::kAdditional, N("web.default.svc.cluster.local"), 5, addr));
  ASSERT_TRUE(w.AddOpt(1232));
  // Out of order: a question after records.
  EXPECT_FALSE(w.AddQuestion(q, type::kA, kClassIn));

  ASSERT_OK_AND_ASSIGN(Message m, DecodeMessage(buf, w.size()));
  EXPECT_EQ(m.header.id, 7);
  EXPECT_TRUE(m.header.qr());
  EXPECT_TRUE(m.header.aa());
  ASSERT_EQ(m.questions.size(), 1u);
  EXPECT_EQ(m.questions[0].name.ToText(), "Web.default.svc.cluster.local.");
  ASSERT_EQ(m.answers.size(), 1u);
  auto s = RdataSrv(m.answers[0]);
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->port, 80);
  EXPECT_EQ(s->weight, 100);
  EXPECT_EQ(s->target.ToText(), "web.default.svc.cluster.local.");
  ASSERT_EQ(m.additional.size(), 1u);
  EXPECT_EQ(m.additional[0].rdata, std::string("\x0a\x60\x00\x0a", 4));
  ASSERT_TRUE(m.edns.has_value());
  EXPECT_EQ(m.edns->udp_size, 1232);
  // The SRV owner and the A owner reuse the question's suffix: far below the
  // uncompressed size.
  size_t uncompressed = 12 + (q.wire_size() + 4) + (srv.wire_size() + 10 + 6 + 31) +
                        (31 + 10 + 4) + 11;
  EXPECT_LT(w.size() + 40, uncompressed);
}

TEST(MessageWriter, RollsBackARecordThatDoesNotFit) {
  uint8_t buf[512];
  MessageWriter w(buf, sizeof buf);
  Name name = N("db.default.svc.cluster.local");
  ASSERT_TRUE(w.AddQuestion(name, type::kA, kClassIn));
  int added = 0;
  for (int i = 0; i < 300; ++i) {
    uint8_t addr[4] = {10, 244, static_cast<uint8_t>(i / 250), static_cast<uint8_t>(i % 250)};
    if (!w.AddA(Section::kAnswer, name, 5, addr)) break;
    ++added;
  }
  EXPECT_GT(added, 20);
  EXPECT_LT(added, 300);
  EXPECT_LE(w.size(), 512u);
  w.set_tc(true);
  ASSERT_OK_AND_ASSIGN(Message m, DecodeMessage(buf, w.size()));
  EXPECT_EQ(static_cast<int>(m.answers.size()), added);
  EXPECT_TRUE(m.header.tc());
}

TEST(MessageWriter, TxtSoaAndCnameRecords) {
  uint8_t buf[1024];
  MessageWriter w(buf, sizeof buf);
  Name zone = N("cluster.local");
  ASSERT_TRUE(w.AddQuestion(N("dns-version.cluster.local"), type::kTxt, kClassIn));
  ASSERT_TRUE(w.AddTxt(Section::kAnswer, N("dns-version.cluster.local"), 5, "1.1.0"));
  ASSERT_TRUE(w.AddTxt(Section::kAnswer, N("long.cluster.local"), 5, std::string(300, 'x')));
  ASSERT_TRUE(w.AddNameRecord(Section::kAnswer, N("ext.default.svc.cluster.local"), type::kCname,
                              5, N("example.org")));
  ASSERT_TRUE(w.AddSoa(Section::kAuthority, zone, 5, N("ns.dns.cluster.local"),
                       N("hostmaster.cluster.local"), 42, 7200, 1800, 86400, 5));
  ASSERT_OK_AND_ASSIGN(Message m, DecodeMessage(buf, w.size()));
  ASSERT_EQ(m.answers.size(), 3u);
  EXPECT_THAT(RdataTxt(m.answers[0]), ElementsAre("1.1.0"));
  EXPECT_THAT(RdataTxt(m.answers[1]), ElementsAre(std::string(255, 'x'), std::string(45, 'x')));
  auto cname = RdataName(m.answers[2]);
  ASSERT_TRUE(cname.has_value());
  EXPECT_EQ(cname->ToText(), "example.org.");
  ASSERT_EQ(m.authority.size(), 1u);
  EXPECT_EQ(m.authority[0].rtype, type::kSoa);
  // SOA RDATA decompressed: two names in full then 20 bytes.
  EXPECT_EQ(m.authority[0].rdata.size(),
            N("ns.dns.cluster.local").wire_size() + N("hostmaster.cluster.local").wire_size() + 20);

  // A decoded record written again in another message is the same record.
  uint8_t buf2[512];
  MessageWriter w2(buf2, sizeof buf2);
  ASSERT_TRUE(w2.AddRecord(Section::kAnswer, m.authority[0]));
  ASSERT_OK_AND_ASSIGN(Message m2, DecodeMessage(buf2, w2.size()));
  ASSERT_EQ(m2.answers.size(), 1u);
  EXPECT_EQ(m2.answers[0].rdata, m.authority[0].rdata);
}

TEST(DecodeMessage, RejectsRdataLengthMismatch) {
  uint8_t buf[512];
  MessageWriter w(buf, sizeof buf);
  ASSERT_TRUE(w.AddNameRecord(Section::kAnswer, N("a.b"), type::kCname, 5, N("c.d")));
  size_t size = w.size();
  // Grow RDLENGTH by one: the name no longer fills the RDATA.
  size_t rdlength_pos = 12 + N("a.b").wire_size() + 8;
  buf[rdlength_pos + 1] += 1;
  buf[size] = 0;
  EXPECT_FALSE(DecodeMessage(buf, size + 1).ok());
}

// Found by the fuzzer: a name whose suffix repeats its own first label
// ("\000.\000.") must not be compressed against bytes not yet written.
TEST(MessageWriter, NeverCompressesAgainstItself) {
  uint8_t buf[512];
  MessageWriter w(buf, sizeof buf);
  const uint8_t wire[] = {1, 0, 1, 0, 0};
  Name odd;
  ASSERT_TRUE(Name::FromWire(wire, sizeof wire, &odd));
  ASSERT_TRUE(w.AddQuestion(Name(), 1, 1));
  ASSERT_TRUE(w.AddQuestion(odd, 2, 1));
  ASSERT_TRUE(w.AddQuestion(odd, 3, 1));
  ASSERT_OK_AND_ASSIGN(Message m, DecodeMessage(buf, w.size()));
  ASSERT_EQ(m.questions.size(), 3u);
  EXPECT_TRUE(m.questions[1].name.Equals(odd));
  EXPECT_TRUE(m.questions[2].name.Equals(odd));
}

// Bounded mutation fuzzing of a valid message: the decoders must never crash,
// hang or read out of bounds (run under ASan in the Debug build).
TEST(Decoders, SurviveRandomMutations) {
  uint8_t buf[512];
  MessageWriter w(buf, sizeof buf);
  Name name = N("web.default.svc.cluster.local");
  ASSERT_TRUE(w.AddQuestion(name, type::kA, kClassIn));
  uint8_t addr[4] = {10, 96, 0, 1};
  ASSERT_TRUE(w.AddA(Section::kAnswer, name, 5, addr));
  ASSERT_TRUE(w.AddSrv(Section::kAnswer, N("_h._tcp.web.default.svc.cluster.local"), 5, 0, 1, 80,
                       name));
  ASSERT_TRUE(w.AddOpt(1232));
  std::vector<uint8_t> seed(buf, buf + w.size());
  std::mt19937 rng(1234);
  for (int iter = 0; iter < 20000; ++iter) {
    std::vector<uint8_t> m = seed;
    int flips = 1 + static_cast<int>(rng() % 4);
    for (int f = 0; f < flips; ++f) m[rng() % m.size()] = static_cast<uint8_t>(rng());
    if (rng() % 4 == 0) m.resize(rng() % m.size());
    Query q;
    DecodeError err;
    (void)DecodeQuery(m.data(), m.size(), &q, &err);
    (void)DecodeMessage(m.data(), m.size());
  }
}

}  // namespace
}  // namespace loom::dns
