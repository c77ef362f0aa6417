#include "dns/wire.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstring>

#include "common/strings.h"

namespace loom::dns {
namespace {

inline uint8_t Lower(uint8_t c) { return (c >= 'A' && c <= 'Z') ? c + ('a' - 'A') : c; }

inline uint16_t Get16(const uint8_t* p) { return static_cast<uint16_t>((p[0] << 8) | p[1]); }
inline uint32_t Get32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}

// Bounds-checked reading of a message, following compression pointers only to
// strictly earlier positions than the last jump, so that every name terminates.
class Reader {
 public:
  Reader(const uint8_t* data, size_t size) : data_(data), size_(size) {}

  size_t pos() const { return pos_; }
  void set_pos(size_t p) { pos_ = p; }
  size_t left() const { return size_ - pos_; }
  const uint8_t* at(size_t p) const { return data_ + p; }

  bool U16(uint16_t* v) {
    if (left() < 2) return false;
    *v = Get16(data_ + pos_);
    pos_ += 2;
    return true;
  }
  bool U32(uint32_t* v) {
    if (left() < 4) return false;
    *v = Get32(data_ + pos_);
    pos_ += 4;
    return true;
  }
  bool Skip(size_t n) {
    if (left() < n) return false;
    pos_ += n;
    return true;
  }

  // Reads a possibly compressed name into `out` (uncompressed wire form).
  bool ReadName(uint8_t* out, size_t* out_size, const char** reason) {
    size_t p = pos_;
    size_t limit = pos_;  // a pointer must point before this
    size_t end = 0;       // where the reader continues after the name
    bool jumped = false;
    size_t n = 0;
    for (int hops = 0;;) {
      if (p >= size_) {
        *reason = "name runs past the end of the message";
        return false;
      }
      uint8_t len = data_[p];
      if ((len & 0xC0) == 0xC0) {
        if (p + 1 >= size_) {
          *reason = "truncated compression pointer";
          return false;
        }
        size_t target = ((len & 0x3F) << 8) | data_[p + 1];
        if (target >= limit) {
          *reason = "compression pointer does not point backwards";
          return false;
        }
        if (++hops > 126) {
          *reason = "too many compression pointers";
          return false;
        }
        if (!jumped) end = p + 2;
        jumped = true;
        limit = target;
        p = target;
        continue;
      }
      if ((len & 0xC0) != 0) {
        *reason = "unsupported label type";
        return false;
      }
      if (len == 0) {
        if (n + 1 > kMaxNameWire) {
          *reason = "name longer than 255 bytes";
          return false;
        }
        out[n++] = 0;
        if (!jumped) end = p + 1;
        break;
      }
      if (p + 1 + len > size_) {
        *reason = "label runs past the end of the message";
        return false;
      }
      if (n + 1 + len + 1 > kMaxNameWire) {
        *reason = "name longer than 255 bytes";
        return false;
      }
      std::memcpy(out + n, data_ + p, 1 + len);
      n += 1 + len;
      p += 1 + len;
    }
    *out_size = n;
    pos_ = end;
    return true;
  }

