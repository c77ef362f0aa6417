#include "dns/fast_answer.h"

#include <cstring>
#include <optional>
#include <string_view>

#include "dns/zone_answer.h"

namespace loom::dns {
namespace {

constexpr size_t kOptSize = 11;
constexpr size_t kARecordSize = 16;  // owner pointer, type, class, TTL, RDLENGTH, address
constexpr size_t kRecordFixed = 12;  // owner pointer, type, class, TTL, RDLENGTH
constexpr size_t kSoaNumbers = 20;   // serial, refresh, retry, expire, minimum

inline uint8_t Lower(uint8_t c) {
  return static_cast<uint8_t>(c + (static_cast<uint8_t>(c - 'A') < 26 ? 'a' - 'A' : 0));
}
inline uint16_t Get16(const uint8_t* p) { return static_cast<uint16_t>((p[0] << 8) | p[1]); }
inline uint8_t* Put16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
  return p + 2;
}
inline uint8_t* Put32(uint8_t* p, uint32_t v) {
  return Put16(Put16(p, static_cast<uint16_t>(v >> 16)), static_cast<uint16_t>(v));
}

// The labels of a name in front of the zone's name (which the caller compresses).
std::string_view Prefix(const Name& name, const Name& origin) {
  return std::string_view(reinterpret_cast<const char*>(name.wire()),
                          name.wire_size() - origin.wire_size());
}

// A query the fast path takes, up to the lookup: its name lower-cased, and the
// labels the zone's index is sharded by.
struct ServiceQuestion {
  uint8_t lower[kMaxNameWire];
  size_t size = 0;      // of `lower`
  size_t apex = 0;      // where the zone's name starts in it
  size_t end = 0;       // where the question ends in the packet
  uint16_t flags = 0;   // of the query's header
  uint16_t qtype = 0;
  std::optional<Edns> edns;
  std::string_view service, ns;

  std::string_view name() const {
    return std::string_view(reinterpret_cast<const char*>(lower), size);
  }
};

// Whether `q` is a query the fast path takes (see AnswerFast), up to the lookup.
bool ParseServiceQuestion(const ClusterZone& zone, const uint8_t* q, size_t size,
                          ServiceQuestion* sq) {
  if (size < kHeaderSize) return false;
  sq->flags = Get16(q + 2);
  const uint16_t arcount = Get16(q + 10);
  // A query (QR clear, opcode QUERY) with one question, no answer or authority
  // records, and at most one additional record (the OPT).
  if ((sq->flags & 0xF800) != 0 || Get16(q + 4) != 1 || Get16(q + 6) != 0 ||
      Get16(q + 8) != 0 || arcount > 1) {
    return false;
  }
  // The name, lower-cased, and where its labels start; compression pointers (which
  // a question cannot sensibly hold) are left to the general path.
  uint8_t starts[kMaxNameWire / 2 + 1];
  int labels = 0;
  size_t p = kHeaderSize;
  while (true) {
    if (p >= size) return false;
    const uint8_t len = q[p];
    if (len == 0) break;
    if (len > kMaxLabel || p + 1 + len >= size || p + 1 + len + 1 - kHeaderSize > kMaxNameWire) {
      return false;
    }
    starts[labels++] = static_cast<uint8_t>(p - kHeaderSize);
    p += 1 + len;
  }
  p += 1;
  // Length bytes are at most 63, below 'A': the whole name lowers in one pass.
  const size_t n = p - kHeaderSize;
  for (size_t i = 0; i < n; ++i) sq->lower[i] = Lower(q[kHeaderSize + i]);
  sq->size = n;
  if (size - p < 4) return false;
  sq->end = p + 4;
  sq->qtype = Get16(q + p);
  if ((sq->qtype != type::kA && sq->qtype != type::kAaaa) || Get16(q + p + 2) != kClassIn) {
    return false;
  }
  p = sq->end;
  sq->edns.reset();
  if (arcount == 1) {
    // Root owner, type OPT, class = UDP size, TTL = extended rcode, version and
    // flags, RDLENGTH, options. Other versions get BADVERS from the general path.
    if (size - p < kOptSize || q[p] != 0 || Get16(q + p + 1) != type::kOpt || q[p + 6] != 0 ||
        Get16(q + p + 9) != size - p - kOptSize) {
      return false;
    }
    sq->edns.emplace();
    sq->edns->udp_size = std::max<uint16_t>(Get16(q + p + 3), kMinUdpSize);
    p = size;
  }
  if (p != size) return false;

  // <...>.<service>.<namespace>.svc.<zone>, the zone's name starting on a label.
  const Name& origin = zone.origin();  // lower-cased
  if (n < origin.wire_size()) return false;
  sq->apex = n - origin.wire_size();
  if (std::memcmp(sq->lower + sq->apex, origin.wire(), origin.wire_size()) != 0) return false;
  int before = 0;  // labels before the zone's name
  while (before < labels && starts[before] < sq->apex) ++before;
  if (before < 3 || (before < labels && starts[before] != sq->apex) ||
      (before == labels && sq->apex != n - 1)) {
    return false;
  }
  auto label = [&](int i) {
    return std::string_view(reinterpret_cast<const char*>(sq->lower + starts[i] + 1),
                            sq->lower[starts[i]]);
  };
  if (label(before - 1) != "svc") return false;
  sq->service = label(before - 3);
  sq->ns = label(before - 2);
  return true;
}

}  // namespace

