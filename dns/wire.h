// The DNS wire format (RFC 1035, RFC 6891 EDNS0, RFC 2782 SRV): a decoder that checks
// every length and count and follows compression pointers only backwards, and a
// writer that compresses names and rolls back a record that does not fit, so the
// caller can set TC. Names are matched case-insensitively and keep their case.
// Nothing here allocates on the query path except Message/ResourceRecord parsing,
// which is for the forwarder and tests, not for answering cluster queries.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace loom::dns {

namespace type {
inline constexpr uint16_t kA = 1;
inline constexpr uint16_t kNs = 2;
inline constexpr uint16_t kCname = 5;
inline constexpr uint16_t kSoa = 6;
inline constexpr uint16_t kPtr = 12;
inline constexpr uint16_t kHinfo = 13;
inline constexpr uint16_t kMx = 15;
inline constexpr uint16_t kTxt = 16;
inline constexpr uint16_t kAaaa = 28;
inline constexpr uint16_t kSrv = 33;
inline constexpr uint16_t kOpt = 41;
inline constexpr uint16_t kIxfr = 251;
inline constexpr uint16_t kAxfr = 252;
inline constexpr uint16_t kAny = 255;
}  // namespace type

inline constexpr uint16_t kClassIn = 1;
inline constexpr uint16_t kClassChaos = 3;
inline constexpr uint16_t kClassAny = 255;

enum class Rcode : uint8_t {
  kNoError = 0,
  kFormErr = 1,
  kServFail = 2,
  kNxDomain = 3,
  kNotImp = 4,
  kRefused = 5,
};

inline constexpr uint8_t kOpcodeQuery = 0;
inline constexpr size_t kHeaderSize = 12;
inline constexpr size_t kMaxNameWire = 255;
inline constexpr size_t kMaxLabel = 63;
inline constexpr uint16_t kMinUdpSize = 512;

struct Header {
  uint16_t id = 0;
  uint16_t flags = 0;
  uint16_t qdcount = 0;
  uint16_t ancount = 0;
  uint16_t nscount = 0;
  uint16_t arcount = 0;

  bool qr() const { return flags & 0x8000; }
  uint8_t opcode() const { return (flags >> 11) & 0xF; }
  bool aa() const { return flags & 0x0400; }
  bool tc() const { return flags & 0x0200; }
  bool rd() const { return flags & 0x0100; }
  bool ra() const { return flags & 0x0080; }
  bool ad() const { return flags & 0x0020; }
  bool cd() const { return flags & 0x0010; }
  Rcode rcode() const { return static_cast<Rcode>(flags & 0xF); }

  void set_qr(bool v) { SetBit(0x8000, v); }
  void set_opcode(uint8_t op) { flags = (flags & ~0x7800) | ((op & 0xF) << 11); }
  void set_aa(bool v) { SetBit(0x0400, v); }
  void set_tc(bool v) { SetBit(0x0200, v); }
  void set_rd(bool v) { SetBit(0x0100, v); }
  void set_ra(bool v) { SetBit(0x0080, v); }
  void set_ad(bool v) { SetBit(0x0020, v); }
  void set_cd(bool v) { SetBit(0x0010, v); }
  void set_rcode(Rcode r) { flags = (flags & ~0xF) | (static_cast<uint8_t>(r) & 0xF); }

 private:
  void SetBit(uint16_t bit, bool v) { flags = v ? (flags | bit) : (flags & ~bit); }
};

// A domain name in uncompressed wire form (length-prefixed labels, root included),
// at most 255 bytes, held inline.
class Name {
 public:
  Name() { buf_[0] = 0; }  // the root

  // "www.Example.com" or "www.example.com."; "." is the root. Backslash escapes
  // (\. and \DDD) are understood. Errors name the problem.
  static absl::StatusOr<Name> FromText(std::string_view text);
  // Builds from wire labels; false when they do not form a valid name.
  static bool FromWire(const uint8_t* data, size_t size, Name* out);

  std::string ToText() const;  // always absolute: "www.example.com."
  const uint8_t* wire() const { return buf_.data(); }
  size_t wire_size() const { return size_; }
  int label_count() const;
  bool is_root() const { return size_ == 1; }

  // Case-insensitive, as DNS matching is.
  bool Equals(const Name& other) const;
  // True when this name is `zone` or below it.
  bool IsSubdomainOf(const Name& zone) const;
  // The labels before `zone` (this must be a subdomain of it), as views into this name,
  // leftmost first. Returns how many were written (at most `max`).
  int LabelsBefore(const Name& zone, std::string_view* labels, int max) const;
  // A copy in lower case.
  Name Lowered() const;
  // Prepends one label; false when the result would be too long or the label invalid.
  bool Prepend(std::string_view label);

  // Hash of the lower-cased wire form, for hash maps keyed by Lowered() names.
  template <typename H>
  friend H AbslHashValue(H h, const Name& n) {
    return H::combine(H::combine_contiguous(std::move(h), n.buf_.data(), n.size_), n.size_);
  }
  // Exact (case-sensitive) byte equality; use on Lowered() names for map keys.
  friend bool operator==(const Name& a, const Name& b) {
    return a.size_ == b.size_ && std::equal(a.buf_.begin(), a.buf_.begin() + a.size_, b.buf_.begin());
  }

 private:
  std::array<uint8_t, kMaxNameWire> buf_;
  uint16_t size_ = 1;
};

struct Question {
  Name name;
  uint16_t qtype = 0;
  uint16_t qclass = 0;
};