  bool ReadName(Name* name, const char** reason) {
    uint8_t buf[kMaxNameWire];
    size_t n = 0;
    if (!ReadName(buf, &n, reason)) return false;
    if (!Name::FromWire(buf, n, name)) {
      *reason = "invalid name";
      return false;
    }
    return true;
  }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

bool ReadHeader(Reader& r, Header* h) {
  return r.U16(&h->id) && r.U16(&h->flags) && r.U16(&h->qdcount) && r.U16(&h->ancount) &&
         r.U16(&h->nscount) && r.U16(&h->arcount);
}

void FillEdns(uint16_t rclass, uint32_t ttl, Edns* e) {
  e->udp_size = std::max<uint16_t>(rclass, kMinUdpSize);
  e->extended_rcode = static_cast<uint8_t>(ttl >> 24);
  e->version = static_cast<uint8_t>(ttl >> 16);
  e->dnssec_ok = (ttl & 0x8000) != 0;
}

void AppendName(std::string* out, const Name& n) {
  out->append(reinterpret_cast<const char*>(n.wire()), n.wire_size());
}

// Reads one record's RDATA, writing names inside it out in full; the reader ends
// just after the RDATA.
bool ReadRdata(Reader& r, uint16_t rtype, uint16_t rdlength, std::string* out,
               const char** reason) {
  size_t start = r.pos();
  if (r.left() < rdlength) {
    *reason = "RDATA runs past the end of the message";
    return false;
  }
  size_t fixed_tail = rdlength;  // bytes copied verbatim after any names
  Name name;
  auto copy_u16s = [&](int count) {
    for (int i = 0; i < count; ++i) {
      uint16_t v;
      if (!r.U16(&v)) return false;
      out->push_back(static_cast<char>(v >> 8));
      out->push_back(static_cast<char>(v & 0xFF));
    }
    return true;
  };
  switch (rtype) {
    case type::kCname:
    case type::kNs:
    case type::kPtr:
      if (!r.ReadName(&name, reason)) return false;
      AppendName(out, name);
      fixed_tail = 0;
      break;
    case type::kMx:
      if (rdlength < 3 || !copy_u16s(1) || !r.ReadName(&name, reason)) return false;
      AppendName(out, name);
      fixed_tail = 0;
      break;
    case type::kSrv:
      if (rdlength < 7 || !copy_u16s(3) || !r.ReadName(&name, reason)) return false;
      AppendName(out, name);
      fixed_tail = 0;
      break;
    case type::kSoa: {
      Name rname;
      if (!r.ReadName(&name, reason) || !r.ReadName(&rname, reason)) return false;
      AppendName(out, name);
      AppendName(out, rname);
      fixed_tail = 20;
      break;
    }
    default:
      break;
  }
  size_t used = r.pos() - start;
  if (used + fixed_tail != rdlength) {
    *reason = "RDATA does not match its RDLENGTH";
    return false;
  }
  out->append(reinterpret_cast<const char*>(r.at(r.pos())), fixed_tail);
  r.set_pos(start + rdlength);
  return true;
}

}  // namespace

// ---- Name -------------------------------------------------------------------

absl::StatusOr<Name> Name::FromText(std::string_view text) {
  Name n;
  if (text.empty() || text == ".") return n;
  uint8_t buf[kMaxNameWire];
  size_t pos = 0;
  size_t i = 0;
  while (i < text.size()) {
    uint8_t label[kMaxLabel + 1];
    size_t len = 0;
    while (i < text.size() && text[i] != '.') {
      uint8_t c = static_cast<uint8_t>(text[i]);
      if (c == '\\') {
        if (i + 1 >= text.size()) {
          return absl::InvalidArgumentError(StrCat("name \"", text, "\": trailing backslash"));
        }
        if (i + 3 < text.size() && std::isdigit(static_cast<unsigned char>(text[i + 1])) &&
            std::isdigit(static_cast<unsigned char>(text[i + 2])) &&
            std::isdigit(static_cast<unsigned char>(text[i + 3]))) {
          int v = (text[i + 1] - '0') * 100 + (text[i + 2] - '0') * 10 + (text[i + 3] - '0');
          if (v > 255) {
            return absl::InvalidArgumentError(StrCat("name \"", text, "\": bad escape"));
          }
          c = static_cast<uint8_t>(v);
          i += 4;
        } else {
          c = static_cast<uint8_t>(text[i + 1]);
          i += 2;
        }
      } else {
        ++i;
      }
      if (len >= kMaxLabel) {
        return absl::InvalidArgumentError(
            StrCat("name \"", text, "\": a label is longer than 63 bytes"));
      }
      label[len++] = c;
    }
    if (len == 0) {
      return absl::InvalidArgumentError(StrCat("name \"", text, "\": empty label"));
    }
    if (pos + 1 + len + 1 > kMaxNameWire) {
      return absl::InvalidArgumentError(StrCat("name \"", text, "\": longer than 255 bytes"));
    }
    buf[pos++] = static_cast<uint8_t>(len);
    std::memcpy(buf + pos, label, len);
    pos += len;
    if (i < text.size()) ++i;  // the dot
  }
  buf[pos++] = 0;
  std::memcpy(n.buf_.data(), buf, pos);
  n.size_ = static_cast<uint16_t>(pos);
  return n;
}

bool Name::FromWire(const uint8_t* data, size_t size, Name* out) {
  if (size == 0 || size > kMaxNameWire) return false;
  size_t p = 0;
  while (true) {
    if (p >= size) return false;
    uint8_t len = data[p];
    if (len == 0) break;
    if (len > kMaxLabel) return false;
    p += 1 + len;
  }
  if (p + 1 != size) return false;
  std::memcpy(out->buf_.data(), data, size);
  out->size_ = static_cast<uint16_t>(size);
  return true;
}

std::string Name::ToText() const {
  if (is_root()) return ".";
  std::string out;
  size_t p = 0;
  while (buf_[p] != 0) {
    uint8_t len = buf_[p];
    for (size_t j = 1; j <= len; ++j) {
      uint8_t c = buf_[p + j];
      if (c == '.' || c == '\\') {
        out.push_back('\\');
        out.push_back(static_cast<char>(c));
      } else if (c <= 0x20 || c >= 0x7F) {
        char esc[5];
        std::snprintf(esc, sizeof esc, "\\%03u", c);
        out.append(esc);
      } else {
        out.push_back(static_cast<char>(c));
      }
    }
    out.push_back('.');
    p += 1 + len;
  }
  return out;
}

int Name::label_count() const {
  int count = 0;
  for (size_t p = 0; buf_[p] != 0; p += 1 + buf_[p]) ++count;
  return count;
}

bool Name::Equals(const Name& other) const {
  if (size_ != other.size_) return false;
  for (size_t i = 0; i < size_; ++i) {
    if (Lower(buf_[i]) != Lower(other.buf_[i])) return false;
  }
  return true;
}

bool Name::IsSubdomainOf(const Name& zone) const {
  if (zone.size_ > size_) return false;
  size_t p = 0;
  while (size_ - p > zone.size_) p += 1 + buf_[p];
  if (size_ - p != zone.size_) return false;
  for (size_t i = 0; i < zone.size_; ++i) {
    if (Lower(buf_[p + i]) != Lower(zone.buf_[i])) return false;
  }
  return true;
}

int Name::LabelsBefore(const Name& zone, std::string_view* labels, int max) const {
  int n = 0;
  for (size_t p = 0; size_ - p > zone.size_ && buf_[p] != 0; p += 1 + buf_[p]) {
    if (n < max) {
      labels[n] = std::string_view(reinterpret_cast<const char*>(buf_.data() + p + 1), buf_[p]);
    }
    ++n;
  }
  return std::min(n, max);
}

Name Name::Lowered() const {
  Name n;
  n.size_ = size_;
  for (size_t i = 0; i < size_; ++i) n.buf_[i] = Lower(buf_[i]);
  return n;
}

bool Name::Prepend(std::string_view label) {
  if (label.empty() || label.size() > kMaxLabel) return false;
  if (size_ + 1 + label.size() > kMaxNameWire) return false;
  std::memmove(buf_.data() + 1 + label.size(), buf_.data(), size_);
  buf_[0] = static_cast<uint8_t>(label.size());
  std::memcpy(buf_.data() + 1, label.data(), label.size());
  size_ = static_cast<uint16_t>(size_ + 1 + label.size());
  return true;
}

// ---- Decoding ---------------------------------------------------------------

bool DecodeQuery(const uint8_t* data, size_t size, Query* query, DecodeError* error) {
  Reader r(data, size);
  if (!ReadHeader(r, &query->header)) {
    *error = {DecodeError::Kind::kDrop, "shorter than a DNS header"};
    return false;
  }
  const Header& h = query->header;
  if (h.qr()) {
    *error = {DecodeError::Kind::kDrop, "a response, not a query"};
    return false;
  }
  auto formerr = [&](const char* reason) {
    *error = {DecodeError::Kind::kFormErr, reason};
    return false;
  };
  query->has_question = false;
  query->edns.reset();
  if (h.qdcount != 1) return formerr("QDCOUNT is not 1");
  const char* reason = "";
  if (!r.ReadName(&query->question.name, &reason)) return formerr(reason);
  if (!r.U16(&query->question.qtype) || !r.U16(&query->question.qclass)) {
    return formerr("truncated question");
  }
  query->has_question = true;
  // Answer and authority records in a query are skipped; the additional section
  // may hold one OPT record.
  uint32_t others = uint32_t{h.ancount} + h.nscount;
  uint32_t total = others + h.arcount;
  for (uint32_t i = 0; i < total; ++i) {
    uint8_t name[kMaxNameWire];
    size_t name_size = 0;
    if (!r.ReadName(name, &name_size, &reason)) return formerr(reason);
    uint16_t rtype, rclass, rdlength;
    uint32_t ttl;
    if (!r.U16(&rtype) || !r.U16(&rclass) || !r.U32(&ttl) || !r.U16(&rdlength)) {
      return formerr("truncated resource record");
    }
    if (!r.Skip(rdlength)) return formerr("RDATA runs past the end of the message");
    if (rtype == type::kOpt) {
      if (i < others) return formerr("OPT record outside the additional section");
      if (query->edns) return formerr("more than one OPT record");
      if (name_size != 1) return formerr("OPT record with a non-root owner");
      Edns e;
      FillEdns(rclass, ttl, &e);
      query->edns = e;
    }
  }
  return true;
}

absl::StatusOr<Message> DecodeMessage(const uint8_t* data, size_t size) {
  Reader r(data, size);
  Message m;
  if (!ReadHeader(r, &m.header)) return absl::InvalidArgumentError("shorter than a DNS header");
  const char* reason = "";
  auto fail = [&](std::string_view what) {
    return absl::InvalidArgumentError(StrCat("malformed message: ", what));
  };
  for (int i = 0; i < m.header.qdcount; ++i) {
    Question q;
    if (!r.ReadName(&q.name, &reason)) return fail(reason);
    if (!r.U16(&q.qtype) || !r.U16(&q.qclass)) return fail("truncated question");
    m.questions.push_back(std::move(q));
  }
  auto read_section = [&](int count, std::vector<ResourceRecord>* out,
                          bool additional) -> absl::Status {
    for (int i = 0; i < count; ++i) {
      ResourceRecord rr;
      if (!r.ReadName(&rr.name, &reason)) return fail(reason);
      uint16_t rdlength;
      if (!r.U16(&rr.rtype) || !r.U16(&rr.rclass) || !r.U32(&rr.ttl) || !r.U16(&rdlength)) {
        return fail("truncated resource record");
      }
      if (rr.rtype == type::kOpt) {
        if (!additional) return fail("OPT record outside the additional section");
        if (m.edns) return fail("more than one OPT record");
        if (!rr.name.is_root()) return fail("OPT record with a non-root owner");
        if (!r.Skip(rdlength)) return fail("RDATA runs past the end of the message");
        Edns e;
        FillEdns(rr.rclass, rr.ttl, &e);
        m.edns = e;
        continue;
      }
      if (!ReadRdata(r, rr.rtype, rdlength, &rr.rdata, &reason)) return fail(reason);
      out->push_back(std::move(rr));
    }
    return absl::OkStatus();
  };
  absl::Status st = read_section(m.header.ancount, &m.answers, false);
  if (st.ok()) st = read_section(m.header.nscount, &m.authority, false);
  if (st.ok()) st = read_section(m.header.arcount, &m.additional, true);
  if (!st.ok()) return st;
  return m;
}

std::optional<Name> RdataName(const ResourceRecord& rr) {
  if (rr.rtype != type::kCname && rr.rtype != type::kNs && rr.rtype != type::kPtr) {
    return std::nullopt;
  }
  Name n;
  if (!Name::FromWire(reinterpret_cast<const uint8_t*>(rr.rdata.data()), rr.rdata.size(), &n)) {
    return std::nullopt;
  }
  return n;
}

std::optional<SrvData> RdataSrv(const ResourceRecord& rr) {
  if (rr.rtype != type::kSrv || rr.rdata.size() < 7) return std::nullopt;
  const auto* p = reinterpret_cast<const uint8_t*>(rr.rdata.data());
  SrvData s;
  s.priority = Get16(p);
  s.weight = Get16(p + 2);
  s.port = Get16(p + 4);
  if (!Name::FromWire(p + 6, rr.rdata.size() - 6, &s.target)) return std::nullopt;
  return s;
}

std::vector<std::string> RdataTxt(const ResourceRecord& rr) {
  std::vector<std::string> out;
  if (rr.rtype != type::kTxt) return out;
  size_t p = 0;
  while (p < rr.rdata.size()) {
    size_t len = static_cast<uint8_t>(rr.rdata[p]);
    if (p + 1 + len > rr.rdata.size()) break;
    out.emplace_back(rr.rdata.substr(p + 1, len));
    p += 1 + len;
  }
  return out;
}

// ---- Writing ----------------------------------------------------------------

MessageWriter::MessageWriter(uint8_t* buffer, size_t capacity)
    : buf_(buffer), capacity_(std::max(capacity, kHeaderSize)) {
  std::memset(buf_, 0, kHeaderSize);
}

void MessageWriter::SetHeader(const Header& header) {
  buf_[0] = static_cast<uint8_t>(header.id >> 8);
  buf_[1] = static_cast<uint8_t>(header.id);
  buf_[2] = static_cast<uint8_t>(header.flags >> 8);
  buf_[3] = static_cast<uint8_t>(header.flags);
}

Header MessageWriter::header() const {
  Header h;
  h.id = Get16(buf_);
  h.flags = Get16(buf_ + 2);
  h.qdcount = counts_[0];
  h.ancount = counts_[1];
  h.nscount = counts_[2];
  h.arcount = counts_[3];
  return h;
}

void MessageWriter::set_rcode(Rcode rcode) {
  Header h = header();
  h.set_rcode(rcode);
  SetHeader(h);
}

void MessageWriter::set_tc(bool tc) {
  Header h = header();
  h.set_tc(tc);
  SetHeader(h);
}

void MessageWriter::set_capacity(size_t capacity) { capacity_ = std::max(capacity, pos_); }

bool MessageWriter::PutU8(uint8_t v) {
  if (pos_ + 1 > capacity_) return false;
  buf_[pos_++] = v;
  return true;
}

bool MessageWriter::PutU16(uint16_t v) {
  if (pos_ + 2 > capacity_) return false;
  buf_[pos_++] = static_cast<uint8_t>(v >> 8);
  buf_[pos_++] = static_cast<uint8_t>(v);
  return true;
}

bool MessageWriter::PutU32(uint32_t v) {
  return PutU16(static_cast<uint16_t>(v >> 16)) && PutU16(static_cast<uint16_t>(v));
}

bool MessageWriter::PutBytes(const void* data, size_t n) {
  if (pos_ + n > capacity_) return false;
  std::memcpy(buf_ + pos_, data, n);
  pos_ += n;
  return true;
}

bool MessageWriter::SuffixMatchesAt(const uint8_t* suffix, size_t offset) const {
  size_t p = offset;
  for (int hops = 0; hops < 64;) {
    if (p >= pos_) return false;
    uint8_t len = buf_[p];
    if ((len & 0xC0) == 0xC0) {
      p = ((len & 0x3F) << 8) | buf_[p + 1];
      ++hops;
      continue;
    }
    if (len != *suffix) return false;
    if (len == 0) return true;
    for (size_t i = 1; i <= len; ++i) {
      if (Lower(buf_[p + i]) != Lower(suffix[i])) return false;
    }
    suffix += 1 + len;
    p += 1 + len;
  }
  return false;
}

int MessageWriter::FindSuffix(const uint8_t* suffix) const {
  for (size_t i = 0; i < n_compress_; ++i) {
    if (SuffixMatchesAt(suffix, compress_[i])) return compress_[i];
  }
  return -1;
}

bool MessageWriter::PutName(const Name& name, bool compress) {
  const uint8_t* w = name.wire();
  size_t p = 0;
  // Offsets of the labels written here join the table only once the whole name
  // is in the buffer, so a match never reads bytes not yet written.
  uint16_t fresh[kMaxNameWire / 2];
  size_t n_fresh = 0;
  bool ok = true;
  while (w[p] != 0) {
    if (compress) {
      int at = FindSuffix(w + p);
      if (at >= 0) {
        ok = PutU16(static_cast<uint16_t>(0xC000 | at));
        break;
      }
      if (pos_ < 0x3FFF) fresh[n_fresh++] = static_cast<uint16_t>(pos_);
    }
    if (!PutBytes(w + p, 1 + w[p])) return false;
    p += 1 + w[p];
  }
  if (w[p] == 0) ok = PutU8(0);
  if (!ok) return false;
  for (size_t i = 0; i < n_fresh && n_compress_ < kMaxCompress; ++i) {
    compress_[n_compress_++] = fresh[i];
  }
  return true;
}

bool MessageWriter::Order(Section section) {
  if (section < section_) return false;
  section_ = section;
  return true;
}

bool MessageWriter::AddQuestion(const Name& name, uint16_t qtype, uint16_t qclass) {
  if (!Order(Section::kQuestion)) return false;
  Mark m = Save();
  if (!PutName(name, true) || !PutU16(qtype) || !PutU16(qclass)) {
    Restore(m);
    return false;
  }
  ++counts_[0];
  buf_[4] = static_cast<uint8_t>(counts_[0] >> 8);
  buf_[5] = static_cast<uint8_t>(counts_[0]);
  return true;
}

bool MessageWriter::BeginRecord(Section section, const Name& name, uint16_t rtype,
                                uint16_t rclass, uint32_t ttl, size_t* rdlength_pos) {
  if (section == Section::kQuestion || !Order(section)) return false;
  if (!PutName(name, true) || !PutU16(rtype) || !PutU16(rclass) || !PutU32(ttl)) return false;
  *rdlength_pos = pos_;
  return PutU16(0);
}

bool MessageWriter::EndRecord(Section section, size_t rdlength_pos) {
  size_t rdlength = pos_ - rdlength_pos - 2;
  if (rdlength > 0xFFFF) return false;
  buf_[rdlength_pos] = static_cast<uint8_t>(rdlength >> 8);
  buf_[rdlength_pos + 1] = static_cast<uint8_t>(rdlength);
  int idx = static_cast<int>(section);
  ++counts_[idx];
  buf_[4 + 2 * idx] = static_cast<uint8_t>(counts_[idx] >> 8);
  buf_[5 + 2 * idx] = static_cast<uint8_t>(counts_[idx]);
  return true;
}

#define LOOM_DNS_RECORD(section, name, rtype, rclass, ttl, body) \
  do {                                                          \
    Mark mark_ = Save();                                        \
    size_t rdl_;                                                \
    if (!BeginRecord(section, name, rtype, rclass, ttl, &rdl_) || !(body) || \
        !EndRecord(section, rdl_)) {                            \
      Restore(mark_);                                           \
      return false;                                             \
    }                                                           \
    return true;                                                \
  } while (false)

bool MessageWriter::AddA(Section section, const Name& name, uint32_t ttl, const uint8_t addr[4]) {
  LOOM_DNS_RECORD(section, name, type::kA, kClassIn, ttl, PutBytes(addr, 4));
}

bool MessageWriter::AddAaaa(Section section, const Name& name, uint32_t ttl,
                            const uint8_t addr[16]) {
  LOOM_DNS_RECORD(section, name, type::kAaaa, kClassIn, ttl, PutBytes(addr, 16));
}

bool MessageWriter::AddNameRecord(Section section, const Name& name, uint16_t rtype,
                                  uint32_t ttl, const Name& target) {
  LOOM_DNS_RECORD(section, name, rtype, kClassIn, ttl, PutName(target, true));
}

bool MessageWriter::AddSrv(Section section, const Name& name, uint32_t ttl, uint16_t priority,
                           uint16_t weight, uint16_t port, const Name& target) {
  // RFC 2782: the target is not compressed.
  LOOM_DNS_RECORD(section, name, type::kSrv, kClassIn, ttl,
                  PutU16(priority) && PutU16(weight) && PutU16(port) && PutName(target, false));
}

bool MessageWriter::AddTxt(Section section, const Name& name, uint32_t ttl,
                           std::string_view text) {
  auto body = [&]() {
    if (text.empty()) return PutU8(0);
    for (size_t i = 0; i < text.size(); i += 255) {
      size_t n = std::min<size_t>(255, text.size() - i);
      if (!PutU8(static_cast<uint8_t>(n)) || !PutBytes(text.data() + i, n)) return false;
    }
    return true;
  };
  LOOM_DNS_RECORD(section, name, type::kTxt, kClassIn, ttl, body());
}

bool MessageWriter::AddSoa(Section section, const Name& zone, uint32_t ttl, const Name& mname,
                           const Name& rname, uint32_t serial, uint32_t refresh, uint32_t retry,
                           uint32_t expire, uint32_t minimum) {
  LOOM_DNS_RECORD(section, zone, type::kSoa, kClassIn, ttl,
                  PutName(mname, true) && PutName(rname, true) && PutU32(serial) &&
                      PutU32(refresh) && PutU32(retry) && PutU32(expire) && PutU32(minimum));
}

bool MessageWriter::AddRecord(Section section, const ResourceRecord& rr) {
  LOOM_DNS_RECORD(section, rr.name, rr.rtype, rr.rclass, rr.ttl,
                  PutBytes(rr.rdata.data(), rr.rdata.size()));
}

bool MessageWriter::AddOpt(uint16_t udp_size, uint8_t extended_rcode, uint8_t version,
                           bool dnssec_ok) {
  uint32_t ttl = (uint32_t{extended_rcode} << 24) | (uint32_t{version} << 16) |
                 (dnssec_ok ? 0x8000u : 0u);
  LOOM_DNS_RECORD(Section::kAdditional, Name(), type::kOpt, udp_size, ttl, true);
}

#undef LOOM_DNS_RECORD

std::string RcodeName(Rcode rcode) {
  switch (rcode) {
    case Rcode::kNoError: return "NOERROR";
    case Rcode::kFormErr: return "FORMERR";
    case Rcode::kServFail: return "SERVFAIL";
    case Rcode::kNxDomain: return "NXDOMAIN";
    case Rcode::kNotImp: return "NOTIMP";
    case Rcode::kRefused: return "REFUSED";
  }
  return StrCat("RCODE", static_cast<int>(rcode));
}

std::string TypeName(uint16_t rtype) {
  switch (rtype) {
    case type::kA: return "A";
    case type::kNs: return "NS";
    case type::kCname: return "CNAME";
    case type::kSoa: return "SOA";
    case type::kPtr: return "PTR";
    case type::kHinfo: return "HINFO";
    case type::kMx: return "MX";
    case type::kTxt: return "TXT";
    case type::kAaaa: return "AAAA";
    case type::kSrv: return "SRV";
    case type::kOpt: return "OPT";
    case type::kIxfr: return "IXFR";
    case type::kAxfr: return "AXFR";
    case type::kAny: return "ANY";
  }
  return StrCat("TYPE", rtype);
}

}  // namespace loom::dns