PendingLookup PrefetchAnswer(const ClusterZone& zone, const uint8_t* query, size_t size) {
  ServiceQuestion sq;
  if (!ParseServiceQuestion(zone, query, size, &sq)) return {};
  return zone.PrefetchServiceName(sq.name(), sq.service, sq.ns);
}

FastAnswer AnswerFast(const ClusterZone& zone, const uint8_t* q, size_t size, uint8_t* out,
                      size_t out_capacity, uint16_t max_udp_size, bool tcp) {
  FastAnswer declined;
  ServiceQuestion sq;
  if (!ParseServiceQuestion(zone, q, size, &sq)) return declined;
  std::optional<ZoneRecords> found = zone.FindServiceName(sq.name(), sq.service, sq.ns);
  if (found && found->extra->cname) return declined;  // chased by the general path
  const Name& origin = zone.origin();
  const size_t question_end = sq.end;
  const size_t apex = sq.apex;
  const uint16_t qtype = sq.qtype;
  const uint16_t flags = sq.flags;
  const std::optional<Edns>& edns = sq.edns;

  // The size, against what the client takes.
  const uint32_t answers = found && qtype == type::kA ? found->a_count : 0;
  const std::string_view mname = Prefix(zone.soa_mname(), origin);
  const std::string_view rname = Prefix(zone.soa_rname(), origin);
  const size_t soa_rdata = mname.size() + 2 + rname.size() + 2 + kSoaNumbers;
  const size_t body = question_end + answers * kARecordSize +
                      (answers == 0 ? kRecordFixed + soa_rdata : 0);
  const size_t capacity = ResponseCapacity(tcp, out_capacity, edns, max_udp_size);
  if (body + (edns ? kOptSize : 0) > capacity) return declined;  // TC: the general path

  // Header: the ID, RD and CD of the query; QR, AA, RA.
  FastAnswer a;
  a.qtype = qtype;
  a.rcode = found ? Rcode::kNoError : Rcode::kNxDomain;
  uint8_t* w = Put16(out, Get16(q));
  w = Put16(w, static_cast<uint16_t>(0x8000 | 0x0400 | (flags & 0x0100) | 0x0080 |
                                     (flags & 0x0010) | static_cast<uint16_t>(a.rcode)));
  w = Put16(w, 1);
  w = Put16(w, static_cast<uint16_t>(answers));
  w = Put16(w, answers == 0 ? 1 : 0);
  w = Put16(w, edns ? 1 : 0);
  // The question as the client wrote it (its case kept).
  std::memcpy(w, q + kHeaderSize, question_end - kHeaderSize);
  w += question_end - kHeaderSize;
  const uint32_t ttl = zone.ttl();
  if (answers > 0) {
    for (uint32_t i = 0; i < answers; ++i) {
      w = Put16(w, 0xC000 | kHeaderSize);  // the question's name
      w = Put16(w, type::kA);
      w = Put16(w, kClassIn);
      w = Put32(w, ttl);
      w = Put16(w, 4);
      std::memcpy(w, found->address(i), 4);
      w += 4;
    }
  } else {
    // NODATA or NXDOMAIN: the SOA, its names compressed against the zone's name in
    // the question as the general writer compresses them.
    const uint16_t zone_ptr = static_cast<uint16_t>(0xC000 | (kHeaderSize + apex));
    w = Put16(w, zone_ptr);
    w = Put16(w, type::kSoa);
    w = Put16(w, kClassIn);
    w = Put32(w, ttl);
    w = Put16(w, static_cast<uint16_t>(soa_rdata));
    std::memcpy(w, mname.data(), mname.size());
    w = Put16(w + mname.size(), zone_ptr);
    std::memcpy(w, rname.data(), rname.size());
    w = Put16(w + rname.size(), zone_ptr);
    w = Put32(w, zone.serial());
    w = Put32(w, 7200);
    w = Put32(w, 1800);
    w = Put32(w, 86400);
    w = Put32(w, ttl);
  }
  if (edns) {
    *w++ = 0;  // root
    w = Put16(w, type::kOpt);
    w = Put16(w, max_udp_size);
    w = Put32(w, 0);  // extended rcode, version 0, no DO
    w = Put16(w, 0);
  }
  a.size = static_cast<size_t>(w - out);
  return a;
}

}  // namespace loom::dns