struct Edns {
  uint16_t udp_size = kMinUdpSize;
  uint8_t extended_rcode = 0;
  uint8_t version = 0;
  bool dnssec_ok = false;
};

// What went wrong decoding a message: whether a FORMERR can be sent back (the
// header was readable) or the packet is to be dropped.
struct DecodeError {
  enum class Kind { kDrop, kFormErr };
  Kind kind = Kind::kDrop;
  const char* reason = "";
};

// A query as the server needs it: the header, the one question, and EDNS0 if present.
struct Query {
  Header header;
  Question question;
  std::optional<Edns> edns;
  bool has_question = false;
};

// Decodes a query without allocating. Returns false and fills `error` on bad input.
// Packets too short for a header, or with QR set, are for dropping; anything else
// malformed is a FORMERR.
bool DecodeQuery(const uint8_t* data, size_t size, Query* query, DecodeError* error);

// One resource record with its RDATA decompressed (names inside CNAME, NS, PTR, MX,
// SRV and SOA RDATA are written out in full), so it can be written again elsewhere.
struct ResourceRecord {
  Name name;
  uint16_t rtype = 0;
  uint16_t rclass = kClassIn;
  uint32_t ttl = 0;
  std::string rdata;
};

struct Message {
  Header header;
  std::vector<Question> questions;
  std::vector<ResourceRecord> answers;
  std::vector<ResourceRecord> authority;
  std::vector<ResourceRecord> additional;  // without the OPT record
  std::optional<Edns> edns;
};

absl::StatusOr<Message> DecodeMessage(const uint8_t* data, size_t size);

// RDATA helpers for decoded records.
std::optional<Name> RdataName(const ResourceRecord& rr);  // CNAME, NS, PTR
struct SrvData {
  uint16_t priority = 0, weight = 0, port = 0;
  Name target;
};
std::optional<SrvData> RdataSrv(const ResourceRecord& rr);
std::vector<std::string> RdataTxt(const ResourceRecord& rr);

enum class Section { kQuestion, kAnswer, kAuthority, kAdditional };

// Writes a message into a caller-owned buffer of `capacity` bytes (the size the
// client accepts). Sections are written in order. A record that does not fit is
// rolled back and the call returns false; the caller then sets TC or stops.
class MessageWriter {
 public:
  MessageWriter(uint8_t* buffer, size_t capacity);

  // Header fields other than the counts, which the writer keeps.
  void SetHeader(const Header& header);
  Header header() const;
  void set_rcode(Rcode rcode);
  void set_tc(bool tc);

  bool AddQuestion(const Name& name, uint16_t qtype, uint16_t qclass);
  bool AddA(Section section, const Name& name, uint32_t ttl, const uint8_t addr[4]);
  bool AddAaaa(Section section, const Name& name, uint32_t ttl, const uint8_t addr[16]);
  // CNAME, NS, PTR: a single name as RDATA (compressed).
  bool AddNameRecord(Section section, const Name& name, uint16_t rtype, uint32_t ttl,
                     const Name& target);
  bool AddSrv(Section section, const Name& name, uint32_t ttl, uint16_t priority,
              uint16_t weight, uint16_t port, const Name& target);
  bool AddTxt(Section section, const Name& name, uint32_t ttl, std::string_view text);
  bool AddSoa(Section section, const Name& zone, uint32_t ttl, const Name& mname,
              const Name& rname, uint32_t serial, uint32_t refresh, uint32_t retry,
              uint32_t expire, uint32_t minimum);
  // A decoded record written again (its RDATA names are not compressed).
  bool AddRecord(Section section, const ResourceRecord& rr);
  bool AddOpt(uint16_t udp_size, uint8_t extended_rcode = 0, uint8_t version = 0,
              bool dnssec_ok = false);

  size_t size() const { return pos_; }
  // Space left, for callers that reserve room (for the OPT record, say).
  size_t remaining() const { return capacity_ - pos_; }
  // Shrinks the capacity (never below what is written); for reserving OPT space.
  void set_capacity(size_t capacity);

 private:
  struct Mark {
    size_t pos;
    size_t compression_entries;
  };
  Mark Save() const { return {pos_, n_compress_}; }
  void Restore(Mark m) {
    pos_ = m.pos;
    n_compress_ = m.compression_entries;
  }
  bool BeginRecord(Section section, const Name& name, uint16_t rtype, uint16_t rclass,
                   uint32_t ttl, size_t* rdlength_pos);
  bool EndRecord(Section section, size_t rdlength_pos);
  bool PutU8(uint8_t v);
  bool PutU16(uint16_t v);
  bool PutU32(uint32_t v);
  bool PutBytes(const void* data, size_t n);
  bool PutName(const Name& name, bool compress);
  // Finds an earlier occurrence of the wire suffix starting at `suffix` in the buffer.
  int FindSuffix(const uint8_t* suffix) const;
  bool SuffixMatchesAt(const uint8_t* suffix, size_t offset) const;
  bool Order(Section section);

  uint8_t* buf_;
  size_t capacity_;
  size_t pos_ = kHeaderSize;
  Section section_ = Section::kQuestion;
  uint16_t counts_[4] = {0, 0, 0, 0};
  static constexpr size_t kMaxCompress = 128;
  uint16_t compress_[kMaxCompress];  // offsets of names (and their suffixes) written
  size_t n_compress_ = 0;
};

std::string RcodeName(Rcode rcode);
std::string TypeName(uint16_t rtype);

}  // namespace loom::dns
